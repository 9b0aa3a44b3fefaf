"""Pairing the entries of one backend session, within a chunk and across chunks.

Most executions are one entry (`duration: … statement: …`), but some need entries logged
earlier by the same session: a duration-only line (`log_statement` already logged the text)
takes its text from the session's last `statement:` entry, and auto_explain logs a plan
just before the duration line of the statement it explains. A plan that is followed by its
statement's duration line is attached to it, not counted twice; a plan with no such line
(nested statements, or log_min_duration_statement off) is an execution of its own.

A parallel worker sees one chunk, so a session's first interacting entry in a chunk may
need state from the chunk before. The worker records that first entry as a *head* and its
leftover state as a *tail*; the `Merger` replays heads against the tails of earlier chunks
in file order, so the counts are those of one sequential pass, whatever the split.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from opscope.db.logs.aggregate import Aggregate, Execution
from opscope.db.logs.maintenance import VacuumRun, parse_maintenance
from opscope.db.logs.normalize import normalize
from opscope.db.logs.options import LogOptions, time_key, zone_offset

#: sessions with entries waiting for their completion, at most: the oldest is dropped
#: beyond (log_statement = all leaves one per session until it disconnects)
MAX_PENDING_SESSIONS = 10_000
#: characters of text (statements, parameters, plans) carried from chunk to chunk, at most,
#: or this many entries of max_entry_bytes if more: beyond, the oldest session's are dropped
MAX_CARRIED_TEXT = 64 << 20
CARRIED_ENTRIES = 64
UNLOGGED_KEY = "unlogged"
UNLOGGED_TEXT = "(duration logged without its statement)"


@dataclass
class Pending:
    """A session's entries still waiting for the entry that completes them."""

    statement: Execution | None = None
    plans: list[Execution] = field(default_factory=list)

    def size(self) -> int:
        """Characters of text held."""
        return sum(
            len(r.query) + len(r.parameters or "") + len(r.plan or "")
            for r in (*self.plans, *((self.statement,) if self.statement else ()))
        )


@dataclass  # not frozen: pickle sets the fields of a compiled one
class Head:
    # defaults only for pickle, when the module is compiled
    kind: str = ""  # "statement", "duration", "duration_with_text" or "disconnect"
    session: str = ""
    record: Execution | None = None
    plans: tuple[Execution, ...] = ()
    had_local_plans: bool = False
    text: str = ""


@dataclass
class ChunkResult:
    aggregate: Aggregate = field(default_factory=Aggregate)
    heads: list[Head] = field(default_factory=list)
    tails: dict[str, Pending] = field(default_factory=dict)
    seen: set[str] = field(default_factory=set)


class Filters:
    """The user's --since/--until/--db/--user/--min-duration, tested per event.

    A --since/--until with a zone is compared as an instant: it is written in the zone of
    each log timestamp (`CEST`, `+03`…) once per zone, and the strings compared. A zone
    the table does not know is compared as UTC, with one warning."""

    def __init__(self, options: LogOptions, warn: Callable[[str], None] | None = None) -> None:
        self._since = options.since
        self._until = options.until
        self.since = time_key(options.since)
        self.until = time_key(options.until)
        self.database = options.database
        self.user = options.user
        self.min_duration = options.min_duration_ms
        self.active = bool(self.since or self.until or self.database or self.user)
        self._zoned = any(
            b is not None and b.tzinfo is not None for b in (self._since, self._until)
        )
        self._bounds: dict[str, tuple[str, str]] = {}
        self._warn = warn

    def _bounds_in(self, zone: str) -> tuple[str, str]:
        bounds = self._bounds.get(zone)
        if bounds is None:
            offset = zone_offset(zone) if zone else None
            if offset is None and self._warn is not None:
                self._warn(
                    f"log time zone {zone!r} unknown: --since/--until compared as UTC"
                    if zone
                    else "log times carry no zone: --since/--until compared as UTC"
                )
            bounds = self._bounds[zone] = (
                time_key(self._since, offset),
                time_key(self._until, offset),
            )
        return bounds

    def keep(self, ts: str, user: str, database: str) -> bool:
        since, until = self.since, self.until
        if self._zoned and ts:
            space = ts.find(" ", 19)
            since, until = self._bounds_in(ts[space + 1 :] if space > 0 else "")
        if since and ts[:19] < since:
            return False
        if until and ts[:19] > until:
            return False
        if self.database is not None and database != self.database:
            return False
        return self.user is None or user == self.user


