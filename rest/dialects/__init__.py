"""The seed documents' own HTTP dialects, as thin adapters over the Bot API's
operations (``rest.methods``): each maps its routes, field names, envelope and
errors onto the same calls the native and Telegram dialects make.

* :mod:`rest.dialects.koto` serves Koto's v1 bot API under ``/v1/bot/...``;
* :mod:`rest.dialects.bot_api` serves the generic ``/v1/bot-api/...`` API.

``docs/dialects.md`` says how each maps onto botgw.
"""

from __future__ import annotations

from starlette.routing import BaseRoute

from rest.dialects.bot_api import ROUTES as BOT_API_ROUTES
from rest.dialects.koto import ROUTES as KOTO_ROUTES

__all__ = ["ROUTES"]

ROUTES: list[BaseRoute] = [*KOTO_ROUTES, *BOT_API_ROUTES]
