"""Renderers of a Report: terminal (Rich), Markdown, HTML (one self-contained file), JSON."""

from __future__ import annotations

from pathlib import Path

from opscope.findings import Report

FORMATS = ("terminal", "json", "markdown", "html")
_SUFFIXES = {
    ".json": "json",
    ".md": "markdown",
    ".markdown": "markdown",
    ".html": "html",
    ".htm": "html",
    ".txt": "terminal",
}


def format_for(output: Path | None, requested: str | None) -> str:
    """--format wins; else the output file's suffix decides; else the terminal."""
    if requested:
        if requested not in FORMATS:
            raise ValueError(
                f"unknown format {requested!r} (expected one of: {', '.join(FORMATS)})"
            )
        return requested
    if output is not None:
        return _SUFFIXES.get(output.suffix.lower(), "terminal")
    return "terminal"


def render(report: Report, fmt: str, *, color: bool = False, width: int = 100) -> str:
    if fmt == "json":
        return report.to_json()
    if fmt == "markdown":
        from opscope.report.markdown import render_markdown

        return render_markdown(report)
    if fmt == "html":
        from opscope.report.html import render_html

        return render_html(report)
    if fmt == "terminal":
        from opscope.report.terminal import render_terminal

        return render_terminal(report, color=color, width=width)
    raise ValueError(f"unknown format {fmt!r}")
