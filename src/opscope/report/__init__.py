"""Renderers of a Report: terminal (Rich), Markdown, HTML (one self-contained file), JSON.

They know no area: what a target's summary looks like comes from the sections the areas
register (opscope.plugins); a kind nobody registered a section for gets a plain table of its
summary's figures."""

from __future__ import annotations

from pathlib import Path

from opscope.findings import Report
from opscope.plugins import Plugins, default_plugins

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


def render(
    report: Report,
    fmt: str,
    *,
    color: bool = False,
    width: int = 100,
    plugins: Plugins | None = None,
) -> str:
    # imported by format: each renderer pulls in its own library (Rich, Jinja2)
    plugins = plugins or default_plugins()
    if fmt == "json":
        return report.to_json()
    if fmt == "markdown":
        from opscope.report.markdown import render_markdown

        return render_markdown(report, plugins)
    if fmt == "html":
        from opscope.report.html import render_html

        return render_html(report, plugins)
    if fmt == "terminal":
        from opscope.report.terminal import render_terminal

        return render_terminal(report, plugins, color=color, width=width)
    raise ValueError(f"unknown format {fmt!r}")
