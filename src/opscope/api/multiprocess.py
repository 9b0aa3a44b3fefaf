"""Several worker processes, one /metrics: gunicorn -w N, uvicorn --workers N.

As prometheus_client's multiprocess mode does for its own metrics, each process keeps its
figures where the others can read them, in $PROMETHEUS_MULTIPROC_DIR: one JSON file per
process (`opscope_<pid>_<start>.json`, written whole and renamed into place), rewritten by a
background thread at most once per `flush_interval_s` while requests come in, and at exit.
A scrape answered by one worker adds its live figures to the others' files: theirs are at
most one interval old. prometheus_client's own files there (`*.db`) are left to it.

Counts of a worker that died stay in the sum (counters never go back, as in
prometheus_client); its in-flight requests do not. Empty the directory when the service
starts, as prometheus_client asks for its own files.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from opscope.atomic import write_atomic

PREFIX = "opscope_"


def snapshot_name(snapshot: dict[str, Any]) -> str:
    # the start time keeps a process that reuses a dead one's pid from overwriting its counts
    return f"{PREFIX}{snapshot['pid']}_{int(float(snapshot['started']) * 1e6)}.json"


def write_snapshot(directory: str, snapshot: dict[str, Any]) -> None:
    write_atomic(Path(directory) / snapshot_name(snapshot), json.dumps(snapshot))


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def read_snapshots(directory: str, *, exclude: str) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    try:
        names = sorted(os.listdir(directory))
    except OSError:
        return out
    for name in names:
        if not name.startswith(PREFIX) or not name.endswith(".json") or name == exclude:
            continue
        try:
            data = json.loads((Path(directory) / name).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue  # removed meanwhile, or not ours
        if not isinstance(data, dict):
            continue
        if not _alive(int(data.get("pid", 0))):
            data["active"] = []
        out.append(data)
    return out
