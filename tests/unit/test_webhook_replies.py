"""What a webhook receiver's answer asks for (``webhooks.replies.parse_reply``)."""

from __future__ import annotations

import aiohttp
import pytest

from webhooks.replies import MAX_REPLY_BYTES, Reply, Unreadable, parse_reply, reply_key, wants_body


def test_a_json_object_with_a_method_is_a_call() -> None:
    body = b'{"method": "answerCallbackQuery", "callback_query_id": "q1", "show_alert": true}'
    assert parse_reply("application/json; charset=utf-8", body) == Reply(
        "answerCallbackQuery", {"callback_query_id": "q1", "show_alert": True}, from_text=False
    )


def test_a_form_with_a_method_is_a_call_of_text_parameters() -> None:
    body = b"method=sendMessage&chat_id=12&text=a+b%26c&disable_notification="
    assert parse_reply("application/x-www-form-urlencoded", body) == Reply(
        "sendMessage",
        {"chat_id": "12", "text": "a b&c", "disable_notification": ""},
        from_text=True,
    )


@pytest.mark.parametrize(
    ("content_type", "body"),
    [
        ("text/plain", b'{"method": "sendMessage"}'),  # not JSON by its type
        (None, b'{"method": "sendMessage"}'),
        ("application/json", b""),
        ("application/json", b"  \n"),
        ("application/json", b'{"ok": true}'),  # the receiver's own JSON, not a call
        ("application/json", b'["sendMessage"]'),
        ("application/x-www-form-urlencoded", b"ok=1"),
    ],
)
def test_anything_else_is_a_plain_confirmation(content_type: str | None, body: bytes) -> None:
    assert parse_reply(content_type, body) is None


@pytest.mark.parametrize(
    ("content_type", "body", "outcome"),
    [
        ("application/json", b'{"method": ', "malformed"),
        ("application/json", b'{"method": 7}', "malformed"),
        ("application/json", None, "malformed"),  # over the size limit
        ("application/x-www-form-urlencoded", b"method=\xff", "malformed"),
    ],
)
def test_a_reply_that_cannot_be_read_says_why(
    content_type: str, body: bytes | None, outcome: str
) -> None:
    found = parse_reply(content_type, body)
    assert isinstance(found, Unreadable) and found.outcome == outcome and found.reason


def test_only_answers_that_may_carry_a_call_are_read() -> None:
    assert wants_body("Application/JSON; charset=utf-8")
    assert wants_body("application/x-www-form-urlencoded")
    assert not wants_body("text/html") and not wants_body(None)
    assert MAX_REPLY_BYTES >= 1 << 20


def test_each_update_has_its_own_key() -> None:
    assert reply_key(1) != reply_key(2) and reply_key(5) == reply_key(5)
    assert 1 <= len(reply_key(2**53)) <= 255 and reply_key(7).isascii()


async def _aiogram_style(fields: dict[str, str], files: dict[str, bytes]) -> tuple[str, bytes]:
    """A multipart answer built as aiogram's webhook handler builds its replies."""
    writer = aiohttp.MultipartWriter("form-data", boundary="webhookBoundaryAbC-12_x")
    for name, value in fields.items():
        writer.append(value).set_content_disposition("form-data", name=name)
    for name, content in files.items():
        writer.append(content).set_content_disposition("form-data", name=name, filename=name)
    return writer.content_type, await writer.as_bytes()


@pytest.mark.asyncio
async def test_a_multipart_form_with_a_method_is_a_call() -> None:
    content_type, body = await _aiogram_style(
        {
            "method": "answerCallbackQuery",
            "callback_query_id": "q-1",
            "text": "héllo, wörld\r\n--not a boundary",
            "show_alert": "true",
        },
        {},
    )
    assert parse_reply(content_type, body) == Reply(
        "answerCallbackQuery",
        {
            "callback_query_id": "q-1",
            "text": "héllo, wörld\r\n--not a boundary",
            "show_alert": "true",
        },
        from_text=True,
    )


@pytest.mark.asyncio
async def test_a_multipart_reply_that_uploads_a_file_is_not_carried_out() -> None:
    content_type, body = await _aiogram_style(
        {"method": "sendPhoto", "chat_id": "5", "photo": "attach://photo"}, {"photo": b"\x89PNG"}
    )
    found = parse_reply(content_type, body)
    assert isinstance(found, Unreadable) and found.outcome == "unsupported"
    assert "photo" in found.reason


def test_a_broken_multipart_answer_is_malformed() -> None:
    found = parse_reply("multipart/form-data; boundary=x", b"--x\r\n\r\nno headers\r\n--x--\r\n")
    assert isinstance(found, Unreadable) and found.outcome == "malformed"
