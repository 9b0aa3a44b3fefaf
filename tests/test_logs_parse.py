"""The log parser, normalizer and aggregation on plain inputs (no server needed)."""

# ruff: noqa: E501, E101 - log lines are long and continuation lines start with a tab

from __future__ import annotations

import gzip
import json
import lzma
import os
import random
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from opscope.config import Config
from opscope.db.logs import aggregate as aggregate_module
from opscope.db.logs import normalize as normalize_module
from opscope.db.logs import parse_stderr as parse_stderr_module
from opscope.db.logs import sessions
from opscope.db.logs.aggregate import EXACT_LIMIT, Quantiles
from opscope.db.logs.analyze import analyze_logs, parse_chunk
from opscope.db.logs.normalize import normalize, normalize_cache, regex_normalize
from opscope.db.logs.options import LogOptions
from opscope.db.logs.parse_stderr import DURATION, duration_end, parse_stderr
from opscope.db.logs.parse_syslog import year_for
from opscope.db.logs.prefix import PrefixError, compile_prefix, detect_prefix
from opscope.db.logs.reader import chunks, csv_splitter, detect_format, stderr_splitter
from opscope.db.logs.sessions import ChunkState, Merger
from opscope.redact import redact
from opscope.report import render

PREFIX = "%m [%p] %q%u@%d "
STDERR = """\
2024-05-01 10:00:00.001 UTC [100] LOG:  database system is ready to accept connections
2024-05-01 10:00:01.000 UTC [200] app@shop LOG:  duration: 1.500 ms  statement: SELECT * FROM orders WHERE id = 42
2024-05-01 10:00:01.100 UTC [200] app@shop LOG:  duration: 2.500 ms  statement: SELECT * FROM orders WHERE id = 43
2024-05-01 10:00:02.000 UTC [201] app@shop LOG:  duration: 1500.250 ms  execute S_1: SELECT * FROM items
	WHERE sku = $1
	  AND qty > $2
2024-05-01 10:00:02.000 UTC [201] app@shop DETAIL:  parameters: $1 = 'ab''c', $2 = '7'
2024-05-01 10:01:00.000 UTC [202] app@shop ERROR:  duplicate key value violates unique constraint "orders_pkey"
2024-05-01 10:01:00.000 UTC [202] app@shop DETAIL:  Key (id)=(1) already exists.
2024-05-01 10:01:00.000 UTC [202] app@shop STATEMENT:  INSERT INTO orders VALUES (1)
2024-05-01 10:01:01.000 UTC [203] app@shop LOG:  temporary file: path "base/pgsql_tmp/pgsql_tmp203.0", size 1048576
2024-05-01 10:01:01.000 UTC [203] app@shop STATEMENT:  SELECT * FROM big ORDER BY x
2024-05-01 10:01:02.000 UTC [203] app@shop LOG:  duration: 900.000 ms  statement: SELECT * FROM big ORDER BY x
"""


def run(tmp_path: Path, text: str, name: str = "pg.log", **options: Any) -> dict[str, Any]:
    path = tmp_path / name
    path.write_text(text)
    report = analyze_logs(Config(), [str(path)], LogOptions(**options))
    log: dict[str, Any] = report.summary["log"]
    return log


def test_stderr_entries(tmp_path: Path) -> None:
    log = run(tmp_path, STDERR, prefix=PREFIX)
    assert log["queries"] == 4
    assert log["bad_entries"]["count"] == 0
    top = {s["query"]: s for s in log["top_by_count"]}
    orders = top["SELECT * FROM orders WHERE id = $1"]
    assert (orders["calls"], orders["total_ms"], orders["max_ms"]) == (2, 4.0, 2.5)
    slowest = log["slowest"][0]
    assert slowest["query"] == "SELECT * FROM items\nWHERE sku = $1\n  AND qty > $2"
    assert slowest["parameters"] == "$1 = 'ab''c', $2 = '7'"
    assert (slowest["kind"], slowest["database"], slowest["user"]) == ("execute", "shop", "app")
    assert log["errors"]["by_sqlstate"] == {"23505": 1}
    assert log["errors"]["top_messages"][0]["statement"] == "INSERT INTO orders VALUES (1)"
    assert log["temp_files"]["top_statements"][0]["total_bytes"] == 1048576
    assert [m["minute"] for m in log["per_minute"]] == ["2024-05-01 10:00", "2024-05-01 10:01"]
    assert log["first"].startswith("2024-05-01 10:00:00.001")


