"""The Telegram-compatible dialect: ``/bot<token>/<method>`` and file downloads."""

from __future__ import annotations

from starlette.routing import BaseRoute

__all__ = ["ROUTES"]

ROUTES: list[BaseRoute] = []
