"""The Bot API methods (DESIGN section 7), shared by the native and Telegram dialects."""

from __future__ import annotations

from typing import Any

from rest.objects import ref
from rest.schema import Method, Param
from rest.services import BotCall
from rest.updates import GET_UPDATES
from rest.webhookapi import WEBHOOK_METHODS
from shared.errors import ApiError
from shared.models import member_key

__all__ = ["BOT_METHODS", "check_reply_markup"]

MAX_TEXT = 4096


def check_reply_markup(name: str, value: Any) -> Any:
    """Validate an InlineKeyboardMarkup: rows of buttons with text and one action."""
    rows = value.get("inline_keyboard")
    if not isinstance(rows, list) or not rows:
        raise ApiError(
            400,
            "INVALID_PARAMETER",
            f"parameter '{name}' must be an object with a non-empty 'inline_keyboard' array",
        )
    if len(rows) > 100:
        raise ApiError(400, "INVALID_PARAMETER", f"parameter '{name}' has more than 100 rows")
    clean_rows = []
    for r, row in enumerate(rows):
        if not isinstance(row, list) or not row or len(row) > 8:
            raise ApiError(
                400,
                "INVALID_PARAMETER",
                f"{name}.inline_keyboard[{r}] must be an array of 1-8 buttons",
            )
        clean_row = []
        for c, button in enumerate(row):
            where = f"{name}.inline_keyboard[{r}][{c}]"
            if not isinstance(button, dict):
                raise ApiError(400, "INVALID_PARAMETER", f"{where} must be an object")
            text = button.get("text")
            if not isinstance(text, str) or not 1 <= len(text) <= 128:
                raise ApiError(
                    400, "INVALID_PARAMETER", f"{where}.text must be a string of 1-128 characters"
                )
            data = button.get("callback_data")
            url = button.get("url")
            clean: dict[str, Any] = {"text": text}
            if data is not None:
                if not isinstance(data, str) or not 1 <= len(data.encode()) <= 64:
                    raise ApiError(
                        400,
                        "INVALID_PARAMETER",
                        f"{where}.callback_data must be a string of 1-64 bytes",
                    )
                clean["callback_data"] = data
            if url is not None:
                if not isinstance(url, str) or not url.startswith(("http://", "https://", "tg://")):
                    raise ApiError(400, "INVALID_PARAMETER", f"{where}.url must be an http(s) URL")
                clean["url"] = url
            if (data is None) == (url is None):
                raise ApiError(
                    400,
                    "INVALID_PARAMETER",
                    f"{where} must have exactly one of callback_data or url",
                )
            clean_row.append(clean)
        clean_rows.append(clean_row)
    return {"inline_keyboard": clean_rows}


def reply_target(p: dict[str, Any]) -> int | None:
    """``reply_to_message_id`` or the newer ``reply_parameters.message_id``."""
    if p.get("reply_to_message_id") is not None:
        return int(p["reply_to_message_id"])
    params = p.get("reply_parameters")
    if params:
        message_id = params.get("message_id")
        if type(message_id) is not int and not (
            isinstance(message_id, str) and message_id.isdigit()
        ):
            raise ApiError(
                400, "INVALID_PARAMETER", "reply_parameters.message_id must be a message id"
            )
        return int(message_id)
    return None


async def get_me(call: BotCall, p: dict[str, Any]) -> dict[str, Any]:
    bot = call.bot
    return {
        "id": bot.id,
        "is_bot": True,
        "first_name": bot.name,
        "username": bot.username,
        "can_join_groups": True,
        "can_read_all_group_messages": not bot.privacy_mode,
        "supports_inline_queries": False,
    }


async def send_message(call: BotCall, p: dict[str, Any]) -> dict[str, Any]:
    messenger = call.services.messenger
    chat = await messenger.chat_for_bot(call.bot, p["chat_id"])
    message = await messenger.new_message(
        chat,
        member_key("b", call.bot.id),
        text=p["text"],
        entities=p["entities"],
        reply_to=reply_target(p),
        reply_markup=p["reply_markup"],
    )
    return await messenger.render_message(call.bot.id, chat, message)


CHAT_ID = Param("chat_id", "id", required=True, doc="chat id as the bot sees it")
REPLY_MARKUP = Param(
    "reply_markup",
    "object",
    check=check_reply_markup,
    doc="an InlineKeyboardMarkup (a JSON string in forms)",
)
REPLY_TO = Param("reply_to_message_id", "id")
REPLY_PARAMETERS = Param("reply_parameters", "object")

BOT_METHODS: dict[str, Method] = {
    m.name: m
    for m in (
        Method(
            name="getMe",
            handler=get_me,
            getter=True,
            summary="The bot's own User object.",
            result=ref("User"),
        ),
        Method(
            name="sendMessage",
            handler=send_message,
            summary="Send a text message.",
            params=(
                CHAT_ID,
                Param("text", "str", required=True, min_length=1, max_length=MAX_TEXT),
                Param("parse_mode", "str", choices=("HTML", "Markdown", "MarkdownV2")),
                Param("entities", "array", max_length=100),
                Param("disable_notification", "bool"),
                Param("protect_content", "bool"),
                Param("link_preview_options", "object"),
                REPLY_TO,
                REPLY_PARAMETERS,
                REPLY_MARKUP,
            ),
            result=ref("Message"),
        ),
        GET_UPDATES,
        *WEBHOOK_METHODS.values(),
    )
}
