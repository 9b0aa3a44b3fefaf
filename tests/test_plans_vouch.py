"""EXPLAIN ANALYZE never runs a writer hidden where neither the text nor EXPLAIN shows it.

Each trap hides a function that writes to `audit` through dblink (a second session that
commits on its own: neither the EXPLAIN's rollback nor the read-only setting undoes it)
behind one way of reaching it: a cast, a domain's CHECK, a view over a cast, a view over that
view, a row-level security policy, an operator, an aggregate's transition function, an
implicit cast, a function that declares itself immutable. Each test first shows the trap
fires when the statement runs under EXPLAIN ANALYZE as the attack did, then that opscope
plans it without ANALYZE, says why, and `audit` stays empty.
"""

from __future__ import annotations

import json
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest

from conftest import SandboxDb
from opscope.config import ConfigError, load_config
from opscope.db.connection import connect
from opscope.db.plans.explain import explain as explain_plan
from opscope.db.plans.explain import inspect_statement
from opscope.db.plans.reach import Call, OperatorUse, names_in
from opscope.db.plans.signature import parse_function_entry
from opscope.db.plans.vouch import ReadOnly, why_not_run
from opscope.db.sections import summary_lines
from opscope.db.settings import PlanSettings, SessionSettings
from opscope.plugins import default_plugins


def _write(db: SandboxDb) -> str:
    remote = f"host=127.0.0.1 port={db.cluster.port} dbname={db.name} user=postgres"
    return f"dblink_exec('{remote}', 'INSERT INTO audit VALUES (1)')"  # noqa: S608


@pytest.fixture
def trapped(db: SandboxDb) -> SandboxDb:
    db.execute(
        "CREATE EXTENSION dblink",
        "CREATE TABLE audit (id int)",
        # SECURITY DEFINER: dblink connects without a password for superusers only, and
        # the policy's trap fires for an ordinary role
        "CREATE FUNCTION write_audit() RETURNS bool SECURITY DEFINER LANGUAGE sql AS "
        f"$$ SELECT {_write(db)} IS NOT NULL $$",
        "CREATE TABLE t (id int)",
        "INSERT INTO t VALUES (1)",
        "CREATE TYPE mood AS ENUM ('ok')",
        "CREATE FUNCTION to_mood(int) RETURNS mood LANGUAGE sql AS "
        "$$ SELECT CASE WHEN write_audit() THEN 'ok'::mood END $$",
        "CREATE CAST (int AS mood) WITH FUNCTION to_mood(int)",
        "CREATE FUNCTION checked(int) RETURNS bool LANGUAGE sql AS $$ SELECT write_audit() $$",
        "CREATE DOMAIN watched AS int CHECK (checked(VALUE))",
        "CREATE VIEW moods AS SELECT id::mood AS m FROM t",
        "CREATE VIEW moods_again AS SELECT m FROM moods",
        "CREATE TABLE secret (id int)",
        "INSERT INTO secret VALUES (1)",
        "ALTER TABLE secret ENABLE ROW LEVEL SECURITY",
        "ALTER TABLE secret FORCE ROW LEVEL SECURITY",
        "CREATE POLICY guard ON secret USING (checked(id))",
        "CREATE FUNCTION op_write(int, int) RETURNS bool LANGUAGE sql AS "
        "$$ SELECT write_audit() $$",
        "CREATE OPERATOR ~~~ (leftarg = int, rightarg = int, function = op_write)",
        "CREATE FUNCTION tally_step(int, int) RETURNS int LANGUAGE sql AS "
        "$$ SELECT CASE WHEN write_audit() THEN $1 + $2 END $$",
        "CREATE AGGREGATE tally(int) (sfunc = tally_step, stype = int, initcond = '0')",
        # a cast the server applies on its own, to call a read-only function
        "CREATE FUNCTION text_mood(text) RETURNS mood LANGUAGE sql AS "
        "$$ SELECT CASE WHEN write_audit() THEN 'ok'::mood END $$",
        "CREATE CAST (text AS mood) WITH FUNCTION text_mood(text) AS IMPLICIT",
        "CREATE FUNCTION describe(mood) RETURNS text IMMUTABLE LANGUAGE sql AS "
        "$$ SELECT 'mood ' || $1::text $$",
        "CREATE TABLE people (name text)",
        "INSERT INTO people VALUES ('ok')",
        # volatility is a claim anyone can make
        "CREATE FUNCTION liar(int) RETURNS int IMMUTABLE LANGUAGE sql AS "
        "$$ SELECT CASE WHEN write_audit() THEN $1 END $$",
        "CREATE FUNCTION double_it(int) RETURNS int LANGUAGE sql AS $$ SELECT $1 * 2 $$",
        "CREATE VIEW lies AS SELECT liar(1) AS x",
        "CREATE FUNCTION stable_liar() RETURNS int STABLE LANGUAGE sql AS "
        "$$ SELECT CASE WHEN write_audit() THEN 1 END $$",
        # an integer argument becomes a `watched` without any cast: the domain's CHECK runs
        "CREATE FUNCTION takes_watched(w watched) RETURNS int LANGUAGE plpgsql AS "
        "$$ BEGIN RETURN w; END $$",
    )
    return db


