"""The API checks: slow endpoints, database-heavy ones, N+1 queries, heavy serialization and
high error rates. Each finding's object is the route template, and its recommendation says
what to change."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

from opscope.api.context import KIND, ApiContext, IndexAdvice
from opscope.api.endpoints import Endpoint, Statement
from opscope.api.routes import OTHER, UNMATCHED
from opscope.findings import Finding, Severity
from opscope.sqltext import short_query
from opscope.units import human_ms

CATEGORY = "endpoints"
_NOT_ROUTES = (UNMATCHED, OTHER)


def _r(value: float | None, digits: int = 2) -> float | None:
    return None if value is None else round(value, digits)


def _base_evidence(ctx: ApiContext, e: Endpoint) -> dict[str, Any]:
    evidence: dict[str, Any] = {
        "source": ctx.source,
        "requests": int(e.requests),
        "rate_per_s": _r(ctx.rate(e), 3),
        "methods": sorted(e.methods),
        "mean_ms": _r(e.mean_ms),
        "p50_ms": _r(e.quantile_ms(0.5)),
        "p95_ms": _r(e.quantile_ms(0.95)),
        "p99_ms": _r(e.quantile_ms(0.99)),
    }
    if e.connects:
        evidence["connections_per_request"] = round(e.connects / e.requests, 2)
    if e.duration_s is not None:
        # rate x latency over the same span: what ranks endpoints against each other
        evidence["total_ms"] = round(e.duration_s * 1000, 1)
    return evidence


def _share(part: float | None, whole: float | None) -> float | None:
    if part is None or not whole:
        return None
    return min(part / whole, 1.0)


def _statements_evidence(statements: Sequence[Statement]) -> list[Any]:
    return [
        {
            "statement": s.text,
            "fingerprint": s.fingerprint,
            "calls": int(s.calls),
            "total_ms": round(s.seconds * 1000, 1),
            "mean_ms": round(s.seconds * 1000 / s.calls, 3) if s.calls else None,
        }
        for s in statements
    ]


def _advice_for(ctx: ApiContext, e: Endpoint) -> tuple[IndexAdvice, Statement] | None:
    for s in e.top_statements(5):
        advice = ctx.advice.get(s.fingerprint)
        if advice is not None:
            return advice, s
    return None


def _database_advice(ctx: ApiContext, e: Endpoint) -> tuple[str, dict[str, Any]]:
    """What to do about the database time of `e`: the advised index, or how to get one."""
    linked = _advice_for(ctx, e)
    top = e.top_statements(1)
    if linked is not None:
        advice, statement = linked
        text = (
            f"Create the index `opscope indexes advise {advice.database}` proposes for "
            f"`{short_query(statement.text, 100)}`: {advice.fix_sql}"
        )
        # the index is a change to the database: one fix with the database's own findings
        extra: dict[str, Any] = {"fix_sql": advice.fix_sql, "fix_target": advice.database}
        if advice.time_saved_ms is not None:
            extra["time_saved_ms"] = advice.time_saved_ms
        return text, extra
    if not top:
        return "Find which statements take the time (run it under the middleware).", {}
    repeated = [s for s in e.statements if s.n_plus_one_requests > 0]
    if repeated and sum(s.seconds for s in repeated) >= 0.5 * sum(s.seconds for s in e.statements):
        return (
            f"Most of its database time is one statement run once per item "
            f"(`{short_query(repeated[0].text, 100)}`): fetch the rows in one query (see "
            "n_plus_one).",
            {},
        )
    text = short_query(top[0].text, 100)
    if ctx.database is not None:
        note = f" ({ctx.advice_note})" if ctx.advice_note else ""
        return (
            f"`opscope indexes advise {ctx.database}` proposes no index for its statements"
            f"{note}; read the plan of `{text}` with `opscope explain {ctx.database} "
            "'...'` and cut what the handler asks of the database.",
            {},
        )
    return (
        f"Read the plan of its top statement, `{text}`, with `opscope explain DSN '...'`, "
        "and let `opscope indexes advise DSN` propose indexes; set `database:` for this API in "
        "opscope.yaml and `analyze api` links the advice to the route.",
        {},
    )


def _pool_note(e: Endpoint) -> str:
    """A sentence about connections the requests open themselves, if they do."""
    if not e.connects or not e.requests or e.connects / e.requests < 0.5:
        return ""
    return (
        f" It opens {e.connects / e.requests:.1f} new database connection(s) per request: take "
        "them from a pool opened at startup (psycopg_pool.ConnectionPool, or the engine's pool)."
    )


class SlowEndpoint:
    id = "slow_endpoint"
    category = CATEGORY
    kind = KIND
    summary = "An endpoint's p95 latency is over `slow_p95_ms`; ranked by rate × latency."

    def run(self, ctx: ApiContext) -> Iterator[Finding]:
        t = ctx.thresholds
        for e in ctx.endpoints.values():
            if e.route in _NOT_ROUTES or e.requests < t.min_requests:
                continue
            p95 = e.quantile_ms(0.95)
            if p95 is None or p95 <= t.slow_p95_ms:
                continue
            evidence = _base_evidence(ctx, e)
            db_share = _share(e.db_s, e.duration_s)
            ser_share = _share(e.serialization_s, e.duration_s)
            parts: list[str] = []
            if db_share is not None:
                evidence["db_share"] = round(db_share, 3)
                parts.append(f"database {db_share:.0%}")
            if ser_share is not None:
                evidence["serialization_share"] = round(ser_share, 3)
                parts.append(f"serialization {ser_share:.0%}")
            if db_share is not None and ser_share is not None:
                parts.append(f"the handler itself {max(1 - db_share - ser_share, 0):.0%}")
            detail = f"Its p95 is {human_ms(p95)} (threshold {human_ms(t.slow_p95_ms)})"
            detail += f"; of its time: {', '.join(parts)}." if parts else "."
            extra: dict[str, Any] = {}
            if db_share is not None and db_share >= t.db_share:
                recommendation, extra = _database_advice(ctx, e)
                evidence["statements"] = _statements_evidence(e.top_statements())
                if e.statements:
                    evidence["query"] = e.top_statements(1)[0].text
            elif ser_share is not None and ser_share >= t.serialization_share:
                recommendation = "Most of it is serialization: see serialization_heavy_endpoint."
            elif db_share is not None:
                recommendation = (
                    "The time is in the handler, not the database or serialization: profile it "
                    "under load (py-spy dump/record, pyinstrument) and look for blocking calls "
                    "in async handlers and calls to other services."
                )
            else:
                recommendation = (
                    "Instrument the app with opscope.api.Instrument (or InstrumentWSGI) to see "
                    "whether the time is the database's, serialization's or the handler's."
                )
            recommendation += _pool_note(e)
            severity = Severity.critical if p95 >= t.critical_p95_ms else Severity.warning
            rate = ctx.rate(e)
            at = f", {rate:,.2f}/s" if rate is not None else ""
            yield Finding.make(
                check=self.id,
                category=self.category,
                severity=severity,
                target=ctx.target,
                object=e.route,
                title=f"Slow endpoint {e.route}: p95 {human_ms(p95)} over {int(e.requests):,} "
                f"requests{at}",
                detail=detail,
                evidence={**evidence, **{k: v for k, v in extra.items() if k != "fix_sql"}},
                recommendation=recommendation,
                fix_sql=extra.get("fix_sql"),
            )


class DbHeavyEndpoint:
    id = "db_heavy_endpoint"
    category = CATEGORY
    kind = KIND
    summary = "Most of an endpoint's time (`db_share`, 50%) is spent in database queries."

    def run(self, ctx: ApiContext) -> Iterator[Finding]:
        t = ctx.thresholds
        for e in ctx.endpoints.values():
            if e.route in _NOT_ROUTES or e.requests < t.min_requests:
                continue
            share = _share(e.db_s, e.duration_s)
            mean = e.mean_ms
            if share is None or mean is None or share < t.db_share or mean < t.db_min_mean_ms:
                continue
            assert e.db_s is not None
            per_request_ms = e.db_s * 1000 / e.requests
            queries = (e.queries or 0) / e.requests
            evidence = _base_evidence(ctx, e)
            evidence.update(
                db_share=round(share, 3),
                db_ms_per_request=round(per_request_ms, 2),
                queries_per_request=round(queries, 2),
                statements=_statements_evidence(e.top_statements()),
            )
            if e.statements:
                evidence["query"] = e.top_statements(1)[0].text
            recommendation, extra = _database_advice(ctx, e)
            if queries >= 10 and not extra and not e.n_plus_one:
                recommendation = (
                    f"It runs {queries:.0f} queries per request: fetch the rows in fewer "
                    "queries (see n_plus_one). " + recommendation
                )
            recommendation += _pool_note(e)
            yield Finding.make(
                check=self.id,
                category=self.category,
                severity=Severity.warning,
                target=ctx.target,
                object=e.route,
                title=f"{e.route} spends {share:.0%} of its time in the database "
                f"({human_ms(per_request_ms)} and {queries:.1f} queries per request)",
                detail=(
                    f"Of a mean {human_ms(mean)} per request, {human_ms(per_request_ms)} is spent "
                    "waiting for queries."
                ),
                evidence={**evidence, **{k: v for k, v in extra.items() if k != "fix_sql"}},
                recommendation=recommendation,
                fix_sql=extra.get("fix_sql"),
            )


class NPlusOne:
    id = "n_plus_one"
    category = CATEGORY
    kind = KIND
    summary = "One statement runs N times or more (5 by default) in one request of an endpoint."

    def run(self, ctx: ApiContext) -> Iterator[Finding]:
        for e in ctx.endpoints.values():
            if e.route in _NOT_ROUTES or not e.n_plus_one:
                continue
            flagged = [s for s in e.statements if s.n_plus_one_requests > 0]
            if not flagged:
                flagged = [Statement("", "(statement not kept: past the per-route cap)", 0, 0)]
            for s in flagged:
                requests = s.n_plus_one_requests or e.n_plus_one
                share = requests / e.requests if e.requests else 0.0
                evidence = _base_evidence(ctx, e)
                evidence.update(
                    query=s.text,
                    fingerprint=s.fingerprint,
                    max_repeats=int(s.max_repeats),
                    n_plus_one_requests=int(requests),
                    share_of_requests=round(share, 3),
                    statement_ms=round(s.seconds * 1000, 1),
                    calls_per_request=round(s.calls / e.requests, 1) if e.requests else None,
                )
                yield Finding.make(
                    check=self.id,
                    category=self.category,
                    severity=Severity.warning,
                    target=ctx.target,
                    object=e.route,
                    key=[s.fingerprint],
                    title=f"N+1 queries on {e.route}: one statement ran up to "
                    f"{int(s.max_repeats)} times in one request",
                    detail=(
                        f"In {int(requests):,} of {int(e.requests):,} requests ({share:.0%}) the "
                        "same statement ran once per item, one round trip each."
                    ),
                    evidence=evidence,
                    recommendation=(
                        "Fetch the rows in one query instead of one per item: a JOIN, or "
                        "`WHERE id = ANY(%s)` with the list of ids (psycopg); with the "
                        "SQLAlchemy ORM, load the relationship with "
                        "`.options(selectinload(Parent.children))` (or `joinedload`)."
                    )
                    + _pool_note(e),
                )


class SerializationHeavyEndpoint:
    id = "serialization_heavy_endpoint"
    category = CATEGORY
    kind = KIND
    summary = (
        "Turning the handler's result into the body takes `serialization_share` (25%) of an "
        "endpoint's time."
    )

    def run(self, ctx: ApiContext) -> Iterator[Finding]:
        t = ctx.thresholds
        for e in ctx.endpoints.values():
            if e.route in _NOT_ROUTES or e.requests < t.min_requests:
                continue
            share = _share(e.serialization_s, e.duration_s)
            if share is None or e.serialization_s is None or share < t.serialization_share:
                continue
            per_request_ms = e.serialization_s * 1000 / e.requests
            if per_request_ms < t.serialization_min_mean_ms:
                continue
            evidence = _base_evidence(ctx, e)
            evidence.update(
                serialization_share=round(share, 3),
                serialization_ms_per_request=round(per_request_ms, 2),
            )
            yield Finding.make(
                check=self.id,
                category=self.category,
                severity=Severity.warning,
                target=ctx.target,
                object=e.route,
                title=f"{e.route} spends {share:.0%} of its time serializing the response "
                f"({human_ms(per_request_ms)} per request)",
                detail="Validating and encoding the handler's result costs more than the "
                "work that produced it.",
                evidence=evidence,
                recommendation=(
                    "Send less and encode it faster: a leaner response model (only the fields "
                    "clients read; paginate long lists), and orjson — FastAPI: declare the "
                    "response model so pydantic encodes straight to JSON, or return "
                    "`Response(orjson.dumps(data), media_type='application/json')`; Flask: "
                    "a JSON provider whose `dumps` calls orjson."
                ),
            )


class HighErrorRateEndpoint:
    id = "high_error_rate_endpoint"
    category = CATEGORY
    kind = KIND
    summary = "More than `error_rate` (5%) of an endpoint's responses are 5xx."

    def run(self, ctx: ApiContext) -> Iterator[Finding]:
        t = ctx.thresholds
        for e in ctx.endpoints.values():
            if e.route in _NOT_ROUTES or e.requests < t.min_requests:
                continue
            rate = e.error_rate
            if rate < t.error_rate:
                continue
            evidence = _base_evidence(ctx, e)
            evidence.update(
                errors=int(e.errors),
                error_rate=round(rate, 4),
                statuses={k: int(v) for k, v in sorted(e.statuses.items())},
                exceptions={k: int(v) for k, v in sorted(e.exceptions.items())},
            )
            if e.exceptions:
                worst = max(e.exceptions.items(), key=lambda kv: kv[1])
                recommendation = (
                    f"{worst[0]} escaped the handler {int(worst[1]):,} times: find it in the "
                    "app's log, and fix its cause or handle it; a client's mistake should be "
                    "answered with a 4xx (HTTPException, abort), not a 500."
                )
            else:
                recommendation = (
                    "Find the failures in the app's log by route and status; a client's mistake "
                    "should be answered with a 4xx, an unavailable dependency with a 503 and "
                    "Retry-After."
                )
            severity = Severity.critical if rate >= t.critical_error_rate else Severity.warning
            yield Finding.make(
                check=self.id,
                category=self.category,
                severity=severity,
                target=ctx.target,
                object=e.route,
                title=f"{e.route} fails {rate:.0%} of its requests ({int(e.errors):,} 5xx of "
                f"{int(e.requests):,})",
                evidence=evidence,
                recommendation=recommendation,
            )


CHECKS = (
    SlowEndpoint(),
    DbHeavyEndpoint(),
    NPlusOne(),
    SerializationHeavyEndpoint(),
    HighErrorRateEndpoint(),
)
