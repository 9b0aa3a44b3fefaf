"""The small base shared by database checks: identity fields and a finding factory."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any, ClassVar

from pglast import keywords

from opscope.db.context import KIND, DbContext
from opscope.findings import Finding, Severity


class DbCheck:
    id: ClassVar[str]
    category: ClassVar[str]
    summary: ClassVar[str]
    kind: ClassVar[str] = KIND

    def run(self, context: DbContext) -> Iterable[Finding]:
        raise NotImplementedError

    def finding(
        self,
        context: DbContext,
        *,
        severity: Severity,
        object: str,
        title: str,
        key: Sequence[object] = (),
        **fields: Any,
    ) -> Finding:
        return Finding.make(
            check=self.id,
            category=self.category,
            severity=severity,
            target=context.target,
            object=object,
            title=title,
            key=key,
            **fields,
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


# Keywords that must be quoted as identifiers: every category but the unreserved one, as
# PostgreSQL's quote_ident does (reserved, type or function names such as LEFT or VERBOSE, and
# column-name keywords such as VALUES), from the keyword list of the parser pglast embeds.
_RESERVED = frozenset(
    word.upper()
    for word in (
        keywords.RESERVED_KEYWORDS | keywords.TYPE_FUNC_NAME_KEYWORDS | keywords.COL_NAME_KEYWORDS
    )
)


def short_query(query: str, limit: int = 80) -> str:
    text = " ".join(query.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"
