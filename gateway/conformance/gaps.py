"""§8 gaps provoked from outside: a cursor of another epoch (§7.3) under each
``on_gap``, and a cursor beyond the log's head (``tail_lost``). A cursor older than
the retention period cannot be made within one run: that check is skipped."""

from __future__ import annotations

from typing import Any

from gateway.conformance.wire import DECIMAL, Conn, Failure, Frame, Skip, describe
from gateway.conformance.world import Check, Context

__all__ = ["CHECKS"]


def _check_gap(gap: Frame, *, reason: str, action: str, epoch: str) -> None:
    expected = {"op": "gap", "reason": reason, "action": action, "epoch": epoch}
    wrong = [f"{k} {gap.get(k)!r} (expected {v!r})" for k, v in expected.items() if gap.get(k) != v]
    if wrong:
        raise Failure(f"gap frame: {', '.join(wrong)}")
    for name in ("oldest", "newest"):
        value = gap.get(name, "missing")
        if value is not None and not (isinstance(value, str) and DECIMAL.fullmatch(value)):
            raise Failure(f"gap.{name} must be an id or null, got {value!r}")


async def _gap(ctx: Context, cursor: dict[str, Any], on_gap: str | None) -> tuple[Conn, Frame]:
    fields: dict[str, Any] = {"consumer": ctx.consumer("gap"), "cursor": cursor}
    if on_gap is not None:
        fields["on_gap"] = on_gap
    conn, frame = await ctx.open(**fields)
    if frame.get("op") != "gap":
        raise Failure(
            f"identify with cursor {cursor}: expected a gap before anything, got {describe(frame)}"
        )
    return conn, frame


def _other_epoch(ctx: Context, update_id: int) -> dict[str, str]:
    return {"epoch": f"cf-{ctx.run}-another-epoch", "update_id": str(update_id)}


async def _ready_after_gap(conn: Conn, epoch: str) -> Frame:
    ready = await conn.expect("ready")
    if ready.get("resumed") is not False:
        raise Failure(f"ready after a gap must say resumed false, got {ready.get('resumed')!r}")
    if ready.get("epoch") != epoch or (ready.get("cursor") or {}).get("epoch") != epoch:
        raise Failure(
            f"ready after a gap must be in the log's epoch {epoch!r}: epoch "
            f"{ready.get('epoch')!r}, cursor {ready.get('cursor')!r}"
        )
    return ready


async def epoch_fail(ctx: Context) -> None:
    scenario = await ctx.scenario()
    for on_gap in (None, "fail"):
        conn, gap = await _gap(ctx, _other_epoch(ctx, scenario.ids[0]), on_gap)
        _check_gap(gap, reason="epoch", action="fail", epoch=scenario.epoch)
        try:
            await conn.expect_close(4504)
        except Failure as exc:
            raise Failure(f"after a gap with on_gap {on_gap or 'absent (fail)'}: {exc}") from None


async def epoch_oldest(ctx: Context) -> None:
    scenario = await ctx.scenario()
    conn, gap = await _gap(ctx, _other_epoch(ctx, scenario.last), "oldest")
    _check_gap(gap, reason="epoch", action="oldest", epoch=scenario.epoch)
    ready = await _ready_after_gap(conn, scenario.epoch)
    if gap["oldest"] is None:
        raise Failure("the log is not empty, yet gap.oldest is null")
    if int(ready["cursor"]["update_id"]) >= int(gap["oldest"]):
        raise Failure(
            f"with on_gap oldest ready.cursor must come before gap.oldest {gap['oldest']}: "
            f"{describe(ready)}"
        )
    first = (await conn.updates(lambda us: bool(us)))[0]
    if first["update_id"] != gap["oldest"]:
        raise Failure(
            f"with on_gap oldest delivery continues with gap.oldest {gap['oldest']}, the first "
            f"update was {first['update_id']}"
        )


