"""The JSON schemas of the Telegram objects the APIs return, for ``/openapi.json``.

They describe the native form (ids as decimal strings); the Telegram dialect
writes the same fields as numbers. The objects are rendered by :mod:`rest.view`.
"""

from __future__ import annotations

from typing import Any

__all__ = ["GIFT_TYPES", "ID", "SCHEMAS", "ref"]

# the fields of AcceptedGiftTypes (getChat answers false to each)
GIFT_TYPES = (
    "unlimited_gifts",
    "limited_gifts",
    "unique_gifts",
    "premium_subscription",
    "gifts_from_channels",
)

ID: dict[str, Any] = {"type": "string", "pattern": "^-?[0-9]+$"}
_INT: dict[str, Any] = {"type": "integer"}
_STR: dict[str, Any] = {"type": "string"}
_BOOL: dict[str, Any] = {"type": "boolean"}


def ref(name: str) -> dict[str, Any]:
    return {"$ref": f"#/components/schemas/{name}"}


def _object(required: list[str], **properties: Any) -> dict[str, Any]:
    return {"type": "object", "required": required, "properties": properties}


def _array(item: dict[str, Any]) -> dict[str, Any]:
    return {"type": "array", "items": item}


USER = _object(
    ["id", "is_bot", "first_name"],
    id=ID,
    is_bot=_BOOL,
    first_name=_STR,
    username=_STR,
    can_join_groups=_BOOL,
    can_read_all_group_messages=_BOOL,
    supports_inline_queries=_BOOL,
)
CHAT = _object(
    ["id", "type"],
    id=ID,
    type={"type": "string", "enum": ["private", "group"]},
    title=_STR,
    first_name=_STR,
    username=_STR,
)
CHAT_FULL_INFO = _object(
    ["id", "type", "accent_color_id", "max_reaction_count", "accepted_gift_types"],
    id=ID,
    type={"type": "string", "enum": ["private", "group"]},
    title=_STR,
    first_name=_STR,
    username=_STR,
    accent_color_id=ID,
    max_reaction_count=_INT,
    accepted_gift_types=_object(list(GIFT_TYPES), **{k: _BOOL for k in GIFT_TYPES}),
    active_usernames=_array(_STR),
    pinned_message=ref("Message"),
)
ENTITY = _object(
    ["type", "offset", "length"],
    type=_STR,
    offset=_INT,
    length=_INT,
    url=_STR,
    language=_STR,
    custom_emoji_id=_STR,
)
WEB_APP_INFO = _object(["url"], url=_STR)
BUTTON = _object(["text"], text=_STR, callback_data=_STR, url=_STR, web_app=ref("WebAppInfo"))
MENU_BUTTON = _object(
    ["type"],
    type={"type": "string", "enum": ["commands", "web_app", "default"]},
    text=_STR,
    web_app=ref("WebAppInfo"),
)
SENT_WEB_APP_MESSAGE = _object([], inline_message_id=_STR)
REPLY_KEYBOARD = _object(
    ["keyboard"],
    keyboard=_array(_array(_object(["text"], text=_STR, web_app=ref("WebAppInfo")))),
    is_persistent=_BOOL,
    resize_keyboard=_BOOL,
    one_time_keyboard=_BOOL,
    selective=_BOOL,
    input_field_placeholder=_STR,
)
REPLY_KEYBOARD_REMOVE = _object(
    ["remove_keyboard"], remove_keyboard={"type": "boolean", "enum": [True]}
)
REACTION_COUNT = _object(["emoji", "count", "chosen"], emoji=_STR, count=_INT, chosen=_BOOL)
KEYBOARD = _object(["inline_keyboard"], inline_keyboard=_array(_array(ref("InlineKeyboardButton"))))
PHOTO_SIZE = _object(
    ["file_id", "file_unique_id", "width", "height"],
    file_id=_STR,
    file_unique_id=_STR,
    width=_INT,
    height=_INT,
    file_size=_INT,
)
DOCUMENT = _object(
    ["file_id", "file_unique_id"],
    file_id=_STR,
    file_unique_id=_STR,
    file_name=_STR,
    mime_type=_STR,
    file_size=_INT,
)
FILE = _object(
    ["file_id", "file_unique_id"], file_id=_STR, file_unique_id=_STR, file_size=_INT, file_path=_STR
)
POLL_OPTION = _object(["text", "voter_count"], persistent_id=_STR, text=_STR, voter_count=_INT)
POLL = _object(
    [
        "id",
        "question",
        "options",
        "total_voter_count",
        "is_closed",
        "is_anonymous",
        "type",
        "allows_multiple_answers",
    ],
    id=_STR,
    question=_STR,
    options=_array(ref("PollOption")),
    total_voter_count=_INT,
    is_closed=_BOOL,
    is_anonymous=_BOOL,
    type={"type": "string", "enum": ["regular", "quiz"]},
    allows_multiple_answers=_BOOL,
    allows_revoting=_BOOL,
    members_only=_BOOL,
    correct_option_id={"oneOf": [ID, _INT]},
    explanation=_STR,
    open_period=_INT,
    close_date=_INT,
)
MESSAGE = _object(
    ["message_id", "chat", "date"],
    message_id=ID,
    **{"from": ref("User")},
    chat=ref("Chat"),
    date=_INT,
    edit_date=_INT,
    text=_STR,
    entities=_array(ref("MessageEntity")),
    caption=_STR,
    caption_entities=_array(ref("MessageEntity")),
    photo=_array(ref("PhotoSize")),
    document=ref("Document"),
    poll=ref("Poll"),
    forward_origin=_object(
        ["type", "date", "sender_user"], type=_STR, date=_INT, sender_user=ref("User")
    ),
    reply_markup={
        "oneOf": [
            ref("InlineKeyboardMarkup"),
            ref("ReplyKeyboardMarkup"),
            ref("ReplyKeyboardRemove"),
        ]
    },
    reply_to_message={"type": "object"},
    via_bot=ref("User"),
    web_app_data=_object(["data", "button_text"], data=_STR, button_text=_STR),
    reactions=_array(ref("ReactionCount")),
)
MESSAGE_ID = _object(["message_id"], message_id=ID)
REACTION = _object(["type", "emoji"], type={"type": "string", "enum": ["emoji"]}, emoji=_STR)
CHAT_MEMBER = _object(
    ["status", "user"],
    status={"type": "string", "enum": ["creator", "member", "left"]},
    user=ref("User"),
    is_anonymous=_BOOL,
)
CALLBACK_QUERY = _object(
    ["id", "from", "chat_instance"],
    id=_STR,
    **{"from": ref("User")},
    message=ref("Message"),
    chat_instance=_STR,
    data=_STR,
)
CALLBACK_ANSWER = _object(
    ["id", "answered"], id=_STR, answered=_BOOL, text=_STR, show_alert=_BOOL, url=_STR
)
CHAT_MEMBER_UPDATED = _object(
    ["chat", "from", "date", "old_chat_member", "new_chat_member"],
    chat=ref("Chat"),
    **{"from": ref("User")},
    date=_INT,
    old_chat_member=ref("ChatMember"),
    new_chat_member=ref("ChatMember"),
)
MESSAGE_REACTION = _object(
    ["chat", "message_id", "date", "old_reaction", "new_reaction"],
    chat=ref("Chat"),
    message_id=ID,
    user=ref("User"),
    date=_INT,
    old_reaction=_array(ref("ReactionType")),
    new_reaction=_array(ref("ReactionType")),
)
POLL_ANSWER = _object(
    ["poll_id", "option_ids"],
    poll_id=_STR,
    user=ref("User"),
    option_ids=_array(_INT),
    option_persistent_ids=_array(_STR),
)
BOT_COMMAND = _object(["command", "description"], command=_STR, description=_STR)
UPDATE = _object(
    ["update_id"],
    update_id=ID,
    message=ref("Message"),
    edited_message=ref("Message"),
    callback_query=ref("CallbackQuery"),
    my_chat_member=ref("ChatMemberUpdated"),
    message_reaction=ref("MessageReactionUpdated"),
    poll=ref("Poll"),
    poll_answer=ref("PollAnswer"),
)
BOT = _object(
    ["id", "username", "name", "privacy_mode", "active"],
    id=ID,
    username=_STR,
    name=_STR,
    description=_STR,
    owner_id=ID,
    privacy_mode=_BOOL,
    active=_BOOL,
    created=_INT,
    token=_STR,
)

