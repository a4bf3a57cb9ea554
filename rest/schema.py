"""Method and parameter definitions: one source for validation and ``/openapi.json``.

Every API method is a :class:`Method` with a tuple of :class:`Param`. The same
objects validate incoming parameters (turning any mistake into a 400 envelope that
names the field) and generate the OpenAPI document. The parameters several
methods share (``chat_id``, ``reply_markup`` ...) and the validators of the
objects they carry are defined at the end.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from starlette.datastructures import UploadFile

from rest.object_schemas import ref
from rest.view import MAX_REACTIONS
from shared.codecs import CodecError, json_loads
from shared.errors import ApiError
from shared.ids import MAX_ID

__all__ = [
    "CAPTION",
    "CAPTION_PARAMS",
    "CHAT_ID",
    "FILE_ID_PATTERN",
    "MESSAGE_ID",
    "PARSE_MODE",
    "REPLY_MARKUP",
    "REPLY_PARAMETERS",
    "REPLY_TO",
    "SEND_OPTIONS",
    "SEND_TAIL",
    "Method",
    "Param",
    "check_reaction",
    "check_reply_markup",
    "reaction_param",
    "reply_target",
    "validate_params",
]

FILE_ID_PATTERN = r"[A-Za-z0-9_-]{8,128}"

Validator = Callable[[str, Any], Any]
REF_KEYBOARD: dict[str, Any] = {
    "oneOf": [
        {"$ref": "#/components/schemas/InlineKeyboardMarkup"},
        {"$ref": "#/components/schemas/ReplyKeyboardMarkup"},
        {"$ref": "#/components/schemas/ReplyKeyboardRemove"},
    ]
}


def _bad(name: str, what: str) -> ApiError:
    return ApiError(400, "INVALID_PARAMETER", f"parameter '{name}' {what}")


@dataclass(frozen=True, slots=True)
class Param:
    """One parameter: its JSON type, its constraints and how it reads from a form."""

    name: str
    type: str  # id, int, float, bool, str, object, array, file (an upload or a file_id)
    required: bool = False
    default: Any = None
    minimum: float | None = None
    maximum: float | None = None
    min_length: int | None = None
    max_length: int | None = None
    pattern: str | None = None
    choices: tuple[str, ...] | None = None
    items: str | None = None  # item type of an array of scalars
    schema: Mapping[str, Any] | None = None  # JSON schema of an object or array
    check: Validator | None = None  # extra validation of objects (reply_markup ...)
    clamp: bool = False  # out-of-range numbers are clamped instead of refused
    doc: str = ""

    def json_schema(self) -> dict[str, Any]:
        if self.type == "id":
            return {
                "oneOf": [
                    {"type": "string", "pattern": "^-?[0-9]{1,16}$"},
                    {"type": "integer", "minimum": -(MAX_ID - 1), "maximum": MAX_ID - 1},
                ],
                "description": self.doc or "an id, as a decimal string or a number",
            }
        if self.type == "file":
            return {
                "type": "string",
                "pattern": f"^{FILE_ID_PATTERN}$",
                "description": self.doc or "the file_id of a file sent before",
            }
        if self.schema is not None:
            out = dict(self.schema)
        elif self.type == "array":
            out = {"type": "array", "items": {"type": _JSON_TYPES[self.items or "str"]}}
        else:
            out = {"type": _JSON_TYPES[self.type]}
        if self.minimum is not None and not self.clamp:
            out["minimum"] = self.minimum
        if self.maximum is not None and not self.clamp:
            out["maximum"] = self.maximum
        if self.min_length is not None:
            out["minLength" if self.type == "str" else "minItems"] = self.min_length
        if self.max_length is not None:
            out["maxLength" if self.type == "str" else "maxItems"] = self.max_length
        if self.pattern is not None:
            out["pattern"] = self.pattern
        if self.choices is not None:
            out["enum"] = list(self.choices)
        if self.doc and "$ref" not in out:
            out["description"] = self.doc
        return out

    def parse(self, raw: Any, *, from_text: bool) -> Any:
        """Validate one value. ``from_text``: it came from a query string or form."""
        name = self.name
        value = raw
        if self.type == "id":
            return _parse_id(name, value)
        if self.type == "file":
            if isinstance(value, UploadFile):
                return value
            if not isinstance(value, str) or not re.fullmatch(FILE_ID_PATTERN, value):
                raise _bad(name, "must be an uploaded file (multipart) or a file_id string")
            return value
        if self.type == "int":
            if from_text and isinstance(value, str):
                value = _text_int(name, value)
            if type(value) is not int:
                raise _bad(name, "must be an integer")
            return self._range(value)
        if self.type == "float":
            if from_text and isinstance(value, str):
                try:
                    value = float(value)
                except ValueError:
                    raise _bad(name, "must be a number") from None
            if type(value) not in (int, float):
                raise _bad(name, "must be a number")
            return self._range(float(value))
        if self.type == "bool":
            if isinstance(value, str) and from_text:
                lowered = value.lower()
                if lowered in ("true", "1"):
                    return True
                if lowered in ("false", "0"):
                    return False
            if not isinstance(value, bool):
                raise _bad(name, "must be a boolean (true or false)")
            return value
        if self.type == "str":
            if not isinstance(value, str):
                raise _bad(name, "must be a string")
            if self.min_length is not None and len(value) < self.min_length:
                if self.min_length == 1:
                    raise _bad(name, "must not be empty")
                raise _bad(name, f"must be at least {self.min_length} characters long")
            if self.max_length is not None and len(value) > self.max_length:
                raise _bad(name, f"must be at most {self.max_length} characters long")
            if self.pattern is not None and not re.fullmatch(self.pattern, value):
                raise _bad(name, f"must match {self.pattern}")
            if self.choices is not None and value not in self.choices:
                raise _bad(name, "must be one of " + ", ".join(self.choices))
            return value
        if self.type in ("object", "array"):
            if isinstance(value, str | bytes) and (from_text or self.type == "object"):
                # forms carry nested objects as JSON strings (Telegram convention)
                try:
                    value = json_loads(value)
                except CodecError as exc:
                    raise _bad(name, f"is not valid JSON: {exc}") from None
            if self.type == "object" and not isinstance(value, dict):
                raise _bad(name, "must be a JSON object")
            if self.type == "array":
                if not isinstance(value, list):
                    raise _bad(name, "must be a JSON array")
                if self.min_length is not None and len(value) < self.min_length:
                    raise _bad(name, f"must have at least {self.min_length} items")
                if self.max_length is not None and len(value) > self.max_length:
                    raise _bad(name, f"must have at most {self.max_length} items")
                if self.items is not None and self.schema is None:
                    value = [
                        Param(f"{name}[{i}]", self.items).parse(v, from_text=False)
                        for i, v in enumerate(value)
                    ]
            if self.check is not None:
                value = self.check(name, value)
            return value
        raise AssertionError(f"unknown parameter type {self.type}")

    def _range(self, value: Any) -> Any:
        lo, hi = self.minimum, self.maximum
        if lo is not None and value < lo:
            if not self.clamp:
                raise _bad(self.name, f"must be at least {lo:g}")
            value = type(value)(lo)
        if hi is not None and value > hi:
            if not self.clamp:
                raise _bad(self.name, f"must be at most {hi:g}")
            value = type(value)(hi)
        return value


_JSON_TYPES = {
    "int": "integer",
    "float": "number",
    "bool": "boolean",
    "str": "string",
    "object": "object",
    "array": "array",
    "id": "string",
}


def _text_int(name: str, value: str) -> int:
    text = value.strip()
    if not re.fullmatch(r"-?[0-9]{1,18}", text):
        raise _bad(name, "must be an integer")
    return int(text)


def _parse_id(name: str, value: Any) -> int:
    if isinstance(value, str):
        value = _text_int(name, value) if value.strip() else None
        if value is None:
            raise _bad(name, "must be an id (a decimal string or a number)")
    if type(value) is not int:
        raise _bad(name, "must be an id (a decimal string or a number)")
    if not -MAX_ID < value < MAX_ID:
        raise _bad(name, "is out of range for an id")
    return int(value)


Handler = Callable[[Any, dict[str, Any]], Awaitable[Any]]


@dataclass(frozen=True, slots=True)
class Method:
    """An API method: name, parameters, handler and the schema of its result."""

    name: str
    handler: Handler
    params: tuple[Param, ...] = ()
    result: Mapping[str, Any] = field(default_factory=dict)
    summary: str = ""
    getter: bool = False  # also answers GET with query parameters
    multipart: bool = False  # accepts file uploads
    # the largest request body it accepts, from the call context (uploads)
    body_limit: Callable[[Any], int] | None = None

    def param(self, name: str) -> Param | None:
        for p in self.params:
            if p.name == name:
                return p
        return None


def validate_params(method: Method, raw: Mapping[str, Any], *, from_text: bool) -> dict[str, Any]:
    """Validate ``raw`` against ``method``; unknown names are ignored as Telegram does."""
    out: dict[str, Any] = {}
    for param in method.params:
        value = raw.get(param.name)
        if value is None or (from_text and value == "" and param.type != "str"):
            if param.required:
                raise ApiError(400, "MISSING_PARAMETER", f"parameter '{param.name}' is required")
            out[param.name] = param.default
            continue
        out[param.name] = param.parse(value, from_text=from_text)
    return out


# -- incoming objects -----------------------------------------------------------


def _invalid(text: str) -> ApiError:
    return ApiError(400, "INVALID_PARAMETER", text)


def _check_reply_keyboard(name: str, value: dict[str, Any]) -> dict[str, Any]:
    """A ReplyKeyboardMarkup: rows of buttons, each its text (sent as a message
    when pressed) and maybe a ``web_app``; its options; or ReplyKeyboardRemove."""
    if "keyboard" not in value:
        if value.get("remove_keyboard") is not True:
            raise _invalid(f"parameter '{name}' must have 'remove_keyboard': true")
        return {"remove_keyboard": True}
    rows = value["keyboard"]
    if not isinstance(rows, list) or not rows or len(rows) > 100:
        raise _invalid(f"{name}.keyboard must be an array of 1-100 rows")
    clean_rows = []
    for r, row in enumerate(rows):
        if not isinstance(row, list) or not row or len(row) > 12:
            raise _invalid(f"{name}.keyboard[{r}] must be an array of 1-12 buttons")
        clean_row = []
        for c, button in enumerate(row):
            where = f"{name}.keyboard[{r}][{c}]"
            button = {"text": button} if isinstance(button, str) else button
            text = button.get("text") if isinstance(button, dict) else None
            if not isinstance(text, str) or not 1 <= len(text) <= 128:
                raise _invalid(f"{where} must be a string or a KeyboardButton with a text")
            clean: dict[str, Any] = {"text": text}
            if button.get("web_app") is not None:
                clean["web_app"] = check_web_app_info(f"{where}.web_app", button["web_app"])
            clean_row.append(clean)
        clean_rows.append(clean_row)
    out: dict[str, Any] = {"keyboard": clean_rows}
    for flag in ("is_persistent", "resize_keyboard", "one_time_keyboard", "selective"):
        if value.get(flag) is not None:
            if not isinstance(value[flag], bool):
                raise _invalid(f"{name}.{flag} must be a boolean")
            out[flag] = value[flag]
    placeholder = value.get("input_field_placeholder")
    if placeholder is not None:
        if not isinstance(placeholder, str) or not 1 <= len(placeholder) <= 64:
            raise _invalid(f"{name}.input_field_placeholder must be 1-64 characters")
        out["input_field_placeholder"] = placeholder
    return out


def check_reply_markup(name: str, value: Any) -> Any:
    """Validate an InlineKeyboardMarkup (rows of buttons with text and one action),
    a ReplyKeyboardMarkup or a ReplyKeyboardRemove."""
    if "inline_keyboard" not in value and ("keyboard" in value or "remove_keyboard" in value):
        return _check_reply_keyboard(name, value)
    rows = value.get("inline_keyboard")
    if not isinstance(rows, list) or not rows:
        raise _invalid(f"parameter '{name}' must be an object with a non-empty 'inline_keyboard'")
    if len(rows) > 100:
        raise _invalid(f"parameter '{name}' has more than 100 rows")
    clean_rows = []
    for r, row in enumerate(rows):
        if not isinstance(row, list) or not row or len(row) > 8:
            raise _invalid(f"{name}.inline_keyboard[{r}] must be an array of 1-8 buttons")
        clean_row = []
        for c, button in enumerate(row):
            where = f"{name}.inline_keyboard[{r}][{c}]"
            if not isinstance(button, dict):
                raise _invalid(f"{where} must be an object")
            text = button.get("text")
            if not isinstance(text, str) or not 1 <= len(text) <= 128:
                raise _invalid(f"{where}.text must be a string of 1-128 characters")
            data = button.get("callback_data")
            url = button.get("url")
            web_app = button.get("web_app")
            clean: dict[str, Any] = {"text": text}
            if data is not None:
                if not isinstance(data, str) or not 1 <= len(data.encode()) <= 64:
                    raise _invalid(f"{where}.callback_data must be a string of 1-64 bytes")
                clean["callback_data"] = data
            if url is not None:
                if not isinstance(url, str) or not re.fullmatch(r"(https?|tg)://\S{1,2000}", url):
                    raise _invalid(f"{where}.url must be an http(s) URL")
                clean["url"] = url
            if web_app is not None:
                clean["web_app"] = check_web_app_info(f"{where}.web_app", web_app)
            if [data, url, web_app].count(None) != 2:
                raise _invalid(f"{where} must have exactly one of callback_data, url or web_app")
            clean_row.append(clean)
        clean_rows.append(clean_row)
    return {"inline_keyboard": clean_rows}


_LOOPBACK = frozenset({"localhost", "127.0.0.1", "::1"})


def check_web_app_url(name: str, url: Any) -> str:
    """A mini app's URL: https, or http on this machine (a developer's own server)."""
    if isinstance(url, str) and len(url) <= 2048 and not re.search(r"\s", url):
        try:
            parts = urlsplit(url)
            host = parts.hostname or ""
        except ValueError:  # e.g. an unclosed [ in the host
            host = ""
        else:
            if (parts.scheme == "https" and host) or (parts.scheme == "http" and host in _LOOPBACK):
                return url
    raise _invalid(
        f"{name} must be an https URL of at most 2048 characters "
        "(http only on localhost, 127.0.0.1 or [::1])"
    )


def check_web_app_info(name: str, value: Any) -> dict[str, str]:
    """A WebAppInfo object: ``{"url"}``."""
    if not isinstance(value, dict):
        raise _invalid(f'{name} must be a WebAppInfo object: {{"url": "https://..."}}')
    return {"url": check_web_app_url(f"{name}.url", value.get("url"))}


def check_menu_button(name: str, value: Any) -> dict[str, Any]:
    """A MenuButton: ``commands``, ``default``, or ``web_app`` with text and web_app."""
    kind = value.get("type")
    if kind in ("commands", "default"):
        return {"type": kind}
    if kind != "web_app":
        raise _invalid(f"{name}.type must be 'commands', 'web_app' or 'default'")
    text = value.get("text")
    if not isinstance(text, str) or not 1 <= len(text) <= 64:
        raise _invalid(f"{name}.text must be a string of 1-64 characters")
    return {
        "type": "web_app",
        "text": text,
        "web_app": check_web_app_info(f"{name}.web_app", value.get("web_app")),
    }


def _check_reply_parameters(name: str, value: Any) -> Any:
    message_id = value.get("message_id")
    if isinstance(message_id, str) and re.fullmatch(r"[0-9]{1,16}", message_id):
        message_id = int(message_id)
    if type(message_id) is not int or message_id < 1:
        raise _invalid(f"{name}.message_id must be a message id")
    out = {"message_id": message_id, "lenient": value.get("allow_sending_without_reply") is True}
    if value.get("chat_id") is not None:
        out["chat_id"] = _parse_id(f"{name}.chat_id", value["chat_id"])
    return out


def check_reaction(name: str, value: Any) -> list[dict[str, str]]:
    """ReactionType objects (or bare emoji strings) to ``[{type: emoji, emoji}]``."""
    out: list[dict[str, str]] = []
    for i, item in enumerate(value):
        emoji = item if isinstance(item, str) else None
        if isinstance(item, dict):
            if item.get("type") != "emoji":
                raise _invalid(f"{name}[{i}].type must be 'emoji' (the only kind supported)")
            emoji = item.get("emoji")
        if not isinstance(emoji, str) or not 1 <= len(emoji) <= 16 or emoji.isspace():
            raise _invalid(f"{name}[{i}] must be a ReactionType with a non-empty 'emoji'")
        reaction = {"type": "emoji", "emoji": emoji}
        if reaction not in out:
            out.append(reaction)
    return out


def reaction_param(*, required: bool) -> Param:
    """``reaction``: up to MAX_REACTIONS ReactionType objects (:func:`check_reaction`)."""
    return Param(
        "reaction",
        "array",
        required=required,
        max_length=MAX_REACTIONS,
        check=check_reaction,
        schema={"type": "array", "items": ref("ReactionType")},
    )


def reply_target(p: dict[str, Any]) -> tuple[int | None, bool]:
    """(message to reply to, whether a missing one may be skipped) of send params."""
    params = p.get("reply_parameters")
    if params:
        return int(params["message_id"]), bool(params["lenient"])
    if p.get("reply_to_message_id") is not None:
        return int(p["reply_to_message_id"]), bool(p.get("allow_sending_without_reply"))
    return None, False


CHAT_ID = Param("chat_id", "id", required=True, doc="the chat, as the caller knows its id")
MESSAGE_ID = Param("message_id", "id", required=True, doc="a message id in that chat")
REPLY_MARKUP = Param(
    "reply_markup",
    "object",
    check=check_reply_markup,
    schema=REF_KEYBOARD,
    doc="an InlineKeyboardMarkup, ReplyKeyboardMarkup or ReplyKeyboardRemove "
    "(a JSON string in forms)",
)
REPLY_TO = Param("reply_to_message_id", "id", doc="the message to reply to")
REPLY_PARAMETERS = Param(
    "reply_parameters",
    "object",
    check=_check_reply_parameters,
    schema={
        "type": "object",
        "required": ["message_id"],
        "properties": {
            "message_id": {"type": "integer", "minimum": 1},
            "allow_sending_without_reply": {"type": "boolean"},
        },
    },
    doc="ReplyParameters: the message to reply to",
)
PARSE_MODE = Param(
    "parse_mode",
    "str",
    choices=("HTML", "MarkdownV2", "Markdown"),
    doc="how to read formatting in the text",
)
CAPTION = Param("caption", "str", max_length=1024 * 4, doc="a caption, up to 1024 characters")
# options Telegram clients send with every message: accepted, with no effect here
SEND_OPTIONS = (
    Param("disable_notification", "bool"),
    Param("protect_content", "bool"),
    Param("allow_sending_without_reply", "bool"),
    Param("message_thread_id", "int", minimum=0, maximum=MAX_ID - 1),
)
# what every send method takes after its content: the options, a reply, a keyboard
SEND_TAIL = (*SEND_OPTIONS, REPLY_TO, REPLY_PARAMETERS, REPLY_MARKUP)
# a caption, how to read its formatting, or its entities
CAPTION_PARAMS = (CAPTION, PARSE_MODE, Param("caption_entities", "array", max_length=1000))
