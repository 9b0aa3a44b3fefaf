"""Terminal (Rich) and Markdown views of a log report's summary: top statements, slowest
executions, per-minute load, errors, temp files and lock waits."""

from __future__ import annotations

from typing import Any

from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text

from opscope.db.logs.findings import KIND
from opscope.display import visible
from opscope.findings import Report, Target
from opscope.report.html import template_environment
from opscope.sqltext import short_query
from opscope.units import human_bytes, human_ms

_env = template_environment("opscope.db")
_SPARK = " ▁▂▃▄▅▆▇█"


def _one_line(text: str, width: int = 90) -> str:
    return short_query(visible(text), width)


def _statement_table(title: str, rows: list[dict[str, Any]]) -> Table:
    table = Table(title=title, title_justify="left", expand=False)
    for name in ("calls", "total", "p50", "p95", "p99", "max"):
        table.add_column(name, justify="right", no_wrap=True)
    table.add_column("statement", overflow="fold")
    for row in rows:
        table.add_row(
            f"{row['calls']:,}",
            human_ms(row["total_ms"]),
            human_ms(row["p50_ms"]),
            human_ms(row["p95_ms"]),
            human_ms(row["p99_ms"]),
            human_ms(row["max_ms"]),
            Text(_one_line(row["query"])),
        )
    return table


