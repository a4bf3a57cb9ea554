"""Koto v1's pure parts: the BotUpdate of a stored update, the signature, the
botId made of a display name, the status of an error."""

from __future__ import annotations

import hashlib
import hmac

import pytest

from rest.dialects.koto_http import koto_error, koto_status
from rest.dialects.koto_users import koto_bot_id
from shared.errors import ApiError
from shared.koto import CALLBACK, MESSAGE, bot_update, content_type, signature

MS = 1_767_225_600_123
MESSAGE_ID = MS * 1024 + 5
UPDATE_ID = (MS + 2) * 1024 + 1


def _message(text: str) -> dict[str, object]:
    return {
        "message_id": MESSAGE_ID,
        "from": {"id": 77, "is_bot": False, "first_name": "Ann"},
        "chat": {"id": 77, "type": "private"},
        "date": MS // 1000,
        "text": text,
    }


def test_a_message_is_a_message_update() -> None:
    assert bot_update(UPDATE_ID, {"message": _message("Hello bot!")}) == {
        "updateId": str(UPDATE_ID),
        "chatId": "77",
        "senderFingerprint": "77",
        "content": "Hello bot!",
        "contentType": 1,
        "timestamp": MS,
        "type": MESSAGE,
    }


def test_a_command_has_content_type_2() -> None:
    update = bot_update(UPDATE_ID, {"message": _message("/start")})
    assert update is not None and update["contentType"] == 2
    assert content_type("/help") == 2 and content_type("help /me") == 1


def test_a_caption_is_the_content_of_a_photo() -> None:
    photo = {**_message(""), "caption": "Screenshot"}
    del photo["text"]
    update = bot_update(UPDATE_ID, {"message": photo})
    assert update is not None and update["content"] == "Screenshot"


def test_a_button_press_is_a_callback_update() -> None:
    query = {
        "id": "q1",
        "from": {"id": 77, "is_bot": False, "first_name": "Ann"},
        "message": {**_message("Choose:"), "from": {"id": 9, "is_bot": True}},
        "chat_instance": "x",
        "data": "help_start",
    }
    update = bot_update(UPDATE_ID, {"callback_query": query})
    assert update == {
        "updateId": str(UPDATE_ID),
        "chatId": "77",
        "senderFingerprint": "77",
        "content": "help_start",
        "contentType": 1,
        "timestamp": MS + 2,
        "type": CALLBACK,
        "callbackData": "help_start",
        "messageId": str(MESSAGE_ID),
    }


@pytest.mark.parametrize("kind", ["edited_message", "my_chat_member", "poll", "gap"])
def test_other_updates_have_no_koto_shape(kind: str) -> None:
    assert bot_update(UPDATE_ID, {kind: {"x": 1}}) is None


def test_the_signature_is_the_hex_hmac_of_the_body() -> None:
    body = b'{"updateId":"1"}'
    expected = hmac.new(b"my_webhook_secret", body, hashlib.sha256).hexdigest()
    assert signature("my_webhook_secret", body) == expected
    assert len(expected) == 64


@pytest.mark.parametrize(
    ("name", "bot_id"),
    [
        ("MyBot", "mybot_bot"),
        ("Weather Bot", "weather_bot"),
        ("weather_bot", "weather_bot"),
        ("  42 Crème-Brûlée!  ", "cr_me_br_l_e_bot"),
        ("A" * 40, "a" * 28 + "_bot"),
        ("Ab" + "_" * 30 + "c", "ab_c_bot"),
    ],
)
def test_a_bot_id_is_made_of_the_display_name(name: str, bot_id: str) -> None:
    assert koto_bot_id(name) == bot_id
    assert len(bot_id) <= 32 and bot_id.endswith("_bot")


@pytest.mark.parametrize("name", ["", "!!!", "123", "__42__", "Привет"])
def test_a_display_name_without_a_letter_makes_no_bot_id(name: str) -> None:
    with pytest.raises(ApiError) as raised:
        koto_bot_id(name)
    assert raised.value.status == 400


@pytest.mark.parametrize(
    ("status", "code", "koto"),
    [
        (400, "INVALID_PARAMETER", 400),
        (400, "CHAT_NOT_FOUND", 404),
        (400, "MESSAGE_NOT_FOUND", 404),
        (401, "UNAUTHORIZED", 401),
        (403, "NOT_OWNER", 403),
        (404, "BOT_NOT_FOUND", 404),
        (405, "METHOD_NOT_ALLOWED", 404),
        (409, "USERNAME_TAKEN", 409),
        (412, "BOT_INACTIVE", 412),
        (413, "BODY_TOO_LARGE", 400),
        (429, "TOO_MANY_REQUESTS", 429),
        (503, "BACKEND_UNAVAILABLE", 500),
    ],
)
def test_statuses_are_the_documents(status: int, code: str, koto: int) -> None:
    assert koto_status(ApiError(status, code, "x")) == koto


def test_an_error_names_kotos_fields_and_says_when_to_retry() -> None:
    error = ApiError(400, "INVALID_PARAMETER", "parameter 'chat_id' must be an id")
    response = koto_error(error, {"chat_id": "recipientFingerprint"})
    assert response.body == b'{"error":"parameter \'recipientFingerprint\' must be an id"}'
    limited = koto_error(
        ApiError(429, "TOO_MANY_REQUESTS", "slow down", parameters={"retry_after": 2.5})
    )
    assert limited.status_code == 429 and limited.headers["retry-after"] == "3"
