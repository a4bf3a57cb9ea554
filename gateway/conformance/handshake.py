"""§3 encodings and ids, §4 states, §5.1 identify's forms, §5.3/§6.4 heartbeats,
§6.1 ``hello`` and §6.2 ``ready``."""

from __future__ import annotations

from typing import Any

from gateway.conformance.wire import DECIMAL, Failure, Frame, describe
from gateway.conformance.world import Check, Context

__all__ = ["CHECKS"]


def _is_int(value: object, minimum: int = 1) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= minimum


def _decimal(value: object) -> bool:
    return isinstance(value, str) and DECIMAL.fullmatch(value) is not None


def _problems(problems: list[str], what: str) -> None:
    if problems:
        raise Failure(f"{what}: " + "; ".join(problems))


async def hello_fields(ctx: Context) -> None:
    conn = await ctx.connect()
    hello = conn.hello
    problems = []
    if hello.get("v") != 1 or isinstance(hello.get("v"), bool):
        problems.append(f"v must be 1, got {hello.get('v')!r}")
    if not isinstance(hello.get("connection_id"), str) or not hello.get("connection_id"):
        problems.append(
            f"connection_id must be a non-empty string, got {hello.get('connection_id')!r}"
        )
    for name in ("heartbeat_interval_ms", "retention_s"):
        if not _is_int(hello.get(name)):
            problems.append(f"{name} must be a positive integer, got {hello.get(name)!r}")
    if not isinstance(hello.get("auth_required"), bool):
        problems.append(f"auth_required must be a boolean, got {hello.get('auth_required')!r}")
    limits = hello.get("limits")
    if not isinstance(limits, dict):
        problems.append(f"limits must be an object, got {limits!r}")
        limits = {}
    for name in (
        "identify_timeout_ms",
        "max_frame_bytes",
        "frame_burst",
        "max_connections_per_bot",
        "identify_per_minute",
    ):
        if not _is_int(limits.get(name)):
            problems.append(f"limits.{name} must be a positive integer, got {limits.get(name)!r}")
    if not _is_int(limits.get("max_pending_requests"), 0):
        problems.append(f"limits.max_pending_requests must be an integer >= 0: {limits!r}")
    rate = limits.get("max_frames_per_s")
    if not isinstance(rate, int | float) or isinstance(rate, bool) or rate <= 0:
        problems.append(f"limits.max_frames_per_s must be a positive number, got {rate!r}")
    other = await ctx.connect()
    if other.hello.get("connection_id") == hello.get("connection_id"):
        problems.append("two connections got the same connection_id")
    _problems(problems, "hello")


async def ready_fields(ctx: Context) -> None:
    bot = await ctx.main()
    scenario = await ctx.scenario()
    consumer = ctx.consumer("ready")
    conn, ready = await ctx.ready(consumer=consumer)
    await conn.close()
    problems = []
    if ready.get("bot") != {"id": bot.id, "username": bot.username}:
        problems.append(
            f"bot must be {{'id': {bot.id!r}, 'username': {bot.username!r}}}: {ready.get('bot')!r}"
        )
    if ready.get("consumer") != consumer:
        problems.append(f"consumer must echo {consumer!r}, got {ready.get('consumer')!r}")
    if ready.get("shard") != [0, 1]:
        problems.append(f"shard must default to [0, 1], got {ready.get('shard')!r}")
    epoch = ready.get("epoch")
    if epoch != scenario.epoch:
        problems.append(f"epoch must be the log's {scenario.epoch!r}, got {epoch!r}")
    cursor = ready.get("cursor")
    if (
        not isinstance(cursor, dict)
        or cursor.get("epoch") != epoch
        or not _decimal(cursor.get("update_id"))
    ):
        problems.append(f"cursor must be {{epoch, update_id}} in the epoch {epoch!r}: {cursor!r}")
    head = ready.get("head")
    if not isinstance(head, str) or not _decimal(head) or int(head) < scenario.last:
        problems.append(f"head must be the newest update id (>= {scenario.last}), got {head!r}")
    if ready.get("resumed") is not False:
        problems.append(
            f"resumed must be false for a consumer starting fresh, got {ready.get('resumed')!r}"
        )
    given = scenario.cursor(scenario.ids[1])
    conn, ready = await ctx.ready(consumer=ctx.consumer("ready"), shard=[1, 3], cursor=given)
    if ready.get("shard") != [1, 3]:
        problems.append(f"shard must echo [1, 3], got {ready.get('shard')!r}")
    if ready.get("cursor") != given:
        problems.append(f"cursor must be exactly the given {given}, got {ready.get('cursor')!r}")
    if ready.get("resumed") is not True:
        problems.append(
            f"resumed must be true with a cursor in the log, got {ready.get('resumed')!r}"
        )
    _problems(problems, "ready")