SCHEMAS: dict[str, Any] = {
    "User": USER,
    "Chat": CHAT,
    "ChatFullInfo": CHAT_FULL_INFO,
    "MessageEntity": ENTITY,
    "InlineKeyboardButton": BUTTON,
    "WebAppInfo": WEB_APP_INFO,
    "MenuButton": MENU_BUTTON,
    "ReplyKeyboardMarkup": REPLY_KEYBOARD,
    "ReplyKeyboardRemove": REPLY_KEYBOARD_REMOVE,
    "SentWebAppMessage": SENT_WEB_APP_MESSAGE,
    "ReactionCount": REACTION_COUNT,
    "InlineKeyboardMarkup": KEYBOARD,
    "PhotoSize": PHOTO_SIZE,
    "Document": DOCUMENT,
    "File": FILE,
    "PollOption": POLL_OPTION,
    "Poll": POLL,
    "Message": MESSAGE,
    "MessageId": MESSAGE_ID,
    "ReactionType": REACTION,
    "ChatMember": CHAT_MEMBER,
    "CallbackQuery": CALLBACK_QUERY,
    "CallbackAnswer": CALLBACK_ANSWER,
    "ChatMemberUpdated": CHAT_MEMBER_UPDATED,
    "MessageReactionUpdated": MESSAGE_REACTION,
    "PollAnswer": POLL_ANSWER,
    "BotCommand": BOT_COMMAND,
    "Update": UPDATE,
    "Bot": BOT,
}