def test_prefix_detection() -> None:
    assert detect_prefix(STDERR) == PREFIX
    line = "2024-05-01 10:00:00 UTC [7]: user=a,db=b,app=psql,client=[local] LOG:  x\n"
    assert detect_prefix(line * 3) == "%t [%p]: user=%u,db=%d,app=%a,client=%h "
    assert detect_prefix("no postgres here\n") is None


def test_prefix_escapes() -> None:
    compiled = compile_prefix("%n %-8u %e %c %Q %i ")
    m = compiled.entry.match("1714557600.123 alice    22012 6632f1.1f 99 SELECT ERROR:  x")
    assert m is not None
    assert m.group("user") == "alice" and m.group("sqlstate") == "22012"
    assert m.group("qid") == "99" and m.group("tag") == "SELECT"
    with pytest.raises(PrefixError):
        compile_prefix("%m %Z")


def test_unknown_prefix_falls_back_to_generic(tmp_path: Path) -> None:
    text = (
        "<2024-05-01 10:00:01.000 UTC> {pid [55]} LOG:  duration: 3.000 ms  statement: select 1\n"
    )
    log = run(tmp_path, text * 3)
    assert log["queries"] == 3
    assert log["files"][0]["prefix"] == "<generic>"


def test_min_duration_and_filters(tmp_path: Path) -> None:
    assert run(tmp_path, STDERR, prefix=PREFIX, min_duration_ms=100)["queries"] == 2
    assert run(tmp_path, STDERR, prefix=PREFIX, database="nope")["queries"] == 0

    since = datetime.fromisoformat("2024-05-01 10:00:02")
    assert run(tmp_path, STDERR, prefix=PREFIX, since=since)["queries"] == 2


def test_normalization_matches_pg_stat_statements() -> None:
    key, text = normalize("select * from t where a in (1, 2, 3) and b = 'x'")
    assert text == "select * from t where a in ($1 /*, ... */) and b = $2"
    assert normalize("SELECT *  FROM t WHERE a IN (7) AND b = 'y'")[0] == key
    assert normalize("select * from t where c = 1")[0] != key
    # Parameters already there keep their numbers; constants come after them.
    assert normalize("select $1, 5")[1] == "select $1, $2"
    # Not SQL PostgreSQL accepts: the fallback still replaces literals.
    assert regex_normalize("selec 'a' + 12 from t1") == "selec $1 + $2 from t1"


# Statement texts whose digits are literal values, and ones where a digit is a name, an
# ordinal, a type modifier, a comment, a parameter or a hex prefix: the texts of one shape
# (same text, other digits) must each normalize as PostgreSQL's normalizer alone does.
_SHAPE_TEMPLATES = (
    "UPDATE pgbench_accounts SET abalance = abalance + {} WHERE aid = {};",
    "select * from t where a in ({}, {}) and b = '{} day'",
    "select * from t order by {}, a limit {}",
    "select * from t{} where a = {}",
    "select {}::float({})",
    "select {} /* {} */",
    'select "col {}" from t where a = {}',
    "select ${}, {}",
    "select 0x{}F, {}",
    "select -({}) + {}",
    "select {}.{}e5",
)


@settings(max_examples=300, deadline=None)
@given(
    st.sampled_from(_SHAPE_TEMPLATES),
    st.lists(st.integers(0, 10**12).map(str), min_size=4, max_size=4),
    st.lists(st.integers(0, 10**12).map(str), min_size=4, max_size=4),
)
def test_texts_of_one_shape_normalize_as_the_parser_does(
    template: str, first: list[str], second: list[str]
) -> None:
    for values in (first, second):
        text = template.format(*values)
        assert normalize(text) == normalize_module._normalize(text)


@settings(max_examples=1000, deadline=None)
@given(
    st.one_of(
        # \u0663 and \uff15 are digits of other scripts (isdecimal, \d), \xe9 is none
        st.text(alphabet="0123456789. ms-e\u0663\uff15\xe9x", max_size=30),
        st.from_regex(r"\A\d{1,17}(\.\d{0,3})?\.? ms(  statement: x)?\Z"),
        st.from_regex(r"\A[0-9]{1,16}\.[0-9]{1,16} ms\Z"),
        st.floats(0, 1e12).map(lambda d: f"{d:.3f} ms"),
    )
)
def test_duration_end_reads_what_the_pattern_reads(tail: str) -> None:
    msg = "duration: " + tail
    m = DURATION.match(msg)
    assert duration_end(msg) == (m.end() if m else -1)
    # the digit-by-digit reading and the string tests it leaves other scripts to agree
    assert parse_stderr_module._duration_end(msg) == duration_end(msg)
    if m:
        assert float(msg[10 : duration_end(msg) - 3]) == float(m.group(1))
        # the number made of its digits is the one float() reads, to the last bit
        assert parse_stderr_module.read_duration(msg)[1] == float(m.group(1))


