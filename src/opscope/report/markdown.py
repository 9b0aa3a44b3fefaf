"""The Markdown report, for pull requests, wikis and tickets."""

from __future__ import annotations

from opscope.display import visible
from opscope.findings import Report, Severity, count_by_severity
from opscope.report.grouping import by_category, category_title, summary_lines

_ICON = {Severity.critical: "🔴", Severity.warning: "🟠", Severity.info: "🔵"}


def _inline(text: str) -> str:
    """Text from watched systems, made inert: no Markdown or HTML is interpreted."""
    escaped = visible(text).replace("\\", "\\\\")
    for ch in "`*_[]<>#|":
        escaped = escaped.replace(ch, "\\" + ch)
    return " ".join(escaped.split())


def _fence(text: str) -> str:
    text = visible(text)
    fence = "```"
    while fence in text:
        fence += "`"
    return f"{fence}sql\n{text}\n{fence}"


def render_markdown(report: Report) -> str:
    out: list[str] = ["# opscope report", ""]
    out.append(
        f"Generated {report.generated_at:%Y-%m-%d %H:%M:%S} UTC by opscope "
        f"{report.opscope_version}."
    )
    out.append("")
    for target in report.targets:
        out.append(f"## {_inline(target.kind)} · {_inline(target.name)}")
        out.append("")
        if target.kind == "postgresql-log":
            from opscope.db.logs.render import render_log_markdown

            out += [render_log_markdown(report), ""]
            continue
        rows = summary_lines(report.summary.get(target.name, {}))
        if rows:
            out += ["| | |", "|---|---|"]
            out += [f"| {label} | {_inline(value)} |" for label, value in rows]
            out.append("")
    counts = count_by_severity(report.findings)
    out.append("**Findings:** " + ", ".join(f"{counts[s]} {s.value}" for s in Severity))
    out.append("")
    for category, findings in by_category(report):
        out.append(f"## {category_title(category)} ({len(findings)})")
        out.append("")
        for f in findings:
            out.append(f"### {_ICON[f.severity]} {_inline(f.title)}")
            out.append("")
            out.append(f"`{f.check}` · {_inline(f.object)} · {f.severity.value}")
            out.append("")
            if f.detail:
                out += [_inline(f.detail), ""]
            if f.recommendation:
                out += [f"**Fix:** {_inline(f.recommendation)}", ""]
            if f.fix_sql:
                out += [_fence(f.fix_sql), ""]
    if report.errors:
        out += [f"## Checks that could not run ({len(report.errors)})", ""]
        out += [f"- `{e.check}`: {_inline(e.message)}" for e in report.errors]
        out.append("")
    return "\n".join(out)
