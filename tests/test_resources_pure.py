"""Pure parts of the resources area with plain inputs: host:port, the busy share of two CPU
readings, the sizing formulas."""

from __future__ import annotations

from collections import namedtuple

import pytest
from hypothesis import given
from hypothesis import strategies as st

from opscope.resources.host import busy_percent
from opscope.resources.settings import parse_host_port
from opscope.resources.sizing import erlang_c, servers_for

HOSTS = st.from_regex(r"[a-z0-9][a-z0-9.-]{0,30}", fullmatch=True)


@given(HOSTS, st.integers(1, 65535))
def test_host_and_port_round_trip(host: str, port: int) -> None:
    assert parse_host_port(f"{host}:{port}") == (host, port)
    assert parse_host_port(f"[::1]:{port}") == ("::1", port)


@given(st.text(max_size=40))
def test_anything_else_is_a_value_error(text: str) -> None:
    try:
        host, port = parse_host_port(text)
    except ValueError:
        return
    assert host and 0 < port < 65536


def test_ports_out_of_range() -> None:
    for bad in ("db:0", "db:65536", "db", ":5432", "db:port"):
        with pytest.raises(ValueError):
            parse_host_port(bad)


Times = namedtuple("Times", "user system idle iowait")


@given(
    st.lists(st.floats(0, 1e6), min_size=4, max_size=4),
    st.lists(st.floats(0, 1e4), min_size=4, max_size=4),
)
def test_busy_share_stays_a_percentage(start: list[float], delta: list[float]) -> None:
    before = Times(*start)
    after = Times(*(a + d for a, d in zip(start, delta, strict=True)))
    assert 0.0 <= busy_percent(before, after) <= 100.0


@given(st.floats(0.01, 200), st.floats(0.001, 0.5))
def test_the_size_advised_meets_its_target(load: float, target: float) -> None:
    c = servers_for(load, target)
    assert c > load and erlang_c(c, load) <= target
    # and it is the smallest that does
    assert c - 1 <= load or erlang_c(c - 1, load) > target
