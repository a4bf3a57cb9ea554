// The client API as the page calls it: the user's token from sessionStorage in
// "Authorization: Bearer", never in a URL or a cookie; and the live events
// (GET /client/events, Server-Sent Events read with fetch so the token can go
// in a header), resumed from the last event id after a reconnect.

const TOKEN_KEY = "botgw.playground.token";

export function token() {
  return sessionStorage.getItem(TOKEN_KEY);
}

export function setToken(value) {
  if (value) sessionStorage.setItem(TOKEN_KEY, value);
  else sessionStorage.removeItem(TOKEN_KEY);
}

export class ApiError extends Error {
  constructor(status, code, description, parameters) {
    super(description || code);
    this.status = status;
    this.code = code;
    this.parameters = parameters || {};
  }
}

function headers(extra) {
  const out = { ...extra };
  const current = token();
  if (current) out.authorization = `Bearer ${current}`;
  return out;
}

async function envelope(response) {
  let body;
  try {
    body = await response.json();
  } catch {
    throw new ApiError(response.status, "BAD_RESPONSE", `the server answered ${response.status}`);
  }
  if (!body.ok) {
    throw new ApiError(body.error_code || response.status, body.code, body.description, body.parameters);
  }
  return body.result;
}

// One method of the client API ("client"), or of the playground's tokenless
// calls ("login"); a 429 is waited out and retried once.
export async function call(method, params = {}, { api = "client" } = {}) {
  const path = api === "login" ? `/playground/api/${method}` : `/${api}/${method}`;
  for (let attempt = 0; ; attempt++) {
    const response = await fetch(path, {
      method: "POST",
      headers: headers({ "content-type": "application/json" }),
      body: JSON.stringify(params),
      credentials: "omit",
      cache: "no-store",
    });
    try {
      return await envelope(response);
    } catch (error) {
      const wait = error.parameters && error.parameters.retry_after;
      if (error.status === 429 && wait && attempt === 0) {
        await sleep(wait * 1000);
        continue;
      }
      throw error;
    }
  }
}

// The bytes of a file sent to one of the user's chats, as a blob: URL.
export async function fileUrl(fileId) {
  const file = await call("getFile", { file_id: fileId });
  const response = await fetch(`/client/file/${file.file_path}`, {
    headers: headers({}),
    credentials: "omit",
  });
  if (!response.ok) throw new ApiError(response.status, "FILE_NOT_FOUND", "the file could not be downloaded");
  return URL.createObjectURL(await response.blob());
}

export function sleep(ms) {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

// Read /client/events until `signal` aborts: onEvent(type, data) for each event,
// onState("live" | "reconnecting" | "unsupported"). Returns false if the server
// has no event stream (the page then polls instead).
export async function streamEvents(onEvent, onState, signal) {
  let lastId = null;
  let delay = 500;
  while (!signal.aborted) {
    try {
      const extra = { accept: "text/event-stream" };
      if (lastId !== null) extra["last-event-id"] = lastId;
      const response = await fetch("/client/events", {
        headers: headers(extra),
        credentials: "omit",
        cache: "no-store",
        signal,
      });
      if (response.status === 404 || response.status === 405) {
        onState("unsupported");
        return false;
      }
      if (response.status === 401) {
        onState("unauthorized");
        return true;
      }
      if (!response.ok || !response.body) throw new Error(`events: ${response.status}`);
      onState("live");
      delay = 500;
      const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
      let buffer = "";
      let type = "message";
      let data = [];
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        buffer += value;
        let end;
        while ((end = buffer.search(/\r\n|\r|\n/)) >= 0) {
          const line = buffer.slice(0, end);
          buffer = buffer.slice(end + (buffer.startsWith("\r\n", end) ? 2 : 1));
          if (line === "") {
            if (data.length) dispatch(onEvent, type, data.join("\n"));
            type = "message";
            data = [];
            continue;
          }
          if (line.startsWith(":")) continue;
          const colon = line.indexOf(":");
          const field = colon < 0 ? line : line.slice(0, colon);
          let text = colon < 0 ? "" : line.slice(colon + 1);
          if (text.startsWith(" ")) text = text.slice(1);
          if (field === "event") type = text;
          else if (field === "data") data.push(text);
          else if (field === "id") lastId = text;
        }
      }
    } catch (error) {
      if (signal.aborted) return true;
    }
    onState("reconnecting");
    await sleep(delay);
    delay = Math.min(delay * 2, 15000);
  }
  return true;
}

function dispatch(onEvent, type, text) {
  let data;
  try {
    data = JSON.parse(text);
  } catch {
    return;
  }
  try {
    onEvent(type, data);
  } catch (error) {
    console.error("playground: an event failed to render", type, error);
  }
}
