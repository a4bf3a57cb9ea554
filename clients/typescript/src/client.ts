/**
 * The agent client for the gateway protocol (docs/protocol.md), the counterpart of
 * the Python reference client `gateway/client.py`:
 *
 *     const client = new GatewayClient({ url, token });
 *     for await (const update of client) {
 *       await handle(update); // acked once the loop asks for the next one
 *     }
 *
 * It reconnects by itself with jittered exponential backoff and resumes after
 * the last update the application processed, so a dropped socket, a crashed
 * worker or a deploy loses nothing; updates that arrive twice (a replay after a
 * reconnect, or the overlap of the old and new connection during a drain) are
 * dropped by `update_id`. A terminal close ends the iteration with a
 * `GatewayError` (`GapError` for 4504).
 */

import { GapError, GatewayError, RequestError, UpgradeRefused } from "./errors.js";
import {
  CloseCode,
  decodeFrame,
  encodeFrame,
  ackFrame,
  heartbeatFrame,
  identifyFrame,
  idNumber,
  messageBytes,
  requestFrame,
  type ClientFrame,
  type Encoding,
  type ErrorEnvelope,
  type GapFrame,
  type GapPolicy,
  type HelloFrame,
  type ReadyFrame,
  type ResultFrame,
  type ServerFrame,
  type Update,
  type UpdateType,
} from "./frames.js";
import {
  ackFor,
  backoffDelayMs,
  closeAction,
  Deduplicator,
  endsClient,
  FrameBudget,
  HEALTHY_AFTER_MS,
  refusalIsTerminal,
} from "./policy.js";
import { Link, type PendingRequest, type Queued } from "./link.js";
import { normaliseCursor, type Cursor, type GatewayClientOptions, type Logger, type RequestOptions } from "./options.js";
import { UpdateQueue } from "./queue.js";
import { randomHex } from "./random.js";
import { canSendHeaders, openSocket } from "./transport.js";

const END_OF_SESSION = "the client was closed";

/** An auto-resuming stream of updates for one bot (consumer, shard). */
export class GatewayClient implements AsyncIterable<Update> {
  readonly urls: readonly string[];
  readonly consumer: string;
  readonly shard: [number, number] | null;
  readonly encoding: Encoding;
  readonly allowedUpdates: readonly UpdateType[] | null;
  readonly onGap: GapPolicy;
  readonly autoAck: boolean;

  /** Connections opened after the first one (resumes, drains). */
  reconnects = 0;
  /** Every `gap` frame the server sent, in order. */
  readonly gaps: GapFrame[] = [];

  private readonly token: string;
  private readonly options: GatewayClientOptions;
  private readonly log: Logger;
  private readonly maxBackoff: number;
  private readonly backoffBase: number;
  private readonly queueSize: number;
  private readonly ackDelayMs: number;
  private readonly connectTimeoutMs: number;
  private readonly headerAuth: boolean;

  private readonly dedup: Deduplicator;
  private position: Cursor | null;
  private readonly queue = new UpdateQueue<Queued>();
  private yielded: Queued | null = null;
  private readonly links = new Set<Link>();
  private current: Link | null = null;
  private nextUrl = 0;
  private serial = 0;
  private outbox: PendingRequest[] = [];
  private state: "idle" | "running" | "closed" | "failed" = "idle";
  private failure: Error | null = null;
  private runner: Promise<void> | null = null;
  private wake: (() => void) | null = null;
  private ackTimer: ReturnType<typeof setTimeout> | null = null;
  private pumpTimer: ReturnType<typeof setTimeout> | null = null;
  private paused = false;

  constructor(options: GatewayClientOptions) {
    const urls = options.urls ?? (options.url !== undefined ? [options.url] : []);
    if (urls.length === 0) throw new TypeError("GatewayClient needs url or urls");
    if (!options.token) throw new TypeError("GatewayClient needs a token");
    this.options = options;
    this.urls = [...urls];
    this.token = options.token;
    this.consumer = options.consumer ?? "default";
    this.shard = options.shard ?? null;
    this.encoding = options.encoding ?? "json";
    this.allowedUpdates = options.allowedUpdates && options.allowedUpdates.length > 0 ? [...options.allowedUpdates] : null;
    this.onGap = options.onGap ?? "fail";
    this.autoAck = options.autoAck ?? true;
    this.maxBackoff = options.maxBackoff ?? 10;
    this.backoffBase = options.backoffBase ?? 0.5;
    this.queueSize = Math.max(1, options.queueSize ?? 1000);
    this.ackDelayMs = options.ackDelayMs ?? 20;
    this.connectTimeoutMs = options.connectTimeoutMs ?? 10_000;
    this.headerAuth = !options.tokenInIdentify && canSendHeaders(options);
    this.log = options.logger ?? {};
    this.position = normaliseCursor(options.cursor);
    this.dedup = new Deduplicator(this.position?.epoch ?? null, this.position?.updateId ?? 0);
  }

