"""How a PostgreSQL target's summary reads in the human formats: the health figures of
`analyze db`, the plan tree of `opscope explain`, the advisor's study of `indexes advise`."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from rich.console import Group, RenderableType
from rich.panel import Panel
from rich.text import Text

from opscope.db.context import KIND
from opscope.display import visible
from opscope.findings import Report, Target
from opscope.report.html import template_environment
from opscope.report.markdown import fence, inline
from opscope.report.terminal import label_grid
from opscope.units import human_bytes

_env = template_environment("opscope.db")


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
    out.extend(activity_lines(summary.get("activity")))
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


def activity_lines(activity: object) -> list[tuple[str, str]]:
    """What the server is doing (`analyze db`'s activity summary), as label/value pairs."""
    if not isinstance(activity, dict):
        return []
    out: list[tuple[str, str]] = []
    conns = activity.get("connections")
    if isinstance(conns, dict):
        states = ", ".join(f"{k} {v}" for k, v in (conns.get("by_state") or {}).items())
        out.append(("sessions", f"{states} ({conns.get('usable')} slots usable)"))
        apps = ", ".join(f"{k} {v}" for k, v in (conns.get("by_application") or {}).items())
        if apps:
            out.append(("by application", apps))
    rate = activity.get("wal_bytes_per_s")
    if isinstance(rate, int | float):
        out.append(("WAL", f"{human_bytes(rate)}/s since its statistics were reset"))
    cp = activity.get("checkpoints")
    if isinstance(cp, dict):
        share = cp.get("requested_share")
        tail = f" ({share:.0%} requested)" if isinstance(share, int | float) else ""
        out.append(
            ("checkpoints", f"{cp.get('timed')} timed, {cp.get('requested')} requested{tail}")
        )
    if isinstance(activity.get("temp_files"), int):
        out.append(
            (
                "temp files",
                f"{activity['temp_files']:,} ({human_bytes(activity.get('temp_bytes'))})",
            )
        )
    for s in activity.get("standbys") or []:
        lag = s.get("replay_lag_s")
        out.append(
            ("standby", f"{s.get('name')} {s.get('state')}, replay lag "
             + (f"{lag:.1f} s" if isinstance(lag, int | float) else "unknown")
             + f", {human_bytes(s.get('replay_lag_bytes'))} behind")
        )  # fmt: skip
    for slot in activity.get("slots") or []:
        state = "active" if slot.get("active") else "INACTIVE"
        out.append(
            ("slot", f"{slot.get('name')} ({slot.get('type')}, {state}) holds "
             f"{human_bytes(slot.get('retained_bytes'))} of WAL")
        )  # fmt: skip
    return out


def _plan(summary: dict[str, Any]) -> dict[str, Any] | None:
    plan = summary.get("plan")
    return plan if isinstance(plan, dict) else None


def plan_lines(plan: dict[str, Any], report: Report) -> list[str]:
    """The explained statement's tree with the notes around it, as `opscope explain` prints
    it."""
    lines: list[str] = []
    if plan.get("values_from_log"):
        lines.append(f"({plan['values_from_log']})")
    lines += str(plan.get("tree", "")).rstrip("\n").splitlines()
    if plan.get("note"):
        lines.append(f"({plan['note']})")
    if not report.findings:
        lines += ["", "No problems found in this plan."]
    return lines


class DatabaseSection:
    id = "summary"
    kind = KIND

    def terminal(self, report: Report, target: Target) -> RenderableType | None:
        summary = report.summary.get(target.name, {})
        plan = _plan(summary)
        if plan is not None:
            return Group(*(Text(visible(line)) for line in plan_lines(plan, report)), Text(""))
        grid = label_grid(summary_lines(summary))
        return Panel(
            grid,
            title=Text(visible(f"{target.kind} · {target.name}"), style="bold"),
            title_align="left",
            expand=False,
        )

    def markdown(self, report: Report, target: Target) -> str:
        summary = report.summary.get(target.name, {})
        plan = _plan(summary)
        if plan is not None:
            return fence("\n".join(plan_lines(plan, report)), "text")
        rows = summary_lines(summary)
        if not rows:
            return ""
        out = ["| | |", "|---|---|"]
        out += [f"| {label} | {inline(value)} |" for label, value in rows]
        return "\n".join(out)

    def html(self, report: Report, target: Target) -> str:
        summary = report.summary.get(target.name, {})
        plan = _plan(summary)
        return _env.get_template("database_summary.html.j2").render(
            target=target,
            rows=[] if plan is not None else summary_lines(summary),
            plan="\n".join(plan_lines(plan, report)) if plan is not None else None,
        )
