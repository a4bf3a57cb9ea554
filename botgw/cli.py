"""The ``botgw`` command line.

``botgw run`` is the dev stack (local Redis, REST, gateway, webhooks, the system
bot, demo data); ``botgw rest|gateway|webhooks|systembot`` run one process each;
``botgw users ...`` and ``botgw bots ...`` manage accounts directly in the store.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from shared.settings import Settings, SettingsError

__all__ = ["main"]


def _settings(**overrides: Any) -> Settings:
    try:
        return Settings.from_env(os.environ, **overrides)
    except SettingsError as exc:
        raise SystemExit(f"botgw: {exc}") from None


def _logged(process: str, level: str, *, fmt: str | None = None, **overrides: Any) -> Settings:
    """The settings of a server process, its logging set up first: a bad setting is
    logged as such (in the format BOTGW_LOG_FORMAT names, if it can be read)."""
    from botgw.run import configure_logging, raise_open_files_limit

    try:
        settings = Settings.from_env(os.environ, **overrides)
    except SettingsError as exc:
        wanted = os.environ.get("BOTGW_LOG_FORMAT", "").strip().lower()
        fallback = fmt or ("text" if wanted == "text" else "json")
        configure_logging(process, level=level, fmt=fallback)
        logging.getLogger("botgw").critical("botgw: %s", exc)
        raise SystemExit(1) from None
    configure_logging(process, level=level, fmt=fmt or settings.log_format, quiet=_QUIET[process])
    raise_open_files_limit()
    return settings


# chatty libraries, heard from warnings up
_QUIET: dict[str, tuple[str, ...]] = {
    "rest": (),
    "gateway": ("websockets",),
    "webhooks": ("httpx",),
    "systembot": ("httpx", "websockets"),
    "run": (),
    "admin": (),
}


def _exits_logged(run: Callable[[], int]) -> int:
    """``run()``, with a refusal to start (SystemExit with a message) logged."""
    try:
        return run()
    except SystemExit as exc:
        if not isinstance(exc.code, str):
            raise
        logging.getLogger("botgw").critical("%s", exc.code)
        return 1


def _store_settings(data_dir: str | None = None) -> Settings:
    """Settings for an admin command: BOTGW_REDIS_URL, else the dev stack's Redis."""
    settings = _settings()
    if settings.redis_url:
        return settings
    url_file = Path(data_dir or settings.data_dir) / "redis.url"
    if url_file.exists():
        return _settings(redis_url=url_file.read_text().strip())
    raise SystemExit(
        "botgw: no Redis to talk to: set BOTGW_REDIS_URL, or start the dev stack with "
        "'make run' (it writes .data/redis.url)"
    )


def cmd_run(args: argparse.Namespace) -> int:
    overrides: dict[str, Any] = {"data_dir": args.data_dir}
    if args.rest_port is not None:
        overrides["rest_port"] = args.rest_port
    if args.gateway_port is not None:
        overrides["gateway_port"] = args.gateway_port
    if args.metrics_port is not None:
        overrides["rest_metrics_port"] = args.metrics_port
    # the dev stack is read by people: text, unless BOTGW_LOG_FORMAT says otherwise
    fmt = "json" if os.environ.get("BOTGW_LOG_FORMAT", "").strip().lower() == "json" else "text"
    settings = _logged("run", "info", fmt=fmt, **overrides)
    from botgw.devstack import run_dev_stack

    return run_dev_stack(settings)


def cmd_rest(args: argparse.Namespace) -> int:
    settings = _logged("rest", args.log_level)
    from rest.serve import serve

    return _exits_logged(
        lambda: serve(
            settings,
            host=args.host or settings.rest_host,
            port=args.port if args.port is not None else settings.rest_port,
            workers=args.workers,
            log_level=args.log_level,
        )
    )


def cmd_gateway(args: argparse.Namespace) -> int:
    overrides: dict[str, Any] = {}
    if args.host:
        overrides["gateway_host"] = args.host
    if args.port is not None:
        overrides["gateway_port"] = args.port
    settings = _logged("gateway", args.log_level, **overrides)
    from botgw.run import run_process
    from gateway.server import serve_worker

    return _exits_logged(lambda: run_process(serve_worker(settings)))


def cmd_webhooks(args: argparse.Namespace) -> int:
    settings = _logged("webhooks", args.log_level)
    if not settings.redis_url:
        logging.getLogger("botgw").critical("botgw: no Redis URL: set BOTGW_REDIS_URL")
        return 1
    from botgw.run import run_process
    from rest.webhook_replies import reply_runner
    from webhooks.dispatcher import main

    return _exits_logged(
        lambda: run_process(main(settings, host=args.host, port=args.port, replies=reply_runner))
    )


