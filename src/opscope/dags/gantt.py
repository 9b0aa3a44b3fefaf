"""Gantt charts of runs: the data kept in the report's summary (offsets from the run's start),
an SVG layout for the HTML report with the critical path highlighted, and a compact one for
the terminal."""

from __future__ import annotations

from typing import Any

from rich.text import Text

from opscope.dags.figures import DagStats
from opscope.dags.runs import RunFacts
from opscope.dags.timefmt import instant, rounded, seconds_text
from opscope.display import visible

#: rows (tasks) and bars (tries, map indexes) per row drawn; the rest are counted
MAX_ROWS = 60
MAX_BARS = 20


def _chart(facts: RunFacts, label: str) -> dict[str, Any]:
    origin = facts.start if facts.start is not None else 0.0
    on_path = set(facts.critical.path)
    by_task: dict[str, list[Any]] = {}
    for t in sorted(facts.run.tries, key=lambda t: (t.start or 0.0, t.map_index, t.try_number)):
        if t.start is None or t.end is None:
            continue
        by_task.setdefault(t.task_id, []).append(
            [
                round(t.start - origin, 3),
                round(t.end - origin, 3),
                t.state,
                t.map_index,
                t.try_number,
            ]
        )
    order = sorted(
        (task for task in facts.tasks.values() if task.task_id in by_task),
        key=lambda task: (task.start or 0.0, task.task_id),
    )
    rows: list[dict[str, Any]] = []
    for task in order[:MAX_ROWS]:
        bars = by_task[task.task_id]
        wait = None
        if task.ready is not None and task.start is not None and task.start > task.ready:
            wait = [round(task.ready - origin, 3), round(task.start - origin, 3)]
        rows.append(
            {
                "task_id": task.task_id,
                "critical": task.task_id in on_path,
                "slack_s": rounded(facts.critical.slack.get(task.task_id)),
                "span_s": rounded(task.span),
                "wait": wait,
                "bars": bars[:MAX_BARS],
                "more_bars": max(0, len(bars) - MAX_BARS),
            }
        )
    ends = [b[1] for r in rows for b in r["bars"]]
    return {
        "dag_id": facts.run.dag_id,
        "run_id": facts.run.run_id,
        "label": label,
        "state": facts.run.state,
        "start": instant(facts.start),
        "wall_s": rounded(max([facts.wall, *ends])),
        "critical_path_s": rounded(facts.critical.length),
        "critical_path": list(facts.critical.path),
        "rows": rows,
        "more_rows": max(0, len(order) - MAX_ROWS),
    }


def chart_data(stats: DagStats, count: int) -> list[dict[str, Any]]:
    """The latest finished run of the DAG, and its slowest successful one when that took
    longer (by 5% or more), up to `count` charts."""
    if count <= 0:
        return []
    chosen: list[tuple[RunFacts, str]] = [(f, "latest") for f in stats.latest(1)]
    slowest = stats.slowest
    if slowest is not None and all(slowest.wall > f.wall * 1.05 for f, _ in chosen):
        chosen.append((slowest, "slowest"))
    return [_chart(f, label) for f, label in chosen[:count]]


# --- SVG --------------------------------------------------------------------------------

WIDTH = 960
LABEL = 200
ROW = 18
AXIS = 22


def svg_layout(chart: dict[str, Any]) -> dict[str, Any]:
    """Coordinates of every mark of `chart` for the HTML template (which escapes the text)."""
    wall = float(chart.get("wall_s") or 0.0) or 1.0
    scale = (WIDTH - LABEL - 10) / wall
    marks: list[dict[str, Any]] = []
    labels: list[dict[str, Any]] = []
    for i, row in enumerate(chart["rows"]):
        y = AXIS + i * ROW
        labels.append({"y": y + ROW - 5, "text": row["task_id"], "critical": row["critical"]})
        if row.get("wait"):
            a, b = row["wait"]
            marks.append(
                {
                    "x": round(LABEL + a * scale, 2),
                    "y": y + ROW // 2 - 1,
                    "w": round(max(0.5, (b - a) * scale), 2),
                    "h": 2,
                    "cls": "wait",
                    "title": f"{row['task_id']}: waited {seconds_text(b - a)}",
                }
            )
        for start, end, state, map_index, try_number in row["bars"]:
            what = row["task_id"] + (f"[{map_index}]" if map_index >= 0 else "")
            cls = "critical" if row["critical"] else "task"
            if state not in ("success", None):
                cls += " " + ("failed" if state in ("failed", "upstream_failed") else "other")
            marks.append(
                {
                    "x": round(LABEL + start * scale, 2),
                    "y": y + 3,
                    "w": round(max(1.0, (end - start) * scale), 2),
                    "h": ROW - 6,
                    "cls": cls,
                    "title": f"{what} try {try_number}: {state or '?'}, "
                    f"{seconds_text(end - start)} (from +{seconds_text(start)})",
                }
            )
    ticks = []
    step = _tick_step(wall)
    t = 0.0
    while t <= wall + 1e-9:
        ticks.append({"x": round(LABEL + t * scale, 2), "text": seconds_text(t)})
        t += step
    height = AXIS + len(chart["rows"]) * ROW + 4
    return {
        "width": WIDTH,
        "height": height,
        "marks": marks,
        "labels": labels,
        "ticks": ticks,
        "label_x": LABEL - 6,
    }


def _tick_step(wall: float) -> float:
    for step in (1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 14400):
        if wall / step <= 8:
            return float(step)
    return max(1.0, wall / 8)


# --- terminal -------------------------------------------------------------------------

_FULL = "█"


def terminal_chart(chart: dict[str, Any], width: int = 48) -> Text:
    """One line per task: its name, a bar on a `width`-column time axis (░ waiting, █
    running, ▒ a failed try), its span; the critical path in bold red and starred."""
    wall = float(chart.get("wall_s") or 0.0) or 1.0
    names = [visible(r["task_id"]) for r in chart["rows"]]
    pad = min(28, max((len(n) for n in names), default=4))
    out = Text()
    head = (
        f"{visible(chart['dag_id'])} · {chart['label']} run · {chart.get('state') or '?'} · "
        f"{seconds_text(chart.get('wall_s'))} "
        f"(critical path {seconds_text(chart.get('critical_path_s'))}, marked *)"
    )
    out.append(head + "\n", style="bold")
    out.append(f"  {visible(chart['run_id'])} from {chart.get('start') or '?'}\n", style="dim")
    for name, row in zip(names, chart["rows"], strict=True):
        cells = [" "] * width
        if row.get("wait"):
            a, b = row["wait"]
            for c in range(
                int(a / wall * width),
                min(width, max(int(a / wall * width) + 1, round(b / wall * width))),
            ):
                cells[c] = "░"
        for start, end, state, _, _ in row["bars"]:
            first = min(width - 1, int(start / wall * width))
            last = max(first + 1, min(width, round(end / wall * width)))
            mark = "▒" if state in ("failed", "upstream_failed") else _FULL
            for c in range(first, last):
                cells[c] = mark
        label = name if len(name) <= pad else name[: pad - 1] + "…"
        style = "bold red" if row["critical"] else ""
        out.append(f"  {label:<{pad}} ", style=style)
        out.append("".join(cells), style="red" if row["critical"] else "cyan")
        out.append(f" {seconds_text(row.get('span_s')):>9}", style=style)
        out.append(" *\n" if row["critical"] else "\n", style=style)
    if chart.get("more_rows"):
        out.append(f"  … {chart['more_rows']} more task(s)\n", style="dim")
    return out
