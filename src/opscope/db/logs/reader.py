"""Reading log input: decompression, stdin, format detection, and cutting the byte stream
into chunks that end exactly at entry boundaries.

A chunk boundary never falls inside an entry, so each chunk parses on its own and no entry
is lost or read twice — the property pgBadger's `-j` lacks. Where the boundary is depends
on the format: stderr entries start at a line that is not a tab continuation nor a
DETAIL/STATEMENT-style line of the entry before; csvlog records end at a newline outside
quotes (tracked by counting quote characters, which is exact for CSV); jsonlog records are
lines.

Memory is bounded whatever the input: no *unit* (a stderr line with its tab continuation
lines, a csvlog record, a jsonlog line) is held beyond `max_entry_bytes`. A unit that grows
past it while the reader waits for its end is cut there — a stderr unit keeps its first
`max_entry_bytes`, a csvlog or jsonlog record (which no longer parses once cut) is left out
— and the rest of it is skipped as it streams by, up to where the next unit starts; the
parsers apply the same rule to the units inside a chunk. What was cut is counted in `Cuts`.
"""

from __future__ import annotations

import bz2
import csv
import functools
import io
import lzma
import os
import re
import sys
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, Protocol

from opscope.db.logs.prefix import CompiledPrefix

SECONDARY_LEVELS = ("DETAIL", "STATEMENT", "CONTEXT", "HINT", "QUERY", "LOCATION")
#: the default bound of one unit (LogOptions.max_entry_bytes)
MAX_ENTRY_BYTES = 1 << 20
#: units one stderr entry spans at most: its line and DETAIL, HINT, CONTEXT, STATEMENT,
#: QUERY and LOCATION lines, with one to spare
ENTRY_UNITS = 8
SAMPLE_BYTES = 256 << 10


class LogInputError(Exception):
    """A file that cannot be opened or read at all; the message is one line."""


@dataclass
class Cuts:
    """Units longer than the bound: how many were cut, and the bytes left out of them (a
    unit's line end not included)."""

    entries: int = 0
    bytes: int = 0


@dataclass
class InputStats:
    path: str
    compression: str = ""
    bytes_read: int = 0
    #: set when the stream ended in a way the decompressor or the OS reported as broken
    read_error: str = ""
    #: something ignored that the user should know of (trailing garbage after the data)
    warning: str = ""
    extra: dict[str, int] = field(default_factory=dict)
    #: what the reader cut before any parser saw it
    cuts: Cuts = field(default_factory=Cuts)


_MAGIC = (
    (b"\x1f\x8b", "gzip"),
    (b"BZh", "bzip2"),
    (b"\xfd7zXZ\x00", "xz"),
    (b"\x28\xb5\x2f\xfd", "zstd"),
)


class Readable(Protocol):
    def read(self, size: int = -1, /) -> bytes: ...

    def close(self) -> None: ...


class _Prepended(io.RawIOBase):
    """A stream that cannot peek (a pipe handed in by a test, say), with the bytes already
    read to sniff its compression put back in front."""

    def __init__(self, head: bytes, rest: Readable) -> None:
        self._head = head
        self._rest = rest

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        view = memoryview(buffer).cast("B")
        if self._head:
            n = min(len(view), len(self._head))
            view[:n] = self._head[:n]
            self._head = self._head[n:]
            return n
        data = self._rest.read(len(view))
        view[: len(data)] = data
        return len(data)


