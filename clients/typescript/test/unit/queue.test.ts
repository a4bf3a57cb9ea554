/** The queue between the sockets and the application's loop. */

import assert from "node:assert/strict";
import { test } from "node:test";

import { UpdateQueue } from "../../src/queue.js";

test("first in, first out, to a reader that waits", async () => {
  const queue = new UpdateQueue<number>();
  queue.push(1);
  const waiting = (async () => [await queue.take(), await queue.take()])();
  queue.push(2);
  assert.deepEqual(await waiting, [
    { done: false, value: 1 },
    { done: false, value: 2 },
  ]);
  assert.equal(queue.length, 0);
});

test("an error comes after everything queued before it", async () => {
  const queue = new UpdateQueue<number>();
  queue.push(1);
  queue.fail(new Error("terminal"));
  queue.push(2); // nothing is queued after the end
  assert.deepEqual(await queue.take(), { done: false, value: 1 });
  await assert.rejects(queue.take(), /terminal/);
});

test("a waiting reader is woken by the end or by an error", async () => {
  const ended = new UpdateQueue<number>();
  const take = ended.take();
  ended.end();
  assert.deepEqual(await take, { done: true, value: undefined });

  const failed = new UpdateQueue<number>();
  const failing = failed.take();
  failed.fail(new Error("gone"));
  await assert.rejects(failing, /gone/);
});

test("many items keep their order across compaction", async () => {
  const queue = new UpdateQueue<number>();
  const got: number[] = [];
  for (let i = 0; i < 5000; i += 1) {
    queue.push(i);
    if (i % 3 === 0) {
      const taken = await queue.take();
      if (!taken.done) got.push(taken.value);
    }
  }
  while (queue.length > 0) {
    const taken = await queue.take();
    if (!taken.done) got.push(taken.value);
  }
  assert.deepEqual(got, Array.from({ length: 5000 }, (_, i) => i));
});
