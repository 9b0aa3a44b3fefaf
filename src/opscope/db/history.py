"""Table sizes remembered between runs, so `large_table` can report growth.

Kept as one small JSON file per target under the state directory, written atomically (a
temporary file renamed over the old one) so an interrupted run never leaves half a file.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from opscope.atomic import write_atomic
from opscope.findings import fingerprint


@dataclass(frozen=True)
class SizePoint:
    taken_at: datetime
    total_bytes: int
    rows: float


@dataclass
class SizeHistory:
    path: Path
    previous: dict[str, SizePoint]
    #: why the sizes of this run could not be kept (the findings stand without it)
    save_error: str | None = None

    @classmethod
    def open(cls, state_dir: Path, target_identity: str) -> SizeHistory:
        path = state_dir / "sizes" / f"{fingerprint(target_identity)}.json"
        previous: dict[str, SizePoint] = {}
        try:
            raw = json.loads(path.read_text(encoding="utf-8"))
            for name, point in raw.get("tables", {}).items():
                previous[name] = SizePoint(
                    datetime.fromisoformat(raw["taken_at"]),
                    int(point["total_bytes"]),
                    float(point["rows"]),
                )
        except (OSError, ValueError, KeyError, TypeError):
            # a missing or damaged history only means no growth figures this time
            previous = {}
        return cls(path, previous)

    def save(self, taken_at: datetime, tables: dict[str, tuple[int, float]]) -> None:
        data = {
            "taken_at": taken_at.isoformat(),
            "tables": {k: {"total_bytes": b, "rows": r} for k, (b, r) in tables.items()},
        }
        try:
            self._write(data)
        except OSError as exc:
            self.save_error = (
                f"cannot keep table sizes for growth in {self.path.parent}: "
                f"{exc.strerror or exc}; set state_dir or OPSCOPE_STATE_DIR"
            )

    def _write(self, data: Mapping[str, object]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        write_atomic(self.path, json.dumps(data), private=True)
