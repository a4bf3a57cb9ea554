"""What the system bot says: its commands, its questions and its inline keyboards.

One :class:`Dialogue` answers one update at a time (:meth:`Dialogue.handle`). It
talks only in private chats; there the chat is its user's, so whatever it sends
(tokens included) reaches the bot's owner only: the management API it calls for
that user refuses another user's bot (403 ``NOT_OWNER``).

What it asked a chat last (``/newbot`` waits for a name, then a username; an edit
waits for the new text) is kept in Redis (``store.conversations``), written
before the update is acked: a restart resumes every conversation where it was.
A message that shows a token is deleted ``token_message_seconds`` after it was
sent (:meth:`Dialogue.delete_due`, run by the process every second).
"""

from __future__ import annotations

import logging
import re
import time
from typing import Any

from botgw.systembot.api import Citation, Refused, SystemBotApi
from shared.store.conversations import Conversations

__all__ = ["HELP", "Dialogue"]

log = logging.getLogger("botgw.systembot")

HELP = """I can help you create and manage bots.

/newbot - create a new bot
/mybots - your bots, with buttons to manage each
/token - issue a new token for a bot (the old one stops working)
/revoke - revoke a bot for good
/setname - change a bot's name
/setdescription - change a bot's description
/setcommands - change a bot's command list
/setprivacy - toggle privacy mode in groups
/cancel - stop what we are doing"""

_USERNAME = re.compile(r"^[a-z][a-z0-9_]{0,27}_bot$")
_COMMAND_LINE = re.compile(r"^/?([a-z0-9_]{1,32})\s*-\s*(.{1,256})$")
_TOKEN_NOTE = "Keep your token secure and store it safely: anyone who has it controls the bot."

# the commands that pick a bot from a keyboard first: command -> (action, question)
_PICKERS: dict[str, tuple[str, str]] = {
    "/token": ("token", "Choose a bot to issue a new token for."),
    "/revoke": ("revoke", "Choose a bot to revoke."),
    "/setname": ("name", "Choose a bot to change its name."),
    "/setdescription": ("desc", "Choose a bot to change its description."),
    "/setcommands": ("cmds", "Choose a bot to change its command list."),
    "/setprivacy": ("privacy", "Choose a bot to change its privacy mode."),
    "/mybots": ("bot", "Choose a bot from the list below:"),
}


def _keyboard(rows: list[list[tuple[str, str]]]) -> dict[str, Any]:
    return {
        "inline_keyboard": [
            [{"text": text, "callback_data": data} for text, data in row] for row in rows
        ]
    }


def _bot_menu(bot: dict[str, Any]) -> dict[str, Any]:
    ident = bot["id"]
    privacy = "on" if bot["privacy_mode"] else "off"
    return _keyboard(
        [
            [("Rotate token", f"token:{ident}"), ("Revoke", f"revoke:{ident}")],
            [("Edit name", f"name:{ident}"), ("Edit description", f"desc:{ident}")],
            [(f"Privacy: {privacy}", f"privacy:{ident}"), ("Commands", f"cmds:{ident}")],
        ]
    )


def _describe(bot: dict[str, Any]) -> str:
    state = "active" if bot["active"] else "revoked"
    privacy = "on" if bot["privacy_mode"] else "off"
    lines = [f"{bot['name']} @{bot['username']} ({state})", f"Privacy mode: {privacy}"]
    if bot.get("description"):
        lines.append(f"Description: {bot['description']}")
    return "\n".join(lines)


def parse_commands(text: str) -> list[dict[str, str]] | None:
    """``command - description`` lines as BotCommands; None if a line is not one."""
    commands = []
    for line in text.strip().splitlines():
        if not line.strip():
            continue
        found = _COMMAND_LINE.match(line.strip())
        if found is None:
            return None
        commands.append({"command": found[1], "description": found[2].strip()})
    return commands