def open_input(path: str) -> tuple[Readable, InputStats]:
    """The decompressed byte stream of `path` ("-" is stdin), whatever its compression.

    Closing the stream closes the file under it too."""
    stats = InputStats(path)
    raw: Readable
    try:
        raw = sys.stdin.buffer if path == "-" else open(path, "rb")  # noqa: SIM115
        if isinstance(raw, io.BufferedReader):
            magic = raw.peek(6)[:6]
        else:
            magic = raw.read(6)
            raw = io.BufferedReader(_Prepended(magic, raw), 1 << 20)
    except OSError as exc:
        raise LogInputError(f"cannot read {path}: {exc.strerror or exc}") from None
    for signature, name in _MAGIC:
        if magic.startswith(signature):
            stats.compression = name
            break
    factory: Callable[[], Decompressor]
    if stats.compression == "gzip":
        factory = functools.partial(zlib.decompressobj, 16 + zlib.MAX_WBITS)
    elif stats.compression == "bzip2":
        factory = bz2.BZ2Decompressor
    elif stats.compression == "xz":
        factory = lzma.LZMADecompressor
    elif stats.compression == "zstd":
        try:
            import zstandard
        except ImportError:
            raise LogInputError(
                f"{path} is zstd-compressed: install the 'zstandard' package"
            ) from None
        factory = zstandard.ZstdDecompressor().decompressobj
    else:
        return raw, stats
    return _Decompressing(raw, factory, stats), stats


class Decompressor(Protocol):
    @property
    def eof(self) -> bool: ...

    @property
    def unused_data(self) -> bytes: ...

    def decompress(self, data: bytes, /) -> bytes: ...


class _Decompressing:
    """Incremental decompression that hands out everything decodable before damage.

    GzipFile and friends raise on a truncated file and lose the data of the read that hit
    the damage; a decompressor object fed small slices gives back all it decoded before the
    slice that holds the damage, and the error is raised by the next read. Concatenated
    members/frames (what `cat a.gz b.gz` produces) continue. Bytes after the last complete
    member that are no member (padding, garbage) end the stream with a warning, as
    `gzip -d` does ("trailing garbage ignored").
    """

    #: compressed bytes fed to the decompressor at a time: what one damaged slice can lose
    SLICE = 64 << 10

    def __init__(
        self, raw: Readable, factory: Callable[[], Decompressor], stats: InputStats
    ) -> None:
        self._raw = raw
        self._factory = factory
        self._stats = stats
        self._decompressor = factory()
        self._in_member = False
        #: output of the current member so far; members completed before it
        self._member_out = 0
        self._members_done = 0
        self._input = b""
        self._error: BaseException | None = None
        self._done = False

    def _trailing(self, exc: BaseException | None) -> bool:
        """Whether a failure is in bytes after complete members that start no member."""
        if self._members_done == 0 or self._member_out:
            return False
        self._stats.warning = "data after the end of the compressed stream ignored" + (
            f" ({type(exc).__name__}: {exc})" if exc is not None and str(exc) else ""
        )
        self._done = True
        return True

    def read(self, size: int = -1, /) -> bytes:
        if self._error is not None:
            error, self._error = self._error, None
            self._done = True
            raise error
        out = b""
        while not self._done:
            if not self._input:
                self._input = self._raw.read(1 << 20)
                if not self._input:
                    self._done = True
                    if self._in_member and not self._trailing(None):
                        error = EOFError("compressed stream ends before its end marker")
                        if out:
                            self._error = error
                            return out
                        raise error
                    return out
            piece, self._input = self._input[: self.SLICE], self._input[self.SLICE :]
            try:
                while piece:
                    if not self._in_member and self._members_done and not piece.strip(b"\0"):
                        break  # zero padding after a member, as tape and dd leave
                    self._in_member = True
                    data = self._decompressor.decompress(piece)
                    self._member_out += len(data)
                    out += data
                    piece = b""
                    if self._decompressor.eof:
                        piece = self._decompressor.unused_data
                        self._decompressor = self._factory()
                        self._members_done += 1
                        self._member_out = 0
                        self._in_member = False
            except Exception as exc:
                if self._trailing(exc):
                    return out
                if out:
                    self._error = exc
                    return out
                raise
            if len(out) >= (size if size > 0 else 1 << 20):
                return out
        return out

    def close(self) -> None:
        if self._raw is not sys.stdin.buffer:
            self._raw.close()


