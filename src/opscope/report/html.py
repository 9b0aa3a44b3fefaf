"""The HTML report: one self-contained file (inline CSS, no scripts, no network), with every
text from the watched systems escaped by Jinja2's autoescaping. Areas' sections bring their
own fragments, escaped the same way."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from markupsafe import Markup

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
from opscope.units import human_bytes, human_number

if TYPE_CHECKING:
    from jinja2 import Environment, Template


class Templates:
    """An area's report templates, loaded on first use: every area's sections module makes
    one at import, and Jinja2 is not worth importing for a command that renders no HTML."""

    def __init__(self, package: str, folder: str = "templates") -> None:
        self.package = package
        self.folder = folder
        self._env: Environment | None = None

    def get_template(self, name: str) -> Template:
        if self._env is None:
            self._env = _environment(self.package, self.folder)
        return self._env.get_template(name)


def template_environment(package: str, folder: str = "templates") -> Templates:
    """The templates for report HTML: autoescaped, with the shared filters. Areas render
    their sections' fragments with one of their own."""
    return Templates(package, folder)


def _environment(package: str, folder: str) -> Environment:
    from jinja2 import Environment, PackageLoader, select_autoescape

    env = Environment(
        loader=PackageLoader(package, folder),
        autoescape=select_autoescape(default=True, default_for_string=True),
        trim_blocks=True,
        lstrip_blocks=True,
        # every value goes through the one sanitizer before it is escaped; a fragment
        # (Markup) was rendered, and sanitized, by its own template
        finalize=_sanitized,
    )
    env.filters["value"] = human_number
    env.filters["bytes"] = human_bytes
    env.tests["block"] = _is_block
    return env


def _sanitized(value: Any) -> Any:
    if isinstance(value, Markup) or not isinstance(value, str):
        return value
    return visible(value)


def _is_block(value: Any) -> bool:
    return isinstance(value, str) and (len(value) > 60 or "\n" in value)


_env = template_environment("opscope.report")


def render_html(report: Report, plugins: Plugins) -> str:
    template = _env.get_template("report.html.j2")
    counts = count_by_severity(report.findings)
    cards: list[tuple[Any, Markup | None, list[tuple[str, str]]]] = []
    for target in report.targets:
        sections = plugins.sections_for(target.kind)
        if sections:
            # a section's fragment comes from its own autoescaping template
            html = Markup("".join(s.html(report, target) for s in sections))
            cards.append((target, html, []))
        else:
            cards.append((target, None, summary_rows(report, target)))
    fixes = numbered_fixes(report)
    groups = error_groups(report)
    return template.render(
        report=report,
        cards=cards,
        groups=[(category_title(c), fs) for c, fs in by_category(report)],
        counts=[(s.value, counts[s]) for s in Severity],
        generated=report.generated_at.strftime("%Y-%m-%d %H:%M:%S UTC"),
        fixes=[(n, resolves_text(n.fix), benefit_text(n.fix)) for n in fixes[:TOP_FIXES]],
        more_fixes=len(fixes) - min(len(fixes), TOP_FIXES),
        pointers=fix_pointers(report),
        top=TOP_FIXES,
        error_groups=groups,
        many_targets=len(report.targets) > 1,
    )
