"""The pipeline area's part of opscope.yaml: `airflow` (the Airflow deployments, by name) and
`dags` (the settings they share, each block overridable per deployment).

```yaml
airflow:
  prod:
    db: postgresql://reader:${AIRFLOW_DB_PASSWORD}@airflow-db/airflow   # or:
    url: https://airflow.internal
    token: ${AIRFLOW_TOKEN}
    thresholds: {slow_dag_s: 900}
dags:
  session: {...}
  thresholds: {...}
  history: {...}
  rest: {...}
```
"""

from __future__ import annotations

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    RootModel,
    SecretStr,
    field_validator,
    model_validator,
)

from opscope.config import Config, ConfigSection
from opscope.db.settings import SessionSettings


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class DagThresholds(_Frozen):
    """Thresholds of the pipeline checks; docs/config.md lists each with its meaning."""

    min_runs: int = Field(default=3, ge=1)
    slow_dag_s: float = Field(default=1800.0, gt=0)
    slow_task_s: float = Field(default=600.0, gt=0)
    slow_task_min_share: float = Field(default=0.25, ge=0, le=1)
    regression_ratio: float = Field(default=1.25, gt=1)
    regression_min_runs: int = Field(default=5, ge=2)
    regression_consistency: float = Field(default=0.8, gt=0, le=1)
    low_parallelism_speedup: float = Field(default=1.25, gt=1)
    queue_wait_s: float = Field(default=60.0, ge=0)
    queue_wait_share: float = Field(default=0.2, ge=0, le=1)
    pool_saturation_wait_s: float = Field(default=300.0, ge=0)
    retries_cost_s: float = Field(default=300.0, ge=0)
    failure_rate: float = Field(default=0.1, gt=0, le=1)
    failure_rate_critical: float = Field(default=0.5, gt=0, le=1)


class HistorySettings(_Frozen):
    """How much history is read."""

    #: the most recent runs read per DAG: what bounds time and memory on a long history
    max_runs: int = Field(default=500, ge=1)
    #: runs replayed by the simulator (and by low_parallelism and the critical-path advice)
    recent_runs: int = Field(default=20, ge=1)
    #: runs drawn as Gantt charts per DAG (the latest, and the slowest when it differs)
    gantt_runs: int = Field(default=2, ge=0, le=10)


class RestSettings(_Frozen):
    """How the REST readers talk to an Airflow API server."""

    timeout_s: float = Field(default=30.0, gt=0)
    page_size: int = Field(default=100, ge=1, le=1000)
    verify_tls: bool = True


class DagsSettings(_Frozen):
    """Settings every Airflow deployment shares (`dags:`)."""

    session: SessionSettings = SessionSettings()
    thresholds: DagThresholds = DagThresholds()
    history: HistorySettings = HistorySettings()
    rest: RestSettings = RestSettings()


class AirflowTarget(_Frozen):
    """One deployment under `airflow:`: its metadata database, its API, or both (the
    database is read when given: it has more)."""

    db: str | None = None
    url: str | None = None
    #: secrets: masked by `config check` and never in any output
    token: SecretStr | None = None
    username: str | None = None
    password: SecretStr | None = None
    thresholds: DagThresholds | None = None
    session: SessionSettings | None = None
    history: HistorySettings | None = None

    @field_validator("db")
    @classmethod
    def _db_scheme(cls, value: str | None) -> str | None:
        if value is None:
            return value
        if value.startswith(("mysql", "sqlite")):
            raise ValueError("only a PostgreSQL metadata database is read; use url: for others")
        if not value.startswith(("postgresql://", "postgres://")) and "=" not in value:
            raise ValueError("expected a postgresql:// URL or a key=value connection string")
        return value

    @field_validator("url")
    @classmethod
    def _url_scheme(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(("http://", "https://")):
            raise ValueError("expected an http:// or https:// URL")
        return value

    @model_validator(mode="after")
    def _one_source(self) -> AirflowTarget:
        if self.db is None and self.url is None:
            raise ValueError("give db: (the metadata database) or url: (the API server)")
        return self


class AirflowTargets(RootModel[dict[str, AirflowTarget]]):
    model_config = ConfigDict(frozen=True)

    root: dict[str, AirflowTarget] = Field(default_factory=dict)


AIRFLOW = ConfigSection("airflow", AirflowTargets, "the Airflow deployments opscope reads, by name")
DAGS = ConfigSection(
    "dags", DagsSettings, "settings every Airflow deployment shares: session, thresholds, history"
)

_OVERRIDABLE = ("thresholds", "session", "history")


def airflow_targets(config: Config) -> dict[str, AirflowTarget]:
    return AIRFLOW.of(config).root


def dags_settings_for(config: Config, name: str | None) -> DagsSettings:
    """The shared settings, with the keys a deployment's own blocks set replacing them."""
    shared = DAGS.of(config)
    target = airflow_targets(config).get(name) if name else None
    if target is None:
        return shared
    update: dict[str, BaseModel] = {}
    for block in _OVERRIDABLE:
        own: BaseModel | None = getattr(target, block)
        if own is not None:
            base: BaseModel = getattr(shared, block)
            update[block] = base.model_copy(
                update={key: getattr(own, key) for key in own.model_fields_set}
            )
    return shared.model_copy(update=update)


def dags_config(
    settings: DagsSettings | None = None, *, targets: dict[str, AirflowTarget] | None = None
) -> Config:
    """A Config holding only this area's sections, for the library and tests."""
    sections: dict[str, BaseModel] = {"dags": settings or DagsSettings()}
    if targets:
        sections["airflow"] = AirflowTargets(targets)
    return Config(sections=sections)