async def fresh_start(ctx: Context) -> None:
    await ctx.scenario()
    probe = {"epoch": f"cf-{ctx.run}-not-the-epoch", "update_id": "1"}
    conn, gap = await ctx.open(consumer=ctx.consumer("oldest"), cursor=probe, on_gap="newest")
    await conn.close()
    if gap.get("op") != "gap" or not _decimal(gap.get("oldest")):
        raise Failure(
            f"setup: a gap with the log's oldest update was expected, got {describe(gap)}"
        )
    oldest = int(gap["oldest"])
    conn, ready = await ctx.ready(consumer=ctx.consumer("fresh"))
    first = (await conn.updates(lambda us: bool(us)))[0]
    if int(first["update_id"]) != oldest:
        raise Failure(
            f"a consumer that never committed must start at the oldest retained update "
            f"{oldest}, the first delivered was {first['update_id']}"
        )
    if int(ready["cursor"]["update_id"]) >= oldest:
        raise Failure(f"ready.cursor {ready['cursor']} must be before the first update {oldest}")


async def heartbeat_before_identify(ctx: Context) -> None:
    conn = await ctx.connect()
    await conn.send({"op": "heartbeat"})
    ack = await conn.expect("heartbeat_ack")
    if "acked" not in ack or ack["acked"] is not None:
        raise Failure(f"heartbeat_ack before identify must have acked null, got {describe(ack)}")
    await conn.identify(consumer=ctx.consumer("hb"))
    await conn.expect("ready")


async def heartbeat_acked(ctx: Context) -> None:
    scenario = await ctx.scenario()
    ids = scenario.ids
    conn, _ = await ctx.ready(consumer=ctx.consumer("hb"), cursor=scenario.cursor(ids[1]))
    steps: list[tuple[Frame, int, str]] = [
        ({"op": "heartbeat"}, ids[1], "right after ready: the start cursor"),
    ]
    await conn.send(steps[0][0])
    ack = await conn.expect("heartbeat_ack", skip=("updates",))
    if ack.get("acked") != str(ids[1]):
        raise Failure(f"heartbeat_ack.acked {steps[0][2]} {ids[1]!r}, got {describe(ack)}")
    await conn.updates(lambda us: any(int(u["update_id"]) >= scenario.last for u in us))
    cases: list[tuple[Frame, int, str]] = [
        ({"op": "ack", "update_id": str(ids[3])}, ids[3], "after an ack"),
        ({"op": "heartbeat", "ack": str(ids[4])}, ids[4], "after a heartbeat carrying ack"),
        ({"op": "heartbeat", "ack": ids[5]}, ids[5], "after an integer ack"),
        ({"op": "ack", "update_id": str(ids[2])}, ids[5], "after a lower ack (ignored)"),
    ]
    for frame, expected, what in cases:
        await conn.send(frame)
        if frame["op"] == "ack":
            await conn.send({"op": "heartbeat"})
        ack = await conn.expect("heartbeat_ack", skip=("updates",))
        if ack.get("acked") != str(expected):
            raise Failure(
                f"heartbeat_ack.acked {what} must be {str(expected)!r}, got {describe(ack)}"
            )


