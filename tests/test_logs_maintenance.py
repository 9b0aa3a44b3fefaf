"""The autovacuum and checkpoint parsers on the messages of PostgreSQL 13 to 18, property
tests (any message parses without raising; numbers come back as written), and the two
findings on logs built from those messages: time-triggered checkpoints are no finding."""

# ruff: noqa: E501 - log lines are long

from __future__ import annotations

from datetime import datetime
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from opscope.config import Config, ConfigError, parse_config
from opscope.db.logs.analyze import analyze_logs, parse_chunk
from opscope.db.logs.maintenance import (
    Maintenance,
    parse_checkpoint,
    parse_vacuum,
    seconds,
    trigger,
)
from opscope.db.logs.options import LogOptions, log_options
from opscope.db.logs.sessions import Merger
from opscope.plugins import default_plugins

PREFIX = "%m [%p] "
OPTIONS = LogOptions(prefix=PREFIX, autovacuum_slow_s=10.0)

# As each version writes them (13 and 14 from their sources; 15 and 18 as the test
# clusters print them).
VACUUM_13 = (
    'automatic vacuum of table "work.public.orders": index scans: 3\n'
    "\tpages: 12 removed, 4500 remain, 0 skipped due to pins, 0 skipped frozen\n"
    "\ttuples: 250000 removed, 500000 remain, 12 are dead but not yet removable, oldest xmin: 740\n"
    "\tbuffer usage: 9000 hits, 4000 misses, 3000 dirtied\n"
    "\tavg read rate: 2.100 MB/s, avg write rate: 1.500 MB/s\n"
    "\tsystem usage: CPU: user: 0.40 s, system: 0.10 s, elapsed: 95.20 s\n"
    "\tWAL usage: 183 records, 1 full page images, 41735 bytes"
)
ANALYZE_13 = 'automatic analyze of table "work.public.orders" system usage: CPU: user: 0.05 s, system: 0.00 s, elapsed: 1.25 s'
VACUUM_15 = (
    'automatic vacuum of table "postgres.shop.slow_vacuum": index scans: 1\n'
    "\tpages: 0 removed, 59 remain, 59 scanned (100.00% of total)\n"
    "\ttuples: 1000 removed, 1000 remain, 0 are dead but not yet removable\n"
    "\tremovable cutoff: 753, which was 0 XIDs old when operation ended\n"
    "\tindex scan needed: 59 pages from table (100.00% of total) had 1000 dead item identifiers removed\n"
    '\tindex "slow_vacuum_pkey": pages: 8 in total, 0 newly deleted, 0 currently deleted, 0 reusable\n'
    "\tI/O timings: read: 0.060 ms, write: 0.000 ms\n"
    "\tavg read rate: 0.040 MB/s, avg write rate: 0.237 MB/s\n"
    "\tbuffer usage: 234 hits, 2 misses, 12 dirtied\n"
    "\tWAL usage: 185 records, 0 full page images, 16268 bytes\n"
    "\tsystem usage: CPU: user: 0.00 s, system: 0.00 s, elapsed: 0.39 s"
)
VACUUM_18 = (
    'automatic aggressive vacuum to prevent wraparound of table "app.public.events": index scans: 0\n'
    "\tpages: 0 removed, 8000 remain, 8000 scanned (100.00% of total), 0 eagerly scanned\n"
    "\ttuples: 0 removed, 120000 remain, 0 are dead but not yet removable\n"
    "\tdelay time: 61000.000 ms\n"
    "\tavg read rate: 0.000 MB/s, avg write rate: 30.668 MB/s\n"
    "\tbuffer usage: 16031 hits, 0 reads, 6102 dirtied\n"
    "\tWAL usage: 14102 records, 0 full page images, 740702 bytes, 0 buffers full\n"
    "\tsystem usage: CPU: user: 0.03 s, system: 0.00 s, elapsed: 70.55 s"
)
COMPLETE_15 = (
    "checkpoint complete: wrote 1919 buffers (11.7%); 0 WAL file(s) added, 1 removed, 0 recycled; "
    "write=0.244 s, sync=0.001 s, total=0.346 s; sync files=0, longest=0.000 s, average=0.000 s; "
    "distance=13170 kB, estimate=13170 kB"
)
COMPLETE_18 = (
    "checkpoint complete: wrote 1609 buffers (9.8%), wrote 3 SLRU buffers; 0 WAL file(s) added, 1 removed, 0 recycled; "
    "write=0.126 s, sync=0.001 s, total=0.376 s; sync files=0, longest=0.000 s, average=0.000 s; "
    "distance=13379 kB, estimate=13379 kB; lsn=0/3400240, redo lsn=0/2400118"
)


