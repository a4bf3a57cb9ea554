"""Sizes of the two runs and the budgets of docs/design.md, Budgets."""

from __future__ import annotations

from dataclasses import dataclass, replace

__all__ = ["BUDGETS", "FULL", "QUICK", "Budget", "Scale"]


@dataclass(frozen=True)
class Scale:
    """How big each workload is; ``--full`` uses the sizes of the budgets."""

    name: str
    reps: int
    agent_procs: int = 4
    appender_procs: int = 1
    http_procs: int = 2
    # fan-out: connections on one bot, a burst of updates appended to it
    fanout_conns: int = 1000
    fanout_burst: int = 1000
    peer_burst: int = 100
    # latency: bots with one connection each, total append rate, seconds
    latency_bots: int = 1000
    latency_rate: int = 10_000
    latency_seconds: float = 6.0
    peer_latency_rate: int = 10_000
    # idle memory and the reconnect storm on the same connections
    idle_conns: int = 10_000
    idle_bots: int = 1000
    storm_rate: int = 1000
    storm_timeout: float = 20.0
    # REST ingress and long-poll
    rest_seconds: float = 5.0
    rest_concurrency: int = 64
    rest_chats: int = 200
    poll_bots: int = 200
    poll_prefill: int = 100
    wake_bots: int = 500
    wake_rate: int = 500
    wake_seconds: float = 5.0
    # the ceiling runs with uvloop: it is the best a bare server does here
    ceiling_uvloop: bool = True

    def only(self, **changes: object) -> Scale:
        return replace(self, **changes)  # type: ignore[arg-type]


FULL = Scale(name="full", reps=3)

QUICK = Scale(
    name="quick",
    reps=1,
    agent_procs=2,
    fanout_burst=300,
    peer_burst=30,
    latency_bots=1000,
    latency_seconds=2.0,
    idle_conns=1000,
    idle_bots=100,
    storm_rate=200,
    storm_timeout=15.0,
    rest_seconds=3.0,
    poll_bots=100,
    poll_prefill=50,
    wake_bots=200,
    wake_rate=200,
    wake_seconds=3.0,
)


@dataclass(frozen=True)
class Budget:
    """A budget of docs/design.md, Budgets: ``value`` compared with ``op`` (">=" or "<=")."""

    text: str
    op: str
    value: float

    def met(self, figure: float) -> bool:
        return figure >= self.value if self.op == ">=" else figure <= self.value


BUDGETS: dict[str, Budget] = {
    "fanout": Budget(">= 100 000 /s and >= 0.65 x ceiling", ">=", 100_000),
    "fanout_ratio": Budget(">= 0.65", ">=", 0.65),
    "latency_p50": Budget("<= 10 ms", "<=", 10.0),
    "latency_p99": Budget("<= 25 ms", "<=", 25.0),
    "idle_memory": Budget("<= 16 KiB", "<=", 16.0),
    "storm_resumed": Budget("<= 8 s", "<=", 8.0),
    "storm_lost": Budget("0", "<=", 0),
    "storm_out_of_order": Budget("0", "<=", 0),
    "rest_client": Budget(">= 5 000 /s per core", ">=", 5000),
    "rest_bot": Budget(">= 5 000 /s per core", ">=", 5000),
    "poll_rate": Budget(">= 3 000 /s", ">=", 3000),
    "poll_wakeup_p99": Budget("<= 20 ms", "<=", 20.0),
}
