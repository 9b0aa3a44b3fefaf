"""syslog: PostgreSQL's lines as a syslog daemon stored them, turned back into stderr form.

PostgreSQL sends each line of an entry as its own syslog message tagged `[seq-line]`, and
cuts lines longer than about 900 bytes into several messages with the same tag scheme.
rsyslog writes a tab as `#011`. Turning that back into `PREFIX LEVEL:  message` lines lets
the stderr parser do the rest: a piece starting with a tab is a continuation line, a piece
that starts like an entry (a DETAIL or STATEMENT line) is a new line, and any other piece
is the rest of a line that was cut.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import datetime

from opscope.db.logs.prefix import GENERIC, compile_prefix, detect_prefix, resolve_prefix
from opscope.db.logs.reader import MAX_ENTRY_BYTES, SYSLOG_LINE, InputStats, utf8_cut

_MONTHS = {
    m: i
    for i, m in enumerate(
        ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"), 1
    )
}


_ISO_ZONE = re.compile(r"(?:Z|[+-]\d\d:?\d\d)$")


def inner_prefix(sample: bytes) -> str:
    """The log_line_prefix PostgreSQL wrote after the syslog tag; GENERIC when no common
    prefix fits (the generic pattern then reads syslog's own time and pid)."""
    rests = []
    for line in sample.decode("utf-8", "replace").split("\n")[:2000]:
        m = SYSLOG_LINE.match(line)
        if m is not None and m.group("line") == "1":
            rests.append(m.group("rest").replace("#011", "\t"))
    return detect_prefix("\n".join(rests)) or GENERIC


def stderr_prefix(inner: str) -> str:
    """The prefix of the converted lines: syslog's time and pid unless PostgreSQL's own
    prefix already has them (its timestamp has the year and milliseconds)."""
    if inner == GENERIC:
        return GENERIC
    compiled = compile_prefix(inner)
    head = "" if compiled.ts_kind else "%m "
    if "%p" not in inner:
        head += "[%p] "
    return head + inner


def year_for(month: int, reference: datetime) -> int:
    """BSD syslog leaves the year out. A file is written up to about its modification time
    (`reference`), so a month later in the year than the reference's belongs to the year
    before: a December line in a file last written in January is from the previous year."""
    return reference.year - 1 if month > reference.month else reference.year


def _timestamp(m: re.Match[str], reference: datetime) -> str:
    iso = m.group("iso")
    if iso:
        moment = iso[:10] + " " + (iso[11:23] if len(iso) > 19 and iso[19] == "." else iso[11:19])
        zone = _ISO_ZONE.search(iso)
        if zone is not None:
            moment += " UTC" if zone.group(0) == "Z" else " " + zone.group(0)
        return moment
    month = _MONTHS.get(m.group("mon"), 1)
    year = year_for(month, reference)
    return f"{year:04d}-{month:02d}-{int(m.group('day')):02d} {m.group('time')}.000"


def syslog_to_stderr(
    blocks: Iterator[bytes],
    inner: str,
    stats: InputStats,
    reference: datetime | None = None,
    max_entry_bytes: int = MAX_ENTRY_BYTES,
) -> Iterator[bytes]:
    """The stderr form of syslog lines. A line longer than `max_entry_bytes` keeps its start
    (counted in `stats.cuts`, the rest skipped as it streams by), so waiting for its end
    never holds more than that."""
    entry = resolve_prefix(inner).entry
    generic = inner == GENERIC
    add_ts = generic or not compile_prefix(inner).ts_kind
    add_pid = generic or "%p" not in inner
    reference = reference or datetime.now()
    carry = b""
    other = 0
    skipping = False
    for block in blocks:
        if skipping:
            nl = block.find(b"\n")
            if nl < 0:
                stats.cuts.bytes += len(block)
                continue
            stats.cuts.bytes += nl
            block = block[nl:]
            skipping = False
        data = carry + block
        cut = data.rfind(b"\n")
        carry = data[cut + 1 :]
        if len(carry) > max_entry_bytes:
            keep = utf8_cut(carry, max_entry_bytes)
            stats.cuts.entries += 1
            stats.cuts.bytes += len(carry) - keep
            carry = carry[:keep]
            skipping = True
        if cut < 0:
            continue
        out: list[str] = []
        for line in data[:cut].decode("utf-8", "replace").split("\n"):
            m = SYSLOG_LINE.match(line)
            if m is None:
                # Other programs' messages share the file; they are not PostgreSQL's.
                other += bool(line.strip())
                continue
            rest = m.group("rest").replace("#011", "\t")
            if m.group("line") != "1":
                if rest.startswith("\t"):
                    out.append("\n" + rest)
                    continue
                if entry.match(rest) is None:
                    out.append(rest)
                    continue
            head = ""
            if add_ts:
                head = _timestamp(m, reference) + " "
            if add_pid:
                head += f"[{m.group('pid')}] "
            out.append("\n" + head + rest)
        text = "".join(out)
        yield text.encode()
    if carry.strip():
        yield from syslog_to_stderr(iter([carry + b"\n"]), inner, stats, reference, max_entry_bytes)
    stats.extra["syslog_other_lines"] = stats.extra.get("syslog_other_lines", 0) + other
