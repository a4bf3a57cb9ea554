/**
 * Errors of the client:
 *
 *     Error
 *     ├── GatewayError          the gateway ended the session for good (terminal close)
 *     │   ├── GapError          4504: the cursor is not in the log and on_gap is "fail"
 *     │   └── UpgradeRefused    the HTTP upgrade was refused (401, 403, 412 end the client)
 *     └── RequestError          a request over the socket answered ok: false
 *
 * Resumable closes and refusals are never thrown: the client reconnects.
 */

import type { ErrorEnvelope, GapFrame } from "./frames.js";

/** The server closed the connection with a terminal code; the iteration ends with it. */
export class GatewayError extends Error {
  override name = "GatewayError";
  /** The WebSocket close code (a 45xx code for a refused upgrade, see UpgradeRefused). */
  readonly code: number;
  readonly reason: string;

  constructor(code: number, reason: string) {
    super(`gateway closed the connection: ${code} ${reason}`);
    this.code = code;
    this.reason = reason;
  }
}

/** The cursor is no longer in the log and the gap policy is `fail` (close 4504). */
export class GapError extends GatewayError {
  override name = "GapError";
  /** The `gap` frame that preceded the close, if it arrived. */
  readonly gap: GapFrame | null;

  constructor(code: number, reason: string, gap: GapFrame | null) {
    super(code, reason);
    this.gap = gap;
  }
}

/**
 * The gateway answered the upgrade with an HTTP error instead of 101 (§2).
 * `code` maps it to the close code with the same meaning (401/403 → 4501,
 * 412 → 4505); `status` and `apiCode` are the HTTP status and the envelope's code.
 */
export class UpgradeRefused extends GatewayError {
  override name = "UpgradeRefused";
  readonly status: number;
  readonly apiCode: string;
  readonly description: string;
  /** The `Retry-After` the refusal carried, in ms, or null. */
  readonly retryAfterMs: number | null;

  constructor(status: number, apiCode: string, description: string, retryAfterMs: number | null) {
    super(status === 412 ? 4505 : status === 401 || status === 403 ? 4501 : status, `${status} ${apiCode}: ${description}`);
    this.status = status;
    this.apiCode = apiCode;
    this.description = description;
    this.retryAfterMs = retryAfterMs;
  }
}

/** A Bot API call over the socket failed: the REST error envelope, as `error`. */
export class RequestError extends Error {
  override name = "RequestError";
  /** The HTTP status the REST call would have returned (`error_code`). */
  readonly errorCode: number;
  /** UPPER_SNAKE, e.g. `CHAT_FORBIDDEN`. */
  readonly code: string;
  readonly description: string;
  readonly parameters: ErrorEnvelope["parameters"];
  readonly method: string;
  /** The envelope as the server sent it (`error_code`, `code`, `description`, ...). */
  readonly error: ErrorEnvelope;

  constructor(method: string, error: ErrorEnvelope) {
    super(`${method}: ${error.error_code} ${error.code}: ${error.description}`);
    this.method = method;
    this.error = error;
    this.errorCode = error.error_code;
    this.code = error.code;
    this.description = error.description;
    this.parameters = error.parameters;
  }
}
