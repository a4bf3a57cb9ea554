/** Frames the client builds, and the codec of both encodings. */

import assert from "node:assert/strict";
import { describe, test } from "node:test";

import { decode } from "@msgpack/msgpack";

import {
  ackFrame,
  decodeFrame,
  encodeFrame,
  FrameError,
  heartbeatFrame,
  identifyFrame,
  idNumber,
  requestFrame,
} from "../../src/frames.js";

describe("builders", () => {
  test("identify with every option; ids as decimal strings", () => {
    const frame = identifyFrame({
      token: "bot_1:x",
      cursor: { epoch: "ep", updateId: 1825792000000001 },
      consumer: "agents",
      shard: [1, 4],
      encoding: "msgpack",
      allowedUpdates: ["message", "callback_query"],
      onGap: "oldest",
    });
    assert.deepEqual(frame, {
      op: "identify",
      token: "bot_1:x",
      cursor: { epoch: "ep", update_id: "1825792000000001" },
      consumer: "agents",
      shard: [1, 4],
      encoding: "msgpack",
      allowed_updates: ["message", "callback_query"],
      on_gap: "oldest",
    });
  });

  test("identify leaves out what is not set (the committed cursor, every type, no token)", () => {
    assert.deepEqual(
      identifyFrame({ consumer: "default", encoding: "json", onGap: "fail", cursor: null, allowedUpdates: [] }),
      { op: "identify", consumer: "default", encoding: "json", on_gap: "fail" },
    );
  });

  test("ack, heartbeat and request", () => {
    assert.deepEqual(ackFrame(42), { op: "ack", update_id: "42" });
    assert.deepEqual(heartbeatFrame(), { op: "heartbeat" });
    assert.deepEqual(heartbeatFrame(null), { op: "heartbeat" });
    assert.deepEqual(heartbeatFrame(7), { op: "heartbeat", ack: "7" });
    assert.deepEqual(requestFrame("r1", "sendMessage", { chat_id: "5", text: "hi" }, "key-1"), {
      op: "request",
      id: "r1",
      method: "sendMessage",
      params: { chat_id: "5", text: "hi" },
      idempotency_key: "key-1",
    });
  });
});

describe("codec", () => {
  test("JSON is text, msgpack is bytes with strings as str", () => {
    const frame = ackFrame(1825792000000001);
    assert.equal(encodeFrame(frame, "json"), '{"op":"ack","update_id":"1825792000000001"}');
    const bytes = encodeFrame(frame, "msgpack");
    assert.ok(bytes instanceof Uint8Array);
    assert.equal(bytes[0], 0x82); // a map of two
    assert.equal(bytes[1], 0xa2); // fixstr "op", not bin
    assert.deepEqual(decode(bytes), frame);
  });

  test("decodes by message kind, whatever was asked for", () => {
    const updates = { op: "updates", updates: [{ update_id: "5", message: { text: "é" } }] };
    assert.deepEqual(decodeFrame(JSON.stringify(updates)), updates);
    assert.deepEqual(decodeFrame(encodeFrame(updates as never, "msgpack")), updates);
  });

  test("a frame that is not an object with an op is an error, not a crash", () => {
    for (const data of ["[1]", "42", "null", '{"no": "op"}', "{", new Uint8Array([0xc1])]) {
      assert.throws(() => decodeFrame(data), FrameError, String(data));
    }
  });

  test("ids: decimal strings or integers below 2^53", () => {
    assert.equal(idNumber("1825792000000001"), 1825792000000001);
    assert.equal(idNumber(12), 12);
    assert.equal(idNumber(null), 0);
    assert.throws(() => idNumber("12x"), FrameError);
    assert.throws(() => idNumber("99999999999999999"), FrameError);
    assert.throws(() => idNumber(-1), FrameError);
  });
});
