/** One connection of a GatewayClient and what the client learnt from it. */

import type { CloseFrame, GapFrame, HelloFrame, ReadyFrame, Update } from "./frames.js";
import { FrameBudget } from "./policy.js";
import type { Socket } from "./transport.js";

/** An update received and not yet taken by the application, with its epoch. */
export interface Queued {
  update: Update;
  epoch: string;
  updateId: number;
}

/** A request over the socket, waiting for a connection or for its result. */
export interface PendingRequest {
  id: string;
  method: string;
  params: Record<string, unknown>;
  idempotencyKey: string;
  sends: number;
  link: Link | null;
  resolve(value: unknown): void;
  reject(error: Error): void;
}

/** How a connection ended, for the connection loop. */
export type LinkEnd =
  | { kind: "reconnect" }
  | { kind: "closed"; code: number; reason: string; retryAfterMs: number | null; gap: GapFrame | null };

/** One connection and what the client learnt from it. */
export class Link {
  readonly serial: number;
  readonly url: string;
  socket: Socket | null = null;
  hello: HelloFrame | null = null;
  connectionId: string;
  ready: ReadyFrame | null = null;
  readyAt = 0;
  epoch: string | null = null;
  high = 0;
  sent = 0;
  /** The client opened this connection's replacement (after `reconnect`). */
  superseded = false;
  closed = false;
  budget: FrameBudget;
  closeFrame: CloseFrame | null = null;
  lastGap: GapFrame | null = null;
  readonly pending = new Map<string, PendingRequest>();
  heartbeatTimer: ReturnType<typeof setTimeout> | null = null;
  watchdogTimer: ReturnType<typeof setTimeout> | null = null;
  helloTimer: ReturnType<typeof setTimeout> | null = null;
  readonly ended: Promise<LinkEnd>;
  private endResolver!: (end: LinkEnd) => void;
  private endResolved = false;
  readonly gone: Promise<void>;
  goneResolver!: () => void;

  constructor(serial: number, url: string, now: number) {
    this.serial = serial;
    this.url = url;
    this.connectionId = `#${serial}`;
    this.budget = new FrameBudget(50, 100, now);
    this.ended = new Promise((resolve) => (this.endResolver = resolve));
    this.gone = new Promise((resolve) => (this.goneResolver = resolve));
  }

  end(end: LinkEnd): void {
    if (!this.endResolved) {
      this.endResolved = true;
      this.endResolver(end);
    }
  }

  get heartbeatMs(): number {
    return this.hello?.heartbeat_interval_ms ?? 30_000;
  }
}
