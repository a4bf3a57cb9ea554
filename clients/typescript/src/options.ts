/** The options of a GatewayClient and the types they name. */

import { idNumber, type ClientFrame, type Encoding, type GapPolicy, type ServerFrame, type UpdateType } from "./frames.js";
import type { WebSocketConstructor } from "./transport.js";

/** A position in the log: the last update processed, in one epoch. */
export interface Cursor {
  epoch: string;
  updateId: number;
}

export interface Logger {
  debug?(message: string, ...details: unknown[]): void;
  info?(message: string, ...details: unknown[]): void;
  warn?(message: string, ...details: unknown[]): void;
  error?(message: string, ...details: unknown[]): void;
}

export interface GatewayClientOptions {
  /** The gateway's socket address, e.g. `wss://gw.example/bot/ws`. */
  url?: string;
  /** Several addresses (workers, regions), tried in turn on each reconnect. */
  urls?: readonly string[];
  /** The bot token, `bot_<id>:<secret>`. */
  token: string;
  /** The consumer name (its own committed cursor); `"default"`. */
  consumer?: string;
  /** `[i, n]`: only the updates of chats with `chat_id % n == i` (§9). */
  shard?: [number, number];
  encoding?: Encoding;
  /** Update types to receive; all when absent or empty. */
  allowedUpdates?: readonly UpdateType[];
  /** What the server does when the position is not in the log (§8); `"fail"`. */
  onGap?: GapPolicy;
  /** Start after this position instead of the consumer's committed cursor. */
  cursor?: Cursor | { epoch: string; update_id: string | number } | [string, string | number];
  /** Ack each update once the loop asks for the next one; `true`. */
  autoAck?: boolean;
  /** Seconds: the longest wait between reconnect attempts; 10. */
  maxBackoff?: number;
  /** Seconds: the first reconnect waits up to this, doubling per attempt; 0.5. */
  backoffBase?: number;
  /** Updates buffered before the client stops reading the socket; 1000. */
  queueSize?: number;
  /** Send the token in `identify` rather than the `Authorization` header (forced in browsers). */
  tokenInIdentify?: boolean;
  /** A browser-style WebSocket class to use instead of the `ws` package. */
  webSocket?: WebSocketConstructor;
  /** How long acks are coalesced, in ms; 20. */
  ackDelayMs?: number;
  /** Upgrade plus `hello`, in ms; 10 000. */
  connectTimeoutMs?: number;
  /** Largest server message accepted, in bytes; 16 MiB. */
  maxMessageBytes?: number;
  logger?: Logger;
  /** Every frame in (`"in"`) and out (`"out"`), with the connection's id: for debugging and tests. */
  trace?: (direction: "in" | "out", frame: ClientFrame | ServerFrame, connectionId: string) => void;
}

export interface RequestOptions {
  /** The call's `Idempotency-Key`; a random one when absent. */
  idempotencyKey?: string;
}

/** The `cursor` option in its one form. */
export function normaliseCursor(cursor: GatewayClientOptions["cursor"]): Cursor | null {
  if (cursor === undefined || cursor === null) return null;
  if (Array.isArray(cursor)) return { epoch: cursor[0], updateId: idNumber(cursor[1]) };
  if ("updateId" in cursor) return { epoch: cursor.epoch, updateId: idNumber(cursor.updateId) };
  return { epoch: cursor.epoch, updateId: idNumber(cursor.update_id) };
}
