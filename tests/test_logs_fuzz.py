"""Property tests of the log parser: any input parses without raising, how the input is cut
into chunks never changes what is counted, and with a bound on entries no parsed entry
exceeds it, whether the reader or the parser cut it."""

# ruff: noqa: E501 - log lines are long

from __future__ import annotations

import dataclasses
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from opscope.db.logs.analyze import parse_chunk
from opscope.db.logs.options import LogOptions
from opscope.db.logs.parse_stderr import parse_stderr, scan_entries
from opscope.db.logs.prefix import COMMON_PREFIXES, compile_prefix
from opscope.db.logs.reader import Cuts, chunks, csv_splitter, json_splitter, stderr_splitter
from opscope.db.logs.sessions import ChunkState, Merger

PREFIX = "%m [%p] %q%u@%d "
OPTIONS = LogOptions(prefix=PREFIX)

_head = st.builds(
    lambda s, pid: f"2024-05-01 10:00:{s:02d}.000 UTC [{pid}] u@d ",
    st.integers(0, 59),
    st.integers(1, 4),
)
_sql = st.sampled_from(
    ["select 1", "select * from t where a in (1,2) and b = 'x'", "select $1", "update t set"]
) | st.text(max_size=30)
_good_duration = st.floats(0, 5000, allow_nan=False).map(lambda d: f"{d:.3f}")
_duration = _good_duration | st.sampled_from(
    # not durations PostgreSQL writes: each is a bad entry, never a count or a crash
    ["inf", "nan", "-5", "1e400", "9" * 400, "1.2.3", "", "0x10"]
)
_entry = st.one_of(
    st.builds(lambda h, d, q: f"{h}LOG:  duration: {d} ms  statement: {q}", _head, _duration, _sql),
    st.builds(
        lambda h, d, q: f"{h}LOG:  duration: {d} ms  execute S_1: {q}", _head, _duration, _sql
    ),
    st.builds(lambda h, d: f"{h}LOG:  duration: {d} ms", _head, _duration),
    st.builds(lambda h, d: f"{h}LOG:  duration: {d}", _head, _duration),  # cut off
    st.builds(lambda h, q: f"{h}LOG:  statement: {q}", _head, _sql),
    st.builds(
        lambda h, d, q: (
            f"{h}LOG:  duration: {d} ms  plan:\n\tQuery Text: {q}\n\tResult  (cost=0.00..0.01 rows=1 width=4)"
        ),
        _head,
        _duration,
        _sql,
    ),
    st.builds(lambda h, q: f"{h}DETAIL:  parameters: $1 = '{q}'", _head, _sql),
    st.builds(lambda h, q: f"{h}ERROR:  division by zero\n{h}STATEMENT:  {q}", _head, _sql),
    st.builds(lambda h: f'{h}LOG:  temporary file: path "x", size 12', _head),
    st.builds(lambda h, q: f"\t{q}", _head, _sql),
    st.text(max_size=60),  # anything at all, including lone quotes and brackets
)
_log = st.lists(_entry, max_size=40).map(lambda lines: "\n".join(lines) + "\n")


def analyze_bytes(
    data: bytes, log_format: str, chunk_bytes: int, options: LogOptions = OPTIONS
) -> dict[str, Any]:
    splitter = {
        "stderr": stderr_splitter(compile_prefix(PREFIX)),
        "csvlog": csv_splitter,
        "jsonlog": json_splitter,
    }[log_format]
    merger = Merger(options)
    blocks = iter([data[i : i + 7] for i in range(0, len(data), 7)])
    cuts = Cuts()
    for chunk in chunks(blocks, splitter, chunk_bytes, options.max_entry_bytes, cuts):
        merger.add(parse_chunk(log_format, PREFIX, chunk, options))
    agg = merger.finish()
    kept = [
        text
        for record in [r for _, _, r in agg.slowest]
        + [s.slowest for s in agg.statements.values() if s.slowest is not None]
        for text in (record.query, record.parameters or "")
    ] + [text for g in agg.errors.values() for text in (g.message, g.statement)]
    return {
        "queries": agg.queries,
        "total": round(agg.total_ms, 6),
        "groups": sorted((k, s.calls) for k, s in agg.statements.items()),
        "errors": sum(agg.error_levels.values()),
        "temp": sum(c.count for c in agg.temp_files.values()),
        "plans": agg.plans,
        "corrupt": agg.corrupt,
        "cut": (agg.cut_entries + cuts.entries, agg.cut_bytes + cuts.bytes),
        "longest": max(map(len, kept), default=0),
    }


