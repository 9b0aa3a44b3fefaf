"""The API area's part of opscope.yaml: `apis` (the targets) and `api` (what every API shares,
each key overridable per target).

```yaml
apis:
  shop:
    metrics_url: http://shop:8000/metrics     # the app's /metrics (opscope.api.Instrument)
    base_url: http://shop:8000                # for `opscope probe shop`
    access_logs: [/var/log/nginx/shop.log]    # and/or access logs
    database: warehouse                       # a name under `databases:`: links index advice
    thresholds: {slow_p95_ms: 300}            # only the keys given replace `api.thresholds`
    cache: {redis_url: redis://cache:6379/0}  # its ResponseCache's Redis, for cache invalidate
api:
  thresholds: {...}
```
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, RootModel, field_validator, model_validator

from opscope.config import Config, ConfigSection

LOG_FORMATS = ("auto", "combined", "gunicorn", "uvicorn", "json")


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class ApiThresholds(_Frozen):
    """Thresholds of the API checks; docs/config.md lists each with its meaning."""

    slow_p95_ms: float = Field(default=500.0, gt=0)
    critical_p95_ms: float = Field(default=2000.0, gt=0)
    min_requests: int = Field(default=20, ge=1)
    db_share: float = Field(default=0.5, gt=0, le=1)
    db_min_mean_ms: float = Field(default=20.0, ge=0)
    serialization_share: float = Field(default=0.25, gt=0, le=1)
    serialization_min_mean_ms: float = Field(default=5.0, ge=0)
    error_rate: float = Field(default=0.05, gt=0, le=1)
    critical_error_rate: float = Field(default=0.25, gt=0, le=1)
    cache_min_repeat_share: float = Field(default=0.5, gt=0, le=1)
    cache_max_change_share: float = Field(default=0.2, ge=0, le=1)
    cache_min_mean_ms: float = Field(default=5.0, ge=0)
    cache_max_ttl_s: float = Field(default=300.0, ge=1)
    cache_assumed_ttl_s: float = Field(default=60.0, ge=1)
    cache_min_lookups: int = Field(default=100, ge=1)
    cache_low_hit_ratio: float = Field(default=0.2, gt=0, le=1)


class ApiSettings(_Frozen):
    """Settings every API shares (`api:`)."""

    thresholds: ApiThresholds = ApiThresholds()
    #: seconds to wait for a /metrics scrape
    timeout_s: float = Field(default=10.0, gt=0)


class ApiCache(_Frozen):
    """Where an API's response cache keeps its entries, for `opscope cache invalidate`."""

    redis_url: str
    #: what every key starts with: the `prefix` given to the app's RedisCache
    prefix: str = "opscope:cache:"

    @field_validator("redis_url")
    @classmethod
    def _redis(cls, value: str) -> str:
        if not value.startswith(("redis://", "rediss://", "unix://")):
            raise ValueError("expected a redis://, rediss:// or unix:// URL")
        return value


class ApiTarget(_Frozen):
    """One API under `apis:`."""

    metrics_url: str | None = None
    base_url: str | None = None
    access_logs: tuple[str, ...] = ()
    log_format: str = "auto"
    #: a database under `databases:` (or a DSN) that the API queries
    database: str | None = None
    thresholds: ApiThresholds | None = None
    cache: ApiCache | None = None

    @field_validator("metrics_url", "base_url")
    @classmethod
    def _http(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(("http://", "https://")):
            raise ValueError("expected an http:// or https:// URL")
        return value

    @field_validator("log_format")
    @classmethod
    def _format(cls, value: str) -> str:
        if value not in LOG_FORMATS:
            raise ValueError(f"expected one of: {', '.join(LOG_FORMATS)}")
        return value

    @model_validator(mode="after")
    def _something(self) -> ApiTarget:
        if not (self.metrics_url or self.access_logs or self.base_url or self.cache):
            raise ValueError("give metrics_url, access_logs, base_url or cache")
        return self


class Apis(RootModel[dict[str, ApiTarget]]):
    model_config = ConfigDict(frozen=True)

    root: dict[str, ApiTarget] = Field(default_factory=dict)


APIS = ConfigSection("apis", Apis, "the web APIs opscope watches, by name")
API = ConfigSection("api", ApiSettings, "settings every API shares: thresholds, scrape timeout")


def apis(config: Config) -> dict[str, ApiTarget]:
    return APIS.of(config).root


def thresholds_for(config: Config, name: str | None) -> ApiThresholds:
    """The shared thresholds, with the keys a target's own block sets replacing them."""
    shared = API.of(config).thresholds
    target = apis(config).get(name) if name else None
    if target is None or target.thresholds is None:
        return shared
    own = target.thresholds
    return shared.model_copy(update={k: getattr(own, k) for k in own.model_fields_set})
