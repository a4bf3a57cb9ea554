/**
 * `@botgw/agent`: the agent client of the botgw gateway protocol (docs/protocol.md).
 */

export { GatewayClient } from "./client.js";
export type { Cursor, GatewayClientOptions, Logger, RequestOptions } from "./options.js";
export { GapError, GatewayError, RequestError, UpgradeRefused } from "./errors.js";
export { ConnectError } from "./transport.js";
export type { WebSocketConstructor, WebSocketLike } from "./transport.js";
export * from "./frames.js";
export {
  ackFor,
  backoffDelayMs,
  closeAction,
  Deduplicator,
  endsClient,
  FrameBudget,
  HEALTHY_AFTER_MS,
  refusalIsTerminal,
  retryAfterMs,
} from "./policy.js";
export type { AckMarks, BackoffOptions, CloseAction } from "./policy.js";
