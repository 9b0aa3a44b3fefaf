"""The terminal report: the targets' summaries, the top fixes, then findings grouped by
category, worst first, each pointing to its fix.

Everything that came from a watched system goes in as rich.text.Text, never as markup, so a
query containing "[bold]" prints as written."""

from __future__ import annotations

import io
from collections.abc import Iterable

from rich.console import Console, Group
from rich.padding import Padding
from rich.panel import Panel
from rich.rule import Rule
from rich.table import Table
from rich.text import Text

from opscope.display import visible
from opscope.findings import Finding, Report, Severity, Target, count_by_severity
from opscope.plugins import Plugins
from opscope.report.grouping import (
    TOP_FIXES,
    NumberedFix,
    benefit_text,
    by_category,
    category_title,
    error_groups,
    fix_pointers,
    numbered_fixes,
    resolves_text,
    summary_rows,
)

STYLE = {
    Severity.critical: "bold white on red",
    Severity.warning: "bold black on yellow",
    Severity.info: "bold white on blue",
}


def label_grid(rows: Iterable[tuple[str, str]]) -> Table:
    """Labels (dim) beside their values, as every summary opens. Both are Text, never
    markup: a label can carry a name from the watched system, brackets and all."""
    grid = Table.grid(padding=(0, 2))
    grid.add_column(style="dim")
    grid.add_column()
    for label, value in rows:
        grid.add_row(Text(visible(label)), Text(visible(value)))
    return grid


def _indent(text: Text, left: int = 2) -> Padding:
    # Padding keeps wrapped continuation lines under the first one
    return Padding(text, (0, 0, 0, left), expand=False)


def _finding_block(f: Finding, fix: NumberedFix | None) -> Group:
    head = Text()
    head.append(f" {f.severity.value.upper()} ", style=STYLE[f.severity])
    head.append(" ")
    head.append(visible(f.title), style="bold")
    parts: list[Text | Padding] = [
        head,
        _indent(Text(visible(f"{f.check} · {f.object}"), style="dim")),
    ]
    query = f.evidence.get("query")
    if isinstance(query, str):
        text = visible(" ".join(query.split()))
        parts.append(_indent(Text(text if len(text) <= 300 else text[:299] + "…", style="dim")))
    if f.detail:
        parts.append(_indent(Text(visible(f.detail))))
    if f.recommendation:
        rec = Text("→ ", style="green")
        rec.append(visible(f.recommendation))
        parts.append(_indent(rec))
    if fix is not None and fix.number <= TOP_FIXES:
        # the SQL is shown once, in the fixes the report opens with
        parts.append(_indent(Text(f"{fix.label} above", style="cyan"), 4))
    elif f.fix_sql:
        shown = fix.fix.fix_sql if fix is not None and fix.fix.fix_sql else f.fix_sql
        sql = Text(visible(shown), style="cyan")
        if fix is not None:
            sql.append(f"  ({fix.label})", style="dim")
        parts.append(_indent(sql, 4))
    parts.append(Text(""))
    return Group(*parts)


def _fixes(console: Console, report: Report) -> None:
    fixes = numbered_fixes(report)
    if not fixes:
        return
    shown = fixes[:TOP_FIXES]
    title = f"Top fixes ({len(shown)} of {len(fixes)})" if len(fixes) > len(shown) else "Fixes"
    console.print(Rule(Text(title, style="bold"), align="left"))
    for n in shown:
        head = Text(f" {n.number:>2}. ", style="bold")
        head.append(visible(n.fix.title), style="bold")
        console.print(head)
        line = Text(resolves_text(n.fix), style="dim")
        benefit = benefit_text(n.fix)
        if benefit:
            line.append(" · " + benefit, style="green")
        console.print(_indent(line, 5))
        if n.fix.fix_sql:
            console.print(_indent(Text(visible(n.fix.fix_sql), style="cyan"), 5))
    console.print()


def _summary(console: Console, report: Report, target: Target, plugins: Plugins) -> None:
    sections = plugins.sections_for(target.kind)
    for section in sections:
        shown = section.terminal(report, target)
        if shown is not None:
            # soft wrap: a long line (a plan node) stays one line, as the terminal folds it
            console.print(shown, soft_wrap=True)
    if sections:
        return
    grid = label_grid(summary_rows(report, target))
    console.print(
        Panel(
            grid,
            title=Text(visible(f"{target.kind} · {target.name}"), style="bold"),
            title_align="left",
            expand=False,
        )
    )


def render_terminal(
    report: Report, plugins: Plugins, *, color: bool = False, width: int = 100
) -> str:
    buf = io.StringIO()
    console = Console(
        file=buf,
        width=width,
        force_terminal=color,
        no_color=not color,
        highlight=False,
        soft_wrap=False,
    )
    for target in report.targets:
        _summary(console, report, target, plugins)
    counts = count_by_severity(report.findings)
    line = Text("findings: ")
    for sev in Severity:
        line.append(f"{counts[sev]} {sev.value}", style=STYLE[sev] if counts[sev] else "dim")
        line.append("  ")
    console.print(line)
    console.print()
    _fixes(console, report)
    pointers = fix_pointers(report)
    for category, findings in by_category(report):
        console.print(
            Rule(Text(f"{category_title(category)} ({len(findings)})", style="bold"), align="left")
        )
        for f in findings:
            console.print(_finding_block(f, pointers.get(f.id)))
    if not report.findings:
        console.print(Text("No findings.", style="green"))
    groups = error_groups(report)
    if groups:
        console.print(
            Rule(
                Text(f"Checks that could not run ({len(report.errors)})", style="bold red"),
                align="left",
            )
        )
        for group in groups:
            t = Text("  ")
            t.append(", ".join(group.checks), style="bold")
            if group.target and len(report.targets) > 1:
                t.append(visible(f" on {group.target}"))
            t.append(": " + visible(group.message))
            console.print(t)
    text = buf.getvalue()
    if not color:
        # Rich pads wrapped lines to the width; plain output is for files and pipes
        text = "\n".join(line.rstrip() for line in text.splitlines()) + "\n"
    return text