def test_vacuum_of_each_version() -> None:
    run = parse_vacuum("t", VACUUM_13)
    assert run is not None
    assert (run.database, run.table, run.kind) == ("work", "public.orders", "vacuum")
    assert (run.index_scans, run.tuples_removed, run.tuples_remain, run.dead_not_removable) == (
        3, 250000, 500000, 12,
    )  # fmt: skip
    assert (run.pages_removed, run.pages_remain, run.pages_scanned) == (12, 4500, None)
    assert (run.buffer_hits, run.buffer_misses, run.buffer_dirtied) == (9000, 4000, 3000)
    assert (run.elapsed_s, run.read_mb_s, run.write_mb_s) == (95.2, 2.1, 1.5)
    assert run.cpu_s is not None and abs(run.cpu_s - 0.5) < 1e-9
    analyze = parse_vacuum("t", ANALYZE_13)
    assert analyze is not None and (analyze.kind, analyze.elapsed_s) == ("analyze", 1.25)
    run15 = parse_vacuum("t", VACUUM_15)
    assert run15 is not None and (run15.table, run15.pages_scanned, run15.elapsed_s) == (
        "shop.slow_vacuum", 59, 0.39,
    )  # fmt: skip
    run18 = parse_vacuum("t", VACUUM_18)
    assert run18 is not None
    assert run18.aggressive and run18.wraparound and run18.table == "public.events"
    assert (run18.delay_ms, run18.buffer_misses, run18.elapsed_s) == (61000.0, 0, 70.55)
    # jsonlog and csvlog have no tab before continuation lines
    assert parse_vacuum("t", VACUUM_13.replace("\n\t", "\n")) == run


def test_checkpoint_lines_of_each_version() -> None:
    for line, buffers, total, distance in (
        (COMPLETE_15, 1919, 0.346, 13170),
        (COMPLETE_18, 1609, 0.376, 13379),
    ):
        point = parse_checkpoint("t", line)
        assert point is not None and point.complete
        assert (point.buffers, point.total_s, point.distance_kb) == (buffers, total, distance)
    start = parse_checkpoint("t", "restartpoint starting: time")
    assert start is not None and start.restartpoint and start.flags == "time"
    assert [trigger(f) for f in ("time", "wal", "xlog", "immediate force wait", "shutdown immediate", "end-of-recovery immediate wait", "")] == [
        "time", "wal", "wal", "requested", "shutdown", "shutdown", "requested",
    ]  # fmt: skip
    assert parse_checkpoint("t", "checkpointer process exited") is None
    assert seconds("2026-12-01 12:00:01.500 UTC") == seconds("2026-12-01 12:00:00 UTC") + 1.5  # type: ignore[operator]
    assert seconds("garbage") is None


def _log(lines: list[tuple[float, str]]) -> str:
    """Entries at `seconds` after 2026-12-01 00:00, as a stderr log."""
    out = []
    for at, message in lines:
        minute, second = divmod(at, 60)
        hour, minute = divmod(int(minute), 60)
        out.append(f"2026-12-01 {hour:02d}:{minute:02d}:{second:06.3f} UTC [42] LOG:  {message}")
    return "\n".join(out) + "\n"


def _checkpoints(every_s: float, flags: str, count: int, distance_kb: int) -> str:
    lines = []
    for k in range(count):
        at = k * every_s
        lines.append((at, f"checkpoint starting: {flags}"))
        complete = COMPLETE_15.replace("distance=13170 kB", f"distance={distance_kb} kB")
        lines.append((at + min(every_s / 2, 30), complete))
    return _log(lines)


