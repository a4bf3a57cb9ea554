"""Correctness while measuring: every update once, in order, per connection.

The load generators write ``"<seq> <t_ns>"`` as each update's text: ``seq`` counts
the updates of one bot from 0 within a run, ``t_ns`` is ``time.monotonic_ns()``
when the append started (the monotonic clock is shared by the processes of one
machine). A receiver keeps a :class:`Check` per connection (or per poller).
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

__all__ = ["Check", "FrameSummary", "body_text", "parse_text", "summarize_updates"]


def body_text(seq: int, sent_ns: int) -> str:
    return f"{seq} {sent_ns}"


def parse_text(text: object) -> tuple[int, int]:
    """``(seq, t_ns)`` of a load-generator text, ``(-1, 0)`` for any other update."""
    if not isinstance(text, str):
        return -1, 0
    seq, _, sent = text.partition(" ")
    if not seq.isdigit() or not sent.isdigit():
        return -1, 0
    return int(seq), int(sent)


def _text_of(update: dict[str, Any]) -> object:
    message = update.get("message")
    return message.get("text") if isinstance(message, dict) else None


@dataclass(frozen=True, slots=True)
class FrameSummary:
    """What a batch of updates holds, computed once per distinct frame."""

    first_id: int
    last_id: int
    first_seq: int
    last_seq: int
    count: int
    contiguous: bool  # ids increase and seqs are consecutive inside the batch
    items: tuple[tuple[int, int], ...]  # (update_id, seq)
    sent_ns: tuple[int, ...]


def summarize_updates(updates: Iterable[dict[str, Any]]) -> FrameSummary:
    items: list[tuple[int, int]] = []
    sent: list[int] = []
    for update in updates:
        seq, t_ns = parse_text(_text_of(update))
        items.append((int(update["update_id"]), seq))
        if t_ns:
            sent.append(t_ns)
    contiguous = bool(items) and all(seq >= 0 for _, seq in items)
    for (a_id, a_seq), (b_id, b_seq) in itertools.pairwise(items):
        if b_id <= a_id or b_seq != a_seq + 1:
            contiguous = False
            break
    first_id, first_seq = items[0] if items else (0, -1)
    last_id, last_seq = items[-1] if items else (0, -1)
    return FrameSummary(
        first_id=first_id,
        last_id=last_id,
        first_seq=first_seq,
        last_seq=last_seq,
        count=len(items),
        contiguous=contiguous,
        items=tuple(items),
        sent_ns=tuple(sent),
    )


class Check:
    """The running check of one receiver.

    ``dups``: an update seen before. ``lost``: sequence numbers skipped (plus, at the
    end, those never received). ``out_of_order``: an update id not above the last
    one on the same receiver.
    """

    __slots__ = ("dups", "last_id", "lost", "next_seq", "out_of_order", "received")

    def __init__(self) -> None:
        self.last_id: int | None = None
        self.next_seq = 0
        self.received = 0
        self.dups = 0
        self.lost = 0
        self.out_of_order = 0

    def start_after(self, update_id: int) -> None:
        self.last_id = update_id

    def feed(self, summary: FrameSummary) -> None:
        last = self.last_id
        if (
            summary.contiguous
            and summary.first_seq == self.next_seq
            and (last is None or summary.first_id > last)
        ):
            self.next_seq = summary.last_seq + 1
            self.received += summary.count
            self.last_id = summary.last_id
            return
        for update_id, seq in summary.items:
            self.feed_one(update_id, seq)

    def feed_one(self, update_id: int, seq: int) -> None:
        if 0 <= seq < self.next_seq:
            self.dups += 1
            return
        last = self.last_id
        if last is not None and update_id <= last:
            self.out_of_order += 1
        else:
            self.last_id = update_id
        if seq < 0:
            return
        if seq > self.next_seq:
            self.lost += seq - self.next_seq
        self.next_seq = seq + 1
        self.received += 1

    def row(self) -> list[int]:
        return [self.received, self.next_seq, self.dups, self.out_of_order, self.lost]
