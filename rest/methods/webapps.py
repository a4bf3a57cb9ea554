"""Mini apps: menu buttons, signed init data, data sent back, a query's answer.

A user opens a bot's web app from an inline button (``web_app``) of the bot's
message or from the bot's menu button; ``getWebAppInitData`` checks that the URL
is that button's and signs init data exactly as Telegram does
(:mod:`rest.webapps`), so the bot's existing validators accept it. The launch is
kept for :data:`LAUNCH_SECONDS`: ``sendWebAppData`` accepts only init data this
server signed, for the caller, still fresh, and sends the bot a message with
``web_app_data``. A launch from an inline button or the menu button carries a
``query_id`` that ``answerWebAppQuery`` answers once, with a message sent on the
user's behalf (``via_bot``) in the chat the app was opened from.
"""

from __future__ import annotations

import secrets
import time
from typing import Any

from rest.messenger import Messenger
from rest.object_schemas import ref
from rest.ratelimit import take_send_token
from rest.schema import CHAT_ID, Method, Param, check_menu_button
from rest.services import BotCall, UserCall
from rest.text import formatted
from rest.webapps import check_init_data, parse_init_data, sign_init_data
from shared.codecs import json_dumps
from shared.errors import ApiError
from shared.models import BotRecord, ChatRecord, MessageRecord, member_key

__all__ = ["BOT", "CLIENT", "LAUNCH_SECONDS"]

LAUNCH_SECONDS = 86_400  # how long signed init data is accepted (Telegram: a day)
MAX_DATA_BYTES = 4096
_SOURCES = ("inline_button", "menu_button", "keyboard_button")
_DEFAULT = {"type": "default"}


def _bad_url() -> ApiError:
    return ApiError(
        400,
        "BUTTON_URL_INVALID",
        "no web_app button of the bot with this url (and button_text) opens a web app here",
    )


async def _private_chat_of(call: BotCall, chat_id: int | None) -> ChatRecord | None:
    if chat_id is None:
        return None
    chat = await call.services.messenger.chat_for_bot(call.bot, chat_id)
    if chat.type != "private":
        raise ApiError(400, "CHAT_NOT_PRIVATE", "menu buttons are set for private chats only")
    return chat


async def set_chat_menu_button(call: BotCall, p: dict[str, Any]) -> bool:
    chat = await _private_chat_of(call, p["chat_id"])
    button = p["menu_button"]
    if button is not None and button["type"] == "default":
        button = None  # default: the chat's own goes, the bot's default applies
    webapps = call.services.store.webapps
    await webapps.set_menu_button(call.bot.id, None if chat is None else chat.id, button)
    return True


async def get_chat_menu_button(call: BotCall, p: dict[str, Any]) -> dict[str, Any]:
    chat = await _private_chat_of(call, p["chat_id"])
    webapps = call.services.store.webapps
    found = await webapps.menu_button(call.bot.id, None if chat is None else chat.id)
    return found or dict(_DEFAULT)


async def client_menu_button(call: UserCall, p: dict[str, Any]) -> dict[str, Any]:
    messenger = call.services.messenger
    chat = await messenger.chat_for_user(call.user, p["chat_id"])
    if chat.type != "private":
        return dict(_DEFAULT)  # a group has no bot's menu button
    found = await call.services.store.webapps.menu_button(chat.bot_id, chat.id)
    return found or dict(_DEFAULT)


async def _bot_of(messenger: Messenger, p: dict[str, Any], chat: ChatRecord) -> BotRecord:
    if p["bot_id"] is not None:
        bot = await messenger.db.get_bot(p["bot_id"])
    elif p["bot_username"] is not None:
        bot = await messenger.accounts.bot_by_username(p["bot_username"])
    elif chat.type == "private":
        bot = await messenger.db.get_bot(chat.bot_id)
    else:
        raise ApiError(400, "MISSING_PARAMETER", "parameter 'bot_id' or 'bot_username' is required")
    if bot is None:
        raise ApiError(404, "BOT_NOT_FOUND", "no such bot: check bot_id or bot_username")
    if await messenger.bot_in_chat(bot.id, chat) is None:
        raise ApiError(400, "BOT_NOT_IN_CHAT", "the bot is not (or no longer) in this chat")
    return bot


def _has_web_app(message: MessageRecord, url: str, text: str | None, rows_key: str) -> bool:
    for row in (message.reply_markup or {}).get(rows_key, ()):
        for button in row:
            web_app = button.get("web_app") if isinstance(button, dict) else None
            if web_app and web_app.get("url") == url and text in (None, button.get("text")):
                return True
    return False


