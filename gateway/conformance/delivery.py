"""§5.1 allowed_updates, §5.2 acks, §6.3 ``updates`` frames, §7 replay, resume and
commits: every connection here replays the recorded scenario and is compared with
it update for update."""

from __future__ import annotations

import asyncio
import itertools
import secrets
from collections.abc import Sequence
from typing import Any

from gateway.conformance.wire import DECIMAL, UPDATE_TYPES, Conn, Failure, Frame, describe
from gateway.conformance.world import Check, Context, Scenario

__all__ = ["CHECKS", "committed"]


def kind_of(update: Frame) -> str:
    return next((k for k in update if k != "update_id"), "")


async def replay(conn: Conn, scenario: Scenario, *, until: int | None = None) -> list[Frame]:
    """Updates from ``conn`` up to the scenario's last one (or ``until``)."""
    last = scenario.last if until is None else until
    return await conn.updates(
        lambda us: any(int(u["update_id"]) >= last for u in us),
        expecting=f"updates up to {last}",
    )


def _same(got: Sequence[Frame], expected: Sequence[Frame], what: str) -> None:
    got_ids = [u.get("update_id") for u in got]
    want_ids = [u.get("update_id") for u in expected]
    if got_ids != want_ids:
        raise Failure(f"{what}: expected update ids {_show(want_ids)}, got {_show(got_ids)}")
    for mine, theirs in zip(got, expected, strict=True):
        if mine != theirs:
            raise Failure(f"{what}: update {mine.get('update_id')} differs: {describe(mine)}")


def _show(ids: Sequence[object]) -> str:
    shown = [str(i) for i in ids]
    if len(shown) > 8:
        shown = [*shown[:4], f"... ({len(shown)} in all)", *shown[-3:]]
    return "[" + ", ".join(shown) + "]"


