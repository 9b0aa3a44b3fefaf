"""Statements as the API area keeps them: a fingerprint that is the same for every execution
of one statement whatever its values (PostgreSQL's own parser, through pglast), and its
normalized text, with the values replaced by $n placeholders.

Both are cached by the text the driver was given: a parametrized query (psycopg's `%s`,
SQLAlchemy's compiled text) is parsed once per process. A text with its values written in
costs one parse per distinct text; that happens only at the end of a request that ran it,
so the cost follows the database work, never the request count."""

from __future__ import annotations

import hashlib
import re
from functools import lru_cache
from typing import NamedTuple

from pglast.parser import ParseError, fingerprint, normalize

from opscope.sqltext import flatten

#: longest normalized text kept: it becomes a label value on /metrics
MAX_TEXT = 500

# psycopg's placeholders (%s, %b, %t, named or not) and its escaped percent
_PSYCOPG_PLACEHOLDER = re.compile(r"%(?:\(\w+\))?[sbt]|%%")
# what the fallback folds when PostgreSQL's parser refuses the text (another dialect through
# SQLAlchemy, a syntax error): quoted strings and numbers
_LITERAL = re.compile(r"'(?:[^']|'')*+'|\b\d+(?:\.\d+)?\b")


class StatementKey(NamedTuple):
    fingerprint: str
    text: str


def _placeholders_to_dollars(text: str) -> str:
    counter = 0

    def repl(m: re.Match[str]) -> str:
        nonlocal counter
        if m.group(0) == "%%":
            return "%"
        counter += 1
        return f"${counter}"

    return _PSYCOPG_PLACEHOLDER.sub(repl, text) if "%" in text else text


def _cut(text: str) -> str:
    return text if len(text) <= MAX_TEXT else text[: MAX_TEXT - 1] + "…"


@lru_cache(maxsize=4096)
def statement_key(text: str) -> StatementKey:
    """The fingerprint and normalized text of `text`, a statement as a driver received it."""
    sql = _placeholders_to_dollars(text)
    try:
        return StatementKey(fingerprint(sql), _cut(flatten(normalize(sql))))
    except (ParseError, ValueError):
        folded = flatten(_LITERAL.sub("?", sql))
        digest = hashlib.sha1(folded.encode(), usedforsecurity=False).hexdigest()[:16]
        return StatementKey(digest, _cut(folded))
