"""§9 sharding and takeover: shard ``[i, n]`` gets the updates whose chat id is ``i``
modulo ``n`` (those without a chat on shard 0), and a newer connection for the same
bot, consumer and shard closes the older one with 4502, on any worker."""

from __future__ import annotations

from gateway.conformance.delivery import replay
from gateway.conformance.wire import Failure, Frame, Skip
from gateway.conformance.world import Check, Context, chat_of

__all__ = ["CHECKS"]


async def _sharded(ctx: Context) -> tuple[int, dict[int, list[Frame]]]:
    """What each of ``n`` shards of one consumer got of the scenario (made once)."""
    cached = ctx.cache.get("sharded")
    if cached is None:
        scenario = await ctx.scenario()
        count = scenario.shards
        consumer = ctx.consumer("shards")
        got: dict[int, list[Frame]] = {}
        conns = []
        for index in range(count):
            conn, _ = await ctx.ready(
                consumer=consumer, shard=[index, count], cursor=scenario.cursor()
            )
            conns.append(conn)
        for index, conn in enumerate(conns):
            mine = [u for u in scenario.updates if _shard(u, count) == index]
            updates = await replay(conn, scenario, until=int(mine[-1]["update_id"])) if mine else []
            updates += [
                u for f in await conn.quiet(0.5) if f["op"] == "updates" for u in f["updates"]
            ]
            got[index] = scenario.upto_last(updates)
            await conn.close()
        cached = ctx.cache["sharded"] = (count, got)
    return cached


def _shard(update: Frame, count: int) -> int:
    chat = chat_of(update)
    return 0 if chat is None else int(chat) % count


def _ids(updates: list[Frame]) -> list[str]:
    return [str(u["update_id"]) for u in updates]


async def routing(ctx: Context) -> None:
    scenario = await ctx.scenario()
    count, got = await _sharded(ctx)
    for index in range(count):
        expected = [
            u for u in scenario.updates if chat_of(u) is not None and _shard(u, count) == index
        ]
        mine = [u for u in got[index] if chat_of(u) is not None]
        if mine != expected:
            raise Failure(
                f"shard [{index}, {count}] must get the updates with chat_id % {count} == {index}: "
                f"expected {_ids(expected)}, got {_ids(mine)} (chats {[chat_of(u) for u in mine]})"
            )


async def no_chat(ctx: Context) -> None:
    scenario = await ctx.scenario()
    count, got = await _sharded(ctx)
    expected = [u for u in scenario.updates if chat_of(u) is None]
    for index in range(count):
        mine = [u for u in got[index] if chat_of(u) is None]
        want = expected if index == 0 else []
        if mine != want:
            kinds = sorted({k for u in expected for k in u if k != "update_id"})
            raise Failure(
                f"updates without a chat ({', '.join(kinds)}; the poll is in chat "
                f"{scenario.poll_group}, {int(scenario.poll_group) % count} modulo {count}) "
                f"must go to shard 0: shard [{index}, {count}] got {_ids(mine)}, "
                f"expected {_ids(want)}"
            )


async def takeover(ctx: Context) -> None:
    consumer = ctx.consumer("takeover")
    first, _ = await ctx.ready(consumer=consumer, shard=[0, 2])
    second, _ = await ctx.ready(consumer=consumer, shard=[0, 2])
    try:
        await first.expect_close(4502)
    except Failure as exc:
        raise Failure(f"the older connection of a consumer and shard: {exc}") from None
    other_shard, _ = await ctx.ready(consumer=consumer, shard=[1, 2])
    other_consumer, _ = await ctx.ready(consumer=ctx.consumer("takeover"), shard=[0, 2])
    for conn, what in ((second, "the newer connection"), (other_shard, "another shard's")):
        try:
            await conn.alive()
        except Failure as exc:
            raise Failure(
                f"only the same consumer and shard is taken over; {what}: {exc}"
            ) from None
    del other_consumer


async def takeover_across(ctx: Context) -> None:
    if len(ctx.options.gateways) < 2:
        raise Skip("needs two gateway workers: give --gateway twice")
    consumer = ctx.consumer("across")
    first, _ = await ctx.ready(consumer=consumer, url=ctx.options.gateways[0])
    await ctx.ready(consumer=consumer, url=ctx.options.gateways[1])
    try:
        await first.expect_close(4502)
    except Failure as exc:
        raise Failure(f"a connection taken over from another worker: {exc}") from None


CHECKS = (
    Check("shard.routing", "§9", "shard [i, n] gets the chats with chat_id % n == i", routing),
    Check(
        "shard.no_chat", "§9", "updates without a chat (poll, poll_answer) go to shard 0", no_chat
    ),
    Check("shard.takeover", "§9", "a newer connection takes over with 4502", takeover),
    Check("shard.takeover_across", "§9", "takeover across workers", takeover_across),
)
