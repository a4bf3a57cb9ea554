// Mini apps: a bot's page in a sandboxed frame beside the chat, with Telegram's
// web bridge on the page's side (postMessage events named as Telegram names them).
//
// The frame gets allow-scripts and allow-forms; allow-same-origin only when the
// mini app's origin is not the playground's own, so a same-origin page can never
// reach the playground's sessionStorage (where the user's token is).

import { call } from "./api.js";
import { el } from "./render.js";

const THEME = {
  bg_color: "#ffffff",
  text_color: "#1b1f23",
  hint_color: "#6b7280",
  link_color: "#2563eb",
  button_color: "#2563eb",
  button_text_color: "#ffffff",
  secondary_bg_color: "#f1f5f9",
};

let current = null;

function post(frame, origin, eventType, eventData) {
  if (!frame.contentWindow) return;
  const message = JSON.stringify(eventData === undefined ? { eventType } : { eventType, eventData });
  frame.contentWindow.postMessage(message, origin);
}

export function closeMiniApp() {
  if (!current) return;
  window.removeEventListener("message", current.listener);
  current.panel.remove();
  const opener = current.opener;
  current = null;
  if (opener && opener.isConnected) opener.focus();
}

// Open `url` for the bot `botId` of chat `chatId`; `source` is "inline_button" (with
// the message and the button's text), "menu_button" or "keyboard_button".
export async function openMiniApp({ chatId, botId, botName, url, source, message, buttonText, notify, opener }) {
  closeMiniApp();
  const params = { chat_id: chatId, bot_id: botId, source, url };
  if (message) params.message_id = message.message_id;
  if (buttonText) params.button_text = buttonText;
  const launch = await call("getWebAppInitData", params);
  const appUrl = new URL(launch.url || url, location.href);
  // a page on the web only: never javascript:, data: or blob:, which would run
  // with an origin of the playground's
  if (appUrl.protocol !== "https:" && appUrl.protocol !== "http:") throw new Error("a mini app must be an http(s) page");
  const crossOrigin = appUrl.origin !== location.origin;
  const fragment = new URLSearchParams({
    tgWebAppData: launch.init_data,
    tgWebAppVersion: "7.0",
    tgWebAppPlatform: "web",
    tgWebAppThemeParams: JSON.stringify(THEME),
  });
  appUrl.hash = fragment.toString();
  const frame = el("iframe", {
    title: `Mini app of ${botName}`,
    sandbox: crossOrigin ? "allow-scripts allow-forms allow-same-origin" : "allow-scripts allow-forms",
    referrerpolicy: "no-referrer",
    allow: "",
  });
  // an opaque origin (no allow-same-origin) can only be written to as "*"
  const target = crossOrigin ? appUrl.origin : "*";
  const mainButton = el("button", { type: "button", class: "main-button", hidden: true });
  mainButton.addEventListener("click", () => post(frame, target, "main_button_pressed"));
  const panel = el(
    "aside",
    { class: "miniapp", role: "dialog", "aria-label": `Mini app: ${botName}` },
    el("header", {}, el("span", { class: "title" }, botName), el("button", { type: "button", "aria-label": "Close mini app", onclick: closeMiniApp }, "✕")),
    frame,
    mainButton,
  );
  const listener = async (event) => {
    if (event.source !== frame.contentWindow) return; // only this frame speaks the bridge
    let body = event.data;
    if (typeof body === "string") {
      try {
        body = JSON.parse(body);
      } catch {
        return;
      }
    }
    if (!body || typeof body.eventType !== "string") return;
    const data = body.eventData || {};
    switch (body.eventType) {
      case "web_app_ready":
        panel.classList.add("ready");
        break;
      case "web_app_expand":
        panel.classList.add("expanded");
        break;
      case "web_app_close":
        closeMiniApp();
        break;
      case "web_app_request_theme":
        post(frame, target, "theme_changed", { theme_params: THEME });
        break;
      case "web_app_request_viewport":
        post(frame, target, "viewport_changed", { height: frame.clientHeight, is_expanded: true, is_state_stable: true });
        break;
      case "web_app_setup_main_button":
        mainButton.hidden = !data.is_visible;
        mainButton.textContent = data.text || "Continue";
        mainButton.disabled = data.is_active === false;
        break;
      case "web_app_data_send":
        try {
          await call("sendWebAppData", { init_data: launch.init_data, data: String(data.data || ""), button_text: buttonText || botName });
          notify(`Data sent to ${botName}`);
        } catch (error) {
          notify(error.message, true);
        }
        closeMiniApp();
        break;
      case "web_app_open_link":
        if (typeof data.url === "string" && /^https?:\/\//.test(data.url)) window.open(data.url, "_blank", "noopener,noreferrer");
        break;
      default:
        break;
    }
  };
  window.addEventListener("message", listener);
  current = { panel, listener, opener };
  document.body.append(panel);
  frame.src = appUrl.href;
  panel.querySelector("header button").focus();
  return panel;
}
