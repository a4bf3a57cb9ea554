/**
 * The wire format of the gateway protocol, version 1 (docs/protocol.md): the
 * frames in both directions, the close codes, and the codec (a text message is
 * JSON, a binary one msgpack, whatever encoding was chosen).
 *
 * The types follow the spec field by field; `test/unit/schema.test.ts` checks the
 * frames this client builds against docs/protocol.schema.json when it exists.
 * Every id the server writes is a decimal string (ids are integers below 2^53).
 */

import { decode as msgpackDecode, encode as msgpackEncode } from "@msgpack/msgpack";

/** An id as the server writes it: 1-16 decimal digits. */
export type Id = string;

export type Encoding = "json" | "msgpack";
export type GapPolicy = "fail" | "oldest" | "newest";
export type GapReason = "retention" | "epoch" | "tail_lost";
export type UpdateType =
  | "message"
  | "edited_message"
  | "callback_query"
  | "my_chat_member"
  | "message_reaction"
  | "poll"
  | "poll_answer";

export const UPDATE_TYPES: readonly UpdateType[] = [
  "message",
  "edited_message",
  "callback_query",
  "my_chat_member",
  "message_reaction",
  "poll",
  "poll_answer",
];

/** A position in a bot's update log: the last update consumed, in one epoch. */
export interface WireCursor {
  epoch: string;
  update_id: Id;
}

// --- updates (Telegram-shaped, ids as strings) ---------------------------------

export interface User {
  id: Id;
  is_bot: boolean;
  first_name: string;
  last_name?: string;
  username?: string;
  [field: string]: unknown;
}

export interface Chat {
  id: Id;
  type: "private" | "group" | "supergroup" | "channel";
  title?: string;
  username?: string;
  first_name?: string;
  [field: string]: unknown;
}

export interface MessageEntity {
  type: string;
  offset: number;
  length: number;
  [field: string]: unknown;
}

export interface Message {
  message_id: Id;
  from?: User;
  chat: Chat;
  date: number;
  text?: string;
  entities?: MessageEntity[];
  [field: string]: unknown;
}

export interface CallbackQuery {
  id: string;
  from: User;
  message?: Message;
  chat_instance: string;
  data?: string;
  [field: string]: unknown;
}

/** One update: `update_id` plus exactly one of the update-type fields. */
export interface Update {
  update_id: Id;
  message?: Message;
  edited_message?: Message;
  callback_query?: CallbackQuery;
  my_chat_member?: Record<string, unknown>;
  message_reaction?: Record<string, unknown>;
  poll?: Record<string, unknown>;
  poll_answer?: Record<string, unknown>;
}

// --- client -> server ----------------------------------------------------------

export interface IdentifyFrame {
  op: "identify" | "resume";
  token?: string;
  cursor?: WireCursor | null;
  consumer?: string;
  shard?: [number, number];
  encoding?: Encoding;
  allowed_updates?: UpdateType[] | null;
  on_gap?: GapPolicy;
}

export interface AckFrame {
  op: "ack";
  update_id: Id;
}

export interface HeartbeatFrame {
  op: "heartbeat";
  ack?: Id;
}

export interface RequestFrame {
  op: "request";
  id: string;
  method: string;
  params?: Record<string, unknown>;
  idempotency_key?: string;
}

export type ClientFrame = IdentifyFrame | AckFrame | HeartbeatFrame | RequestFrame;

// --- server -> client ----------------------------------------------------------

export interface HelloLimits {
  identify_timeout_ms: number;
  max_frame_bytes: number;
  max_frames_per_s: number;
  frame_burst: number;
  max_pending_requests: number;
  max_connections_per_bot: number;
  identify_per_minute: number;
  [field: string]: unknown;
}

export interface HelloFrame {
  op: "hello";
  v: number;
  connection_id: string;
  heartbeat_interval_ms: number;
  retention_s: number;
  auth_required: boolean;
  limits: HelloLimits;
  [field: string]: unknown;
}

export interface ReadyFrame {
  op: "ready";
  bot: { id: Id; username: string };
  consumer: string;
  shard: [number, number];
  epoch: string;
  cursor: WireCursor;
  head: Id;
  resumed: boolean;
}

export interface UpdatesFrame {
  op: "updates";
  updates: Update[];
}

export interface HeartbeatAckFrame {
  op: "heartbeat_ack";
  acked: Id | null;
}

/** The REST error envelope without its `ok` (docs/protocol.md §6.5). */
export interface ErrorEnvelope {
  error_code: number;
  code: string;
  description: string;
  parameters?: { retry_after?: number; [field: string]: unknown };
}

export type ResultFrame =
  | { op: "result"; id: string; ok: true; result: unknown }
  | { op: "result"; id: string; ok: false; error: ErrorEnvelope };

export interface GapFrame {
  op: "gap";
  reason: GapReason;
  oldest: Id | null;
  newest: Id | null;
  epoch: string;
  action: GapPolicy;
}

