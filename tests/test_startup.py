"""What every command pays at start-up: the heavy libraries of single commands (the service's
web stack and store, the HTTP client, the HTML templates, numpy) are imported only by the
command that uses them, so `opscope logs` or `--help` does not wait for them."""

from __future__ import annotations

import json
import subprocess
import sys

#: imported by the commands that need them, never by the CLI's start-up
LATE = ("sqlalchemy", "alembic", "fastapi", "starlette", "uvicorn", "httpx", "jinja2", "numpy")


def _loaded_after(code: str) -> set[str]:
    probe = f"import sys\n{code}\nimport json; print(json.dumps(sorted(sys.modules)))"
    out = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True
    ).stdout
    return {name.split(".")[0] for name in json.loads(out.splitlines()[-1])}


def test_the_cli_starts_without_the_heavy_libraries() -> None:
    loaded = _loaded_after(
        "from opscope.cli import app\nimport typer.main\ntyper.main.get_command(app)"
    )
    assert "opscope" in loaded and "typer" in loaded  # the probe saw the CLI itself
    assert sorted(loaded & set(LATE)) == []


def test_the_commands_that_need_them_still_get_them() -> None:
    # the probe can fail: a library moved behind the start-up is imported where it is used
    loaded = _loaded_after("from opscope.monitor.service import Service")
    assert {"sqlalchemy", "fastapi", "uvicorn"} <= loaded
