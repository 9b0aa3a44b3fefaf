"""The HTML report: one self-contained file (inline CSS, no scripts, no network), with every
text from the watched systems escaped by Jinja2's autoescaping."""

from __future__ import annotations

from typing import Any

from jinja2 import Environment, PackageLoader, select_autoescape

from opscope.findings import Report, Severity, count_by_severity
from opscope.report.grouping import by_category, category_title, format_value, summary_lines

_env = Environment(
    loader=PackageLoader("opscope.report", "templates"),
    autoescape=select_autoescape(default=True, default_for_string=True),
    trim_blocks=True,
    lstrip_blocks=True,
)
_env.filters["value"] = format_value


def _is_block(value: Any) -> bool:
    return isinstance(value, str) and (len(value) > 60 or "\n" in value)


_env.tests["block"] = _is_block


def render_html(report: Report) -> str:
    template = _env.get_template("report.html.j2")
    counts = count_by_severity(report.findings)
    return template.render(
        report=report,
        targets=[(t, summary_lines(report.summary.get(t.name, {}))) for t in report.targets],
        groups=[(category_title(c), fs) for c, fs in by_category(report)],
        counts=[(s.value, counts[s]) for s in Severity],
        generated=report.generated_at.strftime("%Y-%m-%d %H:%M:%S UTC"),
    )