_READ_ERRORS: tuple[type[BaseException], ...] = (
    OSError,
    EOFError,
    zlib.error,
    lzma.LZMAError,
    ValueError,
)


def read_blocks(stream: Readable, stats: InputStats, size: int) -> Iterator[bytes]:
    """Blocks of the decompressed stream; a truncated or corrupt stream ends it, noted in
    `stats.read_error`, instead of raising."""
    while True:
        try:
            block = stream.read(size)
        except _READ_ERRORS as exc:
            stats.read_error = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
            return
        except Exception as exc:  # zstandard.ZstdError has no common base with the above
            stats.read_error = f"{type(exc).__name__}: {exc}"
            return
        if not block:
            return
        stats.bytes_read += len(block)
        yield block


# -- where an entry may begin ------------------------------------------------------------

Splitter = Callable[[bytes], int]


def stderr_splitter(prefix: CompiledPrefix) -> Splitter:
    """Position of the last line in `buf` that starts a new (main) entry, or -1."""
    entry = prefix.entry

    def split(buf: bytes) -> int:
        end = len(buf)
        while True:
            nl = buf.rfind(b"\n", 0, end)
            if nl < 0:
                return -1
            start = nl + 1
            line_end = buf.find(b"\n", start)
            # 9 is a tab: a continuation line. A last line without its newline may still
            # grow into a DETAIL line, so only complete lines are judged; blank lines
            # never start an entry.
            if line_end > start and buf[start] != 9:
                m = entry.match(buf[start:line_end].decode("utf-8", "replace"))
                if m is None or m.group("level") not in SECONDARY_LEVELS:
                    return start
            end = nl

    return split


def json_splitter(buf: bytes) -> int:
    nl = buf.rfind(b"\n")
    return -1 if nl < 0 else nl + 1


def csv_splitter(buf: bytes) -> int:
    """The last newline with an even number of quote characters before it: outside any
    quoted field. A chunk always starts at a record start, so counting from its start is
    counting from a point outside quotes."""
    nl = buf.rfind(b"\n")
    if nl < 0:
        return -1
    quotes = buf.count(b'"', 0, nl)
    while quotes & 1:
        # Every newline after the last quote before `nl` is as much inside quotes as `nl`:
        # jump over them all (an unterminated quote holds any number of lines).
        quote = buf.rfind(b'"', 0, nl)
        previous = buf.rfind(b"\n", 0, quote)
        if previous < 0:
            return -1
        quotes -= buf.count(b'"', previous, nl)
        nl = previous
    return nl + 1


# -- where a unit begins, and skipping the rest of one that is too long ------------------

_UNIT_START = re.compile(rb"\n[^\t]")
# From a point outside quotes: through quoted fields (newlines in them included) to the
# newline that ends the record.
_CSV_RECORD_END = re.compile(rb'[^"\n]*+(?:"[^"]*+"[^"\n]*+)*+\n')


class Units:
    """The units of one format that `max_entry_bytes` bounds.

    `last_start(buf)` is where the last unit of `buf` begins (`buf` itself starts at one);
    `skip(block)` is where the next unit begins in a block that follows a unit cut short,
    or -1 when the whole block still belongs to it."""

    #: a unit cut short keeps its first max_entry_bytes (stderr), or is left out whole
    keep_cut = False

    def last_start(self, buf: bytes) -> int:
        raise NotImplementedError

    def start_skip(self, dropped: bytes) -> None:
        """Skipping begins; `dropped` is the part of the unit already read."""

    def skip(self, block: bytes) -> int:
        raise NotImplementedError