  // -- public API -------------------------------------------------------------

  /** The last update processed (acked, or marked by the loop), to persist and pass as `cursor`. */
  get cursor(): Cursor | null {
    return this.position === null ? null : { ...this.position };
  }

  /** Updates received twice on the wire and not handed to the application. */
  get duplicatesDropped(): number {
    return this.dedup.dropped;
  }

  /** The `ready` frame of the connection in use, or null while there is none. */
  get lastReady(): ReadyFrame | null {
    return this.current?.ready ?? null;
  }

  /** The server's id of the connection in use (quote it in bug reports). */
  get connectionId(): string | null {
    return this.current?.connectionId ?? null;
  }

  /** Start connecting (iterating and `request` start it too). */
  start(): void {
    if (this.state !== "idle") return;
    this.state = "running";
    this.runner = this.supervise().catch((error: unknown) => {
      // a defect must end the iteration, not hang it
      this.log.error?.("gateway client failed", error);
      this.fail(error instanceof Error ? error : new Error(String(error)));
    });
  }

  [Symbol.asyncIterator](): AsyncIterator<Update> {
    this.start();
    return {
      next: async (): Promise<IteratorResult<Update>> => {
        // the loop body (the handler) returned: the previous update is processed
        const previous = this.yielded;
        this.yielded = null;
        if (previous !== null && this.autoAck) this.markProcessed(previous.epoch, previous.updateId);
        const taken = await this.queue.take();
        this.resumeReading();
        if (taken.done) return { done: true, value: undefined };
        this.yielded = taken.value;
        return { done: false, value: taken.value.update };
      },
      // `break` leaves the current update unacked; call ack() first if it counts
      return: async (): Promise<IteratorResult<Update>> => {
        this.yielded = null;
        return { done: true, value: undefined };
      },
    };
  }

  /** Mark everything up to `updateId` as processed; the ack is sent within ~`ackDelayMs`. */
  ack(updateId: number | string): void {
    const epoch = this.dedup.epoch;
    if (epoch !== null) this.markProcessed(epoch, idNumber(updateId));
  }

  /**
   * Call a Bot API method over the socket (§13). Resolves with the method's
   * result; rejects with `RequestError` for an error result, `GatewayError` if the
   * client ends first. A request whose connection closes before its result is
   * sent again on the next connection with the same idempotency key, so it takes
   * effect once.
   */
  request<T = unknown>(method: string, params: Record<string, unknown> = {}, options: RequestOptions = {}): Promise<T> {
    if (this.failure !== null) return Promise.reject(this.failure);
    if (this.state === "closed") return Promise.reject(new GatewayError(CloseCode.NORMAL, END_OF_SESSION));
    this.start();
    return new Promise<T>((resolve, reject) => {
      this.outbox.push({
        id: randomHex(8),
        method,
        params,
        idempotencyKey: options.idempotencyKey ?? `ts-${randomHex(16)}`,
        sends: 0,
        link: null,
        resolve: resolve as (value: unknown) => void,
        reject,
      });
      this.pumpRequests();
    });
  }

  /** Send the last acks, close every connection and end the iteration (updates not yet taken are dropped, unacked). */
  async close(): Promise<void> {
    if (this.state === "closed") return;
    const wasFailed = this.state === "failed";
    this.state = "closed";
    this.wake?.();
    this.flushAcks(true);
    this.clearClientTimers();
    const gone: Promise<void>[] = [];
    for (const link of [...this.links]) {
      gone.push(link.gone);
      this.stopLink(link);
      link.socket?.close(CloseCode.NORMAL, "client closed");
    }
    const error = new GatewayError(CloseCode.NORMAL, END_OF_SESSION);
    this.rejectRequests(error);
    // updates not taken yet stay unacked: they come again on the next start
    this.queue.clear();
    if (!wasFailed) this.queue.end();
    let timer: ReturnType<typeof setTimeout> | undefined;
    await Promise.race([
      Promise.all(gone),
      new Promise<void>((resolve) => (timer = setTimeout(resolve, 2000))),
    ]);
    clearTimeout(timer);
    for (const link of [...this.links]) {
      link.socket?.terminate();
      this.forget(link);
    }
    await this.runner;
  }

