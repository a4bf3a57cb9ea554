"""Redis comes back without its newest writes (a restart from a snapshot older than
them, as a failover with BOTGW_REDIS_WAIT_REPLICAS=0 can): every lost update is
announced to a reader that had not read it, with the exact count; a reader that
had read them goes on after them; no message id is issued twice.

Counted, as the other fault tests are: 7 messages acknowledged after the snapshot
are lost with it; the gap says 7.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis as redis_py

from botgw.local_redis import LocalRedis
from tests.api import ApiFailure, Caller, scene_at
from tests.conftest import make_settings, rest_process, running, wait_s

pytestmark = pytest.mark.asyncio

KEPT = 5
LOST = 7


async def _send(user: Caller, chat: str, text: str) -> dict[str, Any]:
    """sendMessage, retried while the REST process finds Redis again (503)."""
    for _ in range(int(wait_s(200))):
        try:
            return dict(await user("sendMessage", chat_id=chat, text=text))
        except (ApiFailure, httpx.HTTPError) as exc:
            if isinstance(exc, ApiFailure) and exc.status != 503:
                raise
            await asyncio.sleep(0.05)
    raise AssertionError(f"sendMessage {text!r} never succeeded")


async def test_a_lost_tail_is_announced_and_message_ids_are_not_reissued(tmp_path: Path) -> None:
    server = LocalRedis(directory=tmp_path / "redis", appendonly=False).start()
    try:
        settings = make_settings(server.url)
        rest = rest_process(server.url, tmp_path, "rest")
        with running(rest):
            async with scene_at(rest.url, settings, "tl", private=True) as scene:
                bot, user = scene.as_bot, scene.as_user
                kept = [await _send(user, scene.private, f"kept {n}") for n in range(KEPT)]
                snapshot = redis_py.Redis(port=server.port)
                snapshot.save()  # what the restarted server will have
                snapshot.close()
                lost = [await _send(user, scene.private, f"lost {n}") for n in range(LOST)]
                # a reader that reads everything before the loss
                seen = await bot("getUpdates", consumer="fast", timeout=0)
                texts = [u["message"]["text"] for u in seen]
                assert texts[-LOST:] == [f"lost {n}" for n in range(LOST)]
                last_kept_update = int(seen[-LOST - 1]["update_id"])
                last_lost_update = int(seen[-1]["update_id"])
                assert seen[-LOST - 1]["message"]["text"] == f"kept {KEPT - 1}"

                server.kill()
                server.start()  # from the snapshot: the LOST messages are gone
                after = await _send(user, scene.private, "after")

                # message ids: never one already handed out, even for the lost ones
                earlier = [int(m["message_id"]) for m in kept + lost]
                assert int(after["message_id"]) > max(earlier)

                # a reader behind the loss is told, with the exact count
                behind = await bot(
                    "getUpdates", consumer="slow", offset=last_kept_update + 1, timeout=0
                )
                assert [u.get("gap", {}).get("reason") for u in behind] == ["tail_lost", None]
                gap = behind[0]["gap"]
                assert gap["count"] == LOST
                assert int(gap["after_update_id"]) == last_kept_update
                assert int(gap["last_update_id"]) == last_lost_update
                assert int(behind[0]["update_id"]) == last_lost_update
                assert behind[1]["message"]["text"] == "after"

                # the reader that had read them goes on after them, with nothing missing
                ahead = await bot(
                    "getUpdates", consumer="fast", offset=last_lost_update + 1, timeout=0
                )
                assert [u["message"]["text"] for u in ahead] == ["after"]
    finally:
        server.stop()
