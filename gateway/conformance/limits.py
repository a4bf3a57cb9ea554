"""§10, §14 and §15: the limits ``hello.limits`` advertises, each pushed just past
its value, and the close codes that follow. Limits that take longer than
``--max-wait`` to provoke (the identify and heartbeat timeouts), or too many
frames or sockets, are skipped with the reason."""

from __future__ import annotations

import asyncio
import contextlib
import json

from websockets.exceptions import ConnectionClosed

from gateway.conformance.wire import Conn, Failure, Skip, describe
from gateway.conformance.world import Check, Context

__all__ = ["CHECKS"]

_ONE_MIB = 1 << 20
_MOST_FRAMES = 5000  # more than this in one burst is not cheap
_MOST_SOCKETS = 128


def _padded_heartbeat(size: int) -> str:
    """A JSON heartbeat of exactly ``size`` bytes (ASCII)."""
    empty = json.dumps({"op": "heartbeat", "pad": ""})
    if size < len(empty):
        raise Skip(f"max_frame_bytes {size} is below a heartbeat's size")
    return json.dumps({"op": "heartbeat", "pad": "x" * (size - len(empty))})


def _limit(conn: Conn, name: str) -> int | float:
    value = conn.limits.get(name)
    if not isinstance(value, int | float) or isinstance(value, bool) or value <= 0:
        raise Failure(f"hello.limits.{name} is not a positive number: {value!r}")
    return value


async def frame_size(ctx: Context) -> None:
    conn, _ = await ctx.ready(consumer=ctx.consumer("size"))
    most = int(_limit(conn, "max_frame_bytes"))
    if most + 1 >= _ONE_MIB:
        raise Skip(f"max_frame_bytes {most} is not below 1 MiB, where frames close 1009 instead")
    await conn.send_raw(_padded_heartbeat(most))
    try:
        await conn.expect("heartbeat_ack", skip=("updates",))
    except Failure as exc:
        raise Failure(
            f"a frame of exactly max_frame_bytes ({most}) must be accepted: {exc}"
        ) from None
    conn, _ = await ctx.ready(consumer=ctx.consumer("size"))
    await conn.send_raw(_padded_heartbeat(most + 1))
    try:
        await conn.expect_close(4503)
    except Failure as exc:
        raise Failure(f"a frame of max_frame_bytes + 1 ({most + 1}): {exc}") from None


async def oversized(ctx: Context) -> None:
    conn = await ctx.connect()
    most = int(_limit(conn, "max_frame_bytes"))
    if most >= _ONE_MIB:
        raise Skip(f"max_frame_bytes {most} is not below 1 MiB")
    with contextlib.suppress(ConnectionClosed):
        await conn.send_raw(_padded_heartbeat(_ONE_MIB + 1))
    try:
        await conn.expect_ws_close(1009)
    except Failure as exc:
        raise Failure(f"a frame over 1 MiB: {exc}") from None


async def _flood(conn: Conn, count: int, *, pings: bool = False) -> None:
    with contextlib.suppress(ConnectionClosed):
        for _ in range(count):
            if pings:
                await conn.ws.ping()
            else:
                await conn.send({"op": "heartbeat"})


def _check_retry(frame: dict[str, object], what: str) -> None:
    retry = frame.get("retry_after_ms")
    if not isinstance(retry, int) or isinstance(retry, bool) or retry <= 0:
        raise Failure(
            f"{what}: the close must carry a positive retry_after_ms, got {describe(frame)}"
        )


async def frame_rate(ctx: Context) -> None:
    conn, _ = await ctx.ready(consumer=ctx.consumer("rate"))
    burst, rate = int(_limit(conn, "frame_burst")), _limit(conn, "max_frames_per_s")
    over = burst + int(rate) + 10
    if over > _MOST_FRAMES:
        raise Skip(f"frame_burst {burst} and max_frames_per_s {rate:g}: {over} frames is too many")
    within = burst - 5
    await _flood(conn, within)
    for n in range(within):
        try:
            await conn.expect("heartbeat_ack", skip=("updates",))
        except Failure as exc:
            raise Failure(
                f"{within} frames at once, within frame_burst {burst}: at {n}: {exc}"
            ) from None
    conn, _ = await ctx.ready(consumer=ctx.consumer("rate"))
    await _flood(conn, over)
    try:
        frame = await conn.expect_close(4003)
    except Failure as exc:
        raise Failure(f"{over} frames at once, frame_burst {burst}: {exc}") from None
    if frame.get("retry_after_ms") != 1000:
        raise Failure(f"4003 carries retry_after_ms 1000, got {describe(frame)}")


async def ping_rate(ctx: Context) -> None:
    conn, _ = await ctx.ready(consumer=ctx.consumer("pings"))
    burst, rate = int(_limit(conn, "frame_burst")), _limit(conn, "max_frames_per_s")
    over = burst + int(rate) + 10
    if over > _MOST_FRAMES:
        raise Skip(f"frame_burst {burst} and max_frames_per_s {rate:g}: {over} pings is too many")
    await _flood(conn, over, pings=True)
    try:
        await conn.expect_close(4003)
    except Failure as exc:
        raise Failure(f"{over} WebSocket pings at once, frame_burst {burst}: {exc}") from None


