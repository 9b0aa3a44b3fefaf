"""Index review on a real cluster: each test builds the situation and asserts the finding."""

from __future__ import annotations

import psycopg
import pytest

from conftest import SandboxDb, flush_stats, found, objects


def test_duplicate_index_recommends_dropping_the_one_backing_no_constraint(db: SandboxDb) -> None:
    db.execute(
        "CREATE TABLE orders (id int PRIMARY KEY, customer_id int, note text)",
        "INSERT INTO orders SELECT g, g % 500, 'n' FROM generate_series(1, 5000) g",
        "CREATE INDEX orders_customer_a ON orders (customer_id)",
        "CREATE INDEX orders_customer_b ON orders (customer_id)",
        # same column, other predicate or method: not duplicates
        "CREATE INDEX orders_customer_partial ON orders (customer_id) WHERE note IS NULL",
        "CREATE INDEX orders_customer_hash ON orders USING hash (customer_id)",
        # a duplicate of the primary key: the one to drop is the plain index
        "CREATE UNIQUE INDEX orders_id_copy ON orders (id)",
    )
    report = db.analyze()
    dups = found(report, "duplicate_index")
    assert {f.object for f in dups} == {"public.orders_customer_b", "public.orders_id_copy"}
    by_obj = {f.object: f for f in dups}
    assert by_obj["public.orders_id_copy"].evidence["duplicate_of"] == "public.orders_pkey"
    assert by_obj["public.orders_id_copy"].fix_sql == (
        "DROP INDEX CONCURRENTLY public.orders_id_copy;"
    )
    assert by_obj["public.orders_customer_b"].columns == ("customer_id",)


def test_prefix_redundant_index(db: SandboxDb) -> None:
    db.execute(
        "CREATE TABLE events (id bigint PRIMARY KEY, account int, kind text, at timestamptz)",
        "CREATE INDEX events_account ON events (account)",
        "CREATE INDEX events_account_kind ON events (account, kind)",
        # a prefix of events_kind_at below
        "CREATE INDEX events_kind ON events (kind)",
        # not compatible: the wider index is partial, the narrower is not
        "CREATE INDEX events_at ON events (at)",
        "CREATE INDEX events_at_kind_recent ON events (at, kind) WHERE at > '2026-01-01'",
        # a descending key is not served by an ascending one for this check
        "CREATE INDEX events_kind_desc ON events (kind DESC)",
        "CREATE INDEX events_kind_at ON events (kind, at)",
    )
    report = db.analyze()
    redundant = {f.object: f for f in found(report, "redundant_index")}
    assert set(redundant) == {"public.events_account", "public.events_kind"}
    assert redundant["public.events_account"].evidence["covered_by"] == (
        "public.events_account_kind"
    )
    assert redundant["public.events_kind"].evidence["covered_by"] == "public.events_kind_at"
    db.execute("DROP INDEX events_kind_at")
    assert objects(db.analyze(), "redundant_index") == {"public.events_account"}


def test_unused_index_but_never_constraint_indexes(db: SandboxDb) -> None:
    db.execute(
        "CREATE TABLE users (id int PRIMARY KEY, email text NOT NULL UNIQUE, team int, name text)",
        "INSERT INTO users SELECT g, 'u' || g, g % 10, 'n' FROM generate_series(1, 20000) g",
        "CREATE INDEX users_team ON users (team)",
        "CREATE INDEX users_name ON users (name)",
        "CREATE UNIQUE INDEX users_name_team ON users (name, id)",
        "ALTER TABLE users REPLICA IDENTITY USING INDEX users_email_key",
        "ANALYZE users",
    )
    with db.connect() as conn:
        conn.execute("SET enable_seqscan = off")
        conn.execute("SELECT * FROM users WHERE team = 3").fetchall()
        flush_stats(conn)
    report = db.analyze()
    unused = found(report, "unused_index")
    # users_team was scanned; the pk, the unique constraint, the unique index and the replica
    # identity are never proposed, scanned or not
    assert {f.object for f in unused} == {"public.users_name"}
    f = unused[0]
    assert f.evidence["idx_scan"] == 0
    assert f.evidence["stats_age_days"] >= 0
    assert "stats_since" in f.evidence
    assert f.fix_sql == "DROP INDEX CONCURRENTLY public.users_name;"


