"""The terminal report: grouped by category, worst first, each finding with its fix.

Everything that came from a watched system goes in as rich.text.Text, never as markup, so a
query containing "[bold]" prints as written."""

from __future__ import annotations

import io

from rich.console import Console, Group
from rich.padding import Padding
from rich.panel import Panel
from rich.rule import Rule
from rich.table import Table
from rich.text import Text

from opscope.display import visible
from opscope.findings import Finding, Report, Severity, count_by_severity
from opscope.report.grouping import by_category, category_title, summary_lines

STYLE = {
    Severity.critical: "bold white on red",
    Severity.warning: "bold black on yellow",
    Severity.info: "bold white on blue",
}


def _indent(text: Text, left: int = 2) -> Padding:
    # Padding keeps wrapped continuation lines under the first one
    return Padding(text, (0, 0, 0, left), expand=False)


def _finding_block(f: Finding) -> Group:
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
    if f.fix_sql:
        parts.append(_indent(Text(visible(f.fix_sql), style="cyan"), 4))
    parts.append(Text(""))
    return Group(*parts)


def render_terminal(report: Report, *, color: bool = False, width: int = 100) -> str:
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
        if target.kind == "postgresql-log":
            from opscope.db.logs.render import print_log_summary

            print_log_summary(console, report)
            continue
        summary = report.summary.get(target.name, {})
        grid = Table.grid(padding=(0, 2))
        grid.add_column(style="dim")
        grid.add_column()
        for label, value in summary_lines(summary):
            grid.add_row(label, Text(visible(value)))
        console.print(
            Panel(
                grid,
                title=Text(visible(f"{target.kind} · {target.name}"), style="bold"),
                title_align="left",
                expand=False,
            )
        )
    counts = count_by_severity(report.findings)
    line = Text("findings: ")
    for sev in Severity:
        line.append(f"{counts[sev]} {sev.value}", style=STYLE[sev] if counts[sev] else "dim")
        line.append("  ")
    console.print(line)
    console.print()
    for category, findings in by_category(report):
        console.print(
            Rule(Text(f"{category_title(category)} ({len(findings)})", style="bold"), align="left")
        )
        for f in findings:
            console.print(_finding_block(f))
    if not report.findings:
        console.print(Text("No findings.", style="green"))
    if report.errors:
        console.print(
            Rule(
                Text(f"Checks that could not run ({len(report.errors)})", style="bold red"),
                align="left",
            )
        )
        for err in report.errors:
            t = Text("  ")
            t.append(err.check, style="bold")
            t.append(": " + visible(err.message))
            console.print(t)
    text = buf.getvalue()
    if not color:
        # Rich pads wrapped lines to the width; plain output is for files and pipes
        text = "\n".join(line.rstrip() for line in text.splitlines()) + "\n"
    return text
