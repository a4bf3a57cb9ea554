"""Which dispatcher owns which bot (webhooks/assignment.py), without any process: the
same answer everywhere, every bot owned once, loads within 10 % of even, and little
movement when a dispatcher or a bot comes or goes."""

from __future__ import annotations

import random

import pytest

from webhooks.assignment import assign, capacity, owned_by, weight

# a fixed seed: these check properties over many cases, not luck
CASES = [
    (n, m, seed)
    for seed, (n, m) in enumerate(
        [(1, 1), (1, 3), (2, 3), (20, 3), (30, 3), (31, 4), (200, 3), (300, 7), (1000, 10)]
    )
]


def members(m: int, seed: int) -> list[str]:
    return [f"host{seed}:{1000 + i}:{i:08x}" for i in range(m)]


def bots(n: int, seed: int) -> list[int]:
    return random.Random(seed).sample(range(1, 2**52), n)


def test_the_weights_are_stable_across_processes_and_versions() -> None:
    # dispatchers of two versions must agree during a rolling upgrade: any change
    # of the hash is a change of the protocol between them
    assert weight("a", 1) == 11345766521286307598
    assert weight("dispatcher:1:ab", 2**52 - 1) == 3235440126617222960


@pytest.mark.parametrize(("n", "m", "seed"), CASES)
def test_every_bot_has_one_owner_the_same_from_any_input_order(n: int, m: int, seed: int) -> None:
    ids, names = bots(n, seed), members(m, seed)
    owner = assign(ids, names)
    assert set(owner) == set(ids) and set(owner.values()) <= set(names)
    shuffled = list(reversed(names)) + names[:1]  # order and repeats do not matter
    assert assign(list(reversed(ids)) + ids[:3], shuffled) == owner
    mine = [owned_by(name, ids, names) for name in names]
    assert sum(len(part) for part in mine) == n
    assert set().union(*mine) == set(ids)


@pytest.mark.parametrize(("n", "m", "seed"), CASES)
def test_loads_stay_within_a_tenth_above_an_even_share(n: int, m: int, seed: int) -> None:
    owner = assign(bots(n, seed), members(m, seed))
    loads = [list(owner.values()).count(name) for name in members(m, seed)]
    cap = capacity(n, m)
    assert cap <= n * 1.1 / m + 1
    assert max(loads) <= cap
    assert min(loads) >= n - (m - 1) * cap  # what the others can take at most
    if (n, m) == (30, 3):
        assert min(loads) >= 8 and max(loads) <= 11  # 27 % to 37 % each


def test_no_members_own_nothing() -> None:
    assert assign([1, 2, 3], []) == {}
    assert owned_by("a", [1, 2, 3], []) == set()


@pytest.mark.parametrize(("n", "m", "seed"), [c for c in CASES if c[0] >= 20])
def test_a_member_joining_or_leaving_moves_little_else(n: int, m: int, seed: int) -> None:
    ids, names = bots(n, seed), members(m, seed)
    before = assign(ids, names)
    joined = assign(ids, [*names, "newcomer:1:x"])
    to_newcomer = sum(1 for b in ids if joined[b] == "newcomer:1:x")
    moved = sum(1 for b in ids if joined[b] != before[b])
    assert to_newcomer >= n - m * capacity(n, m + 1)  # the others are full by then
    assert moved - to_newcomer <= 0.1 * n + 3  # the rest stays where it was, mostly
    if m > 1:
        left = assign(ids, names[1:])
        orphans = sum(1 for b in ids if before[b] == names[0])
        moved = sum(1 for b in ids if left[b] != before[b])
        assert moved - orphans <= 0.1 * n + 3


@pytest.mark.parametrize(("n", "m", "seed"), [c for c in CASES if c[0] >= 20])
def test_a_webhook_set_or_deleted_moves_at_most_a_few_other_bots(n: int, m: int, seed: int) -> None:
    ids, names = bots(n, seed), members(m, seed)
    before = assign(ids, names)
    extra = random.Random(seed + 100).randrange(1, 2**52)
    added = assign([*ids, extra], names)
    removed = assign(ids[1:], names)
    assert sum(1 for b in ids if added[b] != before[b]) <= 4
    assert sum(1 for b in ids[1:] if removed[b] != before[b]) <= 4
