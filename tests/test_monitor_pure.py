"""The service's pure parts with plain inputs: durations, shards, listen addresses, the
settings conversion of postgres_exporter, counters accumulated across resets and
failovers, stored windows, the exposition, the scheduler with real threads, the token."""

from __future__ import annotations

import asyncio
import threading
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from hypothesis import given
from hypothesis import strategies as st
from prometheus_client.metrics_core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.parser import text_string_to_metric_families

from opscope.db.monitor.metrics import setting_metric
from opscope.db.monitor.snapshot import StoredWindow, accumulate, build
from opscope.db.statements import Statement, StatementSnapshot
from opscope.monitor.app import create_app
from opscope.monitor.collector import CollectContext, Collection, CollectorError
from opscope.monitor.exposition import Exposition, render
from opscope.monitor.scheduler import Scheduler
from opscope.monitor.service import owned, shard_of
from opscope.monitor.settings import duration_s, is_loopback, parse_listen, parse_shard
from opscope.monitor.store import decode_snapshot, encode_snapshot

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def test_durations() -> None:
    assert duration_s("90s") == 90
    assert duration_s("5m") == 300
    assert duration_s("2d") == 172800
    assert duration_s("1w") == 604800
    assert duration_s("250ms") == 0.25
    assert duration_s(12) == 12
    for bad in ("", "5 parsecs", "-1s", "1h30m"):
        with pytest.raises(ValueError):
            duration_s(bad)


def test_shards_and_addresses() -> None:
    assert parse_shard("1/2") == (1, 2)
    for bad in ("2/2", "0/0", "a/b", "1"):
        with pytest.raises(ValueError):
            parse_shard(bad)
    assert parse_listen("0.0.0.0:8080") == ("0.0.0.0", 8080)
    assert parse_listen(":9000") == ("127.0.0.1", 9000)
    assert parse_listen("[::1]:9310") == ("::1", 9310)
    assert parse_listen("localhost") == ("localhost", 9310)
    with pytest.raises(ValueError):
        parse_listen("host:99999")
    assert is_loopback("127.0.0.1") and is_loopback("::1") and is_loopback("localhost")
    assert not is_loopback("0.0.0.0") and not is_loopback("10.0.0.1")


class _T:
    def __init__(self, kind: str, target: str) -> None:
        self.kind, self.target = kind, target


@given(
    targets=st.lists(st.text(min_size=1, max_size=20), min_size=1, max_size=40, unique=True),
    count=st.integers(min_value=1, max_value=5),
)
def test_every_target_is_in_exactly_one_shard(targets: list[str], count: int) -> None:
    items = [_T("postgresql", t) for t in targets]
    picked = [owned(items, (i, count)) for i in range(count)]
    names = sorted(c.target for shard in picked for c in shard)
    assert names == sorted(targets)


class _Local(_T):
    local = True


def test_a_local_collector_runs_on_every_shard() -> None:
    # each instance reads its own host: hashing the host name would leave some hosts unread
    items = [_T("postgresql", "warehouse"), _Local("resources", "host-a")]
    for count in (1, 2, 3):
        picked = [owned(items, (i, count)) for i in range(count)]
        assert all(any(isinstance(c, _Local) for c in shard) for shard in picked)
        assert sum(c.target == "warehouse" for shard in picked for c in shard) == 1


def test_the_shard_hash_is_stable() -> None:
    # the same on every instance and every run: a fixed value, not Python's salted hash()
    assert shard_of("postgresql", "warehouse", 2) == shard_of("postgresql", "warehouse", 2)
    assert [shard_of("postgresql", f"db{i}", 2) for i in range(8)] == [1, 1, 1, 1, 0, 0, 1, 1]


def test_settings_are_converted_as_postgres_exporter_does() -> None:
    assert setting_metric("work_mem", "4096", "kB", "integer") == (
        "pg_settings_work_mem_bytes",
        4096 * 1024,
    )
    assert setting_metric("shared_buffers", "16384", "8kB", "integer") == (
        "pg_settings_shared_buffers_bytes",
        16384 * 8192,
    )
    assert setting_metric("statement_timeout", "1500", "ms", "integer") == (
        "pg_settings_statement_timeout_seconds",
        1.5,
    )
    assert setting_metric("autovacuum_naptime", "1", "min", "integer") == (
        "pg_settings_autovacuum_naptime_seconds",
        60.0,
    )
    assert setting_metric("fsync", "off", None, "bool") == ("pg_settings_fsync", 0.0)
    assert setting_metric("temp_file_limit", "-1", "kB", "integer") == (
        "pg_settings_temp_file_limit_bytes",
        -1.0,
    )
    assert setting_metric("random_page_cost", "1.1", None, "real") == (
        "pg_settings_random_page_cost",
        1.1,
    )


