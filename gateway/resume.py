"""Where a reader resumes in a bot's log, or why it cannot: the recovery decision.

Pure: the cursor, what the log says about itself and the client's gap policy go
in, a position or a gap comes out; the session does the reads around it
(docs/design.md, "Readers and cursors"; ``docs/protocol.md`` on gaps).

A cursor is the last update a consumer processed, in one epoch of the log. The
reader resumes after it, unless the log began a new epoch since (the cursor's ids
mean nothing there), or the entries right after the cursor were trimmed: the
first entry still after it names a predecessor newer than the cursor. Either is a
gap, told to the client; its ``on_gap`` policy then says where delivery goes on.
"""

from __future__ import annotations

from dataclasses import dataclass

from gateway.frames import GapPolicy, GapReason
from shared.ids import Cursor

__all__ = ["Gap", "Resume", "after_gap", "lost", "resume_point"]


@dataclass(frozen=True, slots=True)
class Resume:
    """Deliver the entries after ``update_id`` (0: from the start of the log)."""

    update_id: int


@dataclass(frozen=True, slots=True)
class Gap:
    """The cursor is not in the log: tell the client, then apply its policy."""

    reason: GapReason


def lost(position: int, next_prev_id: int | None) -> bool:
    """Whether entries right after ``position`` were trimmed from the log.

    ``next_prev_id`` is the predecessor named by the first entry after
    ``position`` (None when there is none). Position 0 has delivered nothing, so
    there is nothing it could have missed.
    """
    return position > 0 and next_prev_id is not None and next_prev_id > position


def resume_point(
    cursor: Cursor | None, *, epoch: str, next_prev_id: int | None, head: int | None = None
) -> Resume | Gap:
    """Where a reader at ``cursor`` starts in the log of ``epoch``.

    ``cursor`` None: nothing was ever committed, start at the beginning.
    ``next_prev_id`` as for :func:`lost`, read after the cursor in ``epoch``; a
    loss found there is ``retention`` (the caller tells it from ``tail_lost`` by
    looking at the log). ``head``: the newest id the log handed out, known when
    nothing follows the cursor; a cursor beyond it names updates the log no longer
    has (a failover lost them): ``tail_lost``, never accepted silently.
    """
    if cursor is None:
        return Resume(0)
    if cursor.epoch != epoch:
        return Gap("epoch")
    if lost(cursor.update_id, next_prev_id):
        return Gap("retention")
    if head is not None and cursor.update_id > head:
        return Gap("tail_lost")
    return Resume(cursor.update_id)


def after_gap(
    on_gap: GapPolicy,
    *,
    oldest: int | None,
    newest: int | None,
    position: int = 0,
    reason: GapReason = "retention",
    hole_end: int = 0,
) -> int | None:
    """After a gap, the update id delivery goes on after; None when ``on_gap`` is fail.

    ``oldest``/``newest`` are the retained range of the log (None when it is
    empty). ``"oldest"`` goes on with the oldest retained entry (the start of an
    empty log); ``"newest"`` after the newest one, an empty log leaving the reader
    at ``position``. After ``tail_lost`` both go on after the lost updates
    (``hole_end``, the newest lost id, or ``position`` beyond it): nothing older
    is missing.
    """
    if on_gap == "fail":
        return None
    if reason == "tail_lost":
        return max(hole_end, position)
    if on_gap == "oldest":
        return max(oldest - 1, 0) if oldest is not None else 0
    return newest if newest is not None else position
