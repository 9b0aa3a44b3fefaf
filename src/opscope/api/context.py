"""What the API checks read: one API's endpoints from one source, its thresholds, and the
index advice of its database when one is configured."""

from __future__ import annotations

from dataclasses import dataclass, field

from opscope.api.endpoints import Endpoint
from opscope.api.settings import ApiThresholds

KIND = "api"
METRICS = "metrics"
ACCESS_LOG = "access_log"


@dataclass(frozen=True)
class IndexAdvice:
    """An index `opscope indexes advise` proposes, for the statements it helps."""

    database: str
    title: str
    fix_sql: str
    time_saved_ms: float | None = None


@dataclass
class ApiContext:
    target: str
    endpoints: dict[str, Endpoint]
    thresholds: ApiThresholds = field(default_factory=ApiThresholds)
    source: str = METRICS
    #: seconds the figures cover (a window, or since the app began recording); None unknown
    elapsed_s: float | None = None
    #: the database configured for this API (name or DSN), for the index advice link
    database: str | None = None
    #: statement fingerprint -> the index advised for it
    advice: dict[str, IndexAdvice] = field(default_factory=dict)
    #: why there is no advice although a database is configured, if so
    advice_note: str | None = None

    def rate(self, e: Endpoint) -> float | None:
        return e.requests / self.elapsed_s if self.elapsed_s else None
