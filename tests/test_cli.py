"""The `opscope` command as a user runs it: real process, real cluster, exit codes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path

from conftest import SandboxDb
from opscope.db.sandbox import PASSWORD, PASSWORD_ROLE, Sandbox, free_port


def opscope(
    *args: str, env: dict[str, str] | None = None, cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "opscope", *args],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=cwd,
        env={**os.environ, **(env or {})},
    )


def _workload(db: SandboxDb) -> None:
    db.execute(
        "CREATE TABLE orders (id int PRIMARY KEY, customer_id int)",
        "CREATE INDEX orders_c1 ON orders (customer_id)",
        "CREATE INDEX orders_c2 ON orders (customer_id)",
    )


def test_json_follows_the_findings_contract(db: SandboxDb, tmp_path: Path) -> None:
    _workload(db)
    proc = opscope(
        "analyze",
        "db",
        db.dsn,
        "--format",
        "json",
        env={"OPSCOPE_STATE_DIR": str(tmp_path)},
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr
    data = json.loads(proc.stdout)
    assert set(data) >= {"opscope_version", "generated_at", "targets", "findings", "errors"}
    assert data["generated_at"].endswith("Z")
    assert data["targets"] == [
        {
            "kind": "postgresql",
            "name": db.name,
            "server_version": data["targets"][0]["server_version"],
        }
    ]
    assert data["targets"][0]["server_version"].split(".")[0] == str(db.cluster.version)
    dup = [f for f in data["findings"] if f["check"] == "duplicate_index"]
    assert len(dup) == 1
    f = dup[0]
    assert set(f) == {
        "id",
        "check",
        "category",
        "severity",
        "target",
        "object",
        "columns",
        "title",
        "detail",
        "evidence",
        "recommendation",
        "fix_sql",
        "fix",
    }
    # the finding points to the one fix that drops the copy, which lists it back
    [fix] = [x for x in data["fixes"] if x["id"] == f["fix"]]
    assert f["id"] in fix["findings"] and fix["fix_sql"] == f["fix_sql"]
    assert set(fix) == {
        "id", "target", "title", "fix_sql", "findings", "checks", "severity", "benefit"
    }  # fmt: skip
    assert (f["category"], f["severity"], f["target"], f["object"], f["columns"]) == (
        "indexes",
        "warning",
        db.name,
        "public.orders_c2",
        ["customer_id"],
    )
    assert f["fix_sql"] == "DROP INDEX CONCURRENTLY public.orders_c2;"
    # ids are stable between runs
    again = json.loads(
        opscope(
            "analyze",
            "db",
            db.dsn,
            "-f",
            "json",
            cwd=tmp_path,
            env={"OPSCOPE_STATE_DIR": str(tmp_path)},
        ).stdout
    )
    assert f["id"] in {g["id"] for g in again["findings"]}
    summary = data["summary"][db.name]
    assert summary["max_connections"] == 60 and 0 <= summary["cache_hit_ratio"] <= 1


def test_fail_on_sets_the_exit_code(db: SandboxDb, tmp_path: Path) -> None:
    _workload(db)
    env = {"OPSCOPE_STATE_DIR": str(tmp_path)}
    assert (
        opscope("analyze", "db", db.dsn, "-f", "json", "--fail-on", "warning", env=env).returncode
        == 1
    )
    assert (
        opscope("analyze", "db", db.dsn, "-f", "json", "--fail-on", "critical", env=env).returncode
        == 0
    )
    bad = opscope("analyze", "db", db.dsn, "--fail-on", "severe", env=env)
    assert bad.returncode == 2 and "unknown severity 'severe'" in bad.stderr


class _Collector(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[str] = []
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def test_html_report_keeps_query_text_inert(db: SandboxDb, tmp_path: Path) -> None:
    with db.connect() as conn:
        conn.execute("SELECT pg_sleep(1.01), '</pre><script>alert(1)</script>' AS x")
    out = tmp_path / "report.html"
    proc = opscope(
        "analyze", "db", db.dsn, "--output", str(out), env={"OPSCOPE_STATE_DIR": str(tmp_path)}
    )
    assert proc.returncode == 0, proc.stderr
    html = out.read_text()
    parser = _Collector()
    parser.feed(html)
    assert "script" not in parser.tags
    assert "link" not in parser.tags and "img" not in parser.tags  # nothing fetched
    # pg_stat_statements replaced the literal with $2, so the threat is in the title we show
    text = "".join(parser.text)
    assert "SELECT pg_sleep($1), $2 AS x" in text
    assert "Slow statement" in text


def test_html_escapes_identifiers_from_the_database(db: SandboxDb, tmp_path: Path) -> None:
    db.execute(
        'CREATE TABLE "<script>alert(1)</script>" (a int)',
        'CREATE INDEX "<img src=x onerror=alert(1)>" ON "<script>alert(1)</script>" (a)',
        'CREATE INDEX "copy" ON "<script>alert(1)</script>" (a)',
    )
    out = tmp_path / "r.html"
    assert (
        opscope(
            "analyze",
            "db",
            db.dsn,
            "-o",
            str(out),
            "-f",
            "html",
            env={"OPSCOPE_STATE_DIR": str(tmp_path)},
        ).returncode
        == 0
    )
    parser = _Collector()
    parser.feed(out.read_text())
    assert "script" not in parser.tags and "img" not in parser.tags
    assert "public.<script>alert(1)</script>" in "".join(parser.text)


def test_markdown_and_terminal_formats(db: SandboxDb, tmp_path: Path) -> None:
    _workload(db)
    env = {"OPSCOPE_STATE_DIR": str(tmp_path)}
    md = opscope("analyze", "db", db.dsn, "-f", "markdown", env=env)
    assert md.returncode == 0
    assert "## Indexes" in md.stdout and "DROP INDEX CONCURRENTLY public.orders_c2;" in md.stdout
    term = opscope("analyze", "db", db.dsn, env=env)
    assert "Duplicate index public.orders_c2 repeats public.orders_c1" in term.stdout
    assert "\x1b[" not in term.stdout  # no colour codes when not on a terminal


def test_wrong_password_is_one_line_exit_2_without_the_password(cluster: Sandbox) -> None:
    dsn = cluster.dsn("postgres", PASSWORD_ROLE, "hunter2-wrong")
    proc = opscope("analyze", "db", dsn)
    assert proc.returncode == 2
    assert proc.stdout == ""
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert "password authentication failed" in lines[0]
    assert "hunter2-wrong" not in proc.stderr
    ok = opscope(
        "analyze",
        "db",
        cluster.dsn("postgres", PASSWORD_ROLE, PASSWORD),
        "--check",
        "invalid_index",
    )
    assert ok.returncode == 0, ok.stderr


def test_unreachable_host_and_missing_database(cluster: Sandbox) -> None:
    proc = opscope("analyze", "db", f"postgresql://postgres@127.0.0.1:{free_port()}/x")
    assert proc.returncode == 2 and len(proc.stderr.strip().splitlines()) == 1
    assert "cannot connect" in proc.stderr and "Traceback" not in proc.stderr
    proc = opscope("analyze", "db", cluster.dsn("no_such_db"))
    assert proc.returncode == 2
    assert 'database "no_such_db" does not exist' in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1


def test_config_names_databases_and_interpolates_secrets(cluster: Sandbox, tmp_path: Path) -> None:
    cfg = tmp_path / "opscope.yaml"
    cfg.write_text(
        "databases:\n"
        "  main:\n"
        f"    dsn: postgresql://{PASSWORD_ROLE}:${{PGPW}}@127.0.0.1:{cluster.port}/postgres\n"
        "postgresql:\n"
        "  thresholds:\n"
        "    slow_query_ms: 500\n"
    )
    proc = opscope(
        "analyze",
        "db",
        "-c",
        str(cfg),
        "-f",
        "json",
        "--check",
        "invalid_index",
        env={"PGPW": PASSWORD, "OPSCOPE_STATE_DIR": str(tmp_path)},
    )
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["targets"][0]["name"] == "main"
    cfg.write_text(cfg.read_text().replace("PGPW", "OPSCOPE_TEST_UNSET_VAR"))
    missing = opscope("analyze", "db", "-c", str(cfg))
    assert missing.returncode == 2
    assert missing.stderr.strip() == (
        f"opscope: error: {cfg}:3: key databases.main.dsn: environment variable "
        "OPSCOPE_TEST_UNSET_VAR is not set"
    )
    cfg.write_text("databases:\n  main:\n    dsn: postgresql://x@h/db\n    treshold: 3\n")
    bad = opscope("analyze", "db", "-c", str(cfg))
    assert bad.returncode == 2
    assert bad.stderr.strip() == (
        f"opscope: error: {cfg}:4: key databases.main.treshold: unknown key"
    )


def test_unknown_check_and_bad_window_are_usage_errors(db: SandboxDb) -> None:
    proc = opscope("analyze", "db", db.dsn, "--check", "no_such_check")
    assert proc.returncode == 2 and "unknown check 'no_such_check'" in proc.stderr
    proc = opscope("analyze", "db", db.dsn, "--window", "soon")
    assert proc.returncode == 2 and "not a duration" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_output_file_is_not_half_written_on_failure(tmp_path: Path) -> None:
    out = tmp_path / "report.json"
    out.write_text("previous report")
    proc = opscope(
        "analyze", "db", f"postgresql://postgres@127.0.0.1:{free_port()}/x", "-o", str(out)
    )
    assert proc.returncode == 2
    assert out.read_text() == "previous report"
    assert [p.name for p in tmp_path.iterdir()] == ["report.json"]


def test_checks_lists_every_check() -> None:
    proc = opscope("checks", "--format", "json")
    ids = {c["id"] for c in json.loads(proc.stdout)}
    assert {
        "slow_query",
        "unused_index",
        "duplicate_index",
        "redundant_index",
        "invalid_index",
        "index_bloat",
        "fk_without_index",
        "stale_statistics",
        "table_bloat",
        "large_table",
        "seq_scan_heavy",
        "xid_wraparound_risk",
        "vacuum_overdue",
    } <= ids


def test_one_database_down_does_not_hide_the_others(db: SandboxDb, tmp_path: Path) -> None:
    _workload(db)
    down = f"postgresql://postgres@127.0.0.1:{free_port()}/gone"
    proc = opscope(
        "analyze", "db", db.dsn, down, "-f", "json", env={"OPSCOPE_STATE_DIR": str(tmp_path)}
    )
    assert proc.returncode == 2
    data = json.loads(proc.stdout)
    assert [t["name"] for t in data["targets"]] == [db.name]
    assert any(f["check"] == "duplicate_index" for f in data["findings"])
    assert [(e["check"], e["target"]) for e in data["errors"]] == [("connection", "gone")]
    assert "cannot connect" in proc.stderr


def test_report_file_gets_ordinary_permissions(db: SandboxDb, tmp_path: Path) -> None:
    out = tmp_path / "r.json"
    assert (
        opscope(
            "analyze", "db", db.dsn, "-o", str(out), env={"OPSCOPE_STATE_DIR": str(tmp_path)}
        ).returncode
        == 0
    )
    umask = os.umask(0)
    os.umask(umask)
    assert out.stat().st_mode & 0o777 == 0o666 & ~umask


def test_output_through_a_symlink_or_a_device(db: SandboxDb, tmp_path: Path) -> None:
    env = {"OPSCOPE_STATE_DIR": str(tmp_path)}
    target = tmp_path / "real.json"
    link = tmp_path / "link.json"
    link.symlink_to(target)
    assert opscope("analyze", "db", db.dsn, "-o", str(link), env=env).returncode == 0
    assert link.is_symlink() and json.loads(target.read_text())["targets"]
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    reader = subprocess.Popen(["cat", str(fifo)], stdout=subprocess.PIPE, text=True)
    proc = opscope("analyze", "db", db.dsn, "-f", "json", "-o", str(fifo), env=env)
    out, _ = reader.communicate(timeout=60)
    assert proc.returncode == 0 and json.loads(out)["targets"]
    assert fifo.is_fifo()


def test_a_failing_check_prints_no_traceback(db: SandboxDb, tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    proc = opscope(
        "analyze",
        "db",
        db.dsn,
        "--check",
        "large_table",
        "-f",
        "json",
        env={"OPSCOPE_STATE_DIR": str(blocker / "sub")},
    )
    assert proc.returncode == 0
    assert "Traceback" not in proc.stderr and proc.stderr == ""
    assert json.loads(proc.stdout)["errors"][0]["check"] == "large_table"


def test_mistyped_dsns_never_echo_their_password() -> None:
    for dsn in (
        "postgresql://u:p%zzsecret1@127.0.0.1:5/x",
        "postgresql://u:sec ret5@127.0.0.1:5/x",
        "postgresql:/u:secret2@127.0.0.1/x",
        f"postgresql://u:secret3@127.0.0.1:{free_port()}/x",
    ):
        proc = opscope("analyze", "db", dsn)
        assert proc.returncode == 2
        assert "secret" not in proc.stderr and "ret5" not in proc.stderr, proc.stderr
        assert len(proc.stderr.strip().splitlines()) == 1


def test_escape_sequences_from_the_database_never_reach_the_terminal(
    db: SandboxDb, tmp_path: Path
) -> None:
    with db.connect() as conn:
        conn.execute(b"SELECT /* \x1b]0;pwned\x07 \x1b[2J */ pg_sleep(1.01)")
    db.execute(
        'CREATE TABLE "t\x1b[31m" (a int)',
        'CREATE INDEX i1 ON "t\x1b[31m" (a)',
        'CREATE INDEX i2 ON "t\x1b[31m" (a)',
    )
    env = {"OPSCOPE_STATE_DIR": str(tmp_path)}
    for fmt in ("terminal", "markdown"):
        out = opscope("analyze", "db", db.dsn, "-f", fmt, env=env).stdout
        assert "\x1b" not in out and "\x07" not in out
        if fmt == "terminal":
            assert "^[[2J" in out and "^[[31m" in out


def test_config_check_masks_secrets_and_rejects_mistakes(tmp_path: Path) -> None:
    cfg = tmp_path / "opscope.yaml"
    cfg.write_text(
        "databases:\n"
        "  main:\n"
        "    dsn: postgresql://opscope:${PGPW}@db.internal:5432/app\n"
        "    thresholds:\n"
        "      slow_query_ms: 250\n"
        "  kv:\n"
        "    dsn: host=db password=Hunter2kv user=x\n"
        "postgresql:\n"
        "  advisor:\n"
        "    max_indexes: 3\n"
    )
    proc = opscope("config", "check", "-c", str(cfg), env={"PGPW": "s3cr3t-Pw"})
    assert proc.returncode == 0, proc.stderr
    assert "s3cr3t-Pw" not in proc.stdout + proc.stderr
    assert "Hunter2kv" not in proc.stdout + proc.stderr
    assert proc.stderr.strip() == f"# {cfg}: valid"
    import yaml

    shown = yaml.safe_load(proc.stdout)
    assert shown["databases"]["main"]["dsn"] == "postgresql://opscope:********@db.internal:5432/app"
    # a database's block shows what it overrides, the shared blocks everything
    assert shown["databases"]["main"]["thresholds"] == {"slow_query_ms": 250}
    assert "thresholds" not in shown["databases"]["kv"]
    # resolved: defaults filled in around what the file set
    assert shown["postgresql"]["advisor"]["max_indexes"] == 3
    assert shown["postgresql"]["advisor"]["statements"] == 50
    assert shown["postgresql"]["session"]["statement_timeout_ms"] == 30000
    cfg.write_text("thresholds:\n  slow_query_ms: 5\n")
    bad = opscope("config", "check", "-c", str(cfg))
    assert bad.returncode == 2
    assert bad.stderr.strip() == (
        f"opscope: error: {cfg}:1: key thresholds: moved to postgresql.thresholds "
        "(see docs/config.md)"
    )
