"""§5.4, §6.5 and §13: Bot API calls over the socket, their results and errors (the
REST envelope without ``ok``), the limit of pending requests and duplicate ids."""

from __future__ import annotations

from typing import Any

from gateway.conformance.wire import Conn, Failure, Frame, Skip, describe
from gateway.conformance.world import Check, Context

__all__ = ["CHECKS"]


async def _results(conn: Conn, ids: list[str]) -> dict[str, Frame]:
    """The ``result`` of each request id, in whatever order they come (§6.5)."""
    got: dict[str, Frame] = {}
    while len(got) < len(ids):
        frame = await conn.expect("result", skip=("updates", "heartbeat_ack"))
        request_id = frame.get("id")
        if request_id not in ids or request_id in got:
            raise Failure(f"a result for no pending request (or twice): {describe(frame)}")
        got[str(request_id)] = frame
    return got


def _check_error(frame: Frame, what: str) -> dict[str, object]:
    error = frame.get("error")
    if frame.get("ok") is not False or not isinstance(error, dict):
        raise Failure(
            f"{what}: expected a result with ok false and an error object, got {describe(frame)}"
        )
    if "ok" in error:
        raise Failure(f"{what}: the error is the REST envelope without ok, got {error}")
    code, status = error.get("code"), error.get("error_code")
    if not isinstance(code, str) or not isinstance(status, int) or not error.get("description"):
        raise Failure(f"{what}: the error needs error_code, code and description: {error}")
    return error


async def ok_results(ctx: Context) -> None:
    bot = await ctx.main()
    scenario = await ctx.scenario()
    conn, _ = await ctx.ready(consumer=ctx.consumer("req"))
    text = f"over the socket {ctx.run}"
    requests: list[Frame] = [
        {"op": "request", "id": "me-1", "method": "getMe"},
        {
            "op": "request",
            "id": "send-1",
            "method": "sendMessage",
            "params": {"chat_id": scenario.bot_chat, "text": text},
        },
        {"op": "request", "id": "me-2", "method": "getMe", "params": {}},
    ]
    for request in requests:
        await conn.send(request)
    got = await _results(conn, [r["id"] for r in requests])
    for request_id, frame in got.items():
        if frame.get("ok") is not True or not isinstance(frame.get("result"), dict):
            raise Failure(
                f"request {request_id}: expected ok true with a result, got {describe(frame)}"
            )
    for request_id in ("me-1", "me-2"):
        me = got[request_id]["result"]
        if me.get("id") != bot.id or me.get("is_bot") is not True:
            raise Failure(f"getMe over the socket must be the bot {bot.id}: {me}")
    sent = got["send-1"]["result"]
    if sent.get("text") != text or str((sent.get("chat") or {}).get("id")) != scenario.bot_chat:
        raise Failure(
            f"sendMessage over the socket: expected the message in {scenario.bot_chat}: {sent}"
        )


async def error_results(ctx: Context) -> None:
    bot = await ctx.main()
    conn, _ = await ctx.ready(consumer=ctx.consumer("reqerr"))
    calls: dict[str, tuple[str, dict[str, Any]]] = {
        "chat": ("sendMessage", {"chat_id": "1", "text": "nobody"}),
        "method": ("noSuchMethod", {}),
        "updates": ("getUpdates", {"timeout": 0}),
    }
    for request_id, (method, params) in calls.items():
        await conn.send({"op": "request", "id": request_id, "method": method, "params": params})
    got = await _results(conn, list(calls))
    for request_id, (method, params) in calls.items():
        error = _check_error(got[request_id], f"{method} over the socket")
        if method == "getUpdates":
            if error.get("code") != "METHOD_NOT_ALLOWED_HERE":
                raise Failure(
                    f"getUpdates over the socket: expected METHOD_NOT_ALLOWED_HERE: {error}"
                )
            continue
        status, body = await ctx.rest.raw(f"/bot/{method}", f"Bot {bot.token}", dict(params))
        if (error.get("error_code"), error.get("code")) != (status, body.get("code")):
            raise Failure(
                f"{method} over the socket must fail as over REST ({status} {body.get('code')}), "
                f"got {error}"
            )


async def pending_limit(ctx: Context) -> None:
    conn, _ = await ctx.ready(consumer=ctx.consumer("pending"))
    limit = conn.limits.get("max_pending_requests")
    burst = conn.limits.get("frame_burst", 0)
    if not isinstance(limit, int) or not isinstance(burst, int) or limit + 12 > burst:
        raise Skip(f"max_pending_requests {limit} cannot be exceeded within frame_burst {burst}")
    # well past the limit, within the frame budget: answers that come back while the
    # burst is still being read must not keep it under the limit
    ids = [f"p-{n}" for n in range(min(2 * limit + 8, burst - 4))]
    for request_id in ids:  # one burst: the server reads them before answering any
        await conn.send({"op": "request", "id": request_id, "method": "getMe"})
    got = await _results(conn, ids)
    refused = [f for f in got.values() if f.get("ok") is not True]
    for frame in refused:
        error = _check_error(frame, "a request beyond max_pending_requests")
        if (error.get("error_code"), error.get("code")) != (429, "TOO_MANY_REQUESTS"):
            raise Failure(
                f"a request beyond max_pending_requests: expected 429 TOO_MANY_REQUESTS: {error}"
            )
    if not refused:
        raise Failure(
            f"{len(ids)} requests at once with max_pending_requests {limit}: none was refused"
        )
    if len(ids) - len(refused) < limit:
        raise Failure(
            f"only {len(ids) - len(refused)} of {len(ids)} requests were accepted, limit {limit}"
        )
    try:
        await conn.alive()
    except Failure as exc:
        raise Failure(f"the connection stays open after TOO_MANY_REQUESTS: {exc}") from None


async def duplicate_id(ctx: Context) -> None:
    conn, _ = await ctx.ready(consumer=ctx.consumer("dup"))
    for _ in range(2):
        await conn.send({"op": "request", "id": "same", "method": "getMe"})
    try:
        await conn.expect_close(4500, skip=("updates", "heartbeat_ack", "result"))
    except Failure as exc:
        raise Failure(f"a request with the id of one still pending: {exc}") from None


CHECKS = (
    Check("request.ok", "§13", "requests over the socket: results by id", ok_results),
    Check("request.error", "§6.5", "request errors: the REST envelope without ok", error_results),
    Check(
        "request.pending_limit",
        "§13",
        "beyond max_pending_requests: TOO_MANY_REQUESTS result",
        pending_limit,
    ),
    Check("request.duplicate_id", "§5.4", "a request id still pending closes 4500", duplicate_id),
)
