"""SQL text for people: identifier quoting for the fix SQL we print, and statement texts
shortened for titles. SQL that opscope executes is composed with psycopg.sql instead."""

from __future__ import annotations

from pglast import keywords

# Keywords that must be quoted as identifiers: every category but the unreserved one, as
# PostgreSQL's quote_ident does (reserved, type or function names such as LEFT or VERBOSE, and
# column-name keywords such as VALUES), from the keyword list of the parser pglast embeds.
_RESERVED = frozenset(
    word.upper()
    for word in (
        keywords.RESERVED_KEYWORDS | keywords.TYPE_FUNC_NAME_KEYWORDS | keywords.COL_NAME_KEYWORDS
    )
)


def quote_ident(name: str) -> str:
    """Quote an identifier for the fix SQL we print (never for SQL we execute: that goes
    through psycopg.sql). Same rule as PostgreSQL's quote_ident."""
    if (
        name
        and (name[0].isalpha() or name[0] == "_")
        and name == name.lower()
        and all(c.isalnum() or c in "_$" for c in name)
        and name.upper() not in _RESERVED
    ):
        return name
    return '"' + name.replace('"', '""') + '"'


def qualified(schema: str, name: str) -> str:
    return f"{quote_ident(schema)}.{quote_ident(name)}"


def flatten(text: str) -> str:
    """Runs of white space (newlines included) as one space: a statement on one line."""
    return " ".join(text.split())


def short_query(query: str, limit: int = 80) -> str:
    text = flatten(query)
    return text if len(text) <= limit else text[: limit - 1] + "…"