  // -- the connection loop ----------------------------------------------------

  private get running(): boolean {
    return this.state === "running";
  }

  private async supervise(): Promise<void> {
    let attempt = 0;
    let delayMs = 0;
    while (this.running) {
      if (delayMs > 0) {
        this.log.info?.(`reconnecting in ${delayMs} ms`);
        await this.sleep(delayMs);
        if (!this.running) return;
      }
      const url = this.urls[this.nextUrl % this.urls.length] as string;
      this.nextUrl += 1;
      let link: Link;
      try {
        link = await this.connect(url);
      } catch (error) {
        if (error instanceof UpgradeRefused && refusalIsTerminal(error.status)) {
          this.fail(error);
          return;
        }
        const floor = error instanceof UpgradeRefused ? (error.retryAfterMs ?? 0) : 0;
        delayMs = backoffDelayMs(attempt, this.backoff, Math.random, floor);
        attempt += 1;
        this.log.info?.(`connecting to ${url} failed: ${String(error)}`);
        continue;
      }
      const end = await link.ended;
      if (!this.running) return;
      if (end.kind === "reconnect") {
        this.reconnects += 1;
        // the worker is draining: connect anew at once, keep reading the old one (§11)
        attempt = 0;
        delayMs = 0;
        continue;
      }
      if (endsClient(end.code, false)) {
        this.fail(
          end.code === CloseCode.CURSOR_GAP
            ? new GapError(end.code, end.reason, end.gap)
            : new GatewayError(end.code, end.reason),
        );
        return;
      }
      this.reconnects += 1;
      if (link.readyAt > 0 && Date.now() - link.readyAt >= HEALTHY_AFTER_MS) attempt = 0;
      if (closeAction(end.code) === "immediate") {
        delayMs = 0;
      } else {
        delayMs = backoffDelayMs(attempt, this.backoff, Math.random, end.retryAfterMs ?? 0);
        attempt += 1;
      }
      this.log.info?.(`connection ${link.connectionId} closed ${end.code} ${end.reason}`);
    }
  }

  private get backoff(): { base: number; max: number } {
    return { base: this.backoffBase, max: this.maxBackoff };
  }

