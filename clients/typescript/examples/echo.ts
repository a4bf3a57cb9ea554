/**
 * An agent that answers every text message, over the gateway (like
 * examples/echo_agent.py): each update is answered by `sendMessage` sent over the
 * same socket, and acked once the answer is sent.
 *
 *     BOTGW_TOKEN=bot_...:... node dist/examples/echo.js [ws://127.0.0.1:8081/bot/ws ...]
 *
 * Several URLs are tried in turn on each reconnect. SIGINT or SIGTERM closes the
 * client: the updates answered so far are acked, the one being answered is not
 * (it comes again on the next start).
 */

import { GatewayClient, RequestError } from "../src/index.js";

async function main(urls: string[], token: string): Promise<void> {
  const client = new GatewayClient({ urls, token });
  let stopping = false;
  const stop = (): void => {
    stopping = true;
    void client.close();
  };
  process.once("SIGINT", stop);
  process.once("SIGTERM", stop);
  try {
    for await (const update of client) {
      const message = update.message;
      if (message?.text !== undefined) {
        try {
          await client.request("sendMessage", { chat_id: message.chat.id, text: message.text });
        } catch (error) {
          if (error instanceof RequestError) {
            // e.g. 429 past the send limits: report it, go on with the next update
            console.error(`no answer to ${update.update_id}: ${error.message}`);
            continue;
          }
          if (stopping) break; // closed while answering: the update stays unacked
          throw error;
        }
      }
    }
  } finally {
    await client.close();
  }
}

const token = process.env.BOTGW_TOKEN;
if (!token) {
  console.error("set BOTGW_TOKEN to the bot's token");
  process.exit(2);
}
const urls = process.argv.slice(2);
main(urls.length > 0 ? urls : ["ws://127.0.0.1:8081/bot/ws"], token).catch((error: unknown) => {
  console.error(String(error));
  process.exit(1);
});
