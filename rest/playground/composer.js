// The composer: a labelled text box and a "Send" button; Enter sends and
// Shift+Enter starts a new line; Reply and Edit show what they act on (Escape
// cancels); "/" opens the bots' commands as a listbox (arrows, Enter or Tab);
// a bot's reply keyboard sits under it.

import { el, senderName } from "./render.js";

export class Composer {
  constructor({ chatTitle, commands, menu, openMenu, send }) {
    this.commands = commands;
    this.menu = menu;
    this.openMenu = openMenu;
    this.send = send;
    this.replying = null;
    this.editing = null;
    this.matches = [];
    this.active = -1;

    this.placeholder = `Message ${chatTitle}`;
    this.input = el("textarea", {
      id: "composer",
      rows: "1",
      placeholder: this.placeholder,
      "aria-label": "Message",
      "aria-autocomplete": "list",
      "aria-controls": "command-list",
      "aria-expanded": "false",
      autocomplete: "off",
    });
    this.list = el("ul", { id: "command-list", role: "listbox", class: "commands", "aria-label": "Commands", hidden: true });
    this.banner = el("div", { class: "banner", hidden: true });
    this.menuButton = el("button", { type: "button", class: "menu-button", hidden: true });
    this.menuButton.addEventListener("click", () => {
      const button = this.menu();
      if (button) this.openMenu(button, this.menuButton);
    });
    this.sendButton = el("button", { type: "submit", class: "send" }, "Send");
    this.form = el("form", { class: "composer", "aria-label": "Write a message" }, this.menuButton, this.input, this.sendButton);
    this.keyboard = el("div", { class: "reply-keyboard", role: "group", "aria-label": "Bot keyboard", hidden: true });
    this.node = el("div", { class: "composer-box" }, this.banner, this.list, this.form, this.keyboard);

    this.form.addEventListener("submit", (event) => {
      event.preventDefault();
      this.submit();
    });
    this.input.addEventListener("input", () => this.complete());
    this.input.addEventListener("keydown", (event) => this.key(event));
    this.input.addEventListener("blur", () => setTimeout(() => this.closeList(), 150));
  }

  focus() {
    this.input.focus();
  }

  refresh() {
    const button = this.menu();
    this.menuButton.hidden = !button;
    if (button) {
      this.menuButton.textContent = button.text || "Menu";
      this.menuButton.setAttribute("aria-label", `${button.text || "Menu"} (mini app)`);
    }
  }

  // A bot's reply keyboard (rows of {text, web_app?}) under the composer, or
  // none; a text button sends its text, `openApp(button, node)` opens a web_app one.
  setKeyboard(markup, openApp) {
    const rows = markup && Array.isArray(markup.keyboard) ? markup.keyboard : null;
    this.keyboard.hidden = !rows;
    if (!rows) {
      this.keyboard.replaceChildren();
      this.input.placeholder = this.placeholder;
      return;
    }
    this.input.placeholder = markup.input_field_placeholder || this.placeholder;
    this.keyboard.replaceChildren(
      ...rows.map((row) =>
        el(
          "div",
          { class: "row" },
          ...row.map((raw) => {
            const button = typeof raw === "string" ? { text: raw } : raw;
            const app = button.web_app && button.web_app.url;
            const node = el("button", { type: "button", class: `button${app ? " webapp" : ""}`, "aria-label": app ? `${button.text} (mini app)` : null }, button.text);
            node.addEventListener("click", () => {
              if (app) openApp(button, node);
              else this.sendText(button.text, markup.one_time_keyboard);
            });
            return node;
          }),
        ),
      ),
    );
  }

  async sendText(text, oneTime) {
    try {
      await this.send({ text, replyTo: null, editing: null });
      if (oneTime) this.setKeyboard(null);
    } catch (error) {
      const box = document.getElementById("toasts");
      if (box) box.append(el("div", { class: "toast error", role: "alert" }, error.message));
    }
  }

  showBanner(label, text) {
    const cancel = el("button", { type: "button", class: "link", "aria-label": `Cancel ${label.toLowerCase()}`, onclick: () => this.cancel() }, "✕");
    this.banner.replaceChildren(el("strong", {}, label), " ", (text || "").slice(0, 80), cancel);
    this.banner.hidden = false;
  }

  replyTo(message) {
    this.editing = null;
    this.replying = message;
    this.showBanner(`Reply to ${senderName(message.from)}`, message.text || message.caption || "");
    this.focus();
  }

  edit(message) {
    this.replying = null;
    this.editing = message;
    this.input.value = message.text || "";
    this.showBanner("Edit message", message.text);
    this.focus();
  }

  cancel() {
    if (this.editing) this.input.value = "";
    this.replying = null;
    this.editing = null;
    this.banner.hidden = true;
    this.focus();
  }

  async submit() {
    const text = this.input.value.trim();
    if (!text) return;
    const { replying, editing } = this;
    this.sendButton.disabled = true;
    try {
      await this.send({ text, replyTo: replying, editing });
      this.input.value = "";
      this.replying = null;
      this.editing = null;
      this.banner.hidden = true;
      this.closeList();
    } catch (error) {
      const box = document.getElementById("toasts");
      if (box) box.append(el("div", { class: "toast error", role: "alert" }, error.message));
    } finally {
      this.sendButton.disabled = false;
      this.focus();
    }
  }

  complete() {
    const value = this.input.value;
    const match = /^\/(\w*)$/.exec(value);
    if (!match) {
      this.closeList();
      return;
    }
    const prefix = match[1].toLowerCase();
    this.matches = this.commands().filter((c) => c.command.startsWith(prefix));
    if (!this.matches.length) {
      this.closeList();
      return;
    }
    this.active = 0;
    this.renderList();
  }

  renderList() {
    this.list.replaceChildren(
      ...this.matches.map((c, i) =>
        el(
          "li",
          {
            id: `command-${i}`,
            role: "option",
            class: i === this.active ? "active" : "",
            "aria-selected": i === this.active ? "true" : "false",
            onmousedown: (event) => {
              event.preventDefault();
              this.choose(i);
            },
          },
          el("strong", {}, `/${c.command}`),
          " ",
          c.description,
        ),
      ),
    );
    this.list.hidden = false;
    this.input.setAttribute("aria-expanded", "true");
    this.input.setAttribute("aria-activedescendant", `command-${this.active}`);
  }

  closeList() {
    this.matches = [];
    this.active = -1;
    this.list.hidden = true;
    this.input.setAttribute("aria-expanded", "false");
    this.input.removeAttribute("aria-activedescendant");
  }

  choose(index) {
    const command = this.matches[index];
    if (!command) return;
    this.input.value = `/${command.command}`;
    this.closeList();
    this.focus();
  }

  key(event) {
    const open = !this.list.hidden && this.matches.length;
    if (open && (event.key === "ArrowDown" || event.key === "ArrowUp")) {
      event.preventDefault();
      const step = event.key === "ArrowDown" ? 1 : -1;
      this.active = (this.active + step + this.matches.length) % this.matches.length;
      this.renderList();
    } else if (open && (event.key === "Tab" || (event.key === "Enter" && !event.shiftKey && this.input.value !== `/${this.matches[this.active].command}`))) {
      event.preventDefault();
      this.choose(this.active);
    } else if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
      event.preventDefault();
      this.submit();
    } else if (event.key === "Escape") {
      if (open) this.closeList();
      else if (this.replying || this.editing) this.cancel();
    }
  }
}
