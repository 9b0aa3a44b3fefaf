"""Real parameter values of normalized statements, from pg_qualstats.

pg_stat_statements keeps texts with ``$n`` in place of constants. pg_qualstats samples
executions: its example query of a statement, and the constants of each qual with their
position in that text. When the example itself still says ``$n`` (the application bound its
parameters), the constant recorded at that position is the value that was bound to it, so
the statement can be planned with real values (a custom plan) and, when read-only, run.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import psycopg

from opscope.db.connection import SqlRunner
from opscope.db.plans.explain import ExplainFailed, inspect_statement


@dataclass(frozen=True)
class Sample:
    #: the example text: with constants, or with $n whose values are `params`
    text: str
    params: tuple[str, ...] | None = None

    @property
    def complete(self) -> bool:
        """Every parameter has a value: the sample can be run."""
        try:
            count = inspect_statement(self.text).param_count
        except ExplainFailed:
            return False
        return count == 0 or (self.params is not None and len(self.params) >= count)


_PARAM_AT = re.compile(r"\$(\d+)")
_QUOTED = re.compile(r"^'((?:[^']|'')*)'(?:::.*)?$", re.DOTALL)
_PLAIN = re.compile(r"^\(?(-?[0-9.eE+-]+|true|false)\)?(?:::.*)?$")


def constant_value(text: str) -> str | None:
    """The value of a constant as pg_qualstats prints it ('a'::text, 5::integer)."""
    m = _QUOTED.match(text)
    if m:
        return m.group(1).replace("''", "'")
    m = _PLAIN.match(text)
    return m.group(1) if m else None


def bind_params(text: str, constants: Mapping[int, str]) -> tuple[str, ...] | None:
    """Values for $1..$n of `text`, from constants keyed by their position in it."""
    values: dict[int, str] = {}
    for position, raw in constants.items():
        m = _PARAM_AT.match(text, position)
        value = constant_value(raw)
        if m and value is not None:
            values[int(m.group(1))] = value
    if not values:
        return None
    count = max(values)
    if set(values) != set(range(1, count + 1)):
        return None
    return tuple(values[i] for i in range(1, count + 1))


def read_samples(runner: SqlRunner, has_pg_qualstats: bool) -> dict[int, Sample]:
    if not has_pg_qualstats:
        return {}
    try:
        examples = runner.fetch("qualstats_examples")
        constants = runner.fetch("qualstats_constants")
    except psycopg.Error:
        return {}  # not preloaded, or not allowed: plans stay generic
    by_query: dict[int, dict[int, str]] = {}
    for row in constants:
        by_query.setdefault(int(row["queryid"]), {})[int(row["constant_position"])] = str(
            row["constvalue"]
        )
    out: dict[int, Sample] = {}
    for row in examples:
        queryid, text = int(row["queryid"]), str(row["query"])
        params = bind_params(text, by_query.get(queryid, {})) if "$" in text else None
        out[queryid] = Sample(text, params)
    return out


def sample_args(sample: Sample | None) -> Sequence[Any] | None:
    return sample.params if sample is not None else None
