"""Disk usage remembered between runs, so `disk_filling` knows how fast each disk fills even
from one sample per run: one small JSON file per host in the state directory, written
atomically."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from opscope.atomic import write_atomic
from opscope.findings import fingerprint
from opscope.resources.host import Disk


@dataclass(frozen=True)
class Growth:
    mountpoint: str
    #: bytes per hour, positive when the disk fills
    bytes_per_hour: float
    #: hours the rate was measured over
    over_hours: float


def growth(before: dict[str, tuple[datetime, int]], disks: tuple[Disk, ...],
           now: datetime) -> dict[str, Growth]:  # fmt: skip
    out = {}
    for disk in disks:
        seen = before.get(disk.mountpoint)
        if seen is None:
            continue
        hours = (now - seen[0]).total_seconds() / 3600
        if hours <= 0:
            continue
        out[disk.mountpoint] = Growth(disk.mountpoint, (disk.used_bytes - seen[1]) / hours, hours)
    return out


@dataclass
class DiskHistory:
    path: Path
    previous: dict[str, tuple[datetime, int]]
    save_error: str | None = None

    @classmethod
    def open(cls, state_dir: Path, host: str) -> DiskHistory:
        path = state_dir / "disks" / f"{fingerprint(host)}.json"
        previous: dict[str, tuple[datetime, int]] = {}
        try:
            raw = json.loads(path.read_text(encoding="utf-8"))
            for mount, (taken, used) in raw["disks"].items():
                previous[str(mount)] = (datetime.fromisoformat(taken), int(used))
        except (OSError, ValueError, KeyError, TypeError):
            previous = {}  # a missing or damaged file only means no rate from it this time
        return cls(path, previous)

    def save(self, disks: tuple[Disk, ...], now: datetime) -> None:
        data = {"disks": {d.mountpoint: [now.isoformat(), d.used_bytes] for d in disks}}
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            write_atomic(self.path, json.dumps(data) + "\n", private=True)
        except OSError as exc:
            self.save_error = (
                f"cannot keep disk usage in {self.path.parent}: {exc.strerror or exc}; "
                "set state_dir or OPSCOPE_STATE_DIR"
            )
