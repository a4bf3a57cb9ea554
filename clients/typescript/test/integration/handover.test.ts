/**
 * Workers going away under a flowing stream: a drain (SIGTERM: `reconnect`, the
 * overlap of the old and new connection, the takeover) and a crash (SIGKILL).
 * Each has a gateway process of its own, started by the Python side; the client
 * has its address first and the stack's gateway second. Counted at the handler:
 * 0 lost, 0 duplicated, 0 out of order; every request answered.
 */

import assert from "node:assert/strict";
import { afterEach, test } from "node:test";

import type { Update } from "../../src/index.js";
import { FrameSchema, schemaMissing } from "../schema.js";
import { client, closeAll, newBot, noStack, say, seconds, stack, startChat, tally, textOf, theStack, wire } from "./stack.js";

afterEach(closeAll);

const COUNT = 150;

async function underLoad(workerUrl: string, disrupt: () => void): Promise<{ reconnects: number; frames: string[] }> {
  const s = theStack();
  const bot = await newBot("ho");
  const chat = await startChat(bot);
  const frames: string[] = [];
  const agent = client({
    urls: [workerUrl, s.gateway],
    token: bot.token,
    trace: (direction, frame, connectionId) => {
      if (direction === "in" && frame.op !== "updates") frames.push(`${connectionId} ${frame.op}`);
    },
  });
  const stream = agent[Symbol.asyncIterator]();
  const [start] = (await stream.next().then((next) => [next.value])) as Update[];
  assert.equal(textOf(start as Update), "/start");
  const botChat = start?.message?.chat.id as string;

  const seen: string[] = [];
  let answered = 0;
  const handler = async (): Promise<void> => {
    for (;;) {
      const next = await stream.next();
      if (next.done) return;
      seen.push(textOf(next.value));
      // a call over the socket per update: requests must survive the handover too
      const chatInfo = await agent.request<{ id: string }>("getChat", { chat_id: botChat });
      assert.equal(chatInfo.id, botChat);
      answered += 1;
      if (new Set(seen).size === COUNT) return;
    }
  };
  const producer = async (): Promise<void> => {
    for (let n = 1; n <= COUNT; n += 1) {
      await say(chat, `h${n}`);
      if (n === COUNT / 3) disrupt();
    }
  };
  let timer: ReturnType<typeof setTimeout> | undefined;
  const stuck = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`stuck after ${seen.length}: ${seen.slice(-5).join(",")}`)), seconds(60));
  });
  try {
    await Promise.race([Promise.all([handler(), producer()]), stuck]);
  } finally {
    clearTimeout(timer);
  }
  assert.deepEqual(tally(seen, "h", COUNT), { lost: 0, duplicated: 0, reordered: 0 });
  assert.equal(answered, seen.length);
  await agent.close();
  return { reconnects: agent.reconnects, frames };
}

test("a drained worker hands the stream over: none lost, none repeated", { skip: noStack || (stack?.drainPid == null && "no drain gateway") }, async () => {
  const s = theStack();
  const { reconnects, frames } = await underLoad(s.drainUrl as string, () => process.kill(s.drainPid as number, "SIGTERM"));
  assert.ok(reconnects >= 1, `reconnects ${reconnects}`);
  // the old connection said reconnect, and the new one became ready on the other worker
  const reconnectAt = frames.findIndex((f) => f.endsWith(" reconnect"));
  assert.ok(reconnectAt >= 0, frames.join("\n"));
  const oldConnection = (frames[reconnectAt] as string).split(" ")[0];
  assert.ok(
    frames.slice(reconnectAt).some((f) => f.endsWith(" ready") && !f.startsWith(`${oldConnection} `)),
    frames.join("\n"),
  );
});

test("a killed worker is left for the next one: none lost, none repeated", { skip: noStack || (stack?.killPid == null && "no kill gateway") }, async () => {
  const s = theStack();
  const { reconnects } = await underLoad(s.killUrl as string, () => process.kill(s.killPid as number, "SIGKILL"));
  assert.ok(reconnects >= 1, `reconnects ${reconnects}`);
});

test("every frame of the handovers matches the protocol schema", { skip: noStack || schemaMissing() }, () => {
  const schema = new FrameSchema();
  assert.ok(wire.length > 100, `only ${wire.length} frames recorded`);
  const problems = wire
    .map(({ direction, frame }) => schema.problem(frame, direction === "out" ? "client" : "server"))
    .filter((problem): problem is string => problem !== null);
  assert.deepEqual(problems.slice(0, 5), []);
  assert.ok(wire.some((e) => e.frame.op === "reconnect"), "no reconnect frame was seen");
});
