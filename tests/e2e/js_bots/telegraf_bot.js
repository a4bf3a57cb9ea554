// A telegraf bot as its users write it; only `telegram.apiRoot` points it at botgw.
//
//   /start   an inline keyboard (Red / Blue)
//   a button answers the callback query and edits the keyboard message
//   /photo   sends photo.png, then downloads it back through getFileLink
//   text     echoed
//
// BOT_TOKEN, API_ROOT and PHOTO configure it. With WEBHOOK_URL it runs in webhook
// mode (setWebhook, then telegraf's webhookCallback on WEBHOOK_PORT; deleteWebhook
// on SIGTERM), else it polls. Each update it handles and each thing it does is
// logged as one JSON line on stdout.
"use strict";

const http = require("node:http");
const { Telegraf, Markup } = require("telegraf");

const log = (event) => process.stdout.write(JSON.stringify(event) + "\n");

const bot = new Telegraf(process.env.BOT_TOKEN, {
  telegram: { apiRoot: process.env.API_ROOT },
});

bot.use(async (ctx, next) => {
  log({ update_id: ctx.update.update_id, type: ctx.updateType });
  await next();
});

bot.start(async (ctx) => {
  log({ text: ctx.message.text });
  await ctx.reply(
    "Pick a colour",
    Markup.inlineKeyboard([Markup.button.callback("Red", "red"), Markup.button.callback("Blue", "blue")]),
  );
  log({ sent: "Pick a colour" });
});

bot.action(/^(red|blue)$/, async (ctx) => {
  const text = `You chose ${ctx.match[1]}`;
  log({ callback: ctx.match[1] });
  await ctx.answerCbQuery(text);
  await ctx.editMessageText(text);
  log({ sent: text });
});

bot.command("photo", async (ctx) => {
  log({ text: ctx.message.text });
  const sent = await ctx.replyWithPhoto({ source: process.env.PHOTO }, { caption: "a red square" });
  log({ sent: sent.caption, photo_file_id: sent.photo.at(-1).file_id });
  const link = await ctx.telegram.getFileLink(sent.photo.at(-1).file_id);
  const response = await fetch(link);
  const bytes = Buffer.from(await response.arrayBuffer());
  log({ downloaded: bytes.toString("base64") });
});

bot.on("text", async (ctx) => {
  log({ text: ctx.message.text });
  await ctx.reply(ctx.message.text);
  log({ sent: ctx.message.text });
});

bot.catch((err) => log({ error: String(err && err.stack ? err.stack : err) }));

async function webhook() {
  const secretToken = process.env.WEBHOOK_SECRET;
  const path = new URL(process.env.WEBHOOK_URL).pathname;
  const server = http.createServer(bot.webhookCallback(path, { secretToken }));
  await new Promise((resolve) => server.listen(Number(process.env.WEBHOOK_PORT), "127.0.0.1", resolve));
  await bot.telegram.setWebhook(process.env.WEBHOOK_URL, { secret_token: secretToken });
  log({ webhook_info: await bot.telegram.getWebhookInfo() });
  process.once("SIGTERM", async () => {
    await bot.telegram.deleteWebhook();
    log({ webhook_info: await bot.telegram.getWebhookInfo() });
    server.close();
    log({ stopped: true });
  });
}

async function main() {
  if (process.env.WEBHOOK_URL) {
    await webhook();
  } else {
    process.once("SIGTERM", () => {
      bot.stop("SIGTERM");
      log({ stopped: true });
    });
    // resolves when polling stops
    await bot.launch(() => log({ ready: true, me: bot.botInfo.username }));
    return;
  }
  log({ ready: true, me: (await bot.telegram.getMe()).username });
}

main().catch((err) => {
  log({ error: String(err && err.stack ? err.stack : err) });
  process.exitCode = 1;
});