def test_counters_accumulate_across_resets_and_failovers() -> None:
    first = {"raw": {"idx_scan": 10}, "acc": accumulate({"idx_scan": 10}, None, True)}
    assert first["acc"] == {"idx_scan": 0}  # the window starts when opscope first looks
    grown = {"raw": {"idx_scan": 15}, "acc": accumulate({"idx_scan": 15}, first, True)}
    assert grown["acc"] == {"idx_scan": 5}
    # the counter went down: reset, everything it shows now happened since
    reset = {"raw": {"idx_scan": 3}, "acc": accumulate({"idx_scan": 3}, grown, True)}
    assert reset["acc"] == {"idx_scan": 8}
    # another epoch (a promoted standby): even a higher value is all new
    failover = accumulate({"idx_scan": 40}, reset, False)
    assert failover == {"idx_scan": 48}


def _doc(at: datetime, scans: dict[str, int], since: datetime = T0) -> dict[str, Any]:
    return {
        "taken_at": at.isoformat(),
        "tables": {},
        "indexes": {
            name: {
                "acc": {"idx_scan": n, "idx_tup_read": 0, "idx_tup_fetch": 0},
                "since": since.isoformat(),
                "bytes": 8192,
            }
            for name, n in scans.items()
        },
    }


def test_a_stored_window_gives_what_happened_in_it() -> None:
    start, end = T0 + timedelta(days=1), T0 + timedelta(days=3)
    window = StoredWindow(
        start,
        end,
        _doc(start, {"public.a": 100, "public.b": 7}),
        {
            **_doc(end, {"public.a": 100, "public.b": 9}),
            "indexes": {
                **_doc(end, {"public.a": 100, "public.b": 9})["indexes"],
                "public.new": {
                    "acc": {"idx_scan": 4},
                    "since": (T0 + timedelta(days=2)).isoformat(),
                    "bytes": 1,
                },
            },
        },
    )
    usage = window.indexes()
    assert usage["public.a"].counters["idx_scan"] == 0
    assert usage["public.b"].counters["idx_scan"] == 2
    assert usage["public.new"].counters["idx_scan"] == 4
    assert usage["public.new"].since == T0 + timedelta(days=2)
    assert window.seconds == 2 * 86400


def _statement(calls: int, since: datetime | None) -> Statement:
    return Statement(
        queryid=1, userid=10, username="app", toplevel=True, query="SELECT $1",
        calls=calls, total_exec_time=2.0 * calls, min_exec_time=2.0, max_exec_time=2.0,
        mean_exec_time=2.0, stddev_exec_time=0.0, rows=calls, shared_blks_hit=0,
        shared_blks_read=0, temp_blks_read=0, temp_blks_written=0, since=since,
    )  # fmt: skip


@pytest.mark.parametrize("since", [None, T0])
def test_stored_statements_come_back_as_they_were_collected(since: datetime | None) -> None:
    """Statements go through the store's JSON; an entry's stats_since (pg_stat_statements
    1.11+) must come back a datetime, or the window's statements check fails on 17+."""
    docs = []
    for i, calls in enumerate((5, 8)):
        at = T0 + timedelta(hours=i + 1)
        snap = StatementSnapshot(at.timestamp(), T0, (_statement(calls, since),))
        docs.append(decode_snapshot(encode_snapshot(build({}, [], [], snap, None, at))))
    window = StoredWindow(T0 + timedelta(hours=1), T0 + timedelta(hours=2), docs[0], docs[1])
    statements = window.statements()
    assert statements is not None
    (only,) = statements.statements
    assert only.calls == 3
    assert only.since == since


def _family(name: str, value: float, **labels: str) -> Metric:
    family = GaugeMetricFamily(name, "doc", labels=sorted(labels))
    family.add_metric([labels[k] for k in sorted(labels)], value)
    return family


