"""Webhook replies, run by the REST methods: a call a receiver answered a delivery with.

The webhook dispatcher reads the reply (``webhooks.replies``); this module carries
it out as the bot's call, through the same code as a call over HTTP: the method
table (:data:`rest.methods.BOT_METHODS`), the Telegram dialect's case-insensitive
names and spelling of parameters (:mod:`rest.telegram`), validation and the
Idempotency-Key (:func:`rest.dispatch.invoke`), and the handlers with their
visibility rules and send limits. The dispatcher holds no token: the bot is the
one whose webhook was delivered, read by id, and a revoked bot's replies are
refused as its calls are. ``getUpdates`` is refused: its long poll would hold up
the bot's deliveries (and a webhook's consumer answers it 409 anyway).

The dispatcher runs them with its own settings, so it needs the REST processes'
``BOTGW_SECRET`` (the scoped ids) and send limits (``BOTGW_RATE_*``).

The composition root hands :func:`reply_runner` to the dispatcher; it builds the
services over the dispatcher's own store.
"""

from __future__ import annotations

import asyncio
from typing import Any

from rest.dispatch import invoke
from rest.messenger import Messenger
from rest.methods import BOT_METHODS
from rest.schema import Method
from rest.services import BotCall, Services
from rest.telegram import adapt_params, find_method
from shared.blob_stores import open_blob_store
from shared.errors import ApiError
from shared.settings import Settings
from shared.store import Store, Wakeups

__all__ = ["API", "NOT_REPLIES", "WebhookReplies", "reply_runner"]

# the namespace of the replies' Idempotency-Keys, apart from those of calls over HTTP
API = "webhook"
# methods a reply may not name
NOT_REPLIES = frozenset({"getUpdates"})


class WebhookReplies:
    """Runs webhook replies as calls of their bot (see the module docstring)."""

    def __init__(self, settings: Settings, store: Store, wakeups: Wakeups) -> None:
        self.settings = settings
        self.store = store
        self.wakeups = wakeups
        self._services: Services | None = None
        self._lock = asyncio.Lock()

    async def services(self) -> Services:
        """The services, made at the first reply (the server secret is read then)."""
        async with self._lock:
            if self._services is None:
                secret = await self.store.entities.server_secret(self.settings.secret)
                self._services = Services(
                    settings=self.settings,
                    store=self.store,
                    messenger=Messenger(self.store, self.settings, secret),
                    wakeups=self.wakeups,
                    files=open_blob_store(self.settings, secret=secret),
                )
            return self._services

    async def __call__(
        self, bot_id: int, dialect: str, params: dict[str, Any], *, from_text: bool, key: str
    ) -> bool:
        """Run the reply ``params`` (``method`` and its parameters) of bot ``bot_id``
        once under Idempotency-Key ``key``; whether it was replayed. Raises
        :class:`ApiError` as the call over HTTP would."""
        services = await self.services()
        bot = await services.store.entities.get_bot(bot_id)
        if bot is None or not bot.active:
            raise ApiError(412, "BOT_INACTIVE", "this bot was revoked by its owner")
        name = params.pop("method", "")
        telegram = dialect == "telegram"
        method = find_method(name) if telegram else _native_method(name)
        if method is None:
            raise ApiError(404, "METHOD_NOT_FOUND", f"there is no method called '{name[:64]}'")
        if method.name in NOT_REPLIES:
            raise ApiError(
                400,
                "METHOD_NOT_ALLOWED",
                f"'{method.name}' cannot be a webhook reply (a long poll would hold up "
                "the bot's deliveries): call it over HTTP",
            )
        if telegram:
            params = adapt_params(method, params)
            from_text = True  # as the dialect's calls: numbers and objects as text too
        call = BotCall(
            services, bot, dialect="telegram" if telegram else "native", idempotency_key=key
        )
        _, replayed = await invoke(method, call, params, api=API, from_text=from_text)
        return replayed


def _native_method(name: str) -> Method | None:
    return BOT_METHODS.get(name) if isinstance(name, str) else None


def reply_runner(settings: Settings, store: Store, wakeups: Wakeups) -> WebhookReplies:
    """The dispatcher's runner of webhook replies (``webhooks.replies.ReplyRunnerFactory``)."""
    return WebhookReplies(settings, store, wakeups)