def cmd_systembot(args: argparse.Namespace) -> int:
    settings = _logged("systembot", args.log_level)
    if not settings.redis_url:
        logging.getLogger("botgw").critical("botgw: no Redis URL: set BOTGW_REDIS_URL")
        return 1
    rest_url = (
        args.rest_url
        or settings.public_rest_url
        or f"http://{settings.rest_host}:{settings.rest_port}"
    )
    gateway_url = (
        args.gateway_url
        or settings.public_gateway_url
        or f"ws://{settings.gateway_host}:{settings.gateway_port}/bot/ws"
    )
    from botgw.run import run_process
    from botgw.systembot import run_system_bot

    return _exits_logged(
        lambda: run_process(run_system_bot(settings, rest_url=rest_url, gateway_url=gateway_url))
    )


async def _admin(settings: Settings, action: str, args: argparse.Namespace) -> int:
    from botgw.admin import run_admin

    return await run_admin(settings, action, args)


def cmd_admin(args: argparse.Namespace) -> int:
    from botgw.run import configure_logging

    settings = _store_settings()
    # what the store may log (a Redis failover, say); the command's own answers
    # and refusals are for people, on stdout and as the exit message
    configure_logging("admin", level="warning", fmt=settings.log_format)
    return asyncio.run(_admin(settings, args.action, args))


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="botgw", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    run = sub.add_parser("run", help="the dev stack: local Redis, REST, gateway, demo data")
    run.add_argument("--rest-port", type=int)
    run.add_argument("--gateway-port", type=int)
    run.add_argument("--metrics-port", type=int, help="REST's /metrics (default: a free port)")
    run.add_argument("--data-dir", default=".data")
    run.set_defaults(func=cmd_run)

    for name, func in (("rest", cmd_rest), ("gateway", cmd_gateway), ("webhooks", cmd_webhooks)):
        p = sub.add_parser(name, help=f"run one {name} process (Redis from BOTGW_REDIS_URL)")
        if name != "webhooks":
            p.add_argument("--host")
            p.add_argument("--port", type=int)
        else:
            p.add_argument("--host", default="127.0.0.1", help="where --port listens")
            p.add_argument(
                "--port",
                type=int,
                help="serve /healthz, /readyz and /metrics on this port (default: not served)",
            )
        if name == "rest":
            p.add_argument("--workers", type=int, default=1)
        p.add_argument("--log-level", default="info")
        p.set_defaults(func=func)

    system = sub.add_parser(
        "systembot", help="run the system bot (token from BOTGW_SYSTEM_BOT_TOKEN)"
    )
    system.add_argument("--rest-url", help="default: BOTGW_PUBLIC_REST_URL, else REST's bind")
    system.add_argument(
        "--gateway-url", help="default: BOTGW_PUBLIC_GATEWAY_URL, else the gateway's bind"
    )
    system.add_argument("--log-level", default="info")
    system.set_defaults(func=cmd_systembot)

    users = sub.add_parser("users", help="manage users").add_subparsers(dest="sub", required=True)
    create_user = users.add_parser("create", help="create a user and print its token")
    create_user.add_argument("name")
    create_user.set_defaults(func=cmd_admin, action="users.create")

    bots = sub.add_parser("bots", help="manage bots").add_subparsers(dest="sub", required=True)
    create_bot = bots.add_parser("create", help="create a bot and print its token")
    create_bot.add_argument("--owner", required=True, help="the owner's username")
    create_bot.add_argument("--username", required=True, help="e.g. weather_bot")
    create_bot.add_argument("--name", help="display name (default: from the username)")
    create_bot.add_argument("--description", default="")
    create_bot.add_argument(
        "--system",
        action="store_true",
        help="make it the system bot, which acts for the users who write to it",
    )
    create_bot.set_defaults(func=cmd_admin, action="bots.create")
    list_bots = bots.add_parser("list", help="list bots (of one owner, or all of them)")
    list_bots.add_argument("--owner")
    list_bots.set_defaults(func=cmd_admin, action="bots.list")
    for verb, text in (("revoke", "revoke a bot for good"), ("rotate", "issue a new token")):
        p = bots.add_parser(verb, help=text)
        p.add_argument("username")
        p.set_defaults(func=cmd_admin, action=f"bots.{verb}")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    result: int = args.func(args)
    return result


if __name__ == "__main__":
    sys.exit(main())
