"""Tests of the recovery decision (gateway/resume.py): where a reader resumes in a
bot's log, or which gap it is told about, and where each gap policy goes on."""

from __future__ import annotations

import pytest

from gateway.frames import GapPolicy
from gateway.resume import Gap, Resume, after_gap, lost, resume_point
from shared.ids import Cursor

EPOCH = "e1"

# A log that was trimmed: its oldest entry 100 names 50 (gone) as its predecessor.
# (update id, predecessor id)
LOG = [(100, 50), (200, 100), (300, 200)]
OLDEST, NEWEST = 100, 300


def next_prev_id(position: int, log: list[tuple[int, int]] = LOG) -> int | None:
    """The predecessor named by the first entry after ``position``, as a read returns it."""
    return next((prev for update_id, prev in log if update_id > position), None)


def point(cursor: Cursor | None, log: list[tuple[int, int]] = LOG) -> Resume | Gap:
    position = cursor.update_id if cursor is not None else 0
    return resume_point(cursor, epoch=EPOCH, next_prev_id=next_prev_id(position, log))


def test_no_cursor_starts_at_the_beginning() -> None:
    assert point(None) == Resume(0)
    assert point(None, []) == Resume(0)


def test_a_cursor_of_nothing_delivered_has_nothing_to_miss() -> None:
    assert point(Cursor(EPOCH, 0)) == Resume(0)


@pytest.mark.parametrize("update_id", [100, 200, 300])
def test_a_cursor_in_range_resumes_after_itself(update_id: int) -> None:
    assert point(Cursor(EPOCH, update_id)) == Resume(update_id)


def test_a_cursor_between_entries_resumes_after_itself() -> None:
    # ids are not contiguous: 150 was never an entry, nothing after it is missing
    log = [(100, 50), (200, 150), (300, 200)]
    assert point(Cursor(EPOCH, 150), log) == Resume(150)


def test_the_predecessor_of_the_oldest_entry_lost_nothing() -> None:
    assert point(Cursor(EPOCH, 50)) == Resume(50)


@pytest.mark.parametrize("update_id", [1, 49])
def test_a_cursor_below_the_oldest_entry_is_a_retention_gap(update_id: int) -> None:
    assert point(Cursor(EPOCH, update_id)) == Gap("retention")


def test_a_cursor_beyond_the_head_waits_for_what_comes() -> None:
    assert point(Cursor(EPOCH, 400)) == Resume(400)


def test_a_cursor_in_an_empty_log_resumes_after_itself() -> None:
    assert point(Cursor(EPOCH, 200), []) == Resume(200)


@pytest.mark.parametrize("update_id", [0, 49, 200, 400])
def test_a_cursor_of_another_epoch_is_an_epoch_gap(update_id: int) -> None:
    # whatever its id: ids of another epoch mean nothing in this log
    assert point(Cursor("e0", update_id)) == Gap("epoch")
    assert point(Cursor("e0", update_id), []) == Gap("epoch")


def test_lost_needs_a_position_and_a_newer_predecessor() -> None:
    assert lost(49, 50) and lost(1, 2)
    assert not lost(50, 50) and not lost(51, 50)
    assert not lost(0, 50)  # nothing delivered yet
    assert not lost(49, None)  # nothing after the position


@pytest.mark.parametrize(
    ("policy", "expected"),
    [("fail", None), ("oldest", OLDEST - 1), ("newest", NEWEST)],
)
def test_each_policy_after_a_gap(policy: GapPolicy, expected: int | None) -> None:
    assert after_gap(policy, oldest=OLDEST, newest=NEWEST) == expected
    # the reader's own position matters only for an empty log
    assert after_gap(policy, oldest=OLDEST, newest=NEWEST, position=7) == expected


@pytest.mark.parametrize(
    ("policy", "expected"),
    [("fail", None), ("oldest", 0), ("newest", 7)],
)
def test_each_policy_after_a_gap_in_an_empty_log(policy: GapPolicy, expected: int | None) -> None:
    # oldest: from the start of whatever comes; newest: the reader stays where it is
    assert after_gap(policy, oldest=None, newest=None, position=7) == expected


def test_oldest_of_a_log_starting_at_its_first_id_starts_at_zero() -> None:
    assert after_gap("oldest", oldest=1, newest=5) == 0
    assert after_gap("oldest", oldest=None, newest=None) == 0
    assert after_gap("newest", oldest=None, newest=None) == 0
