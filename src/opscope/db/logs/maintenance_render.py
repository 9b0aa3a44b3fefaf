"""The autovacuum and checkpoint section of a log report (`summary.log.maintenance`), in
the terminal, Markdown and HTML; the JSON carries the summary itself."""

from __future__ import annotations

from typing import Any

from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text

from opscope.db.logs.findings import KIND
from opscope.display import visible
from opscope.findings import Report, Target
from opscope.report.html import template_environment
from opscope.units import human_bytes

_env = template_environment("opscope.db")
#: tables listed in the terminal and Markdown (the JSON has the top list)
SHOWN_TABLES = 10


def _maintenance(report: Report) -> dict[str, Any] | None:
    log = report.summary.get("log")
    found = log.get("maintenance") if isinstance(log, dict) else None
    return found if isinstance(found, dict) else None


def _figure(value: Any, unit: str = "") -> str:
    return "-" if value is None else f"{value:g}{unit}"


def _every(interval_s: Any) -> str:
    """Intervals are counted in whole seconds: 0 is under one."""
    if interval_s is None:
        return "-"
    return "<1 s" if interval_s < 1 else f"{interval_s:g} s"


def checkpoint_line(checkpoints: dict[str, Any]) -> str:
    """Checkpoints in one line: how many, how often, started by what, how long, how far."""
    triggers = ", ".join(f"{k} {n:,}" for k, n in checkpoints["by_trigger"].items() if n)
    distance = checkpoints.get("mean_distance_kb")
    line = (
        f"checkpoints: {checkpoints['started']:,} started"
        + (f" ({triggers})" if triggers else "")
        + f", {_figure(checkpoints.get('per_hour'))} per hour, "
        f"every {_every(checkpoints.get('interval_p50_s'))} (median), "
        f"write+sync {_figure(checkpoints.get('mean_total_s'), ' s')} on average "
        f"(max {_figure(checkpoints.get('max_total_s'), ' s')}), "
        f"distance {human_bytes(distance * 1024) if distance is not None else '-'} on average"
    )
    if checkpoints.get("too_frequent_warnings"):
        line += f"; {checkpoints['too_frequent_warnings']:,} 'occurring too frequently' warnings"
    return line


def _table_rows(autovacuum: dict[str, Any]) -> list[list[str]]:
    return [
        [
            visible(f"{t['database']}.{t['table']}" if t.get("database") else t["table"]),
            f"{t['vacuums']:,}",
            f"{t['vacuum_total_s']:g} s / {t['vacuum_max_s']:g} s",
            f"{t['tuples_removed']:,}",
            f"{t['analyzes']:,} ({t['analyze_max_s']:g} s)",
        ]
        for t in autovacuum["by_table"][:SHOWN_TABLES]
    ]


_COLUMNS = ("table", "vacuums", "total / longest", "tuples removed", "analyzes (longest)")


def maintenance_terminal(found: dict[str, Any]) -> list[RenderableType]:
    autovacuum, checkpoints = found["autovacuum"], found["checkpoints"]
    out: list[RenderableType] = []
    if autovacuum["tables"]:
        table = Table(
            title=f"Autovacuum ({autovacuum['vacuums']:,} vacuums, {autovacuum['analyzes']:,} "
            f"analyzes of {autovacuum['tables']:,} tables)",
            title_justify="left",
        )
        for column in _COLUMNS:
            if column == "table":
                table.add_column(column, overflow="fold", min_width=44)
            else:
                table.add_column(column, justify="right", no_wrap=True)
        for row in _table_rows(autovacuum):
            table.add_row(Text(row[0]), *row[1:])
        out.append(table)
    if checkpoints["started"] or checkpoints["completed"]:
        out.append(Text(checkpoint_line(checkpoints)))
    out.append(Text(""))
    return out


def maintenance_markdown(found: dict[str, Any]) -> str:
    autovacuum, checkpoints = found["autovacuum"], found["checkpoints"]
    out = ["### Autovacuum and checkpoints", ""]
    if autovacuum["tables"]:
        out += [
            "| " + " | ".join(_COLUMNS) + " |",
            "|---|" + "---:|" * (len(_COLUMNS) - 1),
        ]
        for row in _table_rows(autovacuum):
            out.append("| " + " | ".join(c.replace("|", "\\|") for c in row) + " |")
        out.append("")
    if checkpoints["started"] or checkpoints["completed"]:
        out += [checkpoint_line(checkpoints) + ".", ""]
    return "\n".join(out) + "\n"


class MaintenanceSection:
    """Autovacuum per table and checkpoints, from a server log (`opscope logs`)."""

    id = "maintenance"
    kind = KIND

    def terminal(self, report: Report, target: Target) -> RenderableType | None:
        found = _maintenance(report)
        return Group(*maintenance_terminal(found)) if found else None

    def markdown(self, report: Report, target: Target) -> str:
        found = _maintenance(report)
        return maintenance_markdown(found) if found else ""

    def html(self, report: Report, target: Target) -> str:
        found = _maintenance(report)
        if not found:
            return ""
        return _env.get_template("log_maintenance.html.j2").render(
            target=target, found=found, tables=found["autovacuum"]["by_table"]
        )
