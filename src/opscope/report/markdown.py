"""The Markdown report, for pull requests, wikis and tickets."""

from __future__ import annotations

from opscope.display import visible
from opscope.findings import Report, Severity, count_by_severity
from opscope.plugins import Plugins
from opscope.report.grouping import (
    TOP_FIXES,
    benefit_text,
    by_category,
    category_title,
    error_groups,
    fix_pointers,
    numbered_fixes,
    resolves_text,
    summary_rows,
)

_ICON = {Severity.critical: "🔴", Severity.warning: "🟠", Severity.info: "🔵"}


def inline(text: str) -> str:
    """Text from watched systems, made inert: no Markdown or HTML is interpreted."""
    escaped = visible(text).replace("\\", "\\\\")
    for ch in "`*_[]<>#|":
        escaped = escaped.replace(ch, "\\" + ch)
    return " ".join(escaped.split())


def fence(text: str, lang: str = "sql") -> str:
    """A fenced code block that no backtick run inside `text` can close."""
    text = visible(text)
    marker = "```"
    while marker in text:
        marker += "`"
    return f"{marker}{lang}\n{text}\n{marker}"


def render_markdown(report: Report, plugins: Plugins) -> str:
    out: list[str] = ["# opscope report", ""]
    out.append(
        f"Generated {report.generated_at:%Y-%m-%d %H:%M:%S} UTC by opscope "
        f"{report.opscope_version}."
    )
    out.append("")
    for target in report.targets:
        out.append(f"## {inline(target.kind)} · {inline(target.name)}")
        out.append("")
        sections = plugins.sections_for(target.kind)
        for section in sections:
            text = section.markdown(report, target)
            if text:
                out += [text.rstrip("\n"), ""]
        if sections:
            continue
        rows = summary_rows(report, target)
        if rows:
            out += ["| | |", "|---|---|"]
            out += [f"| {inline(label)} | {inline(value)} |" for label, value in rows]
            out.append("")
    counts = count_by_severity(report.findings)
    out.append("**Findings:** " + ", ".join(f"{counts[s]} {s.value}" for s in Severity))
    out.append("")
    fixes = numbered_fixes(report)
    if fixes:
        shown = fixes[:TOP_FIXES]
        heading = (
            f"Top fixes ({len(shown)} of {len(fixes)})" if len(fixes) > len(shown) else "Fixes"
        )
        out += [f"## {heading}", ""]
        for n in shown:
            benefit = benefit_text(n.fix)
            resolves = resolves_text(n.fix, code=lambda c: f"`{c}`")
            out.append(f"{n.number}. **{inline(n.fix.title)}** — {resolves}")
            if benefit:
                out.append(f"   {benefit}")
            if n.fix.fix_sql:
                out += ["", "   " + fence(n.fix.fix_sql).replace("\n", "\n   ")]
            out.append("")
    pointers = fix_pointers(report)
    for category, findings in by_category(report):
        out.append(f"## {category_title(category)} ({len(findings)})")
        out.append("")
        for f in findings:
            out.append(f"### {_ICON[f.severity]} {inline(f.title)}")
            out.append("")
            out.append(f"`{f.check}` · {inline(f.object)} · {f.severity.value}")
            out.append("")
            if f.detail:
                out += [inline(f.detail), ""]
            if f.recommendation:
                out += [f"**Fix:** {inline(f.recommendation)}", ""]
            fix = pointers.get(f.id)
            if fix is not None and fix.number <= TOP_FIXES:
                out += [f"See {fix.label} above.", ""]
            elif f.fix_sql:
                shown_sql = fix.fix.fix_sql if fix is not None and fix.fix.fix_sql else f.fix_sql
                out += [fence(shown_sql), ""]
                if fix is not None:
                    out += [f"({fix.label})", ""]
    groups = error_groups(report)
    if groups:
        out += [f"## Checks that could not run ({len(report.errors)})", ""]
        for group in groups:
            checks = ", ".join(f"`{c}`" for c in group.checks)
            where = (
                f" on {inline(group.target)}" if group.target and len(report.targets) > 1 else ""
            )
            out.append(f"- {checks}{where}: {inline(group.message)}")
        out.append("")
    return "\n".join(out)
