"""The results table: each figure with its budget, its ratio to the ceiling and the peer.

A figure is the median of its repetitions, with the spread (min..max) beside it.
A row fails when its budget is missed or when any repetition's correctness check
found a lost, duplicated or reordered update: a fast wrong run is a failure.
A figure measured on the 3-primary cluster carries the same figure on one Redis
node (``node``) and is shown with its ratio to it, in a column of its own.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from bench.config import BUDGETS, Budget
from bench.stats import Summary

__all__ = ["Row", "Table", "fmt"]


def fmt(value: float, unit: str = "") -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    if math.isinf(value):
        return "never"
    if unit in ("/s", ""):
        if abs(value) >= 100_000:
            return f"{value / 1e6:.2f} M"
        if abs(value) >= 1000:
            return f"{value:,.0f}".replace(",", " ")
    if abs(value) >= 100:
        return f"{value:.0f}"
    if abs(value) >= 10:
        return f"{value:.1f}"
    return f"{value:.2f}"


@dataclass
class Row:
    """One figure of the table."""

    name: str
    unit: str
    values: list[float]
    budget: str | None = None
    ceiling: list[float] = field(default_factory=list)
    peer: list[float] = field(default_factory=list)
    lower_is_better: bool = False
    correct: bool = True
    problems: list[str] = field(default_factory=list)
    note: str = ""
    node: list[float] | None = None  # the same figure on one Redis node (cluster rows)

    @property
    def summary(self) -> Summary:
        return Summary(self.values)

    def _ratio(self, other: list[float]) -> float:
        if not other or not self.values:
            return math.nan
        theirs = Summary(other).median
        if not theirs or math.isnan(theirs):
            return math.nan
        return self.summary.median / theirs

    @property
    def ceiling_ratio(self) -> float:
        return self._ratio(self.ceiling)

    @property
    def peer_ratio(self) -> float:
        return self._ratio(self.peer)

    @property
    def node_ratio(self) -> float:
        return self._ratio(self.node or [])

    def passed(self) -> bool | None:
        if not self.correct:
            return False
        if self.budget is None:
            return None
        budget: Budget = BUDGETS[self.budget]
        median = self.summary.median
        if math.isnan(median) or not budget.met(median):
            return False
        # the fan-out budget also asks for a share of the same-run ceiling
        return self.budget != "fanout" or BUDGETS["fanout_ratio"].met(self.ceiling_ratio)

    def cells(self, *, node_column: bool = False) -> list[str]:
        s = self.summary
        figure = f"{fmt(s.median, self.unit)} {self.unit}".strip()
        if len(self.values) > 1:
            figure += f" ({fmt(s.low, self.unit)}-{fmt(s.high, self.unit)})"
        budget = BUDGETS[self.budget].text if self.budget else "-"
        ceiling = "-"
        if self.ceiling:
            ceiling = f"{fmt(Summary(self.ceiling).median, self.unit)} ({self.ceiling_ratio:.2f}x)"
        peer = "-"
        if self.peer:
            peer = f"{fmt(Summary(self.peer).median, self.unit)} ({self.peer_ratio:.2f}x)"
        verdict = {True: "pass", False: "FAIL", None: "-"}[self.passed()]
        if not self.correct:
            verdict = "FAIL (" + "; ".join(self.problems)[:60] + ")"
        if not node_column:
            return [self.name, figure, budget, ceiling, peer, verdict]
        node = "-"
        if self.node:
            node = f"{fmt(Summary(self.node).median, self.unit)} ({self.node_ratio:.2f}x)"
        return [self.name, figure, budget, ceiling, peer, node, verdict]


HEADERS = [
    "figure",
    "botgw median (min-max)",
    "budget",
    "ceiling (ratio)",
    "peer (ratio)",
    "result",
]
NODE_HEADER = "one node (ratio)"  # before "result", when the table has cluster rows


@dataclass
class Table:
    rows: list[Row] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def add(self, row: Row) -> None:
        self.rows.append(row)

    @property
    def headers(self) -> list[str]:
        if any(r.node is not None for r in self.rows):
            return [*HEADERS[:-1], NODE_HEADER, HEADERS[-1]]
        return HEADERS

    def _cells(self) -> list[list[str]]:
        node_column = len(self.headers) > len(HEADERS)
        return [r.cells(node_column=node_column) for r in self.rows]

    def text(self) -> str:
        headers = self.headers
        cells = [headers, *self._cells()]
        widths = [max(len(c[i]) for c in cells) for i in range(len(headers))]
        lines = []
        for n, row in enumerate(cells):
            lines.append("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip())
            if n == 0:
                lines.append("  ".join("-" * w for w in widths))
        return "\n".join(lines)

    def markdown(self) -> str:
        headers = self.headers
        out = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
        for cells in self._cells():
            out.append("| " + " | ".join(cells) + " |")
        return "\n".join(out)

    def failed(self) -> bool:
        return any(r.passed() is False for r in self.rows)


def problems_of(results: Sequence[dict[str, Any]]) -> list[str]:
    """What the correctness checks of some repetitions found, in words."""
    out = []
    for r in results:
        if r.get("correct", True):
            continue
        keys = ("lost", "duplicates", "out_of_order", "behind", "errors")
        parts = [f"{k.replace('_', ' ')} {r[k]}" for k in keys if r.get(k)]
        out.append(", ".join(parts) or "check failed")
    return out
