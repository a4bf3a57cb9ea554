// The playground: log in, list chats, chat with bots in private chats and groups.
// State lives here; what a message looks like is render.js, mini apps miniapp.js,
// the composer composer.js, the API and its event stream api.js.

import { ApiError, call, fileUrl, setToken, sleep, streamEvents, token } from "./api.js";
import { Composer } from "./composer.js";
import { loginView as showLogin, redeemFragment } from "./login.js";
import { alertDialog, failed, toast } from "./notices.js";
import { closeMiniApp, openMiniApp } from "./miniapp.js";
import { el, messageView, senderName, summary } from "./render.js";

const app = document.getElementById("app");
const state = {
  me: null,
  chats: new Map(), // id -> Chat
  unread: new Map(), // id -> count
  open: null, // the open chat's id
  messages: new Map(), // the open chat's messages, id -> Message
  members: [],
  pinned: null,
  typing: new Map(), // user or bot id -> {name, timer}
  commands: [],
  menu: null,
  images: new Map(), // file_id -> blob: URL
  events: null, // AbortController of the event stream
  live: false,
};
let ui = {};

// ---- logging in ----------------------------------------------------------

function loginView(notice = "") {
  stopEvents();
  return showLogin(app, notice, start);
}

function logout() {
  setToken(null);
  closeMiniApp();
  state.open = null;
  state.chats.clear();
  loginView();
}

// ---- the main view -------------------------------------------------------

function chatTitle(chat) {
  return chat.type === "group" ? chat.title : chat.first_name || chat.username || "Chat";
}

function renderShell() {
  const startInput = el("input", { id: "start-bot", placeholder: "bot_username", autocomplete: "off", required: true });
  const startForm = el("form", { class: "inline-form", "aria-label": "Start a bot" }, el("label", { for: "start-bot" }, "Start a bot"), el("div", { class: "pair" }, startInput, el("button", { type: "submit" }, "Start")));
  startForm.addEventListener("submit", async (event) => {
    event.preventDefault();
    try {
      const chat = await call("startBot", { username: startInput.value.trim().replace(/^@/, "") });
      startInput.value = "";
      state.chats.set(chat.id, chat);
      await openChat(chat.id);
    } catch (error) {
      failed(error);
    }
  });
  const groupInput = el("input", { id: "group-title", placeholder: "Group title", autocomplete: "off", required: true });
  const groupForm = el("form", { class: "inline-form", "aria-label": "New group" }, el("label", { for: "group-title" }, "New group"), el("div", { class: "pair" }, groupInput, el("button", { type: "submit" }, "Create group")));
  groupForm.addEventListener("submit", async (event) => {
    event.preventDefault();
    try {
      const chat = await call("createGroup", { title: groupInput.value.trim() });
      groupInput.value = "";
      state.chats.set(chat.id, chat);
      await openChat(chat.id);
    } catch (error) {
      failed(error);
    }
  });
  ui.chatList = el("ul", { class: "chat-list", "aria-label": "Chats" });
  ui.status = el("span", { class: "conn", role: "status" }, "connecting…");
  const side = el(
    "nav",
    { class: "side", "aria-label": "Chats and tools" },
    el("header", {}, el("div", { class: "me" }, el("strong", {}, senderName(state.me)), state.me.username ? ` @${state.me.username}` : ""), el("button", { type: "button", class: "link", onclick: logout }, "Log out")),
    ui.status,
    el("h2", {}, "Chats"),
    ui.chatList,
    startForm,
    groupForm,
  );
  ui.pane = el("section", { class: "pane", "aria-label": "Chat" }, el("p", { class: "empty" }, "Pick a chat, or start a bot."));
  app.replaceChildren(el("div", { class: "layout" }, side, ui.pane), el("div", { id: "toasts", class: "toasts", "aria-live": "polite" }));
}

