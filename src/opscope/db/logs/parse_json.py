"""jsonlog (PostgreSQL 15+): one JSON object per line; absent fields are left out."""

from __future__ import annotations

import json
from typing import Any

from opscope.db.logs.records import dispatch_record
from opscope.db.logs.sessions import ChunkState


def _text(record: dict[str, Any], key: str) -> str:
    value = record.get(key)
    return "" if value is None else str(value)


def parse_json(text: str, state: ChunkState) -> None:
    aggregate = state.aggregate
    loads = json.loads
    limit = state.max_entry
    first = last = ""
    for line in text.split("\n"):
        if len(line) > limit:
            # left out, as the reader leaves out a line that grows past the bound
            aggregate.cut_entries += 1
            aggregate.cut_bytes += len(line.encode())
            continue
        if not line.strip():
            continue
        try:
            record = loads(line)
        except ValueError:
            aggregate.bad_input(line)
            continue
        if not isinstance(record, dict) or "message" not in record:
            aggregate.bad_input(line)
            continue
        last = _text(record, "timestamp")
        first = first or last
        dispatch_record(
            state,
            last,
            _text(record, "pid"),
            _text(record, "session_id"),
            _text(record, "user"),
            _text(record, "dbname"),
            _text(record, "application_name"),
            _text(record, "query_id"),
            _text(record, "error_severity"),
            _text(record, "state_code"),
            _text(record, "message"),
            _text(record, "detail"),
            _text(record, "statement"),
            _text(record, "ps"),
        )
    if first:
        aggregate.saw(first)
        aggregate.saw(last)
