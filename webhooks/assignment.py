"""Which live dispatcher delivers which bot: rendezvous hashing with bounded loads.

No I/O here: every dispatcher computes the same assignment from the same two inputs,
the sorted live members and the bots with an active webhook, so nobody has to
write who owns what, and nobody asks for a bot it does not own.

Each bot ranks the members by a weight that depends on the pair only (highest
random weight, "rendezvous" hashing): a member joining takes from each other member
only bots it now outranks, a member leaving gives only its own bots away. Plain
rendezvous hashing spreads a few bots unevenly (30 bots over three members: some
member gets fewer than 6 or more than 15 about one time in seven), so loads are
*bounded*: bots are taken in an order fixed by their own hash, and each goes to the
best-ranked member that holds fewer than :func:`capacity` bots, 10 % above an even
share, rounded up. Then no member owns more than that, none fewer than what the
others leave (for 30 bots over 3: 8 to 11 each), and a bot added or removed moves
one or two other bots at most (measured up to 5 000 bots over 10 members).

The weight is splitmix64's finalizer over the bot id and a 64-bit hash of the
member id: cheap, stable across processes and versions (never Python's ``hash``),
and well spread for consecutive ids.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence

__all__ = ["LOAD_SLACK_PERCENT", "assign", "capacity", "owned_by", "weight"]

MASK = (1 << 64) - 1
LOAD_SLACK_PERCENT = 10  # how far above an even share one member's load may go


def _mix(value: int) -> int:
    """splitmix64's finalizer: 64 bits in, 64 well-mixed bits out."""
    value &= MASK
    value = ((value ^ (value >> 30)) * 0xBF58476D1CE4E5B9) & MASK
    value = ((value ^ (value >> 27)) * 0x94D049BB133111EB) & MASK
    return value ^ (value >> 31)


def _seed(member: str) -> int:
    return int.from_bytes(hashlib.blake2b(member.encode(), digest_size=8).digest(), "big")


def weight(member: str, bot_id: int) -> int:
    """The rendezvous weight of ``member`` for ``bot_id`` (the higher, the better)."""
    return _mix(_seed(member) ^ _mix(bot_id))


def capacity(bots: int, members: int) -> int:
    """The most bots one member may own: an even share plus 10 %, rounded up."""
    assert members > 0
    return -(-bots * (100 + LOAD_SLACK_PERCENT) // (100 * members))


def assign(bots: Iterable[int], members: Sequence[str]) -> dict[int, str]:
    """The member that owns each bot (empty when there are no members)."""
    names = sorted(set(members))
    if not names:
        return {}
    seeds = [(_seed(name), name) for name in names]
    order = sorted(set(bots), key=lambda bot: (_mix(bot), bot))
    limit = capacity(len(order), len(names))
    load = dict.fromkeys(names, 0)
    owner: dict[int, str] = {}
    for bot in order:
        mixed = _mix(bot)
        # best first; a full member passes the bot to the next one
        ranked = sorted(seeds, key=lambda seed: (_mix(seed[0] ^ mixed), seed[1]), reverse=True)
        for _, name in ranked:
            if load[name] < limit:
                load[name] += 1
                owner[bot] = name
                break
    return owner


def owned_by(member: str, bots: Iterable[int], members: Sequence[str]) -> set[int]:
    """The bots ``member`` owns among ``bots`` when ``members`` are the live ones."""
    return {bot for bot, name in assign(bots, members).items() if name == member}
