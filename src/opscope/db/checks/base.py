"""The small base shared by database checks: identity fields and a finding factory."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any, ClassVar

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


# Words that must be quoted as identifiers; the common ones a table or index might be named.
_RESERVED = frozenset(
    [
        "ALL",
        "ANALYSE",
        "ANALYZE",
        "AND",
        "ANY",
        "ARRAY",
        "AS",
        "ASC",
        "ASYMMETRIC",
        "BOTH",
        "CASE",
        "CAST",
        "CHECK",
        "COLLATE",
        "COLUMN",
        "CONSTRAINT",
        "CREATE",
        "CURRENT_DATE",
        "CURRENT_ROLE",
        "CURRENT_TIME",
        "CURRENT_TIMESTAMP",
        "CURRENT_USER",
        "DEFAULT",
        "DEFERRABLE",
        "DESC",
        "DISTINCT",
        "DO",
        "ELSE",
        "END",
        "EXCEPT",
        "FALSE",
        "FETCH",
        "FOR",
        "FOREIGN",
        "FROM",
        "GRANT",
        "GROUP",
        "HAVING",
        "IN",
        "INITIALLY",
        "INTERSECT",
        "INTO",
        "LATERAL",
        "LEADING",
        "LIMIT",
        "LOCALTIME",
        "LOCALTIMESTAMP",
        "NOT",
        "NULL",
        "OFFSET",
        "ON",
        "ONLY",
        "OR",
        "ORDER",
        "PLACING",
        "PRIMARY",
        "REFERENCES",
        "RETURNING",
        "SELECT",
        "SESSION_USER",
        "SOME",
        "SYMMETRIC",
        "TABLE",
        "THEN",
        "TO",
        "TRAILING",
        "TRUE",
        "UNION",
        "UNIQUE",
        "USER",
        "USING",
        "VARIADIC",
        "WHEN",
        "WHERE",
        "WINDOW",
        "WITH",
        "USER",
        "ORDER",
    ]
)


def short_query(query: str, limit: int = 80) -> str:
    text = " ".join(query.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"
