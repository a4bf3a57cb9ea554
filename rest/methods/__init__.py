"""Every method of the three APIs, one module per group, gathered in one list each.

A method is one :class:`~rest.schema.Method`: its parameters, their validation,
its OpenAPI description and its handler. Handlers take integer ids and return
objects with integer ids; the dialect decides how they are written. The Bot API
methods serve both dialects (``/bot/<method>`` and Telegram's
``/bot<token>/<method>``).

==========  ===============================================================
profile     getMe, the bot's commands, name and description
messages    send, edit, delete, forward, copy, pin, react, chat actions
chats       getChat, getChatMember(Count), leaveChat
media       sendPhoto, sendDocument, getFile (bots and users)
polls       sendPoll, stopPoll; answerPoll (users)
callbacks   answerCallbackQuery; pressButton, getCallbackAnswer (users)
history     getChatHistory (bots and users)
updates     getUpdates, the long poll
webhooks    setWebhook, deleteWebhook, getWebhookInfo
client      the users' own: getMe, startBot, messages and reactions, groups, members
auth        Ed25519 sign-in for users (``/client/auth/<method>``, no token)
webapps     menu buttons, web app init data and data, answerWebAppQuery
manage      a user's bots and their tokens
==========  ===============================================================
"""

from __future__ import annotations

from collections.abc import Iterable

from rest.methods import (
    auth,
    callbacks,
    chats,
    client,
    history,
    manage,
    media,
    messages,
    polls,
    profile,
    updates,
    webapps,
    webhooks,
)
from rest.schema import Method

__all__ = ["AUTH_METHODS", "BOT_METHODS", "CLIENT_METHODS", "MANAGE_METHODS"]


def _by_name(methods: Iterable[Method]) -> dict[str, Method]:
    return {method.name: method for method in methods}


# ``/bot/<method>`` and the Telegram dialect
BOT_METHODS: dict[str, Method] = _by_name(
    (
        *profile.BOT,
        *messages.BOT,
        *chats.BOT,
        *media.BOT,
        *polls.BOT,
        *callbacks.BOT,
        *history.BOT,
        *updates.BOT,
        *webhooks.BOT,
        *webapps.BOT,
    )
)

# ``/client/<method>``: every call that writes takes a token of the user's bucket
CLIENT_METHODS: dict[str, Method] = _by_name(
    method if method.getter else client.user_limited(method)
    for method in (
        *client.CLIENT,
        *callbacks.CLIENT,
        *polls.CLIENT,
        *history.CLIENT,
        *media.CLIENT,
        *webapps.CLIENT,
    )
)

# ``/manage/<method>``
MANAGE_METHODS: dict[str, Method] = _by_name(manage.MANAGE)

# ``/client/auth/<method>``: sign-in, without a token
AUTH_METHODS: dict[str, Method] = _by_name(auth.AUTH)
