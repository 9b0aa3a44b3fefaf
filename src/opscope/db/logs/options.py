"""What the user asked `opscope logs` for."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

#: the log formats PostgreSQL writes, as log_destination names them
FORMATS = ("stderr", "csvlog", "jsonlog", "syslog")


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


def time_key(moment: datetime | None) -> str:
    """A bound as the log writes time, for plain string comparison with log timestamps.

    PostgreSQL writes `YYYY-MM-DD HH:MM:SS[.mmm] TZ` in log_timezone. A bound with a time
    zone is converted to UTC (the usual log_timezone of servers); a naive bound is taken
    to be in the log's own time zone. Comparison is to the second.
    """
    if moment is None:
        return ""
    if moment.tzinfo is not None:
        moment = moment.astimezone(UTC).replace(tzinfo=None)
    return moment.strftime("%Y-%m-%d %H:%M:%S")
