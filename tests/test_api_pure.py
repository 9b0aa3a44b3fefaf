"""The API area's pure logic on plain inputs: path folding and the access-log parsers (with
hypothesis), quantiles from samples, buckets and the log histogram, the probe's latency from
the scheduled start, the recorder's caps and the merging of workers' snapshots; and the CLI's
one-line errors."""

from __future__ import annotations

import asyncio
import inspect
import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest
from hypothesis import given
from hypothesis import strategies as st

from opscope.api.accesslog import (
    fold_path,
    parse_combined,
    parse_json,
    parse_uvicorn,
    read_logs,
)
from opscope.api.analyze import target_name
from opscope.api.exposition import merge
from opscope.api.latency import LogHistogram, bucket_quantile, quantile
from opscope.api.probe import Outcome, ProbePlan, ProbeResult, run_probe, summarize
from opscope.api.record import CURRENT, RequestRecord
from opscope.api.recorder import OTHER_STATEMENT, Recorder
from opscope.api.routes import OTHER, UNMATCHED
from opscope.api.scrape import difference, endpoints, parse
from opscope.api.serialization import (
    _timed_response_init_generic,
    span_start,
    timed_response_init,
)

words = st.text(alphabet="abcdefghijklmnopqrstuvwxyz-_", min_size=1, max_size=12)
ids = st.integers(min_value=0, max_value=10**12).map(str)
uuids = st.uuids().map(str)
hashes = (
    st.binary(min_size=8, max_size=32).map(bytes.hex).filter(lambda h: any(c.isdigit() for c in h))
)


@given(st.lists(st.one_of(words, ids, uuids, hashes), min_size=1, max_size=8), st.text(max_size=20))
def test_folding_keeps_words_and_replaces_ids(segments: list[str], query: str) -> None:
    path = "/" + "/".join(segments)
    folded = fold_path(path + "?" + query)
    expected = [s if re.fullmatch(r"[a-z\-_]+", s) else None for s in segments]
    out = folded.split("/")[1:]
    assert len(out) == len(segments)
    for got, want, raw in zip(out, expected, segments, strict=True):
        if want is not None:
            assert got == raw
        else:
            assert got in ("{id}", "{uuid}", "{hash}"), (raw, got)
    assert fold_path(folded) == folded  # folding a template changes nothing


def test_folding_examples() -> None:
    assert fold_path("/orders/17") == fold_path("/orders/42") == "/orders/{id}"
    assert fold_path("/u/3f2a9c1e-0b7d-4c2e-9a1f-5d6e7f8a9b0c/avatar") == "/u/{uuid}/avatar"
    assert (
        fold_path("/blobs/9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08")
        == "/blobs/{hash}"
    )
    assert fold_path("/v2/deadbeefcafebabe") == "/v2/deadbeefcafebabe"  # no digit: a word
    assert fold_path("http://shop/orders/7?x=1") == "/orders/{id}"
    assert fold_path("*") == UNMATCHED


methods = st.sampled_from(["GET", "POST", "PUT", "DELETE", "PATCH", "HEAD"])
statuses = st.integers(min_value=100, max_value=599)
targets = st.lists(st.one_of(words, ids), min_size=0, max_size=5).map(lambda s: "/" + "/".join(s))
quoted = st.text(
    alphabet=st.characters(blacklist_characters='"\\\n\r', blacklist_categories=["Cs"]),
    max_size=30,
)


@given(
    methods,
    targets,
    statuses,
    quoted,
    quoted,
    st.one_of(st.none(), st.integers(0, 10**7), st.decimals(0, 100, places=3)),
)
def test_combined_lines_parse_back(
    method: str, target: str, status: int, referer: str, agent: str, timing: object
) -> None:
    line = (
        f'10.0.0.1 - - [10/Oct/2026:13:55:36 +0000] "{method} {target} HTTP/1.1" {status} 512 '
        f'"{referer}" "{agent}"'
    )
    if timing is not None:
        line += f" {timing}"
    parsed = parse_combined(line)
    assert parsed is not None
    assert (parsed.method, parsed.target, parsed.status) == (method, target, status)
    if timing is None:
        assert parsed.duration is None
    elif isinstance(timing, int):
        assert parsed.duration == timing / 1e6  # gunicorn %(D)s: microseconds
    else:
        assert parsed.duration == float(str(timing))  # nginx $request_time: seconds


@given(methods, targets, statuses, st.one_of(st.none(), st.floats(0, 100)))
def test_json_lines_parse_back(
    method: str, target: str, status: int, seconds: float | None
) -> None:
    record: dict[str, object] = {
        "request_method": method,
        "request_uri": target,
        "status": str(status),
    }
    if seconds is not None:
        record["request_time"] = seconds
    parsed = parse_json(json.dumps(record))
    assert parsed is not None
    assert (parsed.method, parsed.target, parsed.status, parsed.duration) == (
        method,
        target,
        status,
        seconds,
    )


