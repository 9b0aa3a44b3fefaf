"""Terminal (Rich) and Markdown views of a log report's summary: top statements, slowest
executions, per-minute load, errors, temp files and lock waits."""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.table import Table
from rich.text import Text

from opscope.db.logs.normalize import safe
from opscope.findings import Report

_SPARK = " ▁▂▃▄▅▆▇█"


def _one_line(text: str, width: int = 90) -> str:
    flat = " ".join(safe(text).split())
    return flat if len(flat) <= width else flat[: width - 1] + "…"


def _ms(value: float) -> str:
    return f"{value / 1000:,.2f} s" if value >= 1000 else f"{value:,.1f} ms"


def _statement_table(title: str, rows: list[dict[str, Any]]) -> Table:
    table = Table(title=title, title_justify="left", expand=False)
    for name in ("calls", "total", "p50", "p95", "p99", "max"):
        table.add_column(name, justify="right", no_wrap=True)
    table.add_column("statement", overflow="fold")
    for row in rows:
        table.add_row(
            f"{row['calls']:,}",
            _ms(row["total_ms"]),
            _ms(row["p50_ms"]),
            _ms(row["p95_ms"]),
            _ms(row["p99_ms"]),
            _ms(row["max_ms"]),
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


def print_log_summary(console: Console, report: Report) -> None:
    """The log's own section of the terminal report: what was read, the top statements,
    the slowest executions, the per-minute histogram, errors, temp files and lock waits."""
    log = report.summary.get("log", {})
    files = safe(", ".join(f"{f['path']} ({f['format']})" for f in log.get("files", [])))
    console.print(Text(f"PostgreSQL log: {files}", style="bold"))
    console.print(
        Text(
            f"{log.get('queries', 0):,} executions with a duration, "
            f"{_ms(log.get('total_ms', 0.0))} in total, "
            f"{log.get('distinct_statements', 0):,} distinct statements; "
            + safe(f"{log.get('first') or '?'} → {log.get('last') or '?'}")
        )
    )
    console.print(
        f"read {log.get('bytes', 0) / 1e6:,.1f} MB in {log.get('elapsed_s', 0)} s "
        f"({log.get('mb_per_s') or 0} MB/s, {log.get('jobs', 1)} process(es))"
    )
    bad = log.get("bad_entries", {}).get("count", 0)
    if bad:
        console.print(Text(f"{bad:,} line(s) could not be parsed", style="yellow"))
    cut = log.get("cut_entries", 0)
    if cut:
        console.print(
            Text(
                f"{cut:,} entr{'y' if cut == 1 else 'ies'} longer than "
                f"{log.get('max_entry_bytes', 0):,} bytes cut, "
                f"{log.get('cut_bytes', 0) / 1e6:,.1f} MB left out (--max-entry-bytes)",
                style="yellow",
            )
        )
    console.print()
    if log.get("top_by_total_time"):
        console.print(_statement_table("Top statements by total time", log["top_by_total_time"]))
        console.print(_statement_table("Top statements by count", log["top_by_count"]))
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
            who = safe(f"{row.get('database') or '-'}/{row.get('user') or '-'}")
            table.add_row(_ms(row["duration_ms"]), Text(safe(row["ts"])), Text(who), Text(text))
        console.print(table)
    per_minute = log.get("per_minute", [])
    if per_minute:
        console.print(
            Text(
                safe(f"\nqueries per minute, {per_minute[0]['minute']} → ")
                + safe(f"{per_minute[-1]['minute']} ")
                + f"(peak {max(int(m['queries']) for m in per_minute):,}/min):"
            )
        )
        console.print(Text(histogram_line(per_minute)))
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
                Text(safe(row["level"])),
                Text(safe(row["sqlstate"] or "")),
                Text(safe(row["message"])),
            )
        console.print(table)
        classes = ", ".join(
            f"{c['class']} {c['name']}: {c['count']:,}" for c in errors.get("by_class", [])
        )
        if classes:
            console.print(f"error classes: {classes}")
    temp = log.get("temp_files", {})
    if temp.get("count"):
        console.print(
            f"\ntemporary files: {temp['count']:,}, {temp['total_bytes'] / 1e6:,.1f} MB "
            f"(largest {temp['max_bytes'] / 1e6:,.1f} MB)"
        )
        for row in temp.get("top_statements", [])[:5]:
            console.print(Text(f"  {row['count']:>6,} × {_one_line(row['query'])}"))
    locks = log.get("lock_waits", {})
    if locks.get("count"):
        console.print(
            f"\nlock waits: {locks['count']:,} (longest {_ms(locks['max_wait_ms'])}, "
            f"{locks['acquired']:,} acquired after waiting)"
        )
        for row in locks.get("top_statements", [])[:5]:
            console.print(Text(f"  {row['count']:>6,} × {_one_line(row['query'])}"))
    console.print()


def render_log_markdown(report: Report) -> str:
    """The log summary as Markdown tables, to follow the generic findings report."""
    log = report.summary.get("log", {})
    out = ["### Log summary", ""]
    out.append(
        f"{log.get('queries', 0):,} executions with a duration, "
        f"{log.get('distinct_statements', 0):,} distinct statements, "
        + safe(f"{log.get('first') or '?'} → {log.get('last') or '?'}.")
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
                f"| {r['calls']:,} | {_ms(r['total_ms'])} | {_ms(r['p50_ms'])} | "
                f"{_ms(r['p95_ms'])} | {_ms(r['p99_ms'])} | {_ms(r['max_ms'])} | `{query}` |"
            )
        out.append("")
    slowest = log.get("slowest", [])
    if slowest:
        out += ["#### Slowest executions", "", "| duration | when | statement |", "|---:|---|---|"]
        for r in slowest:
            query = _one_line(r["query"], 160).replace("|", "\\|").replace("`", "'")
            out.append(f"| {_ms(r['duration_ms'])} | {safe(r['ts'])} | `{query}` |")
        out.append("")
    return "\n".join(out) + "\n"
