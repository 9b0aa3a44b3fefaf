"""The quantiles of a packed series: sorted in numpy when long, the same as sorted() gives."""

from __future__ import annotations

import math
import struct

from hypothesis import given
from hypothesis import strategies as st

from opscope.dags.stats import NUMPY_SORT_FROM, Sample, quantile, sort_samples

#: durations as the aggregation adds them, with the odd ones a metadata database can hold:
#: zeros of both signs, infinities (an 'infinity' timestamp), NaN (infinity minus itself)
values = st.one_of(
    st.floats(min_value=0, max_value=1e6),
    st.sampled_from([0.0, -0.0, 1.0, math.inf, -math.inf, math.nan]),
)


def bits(x: float | None) -> bytes | None:
    return None if x is None else struct.pack("<d", x)


@given(
    st.lists(values, min_size=NUMPY_SORT_FROM - 2, max_size=3 * NUMPY_SORT_FROM),
    st.sampled_from([0.0, 0.05, 0.5, 0.95, 0.99, 1.0]),
)
def test_a_sample_quantile_is_the_plain_one_to_the_bit(series: list[float], q: float) -> None:
    sample = Sample()
    for v in series:
        sample.add(v)
    assert bits(sample.quantile(q)) == bits(quantile(list(series), q))


def test_an_empty_sample_has_no_quantile() -> None:
    assert Sample().quantile(0.5) is None


def test_a_series_sorted_once_is_sorted_again_when_it_grows() -> None:
    """The sorted values are kept between quantiles: values appended afterwards (a run, a
    batch's bytes) must count in the next one."""
    sample = Sample()
    for x in range(NUMPY_SORT_FROM):
        sample.add(float(x))
    assert sample.quantile(1.0) == NUMPY_SORT_FROM - 1
    assert sample.quantile(0.0) == 0.0  # the kept sort, asked again
    sample.add(1000.0)
    assert sample.quantile(1.0) == 1000.0
    sample.values.frombytes(struct.pack("d", 5000.0))
    assert sample.quantile(1.0) == 5000.0


@given(
    st.lists(
        st.lists(values, min_size=NUMPY_SORT_FROM - 2, max_size=NUMPY_SORT_FROM + 3),
        max_size=6,
    ),
    st.sampled_from([0.0, 0.5, 0.95, 1.0]),
)
def test_series_sorted_together_give_their_own_quantiles(
    series: list[list[float]], q: float
) -> None:
    """A DAG's series sorted a length at a time (a matrix a sort) give each one the
    quantiles it gives sorted alone, NaN ones included (left to the plain way)."""
    together = []
    for values_ in series:
        sample = Sample()
        for v in values_:
            sample.add(v)
        together.append(sample)
    sort_samples(together)
    for sample, values_ in zip(together, series, strict=True):
        assert bits(sample.quantile(q)) == bits(quantile(list(values_), q))