  private sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        this.wake = null;
        resolve();
      }, ms);
      this.wake = () => {
        clearTimeout(timer);
        this.wake = null;
        resolve();
      };
    });
  }

  /** Open a socket; the rest of the session happens in its handlers. */
  private async connect(url: string): Promise<Link> {
    this.serial += 1;
    const link = new Link(this.serial, url, Date.now());
    const headers: Record<string, string> = this.headerAuth ? { Authorization: `Bot ${this.token}` } : {};
    const socket = await openSocket(
      {
        url,
        headers,
        timeoutMs: this.connectTimeoutMs,
        maxPayload: this.options.maxMessageBytes ?? 16 * 1024 * 1024,
        ...(this.options.webSocket !== undefined ? { webSocket: this.options.webSocket } : {}),
      },
      {
        open: (opened) => {
          link.socket = opened;
          this.links.add(link);
        },
        message: (data) => this.onMessage(link, data),
        close: (code, reason) => this.onClose(link, code, reason),
      },
    );
    if (!this.running) {
      this.stopLink(link);
      socket.close(CloseCode.NORMAL, "client closed");
      this.forget(link);
      throw new GatewayError(CloseCode.NORMAL, END_OF_SESSION);
    }
    link.helloTimer = setTimeout(() => {
      if (link.hello === null) this.drop(link, `no hello within ${this.connectTimeoutMs} ms`);
    }, this.connectTimeoutMs);
    return link;
  }

  /** Give up on a connection that looks dead: drop it and resume. */
  private drop(link: Link, why: string): void {
    if (link.closed) return;
    this.log.warn?.(`dropping connection ${link.connectionId}: ${why}`);
    link.socket?.terminate();
    this.onClose(link, CloseCode.ABNORMAL, why);
  }

  // -- frames in --------------------------------------------------------------

  private onMessage(link: Link, data: string | Uint8Array): void {
    if (link.closed) return;
    let frame: ServerFrame;
    try {
      frame = decodeFrame(data);
    } catch (error) {
      this.drop(link, String(error));
      return;
    }
    this.options.trace?.("in", frame, link.connectionId);
    // any frame shows the connection is alive (§10)
    if (link.watchdogTimer !== null) {
      clearTimeout(link.watchdogTimer);
      link.watchdogTimer = null;
    }
    switch (frame.op) {
      case "hello":
        this.onHello(link, frame);
        break;
      case "ready":
        this.onReady(link, frame);
        break;
      case "updates":
        this.onUpdates(link, frame.updates);
        break;
      case "result":
        this.onResult(link, frame);
        break;
      case "gap":
        this.onGapFrame(link, frame);
        break;
      case "reconnect":
        this.log.info?.(`connection ${link.connectionId} is draining (${frame.deadline_ms} ms)`);
        if (!link.superseded) {
          link.superseded = true;
          link.end({ kind: "reconnect" });
        }
        break;
      case "close":
        link.closeFrame = frame;
        break;
      case "heartbeat_ack":
        break;
      default:
        break; // an op of a later protocol version
    }
  }

  private onHello(link: Link, hello: HelloFrame): void {
    if (link.hello !== null) return;
    link.hello = hello;
    link.connectionId = hello.connection_id;
    if (link.helloTimer !== null) clearTimeout(link.helloTimer);
    link.helloTimer = null;
    link.budget = new FrameBudget(
      hello.limits?.max_frames_per_s ?? 50,
      hello.limits?.frame_burst ?? 100,
      Date.now(),
    );
    const resumeAt = this.position;
    const identify = identifyFrame({
      consumer: this.consumer,
      encoding: this.encoding,
      onGap: this.onGap,
      cursor: resumeAt,
      shard: this.shard,
      allowedUpdates: this.allowedUpdates,
      ...(!this.headerAuth || hello.auth_required ? { token: this.token } : {}),
    });
    // identify goes as JSON text; the server answers in the chosen encoding
    link.budget.force(Date.now());
    this.send(link, identify, "json");
    this.scheduleHeartbeat(link);
  }

  private onReady(link: Link, ready: ReadyFrame): void {
    const start = idNumber(ready.cursor.update_id);
    link.ready = ready;
    link.readyAt = Date.now();
    link.epoch = ready.epoch;
    link.high = start;
    link.sent = start;
    // a first start or a new epoch forgets the ids seen: they mean nothing here
    if (this.dedup.epoch !== ready.epoch) this.dedup.reset(ready.epoch, start);
    else this.dedup.startAt(ready.epoch, start);
    if (this.position === null || this.position.epoch !== ready.epoch) {
      this.position = { epoch: ready.epoch, updateId: start };
    } else if (start > this.position.updateId) {
      this.position = { epoch: ready.epoch, updateId: start }; // a gap moved the start forward
    }
    if (this.paused) link.socket?.pause();
    if (!link.closed && (this.current === null || this.current.serial < link.serial)) this.current = link;
    this.log.info?.(`connection ${link.connectionId} ready after ${ready.cursor.update_id} (resumed: ${ready.resumed})`);
    this.pumpRequests();
    this.scheduleAck();
  }

  private onUpdates(link: Link, updates: Update[]): void {
    const epoch = link.epoch;
    if (epoch === null) return; // updates only come after ready
    for (const update of updates) {
      const updateId = idNumber(update.update_id);
      if (updateId > link.high) link.high = updateId;
      if (this.dedup.accept(epoch, updateId)) this.queue.push({ update, epoch, updateId });
    }
    if (!this.paused && this.queue.length >= this.queueSize) this.pauseReading();
    // a connection replaying what an older one delivered can now take a higher ack
    if (ackFor(link, this.position) !== null) this.scheduleAck();
  }

  private onGapFrame(link: Link, gap: GapFrame): void {
    this.gaps.push(gap);
    link.lastGap = gap;
    this.log.warn?.(`gap in the update log (${gap.reason}, action ${gap.action})`, gap);
    if (gap.action === "fail" || link.ready === null || link.epoch === gap.epoch) return;
    // a gap while delivering, into another epoch: the marks start over there (§8)
    const position =
      gap.action === "oldest"
        ? gap.oldest === null
          ? 0
          : Math.max(idNumber(gap.oldest) - 1, 0)
        : idNumber(gap.newest);
    link.epoch = gap.epoch;
    link.high = position;
    link.sent = position;
    this.dedup.reset(gap.epoch, position);
    this.position = { epoch: gap.epoch, updateId: position };
  }

  private onResult(link: Link, frame: ResultFrame): void {
    const request = link.pending.get(frame.id);
    if (request === undefined) return;
    link.pending.delete(frame.id);
    request.link = null;
    if (frame.ok) {
      request.resolve(frame.result);
    } else {
      const error: ErrorEnvelope = frame.error ?? { error_code: 500, code: "INTERNAL_ERROR", description: "no error" };
      if (error.code === "IDEMPOTENCY_KEY_IN_USE" && request.sends > 1) {
        // our own earlier send of this request is still running: wait for its result
        const waitMs = Math.max(100, (error.parameters?.retry_after ?? 1) * 1000);
        setTimeout(() => {
          if (this.state === "closed" || this.failure !== null) return;
          this.outbox.unshift(request);
          this.pumpRequests();
        }, waitMs);
      } else {
        request.reject(new RequestError(request.method, error));
      }
    }
    this.pumpRequests();
  }

  // -- closes -----------------------------------------------------------------

  private onClose(link: Link, wireCode: number, wireReason: string): void {
    if (link.closed) {
      link.goneResolver();
      return;
    }
    const frame = link.closeFrame;
    // a close frame that arrived is the truth when the socket then only dropped
    const code = wireCode === CloseCode.ABNORMAL && frame !== null ? frame.code : wireCode;
    const reason = wireReason || frame?.reason || "";
    link.end({
      kind: "closed",
      code,
      reason,
      retryAfterMs: frame?.retry_after_ms ?? null,
      gap: link.lastGap,
    });
    this.stopLink(link);
    this.forget(link);
    // requests that got no result go again on the next connection (§13)
    const orphans = [...link.pending.values()];
    link.pending.clear();
    for (const request of orphans) request.link = null;
    this.outbox = [...orphans, ...this.outbox];
    if (link.superseded) {
      this.log.info?.(`old connection ${link.connectionId} closed ${code} ${reason}`);
    }
    this.pumpRequests();
  }

  /** Stop a connection's timers and mark it closed (by the client: close, fail). */
  private stopLink(link: Link): void {
    link.closed = true;
    link.end({ kind: "closed", code: CloseCode.NORMAL, reason: END_OF_SESSION, retryAfterMs: null, gap: null });
    for (const timer of [link.heartbeatTimer, link.watchdogTimer, link.helloTimer]) {
      if (timer !== null) clearTimeout(timer);
    }
    link.heartbeatTimer = link.watchdogTimer = link.helloTimer = null;
  }

  private forget(link: Link): void {
    this.links.delete(link);
    link.goneResolver();
    if (this.current === link) {
      let newest: Link | null = null;
      for (const other of this.links) {
        if (other.ready !== null && !other.closed && (newest === null || other.serial > newest.serial)) newest = other;
      }
      this.current = newest;
    }
  }

  private fail(error: Error): void {
    if (this.state !== "running") return;
    this.state = "failed";
    this.failure = error;
    this.log.error?.(`gateway client stopped: ${error.message}`);
    this.clearClientTimers();
    for (const link of [...this.links]) {
      this.stopLink(link);
      link.socket?.close(CloseCode.NORMAL, "client stopped");
      this.forget(link);
    }
    this.rejectRequests(error);
    this.queue.fail(error);
  }

  private rejectRequests(error: Error): void {
    const requests = [...this.outbox];
    this.outbox = [];
    for (const link of this.links) {
      requests.push(...link.pending.values());
      link.pending.clear();
    }
    for (const request of requests) request.reject(error);
  }

  private clearClientTimers(): void {
    if (this.ackTimer !== null) clearTimeout(this.ackTimer);
    if (this.pumpTimer !== null) clearTimeout(this.pumpTimer);
    this.ackTimer = this.pumpTimer = null;
  }

  // -- frames out -------------------------------------------------------------

  private send(link: Link, frame: ClientFrame, encoding: Encoding = this.encoding): boolean {
    if (link.closed || link.socket === null) return false;
    this.options.trace?.("out", frame, link.connectionId);
    try {
      link.socket.send(encodeFrame(frame, encoding));
      return true;
    } catch (error) {
      this.drop(link, `send failed: ${String(error)}`);
      return false;
    }
  }

  private scheduleHeartbeat(link: Link): void {
    // up to 10% early, never late (§10)
    const delay = link.heartbeatMs * (0.9 + 0.1 * Math.random());
    link.heartbeatTimer = setTimeout(() => {
      link.heartbeatTimer = null;
      if (link.closed) return;
      const ack = link.ready !== null ? ackFor(link, this.position) : null;
      link.budget.force(Date.now());
      if (!this.send(link, heartbeatFrame(ack))) return;
      if (ack !== null) link.sent = ack;
      this.armWatchdog(link);
      this.scheduleHeartbeat(link);
    }, delay);
  }

  private armWatchdog(link: Link): void {
    if (link.watchdogTimer !== null) return;
    link.watchdogTimer = setTimeout(() => {
      link.watchdogTimer = null;
      if (link.closed) return;
      if (this.paused) {
        this.armWatchdog(link); // we stopped reading, not the server
        return;
      }
      this.drop(link, "no heartbeat_ack within one heartbeat interval");
    }, link.heartbeatMs);
  }

  private markProcessed(epoch: string, updateId: number): void {
    // leftovers of an older epoch move nothing: their ids mean nothing now
    if (epoch !== this.dedup.epoch) return;
    const capped = Math.min(updateId, this.dedup.last);
    if (this.position === null || this.position.epoch !== epoch || capped > this.position.updateId) {
      this.position = { epoch, updateId: capped };
      this.scheduleAck();
    }
  }

  private scheduleAck(): void {
    if (this.ackTimer !== null || this.state !== "running") return;
    this.ackTimer = setTimeout(() => {
      this.ackTimer = null;
      this.flushAcks(false);
    }, this.ackDelayMs);
  }

  /** Ack the processed position on every connection, capped at what each delivered. */
  private flushAcks(force: boolean): void {
    let retryMs = 0;
    for (const link of this.links) {
      if (link.ready === null || link.closed) continue;
      const value = ackFor(link, this.position);
      if (value === null) continue;
      const now = Date.now();
      if (!force && !link.budget.take(now)) {
        retryMs = Math.max(retryMs, link.budget.waitMs(now));
        continue;
      }
      if (this.send(link, ackFrame(value))) link.sent = value;
    }
    if (retryMs > 0 && this.ackTimer === null && this.state === "running") {
      this.ackTimer = setTimeout(() => {
        this.ackTimer = null;
        this.flushAcks(false);
      }, retryMs);
    }
  }

  private pumpRequests(): void {
    const link = this.current;
    if (link === null || link.closed || this.state !== "running") return;
    const limit = link.hello?.limits?.max_pending_requests ?? 32;
    const maxBytes = link.hello?.limits?.max_frame_bytes ?? 65536;
    while (this.outbox.length > 0 && link.pending.size < limit) {
      const request = this.outbox[0] as PendingRequest;
      const frame = requestFrame(request.id, request.method, request.params, request.idempotencyKey);
      const size = messageBytes(encodeFrame(frame, this.encoding));
      if (size > maxBytes) {
        this.outbox.shift();
        request.reject(
          new RequestError(request.method, {
            error_code: 413,
            code: "FRAME_TOO_LARGE",
            description: `the request frame is ${size} bytes, over max_frame_bytes ${maxBytes}; not sent`,
          }),
        );
        continue;
      }
      const now = Date.now();
      if (!link.budget.take(now)) {
        if (this.pumpTimer === null) {
          this.pumpTimer = setTimeout(() => {
            this.pumpTimer = null;
            this.pumpRequests();
          }, link.budget.waitMs(now));
        }
        return;
      }
      this.outbox.shift();
      request.sends += 1;
      request.link = link;
      link.pending.set(request.id, request);
      if (!this.send(link, frame)) return; // dropped: onClose put it back in the outbox
    }
  }

  // -- backpressure -----------------------------------------------------------

  private pauseReading(): void {
    this.paused = true;
    // only delivering connections: one still identifying must get to ready
    for (const link of this.links) if (link.ready !== null) link.socket?.pause();
  }

  private resumeReading(): void {
    if (!this.paused || this.queue.length > this.queueSize / 2) return;
    this.paused = false;
    for (const link of this.links) link.socket?.resume();
  }
}

// `await using client = new GatewayClient(...)` where the runtime has it (Node.js 20.4+)
const asyncDispose = (Symbol as { asyncDispose?: symbol }).asyncDispose;
if (asyncDispose !== undefined) {
  Object.defineProperty(GatewayClient.prototype, asyncDispose, {
    value(this: GatewayClient): Promise<void> {
      return this.close();
    },
  });
}