def _report(tmp_path: Any, text: str, **options: Any) -> Any:
    path = tmp_path / "pg.log"
    path.write_text(text)
    return analyze_logs(Config(), [str(path)], LogOptions(prefix=PREFIX, **options))


def test_time_triggered_checkpoints_are_no_finding(tmp_path: Any) -> None:
    # every checkpoint_timeout (5 min), a few MB each: what a well-sized server logs
    report = _report(tmp_path, _checkpoints(300, "time", 12, 20_000))
    checkpoints = report.summary["log"]["maintenance"]["checkpoints"]
    assert checkpoints["by_trigger"]["time"] == 12
    assert checkpoints["interval_p50_s"] == 300
    # over the time the log covers: from the first start to the last complete line
    assert checkpoints["per_hour"] == round(12 / ((11 * 300 + 30) / 3600), 2)
    assert not [f for f in report.findings if f.check == "checkpoints_too_frequent"]


def test_wal_checkpoints_size_max_wal_size_from_the_wal_rate(tmp_path: Any) -> None:
    # 40 MB of WAL every 20 s for 10 minutes: 2 MB/s, 600 MB per 5 min, 1140 MB with the
    # spread of 0.9
    report = _report(tmp_path, _checkpoints(20, "wal", 30, 40 * 1024))
    (finding,) = [f for f in report.findings if f.check == "checkpoints_too_frequent"]
    assert finding.object == "max_wal_size"
    assert finding.evidence["wal_kb_per_s"] == 2048.0
    assert finding.evidence["max_wal_size"] == "1280MB"
    assert finding.evidence["max_wal_size_now_mb"] == 76  # 40 MB × 1.9
    assert finding.fix_sql == "ALTER SYSTEM SET max_wal_size = '1280MB';\nSELECT pg_reload_conf();"
    # a longer checkpoint_timeout needs more, but no more than the log wrote in that time:
    # the 10 minutes of 2 MB/s are 1200 MB, not the 1800 MB of 900 s at that rate
    longer = _report(tmp_path, _checkpoints(20, "wal", 30, 40 * 1024), checkpoint_timeout_s=900)
    (again,) = [f for f in longer.findings if f.check == "checkpoints_too_frequent"]
    assert again.evidence["wal_per_timeout_kb"] == 1200 * 1024
    assert again.evidence["max_wal_size"] == "2304MB"  # 1200 MB × 1.9, rounded up


def test_one_wal_checkpoint_among_timed_ones_is_no_finding(tmp_path: Any) -> None:
    text = _checkpoints(300, "time", 12, 20_000) + _log(
        [(3700, "checkpoint starting: wal"), (3710, COMPLETE_15)]
    )
    report = _report(tmp_path, text)
    assert report.summary["log"]["maintenance"]["checkpoints"]["by_trigger"]["wal"] == 1
    assert not [f for f in report.findings if f.check == "checkpoints_too_frequent"]


def test_wal_checkpoints_without_their_completion_still_name_max_wal_size(
    tmp_path: Any,
) -> None:
    text = _log([(k * 20.0, "checkpoint starting: wal") for k in range(5)])
    (finding,) = [
        f for f in _report(tmp_path, text).findings if f.check == "checkpoints_too_frequent"
    ]
    assert finding.object == "max_wal_size" and finding.fix_sql is None


def test_short_checkpoint_timeout_is_told_apart(tmp_path: Any) -> None:
    report = _report(tmp_path, _checkpoints(30, "time", 10, 1000))
    (finding,) = [f for f in report.findings if f.check == "checkpoints_too_frequent"]
    assert finding.object == "checkpoint_timeout"
    assert finding.fix_sql is not None and "checkpoint_timeout = '5min'" in finding.fix_sql


