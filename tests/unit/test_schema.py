"""Parameter validation and the OpenAPI document generated from the same definitions."""

from __future__ import annotations

import struct
import zlib
from typing import Any

import pytest

from rest.methods import BOT_METHODS, CLIENT_METHODS, MANAGE_METHODS
from rest.methods.media import sniff_image
from rest.openapi import SERVICE_PATHS, openapi_document
from rest.ratelimit import buckets_for
from rest.schema import Method, Param, check_reaction, check_reply_markup, validate_params
from shared.errors import ApiError
from shared.models import ChatRecord
from shared.settings import Settings

DESIGN_BOT_METHODS = [
    "getMe",
    "sendMessage",
    "editMessageText",
    "editMessageReplyMarkup",
    "deleteMessage",
    "forwardMessage",
    "copyMessage",
    "pinChatMessage",
    "unpinChatMessage",
    "setMessageReaction",
    "sendPhoto",
    "sendDocument",
    "sendPoll",
    "stopPoll",
    "sendChatAction",
    "answerCallbackQuery",
    "getChat",
    "getChatMember",
    "getChatMemberCount",
    "leaveChat",
    "setMyCommands",
    "getMyCommands",
    "deleteMyCommands",
    "setMyName",
    "setMyDescription",
    "getUpdates",
    "getFile",
    "getChatHistory",
]
DESIGN_CLIENT_METHODS = [
    "startBot",
    "sendMessage",
    "editMessageText",
    "deleteMessage",
    "pressButton",
    "getCallbackAnswer",
    "setMessageReaction",
    "answerPoll",
    "createGroup",
    "addChatMember",
    "removeChatMember",
    "getChats",
    "getChatHistory",
]
DESIGN_MANAGE_METHODS = ["createBot", "listBots", "getBot", "editBot", "rotateToken", "revokeBot"]


async def _noop(call: Any, p: dict[str, Any]) -> None:
    return None


def error_of(method: Method, raw: dict[str, Any], *, from_text: bool = False) -> ApiError:
    with pytest.raises(ApiError) as info:
        validate_params(method, raw, from_text=from_text)
    return info.value


def test_every_method_of_the_design_exists() -> None:
    assert set(DESIGN_BOT_METHODS) <= set(BOT_METHODS)
    assert set(DESIGN_CLIENT_METHODS) <= set(CLIENT_METHODS)
    assert set(DESIGN_MANAGE_METHODS) <= set(MANAGE_METHODS)


def test_ids_accept_strings_and_numbers_and_refuse_the_rest() -> None:
    method = Method("m", _noop, params=(Param("chat_id", "id", required=True),))
    assert validate_params(method, {"chat_id": "42"}, from_text=False) == {"chat_id": 42}
    assert validate_params(method, {"chat_id": 42}, from_text=False) == {"chat_id": 42}
    for bad in ("x", 1.5, True, [1], str(1 << 60)):
        err = error_of(method, {"chat_id": bad})
        assert err.status == 400 and err.code == "INVALID_PARAMETER"
        assert "'chat_id'" in err.description
    assert error_of(method, {}).code == "MISSING_PARAMETER"


def test_text_forms_convert_numbers_booleans_and_json() -> None:
    method = Method(
        "m",
        _noop,
        params=(
            Param("n", "int", minimum=1, maximum=5),
            Param("flag", "bool"),
            Param("markup", "object", check=check_reply_markup),
        ),
    )
    markup = '{"inline_keyboard": [[{"text": "a", "callback_data": "x"}]]}'
    args = validate_params(method, {"n": "3", "flag": "true", "markup": markup}, from_text=True)
    assert args == {
        "n": 3,
        "flag": True,
        "markup": {"inline_keyboard": [[{"text": "a", "callback_data": "x"}]]},
    }
    assert "at most 5" in error_of(method, {"n": "9"}, from_text=True).description
    assert "boolean" in error_of(method, {"flag": "yes"}, from_text=True).description
    assert "not valid JSON" in error_of(method, {"markup": "{"}, from_text=True).description


