"""Small statistics: percentiles of samples, median and spread of repetitions."""

from __future__ import annotations

import math
from collections.abc import Sequence

__all__ = ["Summary", "percentile", "summarize"]


def percentile(sorted_values: Sequence[float], pct: float) -> float:
    """Nearest-rank percentile of already sorted values (0.0 when empty)."""
    if not sorted_values:
        return 0.0
    rank = max(1, math.ceil(pct / 100 * len(sorted_values)))
    return float(sorted_values[min(rank, len(sorted_values)) - 1])


class Summary:
    """Median of the repetitions and their spread (min..max, and in % of the median)."""

    def __init__(self, values: Sequence[float]) -> None:
        self.values = [float(v) for v in values]
        ordered = sorted(self.values)
        n = len(ordered)
        if n == 0:
            self.median = math.nan
        elif n % 2:
            self.median = ordered[n // 2]
        else:
            self.median = (ordered[n // 2 - 1] + ordered[n // 2]) / 2
        self.low = ordered[0] if ordered else math.nan
        self.high = ordered[-1] if ordered else math.nan

    @property
    def spread_pct(self) -> float:
        if len(self.values) < 2 or not self.median:
            return 0.0
        return (self.high - self.low) / abs(self.median) * 100


def summarize(values: Sequence[float]) -> Summary:
    return Summary(values)
