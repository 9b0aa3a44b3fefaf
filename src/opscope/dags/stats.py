"""Small statistics on durations: quantiles, a packed series, a trend, and the change point
of a series (where its level moved for good)."""

from __future__ import annotations

import math
from array import array
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    pass


def quantile(values: Sequence[float], q: float) -> float | None:
    """The q-quantile by linear interpolation between the closest ranks (numpy's default)."""
    if not values:
        return None
    ordered = sorted(values)
    pos = (len(ordered) - 1) * q
    low = math.floor(pos)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (pos - low)


def median(values: Sequence[float]) -> float | None:
    return quantile(values, 0.5)


#: series at least this long are sorted in numpy (below, its overhead is more than it saves)
NUMPY_SORT_FROM = 64


class Sample:
    """The values of one series (a task's spans, waits...), packed as doubles: 8 bytes a
    value, and as many values as the history window (`dags.history.max_runs`) lets in."""

    __slots__ = ("_sorted", "add", "values")

    def __init__(self) -> None:
        self.values: array[float] = array("d")
        #: the bound append of `values`: called once per task and run, so no method of ours
        self.add = self.values.append
        #: the values sorted, with how many there were: values are only ever appended, so
        #: the same count is the same values (the checks and the summary ask a series for
        #: its quantiles a few times each)
        self._sorted: tuple[int, Any] | None = None

    @property
    def count(self) -> int:
        return len(self.values)

    @property
    def total(self) -> float:
        return math.fsum(self.values)

    def quantile(self, q: float) -> float | None:
        """`quantile(values, q)`, sorted in numpy when there are many: the checks and the
        summary ask two or three quantiles of every task's series, and sorted() makes a
        float object of each value each time. A stable sort orders floats as sorted() does,
        NaN aside, which sorted() leaves where it finds it: those go the plain way."""
        values = self.values
        if len(values) < NUMPY_SORT_FROM:
            return quantile(values, q)
        ordered = self.sort()
        if ordered is None:
            return quantile(values, q)
        pos = (len(ordered) - 1) * q
        low = math.floor(pos)
        high = min(low + 1, len(ordered) - 1)
        below, above = float(ordered[low]), float(ordered[high])
        return below + (above - below) * (pos - low)

    def sort(self) -> Any:
        """The values sorted in numpy (kept until more are added), or None when they hold
        NaN; for the quantiles of a long series, and made ahead of them (`DagStats.sort`)."""
        import numpy as np  # here: the dags modules are loaded by every command's start-up

        values = self.values
        known = self._sorted
        if known is not None and known[0] == len(values):
            return known[1]
        packed = np.frombuffer(values, dtype=np.float64)
        if np.isnan(packed).any():
            return None
        ordered = np.sort(packed, kind="stable")
        self._sorted = (len(values), ordered)
        return ordered


def sort_samples(samples: Iterable[Sample]) -> None:
    """`Sample.sort` of each long series, those of one length in one numpy call (a DAG's
    tasks mostly have a value a run each: a hundred tasks' six series are a few sorts of a
    matrix, not six hundred of a row). Rows are sorted alone, so each is what its own sort
    gives; a series with NaN is left to the plain way, as `sort` leaves it."""
    import numpy as np  # here: the dags modules are loaded by every command's start-up

    by_length: dict[int, list[Sample]] = {}
    for sample in samples:
        n = len(sample.values)
        known = sample._sorted
        if n >= NUMPY_SORT_FROM and (known is None or known[0] != n):
            by_length.setdefault(n, []).append(sample)
    for n, group in by_length.items():
        packed = np.array([np.frombuffer(s.values, dtype=np.float64) for s in group])
        ordered = np.sort(packed, axis=1, kind="stable")
        for sample, row, nan in zip(group, ordered, np.isnan(packed).any(axis=1), strict=True):
            if not nan:
                sample._sorted = (n, row)


def trend_per_day(times: Sequence[float], values: Sequence[float]) -> float | None:
    """Least-squares slope of `values` over `times` (epoch seconds), per day."""
    n = len(times)
    if n < 3:
        return None
    mt = sum(times) / n
    mv = sum(values) / n
    var = sum((t - mt) ** 2 for t in times)
    if var <= 0:
        return None
    cov = sum((t - mt) * (v - mv) for t, v in zip(times, values, strict=True))
    return cov / var * 86400.0


@dataclass(frozen=True)
class ChangePoint:
    #: index of the first value after the change
    index: int
    median_before: float
    median_after: float
    #: share of the values after it beyond the median before (1.0: every one)
    consistency: float

    @property
    def ratio(self) -> float:
        return self.median_after / self.median_before if self.median_before > 0 else math.inf


def change_point(
    values: Sequence[float], *, min_segment: int = 3, preferred: Sequence[int] = ()
) -> ChangePoint | None:
    """The split of `values` into a before and an after whose levels differ most.

    Scores each split by the t-statistic of the means of log durations (prefix sums: linear
    in the length), then describes the best one by its medians, which one stray run cannot
    move. `preferred` splits (a new DAG version) win over a better-scoring one that is no
    more than 20% better, since a change of code is the likelier cause."""
    n = len(values)
    if n < 2 * min_segment:
        return None
    logs = [math.log(max(v, 1e-3)) for v in values]
    s1 = [0.0]
    s2 = [0.0]
    for x in logs:
        s1.append(s1[-1] + x)
        s2.append(s2[-1] + x * x)

    def score(k: int) -> float:
        a, b = k, n - k
        ma = s1[k] / a
        mb = (s1[n] - s1[k]) / b
        va = max(0.0, s2[k] / a - ma * ma)
        vb = max(0.0, (s2[n] - s2[k]) / b - mb * mb)
        spread = math.sqrt(va / a + vb / b) + 1e-6
        return abs(mb - ma) / spread

    candidates = range(min_segment, n - min_segment + 1)
    best = max(candidates, key=lambda k: (score(k), -k))
    preferred_ok = [k for k in preferred if min_segment <= k <= n - min_segment]
    if preferred_ok:
        top = max(preferred_ok, key=lambda k: (score(k), -k))
        if score(top) * 1.2 >= score(best):
            best = top
    before, after = values[:best], values[best:]
    mb = median(before) or 0.0
    ma = median(after) or 0.0
    beyond = sum(1 for v in after if (v > mb if ma >= mb else v < mb)) / len(after)
    return ChangePoint(best, mb, ma, beyond)