async def _check_button(
    messenger: Messenger, chat: ChatRecord, bot: BotRecord, p: dict[str, Any]
) -> None:
    """The url must be the one of the button the app is opened from."""
    if p["source"] == "menu_button":
        button = await messenger.store.webapps.menu_button(bot.id, chat.id)
        ok = chat.type == "private" and button is not None and button["type"] == "web_app"
        if not ok or button is None or button["web_app"]["url"] != p["url"]:
            raise _bad_url()
        return
    if p["message_id"] is None:
        raise ApiError(400, "MISSING_PARAMETER", "parameter 'message_id' is required here")
    message = await messenger.message_in(chat, p["message_id"])
    rows = "inline_keyboard" if p["source"] == "inline_button" else "keyboard"
    if message.sender != member_key("b", bot.id):
        raise _bad_url()
    if not _has_web_app(message, p["url"], p["button_text"], rows):
        raise _bad_url()


async def get_web_app_init_data(call: UserCall, p: dict[str, Any]) -> dict[str, str]:
    messenger = call.services.messenger
    webapps = call.services.store.webapps
    chat = await messenger.chat_for_user(call.user, p["chat_id"])
    bot = await _bot_of(messenger, p, chat)
    await _check_button(messenger, chat, bot, p)
    if not bot.webapp_key:
        raise ApiError(
            409,
            "WEBAPP_KEY_MISSING",
            "the bot's token was issued before mini apps: its owner must rotate it once "
            "(manage rotateToken)",
        )
    shown = await messenger.view(bot.id).user(member_key("u", call.user.id))
    user: dict[str, Any] = {k: shown[k] for k in ("id", "first_name", "username") if k in shown}
    user.update(language_code="en", allows_write_to_pm=True)
    fields = {
        "auth_date": str(int(time.time())),
        "user": json_dumps(user).decode(),
        "chat_instance": messenger.chat_instance(bot.id, chat),
        "chat_type": chat.type,
    }
    if p["source"] != "keyboard_button":
        fields["query_id"] = query_id = "AAQ" + secrets.token_urlsafe(18)
        query = {"bot_id": bot.id, "user_id": call.user.id, "chat_id": chat.id}
        await webapps.save_query(query_id, query, LAUNCH_SECONDS)
    init_data, digest = sign_init_data(bytes.fromhex(bot.webapp_key), fields)
    launch = {
        "bot_id": bot.id,
        "user_id": call.user.id,
        "chat_id": chat.id,
        "button_text": p["button_text"] or "",
    }
    await webapps.save_launch(digest, launch, LAUNCH_SECONDS)
    return {"init_data": init_data, "url": p["url"]}


def _invalid_init_data() -> ApiError:
    return ApiError(
        400,
        "WEBAPP_DATA_INVALID",
        "init_data is not what getWebAppInitData gave you (unknown, altered, expired, "
        "or another user's)",
    )


async def send_web_app_data(call: UserCall, p: dict[str, Any]) -> dict[str, Any]:
    messenger = call.services.messenger
    if len(p["data"].encode()) > MAX_DATA_BYTES:
        raise ApiError(400, "DATA_TOO_LONG", f"data may be at most {MAX_DATA_BYTES} bytes")
    fields = parse_init_data(p["init_data"])
    launch = None if fields is None else await call.services.store.webapps.launch(fields["hash"])
    if launch is None or int(launch["user_id"]) != call.user.id:
        raise _invalid_init_data()
    bot = await messenger.db.get_bot(int(launch["bot_id"]))
    if bot is None or not bot.active or not bot.webapp_key:
        raise _invalid_init_data()
    checked = check_init_data(bytes.fromhex(bot.webapp_key), p["init_data"])
    if checked is None:  # e.g. the token was rotated since
        raise _invalid_init_data()
    age = time.time() - int(checked.get("auth_date") or 0)
    if not 0 <= age + 60 <= LAUNCH_SECONDS + 60:
        raise ApiError(400, "WEBAPP_DATA_EXPIRED", "init_data is too old: open the web app again")
    chat = await messenger.chat_for_user(call.user, int(launch["chat_id"]))
    if await messenger.bot_in_chat(bot.id, chat) is None:
        raise ApiError(400, "BOT_NOT_IN_CHAT", "the bot is not (or no longer) in this chat")
    button_text = p["button_text"] or launch.get("button_text", "")
    extra = {"web_app_data": {"data": p["data"], "button_text": button_text}}
    message = await messenger.user_post(
        call.user, chat, text=None, entities=None, extra=extra, to_bots=[bot]
    )
    return await messenger.view(None, user=call.user.id).message(chat, message)


def _article(result: Any) -> dict[str, Any]:
    """The text of an InlineQueryResultArticle's input_message_content, or a 400."""
    if not isinstance(result, dict) or result.get("type") != "article":
        raise ApiError(
            400, "RESULT_TYPE_INVALID", "result must be an InlineQueryResult of type 'article'"
        )
    rid, title = result.get("id"), result.get("title")
    if not isinstance(rid, str) or not 1 <= len(rid.encode()) <= 64:
        raise ApiError(400, "RESULT_ID_INVALID", "result.id must be a string of 1-64 bytes")
    if not isinstance(title, str) or not title:
        raise ApiError(400, "INVALID_PARAMETER", "result.title must be a non-empty string")
    content = result.get("input_message_content")
    if not isinstance(content, dict) or not isinstance(content.get("message_text"), str):
        raise ApiError(
            400,
            "INVALID_PARAMETER",
            "result.input_message_content must be an InputTextMessageContent (message_text)",
        )
    return content


