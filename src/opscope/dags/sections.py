"""How a pipeline target's summary reads in the human formats: what was read, a table of the
DAGs (run times, critical path), and Gantt charts of their latest and slowest runs."""

from __future__ import annotations

from typing import Any

from rich.console import Group, RenderableType
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from opscope.dags.context import KIND
from opscope.dags.gantt import svg_layout, terminal_chart
from opscope.dags.timefmt import seconds_text
from opscope.display import visible
from opscope.findings import Report, Target
from opscope.report.html import template_environment
from opscope.report.markdown import fence, inline
from opscope.report.terminal import label_grid

_env = template_environment("opscope.dags")


def summary_lines(summary: dict[str, Any]) -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    source = summary.get("source")
    if source:
        where = summary.get("location") or ""
        out.append(("source", f"{source} {where}".strip()))
    if summary.get("airflow_version"):
        out.append(("airflow", str(summary["airflow_version"])))
    if "runs" in summary:
        out.append(
            (
                "read",
                f"{summary.get('dags', 0):,} DAGs, {summary.get('runs', 0):,} runs, "
                f"{summary.get('task_tries', 0):,} task tries in {summary.get('read_s', 0)} s",
            )
        )
    if summary.get("first_run"):
        out.append(("runs from", f"{summary['first_run']} to {summary.get('last_run')}"))
    out.extend(("note", str(n)) for n in summary.get("notes", []))
    return out


def _path_text(path: list[str]) -> str:
    if len(path) <= 5:
        return " > ".join(path)
    return " > ".join([*path[:2], "…", *path[-2:]])


def _dag_rows(summary: dict[str, Any]) -> list[list[str]]:
    rows = []
    for d in summary.get("dag_table", []):
        rows.append(
            [
                str(d["dag_id"]),
                f"{d['runs']:,}",
                f"{d['success']:,}/{d['failed']:,}",
                seconds_text(d.get("p50_s")),
                seconds_text(d.get("p95_s")),
                seconds_text(d.get("critical_path_s")),
                _path_text(d.get("critical_path") or []),
            ]
        )
    return rows


_HEAD = ["DAG", "runs", "ok/failed", "p50", "p95", "critical path", "its tasks"]


class DagsSection:
    id = "summary"
    kind = KIND

    def terminal(self, report: Report, target: Target) -> RenderableType | None:
        summary = report.summary.get(target.name, {})
        grid = label_grid(summary_lines(summary))
        parts: list[RenderableType] = [grid]
        rows = _dag_rows(summary)
        if rows:
            table = Table(expand=False, show_edge=False, pad_edge=False)
            for i, name in enumerate(_HEAD):
                table.add_column(name, justify="right" if 0 < i < 6 else "left", overflow="fold")
            for row in rows:
                table.add_row(*(Text(visible(cell)) for cell in row))
            parts += [Text(""), table]
        for chart in summary.get("gantt", []):
            parts += [Text(""), terminal_chart(chart)]
        return Panel(
            Group(*parts),
            title=Text(visible(f"{target.kind} · {target.name}"), style="bold"),
            title_align="left",
            expand=False,
        )

    def markdown(self, report: Report, target: Target) -> str:
        summary = report.summary.get(target.name, {})
        out = ["| | |", "|---|---|"]
        out += [f"| {label} | {inline(value)} |" for label, value in summary_lines(summary)]
        rows = _dag_rows(summary)
        if rows:
            out += ["", "| " + " | ".join(_HEAD) + " |", "|" + "---|" * len(_HEAD)]
            out += ["| " + " | ".join(inline(c) for c in row) + " |" for row in rows]
        for chart in summary.get("gantt", []):
            out += ["", fence(terminal_chart(chart).plain.rstrip("\n"), "text")]
        return "\n".join(out)

    def html(self, report: Report, target: Target) -> str:
        summary = report.summary.get(target.name, {})
        return _env.get_template("dags_summary.html.j2").render(
            target=target,
            rows=summary_lines(summary),
            head=_HEAD,
            dags=_dag_rows(summary),
            more_dags=summary.get("more_dags", 0),
            charts=[(c, svg_layout(c)) for c in summary.get("gantt", [])],
            seconds=seconds_text,
        )
