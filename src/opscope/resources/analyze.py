"""`analyze_resources`: the host, its process groups and disks, the connection pools of its
apps and PgBouncers, and the uptime probes, into a Report (`opscope analyze resources`).

One target, the host opscope runs on, named by its host name: the pools and services it
watches are objects of it."""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from opscope.api.scrape import Samples, ScrapeError
from opscope.api.settings import apis
from opscope.checks import Registry, run_checks
from opscope.config import Config
from opscope.db.connection import ConnectionFactory, TargetConnectionError, connect
from opscope.errors import first_line
from opscope.findings import CheckError, Clock, Report, Target, utc_now
from opscope.fixes import group_fixes
from opscope.plugins import default_plugins
from opscope.redact import redact
from opscope.resources.capacity import Capacity, read_capacity
from opscope.resources.context import KIND, MAIN, ResourcesContext
from opscope.resources.history import DiskHistory, growth
from opscope.resources.host import HostReader, HostSample
from opscope.resources.pgbouncer import BouncerError, Connect, _connect, read_bouncer
from opscope.resources.pools import AppPool, between, scrape, since_start
from opscope.resources.probes import ProbeResult, probe
from opscope.resources.processes import GroupSample, measure
from opscope.resources.settings import (
    PoolSource,
    ResourceSettings,
    ServiceTarget,
    resource_settings,
    services,
)

if TYPE_CHECKING:
    import httpx

#: the parts of a run; `parts` narrows it
PARTS = ("host", "pools", "services")


def app_name(url: str) -> str:
    parts = urlsplit(url)
    host = parts.hostname or "app"
    return f"{host}:{parts.port}" if parts.port else host


def pool_sources(config: Config, metrics_urls: Sequence[str]) -> dict[str, PoolSource]:
    """Apps to read pools from: `resources.pools`, every API with a metrics_url under
    `apis:` (with its database), and URLs given on the command line; one entry per URL."""
    out: dict[str, PoolSource] = dict(resource_settings(config).pools)
    seen = {s.metrics_url for s in out.values()}
    for name, api in apis(config).items():
        if api.metrics_url and api.metrics_url not in seen:
            out[name] = PoolSource(metrics_url=api.metrics_url, database=api.database)
            seen.add(api.metrics_url)
    for url in metrics_urls:
        if url not in seen:
            out[app_name(url)] = PoolSource(metrics_url=url)
            seen.add(url)
    return out


def _round(v: float | None, n: int = 2) -> float | None:
    return None if v is None else round(v, n)


def host_summary(host: HostSample) -> dict[str, Any]:
    return {
        "hostname": host.hostname,
        "cpu_count": host.cpu_count,
        "cpu_percent": round(host.cpu_percent, 1),
        "load": [host.load_1m, host.load_5m, host.load_15m],
        "memory_total_bytes": host.memory_total_bytes,
        "memory_available_bytes": host.memory_available_bytes,
        "memory_used_percent": round(host.memory_used_percent, 1),
        "swap_used_bytes": host.swap_used_bytes,
        "net_bytes_sent": host.net_bytes_sent,
        "net_bytes_recv": host.net_bytes_recv,
        "uptime_s": round(host.uptime_s),
        "sample_s": host.sample_s,
    }


def _summary(ctx: ResourcesContext) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if ctx.host is not None:
        out["host"] = host_summary(ctx.host)
        out["disks"] = [
            {
                "mountpoint": d.mountpoint,
                "total_bytes": d.total_bytes,
                "used_bytes": d.used_bytes,
                "used_share": round(d.used_share, 4),
                "bytes_per_hour": (
                    round(ctx.growth[d.mountpoint].bytes_per_hour)
                    if d.mountpoint in ctx.growth
                    else None
                ),
            }
            for d in ctx.host.disks
        ]
    out["processes"] = [_group(g) for g in ctx.groups]
    out["pools"] = [_pool(p) for p in ctx.pools]
    out["pgbouncer"] = [
        {"name": b.name, "pool_size": b.pool_size, "clients_active": b.cl_active,
         "clients_waiting": b.cl_waiting, "servers_active": b.sv_active,
         "servers_idle": b.sv_idle, "max_wait_s": round(b.maxwait_s, 3),
         "xact_per_s": b.xact_per_s, "xact_ms": _round(b.xact_ms)}
        for b in ctx.bouncers
    ]  # fmt: skip
    out["services"] = [_service(ctx, r) for r in ctx.probes]
    return out