@settings(max_examples=150, deadline=None)
@given(log=_log, chunk_bytes=st.integers(1, 400))
def test_stderr_any_split_counts_the_same(log: str, chunk_bytes: int) -> None:
    data = log.encode("utf-8", "surrogatepass")
    whole = analyze_bytes(data, "stderr", 1 << 20)
    assert analyze_bytes(data, "stderr", chunk_bytes) == whole


@settings(max_examples=100, deadline=None)
@given(
    data=st.binary(max_size=300),
    chunk_bytes=st.integers(1, 100),
    limit=st.sampled_from([1 << 20, 1, 5, 40]),
)
def test_any_bytes_in_any_format_never_raise(data: bytes, chunk_bytes: int, limit: int) -> None:
    options = LogOptions(prefix=PREFIX, max_entry_bytes=limit)
    for log_format in ("stderr", "csvlog", "jsonlog"):
        analyze_bytes(data, log_format, chunk_bytes, options)


# Long entries of every shape a stderr log has, in ASCII (where a byte is a character, so
# the reader's and the parser's cuts fall at the same place), and no DETAIL lines: one
# entry spans few units, so a chunk always ends at an entry boundary.
_ascii = st.text(
    alphabet=st.characters(min_codepoint=32, max_codepoint=126) | st.sampled_from("\t\n"),
    max_size=400,
)
_bounded_entry = st.one_of(
    st.builds(
        lambda h, d, q: f"{h}LOG:  duration: {d} ms  statement: {q}", _head, _good_duration, _ascii
    ),
    st.builds(
        lambda h, d, lines: (
            f"{h}LOG:  duration: {d} ms  statement: select\n\t" + "\n\t".join(lines)
        ),
        _head,
        _good_duration,
        st.lists(st.text(alphabet="abc ,1", max_size=30), max_size=20),
    ),
    st.builds(lambda h, m, q: f"{h}ERROR:  {m}\n{h}STATEMENT:  {q}", _head, _ascii, _ascii),
    _ascii,
)


@settings(max_examples=150, deadline=None)
@given(
    log=st.lists(_bounded_entry, max_size=30).map(lambda lines: "\n".join(lines) + "\n"),
    limit=st.integers(16, 300),
    chunk_bytes=st.integers(1, 400),
)
def test_no_parsed_entry_exceeds_the_bound(log: str, limit: int, chunk_bytes: int) -> None:
    data = log.encode()
    options = LogOptions(prefix=PREFIX, max_entry_bytes=limit)
    whole = analyze_bytes(data, "stderr", 1 << 20, options)
    assert whole["longest"] <= limit
    assert analyze_bytes(data, "stderr", chunk_bytes, options) == whole


_csv_field = st.text(alphabet='ab,"\n 1', max_size=12).map(
    lambda t: '"' + t.replace('"', '""') + '"'
)
_csv_row = st.builds(
    lambda d, msg, q: (
        f'2024-05-01 10:00:00.000 UTC,"u","d",5,"h",1.2,1,"SELECT",2024-05-01 10:00:00 UTC,'
        f'3/0,0,LOG,00000,"duration: {d} ms  statement: {msg}",,,,,,{q},,,"app","client backend",,0'
    ),
    _good_duration,
    st.text(alphabet='sel ct1,"\n', max_size=20).map(lambda t: t.replace('"', '""')),
    _csv_field,
)