class Dialogue:
    """The system bot's side of every private chat."""

    def __init__(
        self,
        api: SystemBotApi,
        conversations: Conversations,
        bot_id: int,
        *,
        token_message_seconds: int = 0,
    ) -> None:
        self.api = api
        self.conversations = conversations
        self.bot_id = bot_id
        self.token_message_seconds = token_message_seconds

    async def delete_due(self) -> int:
        """Delete the token messages whose time has come; how many were due."""
        due = await self.conversations.due(self.bot_id, int(time.time() * 1000))
        for chat_id, message_id in due:
            try:
                await self.api.bot("deleteMessage", chat_id=chat_id, message_id=message_id)
            except Refused as exc:  # deleted by the user already, say
                log.info("token message %d not deleted: %s", message_id, exc)
        return len(due)

    async def handle(self, update: dict[str, Any]) -> None:
        """Answer one update; a refusal of the API is told to the user, never raised."""
        update_id = int(update["update_id"])
        message = update.get("message")
        query = update.get("callback_query")
        try:
            if message is not None and message.get("chat", {}).get("type") == "private":
                await self._on_message(update_id, message)
            elif message is not None and str(message.get("text", "")).startswith("/"):
                await self._send(
                    update_id, message["chat"]["id"], "Please talk to me in a private chat."
                )
            elif query is not None and query.get("message"):
                await self._on_press(update_id, query)
        except Refused as exc:
            log.warning("update %d refused: %s", update_id, exc)

    # -- messages -------------------------------------------------------------

    async def _on_message(self, update_id: int, message: dict[str, Any]) -> None:
        chat_id = int(message["chat"]["id"])
        text = str(message.get("text") or "").strip()
        cite = Citation.message(update_id, chat_id, message["message_id"])
        command = text.split()[0].split("@")[0].lower() if text.startswith("/") else ""
        if command:
            await self.conversations.put(self.bot_id, chat_id, {})
        if command in ("/start", "/help"):
            await self._send(update_id, chat_id, HELP)
        elif command == "/cancel":
            await self._send(update_id, chat_id, "Done: nothing is waiting for you now.")
        elif command == "/newbot":
            await self._ask(
                update_id,
                chat_id,
                {"step": "newbot_name"},
                "Alright, a new bot. How are we going to call it? Please choose a name "
                "for your bot (3-32 characters).",
            )
        elif command in _PICKERS:
            await self._pick(cite, chat_id, *_PICKERS[command])
        elif command:
            await self._send(update_id, chat_id, "Unrecognized command. Say what? /help")
        else:
            state = await self.conversations.get(self.bot_id, chat_id)
            await self._answer(cite, chat_id, state, text)

    async def _answer(self, cite: Citation, chat_id: int, state: dict[str, Any], text: str) -> None:
        """A plain message: the answer to what the chat was asked last, if anything."""
        step = state.get("step")
        update_id = cite.update_id
        if step == "newbot_name":
            if not 3 <= len(text) <= 32:
                await self._send(update_id, chat_id, "A name is 3-32 characters. Try again.")
                return
            await self._ask(
                update_id,
                chat_id,
                {"step": "newbot_username", "name": text},
                "Good. Now let's choose a username for your bot. It must end in _bot, "
                "be 5-32 characters of lowercase letters, digits and underscores, and "
                "start with a letter: for example, tetris_bot.",
            )
        elif step == "newbot_username":
            await self._create(cite, chat_id, state, text.lower().lstrip("@"))
        elif step in ("name", "desc", "cmds"):
            await self._edit(cite, chat_id, step, int(state["bot_id"]), text)
        else:
            await self._send(update_id, chat_id, "I did not ask you anything. /help")

    async def _create(
        self, cite: Citation, chat_id: int, state: dict[str, Any], username: str
    ) -> None:
        if not (5 <= len(username) <= 32 and _USERNAME.match(username)):
            await self._send(
                cite.update_id,
                chat_id,
                "Sorry, this username is invalid: it must end in _bot and be 5-32 "
                "lowercase letters, digits and underscores, starting with a letter.",
            )
            return
        try:
            bot = await self.api.manage(
                "createBot", cite, write=True, username=username, name=state["name"]
            )
        except Refused as exc:
            if exc.code != "USERNAME_TAKEN":
                raise
            await self._send(
                cite.update_id,
                chat_id,
                "Sorry, this username is already taken. Please try something different.",
            )
            return
        await self.conversations.put(self.bot_id, chat_id, {})
        await self._send_token(
            cite.update_id,
            chat_id,
            f"Done! Congratulations on your new bot. You will find it at "
            f"@{bot['username']}.\n\nUse this token to access the HTTP API and the "
            f"gateway:\n{bot['token']}\n\n{self._token_note()}",
        )

    async def _edit(self, cite: Citation, chat_id: int, step: str, bot_id: int, text: str) -> None:
        fields: dict[str, Any]
        if step == "name":
            if not 3 <= len(text) <= 32:
                await self._send(cite.update_id, chat_id, "A name is 3-32 characters. Try again.")
                return
            fields = {"name": text}
        elif step == "desc":
            fields = {"description": "" if text == "/empty" else text[:256]}
        else:
            commands = parse_commands(text)
            if commands is None:
                await self._send(
                    cite.update_id,
                    chat_id,
                    "Send one command a line, like this:\nstart - Start the bot\nhelp - Show help",
                )
                return
            fields = {"commands": commands}
        bot = await self._manage_bot(cite, chat_id, "editBot", bot_id, **fields)
        if bot is not None:
            await self.conversations.put(self.bot_id, chat_id, {})
            await self._send(cite.update_id, chat_id, f"Success! Updated.\n{_describe(bot)}")

    # -- button presses -------------------------------------------------------

    async def _on_press(self, update_id: int, query: dict[str, Any]) -> None:
        await self.api.bot(
            "answerCallbackQuery", f"systembot-{update_id}-answer", callback_query_id=query["id"]
        )
        chat = query["message"]["chat"]
        if chat.get("type") != "private":
            return
        chat_id = int(chat["id"])
        cite = Citation.callback(update_id, str(query["id"]))
        action, _, arg = str(query.get("data", "")).partition(":")
        if not arg.isdigit():
            return
        bot_id = int(arg)
        if action == "bot":
            bot = await self._manage_bot(cite, chat_id, "getBot", bot_id)
            if bot is not None:
                await self._send(update_id, chat_id, _describe(bot), markup=_bot_menu(bot))
        elif action == "token":
            bot = await self._manage_bot(cite, chat_id, "rotateToken", bot_id)
            if bot is not None:
                await self._send_token(
                    update_id,
                    chat_id,
                    f"The new token of @{bot['username']} is:\n{bot['token']}\n\nThe old "
                    f"one stopped working. {self._token_note()}",
                )
        elif action == "revoke":
            bot = await self._manage_bot(cite, chat_id, "getBot", bot_id)
            if bot is not None:
                await self._send(
                    update_id,
                    chat_id,
                    f"Revoke @{bot['username']} for good? Its token stops working and "
                    "it cannot be brought back.",
                    markup=_keyboard([[("Yes, revoke it", f"revoke!:{bot_id}")]]),
                )
        elif action == "revoke!":
            bot = await self._manage_bot(cite, chat_id, "revokeBot", bot_id)
            if bot is not None:
                await self._send(update_id, chat_id, f"@{bot['username']} is revoked.")
        elif action == "privacy":
            bot = await self._manage_bot(cite, chat_id, "getBot", bot_id)
            if bot is not None:
                await self._send(
                    update_id,
                    chat_id,
                    f"Privacy mode of @{bot['username']} is "
                    f"{'on' if bot['privacy_mode'] else 'off'}. In privacy mode a bot in "
                    "a group hears only commands and replies to it.",
                    markup=_keyboard(
                        [[("Enable", f"privacy+:{bot_id}"), ("Disable", f"privacy-:{bot_id}")]]
                    ),
                )
        elif action in ("privacy+", "privacy-"):
            on = action == "privacy+"
            bot = await self._manage_bot(cite, chat_id, "editBot", bot_id, privacy_mode=on)
            if bot is not None:
                await self._send(update_id, chat_id, f"Success! Updated.\n{_describe(bot)}")
        elif action in ("name", "desc", "cmds"):
            bot = await self._manage_bot(cite, chat_id, "getBot", bot_id)
            if bot is not None:
                question = {
                    "name": "Send me the new name (3-32 characters).",
                    "desc": "Send me the new description (up to 256 characters, /empty for none).",
                    "cmds": "Send me the list of commands, one a line:\n"
                    "command1 - Description\ncommand2 - Another description",
                }[action]
                await self._ask(
                    update_id,
                    chat_id,
                    {"step": action, "bot_id": bot_id},
                    f"@{bot['username']}: {question}",
                )

    # -- helpers --------------------------------------------------------------

    async def _pick(self, cite: Citation, chat_id: int, action: str, question: str) -> None:
        """A keyboard of the user's bots, each button making ``action`` on one."""
        bots = await self.api.manage("listBots", cite, write=False)
        live = [b for b in bots if b["active"] or action == "bot"]
        if not live:
            await self._send(
                cite.update_id, chat_id, "You have no bots yet. Use /newbot to create one."
            )
            return
        rows = [[(f"@{b['username']}", f"{action}:{b['id']}")] for b in live]
        await self._send(cite.update_id, chat_id, question, markup=_keyboard(rows))

    async def _manage_bot(
        self, cite: Citation, chat_id: int, method: str, bot_id: int, **params: Any
    ) -> dict[str, Any] | None:
        """``method`` on one of the user's bots; None, with the user told why, if refused."""
        try:
            result: dict[str, Any] = await self.api.manage(
                method, cite, write=method != "getBot", bot_id=bot_id, **params
            )
        except Refused as exc:
            reasons = {
                "NOT_OWNER": "That is not one of your bots.",
                "BOT_NOT_FOUND": "There is no such bot.",
                "BOT_INACTIVE": "That bot was revoked.",
                "CITATION_INVALID": "That was a while ago: please start again. /help",
            }
            if exc.code not in reasons and exc.status != 400:
                raise
            await self._send(cite.update_id, chat_id, reasons.get(exc.code, exc.description))
            return None
        return result

    def _token_note(self) -> str:
        seconds = self.token_message_seconds
        if not seconds:
            return _TOKEN_NOTE
        minutes = f"{seconds // 60} minutes" if seconds >= 120 else f"{seconds} seconds"
        return f"{_TOKEN_NOTE} I will delete it in {minutes}."

    async def _send_token(self, update_id: int, chat_id: int, text: str) -> None:
        """Send a message showing a token, to be deleted in ``token_message_seconds``."""
        sent = await self._send(update_id, chat_id, text)
        if self.token_message_seconds:
            at_ms = int((time.time() + self.token_message_seconds) * 1000)
            await self.conversations.doom(self.bot_id, chat_id, int(sent["message_id"]), at_ms)

    async def _ask(self, update_id: int, chat_id: int, state: dict[str, Any], text: str) -> None:
        await self.conversations.put(self.bot_id, chat_id, state)
        await self._send(update_id, chat_id, text)

    async def _send(
        self, update_id: int, chat_id: int, text: str, *, markup: dict[str, Any] | None = None
    ) -> dict[str, Any]:
        params: dict[str, Any] = {"chat_id": chat_id, "text": text}
        if markup is not None:
            params["reply_markup"] = markup
        # one message per update: a replay of the update sends it once
        sent: dict[str, Any] = await self.api.bot(
            "sendMessage", f"systembot-{update_id}-send", **params
        )
        return sent
