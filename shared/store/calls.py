"""Results of API calls made with an ``Idempotency-Key``: a retry gets the first answer.

Each key belongs to one caller (a bot ``b<id>`` or a user ``u<id>``, in that
caller's hash slot) and one API, and lives for :data:`RESULT_TTL_SECONDS`. A call
first *claims* its key: the claim holds for :data:`RUNNING_TTL_MS` while the call
runs, then the result replaces it. A call that failed with an error (which wrote
nothing) releases the key, so a retry runs again. A process that died mid-call
leaves its claim to expire; the writes it made are keyed by the same key one level
down (the chat outbox's idempotency key), so the retry that follows finds them
instead of writing again.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from shared import keys
from shared.codecs import pack, unpack
from shared.store.wire import Wire

__all__ = ["RESULT_TTL_SECONDS", "RUNNING_TTL_MS", "CallResults", "Claim"]

RESULT_TTL_SECONDS = 86_400
RUNNING_TTL_MS = 10_000
_RUNNING, _DONE = 0, 1


@dataclass(frozen=True, slots=True)
class Claim:
    """What claiming a key found: ``new`` (run the call), ``running`` (another call
    with the key has not finished) or ``done`` (``method`` answered ``result``)."""

    state: str
    method: str = ""
    result: Any = None


class CallResults:
    """Domain operations on call results; reached as ``store.calls``."""

    def __init__(self, *, wire: Wire) -> None:
        self._wire = wire

    async def claim(self, caller: str, api: str, key: str, method: str) -> Claim:
        """Claim ``key`` for a call of ``method``, or say what holds it."""
        name = keys.call_result(caller, f"{api}:{key}")
        running = pack([_RUNNING, method, None])
        for _ in range(3):  # a claim may expire between the SET and the GET
            taken, held = await self._wire.calls(
                [("SET", name, running, "NX", "PX", RUNNING_TTL_MS), ("GET", name)]
            )
            if taken is not None:
                return Claim("new", method)
            if held is not None:
                state, held_method, result = unpack(bytes(held))
                return Claim("done" if state == _DONE else "running", held_method, result)
        return Claim("running", method)

    async def finish(self, caller: str, api: str, key: str, method: str, result: Any) -> None:
        """Keep the result of a claimed call for retries."""
        name = keys.call_result(caller, f"{api}:{key}")
        await self._wire.call(
            "SET", name, pack([_DONE, method, result]), "EX", RESULT_TTL_SECONDS, retry=True
        )

    async def release(self, caller: str, api: str, key: str) -> None:
        """Let a claimed call that failed run again on a retry."""
        await self._wire.call("DEL", keys.call_result(caller, f"{api}:{key}"), retry=True)