def _duration_form(rest: str) -> tuple[str, str] | None:
    """What follows `duration: N ms`, read with plain startswith tests: the execution's
    kind and text, or None where the line is no execution (a parse, bind or plan)."""
    if rest.startswith("  statement: "):
        return "statement", rest[13:]
    if rest.startswith("  execute "):
        colon = rest.find(": ", 10)
        return "execute", rest[colon + 2 :] if colon >= 0 else rest[1:]
    if rest.startswith(("  plan:", "  parse ", "  prepare ", "  bind ")):
        return None
    body = rest.lstrip()
    colon = body.find(": ")
    return "other", body[colon + 2 :] if colon >= 0 else body


@settings(max_examples=500, deadline=None)
@given(
    st.text(alphabet=" :stamenxcuS_1plbid", min_size=1, max_size=24)
    | st.sampled_from(
        ["  statement: ", "  execute ", "  execute S_1: ", "  statemen", "  executx", "  s", "  e"]
    ).flatmap(lambda head: st.text(alphabet=" :ex1", max_size=8).map(lambda t: head + t))
)
def test_duration_forms_read_as_by_startswith(rest: str) -> None:
    # The parser tells the forms apart by a character before `find`; it must read each
    # as the plain tests do.
    form = _duration_form(rest)
    assume(form is None or form[1].strip())
    line = f"2024-05-01 10:00:01.000 UTC [200] app@shop LOG:  duration: 1.500 ms{rest}\n"
    agg = parse_chunk("stderr", PREFIX, line.encode(), LogOptions(prefix=PREFIX)).aggregate
    if form is None:
        assert agg.queries == 0
    else:
        assert agg.queries == 1
        record = agg.slowest[0][2]
        assert (record.kind, record.query) == form


def test_shape_cache_skips_the_parser_only_for_literal_digits() -> None:
    base = "select * from shape_test where a = {} and b = 'x{}'"
    normalize(base.format(1, 2))
    shapes = dict(normalize_module._by_shape)
    assert any(v != normalize_module._UNTRUSTED for v in shapes.values())
    # digits in a table name: the shape is known and never trusted
    normalize("select * from shape_test7 where a = 5")
    assert normalize_module._by_shape[b"select * from shape_test0 where a = 0"] == (
        normalize_module._UNTRUSTED
    )
    assert normalize("select * from shape_test8 where a = 5")[1] == (
        "select * from shape_test8 where a = $1"
    )


def test_passwords_are_redacted(tmp_path: Path) -> None:
    assert redact("ALTER ROLE x PASSWORD 'hunter2'") == "ALTER ROLE x PASSWORD '********'"
    assert (
        redact("alter role x password E'a\\'b' login") == "alter role x password '********' login"
    )
    assert redact("alter role x password $q$sec'ret$q$") == "alter role x password '********'"
    assert redact("alter role x password 'cut off\nhere") == "alter role x password '********'"
    assert "s3cr3t" not in redact("select dblink_connect('host=h password=s3cr3t')")
    assert "s3cr3t" not in redact("postgresql://bob:s3cr3t@host/db")
    head = "2024-05-01 10:00:00.000 UTC [7] u@d "
    text = (
        f"{head}LOG:  duration: 1.000 ms  execute S_1: ALTER ROLE x PASSWORD $1\n"
        f"{head}DETAIL:  parameters: $1 = 'Param1Secret'\n"
        f'{head}ERROR:  syntax error at or near "Msg2Secret"\n'
        f"{head}STATEMENT:  ALTER ROLE x PASSWORD Msg2Secret\n"
        "ALTER ROLE x PASSWORD 'Bad3Secret' (a stray line)\n"
    )
    log = run(tmp_path, text, prefix=PREFIX)
    out = json.dumps(log)
    assert log["queries"] == 1 and log["bad_entries"]["count"] == 1
    assert "Param1" not in out and "Bad3" not in out


