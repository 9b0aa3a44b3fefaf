"""The compiled log modules: used only while they match their sources, same results as the
pure-Python ones (scripts/setup builds them; tests run on what it built)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from opscope.db.logs import compiled

PACKAGE = Path(compiled.__file__).parent

LOG = "".join(
    f"2024-05-01 10:00:{i % 60:02d}.000 UTC [{200 + i % 7}] app@shop LOG:  duration: "  # noqa: S608
    f"{i % 13}.250 ms  statement: SELECT * FROM orders WHERE id = {i} AND note = 'n{i}'\n"
    f"2024-05-01 10:00:{i % 60:02d}.000 UTC [{300 + i % 5}] app@shop LOG:  duration: "
    f"0.5 ms  execute S_1: SELECT * FROM items WHERE sku = $1\n"
    f"2024-05-01 10:00:{i % 60:02d}.000 UTC [{300 + i % 5}] app@shop DETAIL:  parameters: "
    f"$1 = '{i}'\n"
    for i in range(3000)
)


def test_stale_or_missing_builds_are_not_used(tmp_path: Path) -> None:
    for path in PACKAGE.glob("*.py"):
        shutil.copy(path, tmp_path / path.name)
    digest = compiled.source_digest(tmp_path)
    assert digest == compiled.source_digest(PACKAGE)
    # a neighbour the compiled modules call (not compiled itself) counts as much as they do
    assert "maintenance.py" not in compiled.MODULES
    (tmp_path / "maintenance.py").write_text("# edited\n")
    assert compiled.source_digest(tmp_path) != digest
    shutil.copy(PACKAGE / "maintenance.py", tmp_path / "maintenance.py")
    assert compiled.source_digest(tmp_path) == digest
    (tmp_path / compiled.MODULES[0]).write_text("# edited\n")
    assert compiled.source_digest(tmp_path) != digest
    assert compiled.compiled_path(tmp_path) is None
    assert compiled.activate([str(tmp_path)]) == [str(tmp_path)]


def _report(path: Path, pure: bool, jobs: int) -> dict[str, object]:
    env = {k: v for k, v in os.environ.items() if k != "OPSCOPE_PURE_PYTHON"}
    if pure:
        env["OPSCOPE_PURE_PYTHON"] = "1"
    code = (
        "import json, sys\n"
        "from opscope.db.logs import compiled\n"
        "from opscope.db.logs.aggregate import Aggregate\n"
        "from opscope.db.logs.analyze import aggregate_logs\n"
        "from opscope.db.logs.options import LogOptions\n"
        "agg = aggregate_logs([sys.argv[1]], LogOptions(prefix='%m [%p] %q%u@%d ',"
        " jobs=int(sys.argv[2]), chunk_bytes=64 << 10))[0]\n"
        "print(json.dumps({'compiled': compiled.active(), 'queries': agg.queries,"
        " 'groups': sorted((s.query, s.calls, round(s.total, 3), s.max)"
        " for s in agg.statements.values()),"
        " 'slowest': [r.to_json() for r in agg.slowest_executions()]}))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code, str(path), str(jobs)],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    result: dict[str, object] = json.loads(out.stdout)
    return result


@pytest.mark.parametrize("jobs", [1, 2])
def test_compiled_and_pure_python_agree(tmp_path: Path, jobs: int) -> None:
    path = tmp_path / "pg.log"
    path.write_text(LOG)
    pure = _report(path, pure=True, jobs=jobs)
    assert pure["compiled"] is False
    assert pure["queries"] == 6000
    other = _report(path, pure=False, jobs=jobs)
    if compiled.compiled_path(PACKAGE) is not None:
        # what scripts/setup built is what runs, and results cross processes (pickled)
        assert other["compiled"] is True
    assert {k: v for k, v in other.items() if k != "compiled"} == {
        k: v for k, v in pure.items() if k != "compiled"
    }
