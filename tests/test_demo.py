"""The demo's platform, analyzed: each change it needs is one fix, listed once."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

import pytest

from conftest import SandboxDb
from opscope.report import render


def _demo() -> Any:
    path = Path(__file__).resolve().parent.parent / "scripts" / "demo_platform.py"
    spec = importlib.util.spec_from_file_location("demo_platform", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.needs("hypopg", "pg_qualstats")
def test_each_fix_of_the_demo_is_shown_once(db: SandboxDb) -> None:
    with db.connect() as conn:
        conn.execute("CREATE EXTENSION pg_qualstats")
        _demo().build_platform(conn)
    report = db.analyze(large_table_bytes=20_000_000)
    by_title = {fix.title: fix for fix in report.fixes}
    index = by_title["Create an index on shop.orders (customer_id)"]
    assert sorted(index.checks) == ["fk_without_index", "missing_index", "plan_seq_scan"]
    assert index.fix_sql is not None and index.fix_sql.startswith("CREATE INDEX CONCURRENTLY")
    assert index.benefit["time_saved_ms"] > 0 and index.benefit["cost_saving"] > 0
    drop = by_title["Drop index shop.events_account"]
    assert sorted(drop.checks) == ["redundant_index", "unused_index"]
    assert drop.fix_sql == "DROP INDEX CONCURRENTLY shop.events_account;"
    assert drop.benefit["bytes_freed"] > 0
    # every finding with SQL belongs to exactly one fix, and the fixes are ranked
    owners = [fid for fix in report.fixes for fid in fix.findings]
    assert sorted(owners) == sorted(f.id for f in report.findings if f.fix_sql)
    assert report.fixes[0] is index
    for fmt in ("terminal", "markdown", "html"):
        text = render(report, fmt, width=200)
        assert text.count(index.fix_sql) == 1, fmt
        assert text.count(drop.fix_sql) == 1, fmt
