/**
 * The real stack the integration tests run against, as tests/e2e/test_typescript_client.py
 * starts it and describes it in the environment:
 *
 *     BOTGW_TS_REST_URL       REST (client, management and Bot API)
 *     BOTGW_TS_GATEWAY_URL    the stack's gateway socket address
 *     BOTGW_TS_USER_TOKEN     a user (usr_...:...) who owns and talks to the bots
 *     BOTGW_TS_BOT_TOKEN      a bot of that user, and its BOTGW_TS_BOT_USERNAME
 *     BOTGW_TS_DRAIN_URL, BOTGW_TS_DRAIN_PID   a gateway of its own for the drain test
 *     BOTGW_TS_KILL_URL, BOTGW_TS_KILL_PID     a gateway of its own for the kill test
 *     BOTGW_TS_TIMEOUT_SCALE  multiplies every wait (slow machines)
 *     BOTGW_TS_TRACE          if set, the clients' connection events and frames other
 *                             than updates, acks, requests and heartbeats go to stderr
 *
 * Without them every integration test is skipped (`npm test` outside the suite).
 * Bots beyond the first are made through the management API, chats and messages
 * through the client API: nothing here talks to Redis or fakes a server.
 */

import assert from "node:assert/strict";
import net from "node:net";

import { GatewayClient, type GatewayClientOptions, type Update } from "../../src/index.js";
import { randomHex } from "../../src/random.js";

export interface Stack {
  rest: string;
  gateway: string;
  userToken: string;
  botToken: string;
  botUsername: string;
  drainUrl: string | null;
  drainPid: number | null;
  killUrl: string | null;
  killPid: number | null;
}

function readStack(): Stack | null {
  const env = process.env;
  if (!env.BOTGW_TS_REST_URL || !env.BOTGW_TS_GATEWAY_URL || !env.BOTGW_TS_USER_TOKEN || !env.BOTGW_TS_BOT_TOKEN) {
    return null;
  }
  return {
    rest: env.BOTGW_TS_REST_URL.replace(/\/$/, ""),
    gateway: env.BOTGW_TS_GATEWAY_URL,
    userToken: env.BOTGW_TS_USER_TOKEN,
    botToken: env.BOTGW_TS_BOT_TOKEN,
    botUsername: env.BOTGW_TS_BOT_USERNAME ?? "",
    drainUrl: env.BOTGW_TS_DRAIN_URL ?? null,
    drainPid: env.BOTGW_TS_DRAIN_PID ? Number(env.BOTGW_TS_DRAIN_PID) : null,
    killUrl: env.BOTGW_TS_KILL_URL ?? null,
    killPid: env.BOTGW_TS_KILL_PID ? Number(env.BOTGW_TS_KILL_PID) : null,
  };
}

export const stack: Stack | null = readStack();

/** The `skip` option of an integration test: a reason when there is no stack. */
export const noStack: string | false =
  stack === null ? "no stack: run through tests/e2e/test_typescript_client.py (BOTGW_TS_* unset)" : false;

export function theStack(): Stack {
  assert.ok(stack !== null, "the stack is described in BOTGW_TS_*");
  return stack;
}

const SCALE = Number(process.env.BOTGW_TS_TIMEOUT_SCALE ?? "1") || 1;

/** Every wait is a multiple of this: `seconds(5)` is 5 s on a normal machine. */
export function seconds(value: number): number {
  return value * 1000 * SCALE;
}

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** Wait until `condition()` holds, failing with `what` after `timeoutMs`. */
export async function waitFor(what: string, condition: () => boolean | Promise<boolean>, timeoutMs = seconds(20)): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await condition())) {
    if (Date.now() > deadline) assert.fail(`timed out waiting for ${what}`);
    await sleep(20);
  }
}

// --- REST ------------------------------------------------------------------------

export class ApiFailure extends Error {
  constructor(
    readonly status: number,
    readonly body: { code?: string; description?: string },
  ) {
    super(`${status} ${body.code}: ${body.description}`);
  }
}

