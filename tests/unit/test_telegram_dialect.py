"""The Telegram dialect's pure parts: method lookup, parameter mapping, error texts."""

from __future__ import annotations

from typing import Any

import pytest
from starlette.datastructures import Headers, UploadFile

from rest.schema import Method, Param, validate_params
from rest.telegram import adapt_params, find_method, retry_after_seconds, telegram_error
from shared.errors import ApiError


async def _nothing(call: Any, p: dict[str, Any]) -> Any:
    return None


SEND = Method(
    name="sendMessage",
    handler=_nothing,
    params=(
        Param("chat_id", "id", required=True),
        Param("text", "str", required=True),
        Param("reply_markup", "object"),
    ),
)
PHOTO = Method(
    name="sendPhoto",
    handler=_nothing,
    params=(Param("chat_id", "id", required=True), Param("photo", "str")),
    multipart=True,
)
POLL = Method(
    name="getUpdates",
    handler=_nothing,
    params=(Param("allowed_updates", "array", items="str"),),
)


def test_methods_are_found_whatever_their_case() -> None:
    table = {SEND.name: SEND}
    assert find_method("sendMessage", table) is SEND
    assert find_method("sendmessage", table) is SEND
    assert find_method("SENDMESSAGE", table) is SEND
    assert find_method("sendMessages", table) is None
    assert find_method("", table) is None
    assert find_method("send message", table) is None
    assert find_method("x" * 500, table) is None


def test_the_real_method_table_has_getme() -> None:
    found = find_method("getme")
    assert found is not None and found.name == "getMe"


def test_form_values_with_nested_json_validate_like_json_bodies() -> None:
    raw = {"chat_id": "42", "text": "hi", "reply_markup": '{"inline_keyboard": []}'}
    args = validate_params(SEND, adapt_params(SEND, raw), from_text=True)
    assert args == {"chat_id": 42, "text": "hi", "reply_markup": {"inline_keyboard": []}}


def test_numbers_are_accepted_where_strings_are_expected() -> None:
    args = validate_params(SEND, adapt_params(SEND, {"chat_id": 1, "text": 42}), from_text=True)
    assert args["text"] == "42"


def test_channel_usernames_are_refused_as_chat_not_found() -> None:
    with pytest.raises(ApiError) as info:
        adapt_params(SEND, {"chat_id": "@news", "text": "x"})
    assert info.value.status == 400 and info.value.code == "CHAT_NOT_FOUND"
    status, body, _ = telegram_error(info.value, "sendMessage")
    assert status == 400 and body["description"].startswith("Bad Request: chat not found")


def test_attach_references_resolve_to_the_uploaded_part() -> None:
    upload = UploadFile(file=None, filename="p.png", headers=Headers())  # type: ignore[arg-type]
    params = adapt_params(PHOTO, {"chat_id": "1", "photo": "attach://f1", "f1": upload})
    assert params["photo"] is upload
    with pytest.raises(ApiError) as info:
        adapt_params(PHOTO, {"chat_id": "1", "photo": "attach://missing"})
    assert info.value.status == 400 and "missing" in info.value.description
    # outside file parameters the text is just text
    plain = adapt_params(SEND, {"chat_id": "1", "text": "attach://f1"})
    assert plain["text"] == "attach://f1"


def test_update_types_botgw_never_produces_are_dropped_not_refused() -> None:
    wanted = '["message", "inline_query", "callback_query", "chat_boost"]'
    params = adapt_params(POLL, {"allowed_updates": wanted})
    assert params["allowed_updates"] == ["message", "callback_query"]
    params = adapt_params(POLL, {"allowed_updates": ["poll", "channel_post"]})
    assert params["allowed_updates"] == ["poll"]
    with pytest.raises(ApiError):
        adapt_params(POLL, {"allowed_updates": "[1, 2]"})
    with pytest.raises(ApiError):
        adapt_params(POLL, {"allowed_updates": "[not json"})


def test_set_webhook_through_this_dialect_delivers_numeric_ids() -> None:
    hook = find_method("setwebhook")
    assert hook is not None
    raw = {"url": "https://x.example/h", "secret_token": "s3cr3t", "id_format": "string"}
    args = validate_params(hook, adapt_params(hook, raw), from_text=True)
    assert args["id_format"] == "number" and args["secret_token"] == "s3cr3t"


@pytest.mark.parametrize(
    ("error", "method", "status", "description"),
    [
        (
            ApiError(400, "CHAT_NOT_FOUND", "chat not found: check chat_id"),
            "sendMessage",
            400,
            "Bad Request: chat not found",
        ),
        (
            ApiError(400, "MESSAGE_NOT_FOUND", "no such message"),
            "editMessageText",
            400,
            "Bad Request: message to edit not found",
        ),
        (
            ApiError(400, "MESSAGE_NOT_FOUND", "no such message"),
            "sendMessage",
            400,
            "Bad Request: message to be replied not found",
        ),
        (
            ApiError(400, "MESSAGE_NOT_MODIFIED", "same text"),
            "editMessageText",
            400,
            "Bad Request: message is not modified: specified new message content and reply "
            "markup are exactly the same as a current content and reply markup of the message",
        ),
        (ApiError(401, "UNAUTHORIZED", "a valid bot token is required"), "getMe", 401, None),
        (
            ApiError(412, "BOT_INACTIVE", "the bot 'x_bot' was revoked"),
            "forwardMessage",
            400,
            "Bad Request: the bot 'x_bot' was revoked",
        ),
        (
            ApiError(409, "CONFLICT", "terminated by a newer getUpdates request"),
            "getUpdates",
            409,
            "Conflict: terminated by other getUpdates request; make sure that only one bot "
            "instance is running",
        ),
        (
            ApiError(403, "CHAT_FORBIDDEN", "the user has not started the bot"),
            "sendMessage",
            403,
            "Forbidden: the user has not started the bot",
        ),
        (
            ApiError(404, "METHOD_NOT_FOUND", "method 'x' is not supported"),
            "x",
            404,
            "Not Found: method 'x' is not supported",
        ),
        (
            ApiError(503, "BACKEND_UNAVAILABLE", "the store is unavailable"),
            "getMe",
            503,
            "Service Unavailable: the store is unavailable",
        ),
    ],
)
def test_errors_read_like_telegrams(
    error: ApiError, method: str, status: int, description: str | None
) -> None:
    got_status, body, _ = telegram_error(error, method)
    assert got_status == status and body["error_code"] == status and body["ok"] is False
    assert body["code"] == error.code
    if description is None:
        assert body["description"].startswith("Unauthorized")
    else:
        assert body["description"] == description


def test_rate_limits_say_retry_after_in_whole_seconds() -> None:
    error = ApiError(429, "RATE_LIMITED", "slow down", parameters={"retry_after": 0.2})
    status, body, headers = telegram_error(error, "sendMessage")
    assert status == 429
    assert body["parameters"] == {"retry_after": 1}
    assert body["description"] == "Too Many Requests: retry after 1"
    assert headers["Retry-After"] == "1"
    assert retry_after_seconds(2.01) == 3
    assert retry_after_seconds("7") == 7
    assert retry_after_seconds(None) == 1
    assert retry_after_seconds(float("inf")) == 1
