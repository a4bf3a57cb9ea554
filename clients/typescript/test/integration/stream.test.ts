/**
 * The client against a real gateway: order and acks, resuming after a dropped
 * connection, requests, gap policies, terminal closes, the heartbeat watchdog,
 * the frame budget, and the frames on the wire against the protocol schema.
 */

import assert from "node:assert/strict";
import { afterEach, test } from "node:test";

import { GapError, GatewayError, RequestError, UpgradeRefused, type Update } from "../../src/index.js";
import { randomHex } from "../../src/random.js";
import { FrameSchema, schemaMissing } from "../schema.js";
import {
  botTexts,
  call,
  client,
  closeAll,
  collect,
  newBot,
  noStack,
  say,
  seconds,
  sleep,
  startChat,
  tally,
  TcpProxy,
  textOf,
  theStack,
  waitFor,
  wire,
} from "./stack.js";

afterEach(closeAll);

const ids = (updates: Update[]): number[] => updates.map((u) => Number(u.update_id));
const increasing = (values: number[]): boolean => values.every((v, i) => i === 0 || v > (values[i - 1] as number));

test("updates come in order, are acked after the handler, and the ack is committed", { skip: noStack }, async () => {
  const s = theStack();
  // the bot made by the Python side; texts are tagged, so that a rerun on one stack sees its own
  const tag = randomHex(3);
  const chat = await startChat({ username: s.botUsername });
  for (const text of ["one", "two", "three"]) await say(chat, `${text}-${tag}`);

  const consumer = `order-${tag}`;
  const first = client({ url: s.gateway, token: s.botToken, consumer });
  const stream = first[Symbol.asyncIterator]();
  const got = await collect(stream, (taken) => taken.some((u) => textOf(u) === `three-${tag}`));
  assert.deepEqual(got.slice(-4).map(textOf), ["/start", `one-${tag}`, `two-${tag}`, `three-${tag}`]);
  assert.ok(increasing(ids(got)), `ids ${ids(got).join(",")}`);
  assert.equal(first.lastReady?.resumed, false); // a consumer starting fresh
  // the loop has not asked for the update after "three": it is not processed yet
  const [two, three] = got.slice(-2) as [Update, Update];
  assert.equal(first.cursor?.updateId, Number(two.update_id));
  first.ack(three.update_id);
  assert.equal(first.cursor?.updateId, Number(three.update_id));
  await first.close(); // sends the last ack before closing

  // a new client on the consumer, without a cursor, starts after the committed ack
  await say(chat, `four-${tag}`);
  const second = client({ url: s.gateway, token: s.botToken, consumer });
  const again = await collect(second[Symbol.asyncIterator](), (taken) => taken.length === 1);
  assert.deepEqual(again.map(textOf), [`four-${tag}`]);
  assert.equal(second.lastReady?.resumed, true);
  assert.equal(second.lastReady?.cursor.update_id, three.update_id);

  // msgpack delivers the very same updates
  const packed = client({ url: s.gateway, token: s.botToken, consumer: `${consumer}-msgpack`, encoding: "msgpack" });
  const unpacked = await collect(packed[Symbol.asyncIterator](), (taken) => taken.length === got.length + 1);
  assert.deepEqual(unpacked, [...got, ...again]);
  assert.ok(wire.some((entry) => entry.direction === "out" && entry.frame.op === "ack"));
});

test("a dropped connection resumes after the last processed update: none lost, none repeated", { skip: noStack }, async () => {
  const s = theStack();
  const bot = await newBot();
  const chat = await startChat(bot);
  const proxy = await TcpProxy.to(s.gateway);
  try {
    const agent = client({ url: proxy.url, token: bot.token });
    const stream = agent[Symbol.asyncIterator]();
    await collect(stream, (taken) => taken.length === 1); // /start
    const count = 60;
    let dropped = 0;
    const producer = (async () => {
      for (let n = 1; n <= count; n += 1) {
        await say(chat, `m${n}`);
        if (n % 20 === 0 && n < count) {
          await waitFor("a connection to drop", () => proxy.connections > 0);
          dropped += proxy.drop();
        }
      }
    })();
    const got = await collect(stream, (taken) => taken.some((u) => textOf(u) === `m${count}`), seconds(60));
    await producer;
    assert.deepEqual(tally(got.map(textOf), "m", count), { lost: 0, duplicated: 0, reordered: 0 });
    assert.ok(dropped >= 2, `dropped ${dropped}`);
    assert.ok(agent.reconnects >= 2, `reconnects ${agent.reconnects}`);
  } finally {
    await proxy.close();
  }
});