def test_invalid_index_from_failed_concurrent_build(db: SandboxDb) -> None:
    db.execute(
        "CREATE TABLE accounts (id int, code text)",
        "INSERT INTO accounts SELECT g, 'same' FROM generate_series(1, 100) g",
    )
    with db.connect() as conn, pytest.raises(psycopg.errors.UniqueViolation):
        conn.execute("CREATE UNIQUE INDEX CONCURRENTLY accounts_code ON accounts (code)")
    report = db.analyze()
    invalid = found(report, "invalid_index")
    assert [f.object for f in invalid] == ["public.accounts_code"]
    assert invalid[0].fix_sql == "DROP INDEX CONCURRENTLY public.accounts_code;"
    assert "CREATE UNIQUE INDEX CONCURRENTLY accounts_code" in invalid[0].recommendation
    # an invalid index is not also reported as unused or duplicate
    assert not found(report, "unused_index", "public.accounts_code")


def test_foreign_key_without_index(db: SandboxDb) -> None:
    db.execute(
        "CREATE TABLE customers (id int PRIMARY KEY)",
        "CREATE TABLE invoices (id int PRIMARY KEY, customer_id int REFERENCES customers,"
        " issuer_id int REFERENCES customers, region int, branch int)",
        "CREATE TABLE branches (region int, branch int, PRIMARY KEY (region, branch))",
        "ALTER TABLE invoices ADD CONSTRAINT invoices_branch_fk FOREIGN KEY (region, branch)"
        " REFERENCES branches",
        "CREATE INDEX invoices_issuer ON invoices (issuer_id, id)",
        # columns in the other order still serve the composite key
        "CREATE INDEX invoices_branch ON invoices (branch, region)",
        "INSERT INTO customers SELECT generate_series(1, 100)",
        "DELETE FROM customers WHERE id > 90",
    )
    report = db.analyze()
    fks = found(report, "fk_without_index")
    assert [(f.object, f.columns) for f in fks] == [("public.invoices", ("customer_id",))]
    assert fks[0].fix_sql == (
        "CREATE INDEX CONCURRENTLY invoices_customer_id_idx ON public.invoices (customer_id);"
    )
    assert fks[0].severity.value == "warning"  # the referenced table sees deletes


def test_index_bloat_after_mass_updates(db: SandboxDb) -> None:
    db.execute(
        "CREATE TABLE readings (id int, value int) WITH (autovacuum_enabled = false)",
        "INSERT INTO readings SELECT g, g FROM generate_series(1, 200000) g",
        "CREATE INDEX readings_value ON readings (value)",
        "CREATE INDEX readings_id ON readings (id)",
        "ANALYZE readings",
        # every update changes the indexed column: a new entry in each index per row
        "UPDATE readings SET value = value + 1",
        "UPDATE readings SET value = value + 1",
    )
    report = db.analyze()
    bloated = {f.object: f for f in found(report, "index_bloat")}
    assert "public.readings_value" in bloated
    f = bloated["public.readings_value"]
    assert f.evidence["bloat_ratio"] >= 0.3
    assert f.fix_sql == "REINDEX INDEX CONCURRENTLY public.readings_value;"
    # after a rebuild the estimate is close to the size: no finding
    db.execute("VACUUM readings", "REINDEX TABLE readings", "ANALYZE readings")
    assert not found(db.analyze(), "index_bloat")


def test_index_bloat_on_mixed_case_and_keyword_columns(db: SandboxDb) -> None:
    db.execute(
        'CREATE TABLE meters ("Value" int, "left" int) WITH (autovacuum_enabled = false)',
        "INSERT INTO meters SELECT g, g FROM generate_series(1, 100000) g",
        'CREATE INDEX meters_value ON meters ("Value", "left")',
        'CREATE INDEX meters_expr ON meters (("Value" + 1))',
        "ANALYZE meters",
        'UPDATE meters SET "Value" = "Value" + 1',
        'UPDATE meters SET "Value" = "Value" + 1',
    )
    bloated = {f.object: f for f in found(db.analyze(), "index_bloat")}
    assert "public.meters_value" in bloated
    assert "public.meters_expr" in bloated