class ChunkState:
    """What the parsers report events to, for one chunk (or a whole sequential pass)."""

    def __init__(self, options: LogOptions) -> None:
        self.aggregate = Aggregate(top=options.top)
        self.filters = Filters(options, self.aggregate.warn)
        self.pending: dict[str, Pending] = {}
        self.seen: set[str] = set()
        self.heads: list[Head] = []
        #: no filter to apply: every execution counts
        self.plain = not self.filters.active and self.filters.min_duration <= 0
        #: units longer than this are cut (stderr) or left out (csvlog, jsonlog)
        self.max_entry = options.max_entry_bytes

    # -- executions ---------------------------------------------------------------------

    def add(
        self,
        session: str,
        ts: str,
        duration: float,
        query: str,
        parameters: str | None,
        database: str,
        user: str,
        application: str,
        pid: str,
        query_id: str,
        kind: str,
    ) -> None:
        """An entry with a duration, as fields. The common case — a session already seen
        in this chunk, nothing pending, no filters — goes straight to the aggregate."""
        if self.plain and query and not self.pending and session in self.seen:
            key, display = normalize(query)
            self.aggregate.add(
                key,
                display,
                ts,
                duration,
                query,
                parameters,
                database,
                user,
                application,
                pid,
                query_id,
                kind,
            )
            return
        self.execution(
            session,
            Execution(
                ts, duration, query, parameters, database, user, application, pid, query_id, kind
            ),
        )

    def execution(self, session: str, record: Execution) -> None:
        """An entry with a duration; `record.query` is empty for a duration-only line."""
        pending = self.pending.pop(session, None)
        if session not in self.seen:
            self.seen.add(session)
            if not record.query:
                plans = tuple(pending.plans) if pending else ()
                self.heads.append(Head("duration", session, record, plans))
                return
            had_local = bool(pending and pending.plans)
            self.heads.append(
                Head("duration_with_text", session, had_local_plans=had_local, text=record.query)
            )
        if pending is None:
            self.count(record)
        else:
            for rec in settle(record, pending.statement, pending.plans, self.aggregate):
                self.count(rec)

    def _pending(self, session: str) -> Pending:
        pending = self.pending.get(session)
        if pending is None:
            if len(self.pending) >= MAX_PENDING_SESSIONS:
                self._drop(next(iter(self.pending)))
            pending = self.pending[session] = Pending()
        return pending

    def _drop(self, session: str) -> None:
        """Forget what `session` left pending; its plans had no duration line: executions."""
        pending = self.pending.pop(session, None)
        if pending is not None:
            for plan in pending.plans:
                self.count(plan)

    def plan(self, session: str, record: Execution) -> None:
        self.aggregate.plans += 1
        self._pending(session).plans.append(record)

    def disconnect(self, session: str) -> None:
        """`disconnection:`: nothing the session logged before can be completed any more."""
        if session not in self.seen:
            self.seen.add(session)
            self.heads.append(Head("disconnect", session))
        self._drop(session)

    def logged_statement(self, session: str, record: Execution) -> None:
        """`statement:` or `execute …:` without a duration (log_statement)."""
        self.aggregate.logged_statements += 1
        if session not in self.seen:
            self.seen.add(session)
            self.heads.append(Head("statement", session))
        pending = self._pending(session)
        # Plans still waiting belong to the previous statement, which logged no duration.
        for plan in pending.plans:
            self.count(plan)
        pending.plans = []
        pending.statement = record

    def count(self, record: Execution) -> None:
        filters = self.filters
        if record.duration_ms < filters.min_duration or (
            filters.active and not filters.keep(record.ts, record.user, record.database)
        ):
            self.aggregate.filtered_out += 1
            return
        if record.query:
            key, display = normalize(record.query)
        else:
            key, display = UNLOGGED_KEY, UNLOGGED_TEXT
        self.aggregate.execution(key, display, record)

    # -- other events -------------------------------------------------------------------

    def error(
        self,
        ts: str,
        user: str,
        database: str,
        level: str,
        sqlstate: str,
        message: str,
        statement: str,
    ) -> None:
        if self.filters.active and not self.filters.keep(ts, user, database):
            self.aggregate.filtered_out += 1
            return
        self.aggregate.error(ts, level, sqlstate, message, statement)

    def temp_file(self, ts: str, user: str, database: str, size: int, statement: str) -> None:
        if self.filters.active and not self.filters.keep(ts, user, database):
            self.aggregate.filtered_out += 1
            return
        key, display = normalize(statement) if statement else (UNLOGGED_KEY, "(no statement)")
        self.aggregate.temp_file(key, display, size)

    def lock_wait(
        self, ts: str, user: str, database: str, wait_ms: float, acquired: bool, statement: str
    ) -> None:
        if self.filters.active and not self.filters.keep(ts, user, database):
            self.aggregate.filtered_out += 1
            return
        key, display = normalize(statement) if statement else (UNLOGGED_KEY, "(no statement)")
        self.aggregate.lock_wait(key, display, wait_ms, acquired)

    def finish(self) -> ChunkResult:
        tails = {s: p for s, p in self.pending.items() if p.statement is not None or p.plans}
        return ChunkResult(self.aggregate, self.heads, tails, self.seen)