test("requests: a result, the error envelope, and a request cut off is sent again and takes effect once", { skip: noStack }, async () => {
  const s = theStack();
  const bot = await newBot();
  const chat = await startChat(bot);
  const proxy = await TcpProxy.to(s.gateway);
  let cut: "before" | "after" | null = null;
  try {
    const agent = client({
      url: proxy.url,
      token: bot.token,
      trace: (direction, frame) => {
        if (direction !== "out" || frame.op !== "request" || cut === null) return;
        const how = cut;
        cut = null;
        if (how === "before") {
          proxy.drop(); // the request may not even reach the server
        } else {
          // the server gets it and answers, the answer never arrives
          setImmediate(() => proxy.holdReplies());
          setTimeout(() => proxy.drop(), seconds(0.5));
        }
      },
    });
    const stream = agent[Symbol.asyncIterator]();
    const [start] = await collect(stream, (taken) => taken.length === 1);
    const botChat = start?.message?.chat.id as string;

    const sent = await agent.request<{ text: string; from: { is_bot: boolean }; chat: { id: string } }>("sendMessage", {
      chat_id: botChat,
      text: "pong",
    });
    assert.equal(sent.text, "pong");
    assert.equal(sent.from.is_bot, true);
    assert.equal(sent.chat.id, botChat);

    await assert.rejects(agent.request("sendMessage", { chat_id: "777000777000", text: "?" }), (error: unknown) => {
      assert.ok(error instanceof RequestError, String(error));
      assert.ok([400, 403].includes(error.errorCode), String(error.errorCode));
      assert.match(error.code, /^CHAT_/);
      assert.ok(error.description.length > 0);
      assert.equal(error.error.error_code, error.errorCode);
      assert.equal("ok" in error.error, false); // §6.5: the envelope without its ok
      return true;
    });
    await assert.rejects(agent.request("noSuchMethod"), (error: unknown) => {
      assert.ok(error instanceof RequestError);
      assert.equal(error.errorCode, 404);
      assert.equal(error.code, "METHOD_NOT_FOUND");
      return true;
    });

    const reconnectsBefore = agent.reconnects;
    cut = "before";
    const a = await agent.request<{ message_id: string }>("sendMessage", { chat_id: botChat, text: "once-a" });
    cut = "after";
    const b = await agent.request<{ message_id: string }>("sendMessage", { chat_id: botChat, text: "once-b" });
    assert.ok(agent.reconnects >= reconnectsBefore + 2, `reconnects ${agent.reconnects}`);
    // each was sent twice, with one idempotency key ...
    const sends = (text: string): string[] =>
      wire
        .filter((e) => e.direction === "out" && e.frame.op === "request")
        .map((e) => e.frame as unknown as { params: { text?: string }; idempotency_key: string })
        .filter((f) => f.params.text === text)
        .map((f) => f.idempotency_key);
    for (const text of ["once-a", "once-b"]) {
      const keys = sends(text);
      assert.ok(keys.length >= 2, `${text} sent ${keys.length} times`);
      assert.equal(new Set(keys).size, 1, `${text} keys ${keys.join(",")}`);
    }
    // ... and is in the chat once
    const texts = await botTexts(chat);
    assert.deepEqual(
      texts.filter((t) => t.startsWith("once-")),
      ["once-a", "once-b"],
    );
    assert.notEqual(a.message_id, b.message_id);
  } finally {
    await proxy.close();
  }
});