function renderChatList() {
  const items = [...state.chats.values()].map((chat) => {
    const unread = state.unread.get(chat.id) || 0;
    const current = chat.id === state.open;
    return el(
      "li",
      {},
      el(
        "button",
        { type: "button", class: `chat${current ? " current" : ""}`, "aria-label": unread ? `${chatTitle(chat)}, ${unread} unread` : chatTitle(chat), "aria-current": current ? "true" : null, "data-chat-id": String(chat.id), onclick: () => openChat(chat.id) },
        el("span", { class: `avatar ${chat.type}`, "aria-hidden": "true" }, chatTitle(chat).slice(0, 1).toUpperCase()),
        el("span", { class: "name" }, chatTitle(chat)),
        unread ? el("span", { class: "badge", "aria-hidden": "true" }, String(unread)) : null,
      ),
    );
  });
  ui.chatList.replaceChildren(...items);
  if (!items.length) ui.chatList.append(el("li", { class: "hint" }, "No chats yet."));
}

async function loadChats() {
  const chats = await call("getChats");
  state.chats = new Map(chats.map((c) => [c.id, c]));
  renderChatList();
}

function bots() {
  const chat = state.chats.get(state.open);
  if (!chat) return [];
  return state.members.filter((m) => m.user && m.user.is_bot && m.status !== "left" && m.status !== "kicked").map((m) => m.user);
}

async function openChat(chatId) {
  closeMiniApp();
  state.open = chatId;
  state.unread.delete(chatId);
  state.messages = new Map();
  state.pinned = null;
  state.menu = null;
  state.commands = [];
  for (const t of state.typing.values()) clearTimeout(t.timer);
  state.typing.clear();
  renderChatList();
  renderPane();
  await Promise.all([loadHistory(), loadMembers()]);
  await Promise.all([loadCommands(), loadMenu(), loadPinned()]);
}

function renderPane() {
  const chat = state.chats.get(state.open);
  if (!chat) return;
  const group = chat.type === "group";
  ui.typing = el("div", { class: "typing", "aria-live": "polite" });
  ui.subtitle = el("div", { class: "subtitle" }, group ? "group" : chat.username ? `@${chat.username}` : "bot");
  const header = el("header", { class: "chat-header" }, el("div", {}, el("h2", {}, chatTitle(chat)), ui.subtitle, ui.typing));
  if (group) {
    const input = el("input", { id: "member-name", placeholder: "username", autocomplete: "off", required: true });
    const form = el("form", { class: "inline-form add-member", "aria-label": "Add a member" }, el("label", { for: "member-name" }, "Add member"), el("div", { class: "pair" }, input, el("button", { type: "submit" }, "Add")));
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      try {
        await call("addChatMember", { chat_id: chat.id, username: input.value.trim().replace(/^@/, "") });
        toast(`${input.value.trim()} was added`);
        input.value = "";
        await loadMembers();
        await loadCommands();
      } catch (error) {
        failed(error);
      }
    });
    header.append(form);
  }
  ui.pinned = el("div", { class: "pinned", hidden: true });
  ui.list = el("ol", { class: "messages", role: "log", "aria-label": `Messages with ${chatTitle(chat)}` });
  ui.composer = new Composer({
    chatTitle: chatTitle(chat),
    commands: () => state.commands,
    menu: () => state.menu,
    openMenu: (button, opener) => startMiniApp({ url: button.web_app.url, source: "menu_button", buttonText: button.text, opener }),
    send: sendFromComposer,
  });
  ui.pane.replaceChildren(header, ui.pinned, ui.list, ui.composer.node);
  ui.composer.focus();
}

function renderPinned() {
  const message = state.pinned && (state.messages.get(state.pinned.message_id) || state.pinned);
  ui.pinned.hidden = !message;
  if (!message) return;
  ui.pinned.replaceChildren(
    el("button", { type: "button", class: "pinned-button", "aria-label": `Pinned message: ${summary(message)}`, onclick: () => jump(message.message_id) }, el("strong", {}, "Pinned: "), summary(message).slice(0, 100)),
  );
}

// ---- messages ------------------------------------------------------------

const actions = {
  press: pressButton,
  vote,
  react,
  reply: (message) => ui.composer.replyTo(message),
  edit: (message) => ui.composer.edit(message),
  remove: deleteMessage,
  jump,
  download,
  loadImage,
  openWebApp: ({ url, source, message, buttonText }) => startMiniApp({ url, source, message, buttonText, opener: document.activeElement }),
};