class LineUnits(Units):
    """stderr (and syslog once converted): a line with the tab-indented lines after it."""

    keep_cut = True

    def __init__(self) -> None:
        self._after_newline = False

    def last_start(self, buf: bytes) -> int:
        end = len(buf) - 1  # a newline that ends `buf` starts nothing known yet
        while True:
            nl = buf.rfind(b"\n", 0, end)
            if nl < 0:
                return 0
            if buf[nl + 1] != 9:
                return nl + 1
            end = nl

    def start_skip(self, dropped: bytes) -> None:
        self._after_newline = dropped.endswith(b"\n")

    def skip(self, block: bytes) -> int:
        if self._after_newline and block[:1] != b"\t":
            return 0
        m = _UNIT_START.search(block)
        if m is not None:
            return m.start() + 1
        self._after_newline = block.endswith(b"\n")
        return -1


class JsonUnits(Units):
    def last_start(self, buf: bytes) -> int:
        return max(0, json_splitter(buf))

    def skip(self, block: bytes) -> int:
        nl = block.find(b"\n")
        return -1 if nl < 0 else nl + 1


class CsvUnits(Units):
    def __init__(self) -> None:
        self._in_quotes = False

    def last_start(self, buf: bytes) -> int:
        return max(0, csv_splitter(buf))

    def start_skip(self, dropped: bytes) -> None:
        self._in_quotes = bool(dropped.count(b'"') & 1)

    def skip(self, block: bytes) -> int:
        start = 0
        if self._in_quotes:
            quote = block.find(b'"')
            if quote < 0:
                return -1
            start = quote + 1
            self._in_quotes = False
        m = _CSV_RECORD_END.match(block, start)
        if m is not None:
            return m.end()
        self._in_quotes = bool(block.count(b'"', start) & 1)
        return -1


def units_for(split: Splitter) -> Units:
    if split is csv_splitter:
        return CsvUnits()
    if split is json_splitter:
        return JsonUnits()
    return LineUnits()


def utf8_cut(buf: bytes, at: int) -> int:
    """`at`, moved back so that it does not fall inside a UTF-8 character."""
    for back in range(4):
        if at - back <= 0 or buf[at - back] & 0xC0 != 0x80:
            return at - back
    return at


def chunks(
    blocks: Iterator[bytes],
    split: Splitter,
    chunk_bytes: int,
    max_entry_bytes: int = MAX_ENTRY_BYTES,
    cuts: Cuts | None = None,
    units: Units | None = None,
) -> Iterator[bytes]:
    """Re-cut `blocks` into pieces of about `chunk_bytes` that end at entry boundaries.

    Memory stays under chunk_bytes + ENTRY_UNITS * max_entry_bytes + one block whatever
    the input: a unit over max_entry_bytes is cut (see the module's docstring), and when
    more units go by without an entry boundary than one entry can have (DETAIL lines
    without their entry), the chunk ends at a unit start instead."""
    units = units if units is not None else units_for(split)
    cuts = cuts if cuts is not None else Cuts()
    carry = b""
    skipping = False
    last_dropped = b""
    for block in blocks:
        if skipping:
            start = units.skip(block)
            if start < 0:
                cuts.bytes += len(block)
                last_dropped = block[-1:]
                continue
            # the line end before the next unit is not counted: it ends the unit kept
            cuts.bytes += start - 1
            skipping = False
            block = block[start:]
            if not block:
                continue
        buf = carry + block if carry else block
        cut = split(buf) if len(buf) >= chunk_bytes else -1
        if cut > 0:
            yield buf[:cut]
            buf = buf[cut:]
        start = units.last_start(buf)
        if len(buf) - start > max_entry_bytes:
            cuts.entries += 1
            keep = utf8_cut(buf, start + max_entry_bytes) if units.keep_cut else start
            dropped = buf[keep:]
            units.start_skip(dropped)
            cuts.bytes += len(dropped)
            last_dropped = dropped[-1:]
            buf = buf[:keep] + b"\n" if keep > start else buf[:keep]
            skipping = True
        elif (
            cut <= 0 and start > 0 and len(buf) > chunk_bytes + ENTRY_UNITS * (max_entry_bytes + 1)
        ):
            yield buf[:start]
            buf = buf[start:]
        carry = buf
    if skipping and last_dropped == b"\n":
        cuts.bytes -= 1
    if carry:
        yield carry


