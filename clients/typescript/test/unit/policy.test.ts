/** The client's pure decisions: backoff, close codes, de-duplication, acks, frame budget. */

import assert from "node:assert/strict";
import { describe, test } from "node:test";

import {
  ackFor,
  backoffDelayMs,
  closeAction,
  Deduplicator,
  endsClient,
  FrameBudget,
  refusalIsTerminal,
  retryAfterMs,
} from "../../src/policy.js";

const backoff = { base: 0.5, max: 10 };

describe("backoff", () => {
  test("doubles per attempt up to the cap", () => {
    const top = (attempt: number): number => backoffDelayMs(attempt, backoff, () => 1);
    assert.deepEqual([0, 1, 2, 3, 4, 5, 6, 40].map(top), [500, 1000, 2000, 4000, 8000, 10000, 10000, 10000]);
  });

  test("is full jitter: anywhere from 0 to the ceiling", () => {
    assert.equal(backoffDelayMs(3, backoff, () => 0), 0);
    assert.equal(backoffDelayMs(3, backoff, () => 0.25), 1000);
    for (let i = 0; i < 1000; i += 1) {
      const delay = backoffDelayMs(i % 8, backoff);
      assert.ok(delay >= 0 && delay <= Math.min(10, 0.5 * 2 ** (i % 8)) * 1000, `delay ${delay}`);
    }
  });

  test("never goes below what the server asked for", () => {
    assert.equal(backoffDelayMs(0, backoff, () => 0, 1500), 1500);
    assert.equal(backoffDelayMs(0, backoff, () => 1, 100), 500);
    assert.equal(backoffDelayMs(0, { base: 0.5, max: 1 }, () => 1, 30_000), 30_000);
  });
});

describe("close codes", () => {
  test("4000-4499 resume with backoff, known or not", () => {
    for (const code of [4000, 4001, 4002, 4003, 4004, 4005, 4006, 4321, 4499]) {
      assert.equal(closeAction(code), "resume", String(code));
    }
  });

  test("4500-4999 are terminal, known or not", () => {
    for (const code of [4500, 4501, 4502, 4503, 4504, 4505, 4506, 4777, 4999]) {
      assert.equal(closeAction(code), "terminal", String(code));
    }
  });

  test("standard codes: a drop or a restart resumes, a client fault stops", () => {
    assert.equal(closeAction(1000), "resume");
    assert.equal(closeAction(1001), "resume");
    assert.equal(closeAction(1006), "resume");
    assert.equal(closeAction(1011), "resume");
    assert.equal(closeAction(1012), "immediate");
    assert.equal(closeAction(1007), "terminal"); // non-UTF-8 text (§15)
    assert.equal(closeAction(1009), "terminal"); // a frame over 1 MiB (§15)
    assert.equal(closeAction(1002), "terminal");
  });

  test("4502 is ours to ignore only when we opened the replacement", () => {
    assert.equal(endsClient(4502, false), true); // another instance took over
    assert.equal(endsClient(4502, true), false); // our own new connection did
    assert.equal(endsClient(1012, true), false);
    assert.equal(endsClient(4506, true), false);
    assert.equal(endsClient(4001, false), false);
    assert.equal(endsClient(4505, false), true);
  });

  test("refusals: 401, 403 and 412 are terminal, 429 and 5xx are retried", () => {
    assert.deepEqual(
      [401, 403, 412, 404, 429, 500, 503].map(refusalIsTerminal),
      [true, true, true, false, false, false, false],
    );
  });

  test("Retry-After in seconds or as an HTTP date", () => {
    assert.equal(retryAfterMs("1"), 1000);
    assert.equal(retryAfterMs(" 2.5 "), 2500);
    const now = Date.parse("2026-01-01T00:00:00Z");
    assert.equal(retryAfterMs("Thu, 01 Jan 2026 00:00:03 GMT", now), 3000);
    assert.equal(retryAfterMs("Thu, 01 Jan 2025 00:00:03 GMT", now), 0);
    assert.equal(retryAfterMs("soon"), null);
    assert.equal(retryAfterMs(undefined), null);
  });
});

