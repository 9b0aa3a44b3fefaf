"""Text from a watched system never reaches a reader raw: identifiers holding ESC, BEL and C1
controls, in every renderer, in explain's plan tree and in the lines --apply prints."""

from __future__ import annotations

import json
import re
from pathlib import Path

from conftest import SandboxDb
from test_cli import opscope

#: what a terminal acts on: C0 controls but tab and newline, DEL, C1 (0x9b is a one-byte CSI)
RAW = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f]")
#: a table whose name sets the window title, rings the bell and clears the screen
EVIL = "t\x1b]0;pwned\x07\x9b2J\x1b[31m"


def _quoted(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def test_identifiers_with_control_characters_are_shown_inert(db: SandboxDb, tmp_path: Path) -> None:
    table = _quoted(EVIL)
    db.execute(
        f"CREATE TABLE {table} (id int, v int) WITH (autovacuum_enabled = off)",
        f"INSERT INTO {table} SELECT g, g % 7 FROM generate_series(1, 20000) g",  # noqa: S608
        f"CREATE INDEX i1 ON {table} (v)",
        f"CREATE INDEX i2 ON {table} (v)",
    )
    env = {"OPSCOPE_STATE_DIR": str(tmp_path)}
    for fmt in ("terminal", "markdown", "html", "json"):
        proc = opscope("analyze", "db", db.dsn, "-f", fmt, env=env)
        assert proc.returncode == 0, proc.stderr
        assert RAW.search(proc.stdout) is None, fmt
        assert "pwned" in proc.stdout, fmt  # shown, made inert
    # the data itself is kept: JSON holds the name exactly, as escapes
    data = json.loads(opscope("analyze", "db", db.dsn, "-f", "json", env=env).stdout)
    assert any(f["object"] == f"public.{EVIL}" for f in data["findings"])

    # explain's tree, in each format
    for fmt in ("terminal", "markdown", "html"):
        query = f"SELECT * FROM {table} WHERE v = 3"  # noqa: S608 (a constant name)
        proc = opscope("explain", db.dsn, query, "-f", fmt)
        assert proc.returncode == 0, proc.stderr
        assert "on public.t^[]0;pwned^G" in proc.stdout, fmt
        assert RAW.search(proc.stdout) is None, fmt

    # the statements --apply prints before it runs them
    proc = opscope("analyze", "db", db.dsn, "--check", "stale_statistics", "--apply", env=env)
    assert proc.returncode == 0, proc.stderr
    assert "applying: ANALYZE" in proc.stderr and "pwned" in proc.stderr
    assert RAW.search(proc.stderr) is None
    assert RAW.search(proc.stdout) is None
