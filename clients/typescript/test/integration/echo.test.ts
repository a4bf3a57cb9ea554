/** examples/echo.ts as a process of its own: it answers over the socket and stops cleanly. */

import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { test } from "node:test";
import { fileURLToPath } from "node:url";

import { botTexts, newBot, noStack, say, seconds, startChat, theStack, waitFor } from "./stack.js";

const ECHO = fileURLToPath(new URL("../../examples/echo.js", import.meta.url));

test("the echo example answers every text message and stops on SIGTERM", { skip: noStack }, async () => {
  const s = theStack();
  const bot = await newBot("echo");
  const chat = await startChat(bot);
  const agent = spawn(process.execPath, [ECHO, s.gateway], {
    env: { ...process.env, BOTGW_TOKEN: bot.token },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let output = "";
  agent.stdout.on("data", (chunk: Buffer) => (output += chunk.toString()));
  agent.stderr.on("data", (chunk: Buffer) => (output += chunk.toString()));
  const exited = new Promise<number | null>((resolve) => agent.on("exit", (code) => resolve(code)));
  try {
    await say(chat, "hello, echo");
    await say(chat, "and again");
    await waitFor(
      "the echoes",
      async () => (await botTexts(chat)).length >= 3,
      seconds(20),
    ).catch((error: unknown) => assert.fail(`${String(error)}; the agent said: ${output}`));
    assert.deepEqual(await botTexts(chat), ["/start", "hello, echo", "and again"]);
  } finally {
    agent.kill("SIGTERM");
  }
  assert.equal(await exited, 0, output);
});
