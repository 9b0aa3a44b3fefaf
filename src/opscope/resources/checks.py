"""The resources checks: the host's CPU, memory and disks, process groups over their limits,
connection pools that make requests wait (with their size from Little's law), services
that do not answer and certificates about to expire."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any, ClassVar

from opscope.findings import Finding, Severity
from opscope.resources.capacity import Capacity
from opscope.resources.context import KIND, ResourcesContext
from opscope.resources.pgbouncer import BouncerPool
from opscope.resources.pools import AppPool
from opscope.resources.sizing import Sizing, size_pool
from opscope.units import human_bytes


class ResourceCheck:
    id: ClassVar[str]
    category: ClassVar[str]
    summary: ClassVar[str]
    kind: ClassVar[str] = KIND

    def run(self, context: ResourcesContext) -> Iterable[Finding]:
        raise NotImplementedError

    def finding(
        self,
        context: ResourcesContext,
        *,
        severity: Severity,
        object: str,
        title: str,
        key: Sequence[object] = (),
        **fields: Any,
    ) -> Finding:
        return Finding.make(
            check=self.id,
            category=self.category,
            severity=severity,
            target=context.target,
            object=object,
            title=title,
            key=key,
            **fields,
        )


def _top_groups(context: ResourcesContext, key: str) -> list[dict[str, Any]]:
    ordered = sorted(context.groups, key=lambda g: -float(getattr(g, key)))
    return [
        {"group": g.name, "cpu_percent": g.cpu_percent, "rss_bytes": g.rss_bytes,
         "processes": len(g.pids)}
        for g in ordered[:5] if g.pids
    ]  # fmt: skip


class HighCpu(ResourceCheck):
    id = "high_cpu"
    category = "host"
    summary = (
        "The host's CPU was at least resources.thresholds.cpu_percent (90%) busy over the "
        "sample (critical from 98%), or a process group used more than its own cpu_percent "
        "(percent of one core)."
    )

    def run(self, context: ResourcesContext) -> Iterable[Finding]:
        host = context.host
        limit = context.thresholds.cpu_percent
        if host is not None and host.cpu_percent >= limit:
            yield self.finding(
                context,
                severity=Severity.critical if host.cpu_percent >= 98 else Severity.warning,
                object="cpu",
                title=f"CPU {host.cpu_percent:.0f}% busy on {host.cpu_count} cores "
                f"(load {host.load_1m:.1f})",
                detail=(
                    f"Over {host.sample_s:g} s the cores were {host.cpu_percent:.1f}% busy; the "
                    f"load average is {host.load_1m:.2f} / {host.load_5m:.2f} / "
                    f"{host.load_15m:.2f} (1, 5, 15 min). Requests queue for the CPU: latency "
                    "grows with every process that waits."
                ),
                evidence={
                    "cpu_percent": round(host.cpu_percent, 1),
                    "cpu_count": host.cpu_count,
                    "load_1m": host.load_1m,
                    "load_5m": host.load_5m,
                    "load_15m": host.load_15m,
                    "groups": _top_groups(context, "cpu_percent"),
                },
                recommendation=(
                    "Find what uses it (the groups above, `top`); spread the work over more "
                    "cores or hosts, or cut it: a slow query's plan, an N+1, a busy loop."
                ),
            )
        for group in context.groups:
            cap = context.settings.processes[group.name].cpu_percent
            if cap is None or not group.pids or group.cpu_percent < cap:
                continue
            yield self.finding(
                context,
                severity=Severity.warning,
                object=f"process:{group.name}",
                title=(
                    f"{group.name} uses {group.cpu_percent:.0f}% CPU over {len(group.pids)} "
                    f"process{'es' if len(group.pids) > 1 else ''} (limit {cap:g}%)"
                ),
                detail=f"Chosen by {group.selector}; percent of one core, as top shows it.",
                evidence={
                    "cpu_percent": group.cpu_percent,
                    "limit_percent": cap,
                    "pids": list(group.pids),
                    "selector": group.selector,
                },
                recommendation=(
                    "Profile it (py-spy dump --pid N for Python workers); add workers or hosts "
                    "if the load is real."
                ),
            )


class HighMemory(ResourceCheck):
    id = "high_memory"
    category = "host"
    summary = (
        "At least resources.thresholds.memory_percent (90%) of the host's memory is in use "
        "(not available without swapping; critical from 97%), or a process group's resident "
        "memory exceeds its own memory_bytes."
    )

    def run(self, context: ResourcesContext) -> Iterable[Finding]:
        host = context.host
        limit = context.thresholds.memory_percent
        if host is not None and host.memory_used_percent >= limit:
            used = host.memory_total_bytes - host.memory_available_bytes
            yield self.finding(
                context,
                severity=Severity.critical if host.memory_used_percent >= 97 else Severity.warning,
                object="memory",
                title=(
                    f"Memory {host.memory_used_percent:.0f}% used "
                    f"({human_bytes(used)} of {human_bytes(host.memory_total_bytes)})"
                ),
                detail=(
                    f"{human_bytes(host.memory_available_bytes)} is available without "
                    f"swapping; swap in use: {human_bytes(host.swap_used_bytes)}. Next comes "
                    "swapping, then the kernel's out-of-memory killer."
                ),
                evidence={
                    "memory_total_bytes": host.memory_total_bytes,
                    "memory_available_bytes": host.memory_available_bytes,
                    "memory_used_percent": round(host.memory_used_percent, 1),
                    "swap_used_bytes": host.swap_used_bytes,
                    "groups": _top_groups(context, "rss_bytes"),
                },
                recommendation=(
                    "Find what holds it (the groups above); cap workers' memory (gunicorn "
                    "--max-requests, fewer workers), and keep PostgreSQL's shared_buffers plus "
                    "work_mem x connections within what the host has."
                ),
            )
        for group in context.groups:
            cap = context.settings.processes[group.name].memory_bytes
            if cap is None or not group.pids or group.rss_bytes < cap:
                continue
            yield self.finding(
                context,
                severity=Severity.warning,
                object=f"process:{group.name}",
                title=(
                    f"{group.name} holds {human_bytes(group.rss_bytes)} resident "
                    f"(limit {human_bytes(cap)})"
                ),
                detail=f"{len(group.pids)} processes chosen by {group.selector}.",
                evidence={
                    "rss_bytes": group.rss_bytes,
                    "limit_bytes": cap,
                    "memory_percent": group.memory_percent,
                    "pids": list(group.pids),
                    "selector": group.selector,
                },
                recommendation=(
                    "Look for what grows (a cache without a bound, a leak: tracemalloc, "
                    "memray); recycle workers after N requests."
                ),
            )


def _hours(hours: float) -> str:
    return f"{hours:.1f} h" if hours < 48 else f"{hours / 24:.1f} days"


class DiskFilling(ResourceCheck):
    id = "disk_filling"
    category = "host"
    summary = (
        "A disk fills at resources.thresholds.disk_min_growth_bytes_per_hour (1 MiB/h) or "
        "more and, at that rate, is full within disk_full_warning_hours (7 days; critical "
        "within disk_full_critical_hours, 24 h). The rate is measured between two samples "
        "(--window) or since the previous run."
    )

    def run(self, context: ResourcesContext) -> Iterable[Finding]:
        host = context.host
        if host is None:
            return
        t = context.thresholds
        for disk in host.disks:
            grow = context.growth.get(disk.mountpoint)
            if grow is None or grow.bytes_per_hour < max(t.disk_min_growth_bytes_per_hour, 1e-9):
                continue
            hours = disk.free_bytes / grow.bytes_per_hour
            if hours > t.disk_full_warning_hours:
                continue
            yield self.finding(
                context,
                severity=(
                    Severity.critical if hours <= t.disk_full_critical_hours else Severity.warning
                ),
                object=f"disk:{disk.mountpoint}",
                title=(
                    f"{disk.mountpoint} is full in {_hours(hours)} at "
                    f"{human_bytes(grow.bytes_per_hour)}/h ({disk.used_share:.0%} used)"
                ),
                detail=(
                    f"{human_bytes(disk.free_bytes)} free of {human_bytes(disk.total_bytes)}; "
                    f"it grew {human_bytes(grow.bytes_per_hour * grow.over_hours)} over the last "
                    f"{_hours(grow.over_hours)}."
                ),
                evidence={
                    "mountpoint": disk.mountpoint,
                    "device": disk.device,
                    "total_bytes": disk.total_bytes,
                    "free_bytes": disk.free_bytes,
                    "bytes_per_hour": round(grow.bytes_per_hour),
                    "measured_over_s": round(grow.over_hours * 3600, 3),
                    "hours_until_full": round(hours, 2),
                },
                recommendation=(
                    "Find what grows (du -x on the mount: logs, WAL held by a replication "
                    "slot, temp files); rotate or remove it, or grow the disk before it fills."
                ),
            )


def _capacity_text(capacity: Capacity | None, own: int, total: int) -> tuple[str, int | None]:
    if capacity is None:
        return "", None
    free = capacity.free_for(own)
    if total <= free:
        return (
            f" {capacity.database} can take it: {free} of its {capacity.usable} usable slots "
            "are free for this pool.",
            free,
        )
    return (
        f" {capacity.database} cannot: only {free} of its {capacity.usable} usable slots are "
        "free for this pool. Put PgBouncer (pool_mode = transaction) between them, or make the "
        "time each request holds a connection shorter.",
        free,
    )


def _sizing_evidence(sizing: Sizing) -> dict[str, Any]:
    return {
        "offered_load_connections": round(sizing.load, 3),
        "processes": sizing.processes,
        "recommended_per_process": sizing.per_process,
        "recommended_total": sizing.total,
        "wait_probability_now": round(sizing.wait_now, 3),
        "wait_probability_recommended": round(sizing.wait_advised, 3),
    }


class PoolSaturation(ResourceCheck):
    id = "pool_saturation"
    category = "pools"
    summary = (
        "A connection pool made checkouts wait: at least resources.thresholds.pool_wait_share "
        "(5%) of at least pool_min_requests (20) checkouts found no free connection, or some "
        "timed out; for PgBouncer, clients waiting at least pgbouncer_max_wait_s (1 s) for a "
        "server connection. The size advised comes from Little's law (checkout rate x hold "
        "time; request rate x database time per request) and the Erlang C formula, compared "
        "with the connections the database can still take."
    )

    def run(self, context: ResourcesContext) -> Iterable[Finding]:
        t = context.thresholds
        for pool in context.pools:
            if pool.requests < t.pool_min_requests:
                continue
            if pool.queued_share < t.pool_wait_share and not pool.timeouts:
                continue
            yield self._app(context, pool)
        for bouncer in context.bouncers:
            if bouncer.cl_waiting <= 0 or bouncer.maxwait_s < t.pgbouncer_max_wait_s:
                continue
            yield self._bouncer(context, bouncer)

    def _app(self, context: ResourcesContext, pool: AppPool) -> Finding:
        t = context.thresholds
        per_process = max(1, round(pool.max_size / pool.processes)) if pool.max_size else 1
        load = pool.load
        sizing = (
            size_pool(
                load,
                pool.processes,
                per_process,
                t.pool_target_wait_probability,
                # it made checkouts wait: whatever the average says, it needs more than it has
                at_least=per_process + 1,
            )
            if load
            else None
        )
        capacity = context.capacity.get(pool.app)
        advice = ""
        evidence: dict[str, Any] = {
            "app": pool.app,
            "pool": pool.name,
            "max_size": pool.max_size,
            "max_size_per_process": per_process,
            "in_use": pool.used,
            "waiting_now": pool.pending,
            "checkouts": pool.requests,
            "queued": pool.queued,
            "queued_share": round(pool.queued_share, 3),
            "mean_wait_ms": None if pool.mean_wait_ms is None else round(pool.mean_wait_ms, 2),
            "timeouts": pool.timeouts,
            "elapsed_s": None if pool.elapsed_s is None else round(pool.elapsed_s, 1),
            "checkout_rate_per_s": None
            if pool.checkout_rate is None
            else round(pool.checkout_rate, 3),
            "hold_ms": None if pool.hold_ms is None else round(pool.hold_ms, 2),
            "app_request_rate_x_db_time": None
            if pool.http_load is None
            else round(pool.http_load, 3),
        }
        recommendation = "Give the pool more connections, or hold each for less time."
        if sizing is not None:
            evidence.update(_sizing_evidence(sizing))
            text, free = _capacity_text(capacity, pool.used + pool.idle, sizing.total)
            if capacity is not None:
                evidence["database"] = capacity.database
                evidence["database_usable"] = capacity.usable
                evidence["database_free_for_pool"] = free
            rate = pool.checkout_rate or 0.0
            alone = sum(p.app == pool.app for p in context.pools) == 1
            queries = (
                f" ({pool.http_load:.2f} of them in queries: request rate x database time per "
                "request)"
                if alone and pool.http_load is not None
                else ""
            )
            span = (
                f"over the {pool.elapsed_s:.0f} s window"
                if pool.windowed
                else "since the app began recording (--window measures a busy period alone)"
            )
            advice = (
                f" Little's law: {rate:.1f} checkouts/s x {pool.hold_ms or 0:.1f} ms held = "
                f"{sizing.load:.2f} connections busy on average {span}{queries}. Erlang C: at "
                f"that load {per_process} per process make a checkout wait "
                f"{sizing.wait_now:.0%} of the time, {sizing.per_process} "
                f"{sizing.wait_advised:.1%}.{text}"
            )
            recommendation = (
                f"Set the pool's size to {sizing.per_process} per process "
                f"(max_size={sizing.per_process} for psycopg_pool; pool_size + max_overflow = "
                f"{sizing.per_process} for SQLAlchemy), {sizing.total} connections in all."
            )
            if free is not None and sizing.total > free:
                recommendation = (
                    f"The database cannot give {sizing.total} connections: put PgBouncer "
                    "(pool_mode = transaction) in front, and shorten what a request does while "
                    "it holds its connection."
                )
        severity = Severity.critical if pool.timeouts else Severity.warning
        return self.finding(
            context,
            severity=severity,
            object=f"pool:{pool.app}/{pool.name}",
            title=(
                f"Pool {pool.name} of {pool.app} ran out: {pool.queued_share:.0%} of "
                f"{pool.requests:,.0f} checkouts waited"
                + (f", {pool.timeouts:,.0f} timed out" if pool.timeouts else "")
            ),
            detail=(
                f"{pool.max_size} connections over {pool.processes} process"
                f"{'es' if pool.processes > 1 else ''}; waits took "
                f"{pool.mean_wait_ms or 0:.1f} ms on average." + advice
            ),
            evidence=evidence,
            recommendation=recommendation,
        )

    def _bouncer(self, context: ResourcesContext, b: BouncerPool) -> Finding:
        t = context.thresholds
        size = b.pool_size or max(1, b.sv_active + b.sv_idle + b.sv_used)
        load = b.load
        evidence: dict[str, Any] = {
            "pgbouncer": b.bouncer,
            "database": b.database,
            "user": b.user,
            "pool_mode": b.pool_mode,
            "pool_size": b.pool_size,
            "clients_active": b.cl_active,
            "clients_waiting": b.cl_waiting,
            "servers_active": b.sv_active,
            "servers_idle": b.sv_idle,
            "max_wait_s": round(b.maxwait_s, 3),
            "xact_per_s": b.xact_per_s,
            "xact_ms": b.xact_ms,
            "avg_wait_ms": b.wait_ms,
        }
        advice = ""
        recommendation = "Raise default_pool_size (or the database's pool_size) in pgbouncer.ini."
        if load:
            sizing = size_pool(load, 1, size, t.pool_target_wait_probability, at_least=size + 1)
            evidence.update(_sizing_evidence(sizing))
            capacity = context.capacity.get(b.bouncer)
            text, free = _capacity_text(capacity, b.sv_active + b.sv_idle + b.sv_used, sizing.total)
            if capacity is not None:
                evidence["database_usable"] = capacity.usable
                evidence["database_free_for_pool"] = free
            advice = (
                f" Little's law: {b.xact_per_s or 0:.1f} transactions/s x {b.xact_ms or 0:.1f} "
                f"ms = {load:.2f} server connections busy; {sizing.per_process} keep the chance "
                f"of waiting under {t.pool_target_wait_probability:.0%}.{text}"
            )
            recommendation = (
                f"Set pool_size = {sizing.per_process} for {b.database} in pgbouncer.ini."
            )
        return self.finding(
            context,
            severity=Severity.warning,
            object=f"pgbouncer:{b.name}",
            title=(
                f"PgBouncer {b.bouncer}: {b.cl_waiting} client{'s' if b.cl_waiting > 1 else ''} "
                f"waiting for {b.database} (longest {b.maxwait_s:.1f} s), pool_size {size}"
            ),
            detail=(
                f"{b.cl_active} clients have a server connection, {b.cl_waiting} wait for one "
                f"({b.pool_mode or '?'} pooling)." + advice
            ),
            evidence=evidence,
            recommendation=recommendation,
        )


class ServiceDown(ResourceCheck):
    id = "service_down"
    category = "uptime"
    summary = (
        "A service under `services:` did not answer as expected (the status in `expect`, "
        "any 2xx/3xx by default; for TCP, a connection and the expected text) in any of its "
        "attempts (critical), or failed some of them (warning)."
    )

    def run(self, context: ResourcesContext) -> Iterable[Finding]:
        for result in context.probes:
            failed = len(result.attempts) - result.successes
            if not failed:
                continue
            down = not result.up
            reason = result.last_error() or "no answer"
            yield self.finding(
                context,
                severity=Severity.critical if down else Severity.warning,
                object=f"service:{result.name}",
                title=(
                    f"{result.name} is down: {reason}"
                    if down
                    else f"{result.name} failed {failed} of {len(result.attempts)} probes: {reason}"
                ),
                detail=f"{result.kind.upper()} probe of {result.address}.",
                evidence={
                    "address": result.address,
                    "kind": result.kind,
                    "attempts": [
                        {
                            "ok": a.ok,
                            "latency_ms": a.latency_ms,
                            "status": a.status,
                            "error": a.error,
                        }
                        for a in result.attempts
                    ],
                },
                recommendation=(
                    "Check the service's process and logs; its health endpoint should answer "
                    "fast and only report what it needs to serve."
                ),
            )


class TlsExpiring(ResourceCheck):
    id = "tls_expiring"
    category = "uptime"
    summary = (
        "An HTTPS service's certificate expires within resources.thresholds.tls_warning_days "
        "(14; critical within tls_critical_days, 3), or has expired."
    )

    def run(self, context: ResourcesContext) -> Iterable[Finding]:
        t = context.thresholds
        for result in context.probes:
            days = result.days_left(context.now)
            if days is None:
                if result.tls_error and "expired" in result.tls_error:
                    yield self._finding(context, result, None, Severity.critical)
                continue
            if days > t.tls_warning_days:
                continue
            severity = Severity.critical if days <= t.tls_critical_days else Severity.warning
            yield self._finding(context, result, days, severity)

    def _finding(
        self, context: ResourcesContext, result: Any, days: float | None, severity: Severity
    ) -> Finding:
        when = "has expired" if days is None or days < 0 else f"expires in {days:.1f} days"
        expires = result.tls_expires.isoformat() if result.tls_expires else None
        return self.finding(
            context,
            severity=severity,
            object=f"service:{result.name}",
            title=f"The certificate of {result.name} {when}",
            detail=(
                f"{result.address} presents {result.tls_subject or 'its certificate'}"
                + (f", valid until {expires}." if expires else f": {result.tls_error}.")
            ),
            evidence={
                "address": result.address,
                "days_left": None if days is None else round(days, 2),
                "not_after": expires,
                "subject": result.tls_subject,
            },
            recommendation="Renew it (and automate renewal: certbot, cert-manager).",
        )


CHECKS = [HighCpu(), HighMemory(), DiskFilling(), PoolSaturation(), ServiceDown(), TlsExpiring()]