@pytest.fixture
def reader(trapped: SandboxDb) -> Iterator[str]:
    """The role opscope recommends (pg_monitor), for which row-level security applies."""
    role = "r_" + uuid.uuid4().hex[:10]
    trapped.execute(
        f"CREATE ROLE {role} LOGIN IN ROLE pg_monitor",
        f"GRANT SELECT ON ALL TABLES IN SCHEMA public TO {role}",
    )
    yield role
    trapped.execute(f"DROP OWNED BY {role}", f"DROP ROLE {role}")


def audit_rows(db: SandboxDb) -> int:
    with db.connect() as conn:
        row = conn.execute("SELECT count(*) FROM audit").fetchone()
    assert row is not None
    return int(row[0])


def fires(db: SandboxDb, statement: str, role: str = "postgres") -> bool:
    """Whether EXPLAIN ANALYZE of `statement`, in a read-only session as opscope's, writes
    to audit (and empties it again)."""
    dsn = db.cluster.dsn(db.name, user=role)
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("SET default_transaction_read_only = on")
        with conn.transaction(force_rollback=True):
            conn.execute(f"EXPLAIN ANALYZE {statement}".encode())
    wrote = audit_rows(db) > 0
    db.execute("TRUNCATE audit")
    return wrote


def opscope(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "opscope", *args], capture_output=True, text=True, timeout=120
    )


def explained(dsn: str, statement: str, *extra: str) -> dict[str, Any]:
    proc = opscope("explain", dsn, statement, "-f", "json", *extra)
    assert proc.returncode == 0, proc.stderr
    plan: dict[str, Any] = next(iter(json.loads(proc.stdout)["summary"].values()))["plan"]
    return plan


TRAPS = [
    pytest.param(
        "SELECT id::mood FROM t",
        "cast integer -> mood uses public.to_mood(integer), which is not known to be read-only",
        id="cast",
    ),
    pytest.param(
        "SELECT id::watched FROM t",
        "constraint watched_check of domain watched uses public.checked(integer)",
        id="domain",
    ),
    pytest.param(
        "SELECT * FROM moods", "view public.moods uses public.to_mood(integer)", id="view-cast"
    ),
    pytest.param(
        "SELECT * FROM moods_again",
        "view public.moods_again > view public.moods uses public.to_mood(integer)",
        id="view-view",
    ),
    pytest.param(
        "SELECT id FROM t WHERE id ~~~ id",
        "operator public.~~~(integer, integer) uses public.op_write(integer, integer)",
        id="operator",
    ),
    pytest.param("SELECT tally(id) FROM t", "it calls public.tally(integer)", id="aggregate"),
]

#: statements that reach a function which only claims to be immutable or stable: the planner
#: itself runs such a function on constant arguments, so even a plain EXPLAIN writes
PLANNER_TRAPS = [
    pytest.param("SELECT liar(1)", id="constant-argument"),
    pytest.param("SELECT * FROM t WHERE id = liar(1)", id="in-a-filter"),
    pytest.param("SELECT liar(id) FROM t", id="column-argument"),
    pytest.param("SELECT * FROM lies", id="through-a-view"),
    pytest.param("SELECT * FROM t WHERE id = stable_liar()", id="stable-no-argument"),
]


