"""`opscope serve`: the store, the scheduler and the HTTP side, run together.

SIGTERM and SIGINT stop it gracefully: the server stops accepting, the runs in progress get
`serve.shutdown_grace_s` to finish and be kept, the store is closed. SIGHUP reloads the
config file: a file that does not validate (or whose collectors cannot be built) is
rejected with one line on stderr and the running config stays.
"""

from __future__ import annotations

import hashlib
import logging
import signal
import sys
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from types import FrameType
from typing import Any

import uvicorn
from prometheus_client.metrics_core import Metric

from opscope import __version__
from opscope.config import Config, ConfigError, load_config
from opscope.errors import first_line
from opscope.findings import utc_now
from opscope.monitor.app import create_app
from opscope.monitor.collector import Analysis, Collector
from opscope.monitor.exposition import Exposition, status_families
from opscope.monitor.scheduler import AnalysisCollector, Scheduler
from opscope.monitor.settings import (
    ServeSettings,
    is_loopback,
    parse_listen,
    serve_settings,
)
from opscope.monitor.store import Store, describe_store
from opscope.plugins import PluginError, Plugins
from opscope.redact import redact

log = logging.getLogger("opscope.serve")


class _Server(uvicorn.Server):
    """uvicorn's server, except that a SIGTERM or SIGINT it caught is not raised again once
    it stopped: the service still has its collectors to wait for and its store to close,
    and leaves with status 0."""

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        if self.should_exit and sig == signal.SIGINT:
            self.force_exit = True
        else:
            self.should_exit = True


class ServeError(Exception):
    """The service cannot start as configured; one line."""


def shard_of(kind: str, target: str, count: int) -> int:
    """The shard (0..count-1) that owns a target: a stable hash of its kind and name, the
    same on every instance, every run and every Python (no PYTHONHASHSEED)."""
    digest = hashlib.sha256(f"{kind}\x1f{target}".encode()).digest()
    return int.from_bytes(digest[:8], "big") % count


def owned(items: Sequence[Any], shard: tuple[int, int]) -> list[Any]:
    """The items of shard `shard`; a local one (`local = True`: it reads the machine the
    service runs on, such as the host collector) belongs to every instance, since each
    instance's machine is a target of its own that no other instance can read."""
    index, count = shard
    return [
        c for c in items if getattr(c, "local", False) or shard_of(c.kind, c.target, count) == index
    ]


@dataclass(frozen=True)
class Plan:
    """What one config makes the service run."""

    config: Config
    settings: ServeSettings
    collectors: list[Collector]


def _schedule(c: Any, settings: ServeSettings, interval: float, timeout: float) -> bool:
    """Apply `serve.collectors` to `c` (by name, else by kind); False when disabled."""
    override = settings.collectors.get(c.name) or settings.collectors.get(c.kind)
    if override is not None and not override.enabled:
        return False
    c.interval_s = (override.interval_s if override and override.interval_s else None) or interval
    c.timeout_s = (override.timeout_s if override and override.timeout_s else None) or timeout
    return True


def plan(config: Config, plugins: Plugins) -> Plan:
    """The collectors and analyses of this instance's shard, scheduled as configured.

    Raises ServeError (one line) when an area cannot build them from `config`."""
    settings = serve_settings(config)
    try:
        collectors: list[Collector] = plugins.collectors(config)
        analyses: list[Analysis] = plugins.analyses(config)
    except (PluginError, ValueError, ConfigError) as exc:
        raise ServeError(first_line(exc)) from None
    shard = settings.shard_pair()
    chosen: list[Collector] = []
    for c in owned(collectors, shard):
        if _schedule(c, settings, settings.interval_s, settings.timeout_s):
            chosen.append(c)
    for a in owned(analyses, shard):
        job = AnalysisCollector(a, settings.analysis_interval_s, settings.analysis_timeout_s)
        if _schedule(job, settings, settings.analysis_interval_s, settings.analysis_timeout_s):
            chosen.append(job)
    return Plan(config, settings, chosen)


