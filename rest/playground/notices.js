// Notices: a passing one (a toast) and an alert dialog the user closes.

import { ApiError } from "./api.js";
import { el } from "./render.js";

export function toast(text, isError = false) {
  const box = document.getElementById("toasts");
  if (!box) return;
  const item = el("div", { class: `toast${isError ? " error" : ""}`, role: isError ? "alert" : "status" }, text);
  box.append(item);
  setTimeout(() => item.remove(), 5000);
}

export function alertDialog(text) {
  const dialog = el("dialog", { class: "alert", role: "alertdialog", "aria-label": "Bot says", "aria-describedby": "alert-text" });
  const ok = el("button", { type: "button", onclick: () => dialog.close() }, "OK");
  dialog.append(el("p", { id: "alert-text" }, text), ok);
  dialog.addEventListener("close", () => dialog.remove());
  document.body.append(dialog);
  dialog.showModal();
  ok.focus();
}

export function failed(error) {
  toast(error instanceof ApiError ? `${error.code}: ${error.message}` : String(error.message || error), true);
}