def test_autovacuum_slow_names_the_setting_from_the_numbers(tmp_path: Any) -> None:
    text = _log(
        [
            (0, VACUUM_13),  # many index scans, mostly waiting: both settings
            (10, ANALYZE_13),
            (20, VACUUM_15),  # fast: under the threshold
            (30, VACUUM_18),  # the delay itself says 86% of the run slept
            (
                40,
                VACUUM_18.replace("\tdelay time: 61000.000 ms\n", "")
                .replace("elapsed: 70.55", "elapsed: 12.00")
                .replace("user: 0.03", "user: 11.50"),
            ),
        ]
    )
    report = _report(tmp_path, text, autovacuum_slow_s=10.0)
    found = {
        (f.evidence["database"], f.object): f
        for f in report.findings
        if f.check == "autovacuum_slow"
    }
    assert set(found) == {("work", "public.orders"), ("app", "public.events")}
    orders = found[("work", "public.orders")]
    assert orders.fix_sql == (
        "ALTER SYSTEM SET autovacuum_work_mem = '1GB';\n"
        "ALTER TABLE public.orders SET (autovacuum_vacuum_cost_limit = 2000, autovacuum_vacuum_cost_delay = 2);\n"
        "SELECT pg_reload_conf();"
    )
    assert "scanned 3 times" in orders.detail
    assert orders.evidence["vacuum_max_s"] == 95.2 and orders.evidence["analyzes"] == 1
    events = found[("app", "public.events")]
    # the slowest of its two runs is the throttled one
    assert events.evidence["vacuum_max_s"] == 70.55
    assert events.evidence["delay_share"] == round(61 / 70.55, 3)
    assert events.fix_sql is not None and "autovacuum_vacuum_cost_limit = 2000" in events.fix_sql
    assert "anti-wraparound" in events.detail


def test_busy_vacuum_gets_a_lower_scale_factor(tmp_path: Any) -> None:
    busy = (
        VACUUM_15.replace("elapsed: 0.39", "elapsed: 30.00")
        .replace("user: 0.00", "user: 29.00")
        .replace("index scans: 1", "index scans: 1")
    )
    report = _report(tmp_path, _log([(0, busy)]), autovacuum_slow_s=10.0)
    (finding,) = [f for f in report.findings if f.check == "autovacuum_slow"]
    # 1000 of 2000 tuples dead: a quarter of that share, within 0.005 to 0.05
    assert (
        finding.fix_sql
        == "ALTER TABLE shop.slow_vacuum SET (autovacuum_vacuum_scale_factor = 0.05);"
    )


def test_filters_apply_to_maintenance_entries(tmp_path: Any) -> None:
    text = _log([(0, VACUUM_13), (3600, VACUUM_18)])
    report = _report(tmp_path, text, database="app")
    tables = report.summary["log"]["maintenance"]["autovacuum"]["by_table"]
    assert [t["table"] for t in tables] == ["public.events"]
    # --since leaves out the checkpoints before it: those of the first half hour
    since = datetime(2026, 12, 1, 0, 30)
    later = _report(tmp_path, _checkpoints(300, "time", 12, 20_000), since=since)
    assert later.summary["log"]["maintenance"]["checkpoints"]["started"] == 6
    assert later.summary["log"]["filtered_out"] == 12


def test_thresholds_come_from_the_config() -> None:
    text = "postgresql:\n  logs:\n    autovacuum_slow_s: 5\n    checkpoint_timeout_s: 900\n"
    config = parse_config(text, "opscope.yaml", default_plugins().config, {})
    options = log_options(config)
    assert (options.autovacuum_slow_s, options.checkpoint_timeout_s) == (5.0, 900.0)
    assert (options.checkpoint_wal_share, options.checkpoint_min_interval_s) == (0.1, 60.0)
    with pytest.raises(ConfigError, match="checkpoint_timeout_s"):
        parse_config(
            "postgresql:\n  logs:\n    checkpoint_timeout_s: 5\n",
            "opscope.yaml",
            default_plugins().config,
            {},
        )


# -- properties -------------------------------------------------------------------------

_MESSAGES = st.sampled_from(
    [VACUUM_13, ANALYZE_13, VACUUM_15, VACUUM_18, COMPLETE_15, COMPLETE_18,
     "checkpoint starting: wal", "checkpoint starting: time", "checkpoints are occurring too frequently (7 seconds apart)"]
)  # fmt: skip


