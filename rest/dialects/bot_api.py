"""The generic ``/v1/bot-api/...`` API over botgw's Bot API operations."""

from __future__ import annotations

from starlette.routing import BaseRoute

__all__ = ["ROUTES"]

ROUTES: list[BaseRoute] = []