export async function call<T = unknown>(surface: "bot" | "client" | "manage", auth: string, method: string, params: object = {}): Promise<T> {
  const response = await fetch(`${theStack().rest}/${surface}/${method}`, {
    method: "POST",
    headers: { Authorization: auth, "Content-Type": "application/json" },
    body: JSON.stringify(params),
  });
  const body = (await response.json()) as { ok: boolean; result?: T; code?: string; description?: string };
  if (response.status !== 200 || !body.ok) throw new ApiFailure(response.status, body);
  return body.result as T;
}

/** A call as the stack's user. */
export function asUser<T = unknown>(method: string, params: object = {}): Promise<T> {
  return call<T>("client", `Bearer ${theStack().userToken}`, method, params);
}

export interface Bot {
  id: string;
  username: string;
  token: string;
}

/** A new bot of the stack's user, made through the management API. */
export async function newBot(prefix = "ts"): Promise<Bot> {
  const username = `${prefix}${randomHex(5)}_bot`;
  const made = await call<{ id: string; username: string; token: string }>(
    "manage",
    `Bearer ${theStack().userToken}`,
    "createBot",
    { username, name: "TS client test" },
  );
  return { id: made.id, username: made.username, token: made.token };
}

/** The user's private chat with `bot`, started (the bot gets "/start"); the user's chat id. */
export async function startChat(bot: { username: string }): Promise<string> {
  const chat = await asUser<{ id: string }>("startBot", { username: bot.username });
  return chat.id;
}

export async function say(chatId: string, text: string): Promise<void> {
  await asUser("sendMessage", { chat_id: chatId, text });
}

/** The texts of a chat's last messages (up to 100) written by the bot, as the user sees them. */
export async function botTexts(chatId: string): Promise<string[]> {
  const messages = await asUser<{ text?: string; from?: { is_bot?: boolean } }[]>("getChatHistory", {
    chat_id: chatId,
    limit: 100,
  });
  return messages.filter((m) => m.from?.is_bot).map((m) => m.text ?? "");
}

export function textOf(update: Update): string {
  return update.message?.text ?? "";
}

// --- clients -----------------------------------------------------------------------

const TRACE = !!process.env.BOTGW_TS_TRACE;
const QUIET_OPS = new Set(["updates", "ack", "request", "result", "heartbeat", "heartbeat_ack"]);
const traceLogger = {
  info: (message: string) => console.error(`${new Date().toISOString()} ${message}`),
  warn: (message: string) => console.error(`${new Date().toISOString()} ${message}`),
  error: (message: string) => console.error(`${new Date().toISOString()} ${message}`),
};

/** Every frame the tests' clients sent ("out") and received ("in"), for the schema check. */
export const wire: { direction: "in" | "out"; frame: { op: string } }[] = [];

/** A client for the tests: quiet, with short backoffs, recording its frames, closed by `closeAll`. */
export function client(options: GatewayClientOptions): GatewayClient {
  const own = options.trace;
  const made = new GatewayClient({
    maxBackoff: 1,
    backoffBase: 0.2,
    ...(TRACE ? { logger: traceLogger } : {}),
    ...options,
    trace: (direction, frame, connectionId) => {
      if (TRACE && !QUIET_OPS.has(frame.op)) {
        console.error(`${new Date().toISOString()} ${direction} ${connectionId} ${JSON.stringify(frame).slice(0, 300)}`);
      }
      if (wire.length < 20_000) wire.push({ direction, frame: JSON.parse(JSON.stringify(frame)) as { op: string } });
      own?.(direction, frame, connectionId);
    },
  });
  opened.push(made);
  return made;
}
const opened: GatewayClient[] = [];

export async function closeAll(): Promise<void> {
  await Promise.all(opened.splice(0).map((c) => c.close()));
}

