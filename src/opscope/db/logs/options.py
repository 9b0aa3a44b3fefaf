"""What the user asked `opscope logs` for."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any

from opscope.config import Config
from opscope.db.settings import POSTGRESQL

#: the log formats PostgreSQL writes, as log_destination names them
FORMATS = (
    "stderr",
    "csvlog",
    "jsonlog",
    "syslog",
    "cloudsql",
    "heroku",
    "cnpg",
    "azure",
    "pgbouncer",
)


@dataclass(frozen=True)
class LogOptions:
    #: log_line_prefix of stderr and syslog logs; None detects it
    prefix: str | None = None
    #: one of FORMATS; None detects it from the content
    log_format: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    database: str | None = None
    user: str | None = None
    #: executions faster than this are not counted
    min_duration_ms: float = 0.0
    #: an execution this slow makes its statement a slow_query finding
    slow_ms: float = 1000.0
    #: worker processes; None uses every core for big inputs and one for small ones
    jobs: int | None = None
    #: how many statements and executions the top lists keep
    top: int = 20
    #: bytes handed to a worker at a time
    chunk_bytes: int = 8 << 20
    #: the longest line with its continuation lines, csvlog record or jsonlog line kept:
    #: beyond it a stderr entry is cut, a csvlog/jsonlog record left out (both counted),
    #: which bounds memory whatever the input
    max_entry_bytes: int = 1 << 20
    #: thresholds of autovacuum_slow and checkpoints_too_frequent (postgresql.logs)
    autovacuum_slow_s: float = 60.0
    checkpoint_wal_share: float = 0.1
    checkpoint_min_interval_s: float = 60.0
    checkpoint_timeout_s: float = 300.0
    checkpoint_completion_target: float = 0.9

    def __post_init__(self) -> None:
        if self.max_entry_bytes < 1 or self.chunk_bytes < 1:
            raise ValueError("max_entry_bytes and chunk_bytes must be positive")


def log_options(config: Config, **given: Any) -> LogOptions:
    """Options from the config (`postgresql.logs`, and `postgresql.thresholds.slow_query_ms`
    for what makes an execution slow), with the values in `given` replacing them."""
    settings = POSTGRESQL.of(config)
    defaults: dict[str, Any] = {
        "slow_ms": settings.thresholds.slow_query_ms,
        "top": settings.logs.top,
        "jobs": settings.logs.jobs,
        "max_entry_bytes": settings.logs.max_entry_bytes,
        "autovacuum_slow_s": settings.logs.autovacuum_slow_s,
        "checkpoint_wal_share": settings.logs.checkpoint_wal_share,
        "checkpoint_min_interval_s": settings.logs.checkpoint_min_interval_s,
        "checkpoint_timeout_s": settings.logs.checkpoint_timeout_s,
        "checkpoint_completion_target": settings.logs.checkpoint_completion_target,
    }
    return LogOptions(**{**defaults, **given})


#: UTC offsets (minutes) of the zone abbreviations log_timezone commonly prints; an
#: ambiguous one is read the common way (IST is India's, CST the US central zone's)
ZONE_OFFSETS = {
    "UTC": 0, "GMT": 0, "Z": 0, "WET": 0, "WEST": 60, "BST": 60, "CET": 60, "CEST": 120,
    "EET": 120, "EEST": 180, "MSK": 180, "IST": 330, "SGT": 480, "HKT": 480, "JST": 540,
    "KST": 540, "AEST": 600, "AEDT": 660, "NZST": 720, "NZDT": 780, "EST": -300,
    "EDT": -240, "CST": -360, "CDT": -300, "MST": -420, "MDT": -360, "PST": -480,
    "PDT": -420, "AKST": -540, "AKDT": -480, "HST": -600,
}  # fmt: skip
_NUMERIC_ZONE = re.compile(r"([+-])(\d\d):?(\d\d)?")


def zone_offset(zone: str) -> int | None:
    """Minutes east of UTC of a zone as the log writes it (`CEST`, `+03`, `-0430`), or None
    when it is unknown."""
    known = ZONE_OFFSETS.get(zone.upper())
    if known is not None:
        return known
    m = _NUMERIC_ZONE.fullmatch(zone)
    if m is None:
        return None
    minutes = int(m.group(2)) * 60 + int(m.group(3) or 0)
    return -minutes if m.group(1) == "-" else minutes


def time_key(moment: datetime | None, offset: int | None = None) -> str:
    """A bound as the log writes time, for plain string comparison with log timestamps.

    PostgreSQL writes `YYYY-MM-DD HH:MM:SS[.mmm] TZ` in log_timezone. A bound with a time
    zone is converted to the log's zone, `offset` minutes east of UTC (UTC when that is
    unknown); a naive bound is taken to be in the log's own time zone. Comparison is to
    the second.
    """
    if moment is None:
        return ""
    if moment.tzinfo is not None:
        zone = timezone(timedelta(minutes=offset or 0))
        moment = moment.astimezone(zone).replace(tzinfo=None)
    return moment.strftime("%Y-%m-%d %H:%M:%S")
