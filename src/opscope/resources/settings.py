"""The resources area's part of opscope.yaml: `services` (what the uptime probes call) and
`resources` (process groups, disks, connection pools, PgBouncer, thresholds).

```yaml
services:
  shop-api: {url: https://shop.internal/healthz, expect: 200}
  cache: {tcp: 127.0.0.1:6379, send: "PING\\r\\n", expect: "+PONG"}
resources:
  processes:
    api-workers: {pattern: "gunicorn: worker"}
    scheduler: {pid_file: /run/airflow/scheduler.pid}
    worker: {systemd_unit: airflow-worker.service, memory_bytes: 4294967296}
  pools:
    shop: {metrics_url: http://shop.internal:8000/metrics, database: warehouse}
  pgbouncer:
    main: {admin_dsn: postgresql://stats@127.0.0.1:6432/pgbouncer, database: warehouse}
  thresholds: {cpu_percent: 90}
```
"""

from __future__ import annotations

import re

from pydantic import BaseModel, ConfigDict, Field, RootModel, field_validator, model_validator

from opscope.config import Config, ConfigSection


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


def parse_host_port(value: str) -> tuple[str, int]:
    """`host:port` or `[v6]:port` -> (host, port); ValueError otherwise."""
    m = re.fullmatch(r"\[([^\]]+)\]:(\d+)|([^:\[\]]+):(\d+)", value.strip())
    if not m:
        raise ValueError(f"{value!r} is not host:port")
    host = m.group(1) or m.group(3)
    port = int(m.group(2) or m.group(4))
    if not 0 < port < 65536:
        raise ValueError(f"port {port} is out of range")
    return host, port


class ServiceTarget(_Frozen):
    """One service under `services:`: an HTTP(S) URL or a TCP address."""

    url: str | None = None
    tcp: str | None = None
    #: HTTP: the status codes that mean up (default: any 2xx or 3xx); TCP: text the answer
    #: must contain (after `send`)
    expect: int | list[int] | str | None = None
    #: TCP: what to send once connected (\r\n written as such)
    send: str | None = None
    timeout_s: float = Field(default=5.0, gt=0)
    #: tries per run; the service is down when none succeeds
    attempts: int = Field(default=3, ge=1, le=20)
    #: HTTPS: a CA bundle to verify the certificate with (default: the system's)
    ca_file: str | None = None
    #: HTTPS: skip verification (then the certificate's expiry is not read)
    verify: bool = True

    @field_validator("url")
    @classmethod
    def _http(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(("http://", "https://")):
            raise ValueError("expected an http:// or https:// URL")
        return value

    @field_validator("tcp")
    @classmethod
    def _address(cls, value: str | None) -> str | None:
        if value is not None:
            parse_host_port(value)
        return value

    @model_validator(mode="after")
    def _one_of(self) -> ServiceTarget:
        if (self.url is None) == (self.tcp is None):
            raise ValueError("give url or tcp (one of them)")
        if self.url is not None and isinstance(self.expect, str):
            raise ValueError("expect is a status code (or a list of them) for a url")
        if self.tcp is not None and self.expect is not None and not isinstance(self.expect, str):
            raise ValueError("expect is the text the answer contains for tcp")
        return self


class Services(RootModel[dict[str, ServiceTarget]]):
    model_config = ConfigDict(frozen=True)

    root: dict[str, ServiceTarget] = Field(default_factory=dict)


class ProcessGroup(_Frozen):
    """A group of processes watched together, chosen one way."""

    #: a regular expression searched in each process's command line
    pattern: str | None = None
    #: a file holding the main process's pid (its children belong to the group)
    pid_file: str | None = None
    #: a systemd unit: the processes of its cgroup
    systemd_unit: str | None = None
    #: `high_cpu` for the group from this much CPU, in percent of one core (as top shows)
    cpu_percent: float | None = Field(default=None, gt=0)
    #: `high_memory` for the group from this resident memory, in bytes
    memory_bytes: int | None = Field(default=None, gt=0)

    @field_validator("pattern")
    @classmethod
    def _regex(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                re.compile(value)
            except re.error as exc:
                raise ValueError(f"not a regular expression: {exc}") from None
        return value

    @model_validator(mode="after")
    def _one_way(self) -> ProcessGroup:
        given = [x for x in (self.pattern, self.pid_file, self.systemd_unit) if x is not None]
        if len(given) != 1:
            raise ValueError("give one of pattern, pid_file or systemd_unit")
        return self


class PoolSource(_Frozen):
    """An app whose /metrics (opscope.api.Instrument) carries its connection pools."""

    metrics_url: str
    #: a database under `databases:` (or a DSN) the pools connect to: what it can take
    database: str | None = None

    @field_validator("metrics_url")
    @classmethod
    def _http(cls, value: str) -> str:
        if not value.startswith(("http://", "https://")):
            raise ValueError("expected an http:// or https:// URL")
        return value


class PgBouncerTarget(_Frozen):
    """A PgBouncer whose admin console opscope reads (SHOW POOLS, SHOW STATS)."""

    #: the admin console: a user in PgBouncer's stats_users or admin_users, database pgbouncer
    admin_dsn: str
    #: the database behind it (a name under `databases:` or a DSN): what it can take
    database: str | None = None


class ResourceThresholds(_Frozen):
    """Thresholds of the resources checks; docs/config.md lists each with its meaning."""

    cpu_percent: float = Field(default=90.0, gt=0, le=100)
    memory_percent: float = Field(default=90.0, gt=0, le=100)
    disk_full_warning_hours: float = Field(default=7 * 24.0, gt=0)
    disk_full_critical_hours: float = Field(default=24.0, gt=0)
    #: disks growing slower than this are not extrapolated (noise, logs rotating)
    disk_min_growth_bytes_per_hour: float = Field(default=1 << 20, ge=0)
    pool_wait_share: float = Field(default=0.05, gt=0, le=1)
    pool_min_requests: int = Field(default=20, ge=1)
    #: the sizing aims at this chance that a checkout has to wait (Erlang C)
    pool_target_wait_probability: float = Field(default=0.05, gt=0, lt=1)
    #: PgBouncer: clients waiting this long (seconds) for a server connection
    pgbouncer_max_wait_s: float = Field(default=1.0, ge=0)
    tls_warning_days: float = Field(default=14.0, ge=0)
    tls_critical_days: float = Field(default=3.0, ge=0)
    #: a probe answering slower than this counts as failed
    slow_probe_ms: float | None = Field(default=None, gt=0)


class ResourceSettings(_Frozen):
    """`resources:`: what `opscope analyze resources` watches besides the host."""

    processes: dict[str, ProcessGroup] = Field(default_factory=dict)
    #: mount points whose filling is watched; empty: every real file system
    disks: tuple[str, ...] = ()
    pools: dict[str, PoolSource] = Field(default_factory=dict)
    pgbouncer: dict[str, PgBouncerTarget] = Field(default_factory=dict)
    thresholds: ResourceThresholds = ResourceThresholds()
    #: seconds over which CPU use is measured
    sample_s: float = Field(default=1.0, gt=0, le=60)
    #: seconds to wait for a /metrics scrape
    timeout_s: float = Field(default=10.0, gt=0)


SERVICES = ConfigSection(
    "services", Services, "the services the uptime probes call, by name (url or tcp)"
)
RESOURCES = ConfigSection(
    "resources",
    ResourceSettings,
    "host, process groups, disks, connection pools, PgBouncer and their thresholds",
)


def services(config: Config) -> dict[str, ServiceTarget]:
    return SERVICES.of(config).root


def resource_settings(config: Config) -> ResourceSettings:
    return RESOURCES.of(config)
