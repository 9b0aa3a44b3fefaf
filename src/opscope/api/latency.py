"""Latency arithmetic shared by the analysis and the probe: quantiles from exact samples,
from Prometheus buckets, and from a log-scale histogram of bounded size (access logs), and
the bars of a terminal histogram."""

from __future__ import annotations

import math
from bisect import bisect_left
from collections.abc import Sequence


def quantile(ordered: Sequence[float], q: float) -> float | None:
    """The q-quantile (0..1) of sorted values, interpolated between the closest ranks (as
    numpy's default does); None for no values."""
    if not ordered:
        return None
    if len(ordered) == 1:
        return float(ordered[0])
    pos = q * (len(ordered) - 1)
    lo = math.floor(pos)
    hi = min(lo + 1, len(ordered) - 1)
    frac = pos - lo
    return float(ordered[lo] + (ordered[hi] - ordered[lo]) * frac)


def bucket_quantile(bounds: Sequence[float], cumulative: Sequence[float], q: float) -> float | None:
    """The q-quantile of a Prometheus histogram (finite upper bounds in order, and cumulative
    counts for each plus a last one for +Inf), interpolated linearly inside the bucket as
    PromQL's histogram_quantile does. A quantile in the +Inf bucket is the largest finite
    bound: the histogram cannot say more."""
    if not cumulative or cumulative[-1] <= 0:
        return None
    total = cumulative[-1]
    rank = q * total
    i = bisect_left(cumulative, rank)
    if i >= len(bounds):
        return float(bounds[-1]) if bounds else None
    upper = bounds[i]
    lower = bounds[i - 1] if i > 0 else 0.0
    below = cumulative[i - 1] if i > 0 else 0.0
    inside = cumulative[i] - below
    if inside <= 0:
        return float(upper)
    if i == 0 and upper <= 0:
        return float(upper)
    return float(lower + (upper - lower) * (rank - below) / inside)


class LogHistogram:
    """Counts in buckets that grow by `factor` (2% by default): any quantile within 1% of the
    true value whatever the count, in a few hundred buckets."""

    __slots__ = ("count", "counts", "factor", "log_factor", "max", "sum", "zero")

    def __init__(self, factor: float = 1.02) -> None:
        self.factor = factor
        self.log_factor = math.log(factor)
        self.counts: dict[int, int] = {}
        self.zero = 0
        self.count = 0
        self.sum = 0.0
        self.max = 0.0

    def add(self, value: float, n: int = 1) -> None:
        self.count += n
        self.sum += value * n
        if value > self.max:
            self.max = value
        if value <= 1e-9:
            self.zero += n
            return
        key = math.floor(math.log(value) / self.log_factor)
        self.counts[key] = self.counts.get(key, 0) + n

    def merge(self, other: LogHistogram) -> None:
        for key, n in other.counts.items():
            self.counts[key] = self.counts.get(key, 0) + n
        self.zero += other.zero
        self.count += other.count
        self.sum += other.sum
        self.max = max(self.max, other.max)

    def quantile(self, q: float) -> float | None:
        if self.count == 0:
            return None
        rank = q * self.count
        seen = self.zero
        if rank <= seen:
            return 0.0
        for key in sorted(self.counts):
            seen += self.counts[key]
            if seen >= rank:
                # the middle of the bucket (geometric), capped by the largest value seen
                return float(min(self.factor ** (key + 0.5), self.max))
        return self.max


def bars(
    values: Sequence[float], bins: int = 10, width: int = 40
) -> list[tuple[float, float, int, str]]:
    """A terminal histogram of `values`: (low, high, count, bar) per bin, bins spaced
    logarithmically from the smallest to the largest value (latency spreads over decades)."""
    if not values:
        return []
    lo, hi = min(values), max(values)
    lo = max(lo, 1e-6)
    if hi <= lo * 1.0001:
        return [(lo, hi, len(values), "█" * width)]
    edges = [lo * (hi / lo) ** (i / bins) for i in range(bins + 1)]
    counts = [0] * bins
    for v in values:
        i = bisect_left(edges, v) - 1
        counts[min(max(i, 0), bins - 1)] += 1
    top = max(counts)
    eighths = " ▏▎▍▌▋▊▉█"
    out = []
    for i, n in enumerate(counts):
        cells = n / top * width if top else 0.0
        full = int(cells)
        bar = "█" * full + (eighths[int((cells - full) * 8)] if full < width else "")
        out.append((edges[i], edges[i + 1], n, bar.rstrip()))
    return out
