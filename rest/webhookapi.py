"""Bot API methods of the webhook reader: setWebhook, deleteWebhook, getWebhookInfo."""

from __future__ import annotations

from rest.schema import Method

__all__ = ["WEBHOOK_METHODS"]

WEBHOOK_METHODS: dict[str, Method] = {}