def test_families_of_one_name_from_two_collectors_render_once() -> None:
    text = render([_family("pg_up", 1, target="a"), _family("pg_up", 0, target="b")]).decode()
    assert text.count("# TYPE pg_up gauge") == 1
    parsed = {
        s.labels["target"]: s.value for f in text_string_to_metric_families(text) for s in f.samples
    }
    assert parsed == {"a": 1.0, "b": 0.0}
    exposition = Exposition()
    exposition.update("x", [_family("pg_up", 1, target="a")])
    exposition.update("y", [_family("pg_up", 1, target="b")])
    exposition.keep_only(["y"])
    assert 'target="a"' not in exposition.scrape().decode()


class _Fake:
    """A collector that counts its runs, fails, or hangs, as told."""

    def __init__(self, name: str, mode: str = "ok", interval: float = 0.05) -> None:
        self.name, self.kind, self.target = name, "fake", name
        self.interval_s, self.timeout_s = interval, 0.3
        self.mode = mode
        self.calls = 0
        self.release = threading.Event()

    def collect(self, context: CollectContext) -> Collection:
        self.calls += 1
        if self.mode == "fail":
            raise RuntimeError("the fake broke\nsecond line")
        if self.mode == "down":
            raise CollectorError("no answer", Collection(metrics=[_family("fake_up", 0)]))
        if self.mode == "hang":
            self.release.wait(10)
        family = CounterMetricFamily("fake_runs", "runs", labels=["target"])
        family.add_metric([self.target], float(self.calls))
        return Collection(metrics=[family])


def _until(condition: Any, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition never held"
        time.sleep(0.02)


def test_a_failing_or_hanging_collector_never_stops_the_others() -> None:
    good, bad, down, stuck = (
        _Fake("good"),
        _Fake("bad", "fail"),
        _Fake("down", "down"),
        _Fake("stuck", "hang"),
    )
    exposition = Exposition()
    scheduler = Scheduler(None, exposition, jitter=0.5)
    scheduler.set_collectors([good, bad, down, stuck])
    scheduler.start()
    try:
        _until(lambda: good.calls >= 5 and bad.calls >= 3)
        _until(lambda: {s.name: s for s in scheduler.statuses()}["stuck"].errors >= 1)
        status = {s.name: s for s in scheduler.statuses()}
        assert status["good"].up and status["good"].errors == 0
        assert not status["bad"].up and status["bad"].errors == status["bad"].runs
        assert status["bad"].last_error == "RuntimeError: the fake broke"
        assert status["stuck"].last_error == "timed out after 0.3 s"
        # the stuck one is not started again while its thread is still out
        assert stuck.calls == 1
        text = exposition.scrape().decode()
        assert 'fake_runs_total{target="good"}' in text and "fake_up 0.0" in text
    finally:
        stuck.release.set()
        scheduler.stop(grace_s=2)


class _View:
    def __init__(self, token: str | None) -> None:
        self.exposition = Exposition()
        self.scheduler = Scheduler(None, self.exposition)
        self.store = None
        self._token = token

    def token(self) -> str | None:
        return self._token

    def scrape(self, gzipped: bool = False) -> bytes:
        return self.exposition.scrape(gzipped)


def _get(view: _View, path: str, headers: dict[str, str] | None = None) -> httpx.Response:
    async def go() -> httpx.Response:
        app = create_app(view, lambda: T0)  # type: ignore[arg-type]
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            return await client.get(path, headers=headers)

    return asyncio.run(go())


def test_requests_without_the_token_get_401() -> None:
    guarded = _View("s3cret-token-of-16+")
    for path in ("/metrics", "/healthz", "/api/v1/collectors", "/openapi.json"):
        assert _get(guarded, path).status_code == 401, path
        wrong = _get(guarded, path, {"Authorization": "Bearer wrong"})
        assert wrong.status_code == 401
        assert wrong.headers["www-authenticate"].startswith("Bearer")
    ok = _get(guarded, "/healthz", {"Authorization": "Bearer s3cret-token-of-16+"})
    assert ok.status_code == 200 and ok.json() == {"status": "ok"}
    open_view = _View(None)
    assert _get(open_view, "/healthz").status_code == 200
    # no store: the history endpoints say so instead of failing
    assert _get(open_view, "/api/v1/runs").status_code == 503
