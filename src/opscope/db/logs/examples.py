"""Real parameter values for a statement, taken from its slowest execution in server logs.

A normalized statement ($1, $2 ...) can only be planned generically; the values the server
logged with its slowest execution give the plan that actually ran slow.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from opscope.db.logs.analyze import aggregate_logs
from opscope.db.logs.normalize import normalize
from opscope.db.logs.options import LogOptions

# $1 = 'it''s', $2 = NULL ; PostgreSQL quotes every value and doubles quotes inside
_PARAM = re.compile(r"\$(\d+) = (?:'((?:[^']|'')*)'|(NULL))")
_SEPARATOR = re.compile(r"\s*,\s*")


@dataclass(frozen=True)
class LogExample:
    """The slowest logged execution of a statement."""

    text: str
    #: values of $1..$n in order, or None when the execution carried no bind parameters
    parameters: tuple[str | None, ...] | None
    duration_ms: float
    ts: str


def parse_parameters(text: str) -> tuple[str | None, ...] | None:
    """Values of a `DETAIL: parameters:` list in $n order; None when the list is not complete
    and exact (a value cut by log_parameter_max_length, a gap, or text we do not recognise)."""
    values: dict[int, str | None] = {}
    pos = 0
    while pos < len(text):
        m = _PARAM.match(text, pos)
        if m is None:
            return None
        number = int(m.group(1))
        value = None if m.group(3) else m.group(2).replace("''", "'")
        if value is not None and value.endswith("...") and len(value) >= 3:
            # log_parameter_max_length truncates with "..."; a cut value would mislead
            return None
        values[number] = value
        pos = m.end()
        sep = _SEPARATOR.match(text, pos)
        if pos < len(text):
            if sep is None or sep.end() == pos:
                return None
            pos = sep.end()
    if not values or sorted(values) != list(range(1, len(values) + 1)):
        return None
    return tuple(values[i] for i in range(1, len(values) + 1))


def slowest_example(paths: Sequence[str], query: str) -> LogExample | None:
    """The slowest execution in `paths` of the statement `query` (literal or normalized)."""
    key = normalize(query)[0]
    aggregate = aggregate_logs(paths, LogOptions())[0]
    stats = aggregate.statements.get(key)
    if stats is None or stats.slowest is None:
        return None
    slowest = stats.slowest
    params = parse_parameters(slowest.parameters) if slowest.parameters else None
    return LogExample(
        text=slowest.query,
        parameters=params,
        duration_ms=slowest.duration_ms,
        ts=slowest.ts,
    )