def histogram_line(per_minute: list[dict[str, Any]], width: int = 60) -> str:
    """Queries per minute as one line of block characters, folded to `width` columns."""
    counts = [int(m["queries"]) for m in per_minute]
    if not counts:
        return ""
    step = max(1, -(-len(counts) // width))
    folded = [sum(counts[i : i + step]) for i in range(0, len(counts), step)]
    top = max(folded) or 1
    return "".join(_SPARK[min(8, round(8 * n / top))] for n in folded)


def _pooler_lines(pooler: dict[str, Any]) -> list[RenderableType]:
    """PgBouncer: connections, errors, and the averages of its stats lines."""
    span = visible(f"{pooler.get('first') or '?'} → {pooler.get('last') or '?'}")
    out: list[RenderableType] = [
        Text(
            f"PgBouncer ({span}): {pooler['logins']:,} client logins ({pooler['login_failures']:,} "
            f"failed), {pooler['abnormal_client_closes']:,} clients closed abnormally, "
            f"{pooler['server_connections']:,} server connections opened, "
            f"{pooler['errors']:,} errors"
        )
    ]
    for message, n in list(pooler["errors_by_message"].items())[:5]:
        out.append(Text(visible(f"  {n:,} × {_one_line(message, 160)}"), style="yellow"))
    stats = pooler.get("stats", {})
    if stats:

        def figure(key: str, unit: str) -> str:
            s = stats.get(key)
            return f"{s['mean']:g}{unit} (max {s['max']:g})" if s else "-"

        out.append(
            Text(
                f"  stats ({stats.get('queries_per_s', {}).get('samples', 0)} lines): "
                f"{figure('queries_per_s', ' queries/s')}, {figure('xacts_per_s', ' xacts/s')}, "
                f"in {figure('bytes_in_per_s', ' B/s')}, out {figure('bytes_out_per_s', ' B/s')}, "
                f"query {figure('query_us', ' µs')}, xact {figure('xact_us', ' µs')}, "
                f"wait {figure('wait_us', ' µs')}"
            )
        )
    return out


def log_summary(report: Report) -> list[RenderableType]:
    """The log's own section of the terminal report: what was read, the top statements,
    the slowest executions, the per-minute histogram, errors, temp files and lock waits."""
    out: list[RenderableType] = []
    log = report.summary.get("log", {})
    files = visible(", ".join(f"{f['path']} ({f['format']})" for f in log.get("files", [])))
    pooler_only = all(f["format"] == "pgbouncer" for f in log.get("files", [])) and bool(
        log.get("files")
    )
    out.append(Text(f"{'PgBouncer' if pooler_only else 'PostgreSQL'} log: {files}", style="bold"))
    if not pooler_only:
        out.append(
            Text(
                f"{log.get('queries', 0):,} executions with a duration, "
                f"{human_ms(log.get('total_ms', 0.0))} in total, "
                f"{log.get('distinct_statements', 0):,} distinct statements; "
                + visible(f"{log.get('first') or '?'} → {log.get('last') or '?'}")
            )
        )
    out.append(
        f"read {human_bytes(log.get('bytes', 0))} in {log.get('elapsed_s', 0)} s "
        f"({log.get('mb_per_s') or 0} MB/s, {log.get('jobs', 1)} process(es))"
    )
    bad = log.get("bad_entries", {}).get("count", 0)
    if bad:
        out.append(Text(f"{bad:,} line(s) could not be parsed", style="yellow"))
    cut = log.get("cut_entries", 0)
    if cut:
        out.append(
            Text(
                f"{cut:,} entr{'y' if cut == 1 else 'ies'} longer than "
                f"{log.get('max_entry_bytes', 0):,} bytes cut, "
                f"{human_bytes(log.get('cut_bytes', 0))} left out (--max-entry-bytes)",
                style="yellow",
            )
        )
    pooler = log.get("pgbouncer")
    if pooler:
        out.extend(_pooler_lines(pooler))
    out.append(Text(""))
    if log.get("top_by_total_time"):
        out.append(_statement_table("Top statements by total time", log["top_by_total_time"]))
        out.append(_statement_table("Top statements by count", log["top_by_count"]))
    slowest = log.get("slowest", [])
    if slowest:
        table = Table(title="Slowest executions", title_justify="left")
        table.add_column("duration", justify="right", no_wrap=True)
        table.add_column("when", no_wrap=True)
        table.add_column("db/user", no_wrap=True)
        table.add_column("statement and parameters", overflow="fold")
        for row in slowest:
            text = _one_line(row["query"], 200)
            if row.get("parameters"):
                text += f"\n  parameters: {_one_line(row['parameters'], 200)}"
            if row.get("plan"):
                text += "\n  (auto_explain plan attached)"
            who = visible(f"{row.get('database') or '-'}/{row.get('user') or '-'}")
            table.add_row(
                human_ms(row["duration_ms"]), Text(visible(row["ts"])), Text(who), Text(text)
            )
        out.append(table)
    per_minute = log.get("per_minute", [])
    if per_minute:
        out.append(
            Text(
                visible(f"\nqueries per minute, {per_minute[0]['minute']} → ")
                + visible(f"{per_minute[-1]['minute']} ")
                + f"(peak {max(int(m['queries']) for m in per_minute):,}/min):"
            )
        )
        out.append(Text(histogram_line(per_minute)))
    errors = log.get("errors", {})
    if errors.get("total"):
        table = Table(title=f"Errors ({errors['total']:,})", title_justify="left")
        table.add_column("count", justify="right")
        table.add_column("level")
        table.add_column("sqlstate")
        table.add_column("message", overflow="fold")
        for row in errors.get("top_messages", []):
            table.add_row(
                f"{row['count']:,}",
                Text(visible(row["level"])),
                Text(visible(row["sqlstate"] or "")),
                Text(visible(row["message"])),
            )
        out.append(table)
        classes = ", ".join(
            f"{c['class']} {c['name']}: {c['count']:,}" for c in errors.get("by_class", [])
        )
        if classes:
            out.append(f"error classes: {classes}")
    temp = log.get("temp_files", {})
    if temp.get("count"):
        out.append(
            f"\ntemporary files: {temp['count']:,}, {human_bytes(temp['total_bytes'])} "
            f"(largest {human_bytes(temp['max_bytes'])})"
        )
        for row in temp.get("top_statements", [])[:5]:
            out.append(Text(f"  {row['count']:>6,} × {_one_line(row['query'])}"))
    locks = log.get("lock_waits", {})
    if locks.get("count"):
        out.append(
            f"\nlock waits: {locks['count']:,} (longest {human_ms(locks['max_wait_ms'])}, "
            f"{locks['acquired']:,} acquired after waiting)"
        )
        for row in locks.get("top_statements", [])[:5]:
            out.append(Text(f"  {row['count']:>6,} × {_one_line(row['query'])}"))
    out.append(Text(""))
    return out


def render_log_markdown(report: Report) -> str:
    """The log summary as Markdown tables, to follow the generic findings report."""
    log = report.summary.get("log", {})
    out = ["### Log summary", ""]
    out.append(
        f"{log.get('queries', 0):,} executions with a duration, "
        f"{log.get('distinct_statements', 0):,} distinct statements, "
        + visible(f"{log.get('first') or '?'} → {log.get('last') or '?'}.")
    )
    out.append("")
    for title, key in (
        ("Top by total time", "top_by_total_time"),
        ("Top by count", "top_by_count"),
    ):
        rows = log.get(key, [])
        if not rows:
            continue
        out += [f"#### {title}", "", "| calls | total | p50 | p95 | p99 | max | statement |"]
        out.append("|---:|---:|---:|---:|---:|---:|---|")
        for r in rows:
            query = _one_line(r["query"], 120).replace("|", "\\|").replace("`", "'")
            out.append(
                f"| {r['calls']:,} | {human_ms(r['total_ms'])} | {human_ms(r['p50_ms'])} | "
                f"{human_ms(r['p95_ms'])} | {human_ms(r['p99_ms'])} | "
                f"{human_ms(r['max_ms'])} | `{query}` |"
            )
        out.append("")
    slowest = log.get("slowest", [])
    if slowest:
        out += ["#### Slowest executions", "", "| duration | when | statement |", "|---:|---|---|"]
        for r in slowest:
            query = _one_line(r["query"], 160).replace("|", "\\|").replace("`", "'")
            out.append(f"| {human_ms(r['duration_ms'])} | {visible(r['ts'])} | `{query}` |")
        out.append("")
    return "\n".join(out) + "\n"


class LogSection:
    """The summary of a set of server logs (`opscope logs`)."""

    id = "summary"
    kind = KIND

    def terminal(self, report: Report, target: Target) -> RenderableType | None:
        return Group(*log_summary(report))

    def markdown(self, report: Report, target: Target) -> str:
        return render_log_markdown(report)

    def html(self, report: Report, target: Target) -> str:
        return _env.get_template("log_summary.html.j2").render(
            target=target, log=report.summary.get("log", {})
        )