test("gap policies: fail ends the client with GapError, oldest and newest go on", { skip: noStack }, async () => {
  const s = theStack();
  const bot = await newBot();
  const chat = await startChat(bot);
  await say(chat, "after start");

  const failing = client({ url: s.gateway, token: bot.token, cursor: { epoch: "not-this-epoch", updateId: 5 } });
  await assert.rejects(collect(failing[Symbol.asyncIterator](), () => false), (error: unknown) => {
    assert.ok(error instanceof GapError, String(error));
    assert.equal(error.code, 4504);
    assert.equal(error.gap?.reason, "epoch");
    assert.equal(error.gap?.action, "fail");
    return true;
  });
  assert.equal(failing.gaps.length, 1);
  assert.equal(failing.reconnects, 0);

  const oldest = client({ url: s.gateway, token: bot.token, consumer: "g-oldest", onGap: "oldest", cursor: ["not-this-epoch", 5] });
  const fromOldest = await collect(oldest[Symbol.asyncIterator](), (taken) => taken.length === 2);
  assert.deepEqual(fromOldest.map(textOf), ["/start", "after start"]);
  assert.equal(oldest.gaps[0]?.action, "oldest");
  const ready = oldest.lastReady;
  assert.equal(ready?.resumed, false); // §6.2: false whenever a gap came first
  assert.equal(oldest.cursor?.epoch, ready?.epoch); // the position moved into the log's epoch

  // a cursor beyond the head names updates the log does not have: tail_lost, never a silent skip
  const epoch = ready?.epoch as string;
  const beyond = Number(ready?.head) + 5 * 1024;
  const newest = client({ url: s.gateway, token: bot.token, consumer: "g-tail", onGap: "newest", cursor: { epoch, updateId: beyond } });
  const stream = newest[Symbol.asyncIterator]();
  const next = stream.next();
  await waitFor("the gap", () => newest.lastReady !== null);
  assert.equal(newest.gaps[0]?.reason, "tail_lost");
  assert.equal(newest.lastReady?.resumed, false);
  assert.equal(newest.lastReady?.cursor.update_id, String(beyond));
  await sleep(20); // ids are time-ordered: the next one is above the cursor
  await say(chat, "later");
  const later = await next;
  assert.equal(textOf(later.value as Update), "later");
  assert.ok(Number((later.value as Update).update_id) > beyond);
});

test("terminal: a wrong token, a takeover, a rotation and a revocation end the client", { skip: noStack }, async () => {
  const s = theStack();
  const bot = await newBot();
  await startChat(bot);
  const wrongToken = bot.token.replace(/:.*/, ":" + "x".repeat(43));

  const refused = client({ url: s.gateway, token: wrongToken });
  await assert.rejects(refused[Symbol.asyncIterator]().next(), (error: unknown) => {
    assert.ok(error instanceof UpgradeRefused, String(error));
    assert.equal(error.status, 401);
    assert.equal(error.apiCode, "UNAUTHORIZED");
    assert.equal(error.code, 4501);
    return true;
  });
  assert.equal(refused.reconnects, 0);

  const inIdentify = client({ url: s.gateway, token: wrongToken, tokenInIdentify: true });
  await assert.rejects(inIdentify[Symbol.asyncIterator]().next(), (error: unknown) => {
    assert.ok(error instanceof GatewayError && !(error instanceof UpgradeRefused), String(error));
    assert.equal(error.code, 4501);
    return true;
  });
  assert.equal(inIdentify.reconnects, 0);
  assert.ok(wire.some((e) => e.direction === "out" && e.frame.op === "identify" && "token" in e.frame));

  // another instance on the same consumer and shard takes the stream over
  const first = client({ url: s.gateway, token: bot.token, consumer: "solo" });
  const firstStream = first[Symbol.asyncIterator]();
  await collect(firstStream, (taken) => taken.length === 1);
  const second = client({ url: s.gateway, token: bot.token, consumer: "solo" });
  const secondStream = second[Symbol.asyncIterator]();
  const secondFirst = secondStream.next();
  await assert.rejects(collect(firstStream, () => false), (error: unknown) => {
    assert.ok(error instanceof GatewayError);
    assert.equal(error.code, 4502);
    return true;
  });
  assert.equal(textOf((await secondFirst).value as Update), "/start"); // never acked by the first

  // rotation closes the live socket of the old token: 4501, terminal
  const auth = `Bearer ${theStack().userToken}`;
  const rotated = await call<{ token: string }>("manage", auth, "rotateToken", { bot_id: bot.id });
  await assert.rejects(collect(secondStream, () => false, seconds(10)), (error: unknown) => {
    assert.ok(error instanceof GatewayError);
    assert.equal(error.code, 4501);
    return true;
  });
  assert.equal(second.reconnects, 0);

  // revocation closes the live socket 4505, and the next upgrade is refused 412
  const live = client({ url: s.gateway, token: rotated.token, consumer: "solo" });
  const liveStream = live[Symbol.asyncIterator]();
  await collect(liveStream, (taken) => taken.length === 1);
  await call("manage", auth, "revokeBot", { bot_id: bot.id });
  await assert.rejects(collect(liveStream, () => false, seconds(10)), (error: unknown) => {
    assert.ok(error instanceof GatewayError);
    assert.equal(error.code, 4505);
    return true;
  });
  const afterRevoke = client({ url: s.gateway, token: rotated.token });
  await assert.rejects(afterRevoke[Symbol.asyncIterator]().next(), (error: unknown) => {
    assert.ok(error instanceof UpgradeRefused, String(error));
    assert.equal(error.status, 412);
    assert.equal(error.apiCode, "BOT_INACTIVE");
    assert.equal(error.code, 4505);
    return true;
  });
});

