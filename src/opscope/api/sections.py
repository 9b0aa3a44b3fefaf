"""How an API target's summary reads in the human formats: where the figures come from, and
a table of its endpoints, busiest first; and the probe's percentiles and histogram."""

from __future__ import annotations

from typing import Any

from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text

from opscope.api.context import KIND
from opscope.display import visible
from opscope.findings import Report, Target
from opscope.report.html import template_environment
from opscope.report.markdown import inline
from opscope.report.terminal import label_grid
from opscope.units import human_ms, human_number

PROBE_KIND = "api-probe"
#: endpoints the terminal shows (Markdown and HTML show every one in the summary)
TERMINAL_ROWS = 15

_env = template_environment("opscope.api")

COLUMNS = (
    "route", "requests", "rate/s", "p50", "p95", "p99", "5xx", "DB", "q/req", "ser.", "N+1",
    "rep.", "hit",
)  # fmt: skip


def _ms(value: Any) -> str:
    return human_ms(float(value)) if isinstance(value, int | float) else "-"


def _pct(value: Any) -> str:
    return f"{value:.0%}" if isinstance(value, int | float) else "-"


def _num(value: Any) -> str:
    return human_number(value) if isinstance(value, int | float) else "-"


def endpoint_rows(summary: dict[str, Any]) -> list[tuple[str, ...]]:
    rows: list[tuple[str, ...]] = []
    for e in summary.get("endpoints", []):
        rows.append(
            (
                str(e.get("route", "")),
                _num(e.get("requests")),
                _num(e.get("rate_per_s")),
                _ms(e.get("p50_ms")),
                _ms(e.get("p95_ms")),
                _ms(e.get("p99_ms")),
                _pct(e.get("error_rate")),
                _pct(e.get("db_share")),
                _num(e.get("queries_per_request")),
                _pct(e.get("serialization_share")),
                _num(e.get("n_plus_one_requests")),
                _pct(e.get("repeat_share")),
                _pct(e.get("cache_hit_ratio")),
            )
        )
    return rows


def headline(summary: dict[str, Any]) -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    if summary.get("metrics_url"):
        window = summary.get("window_s")
        how = f" (a {window:g} s window)" if isinstance(window, int | float) else ""
        out.append(("metrics", f"{summary['metrics_url']}{how}"))
    if summary.get("access_logs"):
        formats = ", ".join(summary.get("formats", []))
        out.append(("access logs", f"{', '.join(summary['access_logs'])} ({formats})"))
        line = f"{_num(summary.get('parsed'))} of {_num(summary.get('lines'))} lines read"
        if summary.get("skipped_long_lines"):
            line += f", {_num(summary['skipped_long_lines'])} too long to read"
        if summary.get("latency_known") is False:
            line += "; the format has no latency"
        out.append(("lines", line))
    elapsed = summary.get("elapsed_s")
    requests = f"{_num(summary.get('requests'))} to {_num(summary.get('endpoint_count'))} endpoints"
    if isinstance(elapsed, int | float):
        requests += f" in {human_ms(elapsed * 1000)}"
    out.append(("requests", requests))
    if summary.get("database"):
        out.append(("database", str(summary["database"])))
    return out