function jump(messageId) {
  const node = document.getElementById(`m${messageId}`);
  if (!node) return;
  node.scrollIntoView({ block: "center" });
  node.classList.add("flash");
  setTimeout(() => node.classList.remove("flash"), 1200);
}

function isMine(message) {
  return message.from && !message.from.is_bot && message.from.id === state.me.id;
}

function upsert(message, { scroll = true } = {}) {
  const old = state.messages.get(message.message_id);
  if (old) {
    for (const key of ["_myVote"]) if (old[key] !== undefined && message[key] === undefined) message[key] = old[key];
  }
  state.messages.set(message.message_id, message);
  const chat = state.chats.get(state.open);
  const group = Boolean(chat && chat.type === "group");
  const creator = state.members.some((m) => m.status === "creator" && m.user && m.user.id === state.me.id);
  const mine = isMine(message);
  const node = messageView(message, { mine, group, canDelete: mine || !group || creator, actions });
  const existing = document.getElementById(`m${message.message_id}`);
  if (existing) {
    existing.replaceWith(node);
    showReplyKeyboard();
    return;
  }
  showReplyKeyboard();
  const after = [...ui.list.children].find((li) => Number(li.dataset.messageId) > message.message_id);
  ui.list.insertBefore(node, after || null);
  if (scroll && !after) ui.list.scrollTop = ui.list.scrollHeight;
  if (state.pinned && state.pinned.message_id === message.message_id) renderPinned();
}

// The reply keyboard of the newest bot message that set or removed one.
function showReplyKeyboard() {
  let newest = null;
  for (const message of state.messages.values()) {
    const markup = message.reply_markup;
    if (!markup || !(markup.keyboard || markup.remove_keyboard) || !message.from || !message.from.is_bot) continue;
    if (!newest || Number(message.message_id) > Number(newest.message_id)) newest = message;
  }
  const markup = newest && newest.reply_markup.keyboard ? newest.reply_markup : null;
  ui.composer.setKeyboard(markup, (button, node) =>
    startMiniApp({ url: button.web_app.url, source: "keyboard_button", message: newest, buttonText: button.text, opener: node }),
  );
}

function removeMessages(ids) {
  for (const id of ids) {
    state.messages.delete(id);
    const node = document.getElementById(`m${id}`);
    if (node) node.remove();
  }
  showReplyKeyboard();
}

async function loadHistory() {
  const chatId = state.open;
  const messages = await call("getChatHistory", { chat_id: chatId, limit: 100 });
  if (chatId !== state.open) return;
  const seen = new Set(messages.map((m) => m.message_id));
  // what is gone: not in the history, but older than its newest message (a newer
  // one came by the event stream while the history was on its way)
  const newest = messages.length ? Number(messages[messages.length - 1].message_id) : 0;
  removeMessages([...state.messages.keys()].filter((id) => !seen.has(id) && Number(id) < newest));
  for (const message of messages) upsert(message, { scroll: false });
  ui.list.scrollTop = ui.list.scrollHeight;
}

async function loadMembers() {
  try {
    state.members = await call("getChatMembers", { chat_id: state.open });
  } catch {
    state.members = [];
  }
  const chat = state.chats.get(state.open);
  for (const message of [...state.messages.values()]) upsert(message, { scroll: false }); // who may delete
  if (chat && chat.type === "group") {
    const names = state.members.filter((m) => m.status !== "left" && m.status !== "kicked").map((m) => senderName(m.user));
    ui.subtitle.textContent = `${names.length} members: ${names.join(", ")}`;
  }
}

async function loadCommands() {
  const found = [];
  for (const bot of bots()) {
    try {
      const commands = await call("getMyCommands", { chat_id: state.open, bot_id: bot.id });
      for (const c of commands) found.push({ ...c, bot });
    } catch {
      // a bot without commands, or a server without the call
    }
  }
  state.commands = found;
}

async function loadMenu() {
  try {
    const button = await call("getChatMenuButton", { chat_id: state.open });
    state.menu = button && button.type === "web_app" ? button : null;
  } catch {
    state.menu = null;
  }
  ui.composer.refresh();
}

async function loadPinned() {
  // getChats carries each chat's latest pin
  await loadChats().catch(() => {});
  const chat = state.chats.get(state.open);
  state.pinned = (chat && chat.pinned_message) || null;
  renderPinned();
}