async def identify_timeout(ctx: Context) -> None:
    loop = asyncio.get_running_loop()
    started = loop.time()  # before the upgrade: the server's clock starts later
    conn = await ctx.connect()
    limit = _limit(conn, "identify_timeout_ms") / 1000
    if limit > ctx.options.max_wait:
        raise Skip(
            f"identify_timeout_ms is {limit * 1000:g}, longer than --max-wait "
            f"{ctx.options.max_wait:g} s"
        )
    try:
        await conn.expect_close(4002, timeout=limit + ctx.timeout)
    except Failure as exc:
        raise Failure(f"no identify within identify_timeout_ms {limit * 1000:g}: {exc}") from None
    waited = loop.time() - started
    if waited < limit - 0.25:
        raise Failure(
            f"4002 came after {waited:.2f} s, before identify_timeout_ms {limit * 1000:g}"
        )


async def heartbeat_timeout(ctx: Context) -> None:
    loop = asyncio.get_running_loop()
    conn = await ctx.connect()
    interval = conn.heartbeat_s
    if 2 * interval > ctx.options.max_wait:
        raise Skip(
            f"two heartbeat intervals ({2 * interval:g} s) are longer than --max-wait "
            f"{ctx.options.max_wait:g} s"
        )
    started = loop.time()  # before identify: the server hears from the client later
    await conn.identify(consumer=ctx.consumer("silent"))
    await conn.expect("ready")
    try:
        await conn.expect_close(4001, timeout=2 * interval + ctx.timeout)
    except Failure as exc:
        raise Failure(f"silent for two heartbeat intervals ({2 * interval:g} s): {exc}") from None
    waited = loop.time() - started
    if waited < 2 * interval - 0.25:
        raise Failure(f"4001 came after {waited:.2f} s of silence, before two intervals")


async def connections_per_bot(ctx: Context) -> None:
    bot = await ctx.new_bot("conns")
    first, _ = await ctx.ready(bot, consumer=ctx.consumer("conns"))
    most = int(_limit(first, "max_connections_per_bot"))
    per_minute = int(_limit(first, "identify_per_minute"))
    if most > _MOST_SOCKETS or per_minute < most + 6:
        raise Skip(
            f"max_connections_per_bot {most} (identify_per_minute {per_minute}): too many "
            "sockets, or not reachable within the identify limit"
        )
    for _ in range(most - 1):
        await ctx.ready(bot, consumer=ctx.consumer("conns"))
    _, frame = await ctx.open(bot, consumer=ctx.consumer("conns"))
    if frame.get("op") != "close" or frame.get("code") != 4004:
        raise Failure(
            f"connection {most + 1} with max_connections_per_bot {most}: expected close 4004, "
            f"got {describe(frame)}"
        )
    _check_retry(frame, "4004")
    if frame.get("resumable") is not True:
        raise Failure(f"4004 is resumable: {describe(frame)}")


async def identify_rate(ctx: Context) -> None:
    bot = await ctx.new_bot("idrate")
    loop = asyncio.get_running_loop()
    started = loop.time()
    attempts = 0
    per_minute = 0
    while True:
        conn = await ctx.connect(bot, paced=False)
        per_minute = int(_limit(conn, "identify_per_minute"))
        if per_minute > 2 * _MOST_SOCKETS:
            raise Skip(f"identify_per_minute {per_minute}: too many identifies to provoke 4005")
        await conn.identify(consumer=ctx.consumer("idrate"))
        attempts += 1
        frame = await conn.next("ready or close 4005")
        await conn.close()
        if frame.get("op") == "ready":
            refilled = (loop.time() - started) * per_minute / 60
            if attempts > per_minute + refilled + 3:
                raise Failure(
                    f"{attempts} identifies in {loop.time() - started:.1f} s and no 4005; "
                    f"hello.limits.identify_per_minute is {per_minute}"
                )
            continue
        if frame.get("op") != "close" or frame.get("code") != 4005:
            raise Failure(
                f"identify {attempts}: expected ready or close 4005, got {describe(frame)}"
            )
        if attempts <= per_minute:
            raise Failure(f"4005 at identify {attempts}, within identify_per_minute {per_minute}")
        _check_retry(frame, "4005")
        return


CHECKS = (
    Check("limits.frame_size", "§14", "a frame over max_frame_bytes closes 4503", frame_size),
    Check(
        "limits.oversized", "§15", "a frame over 1 MiB closes 1009 without a close frame", oversized
    ),
    Check("limits.frame_rate", "§14", "frames beyond the burst close 4003", frame_rate),
    Check("limits.ping_rate", "§14", "WebSocket pings count toward the frame rate", ping_rate),
    Check(
        "limits.identify_timeout",
        "§5.1",
        "no identify within the timeout closes 4002",
        identify_timeout,
    ),
    Check(
        "limits.heartbeat_timeout",
        "§10",
        "two silent heartbeat intervals close 4001",
        heartbeat_timeout,
    ),
    Check(
        "limits.connections_per_bot",
        "§14",
        "connections beyond max_connections_per_bot close 4004",
        connections_per_bot,
    ),
    Check(
        "limits.identify_rate",
        "§14",
        "identifies beyond identify_per_minute close 4005",
        identify_rate,
    ),
)