describe("de-duplication", () => {
  test("passes increasing ids, drops repeats and counts them", () => {
    const dedup = new Deduplicator("e1", 0);
    assert.deepEqual(
      [1, 2, 2, 3, 1, 5, 4, 6].map((id) => dedup.accept("e1", id)),
      [true, true, false, true, false, true, false, true],
    );
    assert.equal(dedup.dropped, 3);
    assert.equal(dedup.last, 6);
  });

  test("a replay on a new connection of the same epoch is dropped up to the mark", () => {
    const dedup = new Deduplicator("e1", 0);
    for (const id of [101, 102, 103, 104, 105]) assert.ok(dedup.accept("e1", id));
    dedup.startAt("e1", 100); // the new connection resumes after 100: 101-105 come again
    assert.deepEqual([101, 102, 103, 104, 105, 106].map((id) => dedup.accept("e1", id)), [
      false, false, false, false, false, true,
    ]);
  });

  test("a start beyond the mark moves it up (a gap skipped ahead)", () => {
    const dedup = new Deduplicator("e1", 10);
    dedup.startAt("e1", 50);
    assert.equal(dedup.accept("e1", 40), false);
    assert.equal(dedup.accept("e1", 51), true);
  });

  test("a new epoch forgets the ids: lower ones pass again", () => {
    const dedup = new Deduplicator("e1", 0);
    assert.ok(dedup.accept("e1", 1000));
    dedup.startAt("e2", 0);
    assert.equal(dedup.accept("e2", 5), true);
    assert.equal(dedup.accept("e1", 2000), false); // a straggler of the old epoch
  });

  test("a client started with a cursor drops what it already processed", () => {
    const dedup = new Deduplicator("e1", 70);
    assert.equal(dedup.accept("e1", 70), false);
    assert.equal(dedup.accept("e1", 71), true);
  });
});

describe("acks", () => {
  const done = (updateId: number): { epoch: string; updateId: number } => ({ epoch: "e1", updateId });

  test("the processed position, but never beyond what this connection delivered", () => {
    assert.equal(ackFor({ epoch: "e1", high: 110, sent: 100 }, done(105)), 105);
    assert.equal(ackFor({ epoch: "e1", high: 103, sent: 100 }, done(105)), 103);
  });

  test("nothing when it would not move the connection's ack forward", () => {
    assert.equal(ackFor({ epoch: "e1", high: 110, sent: 105 }, done(105)), null);
    assert.equal(ackFor({ epoch: "e1", high: 110, sent: 108 }, done(105)), null);
    assert.equal(ackFor({ epoch: "e1", high: 110, sent: 100 }, null), null);
  });

  test("nothing before ready or in another epoch", () => {
    assert.equal(ackFor({ epoch: null, high: 0, sent: 0 }, done(5)), null);
    assert.equal(ackFor({ epoch: "e2", high: 10, sent: 0 }, done(5)), null);
  });

  test("during a drain each connection is acked up to what it delivered itself", () => {
    // old A delivered up to 110; new B resumed after 100 and is replaying
    const a = { epoch: "e1", high: 110, sent: 100 };
    const b = { epoch: "e1", high: 100, sent: 100 };
    assert.equal(ackFor(a, done(110)), 110);
    assert.equal(ackFor(b, done(110)), null);
    b.high = 104; // B replayed 101-104 (dropped as duplicates)
    assert.equal(ackFor(b, done(110)), 104);
    b.sent = 104;
    b.high = 120;
    assert.equal(ackFor(b, done(110)), 110);
  });
});

describe("frame budget", () => {
  test("allows the burst, then the rate, with a margin under the server's", () => {
    const budget = new FrameBudget(50, 100, 0);
    let taken = 0;
    while (budget.take(0)) taken += 1;
    assert.equal(taken, 80);
    assert.ok(budget.waitMs(0) > 0);
    assert.equal(budget.take(25), true); // 40 per second: one token per 25 ms
    assert.equal(budget.take(25), false);
    assert.equal(budget.waitMs(25), 25);
  });

  test("a forced frame overdraws and delays the next ones", () => {
    const budget = new FrameBudget(10, 1, 0);
    assert.equal(budget.take(0), true);
    budget.force(0);
    assert.equal(budget.waitMs(0), 250);
  });
});