async def committed(
    ctx: Context, consumer: str, expected: int, **identify: Any
) -> tuple[Conn, Frame]:
    """A connection of ``consumer`` without a cursor once its ``ready.cursor`` shows
    ``expected``: the commit of a closed connection may take a moment to land (§5.2)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + ctx.timeout
    while True:
        conn, ready = await ctx.ready(consumer=consumer, **identify)
        at = ready.get("cursor", {}).get("update_id")
        if at == str(expected):
            return conn, ready
        await conn.close()
        if loop.time() > deadline:
            raise Failure(
                f"after acking {expected} and closing, a connection without a cursor must "
                f"start after it (ready.cursor.update_id {str(expected)!r}), got {at!r}"
            )
        await asyncio.sleep(0.25)


async def updates_shape(ctx: Context) -> None:
    scenario = await ctx.scenario()
    conn, _ = await ctx.ready(consumer=ctx.consumer("shape"), cursor=scenario.cursor())
    frames: list[Frame] = []
    await conn.updates(
        lambda us: any(int(u["update_id"]) >= scenario.last for u in us), frames=frames
    )
    previous = scenario.mark
    for frame in frames:
        batch = frame["updates"]
        if set(frame) != {"op", "updates"} or not batch:
            raise Failure(
                f"an updates frame is {{op, updates}} with a non-empty list: {describe(frame)}"
            )
        for update in batch:
            extra = set(update) - {"update_id"}
            if not DECIMAL.fullmatch(str(update.get("update_id"))) or len(extra) != 1:
                raise Failure(f"an update is update_id plus exactly one type: {describe(update)}")
            (kind,) = extra
            if kind not in UPDATE_TYPES or not isinstance(update[kind], dict):
                raise Failure(f"an update of unknown type {kind!r}: {describe(update)}")
            if int(update["update_id"]) <= previous:
                raise Failure(
                    f"update ids must strictly increase within and across batches: "
                    f"{update['update_id']} after {previous}"
                )
            previous = int(update["update_id"])
            body = update[kind]
            if kind in ("message", "edited_message"):
                chat = body.get("chat")
                if not isinstance(chat, dict) or not isinstance(chat.get("type"), str):
                    raise Failure(f"a {kind} must carry chat {{id, type}}: {describe(update)}")
                if not isinstance(body.get("date"), int) or "message_id" not in body:
                    raise Failure(
                        f"a {kind} must carry message_id and an integer date: {describe(update)}"
                    )


async def replay_then_live(ctx: Context) -> None:
    scenario = await ctx.scenario()
    conn, _ = await ctx.ready(consumer=ctx.consumer("live"), cursor=scenario.cursor())
    got = await replay(conn, scenario)
    _same(scenario.upto_last(got), scenario.updates, "the replay")
    tag = secrets.token_hex(3)
    texts = [f"live {tag} {n}" for n in range(3)]
    for text in texts:
        await ctx.say(text)

    def seen(updates: list[Frame]) -> list[str]:
        return [t for u in updates if (t := (u.get("message") or {}).get("text")) in texts]

    got += await conn.updates(lambda us: len(seen(us)) == len(texts), expecting="the live messages")
    ids = [int(u["update_id"]) for u in got]
    if any(b <= a for a, b in itertools.pairwise(ids)):
        raise Failure(f"update ids must strictly increase from replay to live: {_show(ids)}")
    if seen(got) != texts:
        raise Failure(
            f"live messages must arrive once each and in order: expected {texts}, got {seen(got)}"
        )


async def resume_cursor(ctx: Context) -> None:
    scenario = await ctx.scenario()
    ids = scenario.ids
    for k in sorted({0, len(ids) // 2, len(ids) - 2}):
        conn, _ = await ctx.ready(consumer=ctx.consumer("resume"), cursor=scenario.cursor(ids[k]))
        got = await replay(conn, scenario)
        _same(scenario.upto_last(got), scenario.updates[k + 1 :], f"resuming after {ids[k]}")
        await conn.close()
    conn, _ = await ctx.ready(consumer=ctx.consumer("resume"), cursor=scenario.cursor(ids[-1]))
    early = [
        u
        for f in await conn.quiet(0.5)
        if f["op"] == "updates"
        for u in f["updates"]
        if int(u["update_id"]) <= ids[-1]
    ]
    if early:
        raise Failure(
            f"resuming after {ids[-1]} delivered {_show([u['update_id'] for u in early])} again"
        )


async def resume_committed(ctx: Context) -> None:
    scenario = await ctx.scenario()
    ids = scenario.ids
    consumer = ctx.consumer("commit")
    k = len(ids) // 2
    conn, _ = await ctx.ready(consumer=consumer, cursor=scenario.cursor())
    await replay(conn, scenario)
    await conn.send({"op": "ack", "update_id": str(ids[k])})
    await conn.alive()
    await conn.close()
    conn, ready = await committed(ctx, consumer, ids[k])
    if ready.get("resumed") is not True:
        raise Failure(
            f"resuming at the committed cursor: ready.resumed must be true, got {describe(ready)}"
        )
    got = await replay(conn, scenario)
    _same(scenario.upto_last(got), scenario.updates[k + 1 :], "after the committed cursor")


async def ack_never_back(ctx: Context) -> None:
    scenario = await ctx.scenario()
    ids = scenario.ids
    consumer = ctx.consumer("back")
    conn, _ = await ctx.ready(consumer=consumer, cursor=scenario.cursor())
    await replay(conn, scenario)
    await conn.send({"op": "ack", "update_id": str(ids[-1])})
    await conn.send({"op": "ack", "update_id": str(ids[0])})
    await conn.send({"op": "heartbeat"})
    ack = await conn.expect("heartbeat_ack", skip=("updates",))
    if ack.get("acked") != str(ids[-1]):
        raise Failure(
            f"a lower ack must be ignored: heartbeat_ack.acked {str(ids[-1])!r}, "
            f"got {describe(ack)}"
        )
    await conn.close()
    conn, _ = await committed(ctx, consumer, ids[-1])
    await conn.close()
    # an older position given explicitly and acked there: the commit stays
    conn, _ = await ctx.ready(consumer=consumer, cursor=scenario.cursor())
    await replay(conn, scenario)
    await conn.send({"op": "ack", "update_id": str(ids[1])})
    await conn.alive()
    await conn.close()
    await asyncio.sleep(1.0)  # long enough for a wrong commit to land
    conn, ready = await ctx.ready(consumer=consumer)
    at = ready.get("cursor", {}).get("update_id")
    if at != str(ids[-1]):
        raise Failure(
            f"an ack of {ids[1]} below the committed {ids[-1]} moved the committed cursor to {at!r}"
        )


async def ack_beyond(ctx: Context) -> None:
    scenario = await ctx.scenario()
    probe, ready = await ctx.ready(
        consumer=ctx.consumer("probe"), cursor=scenario.cursor(scenario.last)
    )
    await probe.close()
    head = int(ready["head"])
    conn, _ = await ctx.ready(consumer=ctx.consumer("beyond"), cursor=scenario.cursor(head))
    await conn.send({"op": "ack", "update_id": str(head + 2**30)})
    try:
        await conn.expect_close(4506)
    except Failure as exc:
        raise Failure(f"an ack beyond every delivered update: {exc}") from None
    edits = [u for u in scenario.updates if "edited_message" in u]
    conn, _ = await ctx.ready(
        consumer=ctx.consumer("beyond"),
        cursor=scenario.cursor(),
        allowed_updates=["edited_message"],
    )
    await replay(conn, scenario, until=int(edits[-1]["update_id"]))
    await conn.send({"op": "ack", "update_id": str(scenario.last)})
    try:
        await conn.expect_close(4506)
    except Failure as exc:
        raise Failure(
            f"an ack of an update in the log but filtered out on this connection: {exc}"
        ) from None


_SUBSETS: list[list[str] | None] = [
    ["message"],
    ["edited_message", "callback_query"],
    ["my_chat_member", "message_reaction", "poll", "poll_answer"],
    [],
    None,
]


async def allowed_filter(ctx: Context) -> None:
    scenario = await ctx.scenario()
    for subset in _SUBSETS:
        wanted = set(subset or UPDATE_TYPES)
        expected = [u for u in scenario.updates if kind_of(u) in wanted]
        conn, _ = await ctx.ready(
            consumer=ctx.consumer("allowed"), cursor=scenario.cursor(), allowed_updates=subset
        )
        got = await replay(conn, scenario, until=int(expected[-1]["update_id"]))
        got += [u for f in await conn.quiet(0.5) if f["op"] == "updates" for u in f["updates"]]
        _same(scenario.upto_last(got), expected, f"allowed_updates {subset}")
        await conn.close()


async def allowed_consumed(ctx: Context) -> None:
    scenario = await ctx.scenario()
    consumer = ctx.consumer("filtered")
    conn, _ = await ctx.ready(
        consumer=consumer, cursor=scenario.cursor(), allowed_updates=["message"]
    )
    got = await replay(conn, scenario)
    last = got[-1]["update_id"]
    await conn.send({"op": "ack", "update_id": last})
    await conn.alive()
    await conn.close()
    conn, _ = await committed(ctx, consumer, int(last))
    early = [
        u
        for f in await conn.quiet(0.5)
        if f["op"] == "updates"
        for u in f["updates"]
        if int(u["update_id"]) <= scenario.last
    ]
    if early:
        raise Failure(
            f"updates filtered out before an acked one must count as consumed, got "
            f"{_show([u['update_id'] for u in early])} again"
        )


CHECKS = (
    Check(
        "updates.shape", "§6.3", "updates frames: shape and strictly increasing ids", updates_shape
    ),
    Check(
        "delivery.replay_then_live",
        "§7.1",
        "replay, then live, without gap or duplicate",
        replay_then_live,
    ),
    Check(
        "resume.cursor",
        "§7.4",
        "resume after a cursor delivers exactly what follows it",
        resume_cursor,
    ),
    Check(
        "resume.committed",
        "§7.2",
        "without a cursor delivery resumes after the committed one",
        resume_committed,
    ),
    Check(
        "ack.never_back",
        "§5.2",
        "a lower ack is ignored and never moves the commit back",
        ack_never_back,
    ),
    Check(
        "ack.beyond_delivered",
        "§5.2",
        "an ack beyond the delivered updates closes 4506",
        ack_beyond,
    ),
    Check(
        "allowed_updates.filter",
        "§5.1",
        "allowed_updates delivers exactly the named types",
        allowed_filter,
    ),
    Check(
        "allowed_updates.consumed",
        "§5.1",
        "filtered updates count as consumed by a later ack",
        allowed_consumed,
    ),
)