def settle(
    record: Execution, statement: Execution | None, plans: list[Execution], aggregate: Aggregate
) -> list[Execution]:
    """The executions that `record` completes: itself, with the text of the statement logged
    before it and the plan that explains it, and any plan it does not absorb."""
    if not record.query and statement is not None:
        record.query = statement.query
        record.parameters = statement.parameters
        record.kind = statement.kind
    if not plans:
        return [record]
    chosen = _choose_plan(plans, record.query)
    plan = plans[chosen]
    record.plan = plan.plan
    if not record.query:
        record.query = plan.query
    aggregate.plans_attached += 1
    return [p for i, p in enumerate(plans) if i != chosen] + [record]


def _choose_plan(plans: list[Execution], query: str) -> int:
    """The plan of `query`: the last one logged with its text, else the last one (the
    top-level statement's plan is logged after those of statements nested in it)."""
    text = query.strip()
    for i in range(len(plans) - 1, -1, -1):
        if plans[i].query.strip() == text:
            return i
    return len(plans) - 1


class Merger:
    """Combines chunk results in file order, settling what crossed a chunk boundary."""

    def __init__(self, options: LogOptions) -> None:
        self.state = ChunkState(options)
        self.total = Aggregate(top=options.top)
        self.carry: dict[str, Pending] = {}
        # Within a chunk what sessions leave pending is part of the chunk; across chunks
        # it would add up (10,000 sessions with a statement of max_entry_bytes each).
        self.carry_budget = max(MAX_CARRIED_TEXT, CARRIED_ENTRIES * options.max_entry_bytes)

    def add(self, result: ChunkResult) -> None:
        state = self.state
        for head in result.heads:
            carried = self.carry.pop(head.session, None)
            if head.kind == "duration":
                assert head.record is not None
                plans = (carried.plans if carried else []) + list(head.plans)
                statement = carried.statement if carried else None
                for rec in settle(head.record, statement, plans, state.aggregate):
                    state.count(rec)
            elif carried is not None and carried.plans:
                plans = carried.plans
                if head.kind == "duration_with_text" and not head.had_local_plans:
                    # The statement's own plan was logged at the end of the previous chunk:
                    # it explains an execution the worker already counted.
                    state.aggregate.plans_attached += 1
                    plans = list(plans)
                    del plans[_choose_plan(plans, head.text)]
                for plan in plans:
                    state.count(plan)
        for session, tail in result.tails.items():
            if session in result.seen:
                self.carry[session] = tail
            else:
                carried = self.carry.setdefault(session, Pending())
                carried.plans.extend(tail.plans)
        while len(self.carry) > MAX_PENDING_SESSIONS:
            oldest = self.carry.pop(next(iter(self.carry)))
            for plan in oldest.plans:
                state.count(plan)
        if result.tails:
            held = sum(p.size() for p in self.carry.values())
            while held > self.carry_budget:
                oldest = self.carry.pop(next(iter(self.carry)))
                held -= oldest.size()
                for plan in oldest.plans:
                    state.count(plan)
        self.total.merge(result.aggregate)

    def finish(self) -> Aggregate:
        for pending in self.carry.values():
            for plan in pending.plans:
                self.state.count(plan)
        self.carry.clear()
        self.total.merge(self.state.aggregate)
        return self.total


def maintenance_entry(state: ChunkState, ts: str, message: str) -> None:
    """A LOG message that starts with one of MAINTENANCE_HEADS (others are ignored).

    --since/--until apply to every entry, --db to a table's database; --user applies to
    none (no user runs them)."""
    item = parse_maintenance(ts, message)
    if item is None:
        return
    filters = state.filters
    if filters.active:
        database = item.database if isinstance(item, VacuumRun) else filters.database or ""
        if not filters.keep(ts, filters.user or "", database):
            state.aggregate.filtered_out += 1
            return
    if isinstance(item, VacuumRun):
        state.aggregate.maintenance.vacuum(item)
    else:
        state.aggregate.maintenance.event(item)
