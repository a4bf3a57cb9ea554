/**
 * One WebSocket, the same to the client in Node.js (the `ws` package: headers on
 * the upgrade, the refusal's status and body, pause/resume) and in browsers (the
 * global `WebSocket`: no headers, so the token goes in `identify`).
 */

import { UpgradeRefused } from "./errors.js";
import { retryAfterMs } from "./policy.js";

export interface SocketHandlers {
  /** The upgrade completed: called before any message, with the socket to send on. */
  open(socket: Socket): void;
  message(data: string | Uint8Array): void;
  close(code: number, reason: string): void;
}

export interface Socket {
  send(data: string | Uint8Array): void;
  /** A clean close (close frame, then the server's). */
  close(code: number, reason: string): void;
  /** Drop the connection now (a dead peer). */
  terminate(): void;
  /** Stop reading from the socket (backpressure); a no-op where unsupported. */
  pause(): void;
  resume(): void;
  readonly canPause: boolean;
}

/** What the client needs of a browser-style WebSocket class. */
export interface WebSocketLike {
  binaryType: string;
  readonly readyState: number;
  send(data: string | ArrayBufferLike | Uint8Array): void;
  close(code?: number, reason?: string): void;
  onopen: ((event: unknown) => void) | null;
  onmessage: ((event: { data: unknown }) => void) | null;
  onclose: ((event: { code: number; reason: string }) => void) | null;
  onerror: ((event: unknown) => void) | null;
}
export type WebSocketConstructor = new (url: string) => WebSocketLike;

export interface OpenOptions {
  url: string;
  /** Sent on the upgrade in Node.js; browsers cannot send headers. */
  headers: Record<string, string>;
  timeoutMs: number;
  maxPayload: number;
  /** A browser-style WebSocket class to use instead of `ws`. */
  webSocket?: WebSocketConstructor;
}

/** The connection could not be opened (network, timeout, or a close before open). */
export class ConnectError extends Error {
  override name = "ConnectError";
}

export const isNode: boolean =
  typeof process !== "undefined" && typeof process.versions === "object" && !!process.versions.node;

/** Whether `openSocket` can send headers with these options. */
export function canSendHeaders(options: { webSocket?: WebSocketConstructor }): boolean {
  return options.webSocket === undefined && isNode;
}

export async function openSocket(options: OpenOptions, handlers: SocketHandlers): Promise<Socket> {
  if (options.webSocket !== undefined || !isNode) {
    const constructor = options.webSocket ?? (globalThis as { WebSocket?: WebSocketConstructor }).WebSocket;
    if (constructor === undefined) throw new ConnectError("no WebSocket implementation available");
    return openBrowserStyle(constructor, options, handlers);
  }
  return openWithWs(options, handlers);
}

async function openWithWs(options: OpenOptions, handlers: SocketHandlers): Promise<Socket> {
  const { WebSocket } = await import("ws");
  const ws = new WebSocket(options.url, {
    headers: options.headers,
    handshakeTimeout: options.timeoutMs,
    maxPayload: options.maxPayload,
    perMessageDeflate: false,
  });
  return new Promise<Socket>((resolve, reject) => {
    let opened = false;
    let settled = false;
    const settle = (error: Error): void => {
      if (!settled) {
        settled = true;
        reject(error);
      }
    };
    ws.on("unexpected-response", (request, response) => {
      // a refusal: an HTTP error with the JSON envelope instead of 101 (§2)
      const chunks: Buffer[] = [];
      let size = 0;
      const finish = (): void => {
        const status = response.statusCode ?? 0;
        let apiCode = "HTTP_" + status;
        let description = response.statusMessage ?? "";
        try {
          const body = JSON.parse(Buffer.concat(chunks).toString("utf8")) as { code?: unknown; description?: unknown };
          if (typeof body.code === "string") apiCode = body.code;
          if (typeof body.description === "string") description = body.description;
        } catch {
          // not an envelope: keep the status line
        }
        const header = response.headers["retry-after"];
        settle(new UpgradeRefused(status, apiCode, description, retryAfterMs(Array.isArray(header) ? header[0] : header)));
        request.destroy();
        response.destroy();
      };
      response.on("data", (chunk: Buffer) => {
        size += chunk.length;
        if (size <= 65536) chunks.push(chunk);
      });
      response.on("end", finish);
      response.on("error", finish);
      response.on("aborted", finish);
    });
    ws.on("open", () => {
      opened = true;
      settled = true;
      const socket: Socket = {
        send: (data) => ws.send(data),
        close: (code, reason) => ws.close(code, reason),
        terminate: () => ws.terminate(),
        pause: () => ws.pause(),
        resume: () => ws.resume(),
        canPause: true,
      };
      handlers.open(socket);
      resolve(socket);
    });
    ws.on("message", (data, isBinary) => {
      const buffer = Array.isArray(data) ? Buffer.concat(data) : Buffer.from(data as ArrayBuffer);
      handlers.message(isBinary ? new Uint8Array(buffer.buffer, buffer.byteOffset, buffer.byteLength) : buffer.toString("utf8"));
    });
    ws.on("error", (error) => {
      if (!opened) settle(new ConnectError(`${options.url}: ${error.message}`));
    });
    ws.on("close", (code, reason) => {
      if (opened) handlers.close(code, reason.toString("utf8"));
      else settle(new ConnectError(`${options.url}: closed before the upgrade completed (${code})`));
    });
  });
}

function openBrowserStyle(
  constructor: WebSocketConstructor,
  options: OpenOptions,
  handlers: SocketHandlers,
): Promise<Socket> {
  const ws = new constructor(options.url);
  ws.binaryType = "arraybuffer";
  return new Promise<Socket>((resolve, reject) => {
    let opened = false;
    let dropped = false;
    const timer = setTimeout(() => {
      ws.close();
      reject(new ConnectError(`${options.url}: no upgrade within ${options.timeoutMs} ms`));
    }, options.timeoutMs);
    ws.onopen = () => {
      opened = true;
      clearTimeout(timer);
      const socket: Socket = {
        send: (data) => ws.send(data),
        close: (code, reason) => ws.close(code, reason),
        terminate: () => {
          // browsers cannot drop a socket: close it and report the drop now
          dropped = true;
          ws.close();
          handlers.close(1006, "dropped by the client");
        },
        pause: () => undefined,
        resume: () => undefined,
        canPause: false,
      };
      handlers.open(socket);
      resolve(socket);
    };
    ws.onmessage = (event) => {
      const data = event.data;
      if (typeof data === "string") handlers.message(data);
      else if (data instanceof ArrayBuffer) handlers.message(new Uint8Array(data));
      else if (ArrayBuffer.isView(data)) handlers.message(new Uint8Array(data.buffer, data.byteOffset, data.byteLength));
    };
    ws.onerror = () => undefined; // the close event follows with the code
    ws.onclose = (event) => {
      clearTimeout(timer);
      if (!opened) {
        // a browser does not show why (a refusal's status is hidden): retry
        reject(new ConnectError(`${options.url}: connection failed (${event.code})`));
      } else if (!dropped) {
        handlers.close(event.code, event.reason);
      }
    };
  });
}
