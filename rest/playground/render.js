// What a message looks like: its text with entities, its media, poll, reactions
// and inline keyboard. Everything is built with DOM calls and textContent: no
// text a bot sends is ever parsed as HTML.

export function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (value === undefined || value === null || value === false) continue;
    if (key === "class") node.className = value;
    else if (key === "style") node.style.cssText = value; // CSSOM: allowed by the CSP
    else if (key === "text") node.textContent = value;
    else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else node.setAttribute(key, value === true ? "" : value);
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

function safeUrl(url) {
  try {
    const parsed = new URL(url);
    return parsed.protocol === "https:" || parsed.protocol === "http:" ? parsed.href : null;
  } catch {
    return null;
  }
}

function wrap(entity, inner, text) {
  switch (entity.type) {
    case "bold":
      return el("strong", {}, inner);
    case "italic":
      return el("em", {}, inner);
    case "underline":
      return el("u", {}, inner);
    case "strikethrough":
      return el("s", {}, inner);
    case "spoiler":
      return el("span", { class: "spoiler", tabindex: "0", title: "Spoiler", onclick: (e) => e.currentTarget.classList.add("shown") }, inner);
    case "code":
      return el("code", {}, inner);
    case "pre":
      return el("code", { class: "pre" }, inner);
    case "blockquote":
    case "expandable_blockquote":
      return el("span", { class: "quote" }, inner);
    case "url": {
      const href = safeUrl(text);
      return href ? el("a", { href, target: "_blank", rel: "noopener noreferrer" }, inner) : inner;
    }
    case "text_link": {
      const href = safeUrl(entity.url);
      return href ? el("a", { href, target: "_blank", rel: "noopener noreferrer" }, inner) : inner;
    }
    case "email":
      return el("a", { href: `mailto:${text}` }, inner);
    case "mention":
    case "text_mention":
    case "hashtag":
    case "cashtag":
    case "bot_command":
      return el("span", { class: `entity ${entity.type}` }, inner);
    default:
      return inner;
  }
}

// Text with its entities (offsets and lengths in UTF-16 units, as JS strings).
export function richText(text, entities = []) {
  const out = document.createDocumentFragment();
  const cuts = new Set([0, text.length]);
  for (const e of entities) {
    cuts.add(Math.max(0, Math.min(text.length, e.offset)));
    cuts.add(Math.max(0, Math.min(text.length, e.offset + e.length)));
  }
  const points = [...cuts].sort((a, b) => a - b);
  for (let i = 0; i + 1 < points.length; i++) {
    const [start, end] = [points[i], points[i + 1]];
    let node = document.createTextNode(text.slice(start, end));
    for (const e of entities) {
      if (e.offset <= start && end <= e.offset + e.length) {
        node = wrap(e, node, text.slice(e.offset, e.offset + e.length));
      }
    }
    out.append(node);
  }
  return out;
}

// A message in a few words: its text, caption, file name, or what it is.
export function summary(message) {
  if (message.text || message.caption) return message.text || message.caption;
  if (message.document) return message.document.file_name || "File";
  if (message.photo) return "Photo";
  if (message.poll) return `Poll: ${message.poll.question}`;
  return "Message";
}

export function senderName(user) {
  if (!user) return "";
  return user.first_name || user.username || String(user.id);
}