test("a path that goes silent is dropped by the heartbeat_ack watchdog and resumed", { skip: noStack }, async () => {
  const s = theStack();
  const bot = await newBot();
  const chat = await startChat(bot);
  const proxy = await TcpProxy.to(s.gateway);
  const warnings: string[] = [];
  try {
    const agent = client({ url: proxy.url, token: bot.token, logger: { warn: (message) => warnings.push(message) } });
    const stream = agent[Symbol.asyncIterator]();
    await collect(stream, (taken) => taken.length === 1);
    const hello = wire.filter((e) => e.frame.op === "hello").pop()?.frame as unknown as { heartbeat_interval_ms: number };
    const interval = hello.heartbeat_interval_ms;
    assert.ok(interval <= 10_000, `a heartbeat interval of ${interval} ms makes this test slow`);
    assert.equal(proxy.stall(), 1);
    const stalledAt = Date.now();
    await say(chat, "during the stall");
    const got = await collect(stream, (taken) => taken.some((u) => textOf(u) === "during the stall"), seconds(30));
    assert.deepEqual(got.map(textOf), ["during the stall"]);
    const took = Date.now() - stalledAt;
    // one heartbeat (at most an interval away), then one interval without an answer
    assert.ok(took <= 2 * interval + seconds(2), `resumed after ${took} ms`);
    assert.equal(agent.reconnects, 1);
    assert.ok(
      warnings.some((w) => w.includes("heartbeat_ack")),
      warnings.join("\n"),
    );
  } finally {
    await proxy.close();
  }
});

test("acks of many updates are coalesced: the client stays under the frame rate", { skip: noStack }, async () => {
  const s = theStack();
  const bot = await newBot();
  const chat = await startChat(bot);
  let acks = 0;
  const agent = client({
    url: s.gateway,
    token: bot.token,
    trace: (direction, frame) => {
      if (direction === "out" && (frame.op === "ack" || (frame.op === "heartbeat" && "ack" in frame))) acks += 1;
    },
  });
  const stream = agent[Symbol.asyncIterator]();
  const count = 200;
  const producer = (async () => {
    for (let n = 1; n <= count; n += 20) {
      await Promise.all(Array.from({ length: 20 }, (_, i) => say(chat, `b${n + i}`)));
    }
  })();
  const got = await collect(stream, (taken) => new Set(taken.map(textOf).filter((t) => t.startsWith("b"))).size === count, seconds(60));
  await producer;
  const texts = got.map(textOf).filter((t) => t.startsWith("b"));
  assert.equal(texts.length, count);
  assert.equal(new Set(texts).size, count);
  assert.equal(agent.reconnects, 0); // a flood would have been closed 4003
  assert.ok(acks > 0 && acks < count / 2, `${acks} acks for ${count} updates`);
});

test("every frame on the wire matches the protocol schema", { skip: noStack || schemaMissing() }, () => {
  const schema = new FrameSchema();
  assert.ok(wire.length > 50, `only ${wire.length} frames recorded`);
  const problems = wire
    .map(({ direction, frame }) => schema.problem(frame, direction === "out" ? "client" : "server"))
    .filter((problem): problem is string => problem !== null);
  assert.deepEqual(problems.slice(0, 5), []);
  const ops = new Set(wire.map((e) => e.frame.op));
  for (const op of ["hello", "identify", "ready", "updates", "ack", "request", "result", "gap", "close"]) {
    assert.ok(ops.has(op), `no ${op} frame was seen`);
  }
});
