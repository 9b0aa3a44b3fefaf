"""Ordering shared by all renderers: categories by their worst finding, findings worst first."""

from __future__ import annotations

from datetime import UTC, datetime

from opscope.findings import Finding, Report
from opscope.units import human_bytes

CATEGORY_TITLES = {
    "queries": "Queries",
    "indexes": "Indexes",
    "tables": "Tables",
    "plans": "Plans",
}


def by_category(report: Report) -> list[tuple[str, list[Finding]]]:
    groups: dict[str, list[Finding]] = {}
    for f in report.sorted_findings():
        groups.setdefault(f.category, []).append(f)
    return sorted(groups.items(), key=lambda kv: (-kv[1][0].severity.rank, kv[0]))


def category_title(category: str) -> str:
    return CATEGORY_TITLES.get(category, category.replace("_", " ").capitalize())


def format_value(value: object) -> str:
    if isinstance(value, float):
        return f"{value:,.3f}".rstrip("0").rstrip(".")
    if isinstance(value, int) and not isinstance(value, bool):
        return f"{value:,}"
    return str(value)


def summary_lines(summary: dict[str, object]) -> list[tuple[str, str]]:
    """The headline figures of a database target, as label/value pairs."""
    out: list[tuple[str, str]] = []
    if "server_version" in summary:
        out.append(("server", f"PostgreSQL {summary['server_version']}"))
    if "database_bytes" in summary:
        size = summary["database_bytes"]
        out.append(("size", human_bytes(size if isinstance(size, int | float) else None)))
    ratio = summary.get("cache_hit_ratio")
    if isinstance(ratio, float):
        out.append(("cache hit ratio", f"{ratio:.2%}"))
    if "connections" in summary:
        out.append(("connections", f"{summary['connections']} of {summary['max_connections']}"))
    since = summary.get("stats_since")
    if isinstance(since, str):
        reset = summary.get("stats_reset")
        when = datetime.fromisoformat(since).astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")
        out.append(("statistics since", when + ("" if reset else " (server start; never reset)")))
    advisor = summary.get("advisor")
    if isinstance(advisor, dict):
        line = (
            f"{advisor.get('statements_studied', 0)} statements studied, "
            f"{advisor.get('candidates_costed', 0)} of {advisor.get('candidates', 0)} candidate "
            f"indexes costed with {advisor.get('explains', 0)} EXPLAINs"
        )
        if advisor.get("partial"):
            line += " (stopped at the time budget)"
        out.append(("index advisor", line))
        out.append(
            (
                "costing",
                "hypothetical indexes (hypopg) and the planner"
                if advisor.get("verified")
                else "pg_stats selectivity only: unverified (install hypopg to cost with "
                "the planner)",
            )
        )
        out.extend(("note", str(note)) for note in advisor.get("notes", []))
    ext = summary.get("extensions")
    if isinstance(ext, dict):
        out.append(("extensions", ", ".join(f"{k} {'yes' if v else 'no'}" for k, v in ext.items())))
    if summary.get("superuser"):
        out.append(
            (
                "role",
                "superuser: opscope needs only pg_monitor (or pg_read_all_stats), and SELECT "
                "on the tables whose statements it explains; connect as such a role",
            )
        )
    return out
