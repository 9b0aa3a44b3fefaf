"""csvlog: one CSV record per entry; quoted fields may span lines."""

from __future__ import annotations

import csv
import io

from opscope.db.logs.records import dispatch_record
from opscope.db.logs.sessions import ChunkState

# Column positions of csvlog (PostgreSQL 13 added backend_type, 14 leader_pid and query_id).
_TS, _USER, _DB, _PID, _SESSION, _TAG = 0, 1, 2, 3, 5, 7
_LEVEL, _SQLSTATE, _MESSAGE, _DETAIL, _QUERY, _APP, _QID = 11, 12, 13, 14, 19, 22, 25
_MIN_COLUMNS = 23


def parse_csv(text: str, state: ChunkState) -> None:
    # The field limit is the csv module's, for the whole process: no field of this chunk
    # may stop the reader halfway through its record (a record over the bound is left out
    # whole, below), and the limit the process had is put back.
    previous = csv.field_size_limit(max(len(text), 1 << 17))
    try:
        _parse(text, state)
    finally:
        csv.field_size_limit(previous)


def _parse(text: str, state: ChunkState) -> None:
    aggregate = state.aggregate
    limit = state.max_entry
    source = io.StringIO(text, newline="")
    tell = source.tell
    reader = csv.reader(source, strict=True)
    first = last = ""
    offset = 0
    while True:
        try:
            row = next(reader)
        except StopIteration:
            break
        except csv.Error as exc:
            # A broken quote swallows the rest of the record; the reader resumes after it.
            offset, over = _record_end(text, offset, tell(), limit, state)
            if not over:
                aggregate.bad_input(f"csv: {exc}")
            continue
        end = tell()
        if end - offset > limit:
            offset, over = _record_end(text, offset, end, limit, state)
            if over:
                continue
        offset = end
        if len(row) < _MIN_COLUMNS:
            if any(row):
                aggregate.bad_input(",".join(row))
            continue
        last = row[_TS]
        first = first or last
        dispatch_record(
            state,
            last,
            row[_PID],
            row[_SESSION],
            row[_USER],
            row[_DB],
            row[_APP],
            row[_QID] if len(row) > _QID else "",
            row[_LEVEL],
            row[_SQLSTATE],
            row[_MESSAGE],
            row[_DETAIL],
            row[_QUERY],
            row[_TAG],
        )
    if first:
        aggregate.saw(first)
        aggregate.saw(last)


def _record_end(text: str, start: int, end: int, limit: int, state: ChunkState) -> tuple[int, bool]:
    """(`end`, whether the record text[start:end] is over the bound); one that is over is
    left out, as the reader leaves out one that grows past it: counted, its line end not."""
    stop = end - 1 if text[end - 1 : end] == "\n" else end
    if stop - start <= limit:
        return end, False
    state.aggregate.cut_entries += 1
    state.aggregate.cut_bytes += len(text[start:stop].encode())
    return end, True
