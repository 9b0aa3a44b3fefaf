"""Index names for fix SQL: at most 63 bytes, cut on a character, free in the schema."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from opscope.db.naming import MAX_NAME_BYTES, IndexNames, fit, name_stem, unique_name


def test_a_63_byte_table_name_never_gives_the_table_its_own_name() -> None:
    table = "t" * 63
    name = unique_name(name_stem([table, "customer_id"]), {table})
    assert name == "t" * 59 + "_idx"
    assert len(name.encode()) == 63 and name != table
    # what PostgreSQL's own truncation of "<table>_customer_id_idx" would give is the table
    assert f"{table}_customer_id_idx".encode()[:63].decode() == table


def test_a_table_name_ending_like_an_index_name_is_numbered_past() -> None:
    # the first 59 bytes and "_idx" rebuild this table's name exactly
    table = "a" * 59 + "_idx"
    assert unique_name(name_stem([table, "c"]), {table}) == "a" * 58 + "_idx1"


def test_multibyte_names_are_cut_on_a_character() -> None:
    table = "é" * 40  # 80 bytes
    name = unique_name(name_stem([table, "ü"]), set())
    assert len(name.encode()) <= 63
    assert name == "é" * 29 + "_idx"  # 58 bytes of é, the 59th would split one
    numbered = unique_name(name_stem([table, "ü"]), {name})
    assert numbered == "é" * 29 + "_idx1" and len(numbered.encode()) == 63
    # a three-byte character at the edge
    assert fit("ab" + "€" * 30, "_idx") == "ab" + "€" * 19 + "_idx"


def test_punctuation_collapses_and_no_trailing_underscore_before_the_suffix() -> None:
    assert name_stem(["users", "lower(email)"]) == "users_lower_email"
    assert name_stem(["t", "(a + b)::text"]) == "t_a_b_text"
    # a cut that ends in "_" does not leave "__idx"
    assert fit("x" * 58 + "_yy", "_idx") == "x" * 58 + "_idx"


def test_an_existing_relation_with_the_truncated_name_is_avoided() -> None:
    table = "t" * 63
    stem = name_stem([table, "c"])
    # a view (or sequence, or another index) already has the name the cut gives
    names = IndexNames([("public", table), ("public", "t" * 59 + "_idx")])
    assert names.name("public", stem, (table, ("c",), ())) == "t" * 58 + "_idx1"
    # the same index asked for again keeps its name; another index with the same stem
    # (another column cut away by the truncation) gets the next number
    assert names.name("public", stem, (table, ("c",), ())) == "t" * 58 + "_idx1"
    assert names.name("public", stem, (table, ("c", "d"), ())) == "t" * 58 + "_idx2"
    # other schemas have their own namespace
    assert names.name("audit", stem, (table, ("c",), ())) == "t" * 59 + "_idx"


identifiers = st.text(
    alphabet=st.characters(blacklist_categories=("Cs", "Cc"), blacklist_characters="\x00"),
    min_size=1,
    max_size=70,
)


@settings(max_examples=300, deadline=None)
@given(
    st.lists(
        st.tuples(identifiers, st.lists(identifiers, min_size=1, max_size=4)),
        min_size=1,
        max_size=12,
    ),
    st.sets(identifiers, max_size=20),
)
def test_names_are_short_valid_and_unique(
    proposals: list[tuple[str, list[str]]], existing: set[str]
) -> None:
    # existing relation names as PostgreSQL stores them: cut to 63 bytes
    taken = {e.encode()[:MAX_NAME_BYTES].decode(errors="ignore") for e in existing}
    names = IndexNames(("s", t) for t in taken)
    given: dict[tuple[str, tuple[str, ...]], str] = {}
    for table, columns in proposals:
        definition = (table, tuple(columns))
        name = names.name("s", name_stem([table, *columns]), definition)
        raw = name.encode()
        assert len(raw) <= MAX_NAME_BYTES
        assert raw.decode() == name  # valid UTF-8: never half a character
        assert name not in taken
        assert given.setdefault(definition, name) == name
    # different definitions, different names
    assert len(set(given.values())) == len(given)
