/** Every kind of frame this client sends, checked against docs/protocol.schema.json. */

import assert from "node:assert/strict";
import { test } from "node:test";

import { ackFrame, heartbeatFrame, identifyFrame, requestFrame, type ClientFrame } from "../../src/frames.js";
import { FrameSchema, schemaMissing } from "../schema.js";

const sent: ClientFrame[] = [
  identifyFrame({ consumer: "default", encoding: "json", onGap: "fail" }),
  identifyFrame({
    token: "bot_5210746231337:Zb1vAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
    cursor: { epoch: "9f2c4e1ab07d3355", updateId: 1825792004620288 },
    consumer: "agents.v2",
    shard: [3, 8],
    encoding: "msgpack",
    allowedUpdates: ["message", "edited_message", "callback_query", "my_chat_member", "message_reaction", "poll", "poll_answer"],
    onGap: "newest",
  }),
  ackFrame(1825792000000001),
  heartbeatFrame(),
  heartbeatFrame(1825792000000001),
  requestFrame("0a1b2c3d4e5f6071", "sendMessage", { chat_id: "4242", text: "hi" }, "ts-00112233445566778899aabbccddeeff"),
  requestFrame("r2", "getMe", {}, "ts-k"),
];

test("the frames the client sends match the protocol schema", { skip: schemaMissing() }, () => {
  const schema = new FrameSchema();
  assert.ok(schema.hasDirections, "the schema has ClientFrame and ServerFrame");
  for (const frame of sent) {
    const problem = schema.problem(frame, "client");
    assert.equal(problem, null, problem ?? "");
  }
  // the check can fail: what the spec forbids is refused
  assert.notEqual(schema.problem({ op: "ack", update_id: "-1" } as never, "client"), null);
  assert.notEqual(schema.problem({ op: "identify", shard: [1024, 1025] } as never, "client"), null);
  assert.notEqual(schema.problem({ op: "heartbeat_ack", acked: null } as never, "client"), null);
});
