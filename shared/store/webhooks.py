"""Webhook settings and delivery state of each bot (``store.webhooks``)."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from shared.store import Store

__all__ = ["WebhookStore"]


class WebhookStore:
    def __init__(self, store: Store) -> None:
        self._store = store
        self._redis = store.redis