def test_same_key_unique_and_plain_is_one_duplicate_finding(db: SandboxDb) -> None:
    db.execute(
        "CREATE TABLE u (a int NOT NULL, b int)",
        "CREATE UNIQUE INDEX u_a_uniq ON u (a)",
        "CREATE INDEX u_a ON u (a)",
        # unique indexes that treat NULLs differently enforce different things
        "CREATE UNIQUE INDEX u_b_nnd ON u (b) NULLS NOT DISTINCT",
        "CREATE UNIQUE INDEX u_b ON u (b)",
    )
    report = db.analyze()
    assert objects(report, "duplicate_index") == {"public.u_a"}
    [dup] = found(report, "duplicate_index")
    assert dup.evidence["duplicate_of"] == "public.u_a_uniq"
    assert dup.fix_sql == "DROP INDEX CONCURRENTLY public.u_a;"
    assert not found(report, "redundant_index")


def test_duplicate_replica_identity_index_is_never_dropped(db: SandboxDb) -> None:
    db.execute(
        "CREATE TABLE r (id int PRIMARY KEY, v text)",
        "CREATE UNIQUE INDEX r_id_copy ON r (id)",
        "ALTER TABLE r REPLICA IDENTITY USING INDEX r_id_copy",
    )
    [dup] = found(db.analyze(), "duplicate_index")
    assert dup.object == "public.r_id_copy"
    assert dup.fix_sql is None
    assert "ALTER TABLE public.r REPLICA IDENTITY DEFAULT;" in dup.recommendation


def test_unused_index_that_alone_serves_a_foreign_key_is_kept(db: SandboxDb) -> None:
    db.execute(
        "CREATE TABLE parents (id int PRIMARY KEY)",
        "CREATE TABLE kids (id int PRIMARY KEY, parent_id int REFERENCES parents, tag int)",
        "CREATE INDEX kids_parent ON kids (parent_id)",
        "CREATE INDEX kids_tag ON kids (tag)",
    )
    unused = {f.object: f for f in found(db.analyze(), "unused_index")}
    assert unused["public.kids_tag"].fix_sql == "DROP INDEX CONCURRENTLY public.kids_tag;"
    kept = unused["public.kids_parent"]
    assert kept.fix_sql is None and kept.severity.value == "info"
    assert kept.evidence["serves_fk"] == "kids_parent_id_fkey"
    # with a second index serving the key, the unused one may go
    db.execute("CREATE INDEX kids_parent_tag ON kids (parent_id, tag)")
    unused = {f.object: f for f in found(db.analyze(), "unused_index")}
    assert unused["public.kids_parent"].fix_sql == "DROP INDEX CONCURRENTLY public.kids_parent;"


def test_partitioned_tables_in_the_index_review(db: SandboxDb) -> None:
    db.execute(
        "CREATE TABLE accts (id int PRIMARY KEY) PARTITION BY RANGE (id)",
        "CREATE TABLE accts_1 PARTITION OF accts FOR VALUES FROM (0) TO (1000)",
        "CREATE TABLE accts_2 PARTITION OF accts FOR VALUES FROM (1000) TO (2000)",
        # referencing a partitioned table: PostgreSQL clones the constraint per partition
        "CREATE TABLE refs (id int PRIMARY KEY, acct int REFERENCES accts)",
        # a foreign key on a partitioned table, served by an index on the parent
        "CREATE TABLE lines (id int, acct int REFERENCES accts, note int) PARTITION BY RANGE (id)",
        "CREATE TABLE lines_1 PARTITION OF lines FOR VALUES FROM (0) TO (1000)",
        "CREATE INDEX lines_acct ON lines (acct)",
        # and one that is not
        "CREATE TABLE moves (id int, acct int REFERENCES accts) PARTITION BY RANGE (id)",
        "CREATE TABLE moves_1 PARTITION OF moves FOR VALUES FROM (0) TO (1000)",
        "CREATE INDEX lines_note ON lines (note)",
    )
    report = db.analyze()
    fks = {f.object: f for f in found(report, "fk_without_index")}
    assert set(fks) == {"public.refs", "public.moves"}
    assert fks["public.moves"].fix_sql == ("CREATE INDEX moves_acct_idx ON public.moves (acct);")
    assert "concurrently" in fks["public.moves"].recommendation
    unused = {f.object: f for f in found(report, "unused_index")}
    # the partitions' indexes attached to lines_note cannot be dropped on their own
    assert "public.lines_1_note_idx" not in unused
    assert unused["public.lines_note"].fix_sql == "DROP INDEX public.lines_note;"
    assert "public.lines_1_acct_idx" not in unused
    for f in found(report, "duplicate_index") + found(report, "redundant_index"):
        assert "lines_1" not in f.object


