/**
 * The client's decisions, without sockets or clocks: how long to wait before a
 * reconnect, what a close code means, which updates are duplicates, what may be
 * acked on which connection, how many frames may be sent. Time and randomness are
 * passed in, so every rule is tested by calling it (test/unit/policy.test.ts).
 */

import { CloseCode } from "./frames.js";

// --- backoff (docs/protocol.md §16) ---------------------------------------------

export interface BackoffOptions {
  /** Seconds: the first attempt waits up to this. */
  base: number;
  /** Seconds: no attempt waits longer than this (unless the server asks). */
  max: number;
}

/**
 * Milliseconds to wait before reconnect attempt number `attempt` (0 for the first
 * after a connection ended): a random delay in [0, min(max, base * 2^attempt)]
 * ("full jitter"), never below `floorMs` (a `retry_after_ms` or `Retry-After`).
 */
export function backoffDelayMs(
  attempt: number,
  options: BackoffOptions,
  random: () => number = Math.random,
  floorMs = 0,
): number {
  const ceiling = Math.min(options.max, options.base * 2 ** Math.min(attempt, 30));
  const jittered = random() * ceiling * 1000;
  return Math.max(Math.round(jittered), Math.max(0, floorMs));
}

/** A connection ACTIVE this long counts as healthy: the attempt counter restarts. */
export const HEALTHY_AFTER_MS = 60_000;

// --- close codes (docs/protocol.md §15) -----------------------------------------

/**
 * What a close code tells the client to do:
 * - `terminal`: stop and report (4500-4999 and the standard codes that say the
 *   client sent something wrong: 1002, 1003, 1007, 1008, 1009, 1010);
 * - `immediate`: resume at once (1012, the end of a drain);
 * - `resume`: resume with backoff (everything else: 1000, 1001, 1006, 1011,
 *   4000-4499 including codes this client does not know).
 */
export type CloseAction = "terminal" | "immediate" | "resume";

const TERMINAL_STANDARD_CODES = new Set([1002, 1003, 1007, 1008, 1009, 1010]);

export function closeAction(code: number): CloseAction {
  if (code >= 4500 && code <= 4999) return "terminal";
  if (code >= 4000 && code <= 4499) return "resume";
  if (TERMINAL_STANDARD_CODES.has(code)) return "terminal";
  if (code === CloseCode.SERVICE_RESTART) return "immediate";
  return "resume";
}

/**
 * Whether a close ends the client. `superseded`: the client had already opened
 * the connection that replaces this one (after `reconnect`), so this one's
 * close, whatever it is, is the end of a handover (§11): 4502 from our own new
 * connection, 1012 at the deadline, or anything else the old worker sends.
 */
export function endsClient(code: number, superseded: boolean): boolean {
  if (superseded) return false;
  return closeAction(code) === "terminal";
}

/** Upgrade refusals after which a retry with the same token cannot succeed (§2). */
export function refusalIsTerminal(status: number): boolean {
  return status === 401 || status === 403 || status === 412;
}

/** The wait a `Retry-After` header asks for, in ms (seconds or an HTTP date). */
export function retryAfterMs(header: string | null | undefined, now = Date.now()): number | null {
  if (header == null) return null;
  const text = header.trim();
  if (/^\d+(\.\d+)?$/.test(text)) return Math.round(Number(text) * 1000);
  const date = Date.parse(text);
  return Number.isNaN(date) ? null : Math.max(0, date - now);
}

// --- de-duplication (docs/protocol.md §7.4) ------------------------------------

/**
 * Drops updates already handed to the application, by `update_id`: ids increase
 * on every connection, so the last one accepted is all it needs to remember. It
 * belongs to an epoch: in a new epoch the ids start over and it is forgotten.
 */
export class Deduplicator {
  epoch: string | null;
  last: number;
  dropped = 0;

  constructor(epoch: string | null = null, last = 0) {
    this.epoch = epoch;
    this.last = last;
  }

  /** Start over in `epoch` after `last` (a ready or gap of another epoch). */
  reset(epoch: string, last: number): void {
    this.epoch = epoch;
    this.last = last;
  }

  /**
   * A connection of `epoch` starts delivering after `start`: a new epoch resets,
   * the same one only moves the mark up (a replay of what was seen is dropped).
   */
  startAt(epoch: string, start: number): void {
    if (this.epoch !== epoch) this.reset(epoch, start);
    else this.last = Math.max(this.last, start);
  }

  /** Whether update `updateId` of `epoch` is new; if so it is now the last one. */
  accept(epoch: string, updateId: number): boolean {
    if (this.epoch !== epoch) {
      // only a ready or gap changes the epoch; an update of another one is stale
      this.dropped += 1;
      return false;
    }
    if (updateId <= this.last) {
      this.dropped += 1;
      return false;
    }
    this.last = updateId;
    return true;
  }
}

// --- acks (docs/protocol.md §5.2, §11) -------------------------------------------

/** What one connection has delivered and been told, for its acks. */
export interface AckMarks {
  /** The log epoch the connection delivers (null before ready). */
  epoch: string | null;
  /** The newest update id this connection delivered (its start cursor at first). */
  high: number;
  /** The highest ack this connection was sent (or its start cursor). */
  sent: number;
}

/**
 * The ack to send on a connection, or null: the application's processed position
 * capped at what this very connection delivered (more ends it with 4506), and
 * only if it moves that connection's ack forward.
 */
export function ackFor(marks: AckMarks, processed: { epoch: string; updateId: number } | null): number | null {
  if (processed === null || marks.epoch === null || marks.epoch !== processed.epoch) return null;
  const value = Math.min(processed.updateId, marks.high);
  return value > marks.sent ? value : null;
}

// --- the client's own frame budget (docs/protocol.md §14) ------------------------

/**
 * A token bucket that keeps the client under the server's frame rate
 * (`max_frames_per_s`, `frame_burst`, with a margin for pongs and clock skew).
 */
export class FrameBudget {
  private tokens: number;
  private at: number;
  readonly rate: number;
  readonly burst: number;

  constructor(ratePerSecond: number, burst: number, now: number, margin = 0.8) {
    this.rate = Math.max(0.1, ratePerSecond * margin);
    this.burst = Math.max(1, Math.floor(burst * margin));
    this.tokens = this.burst;
    this.at = now;
  }

  private refill(now: number): void {
    if (now > this.at) {
      this.tokens = Math.min(this.burst, this.tokens + ((now - this.at) / 1000) * this.rate);
      this.at = now;
    }
  }

  /** Take one token if there is one. */
  take(now: number): boolean {
    this.refill(now);
    if (this.tokens < 1) return false;
    this.tokens -= 1;
    return true;
  }

  /** Take one token even if that overdraws (a heartbeat must go out). */
  force(now: number): void {
    this.refill(now);
    this.tokens -= 1;
  }

  /** Milliseconds until a token is available (0 if one is). */
  waitMs(now: number): number {
    this.refill(now);
    return this.tokens >= 1 ? 0 : Math.ceil(((1 - this.tokens) / this.rate) * 1000);
  }
}