@pytest.mark.parametrize(
    ("markup", "where"),
    [
        ({}, "inline_keyboard"),
        ({"inline_keyboard": [[]]}, "inline_keyboard[0]"),
        ({"inline_keyboard": [[{"text": "a"}]]}, "exactly one"),
        ({"inline_keyboard": [[{"text": "", "callback_data": "x"}]]}, ".text"),
        ({"inline_keyboard": [[{"text": "a", "callback_data": "x" * 65}]]}, "callback_data"),
        ({"inline_keyboard": [[{"text": "a", "url": "ftp://x"}]]}, ".url"),
    ],
)
def test_bad_reply_markup_names_the_field(markup: dict[str, Any], where: str) -> None:
    with pytest.raises(ApiError) as info:
        check_reply_markup("reply_markup", markup)
    assert info.value.status == 400 and where in info.value.description


def test_reactions_normalise_and_refuse_unknown_kinds() -> None:
    assert check_reaction("reaction", ["👍", {"type": "emoji", "emoji": "👍"}]) == [
        {"type": "emoji", "emoji": "👍"}
    ]
    with pytest.raises(ApiError, match=r"reaction\[0\]"):
        check_reaction("reaction", [{"type": "custom_emoji", "custom_emoji_id": "1"}])


def test_unknown_parameters_are_ignored_as_telegram_does() -> None:
    method = BOT_METHODS["sendMessage"]
    args = validate_params(
        method, {"chat_id": 1, "text": "x", "message_effect_id": "5"}, from_text=False
    )
    assert "message_effect_id" not in args and args["text"] == "x"


def test_openapi_describes_every_route_with_request_and_result() -> None:
    document = openapi_document(
        {
            "bot": (BOT_METHODS, [["botToken"]]),
            "client": (CLIENT_METHODS, [["userToken"]]),
            "manage": (MANAGE_METHODS, [["userToken"], ["botToken", "systemBotCitation"]]),
        },
        extra_paths=SERVICE_PATHS,
    )
    paths = document["paths"]
    for prefix, methods in (("bot", BOT_METHODS), ("client", CLIENT_METHODS)):
        for name, method in methods.items():
            post = paths[f"/{prefix}/{name}"]["post"]
            assert post["responses"]["200"]["content"]["application/json"]["schema"]
            assert "requestBody" in post
            assert ("get" in paths[f"/{prefix}/{name}"]) == method.getter
    assert paths["/bot/getMe"]["post"]["security"] == [{"botToken": []}]
    assert paths["/manage/listBots"]["post"]["security"] == [
        {"userToken": []},
        {"botToken": [], "systemBotCitation": []},
    ]
    upload = paths["/bot/sendPhoto"]["post"]["requestBody"]["content"]
    assert upload["multipart/form-data"]["schema"]["properties"]["photo"]["format"] == "binary"
    for name in ("/healthz", "/readyz", "/metrics", "/openapi.json", "/bot/file/{file_path}"):
        assert name in paths
    schemas = document["components"]["schemas"]
    refs = _refs(document)
    assert refs and all(ref.split("/")[-1] in schemas for ref in refs)


def _refs(value: Any) -> set[str]:
    if isinstance(value, dict):
        found = {value["$ref"]} if "$ref" in value else set()
        for item in value.values():
            found |= _refs(item)
        return found
    if isinstance(value, list):
        return set().union(*(_refs(v) for v in value)) if value else set()
    return set()


def _png(width: int, height: int) -> bytes:
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    chunk = b"IHDR" + ihdr
    return (
        b"\x89PNG\r\n\x1a\n"
        + struct.pack(">I", len(ihdr))
        + chunk
        + struct.pack(">I", zlib.crc32(chunk))
    )


def test_image_dimensions_are_read_from_headers() -> None:
    assert sniff_image(_png(640, 480)) == ("image/png", 640, 480)
    assert sniff_image(b"GIF89a" + struct.pack("<HH", 3, 2) + b"\0" * 8) == ("image/gif", 3, 2)
    jpeg = (
        b"\xff\xd8\xff\xe0\x00\x04ab\xff\xc0\x00\x11\x08" + struct.pack(">HH", 10, 20) + b"\0" * 9
    )
    assert sniff_image(jpeg) == ("image/jpeg", 20, 10)
    assert sniff_image(b"%PDF-1.4 not an image") is None
    assert sniff_image(b"\xff\xd8\xff") is None


def test_rate_buckets_follow_the_settings() -> None:
    settings = Settings.from_env({})
    private = ChatRecord(id=7, type="private", title="", created=0)
    group = ChatRecord(id=8, type="group", title="g", created=0)
    assert buckets_for(settings, private) == [("all", 30.0, 30.0), ("p7", 1.0, 3.0)]
    assert buckets_for(settings, group) == [("all", 30.0, 30.0), ("g8", 20.0 / 60, 20.0)]