@given(
    st.one_of(
        _MESSAGES,
        _MESSAGES.flatmap(lambda m: st.integers(0, len(m)).map(lambda n: m[:n])),  # cut off
        st.builds(
            lambda h, t: h + t,
            st.sampled_from(
                ["automatic ", "checkpoint", "restartpoint", 'automatic vacuum of table "']
            ),
            st.text(max_size=80),
        ),
    )
)
def test_any_maintenance_message_parses_without_raising(message: str) -> None:
    parse_vacuum("2026-12-01 00:00:00 UTC", message)
    parse_checkpoint("2026-12-01 00:00:00 UTC", message)
    data = _log([(0, message.replace("\n", "\n\t").replace("\t\t", "\t"))]).encode()
    merger = Merger(OPTIONS)
    merger.add(parse_chunk("stderr", PREFIX, data, OPTIONS))
    merger.finish().maintenance.summary()


_count = st.integers(0, 10**12)
_secs = st.decimals(0, 10**6, places=2, allow_nan=False, allow_infinity=False)


@given(_count, _count, _count, _count, _secs, _secs, _secs, st.integers(0, 99))
def test_vacuum_numbers_come_back(
    scans: int,
    removed: int,
    remain: int,
    dead: int,
    user: Any,
    system: Any,
    elapsed: Any,
    share: int,
) -> None:
    message = (
        f'automatic vacuum of table "d.s.t": index scans: {scans}\n'
        f"pages: 0 removed, 1 remain, 1 scanned ({share}.00% of total)\n"
        f"tuples: {removed} removed, {remain} remain, {dead} are dead but not yet removable\n"
        f"system usage: CPU: user: {user} s, system: {system} s, elapsed: {elapsed} s"
    )
    run = parse_vacuum("t", message)
    assert run is not None
    assert (run.index_scans, run.tuples_removed, run.tuples_remain, run.dead_not_removable) == (
        scans, removed, remain, dead,
    )  # fmt: skip
    assert run.elapsed_s == float(elapsed)
    assert run.cpu_s == float(user) + float(system)


@given(_count, _secs, _secs, _secs, _count, _count)
def test_checkpoint_numbers_come_back(
    buffers: int, write: Any, sync: Any, total: Any, distance: int, estimate: int
) -> None:
    message = (
        f"checkpoint complete: wrote {buffers} buffers (1.0%); 0 WAL file(s) added, 0 removed, 0 recycled; "
        f"write={write} s, sync={sync} s, total={total} s; sync files=0, longest=0.000 s, average=0.000 s; "
        f"distance={distance} kB, estimate={estimate} kB"
    )
    point = parse_checkpoint("t", message)
    assert point is not None
    assert (point.buffers, point.distance_kb, point.estimate_kb) == (buffers, distance, estimate)
    assert (point.write_s, point.sync_s, point.total_s) == (float(write), float(sync), float(total))


@given(
    st.lists(
        st.sampled_from(["time", "wal", "immediate force wait", "shutdown immediate"]), max_size=30
    ),
    st.integers(1, 29),
)
def test_chunked_checkpoints_fold_as_one_pass(flags: list[str], cut: int) -> None:
    """Checkpoints split across chunks (a start in one, its complete in the next) count as
    in one pass: the merger folds them in order."""
    lines = []
    for k, flag in enumerate(flags):
        lines.append((k * 60.0, f"checkpoint starting: {flag}"))
        lines.append((k * 60.0 + 5, COMPLETE_15))
    whole = Maintenance()
    one = Merger(OPTIONS)
    one.add(parse_chunk("stderr", PREFIX, _log(lines).encode(), OPTIONS))
    whole = one.finish().maintenance
    split = min(cut, len(lines))
    two = Merger(OPTIONS)
    for part in (lines[:split], lines[split:]):
        if part:
            two.add(parse_chunk("stderr", PREFIX, _log(part).encode(), OPTIONS))
    assert two.finish().maintenance.summary() == whole.summary()
