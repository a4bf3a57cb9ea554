"""Bot API methods of the webhook reader: setWebhook, deleteWebhook, getWebhookInfo.

A webhook is the reader of consumer ``default``: the dispatcher (``botgw
webhooks``) delivers the log after that consumer's committed cursor and commits
it after each accepted delivery, so switching between the gateway, polling and a
webhook loses nothing. The URL passes the SSRF guard (:mod:`shared.ssrf`) when
it is set and again before deliveries. Secrets are never shown back.
"""

from __future__ import annotations

from typing import Any

from rest.methods.updates import UPDATE_TYPES, check_update_types
from rest.schema import Method, Param
from rest.services import BotCall
from shared.bot_api_v1 import BOT_API_FORMAT, BOT_API_UPDATE_TYPES
from shared.errors import ApiError
from shared.koto import KOTO_UPDATE_TYPES
from shared.ssrf import MAX_URL_LENGTH, Allowlist, UrlRefused, resolve_target
from shared.store.readers import WEBHOOK_CONSUMER

__all__ = ["BOT", "WEBHOOK_INFO"]

# the formats with a shape for some update types only: the types they deliver
# (Koto v1's BotUpdate: messages and callbacks; the generic Bot API: messages)
SHAPED_FORMATS: dict[str, tuple[str, ...]] = {
    "koto": KOTO_UPDATE_TYPES,
    BOT_API_FORMAT: BOT_API_UPDATE_TYPES,
}
SECRET_PATTERN = r"^[A-Za-z0-9_\-]{1,256}$"
PENDING_COUNT_LIMIT = 1_000_000


async def set_webhook(call: BotCall, p: dict[str, Any]) -> bool:
    services = call.services
    bot_id = call.bot.id
    url: str = p["url"].strip()
    if not url:  # as in Telegram, an empty URL removes the webhook
        await services.store.readers.delete_webhook(
            bot_id, drop_pending=bool(p["drop_pending_updates"])
        )
        return True
    try:
        await resolve_target(url, Allowlist(services.settings.webhook_allow))
    except UrlRefused as exc:
        raise ApiError(
            400, "WEBHOOK_URL_REFUSED", f"the webhook URL is refused: {exc.reason}"
        ) from None
    reader = await services.store.log.reader(bot_id, WEBHOOK_CONSUMER)
    if reader is not None:
        raise ApiError(
            409,
            "CONSUMER_IN_USE",
            f"a live WebSocket connection reads consumer '{WEBHOOK_CONSUMER}', which a "
            "webhook would read too: close that connection first (or let it use another "
            "consumer)",
        )
    allowed = p["allowed_updates"]
    shaped = SHAPED_FORMATS.get(p["id_format"])
    if shaped is not None:
        allowed = [kind for kind in allowed or shaped if kind in shaped]
        if not allowed:
            raise ApiError(
                400,
                "INVALID_PARAMETER",
                "parameter 'allowed_updates' must name "
                + " or ".join(f"'{kind}'" for kind in shaped)
                + f" with id_format '{p['id_format']}'",
            )
    await services.store.readers.set_webhook(
        bot_id,
        url=url,
        secret=p["secret_token"],
        max_connections=p["max_connections"],
        allowed_updates=allowed,
        id_format=p["id_format"],
        drop_pending=bool(p["drop_pending_updates"]),
    )
    return True


async def delete_webhook(call: BotCall, p: dict[str, Any]) -> bool:
    await call.services.store.readers.delete_webhook(
        call.bot.id, drop_pending=bool(p["drop_pending_updates"])
    )
    return True


