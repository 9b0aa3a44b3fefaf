"""Errors as one line: what the CLI, the report's `errors` and the service show."""

from __future__ import annotations


def first_line(exc: BaseException) -> str:
    """The first line of an error's message (psycopg adds DETAIL, HINT and CONTEXT lines), or
    the exception's type when it has no message."""
    lines = str(exc).strip().splitlines()
    return lines[0].strip() if lines else type(exc).__name__


def flat_message(exc: BaseException) -> str:
    """`Type: message` on one line, for failures nobody anticipated (a check's bug)."""
    return " ".join(f"{type(exc).__name__}: {exc}".split())