def plain_explain_fires(db: SandboxDb, statement: str) -> bool:
    """Whether a plain EXPLAIN (no ANALYZE) of `statement` in a read-only session writes."""
    with db.connect() as conn:
        conn.execute("SET default_transaction_read_only = on")
        conn.execute(f"EXPLAIN {statement}".encode())
    wrote = audit_rows(db) > 0
    db.execute("TRUNCATE audit")
    return wrote


@pytest.mark.parametrize("statement", PLANNER_TRAPS)
def test_the_planner_never_runs_a_function_that_lies_about_its_volatility(
    trapped: SandboxDb, statement: str
) -> None:
    if "liar(id)" not in statement:  # a column argument is not folded: planning is harmless
        assert plain_explain_fires(trapped, statement)
    for extra in ((), ("--no-analyze",), ("--analyze",)):
        proc = opscope("explain", trapped.dsn, statement, *extra)
        assert proc.returncode == 2, proc.stdout
        [line] = proc.stderr.strip().splitlines()
        assert line.startswith("opscope: error: not explained, not even planned: it reaches ")
        assert "which the planner itself may run" in line
        assert audit_rows(trapped) == 0


def test_an_allowlisted_function_is_planned_and_run(trapped: SandboxDb, tmp_path: Path) -> None:
    cfg = tmp_path / "opscope.yaml"
    cfg.write_text("postgresql:\n  plans:\n    read_only_functions: [public.double_it]\n")
    trapped.execute(
        "CREATE FUNCTION honest(int) RETURNS int IMMUTABLE LANGUAGE sql AS $$ SELECT $1 + 1 $$"
    )
    refused = opscope("explain", trapped.dsn, "SELECT honest(1)")
    assert refused.returncode == 2 and "public.honest(integer)" in refused.stderr
    cfg.write_text("postgresql:\n  plans:\n    read_only_functions: [public.honest]\n")
    proc = opscope("explain", trapped.dsn, "SELECT honest(1)", "-c", str(cfg), "-f", "json")
    assert proc.returncode == 0, proc.stderr
    plan = next(iter(json.loads(proc.stdout)["summary"].values()))["plan"]
    assert plan["analyzed"] is True


@pytest.mark.parametrize(("statement", "reason"), TRAPS)
def test_a_hidden_writer_is_never_analyzed(trapped: SandboxDb, statement: str, reason: str) -> None:
    assert fires(trapped, statement)
    plan = explained(trapped.dsn, statement)
    assert plan["analyzed"] is False
    assert plan["note"].startswith("not run (no ANALYZE): ")
    assert reason in plan["note"]
    # asking for it explicitly changes nothing
    assert explained(trapped.dsn, statement, "--analyze")["analyzed"] is False
    assert audit_rows(trapped) == 0


@pytest.mark.parametrize(
    ("statement", "vouched", "reason"),
    [
        *[pytest.param(p.values[0], "", p.values[1], id=p.id) for p in TRAPS],
        pytest.param("SELECT * FROM secret", "", "policy guard on public.secret uses", id="policy"),
        pytest.param(
            "SELECT describe(name) FROM people",
            "public.describe(mood)",
            "cast text -> mood uses public.text_mood(text)",
            id="implicit-cast",
        ),
        pytest.param(
            "SELECT takes_watched(id) FROM t",
            "public.takes_watched",
            "constraint watched_check of domain watched uses public.checked(integer)",
            id="domain-argument",
        ),
    ],
)
def test_the_text_and_the_catalog_suffice(
    trapped: SandboxDb, statement: str, vouched: str, reason: str
) -> None:
    # no plan to help: what EXPLAIN prints only ever adds to what is checked
    read_only = ReadOnly(functions=(vouched,) if vouched else ())
    with connect(trapped.dsn, SessionSettings()) as conn:
        note = why_not_run(conn, inspect_statement(statement).names, [], read_only)
    assert note is not None and reason in note


def test_a_policy_calling_a_writer_is_refused_whatever_the_role(
    trapped: SandboxDb, reader: str
) -> None:
    statement = "SELECT * FROM secret"
    # the policy applies to an ordinary role (a superuser bypasses row-level security)
    assert fires(trapped, statement, reader)
    for dsn in (trapped.cluster.dsn(trapped.name, user=reader), trapped.dsn):
        plan = explained(dsn, statement)
        assert plan["analyzed"] is False
        assert "policy guard on public.secret uses public.checked(integer)" in plan["note"]
    assert audit_rows(trapped) == 0