@given(methods, targets, statuses)
def test_uvicorn_lines_parse_back(method: str, target: str, status: int) -> None:
    line = f'INFO:     127.0.0.1:53042 - "{method} {target} HTTP/1.1" {status} OK'
    parsed = parse_uvicorn("\x1b[32m" + line + "\x1b[0m")
    assert parsed is not None and (parsed.method, parsed.target, parsed.status) == (
        method,
        target,
        status,
    )


def test_a_log_is_folded_and_only_404_paths_are_one_endpoint(tmp_path: Path) -> None:
    log = tmp_path / "access.log"
    lines = [
        f'1.2.3.4 - - [10/Oct/2026:13:55:36 +0000] "GET /orders/{i} HTTP/1.1" 200 10 "-" "ua" '
        f"0.{i:03d}"
        for i in range(1, 41)
    ]
    lines += [
        f'1.2.3.4 - - [10/Oct/2026:13:55:37 +0000] "GET /scan{i}.php HTTP/1.1" 404 0 "-" "ua" 0.001'
        for i in range(30)
    ]
    lines += ["garbage that is no log line", "x" * 100_000]
    log.write_text("\n".join(lines) + "\n")
    agg = read_logs([str(log)])
    found = agg.finish()
    assert set(found) == {"/orders/{id}", UNMATCHED}
    assert found["/orders/{id}"].requests == 40
    assert found[UNMATCHED].requests == 30
    assert agg.skipped_long == 1 and agg.formats == {str(log): "combined"}
    p95 = found["/orders/{id}"].quantile_ms(0.95)
    assert p95 is not None and abs(p95 - 38.05) / 38.05 < 0.02


@given(
    st.lists(st.floats(min_value=0, max_value=1e6, allow_nan=False), min_size=1, max_size=200),
    st.floats(0, 1),
)
def test_quantile_lies_between_neighbours(values: list[float], q: float) -> None:
    ordered = sorted(values)
    got = quantile(ordered, q)
    assert got is not None
    assert ordered[0] <= got <= ordered[-1]
    assert quantile(ordered, 0) == ordered[0] and quantile(ordered, 1) == ordered[-1]


def test_bucket_quantile_interpolates_as_promql() -> None:
    bounds = (0.1, 0.2, 0.4)
    assert bucket_quantile(bounds, [10, 20, 40, 40], 0.5) == 0.2
    assert bucket_quantile(bounds, [10, 20, 40, 40], 0.75) == 0.30000000000000004
    assert bucket_quantile(bounds, [10, 20, 40, 50], 0.99) == 0.4  # in +Inf: the last bound
    assert bucket_quantile(bounds, [0, 0, 0, 0], 0.5) is None


@given(
    st.lists(st.floats(min_value=1e-4, max_value=100), min_size=20, max_size=500),
    st.sampled_from([0.5, 0.9, 0.99]),
)
def test_the_log_histogram_is_within_two_percent(values: list[float], q: float) -> None:
    hist = LogHistogram()
    for v in values:
        hist.add(v)
    ordered = sorted(values)
    # the histogram answers with a value of the rank's bucket: compare with the nearest ranks
    lo = ordered[max(0, int(q * len(ordered)) - 1)]
    hi = ordered[min(len(ordered) - 1, int(q * len(ordered)))]
    got = hist.quantile(q)
    assert got is not None and lo / 1.021 <= got <= hi * 1.021


def test_latency_runs_from_the_scheduled_start() -> None:
    """A server that stalls 1 s: ten requests due every 100 ms all wait for it. Measured from
    the send (closed-loop tools), only the first is slow; from the schedule, the others carry
    the wait a user arriving then would have had."""
    plan = ProbePlan(urls=("http://x/",), rate=10.0, requests=10)
    outcomes = [Outcome(0, 0.0, 0.0, 1.0, 200)]
    outcomes += [
        Outcome(0, i / 10, 1.0 + (i - 1) * 0.001, 1.0 + i * 0.001, 200) for i in range(1, 10)
    ]
    summary = summarize(ProbeResult(plan, outcomes, started=0.0, finished=1.01))
    assert summary["service_ms"]["p50"] == 1.0
    assert summary["latency_ms"]["max"] == 1000.0
    assert summary["latency_ms"]["p50"] == 554.5  # the middle requests waited about half of it
    assert summary["late_starts"] == 9


