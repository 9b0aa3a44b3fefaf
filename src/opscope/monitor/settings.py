"""The service's part of opscope.yaml: `serve`.

```yaml
serve:
  listen: 127.0.0.1:9310          # binding anything but localhost needs a token
  store: postgresql://...         # default: a SQLite file in state_dir
  token: ${OPSCOPE_TOKEN}
  shard: 0/2                      # this instance collects half of the targets
  retention: {raw: 2d, downsample_step: 5m, downsampled: 90d, snapshots: 30d}
  collectors: {postgresql/warehouse: {interval_s: 30}, api: {enabled: false}}
```
"""

from __future__ import annotations

import ipaddress
import re
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator

from opscope.config import Config, ConfigSection

DEFAULT_PORT = 9310
DEFAULT_HOST = "127.0.0.1"

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d|w)?\s*$")
_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, "w": 604800.0, None: 1.0}


def duration_s(value: str | float | int) -> float:
    """'90s', '5m', '2d', '1w' (or a plain number of seconds) -> seconds."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        if value < 0:
            raise ValueError("a duration cannot be negative")
        return float(value)
    m = _DURATION.match(str(value))
    if not m:
        raise ValueError(f"{value!r} is not a duration (like 30s, 5m, 2h, 7d)")
    return float(m.group(1)) * _UNITS[m.group(2)]


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Retention(_Frozen):
    """How long the store keeps what it holds; durations like 2d, 12h, 90d."""

    #: every collected point is kept this long
    raw: float = 2 * 86400.0
    #: then folded into one point per step (mean, min, max, last)
    downsample_step: float = 300.0
    #: and the folded points are kept this long
    downsampled: float = 90 * 86400.0
    #: snapshots (the areas' stored statistics) are kept this long
    snapshots: float = 30 * 86400.0
    #: snapshots older than `raw` are thinned to one per this step
    snapshot_step: float = 3600.0
    #: findings and collector runs (failures included) are kept this long
    events: float = 30 * 86400.0

    @field_validator("*", mode="before")
    @classmethod
    def _duration(cls, value: object) -> float:
        if not isinstance(value, str | int | float):
            raise ValueError("expected a duration like 2d or 300s")
        seconds = duration_s(value)
        if seconds <= 0:
            raise ValueError("must be more than zero")
        return seconds


class CollectorOverride(_Frozen):
    """Schedule of the collectors a key of `serve.collectors` names: a collector's name
    (`postgresql/warehouse`) or a kind (`postgresql`); the name wins."""

    interval_s: float | None = Field(default=None, gt=0)
    timeout_s: float | None = Field(default=None, gt=0)
    enabled: bool = True


def parse_shard(text: str) -> tuple[int, int]:
    m = re.fullmatch(r"\s*(\d+)\s*/\s*(\d+)\s*", text)
    if not m:
        raise ValueError(f"{text!r} is not a shard (expected i/n, like 0/2)")
    index, count = int(m.group(1)), int(m.group(2))
    if count < 1 or index >= count:
        raise ValueError(f"shard {text!r}: i must be below n (0/2 and 1/2 make two shards)")
    return index, count


def parse_listen(text: str) -> tuple[str, int]:
    """'host:port', ':port' or 'host' -> (host, port); IPv6 as [::1]:9310."""
    text = text.strip()
    if text.startswith("["):
        host, _, rest = text[1:].partition("]")
        port = rest.removeprefix(":")
    elif text.count(":") == 1:
        host, port = text.split(":")
    else:
        host, port = text, ""
    host = host or DEFAULT_HOST
    if port and not port.isdigit():
        raise ValueError(f"{text!r}: the port must be a number")
    number = int(port) if port else DEFAULT_PORT
    if not 0 < number < 65536:
        raise ValueError(f"{text!r}: the port must be between 1 and 65535")
    return host, number


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class ServeSettings(_Frozen):
    """`serve:`: the service's address, store, schedule and access."""

    listen: str = f"{DEFAULT_HOST}:{DEFAULT_PORT}"
    #: a SQLite file path (default: history.db in state_dir) or a postgresql:// DSN
    store: str | None = None
    #: required in requests (Authorization: Bearer ...) when set; required to bind beyond
    #: localhost
    token: SecretStr | None = None
    #: "i/n": this instance collects the targets whose stable hash falls in shard i of n
    shard: str | None = None
    #: seconds between two runs of a collector, unless it or `collectors` says otherwise
    interval_s: float = Field(default=60.0, gt=0)
    #: a run still going after this many seconds is recorded as failed
    timeout_s: float = Field(default=30.0, gt=0)
    #: each run starts up to this share of its interval late, so collectors spread out
    jitter: float = Field(default=0.1, ge=0, le=1)
    #: seconds between two runs of each target's analysis (its checks, its findings)
    analysis_interval_s: float = Field(default=900.0, gt=0)
    #: seconds an analysis may take
    analysis_timeout_s: float = Field(default=300.0, gt=0)
    #: on SIGTERM, seconds to wait for running collectors before leaving
    shutdown_grace_s: float = Field(default=10.0, ge=0)
    retention: Retention = Retention()
    collectors: dict[str, CollectorOverride] = Field(default_factory=dict)

    @field_validator("listen")
    @classmethod
    def _listen(cls, value: str) -> str:
        parse_listen(value)
        return value

    @field_validator("shard")
    @classmethod
    def _shard(cls, value: str | None) -> str | None:
        if value is not None:
            parse_shard(value)
        return value

    @field_validator("token")
    @classmethod
    def _token(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and len(value.get_secret_value()) < 16:
            raise ValueError("a token needs at least 16 characters")
        return value

    def shard_pair(self) -> tuple[int, int]:
        return parse_shard(self.shard) if self.shard else (0, 1)

    def store_url(self, config: Config) -> str:
        """The store as given, or the default SQLite file under the state directory."""
        if self.store:
            return self.store
        return str(config.resolved_state_dir() / "history.db")


SERVE = ConfigSection(
    "serve",
    ServeSettings,
    "opscope serve: address, history store, token, shard, schedule and retention",
)


def serve_settings(config: Config) -> ServeSettings:
    return SERVE.of(config)


def store_path(url: str) -> Path | None:
    """The SQLite file of a store URL, or None for PostgreSQL."""
    if url.startswith(("postgresql://", "postgres://")) or "=" in url:
        return None
    return Path(url.removeprefix("sqlite:///"))