class ApiSection:
    id = "summary"
    kind = KIND

    def terminal(self, report: Report, target: Target) -> RenderableType | None:
        summary = report.summary.get(target.name, {})
        grid = label_grid(headline(summary))
        table = Table(*COLUMNS, title_justify="left", pad_edge=False, box=None)
        for col in table.columns[1:]:
            col.justify = "right"
            col.no_wrap = True
        # a route template is shown whole, folded over lines if it must
        table.columns[0].overflow = "fold"
        table.columns[0].min_width = 24
        rows = endpoint_rows(summary)
        for row in rows[:TERMINAL_ROWS]:
            table.add_row(*(Text(visible(cell)) for cell in row))
        parts: list[RenderableType] = [
            Text(visible(f"{target.kind} · {target.name}"), style="bold"),
            grid,
        ]
        if rows:
            parts += [Text(""), table]
        if len(rows) > TERMINAL_ROWS:
            parts.append(
                Text(f"… and {len(rows) - TERMINAL_ROWS} more (see --format json)", style="dim")
            )
        parts.append(Text(""))
        return Group(*parts)

    def markdown(self, report: Report, target: Target) -> str:
        summary = report.summary.get(target.name, {})
        out = ["| | |", "|---|---|"]
        out += [f"| {label} | {inline(value)} |" for label, value in headline(summary)]
        rows = endpoint_rows(summary)
        if rows:
            out += ["", "| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
            out += ["| " + " | ".join(inline(c) for c in row) + " |" for row in rows]
        return "\n".join(out)

    def html(self, report: Report, target: Target) -> str:
        summary = report.summary.get(target.name, {})
        return _env.get_template("api_summary.html.j2").render(
            target=target, rows=headline(summary), columns=COLUMNS, endpoints=endpoint_rows(summary)
        )


def _bar(count: float, top: float, width: int = 40) -> str:
    cells = count / top * width if top else 0.0
    full = int(cells)
    eighths = " ▏▎▍▌▋▊▉"
    return ("█" * full + (eighths[int((cells - full) * 8)] if full < width else "")).rstrip()


def probe_headline(summary: dict[str, Any]) -> list[tuple[str, str]]:
    model = summary.get("model")
    if model == "open":
        how = (
            f"open model: {_num(summary.get('rate_per_s'))} requests/s on a schedule, latency "
            f"from the scheduled start (up to {_num(summary.get('concurrency'))} in flight)"
        )
    else:
        how = f"closed model: {_num(summary.get('concurrency'))} clients back to back"
    out = [("load", how)]
    out.append(
        (
            "requests",
            f"{_num(summary.get('requests'))} in {_num(summary.get('elapsed_s'))} s, "
            f"{_num(summary.get('throughput_per_s'))}/s",
        )
    )
    statuses = summary.get("statuses", {})
    shown = ", ".join(f"{k}: {_num(v)}" for k, v in statuses.items())
    out.append(("errors", f"{_pct(summary.get('error_rate'))} ({shown})"))
    if summary.get("late_starts"):
        out.append(
            (
                "late starts",
                f"{_num(summary['late_starts'])} requests started over 1 ms after they were due "
                "(the server or -c could not keep up: their wait is in the latency)",
            )
        )
    for err in summary.get("transport_errors", []):
        out.append(("transport error", str(err)))
    return out


PERCENTILES = ("p50", "p90", "p95", "p99", "max")


def percentile_rows(summary: dict[str, Any]) -> list[tuple[str, ...]]:
    rows = [("latency", *(_ms(summary.get("latency_ms", {}).get(p)) for p in PERCENTILES))]
    if "service_ms" in summary:
        rows.append(("service time", *(_ms(summary["service_ms"].get(p)) for p in PERCENTILES)))
    for url in summary.get("urls", []):
        rows.append(
            (str(url.get("url")), *(_ms(url.get("latency_ms", {}).get(p)) for p in PERCENTILES))
        )
    return rows


def histogram_rows(summary: dict[str, Any]) -> list[tuple[str, str, str]]:
    bins = summary.get("histogram", [])
    top = max((b[2] for b in bins), default=0)
    return [(f"{_ms(lo)} – {_ms(hi)}", _num(n), _bar(n, top)) for lo, hi, n in bins]


class ProbeSection:
    id = "probe"
    kind = PROBE_KIND

    def terminal(self, report: Report, target: Target) -> RenderableType | None:
        summary = report.summary.get(target.name, {})
        grid = label_grid(probe_headline(summary))
        table = Table("", *PERCENTILES, box=None, pad_edge=False)
        for col in table.columns[1:]:
            col.justify = "right"
        for row in percentile_rows(summary):
            table.add_row(*(Text(visible(c)) for c in row))
        hist = Table.grid(padding=(0, 2))
        hist.add_column(justify="right", style="dim")
        hist.add_column(justify="right")
        hist.add_column(style="cyan")
        for row in histogram_rows(summary):
            hist.add_row(*row)
        return Group(
            Text(visible(f"probe · {target.name}"), style="bold"),
            grid,
            Text(""),
            table,
            Text(""),
            hist,
            Text(""),
        )

    def markdown(self, report: Report, target: Target) -> str:
        summary = report.summary.get(target.name, {})
        out = ["| | |", "|---|---|"]
        out += [f"| {label} | {inline(value)} |" for label, value in probe_headline(summary)]
        out += ["", "| | " + " | ".join(PERCENTILES) + " |", "|---|" + "---|" * len(PERCENTILES)]
        out += [
            "| " + " | ".join(inline(c) for c in row) + " |" for row in percentile_rows(summary)
        ]
        hist = histogram_rows(summary)
        if hist:
            out += ["", "```text"]
            out += [f"{r[0]:>24}  {r[1]:>7}  {r[2]}" for r in hist]
            out.append("```")
        return "\n".join(out)

    def html(self, report: Report, target: Target) -> str:
        summary = report.summary.get(target.name, {})
        return _env.get_template("probe_summary.html.j2").render(
            target=target,
            rows=probe_headline(summary),
            percentiles=PERCENTILES,
            latency=percentile_rows(summary),
            histogram=histogram_rows(summary),
        )