def test_the_open_model_keeps_its_schedule() -> None:
    async def app(scope: dict[str, object], receive: object, send: object) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": []})  # type: ignore[operator]
        await send({"type": "http.response.body", "body": b"ok"})  # type: ignore[operator]

    transport = httpx.ASGITransport(app=app)  # type: ignore[arg-type]
    plan = ProbePlan(urls=("http://x/a", "http://x/b"), rate=200.0, duration_s=0.25)
    result = asyncio.run(run_probe(plan, transport=transport))
    due = sorted(o.scheduled - result.started for o in result.outcomes)
    assert len(due) == 50
    assert due == pytest.approx([i / 200 for i in range(50)], abs=1e-9)
    assert {o.url for o in result.outcomes} == {0, 1}
    closed = asyncio.run(
        run_probe(ProbePlan(urls=("http://x/a",), concurrency=3, requests=17), transport=transport)
    )
    assert len(closed.outcomes) == 17 and all(o.scheduled == o.sent for o in closed.outcomes)


def _record(queries: list[str], status: int = 200) -> RequestRecord:
    rec = RequestRecord({}, 0.0, lambda: 0.0)
    rec.status = status
    for q in queries:
        rec.add_query(q, 0.001)
    return rec


def test_the_recorder_caps_routes_statements_and_flags_n_plus_one() -> None:
    recorder = Recorder(statements_per_route=3, n_plus_one_statements_extra=1, max_routes=2)
    tables = ["orders", "items", "users", "carts", "stock", "prices"]
    for table in tables:
        recorder.finish(_record([f"SELECT * FROM {table} WHERE id = 1"]), "/a", "GET", 0.01)  # noqa: S608
    recorder.finish(
        _record(["SELECT name FROM u WHERE id = %s"] * 4), "/a", "GET", 0.01, n_plus_one=4
    )
    recorder.finish(_record(["SELECT 1"] * 3), "/a", "GET", 0.01, n_plus_one=4)
    recorder.finish(_record([]), "/b", "GET", 0.01)
    recorder.finish(_record([]), "/c", "GET", 0.01)  # past max_routes
    snap = recorder.snapshot()
    assert set(snap["routes"]) == {"/a", "/b", OTHER}
    table = snap["routes"]["/a"]["statements"]
    texts = sorted(v[0] for v in table.values())
    # three kept, the N+1 one in the extra room, the rest in one <other>
    assert len(table) == 5 and OTHER_STATEMENT in texts
    assert "SELECT name FROM u WHERE id = $1" in texts
    assert snap["routes"]["/a"]["n_plus_one"] == 1


def test_snapshots_of_workers_add_up() -> None:
    one, two = Recorder(), Recorder()
    one.finish(_record(["SELECT 1"] * 5), "/a", "GET", 0.02)
    two.finish(_record(["SELECT 1"] * 6), "/a", "GET", 0.2)
    two.finish(_record([], status=500), "/a", "GET", 0.003)
    merged = merge([one.snapshot(), two.snapshot()])
    series = {(r, m, s): (sum(c), total) for r, m, s, c, total in merged["series"]}
    assert series[("/a", "GET", 200)] == (2, 0.22)
    assert series[("/a", "GET", 500)] == (1, 0.003)
    [entry] = merged["routes"]["/a"]["statements"].values()
    assert entry[1:] == [11, 0.011, 2, 6]  # calls, seconds, N+1 requests, most repeats


def test_requests_without_queries_are_the_zeros_of_the_db_histograms() -> None:
    recorder = Recorder()
    recorder.finish(_record(["SELECT 1"] * 2), "/a", "GET", 0.01)
    recorder.finish(_record([]), "/a", "GET", 0.01)
    recorder.finish(_record([], status=404), "/a", "GET", 0.01)  # another series, same route
    served = _record([])
    served.serialization_time = 0.002
    recorder.finish(served, "/a", "POST", 0.01)
    stats = recorder.snapshot()["routes"]["/a"]
    # every request is in each histogram; those with nothing to time in its first bucket
    assert stats["queries"][0][:3] == [3, 0, 1] and sum(stats["queries"][0]) == 4
    assert stats["db"][0][:2] == [3, 1] and stats["db"][1] == 0.002
    assert stats["serialization"][0][:2] == [3, 1] and stats["serialization"][1] == 0.002


def test_the_serialization_hook_keeps_the_signature_it_wraps() -> None:
    seen: list[tuple[Any, ...]] = []  # what the wrapped function was given
    marker: list[int] = []

    def serialize(
        a: int, b: int = 2, *, content: Any, field: Any = None, box: list[int] = marker
    ) -> str:
        seen.append((a, b, content, field, box))
        return "done"

    wrapped = span_start(serialize)
    assert str(inspect.signature(wrapped)) == str(inspect.signature(serialize))
    assert wrapped(1, content="x") == "done" and seen[-1] == (1, 2, "x", None, marker)
    assert seen[-1][4] is marker  # the default is the wrapped function's own object
    wrapped(a=3, b=4, content="y", field="f", box=[9])
    assert list(seen[-1]) == [3, 4, "y", "f", [9]]
    record = RequestRecord({}, 0.0, lambda: 7.0)
    token = CURRENT.set(record)
    try:
        wrapped(1, content="z")
    finally:
        CURRENT.reset(token)
    assert record.serializing == 7.0  # the span is open until the response is rendered

    def loose(*args: Any, **kwargs: Any) -> tuple[Any, ...]:
        return (args, kwargs)

    assert span_start(loose)(1, k=2) == ((1,), {"k": 2})


