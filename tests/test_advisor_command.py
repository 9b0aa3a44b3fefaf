"""`opscope indexes advise`: JSON output, the no-hypopg fallback, and --verify --apply."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import typer
from typer.testing import CliRunner

from conftest import SandboxDb, Session
from opscope.db.advisor.candidates import Candidate, KeyPart
from opscope.db.advisor.command import advise_command
from opscope.db.advisor.model import Recommendation
from opscope.db.advisor.verify import VerifyFailed, verify
from opscope.db.settings import SessionSettings


def advise(*args: str) -> tuple[int, str, str]:
    app = typer.Typer()
    app.command("advise")(advise_command)
    app.command("noop")(lambda: None)
    result = CliRunner().invoke(app, ["advise", *args])
    return result.exit_code, result.stdout, result.stderr


def orders_workload(db: SandboxDb, *, setup: tuple[str, ...] = ()) -> None:
    db.execute(
        *setup,
        "CREATE TABLE orders (id int PRIMARY KEY, customer_id int, total numeric, note text)",
        "INSERT INTO orders SELECT g, g % 5000, g, 'n' FROM generate_series(1, 60000) g",
        "ANALYZE orders",
        "SELECT pg_stat_reset()",
    )
    with db.connect() as conn:
        for c in range(30):
            conn.execute("SELECT * FROM orders WHERE customer_id = %s", [c]).fetchall()


def findings(out: str) -> list[dict[str, Any]]:
    data: list[dict[str, Any]] = json.loads(out)["findings"]
    return data


@pytest.mark.needs("hypopg")
def test_json_lists_the_index_with_its_evidence(db: SandboxDb) -> None:
    orders_workload(db)
    code, out, _ = advise(db.dsn, "--format", "json", "--max-indexes", "3")
    assert code == 0, out
    [f] = findings(out)
    assert (f["check"], f["object"], f["columns"]) == (
        "missing_index",
        "public.orders",
        ["customer_id"],
    )
    assert f["evidence"]["method"] == "hypopg"
    summary = json.loads(out)["summary"]
    info = next(iter(summary.values()))["advisor"]
    assert info["statements_studied"] >= 1 and info["verified"] is True
    # a threshold nothing reaches leaves nothing to recommend
    code, out, _ = advise(db.dsn, "--format", "json", "--min-improvement", "100")
    assert code == 0 and findings(out) == []


def test_without_hypopg_the_advice_is_unverified(db: SandboxDb) -> None:
    orders_workload(db, setup=("DROP EXTENSION IF EXISTS hypopg",))
    code, out, _ = advise(db.dsn, "--format", "json")
    assert code == 0, out
    [f] = findings(out)
    assert (f["check"], f["object"], f["columns"]) == (
        "missing_index",
        "public.orders",
        ["customer_id"],
    )
    assert f["evidence"]["verified"] is False
    assert f["evidence"]["method"] == "pg_stats selectivity"
    assert "(unverified)" in f["title"] and f["severity"] == "info"


@pytest.mark.needs("hypopg", "pg_qualstats")
def test_verify_apply_builds_the_index_and_times_the_statement(db: SandboxDb) -> None:
    # pg_qualstats samples every statement here, so the advisor knows real constants and can
    # run the statement before and after
    db.cluster.psql("CREATE EXTENSION pg_qualstats", dbname=db.name)
    db.cluster.psql(f"ALTER DATABASE {db.name} SET pg_qualstats.sample_rate = 1")
    orders_workload(db)
    code, _, err = advise(db.dsn, "--verify")
    assert code == 2 and "add --apply" in err
    code, out, err = advise(db.dsn, "--verify", "--apply", "--format", "json")
    assert code == 0, err
    # built under opscope's temporary name, renamed once valid
    assert (
        'applying: CREATE INDEX CONCURRENTLY "opscope_verify_orders_customer_id_idx" ON'
        ' "public"."orders" ("customer_id");' in err
    )
    assert (
        'applying: ALTER INDEX "public"."opscope_verify_orders_customer_id_idx" RENAME TO'
        ' "orders_customer_id_idx";' in err
    )
    info = next(iter(json.loads(out)["summary"].values()))["advisor"]
    [timing] = info["timings"]
    assert timing["query"] == "SELECT * FROM orders WHERE customer_id = $1"
    assert timing["after_ms"] < timing["before_ms"]
    with db.connect() as conn:
        row = conn.execute(
            "SELECT indexdef FROM pg_indexes WHERE indexname = 'orders_customer_id_idx'"
        ).fetchone()
    assert row is not None and row[0].endswith("(customer_id)")
    assert info["applied"] == [
        'CREATE INDEX CONCURRENTLY "opscope_verify_orders_customer_id_idx" ON "public"."orders"'
        ' ("customer_id");',
        'ALTER INDEX "public"."opscope_verify_orders_customer_id_idx" RENAME TO'
        ' "orders_customer_id_idx";',
    ]


def test_a_database_error_is_one_line_not_a_traceback(db: SandboxDb, tmp_path: Path) -> None:
    orders_workload(db)
    config = tmp_path / "opscope.yaml"
    config.write_text("postgresql:\n  session:\n    statement_timeout_ms: 1\n")
    done = subprocess.run(
        [sys.executable, "-m", "opscope", "indexes", "advise", db.dsn, "-c", str(config)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr
    [line] = done.stderr.strip().splitlines()
    assert line.startswith("opscope: error: ") and "statement timeout" in line


def test_a_failed_build_leaves_no_invalid_index(
    db: SandboxDb, idle_in_transaction: Callable[..., Session]
) -> None:
    orders_workload(db)
    rec = Recommendation(
        candidate=Candidate("public", "orders", (KeyPart("customer_id"),)),
        effects=(),
        saving=1.0,
        write_penalty=0.0,
        size_bytes=None,
    )
    lines: list[str] = []
    # a transaction that wrote to the table and stays open: CREATE INDEX CONCURRENTLY must
    # wait for it, and with a lock timeout it gives up half-way
    blocker = idle_in_transaction("INSERT INTO orders VALUES (-1, 1, 1, 'open')")
    # the clean-up waits for the same transaction: it ends a little later
    release = blocker.release_after(1.0)
    try:
        with pytest.raises(VerifyFailed) as failed:
            verify(db.dsn, SessionSettings(), [rec], echo=lines.append, build_lock_timeout_ms=100)
    finally:
        release.join()
    message = str(failed.value)
    assert "\\n" not in message and "lock timeout" in message and "was dropped" in message
    assert any("waits for the transactions open" in line for line in lines)
    with db.connect() as conn:
        assert conn.execute(
            "SELECT count(*) FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid"
            " WHERE c.relname = 'orders_customer_id_idx'"
        ).fetchone() == (0,)
    # nothing left in the way: the next run builds it
    verify(db.dsn, SessionSettings(), [rec], echo=lines.append)
    with db.connect() as conn:
        assert conn.execute(
            "SELECT indisvalid FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid"
            " WHERE c.relname = 'orders_customer_id_idx'"
        ).fetchone() == (True,)


def test_an_index_left_under_the_build_name_is_noted_with_its_drop(db: SandboxDb) -> None:
    # valid but never renamed: killed between the build and the rename, or on PostgreSQL
    # 13, where the server finishes a build whose client died
    orders_workload(db)
    db.execute("CREATE INDEX opscope_verify_orders_total_idx ON orders (total)")
    code, out, err = advise(db.dsn, "--format", "json")
    assert code == 0, err
    notes = next(iter(json.loads(out)["summary"].values()))["advisor"]["notes"]
    assert (
        "public.opscope_verify_orders_total_idx was built by an interrupted --verify --apply "
        "but never renamed: DROP INDEX CONCURRENTLY "
        "public.opscope_verify_orders_total_idx;"
    ) in notes
    # a user's index of any other name is no leftover
    db.execute("ALTER INDEX opscope_verify_orders_total_idx RENAME TO orders_total_idx")
    code, out, err = advise(db.dsn, "--format", "json")
    assert code == 0, err
    assert not [
        n
        for n in next(iter(json.loads(out)["summary"].values()))["advisor"]["notes"]
        if "left by" in n
    ]
