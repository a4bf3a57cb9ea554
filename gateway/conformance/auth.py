"""§2 Transport and authentication: the token on the upgrade or in identify, refusals
over HTTP, and what rotation and revocation do to open sockets."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from gateway.conformance.wire import Bot, Failure, Skip, refusal
from gateway.conformance.world import Check, Context

__all__ = ["CHECKS"]


async def header(ctx: Context) -> None:
    bot = await ctx.main()
    telegram_form = replace(bot, token=bot.token.removeprefix("bot_"))
    for scheme, who in (("Bot", bot), ("Bearer", bot), ("Bot", telegram_form)):
        conn = await ctx.connect(who, scheme=scheme)
        what = f"with 'Authorization: {scheme} {'bot_' if who is bot else ''}<id>:<secret>'"
        if conn.hello.get("auth_required") is not False:
            raise Failure(f"{what}: hello.auth_required must be false, got {conn.hello}")
        await conn.identify(consumer=ctx.consumer("hdr"))
        frame = await conn.next("ready")
        if frame.get("op") != "ready" or frame.get("bot", {}).get("id") != bot.id:
            raise Failure(f"{what}: expected ready for bot {bot.id}, got {frame}")
        await conn.close()


async def bad_token(ctx: Context) -> None:
    bot = await ctx.main()
    for token in (f"bot_{bot.id}:" + "z" * 43, "not-a-token", f"bot_{bot.id}"):
        refused = await refusal(ctx.url, token=token, timeout=ctx.timeout)
        body = refused.envelope()
        if (refused.status, body.get("code")) != (401, "UNAUTHORIZED"):
            raise Failure(
                f"a bad token {token[:12]!r}...: expected HTTP 401 UNAUTHORIZED, got "
                f"{refused.status} {body}"
            )


async def not_found(ctx: Context) -> None:
    if not ctx.url.rstrip("/").endswith("/bot/ws"):
        raise Skip("the gateway URL does not end with /bot/ws")
    bot = await ctx.main()
    url = ctx.url.rstrip("/")[: -len("/bot/ws")] + "/bot/nowhere"
    refused = await refusal(url, token=bot.token, timeout=ctx.timeout)
    body = refused.envelope()
    if (refused.status, body.get("code")) != (404, "NOT_FOUND"):
        raise Failure(
            f"an upgrade at /bot/nowhere: expected 404 NOT_FOUND, got {refused.status} {body}"
        )


async def identify_token(ctx: Context) -> None:
    bot = await ctx.main()
    conn = await ctx.connect(bot, header=False)
    if conn.hello.get("auth_required") is not True:
        raise Failure(
            f"without an Authorization header hello.auth_required must be true: {conn.hello}"
        )
    await conn.identify(token=bot.token, consumer=ctx.consumer("browser"))
    frame = await conn.next("ready")
    if frame.get("op") != "ready" or frame.get("bot", {}).get("id") != bot.id:
        raise Failure(f"identify with the token: expected ready for bot {bot.id}, got {frame}")


async def identify_refused(ctx: Context) -> None:
    bot = await ctx.main()
    cases: dict[str, dict[str, Any]] = {
        "no token": {},
        "an empty token": {"token": ""},
        "an unknown token": {"token": f"bot_{bot.id}:" + "z" * 43},
    }
    for what, fields in cases.items():
        conn = await ctx.connect(bot, header=False)
        await conn.identify(consumer=ctx.consumer("badtok"), **fields)
        try:
            await conn.expect_close(4501)
        except Failure as exc:
            raise Failure(f"identify with {what}: {exc}") from None


async def _revoked(ctx: Context) -> Bot:
    bot = ctx.cache.get("revoked")
    if bot is None:
        bot = await ctx.new_bot("rev")
        await ctx.rest.manage("revokeBot", bot_id=bot.id)
        ctx.cache["revoked"] = bot
    assert isinstance(bot, Bot)
    return bot


async def revoked_live(ctx: Context) -> None:
    bot = await ctx.new_bot("rev")
    conn, _ = await ctx.ready(bot, consumer=ctx.consumer("rev"))
    await ctx.rest.manage("revokeBot", bot_id=bot.id)
    ctx.cache["revoked"] = bot
    try:
        await conn.expect_close(4505)
    except Failure as exc:
        raise Failure(f"a socket of a bot revoked while connected: {exc}") from None


async def revoked_upgrade(ctx: Context) -> None:
    bot = await _revoked(ctx)
    refused = await refusal(ctx.url, token=bot.token, timeout=ctx.timeout)
    body = refused.envelope()
    if (refused.status, body.get("code")) != (412, "BOT_INACTIVE"):
        raise Failure(
            f"the upgrade of a revoked bot: expected HTTP 412 BOT_INACTIVE, got "
            f"{refused.status} {body}"
        )


async def revoked_identify(ctx: Context) -> None:
    bot = await _revoked(ctx)
    conn = await ctx.connect(bot, header=False)
    await conn.identify(token=bot.token, consumer=ctx.consumer("rev"))
    try:
        await conn.expect_close(4505)
    except Failure as exc:
        raise Failure(f"identify with a revoked bot's token: {exc}") from None


async def rotated(ctx: Context) -> None:
    bot = await ctx.new_bot("rot")
    conn, _ = await ctx.ready(bot, consumer=ctx.consumer("rot"))
    fresh = await ctx.rest.manage("rotateToken", bot_id=bot.id)
    try:
        await conn.expect_close(4501)
    except Failure as exc:
        raise Failure(f"a socket whose token was rotated: {exc}") from None
    refused = await refusal(ctx.url, token=bot.token, timeout=ctx.timeout)
    body = refused.envelope()
    if refused.status != 401:
        raise Failure(
            f"the old token after rotation: expected HTTP 401, got {refused.status} {body}"
        )
    await ctx.ready(replace(bot, token=fresh["token"]), consumer=ctx.consumer("rot"))


CHECKS = (
    Check(
        "auth.header",
        "§2",
        "token in the Authorization header (Bot, Bearer, Telegram form)",
        header,
    ),
    Check("auth.bad_token", "§2", "bad token refused with HTTP 401 and an envelope", bad_token),
    Check("auth.not_found", "§2", "another path refused with HTTP 404", not_found),
    Check(
        "auth.identify_token", "§2", "token in identify when the upgrade had none", identify_token
    ),
    Check(
        "auth.identify_refused",
        "§2",
        "missing or bad token in identify closes 4501",
        identify_refused,
    ),
    Check("auth.revoked_live", "§2", "revoking the bot closes its sockets with 4505", revoked_live),
    Check(
        "auth.revoked_upgrade",
        "§2",
        "a revoked bot's upgrade is refused with HTTP 412",
        revoked_upgrade,
    ),
    Check(
        "auth.revoked_identify",
        "§2",
        "a revoked bot's token in identify closes 4505",
        revoked_identify,
    ),
    Check("auth.rotated", "§2", "rotating the token closes live sockets with 4501", rotated),
)
