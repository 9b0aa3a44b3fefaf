"""What a PostgreSQL fix changes, read from its SQL with PostgreSQL's own parser.

Two findings that create the same index under different names, or an index and a wider one
that starts with the same columns, are one fix; `DROP INDEX` of one index is one fix however
many checks ask for it. Anything else is told apart by its normalized text.
"""

from __future__ import annotations

from pglast import ast, enums, parse_sql
from pglast.stream import RawStream

from opscope.findings import Finding
from opscope.fixes import Change, text_changes
from opscope.sqltext import flatten, short_query


def _relation(rv: ast.RangeVar | None) -> str:
    if rv is None:
        return ""
    return f"{rv.schemaname or 'public'}.{rv.relname}"


def _element(elem: ast.IndexElem) -> str:
    text = elem.name if elem.name is not None else RawStream()(elem.expr or "")
    if elem.opclass:
        text += " " + ".".join(str(s.sval) for s in elem.opclass)
    if elem.ordering == enums.SortByDir.SORTBY_DESC:
        text += " DESC"
    if elem.nulls_ordering == enums.SortByNulls.SORTBY_NULLS_FIRST:
        text += " NULLS FIRST"
    elif elem.nulls_ordering == enums.SortByNulls.SORTBY_NULLS_LAST:
        text += " NULLS LAST"
    return str(text)


def _create_index(stmt: ast.IndexStmt) -> Change:
    table = _relation(stmt.relation)
    columns = tuple(_element(e) for e in stmt.indexParams or ())
    include = tuple(_element(e) for e in stmt.indexIncludingParams or ())
    where = RawStream()(stmt.whereClause) if stmt.whereClause is not None else ""
    method = stmt.accessMethod or "btree"
    variant = "|".join(
        (
            method,
            "unique" if stmt.unique else "",
            "nulls not distinct" if stmt.nulls_not_distinct else "",
            where,
        )
    )
    kind = "a unique index" if stmt.unique else "an index"
    using = "" if method == "btree" else f" using {method}"
    title = f"Create {kind} on {table} ({', '.join(columns)}){using}"
    if include:
        title += f" including ({', '.join(include)})"
    if where:
        title += f" where {where}"
    return Change(
        "create_index",
        table,
        columns,
        include=include,
        variant=variant,
        # a btree on (a, b) serves what one on (a) would; a partial index serves only its rows
        prefix_serves=method == "btree" and not where,
        title=title,
    )


def _changes(stmt: ast.Node, text: str) -> list[Change]:
    if isinstance(stmt, ast.IndexStmt):
        return [_create_index(stmt)]
    if isinstance(stmt, ast.DropStmt) and stmt.removeType == enums.ObjectType.OBJECT_INDEX:
        names = [".".join(str(s.sval) for s in obj) for obj in stmt.objects or ()]
        return [
            Change(
                "drop_index", name if "." in name else f"public.{name}", title=f"Drop index {name}"
            )
            for name in names
        ]
    if isinstance(stmt, ast.VacuumStmt) and stmt.rels:
        options = {str(d.defname).lower() for d in stmt.options or ()}
        if not stmt.is_vacuumcmd:
            action, covers = "analyze", frozenset[str]()
        else:
            action = "vacuum full" if "full" in options else "vacuum"
            covers = frozenset({"vacuum"} | ({"analyze"} if "analyze" in options else set()))
            if "analyze" in options:
                action += " analyze"
        label = {
            "analyze": "Analyze",
            "vacuum": "Vacuum",
            "vacuum analyze": "Vacuum and analyze",
            "vacuum full": "Rewrite (VACUUM FULL)",
            "vacuum full analyze": "Rewrite (VACUUM FULL) and analyze",
        }[action]
        return [
            Change(
                action,
                _relation(r.relation),
                covers=covers,
                title=f"{label} {_relation(r.relation)}",
            )
            for r in stmt.rels
            if r.relation is not None
        ]
    if (
        isinstance(stmt, ast.ReindexStmt)
        and stmt.kind == enums.ReindexObjectType.REINDEX_OBJECT_INDEX
        and stmt.relation is not None
    ):
        index = _relation(stmt.relation)
        return [Change("reindex", index, title=f"Rebuild index {index}")]
    if isinstance(stmt, ast.AlterSystemStmt) and stmt.setstmt is not None and stmt.setstmt.name:
        name = str(stmt.setstmt.name)
        value = ", ".join(RawStream()(arg) for arg in stmt.setstmt.args or ())
        return [Change("set", name, variant=value, title=f"Set {name} to {value}")]
    normalized = flatten(text)
    if normalized.rstrip(";").lower() == "select pg_reload_conf()":
        return []  # what makes an ALTER SYSTEM before it take effect: not a change of its own
    return [Change("sql", normalized, title=short_query(normalized, 70))]


def sql_changes(finding: Finding) -> tuple[Change, ...]:
    """The changes `finding.fix_sql` makes, statement by statement."""
    text = finding.fix_sql or ""
    try:
        statements = parse_sql(text)
    except Exception:  # pglast's ParseError: not SQL we can read; its text tells it apart
        return text_changes(finding)
    out: list[Change] = []
    for raw in statements:
        if raw.stmt is None:
            continue
        start = raw.stmt_location or 0
        piece = text[start : start + raw.stmt_len] if raw.stmt_len else text[start:]
        out.extend(_changes(raw.stmt, piece))
    return tuple(out)