/** Take updates from `source` until `done(taken)` holds; fails after `timeoutMs`. */
export async function collect(
  source: AsyncIterator<Update>,
  done: (taken: Update[]) => boolean,
  timeoutMs = seconds(20),
): Promise<Update[]> {
  const taken: Update[] = [];
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${taken.length} updates: ${taken.map(textOf).join(",")}`)), timeoutMs);
  });
  try {
    while (!done(taken)) {
      const next = await Promise.race([source.next(), timeout]);
      if (next.done) break;
      taken.push(next.value);
    }
  } finally {
    clearTimeout(timer);
  }
  return taken;
}

/** Lost, duplicated and out-of-order among the numbered texts `prefix1..prefixN` the handler saw. */
export function tally(texts: string[], prefix: string, count: number): { lost: number; duplicated: number; reordered: number } {
  const numbers = texts.filter((t) => t.startsWith(prefix)).map((t) => Number(t.slice(prefix.length)));
  const unique = new Set(numbers);
  let lost = 0;
  for (let n = 1; n <= count; n += 1) if (!unique.has(n)) lost += 1;
  let reordered = 0;
  for (let i = 1; i < numbers.length; i += 1) if ((numbers[i] as number) <= (numbers[i - 1] as number)) reordered += 1;
  return { lost, duplicated: numbers.length - unique.size, reordered };
}

// --- a TCP proxy in front of the gateway, to break connections from outside ----------

/**
 * Forwards TCP connections to the gateway. `drop()` cuts every connection open
 * now (the client sees 1006, the server a vanished peer); `stall()` stops
 * forwarding on them without closing anything (a dead path). Later connections
 * are forwarded normally.
 */
export class TcpProxy {
  private readonly pairs = new Set<[net.Socket, net.Socket]>();
  private readonly stalled = new Set<[net.Socket, net.Socket]>();
  private constructor(
    private readonly server: net.Server,
    readonly port: number,
    private readonly path: string,
  ) {}

  static async to(wsUrl: string): Promise<TcpProxy> {
    const target = new URL(wsUrl);
    let proxy: TcpProxy | null = null;
    const server = net.createServer((downstream) => {
      const upstream = net.connect(Number(target.port), target.hostname);
      const pair: [net.Socket, net.Socket] = [downstream, upstream];
      proxy?.pairs.add(pair);
      downstream.pipe(upstream);
      upstream.pipe(downstream);
      const end = (): void => {
        downstream.destroy();
        upstream.destroy();
        proxy?.pairs.delete(pair);
        proxy?.stalled.delete(pair);
      };
      downstream.on("close", end).on("error", end);
      upstream.on("close", end).on("error", end);
    });
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    const port = (server.address() as net.AddressInfo).port;
    proxy = new TcpProxy(server, port, target.pathname);
    return proxy;
  }

  get url(): string {
    return `ws://127.0.0.1:${this.port}${this.path}`;
  }

  get connections(): number {
    return this.pairs.size;
  }

  drop(): number {
    const count = this.pairs.size;
    for (const [downstream, upstream] of [...this.pairs]) {
      downstream.destroy();
      upstream.destroy();
    }
    return count;
  }

  stall(): number {
    const count = this.pairs.size;
    for (const pair of [...this.pairs]) {
      const [downstream, upstream] = pair;
      // nothing of either side reaches the other, not even a close
      for (const socket of pair) {
        socket.removeAllListeners("close");
        socket.removeAllListeners("error");
        socket.on("error", () => undefined);
      }
      downstream.unpipe(upstream);
      upstream.unpipe(downstream);
      downstream.pause();
      upstream.pause();
      this.pairs.delete(pair);
      this.stalled.add(pair);
    }
    return count;
  }

  /** Stop forwarding the server's bytes on the connections open now (the client's still go). */
  holdReplies(): number {
    for (const [downstream, upstream] of this.pairs) {
      upstream.unpipe(downstream);
      upstream.pause();
    }
    return this.pairs.size;
  }

  async close(): Promise<void> {
    this.drop();
    for (const [downstream, upstream] of this.stalled) {
      downstream.destroy();
      upstream.destroy();
    }
    this.stalled.clear();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }
}