async function sendFromComposer({ text, replyTo, editing }) {
  const chatId = state.open;
  if (editing) {
    upsert(await call("editMessageText", { chat_id: chatId, message_id: editing.message_id, text }));
    return;
  }
  const params = { chat_id: chatId, text };
  if (replyTo) params.reply_to_message_id = replyTo.message_id;
  const message = await call("sendMessage", params);
  if (state.open === chatId) upsert(message);
}

async function deleteMessage(message) {
  try {
    await call("deleteMessage", { chat_id: state.open, message_id: message.message_id });
    removeMessages([message.message_id]);
  } catch (error) {
    failed(error);
  }
}

async function react(message, emoji) {
  const mine = (message.reactions || []).some((r) => r.emoji === emoji && r.chosen);
  try {
    await call("setMessageReaction", { chat_id: state.open, message_id: message.message_id, reaction: mine ? [] : [{ type: "emoji", emoji }] });
  } catch (error) {
    failed(error);
  }
}

async function vote(message, optionIds) {
  try {
    const poll = await call("answerPoll", { chat_id: state.open, message_id: message.message_id, option_ids: optionIds });
    upsert({ ...message, poll, _myVote: optionIds });
  } catch (error) {
    failed(error);
  }
}

// callback answers: the event stream brings them; without it, ask until answered
const pendingAnswers = new Map(); // callback_query_id -> resolve

function showAnswer(answer) {
  if (answer.url) window.open(answer.url, "_blank", "noopener,noreferrer");
  if (!answer.text) return;
  if (answer.show_alert) alertDialog(answer.text);
  else toast(answer.text);
}

async function pressButton(message, button, node) {
  node.setAttribute("aria-busy", "true");
  try {
    const query = await call("pressButton", { chat_id: state.open, message_id: message.message_id, callback_data: button.callback_data });
    const answer = await waitAnswer(query.id);
    if (answer) showAnswer(answer);
  } catch (error) {
    failed(error);
  } finally {
    node.removeAttribute("aria-busy");
  }
}

async function waitAnswer(queryId) {
  const fromStream = new Promise((resolve) => pendingAnswers.set(queryId, resolve));
  const deadline = Date.now() + 15000;
  let polled = null;
  const poll = (async () => {
    while (Date.now() < deadline && pendingAnswers.has(queryId)) {
      await sleep(state.live ? 2000 : 500);
      const answer = await call("getCallbackAnswer", { callback_query_id: queryId }).catch(() => null);
      if (answer && answer.answered) return answer;
    }
    return null;
  })();
  polled = await Promise.race([fromStream, poll]);
  pendingAnswers.delete(queryId);
  return polled;
}

async function loadImage(img, fileId) {
  try {
    if (!state.images.has(fileId)) state.images.set(fileId, await fileUrl(fileId));
    img.src = state.images.get(fileId);
  } catch {
    img.alt = `${img.alt} (could not be loaded)`;
  }
}

async function download(fileId, name) {
  try {
    const url = await fileUrl(fileId);
    const link = el("a", { href: url, download: name, hidden: true });
    document.body.append(link);
    link.click();
    link.remove();
    setTimeout(() => URL.revokeObjectURL(url), 60000);
  } catch (error) {
    failed(error);
  }
}

async function startMiniApp({ url, source, message, buttonText, opener }) {
  const chat = state.chats.get(state.open);
  const bot = message && message.from && message.from.is_bot ? message.from : bots()[0];
  if (!chat || !bot) return;
  try {
    await openMiniApp({ chatId: chat.id, botId: bot.id, botName: senderName(bot), url, source, message, buttonText, notify: toast, opener });
  } catch (error) {
    failed(error);
  }
}

// ---- live events ---------------------------------------------------------

function showTyping() {
  const names = [...state.typing.values()].map((t) => t.name);
  ui.typing.textContent = names.length ? `${names.join(", ")} ${names.length === 1 ? "is" : "are"} typing…` : "";
}

function inOpenChat(chatId) {
  return chatId === state.open;
}

