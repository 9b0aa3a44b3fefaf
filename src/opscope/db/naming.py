"""Names for the indexes opscope proposes (fix SQL) and builds (`--verify --apply`).

PostgreSQL keeps an identifier to NAMEDATALEN - 1 = 63 bytes and silently cuts a longer one,
so `<table>_<column>_idx` for a 63-byte table name comes out as the table's own name and the
DDL fails. Tables, indexes, sequences, views, materialized views, composite types and foreign
tables share one namespace per schema (pg_class), so a name must be free among all of them.
Every index name opscope generates comes from here: cut to 63 bytes of UTF-8 on a character
boundary, then numbered as PostgreSQL numbers its own (`_idx1`, `_idx2`, the number inside the
63 bytes) until no relation of the schema and no other proposal of the same run has it.
"""

from __future__ import annotations

from collections.abc import Collection, Hashable, Iterable

#: PostgreSQL truncates identifiers to NAMEDATALEN - 1 bytes
MAX_NAME_BYTES = 63

#: `--verify --apply` builds each index under this prefix and renames it once it is valid, so
#: an index with the prefix was left by an interrupted build of opscope's own, not a user's
#: (the advisor's names are PostgreSQL's default ones, `orders_customer_id_idx`, which cannot
#: be told apart from a user's `CREATE INDEX ON orders (customer_id)`)
BUILD_PREFIX = "opscope_verify_"


def name_stem(parts: Iterable[str]) -> str:
    """The parts joined by "_"; what is not a letter, digit or "_" becomes "_" and runs of
    them collapse: ("users", "lower(email)") -> "users_lower_email"."""
    text = "".join(c if c.isalnum() or c == "_" else "_" for c in "_".join(parts))
    return "_".join(p for p in text.split("_") if p)


def fit(stem: str, suffix: str) -> str:
    """stem + suffix in at most MAX_NAME_BYTES bytes of UTF-8: the stem is cut (never inside
    a character, and without a trailing "_"), the suffix is kept whole."""
    room = MAX_NAME_BYTES - len(suffix.encode())
    cut = stem.encode()[: max(room, 0)].decode(errors="ignore").rstrip("_")
    return cut + suffix


def unique_name(stem: str, taken: Collection[str], suffix: str = "_idx") -> str:
    """fit(stem, suffix), numbered (suffix + "1", "2", ...) until it is not in `taken`."""
    n = 0
    while True:
        name = fit(stem, suffix + (str(n) if n else ""))
        if name not in taken:
            return name
        n += 1


class IndexNames:
    """The index names one run proposes in one database.

    `relations` are the (schema, name) of every relation there. A name handed out is taken
    for the rest of the run, so two proposals never share one; the same definition asked for
    twice (fk_without_index and missing_index on the same column) gets the same name, so its
    two findings share one fix instead of building the index twice."""

    def __init__(self, relations: Iterable[tuple[str, str]]) -> None:
        self._taken: dict[str, set[str]] = {}
        for schema, name in relations:
            self._taken.setdefault(schema, set()).add(name)
        self._given: dict[tuple[str, Hashable], str] = {}

    def name(self, schema: str, stem: str, definition: Hashable) -> str:
        """A free name for an index of `schema`; `definition` says what the index is (its
        table, keys and INCLUDE columns), so the same index is never named twice."""
        key = (schema, definition)
        if key not in self._given:
            taken = self._taken.setdefault(schema, set())
            name = unique_name(stem, taken)
            taken.add(name)
            self._given[key] = name
        return self._given[key]
