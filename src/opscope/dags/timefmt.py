"""Durations and instants as the pipeline area writes them."""

from __future__ import annotations

from datetime import UTC, datetime


def seconds_text(seconds: float | None) -> str:
    """4.2 s, 12 min 5 s, 3 h 02 min; '-' for unknown."""
    if seconds is None:
        return "-"
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, secs = divmod(round(seconds), 60)
    if minutes < 60:
        return f"{minutes} min {secs} s" if secs else f"{minutes} min"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min"


def instant(ts: float | None) -> str | None:
    """An epoch time as ISO 8601 UTC, to the second."""
    if ts is None:
        return None
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def rounded(value: float | None, digits: int = 3) -> float | None:
    return None if value is None else round(value, digits)
