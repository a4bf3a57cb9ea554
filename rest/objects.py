"""JSON schemas of the objects the APIs return (for ``/openapi.json``).

Ids are described in the native form (decimal strings); the Telegram dialect
writes the same fields as numbers.
"""

from __future__ import annotations

from typing import Any

__all__ = ["BOT", "CHAT", "ID", "MESSAGE", "SCHEMAS", "UPDATE", "USER", "ref"]

ID: dict[str, Any] = {"type": "string", "pattern": "^-?[0-9]+$"}


def ref(name: str) -> dict[str, Any]:
    return {"$ref": f"#/components/schemas/{name}"}


USER: dict[str, Any] = {
    "type": "object",
    "required": ["id", "is_bot", "first_name"],
    "properties": {
        "id": ID,
        "is_bot": {"type": "boolean"},
        "first_name": {"type": "string"},
        "username": {"type": "string"},
        "can_join_groups": {"type": "boolean"},
        "can_read_all_group_messages": {"type": "boolean"},
        "supports_inline_queries": {"type": "boolean"},
    },
}

CHAT: dict[str, Any] = {
    "type": "object",
    "required": ["id", "type"],
    "properties": {
        "id": ID,
        "type": {"type": "string", "enum": ["private", "group"]},
        "title": {"type": "string"},
        "first_name": {"type": "string"},
        "username": {"type": "string"},
    },
}

ENTITY: dict[str, Any] = {
    "type": "object",
    "required": ["type", "offset", "length"],
    "properties": {
        "type": {"type": "string"},
        "offset": {"type": "integer"},
        "length": {"type": "integer"},
    },
}

MESSAGE: dict[str, Any] = {
    "type": "object",
    "required": ["message_id", "chat", "date"],
    "properties": {
        "message_id": ID,
        "from": ref("User"),
        "chat": ref("Chat"),
        "date": {"type": "integer"},
        "edit_date": {"type": "integer"},
        "text": {"type": "string"},
        "caption": {"type": "string"},
        "entities": {"type": "array", "items": ref("MessageEntity")},
        "reply_markup": {"type": "object"},
        "reply_to_message": {"type": "object"},
    },
}

UPDATE: dict[str, Any] = {
    "type": "object",
    "required": ["update_id"],
    "properties": {
        "update_id": ID,
        "message": ref("Message"),
        "edited_message": ref("Message"),
        "callback_query": {"type": "object"},
        "my_chat_member": {"type": "object"},
        "message_reaction": {"type": "object"},
        "poll": {"type": "object"},
        "poll_answer": {"type": "object"},
    },
}

BOT: dict[str, Any] = {
    "type": "object",
    "required": ["id", "username", "name", "privacy_mode", "active"],
    "properties": {
        "id": ID,
        "username": {"type": "string"},
        "name": {"type": "string"},
        "description": {"type": "string"},
        "owner_id": ID,
        "privacy_mode": {"type": "boolean"},
        "active": {"type": "boolean"},
        "created": {"type": "integer"},
        "token": {"type": "string"},
    },
}

SCHEMAS: dict[str, Any] = {
    "User": USER,
    "Chat": CHAT,
    "MessageEntity": ENTITY,
    "Message": MESSAGE,
    "Update": UPDATE,
    "Bot": BOT,
}
