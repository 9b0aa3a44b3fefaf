"""What every human format shows the same way: categories by their worst finding, findings
worst first, the fixes in rank order, errors grouped by cause."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from opscope.findings import BENEFIT_KEYS, Finding, Fix, Report, Target
from opscope.units import human_bytes, human_ms, human_number

#: how many fixes the reports open with; the others are shown at their findings
TOP_FIXES = 10


def by_category(report: Report) -> list[tuple[str, list[Finding]]]:
    groups: dict[str, list[Finding]] = {}
    for f in report.sorted_findings():
        groups.setdefault(f.category, []).append(f)
    return sorted(groups.items(), key=lambda kv: (-kv[1][0].severity.rank, kv[0]))


def category_title(category: str) -> str:
    return category.replace("_", " ").capitalize()


def benefit_text(fix: Fix) -> str:
    """What the fix is expected to bring, in words: 'saves about 1.25 s of statement time;
    frees 7.5 MB'."""
    parts: list[str] = []
    for key in BENEFIT_KEYS:
        value = fix.benefit.get(key)
        if not value:
            continue
        if key == "time_saved_ms":
            parts.append(f"saves about {human_ms(value)} of statement time")
        elif key == "cost_saving":
            parts.append(f"cuts planner cost by {human_number(round(value))}")
        elif key == "bytes_freed":
            parts.append(f"frees {human_bytes(value)}")
    return "; ".join(parts)


@dataclass(frozen=True)
class NumberedFix:
    number: int
    fix: Fix

    @property
    def label(self) -> str:
        return f"fix #{self.number}"

    @property
    def anchor(self) -> str:
        return f"fix-{self.fix.id}"


def numbered_fixes(report: Report) -> list[NumberedFix]:
    return [NumberedFix(i, fix) for i, fix in enumerate(report.fixes, 1)]


def fix_pointers(report: Report) -> dict[str, NumberedFix]:
    """The numbered fix each finding resolves with, by finding id."""
    return {fid: n for n in numbered_fixes(report) for fid in n.fix.findings}


def resolves_text(fix: Fix, code: Callable[[str], str] = str) -> str:
    """'resolves 3 findings (a, b, c)', each check id passed through `code`."""
    count = len(fix.findings)
    checks = ", ".join(code(c) for c in dict.fromkeys(fix.checks))
    return f"resolves {count} finding{'s' if count != 1 else ''} ({checks})"


@dataclass(frozen=True)
class ErrorGroup:
    """Checks stopped by one cause: shown once, with every check it stopped."""

    message: str
    target: str | None
    checks: tuple[str, ...]


def error_groups(report: Report) -> list[ErrorGroup]:
    groups: dict[tuple[str | None, str], list[str]] = {}
    for err in report.errors:
        groups.setdefault((err.target, err.message), []).append(err.check)
    return [
        ErrorGroup(message, target, tuple(dict.fromkeys(checks)))
        for (target, message), checks in groups.items()
    ]


def summary_rows(report: Report, target: Target) -> list[tuple[str, str]]:
    """A summary nobody registered a section for: its plain figures, as label/value pairs."""
    summary = report.summary.get(target.name)
    if not isinstance(summary, dict):
        return []
    return [
        (str(key).replace("_", " "), human_number(value))
        for key, value in summary.items()
        if isinstance(value, str | int | float) and not isinstance(value, bool)
    ]