def test_quantiles_exact_then_within_one_percent() -> None:
    values = [random.Random(7).uniform(0.1, 5000) for _ in range(EXACT_LIMIT * 5)]
    rng = random.Random(3)
    rng.shuffle(values)
    sketch, other = Quantiles(), Quantiles()
    for v in values[:100]:
        sketch.add(v)
    assert sketch.is_exact
    assert sketch.quantile(0.5) == sorted(values[:100])[49]
    for v in values[100:]:
        other.add(v)
    sketch.merge(other)
    assert not sketch.is_exact and sketch.count == len(values)
    ordered = sorted(values)
    for q in (0.5, 0.95, 0.99):
        true = ordered[max(1, -(-int(q * 1000) * len(values) // 1000)) - 1]
        assert abs(sketch.quantile(q) - true) <= true * 0.011


def test_splitters_cut_only_between_entries() -> None:
    data = STDERR.encode()
    pieces = list(chunks(iter([data[i : i + 50] for i in range(0, len(data), 50)]),
                         stderr_splitter(compile_prefix(PREFIX)), 64))  # fmt: skip
    assert b"".join(pieces) == data
    for piece in pieces[1:]:
        assert not piece.startswith((b"\t",)) and b"DETAIL" not in piece.split(b"\n", 1)[0]
    csv = b'a,"x\n2024-05-01 10:00:00.000 UTC,still inside",b\nc,d\n'
    assert csv_splitter(csv) == len(csv)
    assert csv_splitter(csv[:-4]) == csv.index(b"c,d")


def test_duration_only_lines_take_the_logged_statement(tmp_path: Path) -> None:
    text = (
        "2024-05-01 10:00:00.000 UTC [9] LOG:  statement: select pg_sleep(1)\n"
        "2024-05-01 10:00:01.000 UTC [8] LOG:  statement: select 2\n"
        "2024-05-01 10:00:01.000 UTC [9] LOG:  duration: 1001.000 ms\n"
        "2024-05-01 10:00:01.000 UTC [8] LOG:  duration: 0.100 ms\n"
        "2024-05-01 10:00:02.000 UTC [7] LOG:  duration: 0.200 ms\n"
    )
    for chunk_bytes in (1 << 20, 16):
        for jobs in (1, 2):
            log = run(tmp_path, text, prefix="%m [%p] ", chunk_bytes=chunk_bytes, jobs=jobs)
            queries = {s["query"]: s["calls"] for s in log["top_by_count"]}
            assert queries == {
                "select pg_sleep($1)": 1,
                "select $1": 1,
                "(duration logged without its statement)": 1,
            }


def test_bad_lines_are_counted(tmp_path: Path) -> None:
    text = STDERR + "garbage line\n\tmore garbage\n" + STDERR.splitlines()[1] + "\n"
    log = run(tmp_path, text, prefix=PREFIX)
    assert log["queries"] == 5
    assert log["bad_entries"]["count"] == 2
    assert "garbage line" in log["bad_entries"]["samples"][0]


def test_csv_with_broken_record(tmp_path: Path) -> None:
    good = (
        '2024-05-01 10:00:00.000 UTC,"u","d",5,"[local]",663.5,1,"SELECT",'
        '2024-05-01 10:00:00 UTC,3/0,0,LOG,00000,"duration: 2.000 ms  statement: select 1",'
        ',,,,,,,,"psql","client backend",,0\n'
    )
    log = run(tmp_path, good + "2024-05-01 10:00:00.000 UTC,only,three\n" + good, name="x.csv")
    assert log["files"][0]["format"] == "csvlog"
    assert log["queries"] == 2 and log["bad_entries"]["count"] == 1


def test_json_with_broken_line(tmp_path: Path) -> None:
    good = (
        '{"timestamp":"2024-05-01 10:00:00.000 UTC","pid":5,"error_severity":"LOG",'
        '"message":"duration: 2.000 ms  statement: select 1"}\n'
    )
    log = run(tmp_path, good + '{"timestamp": "2024-05\n' + good, name="x.json")
    assert log["queries"] == 2 and log["bad_entries"]["count"] == 1


def test_format_detection_needs_real_csv_and_skips_other_daemons(tmp_path: Path) -> None:
    wide = (
        "2024-05-01 10:00:00.000 UTC [7] u@d LOG:  duration: 1.000 ms  statement: "
        "select a, b, c, d, e, f, g, h, i, j, k, l, m from t\n"
    )
    assert detect_format(wide.encode()) == "stderr"
    # The zone followed by a comma, but far from 23 fields: stderr by majority.
    odd = "2024-05-01 10:00:00.000 UTC,x LOG:  hello\n"
    assert detect_format((odd + wide * 3).encode()) == "stderr"
    log = run(tmp_path, wide * 3, prefix=PREFIX)
    assert log["files"][0]["format"] == "stderr" and log["queries"] == 3
    syslog = (
        "Nov 28 20:15:54 dbhost systemd[1]: Started PostgreSQL Cluster 16-main.\n"
        "Nov 28 20:15:54 dbhost kernel: eth0 up\n"
        "Nov 28 20:15:55 dbhost postgres[123]: [1-1] LOG:  duration: 2.000 ms  statement: select 1\n"
    )
    assert detect_format(syslog.encode()) == "syslog"
    csv_record = (
        '2024-05-01 10:00:00.000 UTC,"u","d",5,"[local]",663.5,1,"SELECT",'
        '2024-05-01 10:00:00 UTC,3/0,0,LOG,00000,"duration: 2.000 ms  statement: select 1,\n'
        '  2, 3",,,,,,,,"psql","client backend",,0\n'
    )
    assert detect_format((csv_record * 5).encode()) == "csvlog"


def test_bad_durations_are_bad_entries(tmp_path: Path) -> None:
    head = "2024-05-01 10:00:00.000 UTC [7] u@d LOG:  "
    good = head + "duration: 1.500 ms  statement: select 1\n"
    bad = [
        "duration: inf ms  statement: select 1",
        "duration: nan ms  statement: select 1",
        "duration: -5 ms  statement: select 1",
        "duration: 1e3 ms  statement: select 1",
        "duration: " + "9" * 400 + " ms  statement: select 1",
        "duration: 1234.5",  # cut off: no " ms", no text
    ]
    # More than EXACT_LIMIT executions: the sketch would take log(inf) of a bad value.
    text = good * (EXACT_LIMIT + 10) + "".join(head + b + "\n" for b in bad) + good
    log = run(tmp_path, text, prefix=PREFIX)
    assert log["queries"] == EXACT_LIMIT + 11
    assert log["bad_entries"]["count"] == len(bad)
    assert log["total_ms"] == 1.5 * (EXACT_LIMIT + 11)
    assert {s["query"] for s in log["top_by_count"]} == {"select $1"}
    csv_head = '2024-05-01 10:00:00.000 UTC,"u","d",5,"[local]",663.5,1,"SELECT",2024-05-01 10:00:00 UTC,3/0,0,LOG,00000,"'
    csv_tail = '",,,,,,,,"psql","client backend",,0\n'
    log = run(tmp_path, "".join(csv_head + b + csv_tail for b in bad), name="x.csv")
    assert (log["queries"], log["bad_entries"]["count"]) == (0, len(bad))


def test_corrupt_json_plan_keeps_its_raw_text(tmp_path: Path) -> None:
    text = (
        "2024-05-01 10:00:00.123 UTC [123] u@d LOG:  duration: 1500.5 ms  plan:\n"
        '\t{\n\t  "Query Text": "select \\\\q \\x",\n\t  "Plan": {\n'
    )
    log = run(tmp_path, text, prefix=PREFIX)
    assert log["queries"] == 1
    assert '"Plan": {' in log["slowest"][0]["plan"]
    record = {
        "timestamp": "2024-05-01 10:00:00.000 UTC",
        "pid": 5,
        "error_severity": "LOG",
        "message": 'duration: 3.000 ms  plan:\n{"Query Text": "select \\x", "Plan": {',
    }
    log = run(tmp_path, json.dumps(record) + "\n", name="x.json")
    assert log["queries"] == 1 and log["slowest"][0]["query"] == "select \\x"


def test_query_parameters_of_pg16_plans(tmp_path: Path) -> None:
    text = (
        "2024-05-01 10:00:00.123 UTC [123] u@d LOG:  duration: 1500.500 ms  plan:\n"
        "\tQuery Text: select * from t where id = $1\n"
        "\tQuery Parameters: $1 = '42'\n"
        "\tIndex Scan using t_pkey on t  (cost=0.15..8.17 rows=1 width=36)\n"
        "\t  Index Cond: (id = $1)\n"
    )
    log = run(tmp_path, text, prefix=PREFIX)
    slowest = log["slowest"][0]
    assert slowest["query"] == "select * from t where id = $1"
    assert slowest["parameters"] == "$1 = '42'"
    assert slowest["plan"].startswith("Index Scan")
    plan = {"Query Text": "select $1", "Query Parameters": "$1 = 'x'", "Plan": {}}
    record = {
        "timestamp": "2024-05-01 10:00:00.000 UTC",
        "pid": 5,
        "error_severity": "LOG",
        "message": "duration: 3.000 ms  plan:\n" + json.dumps(plan),
    }
    log = run(tmp_path, json.dumps(record) + "\n", name="x.json")
    assert log["slowest"][0]["parameters"] == "$1 = 'x'"


def test_documented_prefixes_are_detected_whole(tmp_path: Path) -> None:
    docs = "2024-05-01 10:00:00.000 UTC [7] alice@work app=psql qid=-42 LOG:  duration: 1.000 ms  statement: select 1\n"
    manual = "2024-05-01 10:00:00.000 UTC [7] alice@work/psql LOG:  duration: 1.000 ms  statement: select 1\n"
    checkpoint = "2024-05-01 10:00:00.000 UTC [9] LOG:  checkpoint starting: time\n"
    assert detect_prefix(docs * 3 + checkpoint) == "%m [%p] %q%u@%d app=%a qid=%Q "
    assert detect_prefix(manual * 3 + checkpoint) == "%m [%p] %q%u@%d/%a "
    log = run(tmp_path, docs * 3, database="work")
    assert log["queries"] == 3 and log["top_by_count"][0]["query_ids"] == ["-42"]


def test_filters_that_keep_nothing_warn_about_the_prefix(tmp_path: Path) -> None:
    text = "2024-05-01 10:00:00.000 UTC [7] alice@work app=psql LOG:  duration: 1.000 ms  statement: select 1\n"
    path = tmp_path / "pg.log"
    path.write_text(text * 2)
    # A wrong --prefix: %d reads "work app=psql", which is no database named work.
    report = analyze_logs(Config(), [str(path)], LogOptions(prefix=PREFIX, database="work"))
    assert report.summary["queries"] == 0
    assert [e.check for e in report.errors] == ["log_filter"]
    assert "may be wrong" in report.errors[0].message
    report = analyze_logs(Config(), [str(path)], LogOptions(database="work"))
    assert report.summary["queries"] == 2 and not report.errors


def test_generic_prefix_is_linear_on_bracket_runs(tmp_path: Path) -> None:
    """One 200 kB line of `[1] ` without a level: the generic pattern used to try every
    bracket as the pid against every later position (quadratic: 35 s for 80 kB, hours for
    this one); now it reads it in milliseconds. No timing is asserted: the test completing
    is the check, and pytest --durations shows the time."""
    line = "2024-05-01 10:00:00.000 UTC " + "[1] " * 50_000 + "\n"
    entry = "<2024-05-01 10:00:01.000 UTC> {pid [55]} [x] LOG:  duration: 3.000 ms  statement: select 1\n"
    log = run(tmp_path, entry * 3 + line + entry, prefix="<generic>")
    assert log["queries"] == 4 and log["bad_entries"]["count"] == 1
    assert log["slowest"][0]["pid"] == "55"


def test_free_text_fields_are_linear_on_long_lines(tmp_path: Path) -> None:
    """Three 100 kB lines full of '@' that are no entry: the lazy, unbounded %u@%d fields
    tried every '@' against every later space (1 min 44 s for this input); bounded to the
    63-byte names PostgreSQL allows, it takes well under a second. The test completing is the
    check; no timing is asserted."""
    entry = "2024-05-01 10:00:00.000 UTC [123] u@d LOG:  duration: 1.000 ms  statement: select 1\n"
    noise = "2024-05-01 10:00:00.000 UTC [123] " + "a@" * 50_000 + "\n"
    log = run(tmp_path, entry * 5 + noise * 3, prefix="%m [%p] %q%u@%d ")
    assert log["queries"] == 5 and log["bad_entries"]["count"] == 3


def test_control_characters_never_reach_terminal_or_markdown(tmp_path: Path) -> None:
    head = "2024-05-01 10:00:00.123 UTC [123] u\x1b[2J@db "
    lines = [
        "LOG:  duration: 1500.5 ms  statement: select 1 /* \x1b]0;pwned\x07 \x1b[31mRED \x9b2J */",
        'ERROR:  relation "x\x1b[2J" does not exist',
        'STATEMENT:  select * from "x\x1b[2J"',
        'LOG:  temporary file: path "x", size 10',
        'STATEMENT:  select "\x1b[2J" from t order by 1',
    ]
    text = "".join(head + line + "\n" for line in lines)
    path = tmp_path / "pg.log"
    path.write_text(text)
    report = analyze_logs(Config(), [str(path)], LogOptions(prefix=PREFIX, slow_ms=1000))
    assert report.summary["queries"] == 1 and report.findings
    for fmt in ("terminal", "markdown"):
        out = render(report, fmt)
        assert not [c for c in out if (ord(c) < 32 and c not in "\n\t") or 0x7F <= ord(c) < 0xA0]
        assert "^[[31mRED" in out or fmt == "markdown"


def _numbered_log(n: int) -> bytes:
    rng = random.Random(5)
    return "".join(
        f"2024-05-01 10:00:00.000 UTC [{i % 50}] u@d LOG:  duration: {rng.random():.3f} ms  "
        f"statement: select {rng.getrandbits(64)} + abs({i % 97})\n"
        for i in range(n)
    ).encode()


def test_damaged_gzip_keeps_what_comes_before_the_damage(tmp_path: Path) -> None:
    n = 40_000
    packed = bytearray(gzip.compress(_numbered_log(n)))
    assert len(packed) < 1 << 20  # one read of the raw file: it used to lose it all
    middle = len(packed) // 2
    packed[middle : middle + 200] = b"\xff" * 200
    path = tmp_path / "pg.log.gz"
    path.write_bytes(bytes(packed))
    report = analyze_logs(Config(), [str(path)], LogOptions(prefix=PREFIX))
    assert "ends early" in report.errors[0].message
    # 64 kB of compressed input at most is lost with the damage
    assert report.summary["queries"] >= n * 0.4


@pytest.mark.parametrize("compress", [gzip.compress, lzma.compress])
def test_trailing_garbage_after_a_complete_stream_is_a_warning(
    tmp_path: Path, compress: Any
) -> None:
    data = _numbered_log(100)
    path = tmp_path / "pg.log.x"
    path.write_bytes(compress(data) + compress(data) + b"not a compressed member\n" * 3)
    report = analyze_logs(Config(), [str(path)], LogOptions(prefix=PREFIX))
    assert report.summary["queries"] == 200
    assert len(report.errors) == 1 and "ignored" in report.errors[0].message
    path.write_bytes(compress(data) + b"\0" * 1000)  # padding: nothing to say
    report = analyze_logs(Config(), [str(path)], LogOptions(prefix=PREFIX))
    assert report.summary["queries"] == 100 and not report.errors


def test_syslog_with_pgbadger_or_unknown_inner_prefix(tmp_path: Path) -> None:
    lines = [
        "Nov 28 20:15:54 dbhost systemd[1]: Started PostgreSQL Cluster 16-main.",
        "Nov 28 20:15:55 dbhost postgres[123]: [1-1] user=alice,db=work,app=psql,client=[local] LOG:  duration: 1500.000 ms  statement: select 1,",
        "Nov 28 20:15:55 dbhost postgres[123]: [1-2] #011 2",
        "Nov 28 20:15:56 dbhost postgres[123]: [2-1] user=alice,db=work,app=psql,client=[local] LOG:  duration: 2.000 ms  execute S_1: select $1",
        "Nov 28 20:15:56 dbhost postgres[123]: [2-2] user=alice,db=work,app=psql,client=[local] DETAIL:  parameters: $1 = 'x'",
    ]
    log = run(tmp_path, "\n".join(lines) + "\n", name="syslog", database="work")
    assert log["files"][0]["format"] == "syslog"
    assert log["files"][0]["prefix"] == "%m [%p] user=%u,db=%d,app=%a,client=%h "
    assert log["queries"] == 2 and log["bad_entries"]["count"] == 0
    assert log["slowest"][1]["parameters"] == "$1 = 'x'"
    odd = [
        line.replace("user=alice,db=work,app=psql,client=[local]", "<<alice|work>>")
        for line in lines
    ]
    log = run(tmp_path, "\n".join(odd) + "\n", name="syslog")
    assert log["files"][0]["prefix"] == "<generic>"
    assert log["queries"] == 2 and log["slowest"][0]["pid"] == "123"


def test_since_until_with_a_zone_compare_instants(tmp_path: Path) -> None:

    def lines(zone: str) -> str:
        return "".join(
            f"2024-05-01 {h}:00:00.123 {zone} [1] u@d LOG:  duration: 1.0 ms  statement: select {h}\n"
            for h in (10, 11, 12)
        )

    since = datetime.fromisoformat("2024-05-01T09:30:00+00:00")  # 11:30 CEST
    for zone in ("CEST", "+02", "+0200"):
        log = run(tmp_path, lines(zone), prefix=PREFIX, since=since)
        assert log["queries"] == 1, zone
    until = datetime.fromisoformat("2024-05-01T10:30:00-04:00")  # 16:30 MSK (+03)
    assert run(tmp_path, lines("MSK"), prefix=PREFIX, until=until)["queries"] == 3
    until = datetime.fromisoformat("2024-05-01T08:30:00+00:00")  # 11:30 MSK
    assert run(tmp_path, lines("MSK"), prefix=PREFIX, until=until)["queries"] == 2
    path = tmp_path / "pg.log"
    path.write_text(lines("XYZT"))
    report = analyze_logs(Config(), [str(path)], LogOptions(prefix=PREFIX, since=since))
    assert report.summary["queries"] == 3  # compared as UTC: 09:30 is before 10:00
    assert [e.message for e in report.errors] == [
        "log time zone 'XYZT' unknown: --since/--until compared as UTC"
    ]


def test_memory_stays_bounded(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    head = "2024-05-01 10:00:00.000 UTC [{}] u@d "
    # log_statement = all: each session leaves its last statement pending until it goes.
    text = "".join(
        head.format(pid) + f"LOG:  statement: select {pid}\n" for pid in range(10)
    ) + "".join(
        head.format(pid) + "LOG:  disconnection: session time: 0:00:01\n" for pid in range(10)
    )
    state = ChunkState(LogOptions())
    parse_stderr(text, compile_prefix(PREFIX), state)
    assert state.pending == {}
    merger = Merger(LogOptions())
    data = text.encode()
    for chunk in chunks(iter([data]), stderr_splitter(compile_prefix(PREFIX)), 100):
        merger.add(parse_chunk("stderr", PREFIX, chunk, LogOptions()))
    assert merger.carry == {}
    monkeypatch.setattr(sessions, "MAX_PENDING_SESSIONS", 3)
    state = ChunkState(LogOptions())
    parse_stderr(
        text.split(head.format(0) + "LOG:  disconnection")[0], compile_prefix(PREFIX), state
    )
    assert len(state.pending) == 3
    # Temp files and lock waits of many statements: an "other" group past the limit.
    monkeypatch.setattr(aggregate_module, "MAX_COUNTER_GROUPS", 5)
    temp = "".join(
        head.format(1)
        + 'LOG:  temporary file: path "x", size 10\n'
        + head.format(1)
        + f"STATEMENT:  select generate_series(1, {i}) order by 1\n"
        for i in range(20)
    )
    log = run(tmp_path, temp, prefix=PREFIX)
    assert log["temp_files"]["count"] == 20
    assert len(log["temp_files"]["top_statements"]) <= 6
    # Huge texts are cut where they are kept; huge texts are not cached.
    huge = "select " + ", ".join(str(i) for i in range(40_000))
    log = run(tmp_path, head.format(1) + f"LOG:  duration: 1.0 ms  statement: {huge}\n"
              + head.format(1) + f"ERROR:  {huge}\n", prefix=PREFIX)  # fmt: skip
    assert log["slowest"][0]["query"].endswith("… (truncated)")
    assert len(log["slowest"][0]["query"]) < 70_000
    assert len(log["errors"]["top_messages"][0]["example"]) <= 2000
    assert huge not in normalize_cache


def test_filters_on_fields_the_prefix_lacks_are_warned(tmp_path: Path) -> None:

    path = tmp_path / "pg.log"
    path.write_text("[7] LOG:  duration: 1.000 ms  statement: select 1\n")
    options = LogOptions(prefix="[%p] ", user="alice", since=datetime(2024, 5, 1))
    report = analyze_logs(Config(), [str(path)], options)
    messages = [e.message for e in report.errors if "has no field" in e.message]
    assert len(messages) == 1
    assert "--since/--until needs %t or %m" in messages[0] and "--user needs %u" in messages[0]
    report = analyze_logs(Config(), [str(path)], LogOptions(prefix="[%p] "))
    assert not report.errors


def test_syslog_years_come_from_when_the_file_was_written(tmp_path: Path) -> None:
    assert year_for(12, datetime(2027, 1, 2)) == 2026
    assert year_for(1, datetime(2027, 1, 2)) == 2027
    assert year_for(6, datetime(2027, 6, 30)) == 2027
    head = "dbhost postgres[7]: [{n}-1] user=u,db=d,app=a,client=h LOG:  duration: 1.000 ms"
    lines = [
        f"Dec 31 23:59:59 {head.format(n=1)}  statement: select 1",
        f"Jan  1 00:00:01 {head.format(n=2)}  statement: select 2",
    ]
    path = tmp_path / "syslog"
    path.write_text("\n".join(lines) + "\n")
    written = datetime(2027, 1, 2, 12, 0).timestamp()
    os.utime(path, (written, written))
    log = analyze_logs(Config(), [str(path)], LogOptions()).summary["log"]
    assert log["queries"] == 2
    assert log["first"].startswith("2026-12-31") and log["last"].startswith("2027-01-01")