async def answer_web_app_query(call: BotCall, p: dict[str, Any]) -> dict[str, str]:
    messenger = call.services.messenger
    webapps = call.services.store.webapps
    query_id = p["web_app_query_id"]
    query = await webapps.query(query_id)
    if query is None or int(query["bot_id"]) != call.bot.id:
        raise ApiError(
            400, "QUERY_ID_INVALID", "the web app query is unknown, expired or not yours"
        )
    content = _article(p["result"])
    source = {
        "text": content["message_text"],
        "parse_mode": content.get("parse_mode"),
        "entities": content.get("entities"),
    }
    text, entities = formatted(source, "text", "entities", limit=4096, required=True)
    if not text:
        raise ApiError(400, "MESSAGE_TEXT_EMPTY", "result's message_text is empty")
    chat = await messenger.db.get_chat(int(query["chat_id"]))
    user = await messenger.db.get_user(int(query["user_id"]))
    if chat is None or user is None or await messenger.bot_in_chat(call.bot.id, chat) is None:
        raise ApiError(400, "QUERY_ID_INVALID", "the chat of this web app query is gone")
    # the bot's send limits, as for sendMessage: a 429 here changes nothing
    await take_send_token(call.services.store, call.services.settings, call.bot.id, chat)
    if not await webapps.answer_query(query_id, LAUNCH_SECONDS):
        raise ApiError(400, "QUERY_ALREADY_ANSWERED", "this web app query was answered already")
    # marked answered first, so the message is sent once; the users' send bucket
    # does not apply (the bot answers, under its own limits, taken above)
    message = await messenger.user_post(
        user, chat, text=text, entities=entities, extra={"_via_bot": call.bot.id}, limited=False
    )
    shown = await messenger.view(None, user=user.id).message(chat, message)
    event = {
        "chat_id": chat.id,
        "web_app_query_id": query_id,
        "title": p["result"]["title"],
        "message": shown,
    }
    await messenger.events.to_user(user.id, "web_app_answer", chat.id, event)
    return {"inline_message_id": secrets.token_urlsafe(16)}


_MENU_BUTTON = {"$ref": "#/components/schemas/MenuButton"}
_OPTIONAL_CHAT = Param("chat_id", "id", doc="a private chat (none: the bot's default)")

BOT: tuple[Method, ...] = (
    Method(
        "setChatMenuButton",
        set_chat_menu_button,
        summary="Set the bot's menu button in a private chat, or its default one.",
        params=(
            _OPTIONAL_CHAT,
            Param("menu_button", "object", check=check_menu_button, schema=_MENU_BUTTON),
        ),
        result={"type": "boolean"},
    ),
    Method(
        "getChatMenuButton",
        get_chat_menu_button,
        getter=True,
        summary="The bot's menu button in a private chat, or its default one.",
        params=(_OPTIONAL_CHAT,),
        result=_MENU_BUTTON,
    ),
    Method(
        "answerWebAppQuery",
        answer_web_app_query,
        summary="Answer a web app's query: a message sent on the user's behalf.",
        params=(
            Param("web_app_query_id", "str", required=True, min_length=1, max_length=128),
            Param("result", "object", required=True, doc="an InlineQueryResultArticle"),
        ),
        result=ref("SentWebAppMessage"),
    ),
)

CLIENT: tuple[Method, ...] = (
    Method(
        "getChatMenuButton",
        client_menu_button,
        getter=True,
        summary="The menu button of a chat's bot, as it applies to that chat.",
        params=(CHAT_ID,),
        result=_MENU_BUTTON,
    ),
    Method(
        "getWebAppInitData",
        get_web_app_init_data,
        summary="Init data for a web app opened from a bot's button, signed as Telegram's.",
        params=(
            CHAT_ID,
            Param("bot_id", "id", doc="the bot (or bot_username; a private chat's by default)"),
            Param("bot_username", "str", min_length=1, max_length=64),
            Param("source", "str", required=True, choices=_SOURCES),
            Param("message_id", "id", doc="the message of the button (inline, keyboard)"),
            Param("button_text", "str", min_length=1, max_length=128),
            Param("url", "str", required=True, min_length=1, max_length=2048),
        ),
        result={
            "type": "object",
            "required": ["init_data", "url"],
            "properties": {"init_data": {"type": "string"}, "url": {"type": "string"}},
        },
    ),
    Method(
        "sendWebAppData",
        send_web_app_data,
        summary="Send the bot data from a web app: a message with web_app_data.",
        params=(
            Param("init_data", "str", required=True, min_length=1, max_length=8192),
            Param("data", "str", required=True, min_length=1, max_length=MAX_DATA_BYTES),
            Param("button_text", "str", min_length=1, max_length=128),
        ),
        result=ref("Message"),
    ),
)