async def epoch_newest(ctx: Context) -> None:
    scenario = await ctx.scenario()
    conn, gap = await _gap(ctx, _other_epoch(ctx, scenario.last), "newest")
    _check_gap(gap, reason="epoch", action="newest", epoch=scenario.epoch)
    ready = await _ready_after_gap(conn, scenario.epoch)
    if ready["cursor"]["update_id"] != gap["newest"]:
        raise Failure(
            f"with on_gap newest ready.cursor must be gap.newest {gap['newest']}: {describe(ready)}"
        )
    sent = await ctx.say(f"after newest {ctx.run}")
    first = (await conn.updates(lambda us: bool(us)))[0]
    text = (first.get("message") or {}).get("text")
    if text != sent["text"] or int(first["update_id"]) <= int(gap["newest"]):
        raise Failure(
            f"with on_gap newest the first update must be the next new one ({sent['text']!r}), "
            f"got {describe(first)}"
        )


async def _beyond_head(ctx: Context) -> tuple[int, dict[str, str]]:
    scenario = await ctx.scenario()
    probe, ready = await ctx.ready(
        consumer=ctx.consumer("probe"), cursor=scenario.cursor(scenario.last)
    )
    await probe.close()
    head = int(ready["head"])
    return head, scenario.cursor(head + 2**30)


async def tail_lost(ctx: Context) -> None:
    scenario = await ctx.scenario()
    _, cursor = await _beyond_head(ctx)
    conn, gap = await _gap(ctx, cursor, None)
    _check_gap(gap, reason="tail_lost", action="fail", epoch=scenario.epoch)
    try:
        await conn.expect_close(4504)
    except Failure as exc:
        raise Failure(f"after a tail_lost gap with on_gap fail: {exc}") from None


async def tail_lost_continue(ctx: Context) -> None:
    scenario = await ctx.scenario()
    head, cursor = await _beyond_head(ctx)
    for on_gap in ("oldest", "newest"):
        conn, gap = await _gap(ctx, cursor, on_gap)
        _check_gap(gap, reason="tail_lost", action=on_gap, epoch=scenario.epoch)
        ready = await _ready_after_gap(conn, scenario.epoch)
        start = int(ready["cursor"]["update_id"])
        if not head <= start <= int(cursor["update_id"]):
            raise Failure(
                f"after tail_lost, on_gap {on_gap} continues right after the lost updates: "
                f"ready.cursor must be in [{head}, {cursor['update_id']}], got {start}"
            )
        replayed = [
            u["update_id"]
            for f in await conn.quiet(0.5)
            if f["op"] == "updates"
            for u in f["updates"]
            if int(u["update_id"]) <= head
        ]
        if replayed:
            raise Failure(
                f"after tail_lost, on_gap {on_gap} replayed retained updates {replayed[:5]}"
            )
        await conn.close()


async def retention(ctx: Context) -> None:
    conn = await ctx.connect()
    raise Skip(
        f"needs a cursor older than the retention period (hello.retention_s = "
        f"{conn.hello.get('retention_s')}), which cannot be made from outside in one run"
    )


CHECKS = (
    Check(
        "gap.epoch_fail",
        "§8",
        "a cursor of another epoch: gap, then 4504 with on_gap fail",
        epoch_fail,
    ),
    Check(
        "gap.epoch_oldest",
        "§8",
        "epoch gap with on_gap oldest continues at gap.oldest",
        epoch_oldest,
    ),
    Check(
        "gap.epoch_newest",
        "§8",
        "epoch gap with on_gap newest continues after gap.newest",
        epoch_newest,
    ),
    Check("gap.tail_lost", "§8", "a cursor beyond the head is a tail_lost gap", tail_lost),
    Check(
        "gap.tail_lost_continue",
        "§8",
        "after tail_lost, oldest and newest go on after the loss",
        tail_lost_continue,
    ),
    Check("gap.retention", "§8", "a cursor older than retention is a retention gap", retention),
)