def _no_bin(value: Any, path: str = "") -> str | None:
    if isinstance(value, bytes):
        return path or "(frame)"
    if isinstance(value, dict):
        for key, item in value.items():
            found = _no_bin(item, f"{path}.{key}" if path else str(key))
            if found:
                return found
    if isinstance(value, list):
        for index, item in enumerate(value):
            found = _no_bin(item, f"{path}[{index}]")
            if found:
                return found
    return None


async def encoding_json(ctx: Context) -> None:
    scenario = await ctx.scenario()
    conn, _ = await ctx.ready(
        consumer=ctx.consumer("json"), cursor=scenario.cursor(), encoding="json"
    )
    got = await conn.updates(lambda us: any(int(u["update_id"]) >= scenario.last for u in us))
    await conn.alive()
    if any(conn.binary):
        raise Failure(
            "with encoding json every server frame must be a text frame, some were binary"
        )
    if scenario.upto_last(got) != scenario.updates:
        raise Failure(
            "with encoding json the updates differ from those of the reference connection"
        )


async def encoding_msgpack(ctx: Context) -> None:
    scenario = await ctx.scenario()
    conn, ready = await ctx.ready(
        consumer=ctx.consumer("mp"), cursor=scenario.cursor(), encoding="msgpack"
    )
    if conn.binary != [True]:
        raise Failure("with encoding msgpack, ready must be a binary (msgpack) frame; it was text")
    got = await conn.updates(lambda us: any(int(u["update_id"]) >= scenario.last for u in us))
    if not all(conn.binary):
        raise Failure("with encoding msgpack every server frame must be binary, some were text")
    found = _no_bin(ready) or next((p for u in got if (p := _no_bin(u))), None)
    if found:
        raise Failure(f"msgpack strings must be str, never bin: {found} is bin")
    if scenario.upto_last(got) != scenario.updates:
        raise Failure("the msgpack updates differ from the JSON ones of the reference connection")
    for binary in (False, True):
        await conn.send({"op": "heartbeat"}, binary=binary)
        await conn.expect("heartbeat_ack", skip=("updates",))
        if not conn.binary[-1]:
            kind = "msgpack" if binary else "JSON"
            raise Failure(f"a {kind} heartbeat on a msgpack connection was answered in text")


async def client_kinds(ctx: Context) -> None:
    conn = await ctx.connect()
    await conn.identify(binary=True, consumer=ctx.consumer("kinds"))
    await conn.expect("ready")
    await conn.send({"op": "heartbeat"}, binary=True)
    await conn.expect("heartbeat_ack", skip=("updates",))
    if any(conn.binary):
        raise Failure("a msgpack identify choosing json (the default) was answered in binary")


_DECIMAL_PARENTS = {"chat", "from", "user", "sender_chat", "bot"}


def _loose_ids(value: Any, parent: str = "", path: str = "") -> list[str]:
    """Paths of entity ids (update, message, chat, user ids) that are not decimal strings."""
    found: list[str] = []
    if isinstance(value, dict):
        for key, item in value.items():
            where = f"{path}.{key}" if path else key
            entity = key in ("update_id", "message_id") or (
                key == "id" and parent in _DECIMAL_PARENTS
            )
            if entity and not _decimal(item):
                found.append(f"{where}={item!r}")
            found.extend(_loose_ids(item, key, where))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            found.extend(_loose_ids(item, parent, f"{path}[{index}]"))
    return found


async def ids_decimal(ctx: Context) -> None:
    scenario = await ctx.scenario()
    _, ready = await ctx.ready(consumer=ctx.consumer("ids"), cursor=scenario.cursor())
    loose = _loose_ids(ready)
    for name in ("head",):
        if not _decimal(ready.get(name)):
            loose.append(f"ready.{name}={ready.get(name)!r}")
    for update in scenario.updates:
        loose.extend(_loose_ids(update))
    if loose:
        raise Failure("ids must be decimal strings: " + ", ".join(loose[:8]))