@pytest.mark.parametrize(
    ("statement", "vouched", "reason"),
    [
        pytest.param(
            "SELECT describe(name) FROM people",
            "public.describe(mood)",
            "cast text -> mood uses public.text_mood(text)",
            id="implicit-cast",
        ),
        pytest.param(
            "SELECT takes_watched(id) FROM t",
            "public.takes_watched",
            "constraint watched_check of domain watched uses public.checked(integer)",
            id="domain-argument",
        ),
    ],
)
def test_what_a_vouched_function_needs_to_be_called(
    trapped: SandboxDb, tmp_path: Path, statement: str, vouched: str, reason: str
) -> None:
    assert fires(trapped, statement)
    # the function is vouched for, but reaching it from the statement's types runs a writer
    # that neither the text nor (for the domain) EXPLAIN shows
    cfg = tmp_path / "opscope.yaml"
    cfg.write_text(f"postgresql:\n  plans:\n    read_only_functions: ['{vouched}']\n")
    plan = explained(trapped.dsn, statement, "-c", str(cfg))
    assert plan["analyzed"] is False
    assert reason in plan["note"]
    assert audit_rows(trapped) == 0


def test_built_in_writers_in_a_view_are_refused(db: SandboxDb) -> None:
    # pinned built-ins are never recorded in pg_depend: the view's node tree names them
    db.execute("CREATE VIEW grab AS SELECT pg_try_advisory_lock(4242) AS locked")
    with connect(db.dsn, SessionSettings()) as conn:
        result = explain_plan(conn, "SELECT * FROM grab")
        assert not result.plan.analyzed
        assert "view public.grab uses pg_catalog.pg_try_advisory_lock(bigint)" in result.note
        with db.connect() as other:
            row = other.execute(
                "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory'"
            ).fetchone()
        assert row == (0,)


def test_plain_reads_over_built_ins_are_still_analyzed(trapped: SandboxDb) -> None:
    # the same database holds every trap above: refusing must stay targeted
    for statement in (
        "SELECT count(*), max(id), now(), lower('x'), random() FROM t WHERE id = 1",
        "SELECT id::text AS s, id::bigint AS b, 'ok'::mood AS m FROM t ORDER BY id",
        "SELECT name, length(name) FROM people WHERE name LIKE 'o%' AND name BETWEEN 'a' AND 'z'",
        "SELECT random()",  # public has no random() here, but stays harmless if it had
    ):
        plan = explained(trapped.dsn, statement)
        assert plan["analyzed"] is True, (statement, plan["note"])


def test_a_function_the_config_vouches_for_is_run(trapped: SandboxDb, tmp_path: Path) -> None:
    statement = "SELECT double_it(id) FROM t"
    refused = explained(trapped.dsn, statement)
    assert refused["analyzed"] is False
    assert "it calls public.double_it(integer)" in refused["note"]
    cfg = tmp_path / "opscope.yaml"
    for entry in ("public.double_it(int)", "public.double_it", '"public".DOUBLE_IT(integer)'):
        cfg.write_text(f"postgresql:\n  plans:\n    read_only_functions: ['{entry}']\n")
        plan = explained(trapped.dsn, statement, "-c", str(cfg))
        assert plan["analyzed"] is True, (entry, plan["note"])
    # an entry that names no function allows nothing, and says so
    cfg.write_text(
        "postgresql:\n  plans:\n    read_only_functions: [public.double_it(text), public.nope]\n"
    )
    plan = explained(trapped.dsn, statement, "-c", str(cfg))
    assert plan["analyzed"] is False
    assert "entry 'public.double_it(text)' matches no function" in plan["note"]
    assert "entry 'public.nope' matches no function" in plan["note"]
    # vouching for one function does not vouch for its neighbours
    cfg.write_text("postgresql:\n  plans:\n    read_only_functions: [public.double_it]\n")
    plan = explained(trapped.dsn, "SELECT double_it(id), id::mood FROM t", "-c", str(cfg))
    assert plan["analyzed"] is False and "public.to_mood(integer)" in plan["note"]
    assert audit_rows(trapped) == 0