def test_invalid_partitioned_index_is_not_rebuilt_concurrently(db: SandboxDb) -> None:
    db.execute(
        "CREATE TABLE m (id int, at date) PARTITION BY RANGE (at)",
        "CREATE TABLE m_2026 PARTITION OF m FOR VALUES FROM ('2026-01-01') TO ('2027-01-01')",
        # ON ONLY leaves the parent's index invalid until every partition's is attached
        "CREATE INDEX m_id ON ONLY m (id)",
    )
    [f] = found(db.analyze(), "invalid_index", "public.m_id")
    assert "ATTACH PARTITION" in f.recommendation
    assert "CREATE INDEX CONCURRENTLY" not in f.recommendation
    assert f.fix_sql == "DROP INDEX public.m_id;"


def test_fk_index_name_fits_a_63_byte_table_name_and_its_fix_runs(db: SandboxDb) -> None:
    table = "rechnungen_" + "ü" * 26  # 63 bytes of UTF-8, 37 characters
    assert len(table.encode()) == 63
    # the name the 63-byte cut gives is already a view's: tables, views, sequences and
    # indexes share one namespace per schema
    taken = "rechnungen_" + "ü" * 24 + "_idx"
    db.execute(
        "CREATE TABLE customers (id int PRIMARY KEY)",
        f'CREATE TABLE "{table}" (id int PRIMARY KEY, customer_id int REFERENCES customers)',
        f'CREATE VIEW "{taken}" AS SELECT 1 AS one',
    )
    [fk] = found(db.analyze(), "fk_without_index")
    name = "rechnungen_" + "ü" * 23 + "_idx1"  # cut on a character, the number inside 63
    assert fk.fix_sql == f"CREATE INDEX CONCURRENTLY {name} ON public.{table} (customer_id);"
    assert fk.fix_sql is not None
    db.execute(fk.fix_sql)
    with db.connect() as conn:
        row = conn.execute(
            "SELECT c.relname, i.indisvalid, i.indrelid::regclass::text FROM pg_index i"
            " JOIN pg_class c ON c.oid = i.indexrelid WHERE c.relname = %s",
            [name],
        ).fetchone()
    assert row == (name, True, f'"{table}"')
    assert not found(db.analyze(), "fk_without_index")


def test_invalid_index_left_by_opscope_is_recognised(db: SandboxDb) -> None:
    db.execute(
        "CREATE TABLE accounts (id int, code text)",
        "INSERT INTO accounts SELECT g, 'same' FROM generate_series(1, 100) g",
    )
    with db.connect() as conn:
        for name in ("opscope_verify_accounts_code_idx", "accounts_code_idx"):
            with pytest.raises(psycopg.errors.UniqueViolation):
                conn.execute(f"CREATE UNIQUE INDEX CONCURRENTLY {name} ON accounts (code)")
    invalid = {f.object: f for f in found(db.analyze(), "invalid_index")}
    ours = invalid["public.opscope_verify_accounts_code_idx"]
    assert ours.evidence["left_by_opscope"] is True
    assert "interrupted opscope indexes advise --verify --apply" in ours.title
    assert ours.fix_sql == "DROP INDEX CONCURRENTLY public.opscope_verify_accounts_code_idx;"
    # a user's own failed build, named as PostgreSQL (and the advisor) name indexes, is not
    theirs = invalid["public.accounts_code_idx"]
    assert "left_by_opscope" not in theirs.evidence
    assert "CREATE UNIQUE INDEX CONCURRENTLY accounts_code_idx" in theirs.recommendation
