"""The HTML report as a person sees it: rendered by real headless Chromium."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import SandboxDb

pytestmark = pytest.mark.integration

CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def chromium(*args: str, profile: Path) -> subprocess.CompletedProcess[str]:
    exe = shutil.which("chromium")
    if exe is None:
        pytest.fail("chromium is not installed; scripts/setup installs it")
    return subprocess.run(
        [exe, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", *args],
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_report_renders_and_a_script_in_a_query_stays_inert(db: SandboxDb, tmp_path: Path) -> None:
    # pg_stat_statements keeps comments verbatim, so this text reaches the report as written
    payload = "<script>document.body.setAttribute('data-pwned', 'yes')</script>"
    with db.connect() as conn:
        conn.execute(f"SELECT /* {payload} */ pg_sleep(1.01)".encode())
    report = tmp_path / "report.html"
    proc = subprocess.run(
        [sys.executable, "-m", "opscope", "analyze", "db", db.dsn, "-o", str(report)],
        capture_output=True,
        text=True,
        env={**os.environ, "OPSCOPE_STATE_DIR": str(tmp_path)},
    )
    assert proc.returncode == 0, proc.stderr
    assert "&lt;script&gt;document.body.setAttribute(" in report.read_text()

    dom = chromium("--dump-dom", report.as_uri(), profile=tmp_path / "profile")
    assert dom.returncode == 0, dom.stderr
    assert "data-pwned" not in dom.stdout.split("<body", 1)[1].split(">", 1)[0]
    assert "Slow statement" in dom.stdout
    assert "&lt;script&gt;document.body" in dom.stdout  # shown as text, not run

    shot = tmp_path / "report.png"
    chromium(
        "--window-size=1200,1600",
        f"--screenshot={shot}",
        report.as_uri(),
        profile=tmp_path / "profile2",
    )
    assert shot.exists() and shot.stat().st_size > 20_000  # a real page, not a blank one