async def ids_integers(ctx: Context) -> None:
    scenario = await ctx.scenario()
    ids = scenario.ids
    cursor = {"epoch": scenario.epoch, "update_id": ids[2]}
    conn, ready = await ctx.ready(consumer=ctx.consumer("int"), cursor=cursor)
    if ready.get("cursor") != scenario.cursor(ids[2]):
        raise Failure(
            f"an integer cursor {ids[2]} must be echoed as a string, got {ready.get('cursor')}"
        )
    got = await conn.updates(lambda us: any(int(u["update_id"]) >= scenario.last for u in us))
    if scenario.upto_last(got) != scenario.updates[3:]:
        raise Failure("after an integer cursor the updates are not exactly those after it")
    await conn.send({"op": "ack", "update_id": ids[4]})
    await conn.alive()


async def before_ready(ctx: Context) -> None:
    scenario = await ctx.scenario()
    frames = {
        "ack": {"op": "ack", "update_id": str(scenario.ids[0])},
        "request": {"op": "request", "id": "r1", "method": "getMe"},
    }
    for what, frame in frames.items():
        conn = await ctx.connect()
        await conn.send(frame)
        try:
            await conn.expect_close(4500)
        except Failure as exc:
            raise Failure(f"{what} before identify: {exc}") from None


async def second_identify(ctx: Context) -> None:
    for op in ("identify", "resume"):
        conn, _ = await ctx.ready(consumer=ctx.consumer("twice"))
        await conn.identify(op=op, consumer=ctx.consumer("twice"))
        try:
            await conn.expect_close(4500)
        except Failure as exc:
            raise Failure(f"a {op} after ready: {exc}") from None


async def resume_alias(ctx: Context) -> None:
    scenario = await ctx.scenario()
    conn = await ctx.connect()
    cursor = scenario.cursor(scenario.ids[-2])
    await conn.identify(op="resume", consumer=ctx.consumer("resume"), cursor=cursor)
    ready = await conn.expect("ready")
    if ready.get("cursor") != cursor or ready.get("resumed") is not True:
        raise Failure(
            f"resume with a cursor: expected ready at {cursor}, resumed, got cursor "
            f"{ready.get('cursor')!r}, resumed {ready.get('resumed')!r}"
        )
    got = await conn.updates(lambda us: any(int(u["update_id"]) >= scenario.last for u in us))
    if scenario.upto_last(got) != scenario.updates[-1:]:
        raise Failure("after resume the updates are not exactly those after its cursor")


async def unknown_fields(ctx: Context) -> None:
    conn = await ctx.connect()
    await conn.identify(consumer=ctx.consumer("future"), x_later_field={"a": [1, 2]}, zz=None)
    await conn.expect("ready")
    await conn.send({"op": "heartbeat", "x_later_field": "ignored"})
    await conn.expect("heartbeat_ack", skip=("updates",))


CHECKS = (
    Check("hello.fields", "§6.1", "hello fields and limits", hello_fields),
    Check("ready.fields", "§6.2", "ready fields", ready_fields),
    Check(
        "ready.fresh_start",
        "§7.2",
        "a new consumer starts at the oldest retained update",
        fresh_start,
    ),
    Check(
        "heartbeat.before_identify",
        "§5.3",
        "heartbeat before identify: acked null",
        heartbeat_before_identify,
    ),
    Check("heartbeat.acked", "§6.4", "heartbeat_ack carries the cumulative ack", heartbeat_acked),
    Check("encoding.json", "§3", "json encoding: every server frame is text", encoding_json),
    Check(
        "encoding.msgpack", "§3", "msgpack encoding: binary frames, same content", encoding_msgpack
    ),
    Check("encoding.client_kinds", "§3", "the client may send either kind of frame", client_kinds),
    Check("ids.decimal", "§3", "ids are decimal strings", ids_decimal),
    Check("ids.integers", "§3", "integer ids accepted in cursor and ack", ids_integers),
    Check("states.before_ready", "§4", "ack and request before ready close 4500", before_ready),
    Check(
        "states.second_identify", "§4", "a second identify or resume closes 4500", second_identify
    ),
    Check("identify.resume_alias", "§5.1", "resume is identify under another name", resume_alias),
    Check(
        "identify.unknown_fields",
        "§3",
        "unknown fields of client frames are ignored",
        unknown_fields,
    ),
)