# -- what format a log is in -------------------------------------------------------------

# A csvlog record starts with its timestamp, whose zone is one token directly followed by
# the comma; a stderr line with that timestamp has `[pid]` or a level after the zone.
_CSV_START = re.compile(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3} [A-Za-z0-9+\-:]+,")
_CSV_LEVEL_COLUMN = 11
_CSV_MIN_COLUMNS = 23
_CSV_LEVELS = frozenset(
    [
        "LOG",
        "ERROR",
        "FATAL",
        "PANIC",
        "WARNING",
        "NOTICE",
        "INFO",
        "DEBUG",
        "DEBUG1",
        "DEBUG2",
        "DEBUG3",
        "DEBUG4",
        "DEBUG5",
    ]
)
SYSLOG_LINE = re.compile(
    r"^(?:(?P<mon>[A-Z][a-z]{2}) +(?P<day>\d{1,2}) (?P<time>\d\d:\d\d:\d\d)"
    r"|(?P<iso>\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d+)?(?:Z|[+-]\d\d:?\d\d)?))"
    r" \S+ [^\s\[:]+\[(?P<pid>\d+)\]: \[(?P<seq>\d+)-(?P<line>\d+)\] ?(?P<rest>.*)$"
)
#: any program's syslog line: those of other daemons share PostgreSQL's file
_SYSLOG_ANY = re.compile(
    r"^(?:[A-Z][a-z]{2} +\d{1,2} \d\d:\d\d:\d\d"
    r"|\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d+)?(?:Z|[+-]\d\d:?\d\d)?)"
    r" \S+ [^\s:]+: "
)
#: lines classified before the majority decides
_FORMAT_VOTES = 25


def _csv_record_lines(text: str) -> int:
    """How many lines the csvlog record at the start of `text` spans, or 0 when it is no
    csvlog record (too few fields, or no known level where csvlog has it)."""
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    try:
        row = next(reader)
    except (csv.Error, StopIteration):
        return 0
    if len(row) < _CSV_MIN_COLUMNS or row[_CSV_LEVEL_COLUMN] not in _CSV_LEVELS:
        return 0
    return reader.line_num


def detect_format(sample: bytes) -> str:
    """The format most of the first lines of `sample` are in.

    Each line that starts a record votes: `{` for jsonlog; a timestamp-zone-comma start
    that reads as a csvlog record (23+ fields, a level in the level column) for csvlog; a
    PostgreSQL syslog line for syslog; anything else that is not a continuation for stderr.
    Other programs' syslog lines do not vote, so a syslog file that starts with another
    daemon's messages is still syslog."""
    text = sample.decode("utf-8", "replace")
    starts = [0]
    for m in re.finditer("\n", text):
        starts.append(m.end())
        if len(starts) > 2000:
            break
    votes: dict[str, int] = {}
    i = 0
    while i < len(starts) and sum(votes.values()) < _FORMAT_VOTES:
        start = starts[i]
        end = starts[i + 1] - 1 if i + 1 < len(starts) else len(text)
        line = text[start:end]
        i += 1
        stripped = line.strip()
        if not stripped or line.startswith("\t"):
            continue
        kind = "stderr"
        if stripped.startswith("{"):
            kind = "jsonlog"
        elif _CSV_START.match(line):
            spanned = _csv_record_lines(text[start:])
            if spanned:
                kind = "csvlog"
                i += spanned - 1
        elif SYSLOG_LINE.match(line):
            kind = "syslog"
        elif _SYSLOG_ANY.match(line):
            continue
        votes[kind] = votes.get(kind, 0) + 1
    if not votes:
        return "stderr"
    order = ("stderr", "csvlog", "jsonlog", "syslog")
    return max(order, key=lambda k: (votes.get(k, 0), -order.index(k)))


def file_size(path: str) -> int:
    if path == "-":
        return 0
    try:
        return os.stat(path).st_size
    except OSError:
        return 0