function onEvent(type, data) {
  switch (type) {
    case "message":
    case "edited_message": {
      const { chat_id: chatId, message } = data;
      if (!state.chats.has(chatId)) loadChats().catch(() => {});
      if (inOpenChat(chatId)) {
        upsert(message);
        const typing = message.from && state.typing.get(message.from.id);
        if (typing) {
          clearTimeout(typing.timer);
          state.typing.delete(message.from.id);
          showTyping();
        }
      } else if (type === "message" && !isMine(message)) {
        state.unread.set(chatId, (state.unread.get(chatId) || 0) + 1);
        renderChatList();
      }
      break;
    }
    case "deleted_messages":
      if (inOpenChat(data.chat_id)) removeMessages(data.message_ids);
      break;
    case "message_reaction": {
      const message = inOpenChat(data.chat_id) && state.messages.get(data.message_id);
      if (message) upsert({ ...message, reactions: data.reactions });
      break;
    }
    case "pinned_message":
      if (inOpenChat(data.chat_id)) {
        const known = data.message_id && state.messages.get(data.message_id);
        state.pinned = data.message_id ? known || null : null;
        renderPinned();
        if (data.message_id && !known) loadPinned().catch(() => {});
      }
      break;
    case "poll": {
      const message = inOpenChat(data.chat_id) && state.messages.get(data.message_id);
      if (message) upsert({ ...message, poll: data.poll });
      break;
    }
    case "callback_answer": {
      const resolve = pendingAnswers.get(data.callback_query_id);
      if (resolve) resolve({ ...data, answered: true });
      break;
    }
    case "chat":
      if (data.chat) {
        state.chats.set(data.chat.id, data.chat);
        renderChatList();
      }
      break;
    case "chat_member":
      if (inOpenChat(data.chat_id)) loadMembers().then(loadCommands);
      loadChats().catch(() => {});
      break;
    case "chat_action": {
      if (!inOpenChat(data.chat_id) || !data.from) break;
      const id = data.from.id;
      const old = state.typing.get(id);
      if (old) clearTimeout(old.timer);
      const timer = setTimeout(() => {
        state.typing.delete(id);
        showTyping();
      }, 5000);
      state.typing.set(id, { name: senderName(data.from), timer });
      showTyping();
      break;
    }
    case "web_app_answer":
      toast(`${data.title || "The mini app"} answered`);
      break;
    case "gap":
      loadChats().catch(() => {});
      if (state.open !== null) loadHistory().catch(() => {});
      break;
    default:
      break;
  }
}

function onStreamState(value) {
  state.live = value === "live";
  if (ui.status) ui.status.textContent = { live: "live", reconnecting: "reconnecting…", unsupported: "polling", unauthorized: "logged out" }[value] || value;
  if (value === "unauthorized") logout();
  // after a reconnect, what happened meanwhile may be past what the stream resumes
  if (value === "live" && state.open !== null && state.everLive) loadHistory().catch(() => {});
  if (value === "live") state.everLive = true;
}

async function pollWhileNoStream(signal) {
  while (!signal.aborted) {
    await sleep(1500);
    if (state.open !== null) await loadHistory().catch(() => {});
  }
}

function startEvents() {
  stopEvents();
  const controller = new AbortController();
  state.events = controller;
  streamEvents(onEvent, onStreamState, controller.signal).then((supported) => {
    if (!supported) pollWhileNoStream(controller.signal);
  });
}

function stopEvents() {
  if (state.events) state.events.abort();
  state.events = null;
}

// ---- start ---------------------------------------------------------------

async function start() {
  state.me = await call("getMe");
  renderShell();
  startEvents();
  await loadChats();
  const first = [...state.chats.values()][0];
  if (first) await openChat(first.id);
}

async function boot() {
  try {
    await redeemFragment();
  } catch (error) {
    loginView(`That login link no longer works (${error.message}). Log in with a token.`);
    return;
  }
  if (!token()) {
    loginView();
    return;
  }
  try {
    await start();
  } catch (error) {
    setToken(null);
    loginView(error instanceof ApiError && error.status === 401 ? "The token is no longer valid." : error.message);
  }
}

window.addEventListener("keydown", (event) => {
  if (event.key === "Escape" && document.querySelector(".miniapp")) closeMiniApp();
});

boot();
