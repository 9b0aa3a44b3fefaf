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
    aggregate = state.aggregate
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    first = last = ""
    while True:
        try:
            row = next(reader)
        except StopIteration:
            break
        except csv.Error as exc:
            # A broken quote swallows the rest of the record; the reader resumes after it.
            aggregate.bad_input(f"csv: {exc}")
            continue
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