def _group(g: GroupSample) -> dict[str, Any]:
    return {
        "name": g.name,
        "selector": g.selector,
        "processes": len(g.pids),
        "cpu_percent": g.cpu_percent,
        "rss_bytes": g.rss_bytes,
        "threads": g.threads,
        "open_files": g.open_files,
        "note": g.note,
    }


def _pool(p: AppPool) -> dict[str, Any]:
    return {
        "app": p.app,
        "name": p.name,
        "max_size": p.max_size,
        "in_use": p.used,
        "idle": p.idle,
        "waiting": p.pending,
        "processes": p.processes,
        "checkouts": p.requests,
        "queued_share": round(p.queued_share, 4),
        "mean_wait_ms": _round(p.mean_wait_ms),
        "hold_ms": _round(p.hold_ms),
        "timeouts": p.timeouts,
        "load": _round(p.load, 3),
    }


def _service(ctx: ResourcesContext, r: ProbeResult) -> dict[str, Any]:
    lat = r.latencies()
    days = r.days_left(ctx.now)
    return {
        "name": r.name,
        "kind": r.kind,
        "address": r.address,
        "up": r.up,
        "successes": r.successes,
        "attempts": len(r.attempts),
        "latency_ms_median": lat[len(lat) // 2] if lat else None,
        "latency_ms_max": lat[-1] if lat else None,
        "status": next((a.status for a in reversed(r.attempts) if a.status is not None), None),
        "error": r.last_error(),
        "tls_days_left": _round(days, 1),
    }


def analyze_resources(
    config: Config,
    *,
    metrics_urls: Sequence[str] = (),
    window_s: float | None = None,
    parts: Sequence[str] = PARTS,
    only: Sequence[str] | None = None,
    registry: Registry | None = None,
    reader: HostReader | None = None,
    cgroup_root: Path = Path("/sys/fs/cgroup"),
    client: httpx.Client | None = None,
    probe_client: Callable[[ServiceTarget], httpx.Client] | None = None,
    bouncer_connect: Connect = _connect,
    db_connect: ConnectionFactory = connect,
    clock: Clock = utc_now,
    sleep: Callable[[float], None] = time.sleep,
    echo: Callable[[str], None] = lambda _: None,
) -> Report:
    """The resources report of this host. Nothing here raises for a part that cannot be
    read (a pool's /metrics, a PgBouncer, a database): it becomes an entry in `errors`.
    Raises ValueError for an unknown check in `only` or part in `parts`."""
    import httpx

    unknown = [p for p in parts if p not in PARTS]
    if unknown:
        raise ValueError(f"unknown part {unknown[0]!r} (expected: {', '.join(PARTS)})")
    settings = resource_settings(config)
    registry = registry or default_plugins().checks
    checks = registry.select(KIND, MAIN, only)
    reader = reader or HostReader(sleep=sleep, mountpoints=settings.disks)
    name = reader.hostname()
    report = Report(generated_at=clock())
    errors: list[CheckError] = []
    ctx = ResourcesContext(target=name, now=clock(), settings=settings)

    sources = pool_sources(config, metrics_urls) if "pools" in parts else {}
    own_client = client is None
    http = client or httpx.Client(timeout=settings.timeout_s)
    try:
        # with a window, the pools' first scrape, the host's sample and the second scrape
        # cover the same span: one wait for all of them
        first: dict[str, Samples] = {}
        if window_s:
            for app, source in sources.items():
                try:
                    first[app] = scrape(app, source.metrics_url, http)
                except ScrapeError as exc:
                    errors.append(
                        CheckError(check="pool_saturation", target=name, message=str(exc))
                    )
        started = time.monotonic()
        if "host" in parts:
            _host(config, settings, reader, ctx, errors, window_s, clock, sleep, echo, cgroup_root)
        elif window_s and first:
            echo(f"scraping the pools again in {window_s:g} s")
            sleep(window_s)
        elapsed = time.monotonic() - started
        for app, source in sources.items():
            if window_s and app not in first:
                continue
            try:
                samples = scrape(app, source.metrics_url, http)
            except ScrapeError as exc:
                errors.append(CheckError(check="pool_saturation", target=name, message=str(exc)))
                continue
            if window_s:
                ctx.pools.extend(between(app, first[app], samples, elapsed))
            else:
                ctx.pools.extend(since_start(app, samples, clock().timestamp()))
            if source.database:
                _capacity(config, app, source.database, db_connect, ctx, errors)
    finally:
        if own_client:
            http.close()
    if "pools" in parts:
        for bname, bouncer in settings.pgbouncer.items():
            try:
                ctx.bouncers.extend(read_bouncer(bname, bouncer.admin_dsn, bouncer_connect))
            except BouncerError as exc:
                errors.append(CheckError(check="pool_saturation", target=name, message=str(exc)))
                continue
            if bouncer.database:
                _capacity(config, bname, bouncer.database, db_connect, ctx, errors)

    if "services" in parts:
        for sname, target in services(config).items():
            ctx.probes.append(
                probe(
                    sname,
                    target,
                    client_factory=probe_client,
                    slow_ms=settings.thresholds.slow_probe_ms,
                )
            )

    report.targets.append(Target(kind=KIND, name=name))
    findings, check_errors = run_checks(checks, ctx, target=name)
    report.findings.extend(findings)
    report.errors.extend([*errors, *check_errors])
    report.summary[name] = _summary(ctx)
    report.fixes = group_fixes(report.findings)
    return report


def pool_error(target: str, message: str) -> CheckError:
    return CheckError(check="pool_saturation", target=target, message=message)


def _host(
    config: Config,
    settings: ResourceSettings,
    reader: HostReader,
    ctx: ResourcesContext,
    errors: list[CheckError],
    window_s: float | None,
    clock: Clock,
    sleep: Callable[[float], None],
    echo: Callable[[str], None],
    cgroup_root: Path,
) -> None:
    """The host's sample (over the window, when one is given), its disks' growth and the
    process groups."""
    history = DiskHistory.open(config.resolved_state_dir(), ctx.target)
    previous = history.previous
    if window_s:
        echo(f"sampling the host for {window_s:g} s")
        before = reader.disks()
        start = clock()
        host = reader.sample(window_s)
        previous = {d.mountpoint: (start, d.used_bytes) for d in before}
    else:
        host = reader.sample(settings.sample_s)
    ctx.host = host
    taken = clock()
    ctx.growth = growth(previous, host.disks, taken)
    history.save(host.disks, taken)
    if history.save_error:
        errors.append(
            CheckError(check="disk_filling", target=ctx.target, message=history.save_error)
        )
    if settings.processes:
        ctx.groups = measure(
            settings.processes,
            settings.sample_s,
            sleep=sleep,
            own=os.getpid(),
            cgroup_root=cgroup_root,
        )


def _capacity(
    config: Config,
    owner: str,
    database: str,
    db_connect: ConnectionFactory,
    ctx: ResourcesContext,
    errors: list[CheckError],
) -> None:
    try:
        capacity: Capacity = read_capacity(config, database, db_connect)
    except TargetConnectionError as exc:
        errors.append(CheckError(check="pool_saturation", target=ctx.target, message=str(exc)))
        return
    except Exception as exc:  # a refusal by the server must not take the report down
        errors.append(
            CheckError(
                check="pool_saturation",
                target=ctx.target,
                message=redact(f"{database}: {first_line(exc)}"),
            )
        )
        return
    ctx.capacity[owner] = capacity
