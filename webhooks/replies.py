"""Webhook replies: a Bot API call a receiver makes in its answer to a delivery.

Telegram lets a bot answer a webhook delivery with ``{"method": "...", ...}`` and
carries the call out; libraries do this on their own (telegraf does it by default
for answerCallbackQuery, sendChatAction, deleteMessage ...). The dispatcher does
the same with every 2xx answer whose body is such a call:

* ``Content-Type: application/json`` and a JSON object with a string ``method``,
  the other fields its parameters; or a form (``application/x-www-form-urlencoded``,
  or ``multipart/form-data`` as aiogram answers) with a ``method`` field. Any other
  answer (no body, text, a JSON object without ``method``) is just a confirmation.
  A form that uploads a file is not carried out (``unsupported``): the call would
  need the file stored first, which is REST's work;
* the call is run by a :class:`ReplyRunner` the composition root hands the
  dispatcher (``rest.webhook_replies``: the REST method table itself, with the
  same validation, visibility and send limits as a call over HTTP), in the dialect
  of the webhook (``id_format`` ``number``: Telegram's, else the native one);
* it runs once per update, under the Idempotency-Key :func:`reply_key`: an update
  delivered again (its answer was lost, or a dispatcher crashed before committing
  it) is answered with the same reply, which is then replayed, not repeated;
* it runs after the answer and before the update is committed (and before the
  next update of its chat is delivered), so a crash in between repeats the
  delivery, not the call;
* as on Telegram its result is not learnt by anyone: a reply that fails (a wrong
  parameter, an unknown method, a send limit) is logged with the bot id and
  counted in ``botgw_webhook_replies_total{outcome}``, and the update stays
  delivered: it is not retried for it.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass
from email import policy
from email.parser import BytesParser
from typing import Any, Protocol
from urllib.parse import parse_qsl

from shared.codecs import CodecError, json_loads
from shared.errors import ApiError
from shared.settings import Settings
from shared.store import Store, StoreError, Wakeups
from shared.store.calls import RUNNING_TTL_MS
from webhooks import metrics

__all__ = [
    "MAX_REPLY_BYTES",
    "Reply",
    "ReplyRunner",
    "ReplyRunnerFactory",
    "Unreadable",
    "carry_out",
    "parse_reply",
    "reply_key",
    "wants_body",
]

log = logging.getLogger("botgw.webhooks")

MAX_REPLY_BYTES = 1 << 20  # as a REST call's JSON body
JSON = "application/json"
FORM = "application/x-www-form-urlencoded"
MULTIPART = "multipart/form-data"
# a reply whose run failed in the store is tried this many times, a second apart
# (it is idempotent)
RUN_TRIES = 3
RETRY_PAUSE_S = 1.0


class ReplyRunner(Protocol):
    """Runs one reply as a call of bot ``bot_id`` in ``dialect`` (``telegram`` or
    ``native``) with Idempotency-Key ``key``; whether it was replayed (an earlier
    run with the key did it). An invalid call raises :class:`ApiError`, a store
    failure :class:`StoreError`."""

    async def __call__(
        self, bot_id: int, dialect: str, params: dict[str, Any], *, from_text: bool, key: str
    ) -> bool: ...


class ReplyRunnerFactory(Protocol):
    """Builds the runner of a dispatcher, over its own store and wake-ups."""

    def __call__(self, settings: Settings, store: Store, wakeups: Wakeups) -> ReplyRunner: ...


@dataclass(frozen=True, slots=True)
class Reply:
    """The call a receiver answered with: its method, its other parameters, and
    whether they came as text (a form)."""

    method: str
    params: dict[str, Any]
    from_text: bool


@dataclass(frozen=True, slots=True)
class Unreadable:
    """An answer that meant to be a reply and cannot be one: ``outcome`` is its
    metrics label (``malformed`` or ``unsupported``)."""

    outcome: str
    reason: str


def media_type(content_type: str | None) -> str:
    return (content_type or "").split(";")[0].strip().lower()


def wants_body(content_type: str | None) -> bool:
    """Whether an answer of this type may carry a reply (and its body is read)."""
    return media_type(content_type) in (JSON, FORM, MULTIPART)


def parse_reply(content_type: str | None, body: bytes | None) -> Reply | Unreadable | None:
    """The reply in an answer's body; None when it is a plain confirmation. ``body``
    None: it was longer than :data:`MAX_REPLY_BYTES`."""
    kind = media_type(content_type)
    if kind not in (JSON, FORM, MULTIPART):
        return None
    if body is None:
        return Unreadable("malformed", f"the answer's body is over {MAX_REPLY_BYTES} bytes")
    if not body.strip():
        return None
    if kind in (FORM, MULTIPART):
        fields = _form_data(content_type or "", body) if kind == MULTIPART else _form(body)
        if isinstance(fields, Unreadable):
            return fields
        name = fields.pop("method", None)
        if name is None:
            return None
        return Reply(name, dict(fields), from_text=True)
    try:
        data = json_loads(body)
    except CodecError as exc:
        return Unreadable("malformed", f"the answer's body is not valid JSON ({exc})")
    if not isinstance(data, dict) or "method" not in data:
        return None  # some JSON of the receiver's, not a call
    name = data.pop("method")
    if not isinstance(name, str):
        return Unreadable("malformed", "the reply's 'method' must be a string")
    return Reply(name, data, from_text=False)


def _form(body: bytes) -> dict[str, str] | Unreadable:
    try:
        text = body.decode()
    except UnicodeDecodeError:
        return Unreadable("malformed", "the form answer is not UTF-8")
    return dict(parse_qsl(text, keep_blank_values=True))


def _form_data(content_type: str, body: bytes) -> dict[str, str] | Unreadable:
    """The text fields of a ``multipart/form-data`` body (the last of a repeated one)."""
    head = b"Content-Type: " + content_type.encode("latin-1", "replace") + b"\r\n\r\n"
    message = BytesParser(policy=policy.HTTP).parsebytes(head + body)
    if not message.is_multipart() or message.defects:
        return Unreadable("malformed", "the multipart answer cannot be read")
    fields: dict[str, str] = {}
    for part in message.iter_parts():
        name = part.get_param("name", header="content-disposition")
        if not isinstance(name, str) or part.defects:
            return Unreadable("malformed", "a part of the multipart answer has no name")
        if part.get_filename() is not None:
            return Unreadable(
                "unsupported", f"the reply uploads a file ('{name[:64]}'): upload it with a call"
            )
        payload = part.get_payload(decode=True)
        try:
            fields[name] = payload.decode() if isinstance(payload, bytes) else ""
        except UnicodeDecodeError:
            return Unreadable("malformed", f"the part '{name[:64]}' is not UTF-8")
    return fields


def reply_key(update_id: int) -> str:
    """The Idempotency-Key of the reply to update ``update_id`` (a bot's update ids
    are never reused, and keys are the bot's own)."""
    return f"webhook-reply:{update_id}"


async def carry_out(
    runner: ReplyRunner | None,
    bot_id: int,
    dialect: str,
    update_id: int,
    reply: Reply | Unreadable,
) -> str:
    """Run ``reply`` to update ``update_id``; its outcome (counted and, unless it
    was done, logged). Never raises but for cancellation."""
    outcome = await _run(runner, bot_id, dialect, update_id, reply)
    metrics.REPLIES.labels(outcome).inc()
    return outcome


async def _run(
    runner: ReplyRunner | None,
    bot_id: int,
    dialect: str,
    update_id: int,
    reply: Reply | Unreadable,
) -> str:
    if isinstance(reply, Unreadable):
        log.warning(
            "bot %s: the reply to update %s is not carried out: %s",
            bot_id,
            update_id,
            reply.reason,
        )
        return reply.outcome
    if runner is None:
        log.warning(
            "bot %s: the reply %s to update %s is not carried out: this dispatcher runs "
            "no Bot API methods",
            bot_id,
            reply.method,
            update_id,
        )
        return "unsupported"
    params = {"method": reply.method, **reply.params}
    problem = ""
    store_failures = 0
    # a run of the same reply by a dispatcher that died holds its key until the
    # claim expires: wait that long for it
    in_use_until = time.monotonic() + RUNNING_TTL_MS / 1000 + RETRY_PAUSE_S
    while True:
        try:
            replayed = await runner(
                bot_id, dialect, dict(params), from_text=reply.from_text, key=reply_key(update_id)
            )
        except ApiError as error:
            if error.code == "IDEMPOTENCY_KEY_IN_USE":
                problem = error.description
                if time.monotonic() >= in_use_until:
                    break
                await asyncio.sleep(RETRY_PAUSE_S)
                continue
            log.warning(
                "bot %s: the reply %s to update %s was refused: %s %s: %s",
                bot_id,
                reply.method[:64],
                update_id,
                error.status,
                error.code,
                error.description,
            )
            return "refused"
        except (StoreError, OSError) as exc:
            problem = f"the store failed: {exc}"
            store_failures += 1
            if store_failures >= RUN_TRIES:
                break
            await asyncio.sleep(RETRY_PAUSE_S)
            continue
        except Exception:  # a bug in a method: the delivery goes on
            log.exception(
                "bot %s: the reply %s to update %s failed", bot_id, reply.method, update_id
            )
            return "failed"
        return "replayed" if replayed else "done"
    log.warning(
        "bot %s: the reply %s to update %s could not be carried out: %s",
        bot_id,
        reply.method[:64],
        update_id,
        problem,
    )
    return "failed"
