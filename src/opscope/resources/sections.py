"""How the resources target's summary reads in the human formats: the host's headline
figures, then tables of process groups, disks, connection pools and services."""

from __future__ import annotations

from typing import Any

from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text

from opscope.display import visible
from opscope.findings import Report, Target
from opscope.report.html import template_environment
from opscope.report.markdown import inline
from opscope.report.terminal import label_grid
from opscope.resources.context import KIND
from opscope.units import human_bytes, human_ms, human_number

_env = template_environment("opscope.resources")


def _pct(value: Any, scale: float = 1.0) -> str:
    return f"{value * scale:.0f}%" if isinstance(value, int | float) else "-"


def _ms(value: Any) -> str:
    return human_ms(float(value)) if isinstance(value, int | float) else "-"


def _num(value: Any) -> str:
    return human_number(value) if isinstance(value, int | float) else "-"


def _bytes(value: Any) -> str:
    return human_bytes(value) if isinstance(value, int | float) else "-"


def headline(summary: dict[str, Any]) -> list[tuple[str, str]]:
    host = summary.get("host")
    if not isinstance(host, dict):
        return []
    load = host.get("load") or []
    return [
        ("cpu", f"{_pct(host.get('cpu_percent'))} busy of {host.get('cpu_count')} cores over "
                f"{host.get('sample_s')} s; load {' / '.join(f'{x:.2f}' for x in load)}"),
        ("memory", f"{_pct(host.get('memory_used_percent'))} used of "
                   f"{_bytes(host.get('memory_total_bytes'))}, "
                   f"{_bytes(host.get('memory_available_bytes'))} available, swap used "
                   f"{_bytes(host.get('swap_used_bytes'))}"),
        ("uptime", f"{(host.get('uptime_s') or 0) / 86400:.1f} days"),
    ]  # fmt: skip


def tables(summary: dict[str, Any]) -> list[tuple[str, tuple[str, ...], list[tuple[str, ...]]]]:
    out: list[tuple[str, tuple[str, ...], list[tuple[str, ...]]]] = []
    groups = summary.get("processes") or []
    if groups:
        out.append((
            "process groups", ("group", "processes", "CPU", "resident", "threads", "chosen by"),
            [(str(g["name"]), _num(g["processes"]), _pct(g["cpu_percent"]),
              _bytes(g["rss_bytes"]), _num(g["threads"]), str(g.get("note") or g["selector"]))
             for g in groups],
        ))  # fmt: skip
    disks = summary.get("disks") or []
    if disks:
        out.append((
            "disks", ("mount", "size", "used", "growth/h"),
            [(str(d["mountpoint"]), _bytes(d["total_bytes"]), _pct(d["used_share"], 100),
              _bytes(d["bytes_per_hour"]) if d.get("bytes_per_hour") is not None else "-")
             for d in disks],
        ))  # fmt: skip
    pools = summary.get("pools") or []
    if pools:
        out.append((
            "connection pools", ("app / pool", "max", "in use", "waiting", "checkouts", "waited",
                                 "mean wait", "held", "busy (Little)"),
            [(f"{p['app']} / {p['name']}", _num(p["max_size"]), _num(p["in_use"]),
              _num(p["waiting"]), _num(p["checkouts"]), _pct(p["queued_share"], 100),
              _ms(p["mean_wait_ms"]), _ms(p["hold_ms"]), _num(p["load"]))
             for p in pools],
        ))  # fmt: skip
    bouncers = summary.get("pgbouncer") or []
    if bouncers:
        out.append((
            "PgBouncer pools", ("pool", "size", "clients", "waiting", "servers active",
                                "longest wait", "xact/s", "xact"),
            [(str(b["name"]), _num(b["pool_size"]), _num(b["clients_active"]),
              _num(b["clients_waiting"]), _num(b["servers_active"]), f"{b['max_wait_s']:.1f} s",
              _num(b["xact_per_s"]), _ms(b["xact_ms"]))
             for b in bouncers],
        ))  # fmt: skip
    probes = summary.get("services") or []
    if probes:
        out.append((
            "services", ("service", "up", "answered", "latency", "status", "TLS days", "error"),
            [(str(s["name"]), "yes" if s["up"] else "NO", f"{s['successes']}/{s['attempts']}",
              _ms(s["latency_ms_median"]), _num(s["status"]), _num(s["tls_days_left"]),
              str(s.get("error") or ""))
             for s in probes],
        ))  # fmt: skip
    return out


class ResourcesSection:
    id = "summary"
    kind = KIND

    def terminal(self, report: Report, target: Target) -> RenderableType | None:
        summary = report.summary.get(target.name, {})
        parts: list[RenderableType] = [
            Text(visible(f"{target.kind} · {target.name}"), style="bold")
        ]
        grid = label_grid(headline(summary))
        parts.append(grid)
        for title, columns, rows in tables(summary):
            table = Table(title=title, title_justify="left", show_edge=False)
            for c in columns:
                table.add_column(c)
            for row in rows:
                table.add_row(*(Text(visible(cell)) for cell in row))
            parts.append(table)
        parts.append(Text(""))
        return Group(*parts)

    def markdown(self, report: Report, target: Target) -> str:
        summary = report.summary.get(target.name, {})
        out: list[str] = []
        rows = headline(summary)
        if rows:
            out += ["| | |", "|---|---|", *(f"| {k} | {inline(v)} |" for k, v in rows), ""]
        for title, columns, body in tables(summary):
            out.append(f"**{title}**")
            out.append("")
            out.append("| " + " | ".join(columns) + " |")
            out.append("|" + "---|" * len(columns))
            out += ["| " + " | ".join(inline(c) for c in row) + " |" for row in body]
            out.append("")
        return "\n".join(out).rstrip("\n")

    def html(self, report: Report, target: Target) -> str:
        summary = report.summary.get(target.name, {})
        return _env.get_template("resources_summary.html.j2").render(
            target=target, rows=headline(summary), tables=tables(summary)
        )
