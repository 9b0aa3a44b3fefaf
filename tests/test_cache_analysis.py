"""The cacheability analysis tells endpoints apart on a real app (FastAPI under uvicorn behind
Instrument and ResponseCache): a stable, repeated one is cacheable, with a TTL, a projected hit
ratio, the time saved and the rule to paste; a per-user one (Authorization on every request)
and one whose answer changes on every call are not; a cache rule whose keys never repeat is
reported for its low hit ratio. Traffic comes from the real `opscope probe`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx

from api_servers import opscope
from opscope.api.analyze import analyze_api
from opscope.api.context import ACCESS_LOG
from opscope.config import Config
from redis_server import RedisServer
from test_cache_servers import fastapi_server


def _probe(tmp: Path, *args: str) -> None:
    done = opscope("probe", *args, "-n", "60", "-c", "4", "-f", "json", cwd=tmp)
    assert done.returncode == 0, done.stderr
    summary: dict[str, Any] = next(iter(json.loads(done.stdout)["summary"].values()))
    assert summary["statuses"] == {"200": 60}


def test_analysis_tells_cacheable_from_per_user_and_changing(
    tmp_path: Path, redis_server: RedisServer, monkeypatch: Any
) -> None:
    monkeypatch.setenv("SLOW_S", "0.001")
    with fastapi_server(tmp_path, "analysis", "redis", redis_server) as base:
        _probe(tmp_path, f"{base}/reports/1", f"{base}/reports/2")
        _probe(tmp_path, f"{base}/whoami", "-H", "Authorization: Bearer someone")
        _probe(tmp_path, f"{base}/now")
        with httpx.Client(base_url=base) as client:
            # a cached route whose every request is a new key: all misses
            for product in range(120):
                assert client.get(f"/products/{product}").status_code == 200
        done = opscope("analyze", "api", "--metrics-url", f"{base}/metrics", "-f", "json",
                       cwd=tmp_path)  # fmt: skip
        assert done.returncode == 0, done.stderr
        terminal = opscope("analyze", "api", "--metrics-url", f"{base}/metrics", cwd=tmp_path)
    report = json.loads(done.stdout)
    by_check: dict[str, dict[str, Any]] = {}
    for f in report["findings"]:
        by_check.setdefault(f["check"], {})[f["object"]] = f
    assert set(by_check["cacheable_endpoint"]) == {"/reports/{report_id}"}
    found = by_check["cacheable_endpoint"]["/reports/{report_id}"]
    ev = found["evidence"]
    assert ev["source"] == "metrics"
    assert ev["repeat_share"] > 0.9 and ev["change_share"] == 0
    assert ev["ttl_s"] >= 1 and "no answer changed" in ev["ttl_basis"]
    assert 0.5 < ev["projected_hit_ratio"] <= ev["repeat_share"]
    assert ev["handler_ms_saved_per_min"] > 0
    assert ev["rule"] == f'"/reports/{{report_id}}": CacheRule(ttl={ev["ttl_s"]})'
    assert ev["rule"] in found["recommendation"]
    assert set(by_check["cache_low_hit_ratio"]) == {"/products/{product_id}"}
    low = by_check["cache_low_hit_ratio"]["/products/{product_id}"]["evidence"]
    assert low["hit_ratio"] == 0 and low["misses"] == 120
    endpoints = {e["route"]: e for e in next(iter(report["summary"].values()))["endpoints"]}
    assert endpoints["/products/{product_id}"]["cache_hit_ratio"] == 0
    assert endpoints["/reports/{report_id}"]["repeat_share"] > 0.9
    assert endpoints["/now"]["repeat_share"] > 0.9  # it repeats, but its answers change
    assert terminal.returncode == 0 and "hit" in terminal.stdout


def test_from_access_logs_only_repeat_rates_are_known(tmp_path: Path) -> None:
    log = tmp_path / "access.log"
    line = (
        '10.0.0.1 - - [30/Nov/2026:12:00:{s:02d} +0000] "GET {path} HTTP/1.1" 200 512 "-" '
        '"curl/8" 0.040\n'
    )
    rows = [line.format(s=i % 60, path=f"/reports/{i % 3}?b=2&a=1") for i in range(60)]
    rows += [line.format(s=i % 60, path=f"/search?q={i}") for i in range(60)]
    log.write_text("".join(rows))
    report = analyze_api(Config(), access_logs=[str(log)])
    found = {f.object: f for f in report.findings if f.check == "cacheable_endpoint"}
    assert set(found) == {"/reports/{id}"}
    f = found["/reports/{id}"]
    assert f.evidence["source"] == ACCESS_LOG
    assert f.evidence["repeat_share"] == 0.95 and f.evidence["change_share"] is None
    assert "only repeat rates are known" in f.detail
    assert "access logs" in f.title and "assumed" in f.evidence["ttl_basis"]
