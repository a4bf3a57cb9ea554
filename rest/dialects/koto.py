"""Koto's v1 bot API (``/v1/bot/...``) over botgw's Bot API operations."""

from __future__ import annotations

from starlette.routing import BaseRoute

__all__ = ["ROUTES"]

ROUTES: list[BaseRoute] = []