class Service:
    def __init__(
        self,
        config_path: Path | None,
        config: Config,
        plugins: Plugins,
        *,
        host: str | None = None,
        port: int | None = None,
        clock: Callable[[], datetime] = utc_now,
        env: dict[str, str] | None = None,
    ) -> None:
        self.config_path = config_path
        self.plugins = plugins
        self.clock = clock
        self.env = env
        self.current = plan(config, plugins)
        listen_host, listen_port = parse_listen(self.current.settings.listen)
        self.host = host or listen_host
        self.port = port if port is not None else listen_port
        if not is_loopback(self.host) and self.current.settings.token is None:
            raise ServeError(
                f"binding {self.host} serves beyond this machine: set serve.token first "
                "(requests without it then get 401)"
            )
        self.store_url = self.current.settings.store_url(config)
        self.store: Store | None = None
        self.exposition = Exposition(self._status)
        self.scheduler = Scheduler(
            None,
            self.exposition,
            jitter=self.current.settings.jitter,
            clock=clock,
            housekeeping=self._prune,
        )
        self._reload_lock = threading.Lock()
        self.server: _Server | None = None
        self.reloads = 0
        self.rejected_reloads = 0

    # --- what the HTTP side reads ----------------------------------------------------------

    def token(self) -> str | None:
        token = self.current.settings.token
        return token.get_secret_value() if token is not None else None

    def _status(self) -> list[Metric]:
        return status_families(
            self.scheduler.statuses(), self.scheduler.store_errors, {"version": __version__}
        )

    def scrape(self, gzipped: bool = False) -> bytes:
        return self.exposition.scrape(gzipped)

    # --- life ------------------------------------------------------------------------------

    def open(self) -> None:
        """Open (and migrate) the store, then schedule the collectors."""
        self.store = Store.open(self.store_url)
        self.scheduler.store = self.store
        self.scheduler.set_collectors(self.current.collectors)

    def _prune(self) -> None:
        if self.store is not None:
            self.store.prune(self.clock(), self.current.settings.retention)

    def reload(self) -> bool:
        """Read the config file again; keep the running one if the new one is bad."""
        with self._reload_lock:
            try:
                config = load_config(self.config_path, self.plugins.config, self.env)
                new = plan(config, self.plugins)
            except (ConfigError, ServeError) as exc:
                self.rejected_reloads += 1
                say(f"opscope serve: reload rejected, the running config stays: {exc}")
                return False
            old = self.current.settings
            if new.settings.store_url(config) != self.store_url:
                say("opscope serve: serve.store changed: it takes effect at the next start")
            if new.settings.listen != old.listen:
                say("opscope serve: serve.listen changed: it takes effect at the next start")
            if not is_loopback(self.host) and new.settings.token is None:
                self.rejected_reloads += 1
                say("opscope serve: reload rejected: serving beyond localhost needs serve.token")
                return False
            self.current = new
            self.scheduler.jitter = new.settings.jitter
            self.scheduler.set_collectors(new.collectors)
            self.reloads += 1
            say(f"opscope serve: config reloaded: {len(new.collectors)} collectors")
            return True

    def serve(self) -> None:
        """Run until SIGTERM or SIGINT; SIGHUP reloads the config."""
        self.open()
        app = create_app(self, self.clock)
        config = uvicorn.Config(
            app,
            host=self.host,
            port=self.port,
            log_level="warning",
            access_log=False,
            lifespan="off",
            timeout_graceful_shutdown=5,
        )
        self.server = _Server(config)
        self.scheduler.start()
        if hasattr(signal, "SIGHUP"):
            signal.signal(signal.SIGHUP, lambda *_: threading.Thread(target=self.reload).start())
        say(
            f"opscope serve: listening on http://{self.host}:{self.port}, "
            f"store {describe_store(self.store_url)}, {len(self.current.collectors)} collectors"
            + (f", shard {self.current.settings.shard}" if self.current.settings.shard else "")
        )
        try:
            self.server.run()
        finally:
            self.close()

    def close(self) -> None:
        self.scheduler.stop(self.current.settings.shutdown_grace_s)
        if self.store is not None:
            self.store.close()
        say("opscope serve: stopped")


def say(line: str) -> None:
    sys.stderr.write(redact(line) + "\n")
    sys.stderr.flush()


def configure_logging() -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(message)s"))
    log.addHandler(handler)
    log.setLevel(logging.INFO)
    log.propagate = False