def test_a_trusted_extension_is_trusted_for_its_read_only_functions(
    trapped: SandboxDb, tmp_path: Path
) -> None:
    trapped.execute(
        "CREATE EXTENSION citext",
        "CREATE TABLE names (n citext)",
        "INSERT INTO names VALUES ('Ada')",
    )
    statement = "SELECT * FROM names WHERE n = 'ada'"
    plan = explained(trapped.dsn, statement)
    assert plan["analyzed"] is False
    assert "type citext uses public.citext" in plan["note"]
    cfg = tmp_path / "opscope.yaml"
    cfg.write_text("postgresql:\n  plans:\n    read_only_extensions: [citext, dblink]\n")
    assert explained(trapped.dsn, statement, "-c", str(cfg))["analyzed"] is True
    # a volatile function stays refused, even of an extension the user trusts
    write = f"SELECT {_write(trapped)}"
    plan = explained(trapped.dsn, write, "-c", str(cfg))
    assert plan["analyzed"] is False and "public.dblink_exec(text, text)" in plan["note"]
    assert audit_rows(trapped) == 0


def test_copy_to_program_is_never_run(db: SandboxDb, tmp_path: Path) -> None:
    marker = tmp_path / "ran"
    proc = opscope("explain", db.dsn, f"COPY (SELECT 1) TO PROGRAM 'touch {marker}'")
    assert proc.returncode == 2
    assert "only SELECT" in proc.stderr and "Traceback" not in proc.stderr
    assert not marker.exists()


def test_analyze_db_never_runs_a_refused_workload_statement(
    trapped: SandboxDb, reader: str, tmp_path: Path
) -> None:
    traps = [str(p.values[0]) for p in TRAPS]
    unplannable = [str(p.values[0]) for p in PLANNER_TRAPS]
    control = "SELECT count(*) FROM t"
    with trapped.connect() as conn:
        conn.execute("SELECT pg_stat_statements_reset()")
        # the application runs them: that is how they reach pg_stat_statements
        for statement in [*traps, *unplannable, control]:
            conn.execute(statement.encode()).fetchall()
    with psycopg.connect(trapped.cluster.dsn(trapped.name, user=reader)) as conn:
        conn.execute("SELECT * FROM secret").fetchall()
    assert audit_rows(trapped) >= len(traps) + len(unplannable) + 1
    trapped.execute("TRUNCATE audit")

    cfg = tmp_path / "opscope.yaml"
    cfg.write_text(
        f"state_dir: {tmp_path / 'state'}\npostgresql:\n  plans:\n    review_statements: 50\n"
    )
    proc = opscope("analyze", "db", trapped.dsn, "-c", str(cfg), "--check", "plan_seq_scan")
    assert proc.returncode == 0, proc.stderr
    assert audit_rows(trapped) == 0
    # the server's own record of what opscope sent: every trap was planned, none was run
    with trapped.connect() as conn:
        sent = [
            str(r[0])
            for r in conn.execute(
                "SELECT query FROM pg_stat_statements WHERE query LIKE 'EXPLAIN /* opscope */%'"
            )
        ]
    analyzed = {q.split(") ", 1)[1] for q in sent if "ANALYZE" in q}
    planned = {q.split(") ", 1)[1] for q in sent if "ANALYZE" not in q}
    refused = {*traps, "SELECT * FROM secret"}
    assert refused <= planned
    assert control in analyzed and not analyzed & refused
    # those whose planning alone would run a lying function were not even planned
    everything = {q.split(") ", 1)[1] for q in sent}
    assert not {s.replace("1", "$1") for s in unplannable} & everything
    assert not set(unplannable) & everything
    # connected as a superuser: said once, with the grants that are enough
    assert proc.stdout.count("superuser: opscope needs only pg_monitor") == 1


def test_the_superuser_notice_is_only_for_superusers(trapped: SandboxDb, reader: str) -> None:
    for dsn, expected in ((trapped.dsn, True), (trapped.cluster.dsn(trapped.name, reader), False)):
        proc = opscope("analyze", "db", dsn, "-f", "json", "--check", "plan_seq_scan")
        assert proc.returncode == 0, proc.stderr
        summary = next(iter(json.loads(proc.stdout)["summary"].values()))
        assert summary["superuser"] is expected
        lines = [value for label, value in summary_lines(summary) if label == "role"]
        assert len(lines) == (1 if expected else 0)