async def get_webhook_info(call: BotCall, p: dict[str, Any]) -> dict[str, Any]:
    webhooks = call.services.store.readers
    config = await webhooks.get_webhook(call.bot.id)
    pending = await webhooks.pending_count(call.bot.id, limit=PENDING_COUNT_LIMIT)
    info: dict[str, Any] = {
        "url": "",
        "has_custom_certificate": False,
        "pending_update_count": pending,
        "active": False,
    }
    if config is None:
        return info
    info.update(
        url=config.url,
        max_connections=config.max_connections,
        active=config.active,
        id_format=config.id_format,
        signed=config.secret is not None,
    )
    if config.allowed_updates is not None:
        info["allowed_updates"] = sorted(config.allowed_updates)
    if config.ip_address:
        info["ip_address"] = config.ip_address
    if config.last_error_date is not None:
        info["last_error_date"] = config.last_error_date
        info["last_error_message"] = config.last_error_message or ""
    return info


WEBHOOK_INFO: dict[str, Any] = {
    "type": "object",
    "required": ["url", "has_custom_certificate", "pending_update_count", "active"],
    "properties": {
        "url": {"type": "string", "description": "the webhook URL; empty when none is set"},
        "has_custom_certificate": {"type": "boolean", "enum": [False]},
        "pending_update_count": {
            "type": "integer",
            "description": "updates after the committed cursor of consumer 'default'",
        },
        "active": {
            "type": "boolean",
            "description": "false when none is set, or when delivery gave up after the last "
            "retry (see last_error_message); setWebhook again to resume",
        },
        "max_connections": {"type": "integer"},
        "allowed_updates": {
            "type": "array",
            "items": {"type": "string", "enum": list(UPDATE_TYPES)},
        },
        "id_format": {"type": "string", "enum": ["string", "number", "koto", BOT_API_FORMAT]},
        "signed": {
            "type": "boolean",
            "description": "whether deliveries are signed (a secret_token is set): "
            "X-Botgw-Signature, or X-Koto-Signature with id_format 'koto'",
        },
        "ip_address": {"type": "string", "description": "the address deliveries go to"},
        "last_error_date": {"type": "integer", "description": "unix time of the last failure"},
        "last_error_message": {"type": "string"},
    },
}

DROP_PENDING = Param(
    "drop_pending_updates",
    "bool",
    default=False,
    doc="confirm every update now in the log for consumer 'default' (they stay in the log "
    "for other consumers)",
)

BOT: tuple[Method, ...] = (
    Method(
        name="setWebhook",
        handler=set_webhook,
        summary="Deliver updates to an HTTPS URL, signed; an empty url removes it.",
        params=(
            Param(
                "url",
                "str",
                required=True,
                max_length=MAX_URL_LENGTH,
                doc="https URL to POST updates to (public addresses only); '' removes the webhook",
            ),
            Param(
                "secret_token",
                "str",
                pattern=SECRET_PATTERN,
                doc="1-256 characters A-Z a-z 0-9 _ -: the HMAC-SHA256 key of the "
                "X-Botgw-Signature header, also sent as X-Telegram-Bot-Api-Secret-Token",
            ),
            Param(
                "max_connections",
                "int",
                default=40,
                minimum=1,
                maximum=100,
                doc="deliveries in flight at once (different chats; one chat's "
                "updates always arrive in order)",
            ),
            Param(
                "allowed_updates",
                "array",
                items="str",
                check=check_update_types,
                doc="update types to deliver (others are skipped, not removed from the log)",
            ),
            DROP_PENDING,
            Param(
                "id_format",
                "str",
                default="string",
                choices=("string", "number", "koto", BOT_API_FORMAT),
                doc="the shape of delivered updates: ids as decimal strings (native), "
                "as numbers (Telegram clients), Koto v1's BotUpdate signed with "
                "X-Koto-Signature (messages and callbacks only), or the generic Bot "
                "API's message (bot-api: messages only)",
            ),
        ),
        result={"type": "boolean"},
    ),
    Method(
        name="deleteWebhook",
        handler=delete_webhook,
        summary="Remove the webhook (updates can be read by getUpdates or the gateway).",
        params=(DROP_PENDING,),
        result={"type": "boolean"},
    ),
    Method(
        name="getWebhookInfo",
        handler=get_webhook_info,
        getter=True,
        summary="The webhook, its pending update count and its last error.",
        result=WEBHOOK_INFO,
    ),
)
