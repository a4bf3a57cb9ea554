"""The system bot (Koto's KotoFather, Telegram's BotFather): ``botgw systembot``.

An ordinary agent on botgw's own gateway: it reads its updates as consumer
``systembot`` (resuming after the last one it acked, so it sees each update once
across restarts), answers over the Bot API and manages bots through the
management API on behalf of the user who wrote to it (docs/systembot.md).
It needs its token (``BOTGW_SYSTEM_BOT_TOKEN``), REST, the gateway and Redis
(where its conversations are kept, :mod:`shared.store.conversations`).

:func:`ensure_system_bot` is how an operator's setup (the dev stack) makes one:
a bot marked as the system bot, owned by an operator user.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal

import httpx

from botgw.admin import messenger_session
from botgw.systembot.api import Refused, SystemBotApi
from botgw.systembot.dialogue import Dialogue
from gateway.client import GatewayClient, GatewayError
from shared.settings import Settings
from shared.store import Store, StoreError

__all__ = [
    "SYSTEM_BOT_NAME",
    "SYSTEM_BOT_OWNER",
    "SYSTEM_BOT_USERNAME",
    "ensure_system_bot",
    "run_system_bot",
]

log = logging.getLogger("botgw.systembot")

SYSTEM_BOT_USERNAME = "kotofather_bot"
SYSTEM_BOT_NAME = "KotoFather"
SYSTEM_BOT_OWNER = "operator"
CONSUMER = "systembot"


async def ensure_system_bot(settings: Settings) -> tuple[str, str]:
    """(username, a new token) of the system bot, created and marked if missing."""
    async with messenger_session(settings) as messenger:
        accounts = messenger.accounts
        owner = await accounts.user_by_username(SYSTEM_BOT_OWNER)
        if owner is None:
            owner, _ = await accounts.create_user(SYSTEM_BOT_OWNER, "Operator")
        bot = await accounts.bot_by_username(SYSTEM_BOT_USERNAME)
        if bot is None:
            bot, token = await accounts.create_bot(
                owner,
                username=SYSTEM_BOT_USERNAME,
                name=SYSTEM_BOT_NAME,
                description="Creates and manages your bots",
            )
        else:  # tokens are stored hashed only: issue a new one
            token = await accounts.rotate_token(bot)
        await accounts.make_system_bot(bot)
    return SYSTEM_BOT_USERNAME, token


async def run_system_bot(settings: Settings, *, rest_url: str, gateway_url: str) -> None:
    """Answer the system bot's updates until SIGTERM or SIGINT."""
    token = settings.system_bot_token
    if not token:
        raise SystemExit("botgw: set BOTGW_SYSTEM_BOT_TOKEN to the system bot's token")
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    store = Store.connect(settings, role="systembot")
    try:
        async with httpx.AsyncClient(base_url=rest_url, timeout=30) as http:
            api = SystemBotApi(http, token)
            me = await _me(api, stop)
            if me is None:
                return
            dialogue = Dialogue(
                api,
                store.conversations,
                int(me["id"]),
                token_message_seconds=settings.system_bot_token_message_seconds,
            )
            log.info("system bot @%s answering", me["username"])
            async with GatewayClient(
                gateway_url, token, consumer=CONSUMER, on_gap="oldest"
            ) as client:
                serving = asyncio.create_task(_serve(client, dialogue))
                deleting = asyncio.create_task(_delete_token_messages(dialogue, stop))
                stopping = asyncio.create_task(stop.wait())
                await asyncio.wait((serving, stopping), return_when=asyncio.FIRST_COMPLETED)
                for task in (stopping, serving, deleting):
                    task.cancel()
                for task in (serving, deleting):
                    with contextlib.suppress(asyncio.CancelledError):
                        await task
    finally:
        await store.close()


async def _me(api: SystemBotApi, stop: asyncio.Event) -> dict[str, str] | None:
    """The bot's getMe, asked until REST answers (None if told to stop first)."""
    while not stop.is_set():
        try:
            me: dict[str, str] = await api.bot("getMe")
            return me
        except Refused as exc:
            if exc.status in (401, 412):
                raise SystemExit(f"botgw: the system bot's token is refused: {exc}") from None
            log.warning("getMe: %s", exc)
        except httpx.HTTPError as exc:
            log.warning("REST is not answering yet: %s", exc)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), 1.0)
    return None


async def _delete_token_messages(dialogue: Dialogue, stop: asyncio.Event) -> None:
    """Every second, the token messages whose time has come are deleted."""
    while not stop.is_set():
        try:
            await dialogue.delete_due()
        except (httpx.HTTPError, StoreError) as exc:  # again in a second
            log.warning("token messages not deleted yet: %s", exc)
        except Exception:
            log.exception("deleting token messages failed")
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), 1.0)


async def _serve(client: GatewayClient, dialogue: Dialogue) -> None:
    """Each update handled, then acked (by the loop asking for the next one)."""
    try:
        async for update in client:
            try:
                await dialogue.handle(update)
            except httpx.HTTPError as exc:
                # REST is unreachable: this update goes unanswered, the next ones wait
                log.warning("update %s not answered: %s", update.get("update_id"), exc)
            except Exception:
                log.exception("update %s failed", update.get("update_id"))
    except GatewayError as exc:
        raise SystemExit(f"botgw: the gateway refused the system bot: {exc}") from None