function time(date) {
  const d = new Date(date * 1000);
  return el("time", { datetime: d.toISOString() }, d.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" }));
}

function pollView(message, actions) {
  const poll = message.poll;
  const multiple = poll.allows_multiple_answers;
  const total = poll.options.reduce((n, o) => n + o.voter_count, 0);
  const chosen = new Set(message._myVote || []);
  const group = el("fieldset", { class: "poll", "aria-label": `Poll: ${poll.question}` });
  group.append(el("legend", {}, poll.question));
  group.append(el("div", { class: "poll-kind" }, `${poll.is_anonymous ? "Anonymous" : "Public"} ${poll.type === "quiz" ? "quiz" : "poll"}${poll.is_closed ? " · closed" : ""}`));
  poll.options.forEach((option, index) => {
    const share = total ? Math.round((100 * option.voter_count) / total) : 0;
    const correct = poll.correct_option_id === index;
    const label = `${option.text}, ${option.voter_count} vote${option.voter_count === 1 ? "" : "s"}`;
    const bar = el("span", { class: "bar", style: `width: ${share}%` });
    const body = [bar, el("span", { class: "option-text" }, option.text, correct ? " ✓" : ""), el("span", { class: "count" }, `${share}% · ${option.voter_count}`)];
    if (multiple && !poll.is_closed) {
      const box = el("input", { type: "checkbox", value: String(index), "aria-label": option.text });
      box.checked = chosen.has(index);
      group.append(el("label", { class: "option" }, box, ...body));
    } else {
      group.append(
        el(
          "button",
          {
            type: "button",
            class: `option${chosen.has(index) ? " chosen" : ""}`,
            "aria-label": `Vote for ${label}`,
            "aria-pressed": chosen.has(index) ? "true" : "false",
            disabled: poll.is_closed,
            onclick: () => actions.vote(message, [index]),
          },
          ...body,
        ),
      );
    }
  });
  const footer = el("div", { class: "poll-footer" }, `${poll.total_voter_count} voter${poll.total_voter_count === 1 ? "" : "s"}`);
  if (multiple && !poll.is_closed) {
    footer.append(
      el("button", {
        type: "button",
        text: "Vote",
        onclick: () => actions.vote(message, [...group.querySelectorAll("input:checked")].map((b) => Number(b.value))),
      }),
    );
  }
  if (chosen.size && !poll.is_closed && poll.allows_revoting !== false) {
    footer.append(el("button", { type: "button", class: "link", text: "Retract vote", onclick: () => actions.vote(message, []) }));
  }
  if (poll.explanation && poll.is_closed) footer.append(el("div", { class: "explanation" }, poll.explanation));
  group.append(footer);
  return group;
}

function keyboardView(message, actions) {
  const rows = message.reply_markup && message.reply_markup.inline_keyboard;
  if (!Array.isArray(rows)) return null;
  const box = el("div", { class: "keyboard", role: "group", "aria-label": "Inline keyboard" });
  for (const row of rows) {
    const line = el("div", { class: "row" });
    for (const button of row) {
      if (button.url && safeUrl(button.url)) {
        line.append(el("a", { class: "button", href: safeUrl(button.url), target: "_blank", rel: "noopener noreferrer", "aria-label": `${button.text} (opens a new tab)` }, button.text, " ↗"));
      } else if (button.web_app && button.web_app.url) {
        line.append(el("button", { type: "button", class: "button webapp", "aria-label": `${button.text} (mini app)`, onclick: () => actions.openWebApp({ url: button.web_app.url, source: "inline_button", message, buttonText: button.text }) }, button.text));
      } else if (button.callback_data !== undefined) {
        line.append(el("button", { type: "button", class: "button", onclick: (e) => actions.press(message, button, e.currentTarget) }, button.text));
      } else {
        line.append(el("button", { type: "button", class: "button", disabled: true, title: "not supported by the playground" }, button.text));
      }
    }
    box.append(line);
  }
  return box;
}

function mediaView(message, actions) {
  if (Array.isArray(message.photo) && message.photo.length) {
    const biggest = message.photo[message.photo.length - 1];
    const img = el("img", { class: "photo", alt: message.caption || "Photo", width: biggest.width, height: biggest.height });
    actions.loadImage(img, biggest.file_id);
    return img;
  }
  if (message.document) {
    const doc = message.document;
    const name = doc.file_name || "file";
    return el(
      "div",
      { class: "document" },
      el("span", { class: "doc-icon", "aria-hidden": "true" }, (name.split(".").pop() || "file").slice(0, 4)),
      el("span", { class: "doc-name" }, name, doc.file_size ? ` · ${Math.ceil(doc.file_size / 1024)} KB` : ""),
      el("button", { type: "button", "aria-label": `Download ${name}`, onclick: () => actions.download(doc.file_id, name) }, "Download"),
    );
  }
  return null;
}

// One message, as the user sees it; `mine` puts it on the right; `canDelete`:
// the user may delete it (their own; any in a private chat or as a group's creator).
export function messageView(message, { mine, group, canDelete, actions }) {
  const who = senderName(message.from);
  const item = el("li", { class: `message${mine ? " mine" : ""}`, id: `m${message.message_id}`, "data-message-id": String(message.message_id), "aria-label": `${who}: ${summary(message)}` });
  if (group && !mine) item.append(el("div", { class: "sender" }, who));
  if (message.reply_to_message) {
    const quoted = message.reply_to_message;
    item.append(el("a", { class: "reply-quote", href: `#m${quoted.message_id}`, onclick: (e) => { e.preventDefault(); actions.jump(quoted.message_id); } }, el("strong", {}, senderName(quoted.from)), " ", summary(quoted).slice(0, 80)));
  }
  const media = mediaView(message, actions);
  if (media) item.append(media);
  if (message.text) item.append(el("div", { class: "text" }, richText(message.text, message.entities || [])));
  if (message.caption) item.append(el("div", { class: "text" }, richText(message.caption, message.caption_entities || [])));
  if (message.poll) item.append(pollView(message, actions));
  if (message.web_app_data) item.append(el("div", { class: "service" }, `Data sent from the mini app: ${message.web_app_data.button_text || ""}`));
  const meta = el("div", { class: "meta" }, message.edit_date ? "edited " : "", time(message.date));
  item.append(meta);
  const reactions = message.reactions || [];
  if (reactions.length) {
    const chips = el("div", { class: "reactions", "aria-label": "Reactions" });
    for (const r of reactions) chips.append(el("span", { class: `chip${r.chosen ? " mine" : ""}` }, `${r.emoji} ${r.count}`));
    item.append(chips);
  }
  const keyboard = keyboardView(message, actions);
  if (keyboard) item.append(keyboard);
  const tools = el("div", { class: "tools" });
  tools.append(el("button", { type: "button", class: "tool", "aria-label": `Reply to ${who}`, onclick: () => actions.reply(message) }, "Reply"));
  tools.append(el("button", { type: "button", class: "tool", "aria-label": "React ❤", onclick: () => actions.react(message, "❤") }, "❤"));
  if (mine && message.text) tools.append(el("button", { type: "button", class: "tool", "aria-label": "Edit message", onclick: () => actions.edit(message) }, "Edit"));
  if (canDelete) tools.append(el("button", { type: "button", class: "tool", "aria-label": "Delete message", onclick: () => actions.remove(message) }, "Delete"));
  item.append(tools);
  return item;
}