def test_the_response_hook_made_with_its_signature_does_what_the_generic_one_does() -> None:
    class Response:
        def __init__(
            self, content: Any = None, status_code: int = 200, headers: Any = None
        ) -> None:
            self.given = (content, status_code, headers)

    made = timed_response_init(Response.__init__)
    generic = _timed_response_init_generic(Response.__init__)
    assert made.__code__ is not generic.__code__  # the one made with the signature
    assert str(inspect.signature(made)) == str(inspect.signature(Response.__init__))
    clock = iter(range(100))
    for hook in (made, generic):
        record = RequestRecord({}, 0.0, lambda: float(next(clock)))
        token = CURRENT.set(record)
        try:
            given = []
            for args, kwargs in [((), {}), (("x",), {}), (("x", 201), {"headers": "h"})]:
                response = Response.__new__(Response)
                hook(response, *args, **kwargs)
                given.append(response.given)
            response = Response.__new__(Response)
            hook(response, content="y", status_code=202)
            given.append(response.given)
        finally:
            CURRENT.reset(token)
        assert given == [(None, 200, None), ("x", 200, None), ("x", 201, "h"), ("y", 202, None)]
        # the empty response is not timed; each of the three others one clock tick
        assert record.serialization_time == 3.0 and not record.in_serialization


def test_a_window_is_the_difference_and_survives_a_restart() -> None:
    def text(count: int) -> str:
        labels = 'http_route="/a",http_request_method="GET",http_response_status_code="200"'
        name = "http_server_request_duration_seconds"
        return (
            f"# TYPE {name} histogram\n"
            f'{name}_bucket{{{labels},le="0.1"}} {count}\n'
            f'{name}_bucket{{{labels},le="+Inf"}} {count}\n'
            f"{name}_count{{{labels}}} {count}\n"
            f"{name}_sum{{{labels}}} {count / 100}\n"
        )

    assert endpoints(difference(parse(text(100)), parse(text(130))))["/a"].requests == 30
    assert endpoints(difference(parse(text(100)), parse(text(7))))["/a"].requests == 7


def _opscope(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "opscope", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        timeout=60,
    )


def test_bad_input_is_one_line_and_exit_2(tmp_path: Path) -> None:
    cases = [
        (["analyze", "api"], "no API given"),
        (["analyze", "api", "--metrics-url", "ftp://x/metrics"], "http:// or https://"),
        (
            ["analyze", "api", "--metrics-url", "http://127.0.0.1:9/metrics"],
            "cannot read http://127.0.0.1:9/metrics",
        ),
        (["analyze", "api", "--access-log", str(tmp_path / "none.log")], "cannot read"),
        (["analyze", "api", "shop"], "no API named 'shop'"),
        (["probe", "http://127.0.0.1:9/", "-n", "3", "-d", "1s"], "give -n or -d, not both"),
        (["probe", "not-a-url"], "neither a URL nor an API"),
    ]
    for args, message in cases:
        done = _opscope(*args, cwd=tmp_path)
        assert done.returncode == 2, (args, done.stderr)
        lines = done.stderr.strip().splitlines()
        assert (
            len(lines) == 1 and lines[0].startswith("opscope: error: ") and message in lines[0]
        ), (args, lines)


def test_the_probe_counts_a_refused_connection_as_an_error(tmp_path: Path) -> None:
    done = _opscope("probe", "http://127.0.0.1:9/", "-n", "5", "-f", "json", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    [summary] = json.loads(done.stdout)["summary"].values()
    assert (
        summary["requests"] == 5 and summary["errors"] == 5 and summary["statuses"] == {"error": 5}
    )


def test_a_password_in_the_metrics_url_is_never_shown(tmp_path: Path) -> None:
    done = _opscope(
        "analyze", "api", "--metrics-url", "http://scraper:s3cret-pw@127.0.0.1:9/metrics",
        cwd=tmp_path,
    )  # fmt: skip
    assert done.returncode == 2
    assert "s3cret-pw" not in done.stderr and "127.0.0.1:9" in done.stderr
    assert target_name("http://scraper:s3cret-pw@shop:8000/metrics", ()) == "shop:8000"