def test_initdb_objects_use_only_read_only_built_ins(db: SandboxDb) -> None:
    # vouch_reach.sql does not follow the functions of objects initdb created: it relies on
    # every one of them being an immutable or stable built-in, on every server version
    with db.connect() as conn:
        row = conn.execute(
            """
            WITH used(oid) AS (
                SELECT castfunc FROM pg_cast WHERE oid < 16384 AND castfunc <> 0
                UNION SELECT unnest(ARRAY[oprcode, oprrest, oprjoin]::oid[])
                FROM pg_operator WHERE oid < 16384
                UNION SELECT unnest(ARRAY[typinput, typoutput, typmodin, typmodout,
                                          typsubscript]::oid[])
                FROM pg_type WHERE oid < 16384
                UNION SELECT unnest(ARRAY[aggtransfn, aggfinalfn, aggcombinefn, aggserialfn,
                                          aggdeserialfn, aggmtransfn, aggminvtransfn,
                                          aggmfinalfn]::oid[])
                FROM pg_aggregate WHERE aggfnoid < 16384
                UNION SELECT prosupport FROM pg_proc WHERE oid < 16384
            )
            SELECT array_agg(p.oid::regprocedure::text)
            FROM used JOIN pg_proc p ON p.oid = used.oid
            WHERE p.provolatile = 'v' OR p.oid >= 16384
               OR p.pronamespace <> 'pg_catalog'::regnamespace
            """
        ).fetchone()
    assert row == (None,)


# -- pure parts ---------------------------------------------------------------------------


def test_names_the_text_reaches_without_naming_them() -> None:
    from pglast import parse_sql

    names = names_in(
        parse_sql(
            "SELECT t.side, (t).x, f(1, 'a'), g(t.id), x BETWEEN 1 AND 2, "
            "CASE y WHEN 1 THEN 2 END, 'a'::public.mood "
            "FROM s.t JOIN u USING (id) ORDER BY id USING <"
        )[0].stmt
    )
    assert {("s", "t"), ("", "u")} <= names.relations
    assert ("public", "mood") in names.types
    assert Call("", "side", 1, free=False) in names.calls  # t.side may be side(t)
    assert Call("", "x", 1, free=False) in names.calls
    assert Call("", "f", 2, free=True) in names.calls  # 'a' fits any overload
    assert Call("", "g", 1, free=False) in names.calls
    ops = {(o.name, o.free) for o in names.operators}
    assert {(">=", False), ("<=", False)} <= ops  # BETWEEN
    assert OperatorUse("", "=", free=False) in names.operators  # USING, CASE y WHEN
    assert OperatorUse("", "<", free=False) in names.operators


def test_function_entries_of_the_config() -> None:
    e = parse_function_entry('Public."MyFn"(numeric(10, 2), double precision, text[])')
    assert (e.schema, e.name, e.args) == (
        "public",
        "MyFn",
        ("numeric(10, 2)", "double precision", "text[]"),
    )
    assert parse_function_entry("app.refresh").args is None
    assert parse_function_entry("app.now()").args == ()
    for bad in ("refresh", "app.f(int", "app.f(int; DROP TABLE x)", "a.b.c"):
        with pytest.raises(ValueError):
            parse_function_entry(bad)
    assert PlanSettings(read_only_functions=("app.f(int)",)).read_only_functions == ("app.f(int)",)


def test_a_bad_config_entry_is_one_line(tmp_path: Path) -> None:
    cfg = tmp_path / "opscope.yaml"
    cfg.write_text("postgresql:\n  plans:\n    read_only_functions:\n      - refresh_all\n")
    with pytest.raises(ConfigError, match=r"opscope.yaml:\d+: .*read_only_functions.*schema\.name"):
        load_config(cfg, default_plugins().config)
    proc = opscope("explain", "postgresql://u@127.0.0.1:1/x", "SELECT 1", "-c", str(cfg))
    assert proc.returncode == 2 and len(proc.stderr.strip().splitlines()) == 1, proc.stderr