@settings(max_examples=100, deadline=None)
@given(
    rows=st.lists(_csv_row, max_size=20),
    chunk_bytes=st.integers(1, 300),
    limit=st.sampled_from([1 << 20]) | st.integers(165, 200),
)
def test_csv_records_with_newlines_and_quotes_split_exactly(
    rows: list[str], chunk_bytes: int, limit: int
) -> None:
    """Records over the bound are left out, and only they, wherever the chunks fall."""
    data = ("\n".join(rows) + "\n").encode()
    options = LogOptions(prefix=PREFIX, max_entry_bytes=limit)
    whole = analyze_bytes(data, "csvlog", 1 << 20, options)
    over = [len(row) for row in rows if len(row) > limit]
    assert whole["queries"] == len(rows) - len(over) and whole["corrupt"] == 0
    assert whole["cut"] == (len(over), sum(over))
    assert analyze_bytes(data, "csvlog", chunk_bytes, options) == whole


# -- the fast scan pattern finds what the lazy one finds ----------------------------------

#: prefixes whose names are read up to their delimiter (CompiledPrefix.fast)
FAST_PREFIXES = [p for p in COMMON_PREFIXES if compile_prefix(p).fast is not None]
#: what names are made of here: mostly the delimiters, so that a name holds one
_name = st.text(alphabet="ab,@: =[]-1\t", max_size=6)
_zone = st.sampled_from(["", " UTC", " +02", " CEST", " x-y"])


def _render(prefix: str, draw: Any) -> str:
    """A line head for `prefix`, its names drawn (with delimiters in them, often)."""
    out = []
    i = 0
    while i < len(prefix):
        if prefix[i] != "%":
            out.append(prefix[i])
            i += 1
            continue
        esc = prefix[i + 1]
        i += 2
        if esc in "tm":
            millis = ".123" if esc == "m" else ""
            # \u0663 is a digit of another script: the lazy pattern's \d, not the fast one's
            second = draw(st.sampled_from(["00", "0\u0663"]))
            out.append(f"2024-05-01 10:00:{second}{millis}{draw(_zone)}")
        elif esc in "pl":
            out.append(draw(st.sampled_from(["7", "123", "", "1a", "1\u0663"])))
        else:
            out.append(draw(_name))
    return "".join(out)


@st.composite
def _fast_log(draw: Any) -> tuple[str, str]:
    prefix = draw(st.sampled_from(FAST_PREFIXES))
    lines = []
    for _ in range(draw(st.integers(0, 12))):
        head = _render(prefix, draw) if draw(st.booleans()) else draw(st.text(max_size=20))
        level = draw(st.sampled_from(["LOG", "DETAIL", "ERROR", "X"]))
        body = draw(st.text(alphabet="ab ,@:\t\n", max_size=12))
        lines.append(f"{head}{level}:  {body}")
    return prefix, "\n" + "\n".join(lines) + draw(st.sampled_from(["", "\n"]))


@settings(max_examples=1500, deadline=None)
@given(_fast_log())
def test_fast_scan_finds_what_the_lazy_scan_finds(case: tuple[str, str]) -> None:
    prefix, text = case
    compiled = compile_prefix(prefix)
    assert compiled.fast is not None
    lazy = [(m.span(), m.groups()) for m in compiled.scan.finditer(text)]
    fast = [(m.span(), m.groups()) for m in scan_entries(text, compiled.fast, compiled.scan)]
    assert fast == lazy


def _parsed(text: str, compiled: Any) -> tuple[Any, ...]:
    state = ChunkState(LogOptions(prefix=compiled.text))
    parse_stderr(text, compiled, state)
    agg = state.finish().aggregate
    groups = sorted((s.key, s.calls, s.total) for s in agg.statements.values())
    return (agg.queries, agg.entries, agg.corrupt, agg.corrupt_samples, groups,
            agg.error_levels, agg.logged_statements, agg.bind.count, agg.prepare.count,
            agg.first_ts, agg.last_ts, len(state.heads))  # fmt: skip


@settings(max_examples=500, deadline=None)
@given(_fast_log())
def test_parse_with_the_fast_scan_is_the_parse_with_the_lazy_one(case: tuple[str, str]) -> None:
    prefix, text = case
    compiled = compile_prefix(prefix)
    # the text as a chunk holds it: the parser puts the newline before it itself
    chunk = text[1:]
    assert _parsed(chunk, compiled) == _parsed(chunk, dataclasses.replace(compiled, fast=None))