export interface ReconnectFrame {
  op: "reconnect";
  reason: string;
  deadline_ms: number;
}

export interface CloseFrame {
  op: "close";
  code: number;
  reason: string;
  resumable: boolean;
  retry_after_ms: number | null;
}

export type ServerFrame =
  | HelloFrame
  | ReadyFrame
  | UpdatesFrame
  | HeartbeatAckFrame
  | ResultFrame
  | GapFrame
  | ReconnectFrame
  | CloseFrame;

// --- close codes (docs/protocol.md §15) ------------------------------------------

export const CloseCode = {
  NORMAL: 1000,
  GOING_AWAY: 1001,
  ABNORMAL: 1006,
  INVALID_PAYLOAD: 1007,
  MESSAGE_TOO_BIG: 1009,
  SERVICE_RESTART: 1012,
  INTERNAL_ERROR: 4000,
  HEARTBEAT_TIMEOUT: 4001,
  IDENTIFY_TIMEOUT: 4002,
  RATE_LIMITED: 4003,
  TOO_MANY_CONNECTIONS: 4004,
  IDENTIFY_RATE_LIMITED: 4005,
  BACKEND_UNAVAILABLE: 4006,
  BAD_FRAME: 4500,
  AUTH_FAILED: 4501,
  TAKEN_OVER: 4502,
  FRAME_TOO_LARGE: 4503,
  CURSOR_GAP: 4504,
  BOT_INACTIVE: 4505,
  INVALID_ACK: 4506,
} as const;

// --- builders: every frame this client sends is made here -----------------------

export interface IdentifyOptions {
  token?: string;
  cursor?: { epoch: string; updateId: number } | null;
  consumer: string;
  shard?: [number, number] | null;
  encoding: Encoding;
  allowedUpdates?: readonly UpdateType[] | null;
  onGap: GapPolicy;
}

export function identifyFrame(options: IdentifyOptions): IdentifyFrame {
  const frame: IdentifyFrame = {
    op: "identify",
    consumer: options.consumer,
    encoding: options.encoding,
    on_gap: options.onGap,
  };
  if (options.token !== undefined) frame.token = options.token;
  if (options.cursor) {
    frame.cursor = { epoch: options.cursor.epoch, update_id: String(options.cursor.updateId) };
  }
  if (options.shard) frame.shard = [options.shard[0], options.shard[1]];
  if (options.allowedUpdates && options.allowedUpdates.length > 0) {
    frame.allowed_updates = [...options.allowedUpdates];
  }
  return frame;
}

export function ackFrame(updateId: number): AckFrame {
  return { op: "ack", update_id: String(updateId) };
}

export function heartbeatFrame(ack?: number | null): HeartbeatFrame {
  return ack == null ? { op: "heartbeat" } : { op: "heartbeat", ack: String(ack) };
}

export function requestFrame(
  id: string,
  method: string,
  params: Record<string, unknown>,
  idempotencyKey?: string,
): RequestFrame {
  const frame: RequestFrame = { op: "request", id, method, params };
  if (idempotencyKey !== undefined) frame.idempotency_key = idempotencyKey;
  return frame;
}

// --- codec ----------------------------------------------------------------------

/** A frame as a message: JSON text, or msgpack bytes (strings as msgpack str). */
export function encodeFrame(frame: ClientFrame, encoding: Encoding): string | Uint8Array {
  return encoding === "msgpack" ? msgpackEncode(frame) : JSON.stringify(frame);
}

/** The size of an encoded message as the server counts it (UTF-8 bytes of text). */
export function messageBytes(data: string | Uint8Array): number {
  return typeof data === "string" ? new TextEncoder().encode(data).length : data.byteLength;
}

export class FrameError extends Error {
  override name = "FrameError";
}

/**
 * A server message as a frame, by message kind (text is JSON, binary msgpack),
 * which is always right whatever encoding was chosen (§3).
 */
export function decodeFrame(data: string | Uint8Array): ServerFrame {
  let value: unknown;
  try {
    value = typeof data === "string" ? JSON.parse(data) : msgpackDecode(data);
  } catch (err) {
    throw new FrameError(`undecodable ${typeof data === "string" ? "JSON" : "msgpack"} frame: ${String(err)}`);
  }
  if (typeof value !== "object" || value === null || Array.isArray(value)) {
    throw new FrameError("the server sent a frame that is not an object");
  }
  if (typeof (value as { op?: unknown }).op !== "string") {
    throw new FrameError("the server sent a frame without a string op");
  }
  return value as ServerFrame;
}

/** An id (decimal string or integer) as a number; ids are below 2^53. */
export function idNumber(value: Id | number | null | undefined): number {
  if (value === null || value === undefined) return 0;
  const number = typeof value === "number" ? value : Number(value);
  if (!Number.isSafeInteger(number) || number < 0) {
    throw new FrameError(`not an update id: ${String(value)}`);
  }
  return number;
}
