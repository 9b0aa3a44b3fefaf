"""The cache checks: endpoints whose answers repeat and stay the same (`cacheable_endpoint`,
with the ResponseCache rule to paste) and cache rules that rarely hit (`cache_low_hit_ratio`).

From the middleware's /metrics, what a request's answer does is known: how often one request
(path, sorted query, the headers the answer varies on) comes again, whether the body is the
same as last time, for how long answers stay the same, and which requests carry credentials.
From access logs only the repeats are known, and the finding says so.

The projected hit ratio assumes each distinct request comes at the endpoint's mean rate per
distinct request, λ, as a Poisson stream: an entry filled by a miss answers the λ·TTL requests
that follow within its TTL, so hits are λT / (1 + λT) of the requests — never more than the
share that repeated at all in the span observed.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from opscope.api.checks import _NOT_ROUTES, _base_evidence, _r
from opscope.api.context import ACCESS_LOG, KIND, ApiContext
from opscope.api.endpoints import Endpoint
from opscope.api.settings import ApiThresholds
from opscope.findings import Finding, Severity
from opscope.units import human_ms

CATEGORY = "caching"
#: TTLs proposed, rounded down to one of these (seconds)
NICE_TTLS = (1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 21600, 86400)


def nice_ttl(seconds: float) -> int:
    """The largest of NICE_TTLS at most `seconds` (at least 1)."""
    best = NICE_TTLS[0]
    for value in NICE_TTLS:
        if value <= seconds:
            best = value
    return best


def proposed_ttl(e: Endpoint, elapsed_s: float | None, t: ApiThresholds) -> tuple[int, str] | None:
    """A TTL from how long the endpoint's answers stayed the same, and why; None when they
    change within a second."""
    if not e.changes:
        span = min(elapsed_s or t.cache_max_ttl_s, t.cache_max_ttl_s)
        seen = f"{human_ms(elapsed_s * 1000)} observed" if elapsed_s else "the span observed"
        return nice_ttl(span), f"no answer changed in the {seen}"
    stable = e.stable.quantile(0.1) if e.stable is not None else None
    if stable is None or stable < 1:
        return None
    ttl = nice_ttl(min(stable, t.cache_max_ttl_s))
    return ttl, f"90% of its answers stayed the same for {human_ms(stable * 1000)} or longer"


def projected_hit_ratio(
    repeat_share: float, followed: float, keys: float, elapsed_s: float | None, ttl: float
) -> float:
    if not elapsed_s or not keys:
        return repeat_share
    per_key = followed / keys / elapsed_s
    return min(repeat_share, per_key * ttl / (1 + per_key * ttl))


def rule_text(route: str, ttl: int) -> str:
    return f'"{route}": CacheRule(ttl={ttl})'


class CacheableEndpoint:
    id = "cacheable_endpoint"
    category = CATEGORY
    kind = KIND
    summary = (
        "GET answers of an endpoint repeat (`cache_min_repeat_share`) and stay the same: a "
        "ResponseCache rule, with its TTL and projected hit ratio."
    )

    def run(self, ctx: ApiContext) -> Iterator[Finding]:
        t = ctx.thresholds
        for e in ctx.endpoints.values():
            if e.route in _NOT_ROUTES or e.repeats is None or e.cache_lookups:
                continue
            followed = e.repeats + (e.keys or 0.0)
            share = e.repeat_share
            mean = e.mean_ms
            if (
                share is None
                or followed < t.min_requests
                or share < t.cache_min_repeat_share
                or mean is None
                or mean < t.cache_min_mean_ms
            ):
                continue
            private = (e.private or 0.0) / e.reads if e.reads else 0.0
            if private >= 0.5:
                continue  # mostly per-user answers: nothing to share
            from_logs = ctx.source == ACCESS_LOG or e.changes is None
            change_share = None if from_logs else (e.changes or 0.0) / e.repeats
            if change_share is not None and change_share > t.cache_max_change_share:
                continue
            if from_logs:
                ttl, basis = (
                    int(t.cache_assumed_ttl_s),
                    "assumed (`cache_assumed_ttl_s`): access logs do not say how long answers "
                    "stay the same",
                )
            else:
                found = proposed_ttl(e, ctx.elapsed_s, t)
                if found is None:
                    continue
                ttl, basis = found
            yield self._finding(ctx, e, share, followed, private, change_share, ttl, basis)

    def _finding(
        self,
        ctx: ApiContext,
        e: Endpoint,
        share: float,
        followed: float,
        private: float,
        change_share: float | None,
        ttl: int,
        basis: str,
    ) -> Finding:
        hit = projected_hit_ratio(share, followed, e.keys or 0.0, ctx.elapsed_s, ttl)
        mean = e.mean_ms or 0.0
        db_ms = e.db_s * 1000 / e.requests if e.db_s is not None and e.requests else None
        rate = e.reads_ok / ctx.elapsed_s if ctx.elapsed_s else None
        evidence: dict[str, Any] = _base_evidence(ctx, e)
        evidence.update(
            get_requests=int(e.reads_ok),
            distinct_requests=int(e.keys or 0),
            repeat_share=round(share, 3),
            change_share=_r(change_share, 3),
            private_share=round(private, 3) if ctx.source != ACCESS_LOG else None,
            ttl_s=ttl,
            ttl_basis=basis,
            projected_hit_ratio=round(hit, 3),
        )
        saved_text = ""
        if rate is not None and ctx.elapsed_s:
            per_min = rate * 60 * hit * mean
            evidence["handler_ms_saved_per_min"] = round(per_min, 1)
            if db_ms is not None:
                evidence["db_ms_saved_per_min"] = round(rate * 60 * hit * db_ms, 1)
            evidence["time_saved_ms"] = round(per_min * ctx.elapsed_s / 60, 1)
            saved_text = f", saving {human_ms(per_min)} of handler time per minute"
            if db_ms:
                saved_text += f" ({human_ms(rate * 60 * hit * db_ms)} of it in the database)"
        else:
            evidence["time_saved_ms"] = round(e.reads_ok * hit * mean, 1)
            saved_text = f", about {human_ms(e.reads_ok * hit * mean)} of handler time over the log"
        rule = rule_text(e.route, ttl)
        evidence["rule"] = rule
        if ctx.source == ACCESS_LOG:
            detail = (
                f"{share:.0%} of its {int(e.reads_ok):,} successful GETs asked for a path and "
                f"query asked for before. From access logs alone only repeat rates are known: "
                "whether the answers stay the same between requests, and whether they depend on "
                "who asks (Authorization, Cookie), is not; run the app under "
                "opscope.api.Instrument to learn both before caching it."
            )
            title = (
                f"{e.route} may be cacheable: {share:.0%} of its GETs repeat an earlier one "
                "(from access logs: whether answers stay the same is not known)"
            )
        else:
            changed = f"{change_share:.0%}" if change_share is not None else "-"
            detail = (
                f"{share:.0%} of its {int(followed):,} followed GETs repeated a request answered "
                f"before, and {changed} of those got a different answer; the TTL is {ttl} s "
                f"because {basis}. With it, about {hit:.0%} of its GETs would be answered from "
                f"the cache{saved_text}."
            )
            title = (
                f"{e.route} is cacheable: {share:.0%} of its GETs repeat with the same answer; "
                f"a {ttl} s TTL would answer about {hit:.0%} from the cache"
            )
        recommendation = (
            f"Cache it: add `{rule}` to the rules of opscope.api.ResponseCache "
            "(ResponseCacheWSGI for a WSGI app), e.g. `app.add_middleware(ResponseCache, "
            f"rules={{{rule}}}, backend=RedisCache(URL))` before `app.add_middleware(Instrument)`."
            f" An answer that changes is served up to {ttl} s late: invalidate by tag when the "
            "data changes (`tags=(...)`, then `RedisCache.invalidate(tags=...)` or `opscope "
            "cache invalidate --tag T`)."
        )
        if private and ctx.source != ACCESS_LOG:
            recommendation += (
                f" {private:.0%} of its requests carry Authorization or Cookie: those are never "
                "answered from the shared cache."
            )
        return Finding.make(
            check=self.id,
            category=self.category,
            severity=Severity.info,
            target=ctx.target,
            object=e.route,
            title=title,
            detail=detail,
            evidence=evidence,
            recommendation=recommendation,
        )


class CacheLowHitRatio:
    id = "cache_low_hit_ratio"
    category = CATEGORY
    kind = KIND
    summary = (
        "A ResponseCache rule answers fewer than `cache_low_hit_ratio` (20%) of its look-ups "
        "from the cache."
    )

    def run(self, ctx: ApiContext) -> Iterator[Finding]:
        t = ctx.thresholds
        for e in ctx.endpoints.values():
            lookups = e.cache_lookups
            ratio = e.cache_hit_ratio
            if e.cache is None or ratio is None or lookups < t.cache_min_lookups:
                continue
            if ratio >= t.cache_low_hit_ratio:
                continue
            c = e.cache
            bypasses, errors = c.get("bypasses", 0.0), c.get("errors", 0.0)
            reasons: list[str] = []
            if bypasses >= lookups:
                reasons.append(
                    f"{int(bypasses):,} requests carried Authorization, Cookie or a Range and were "
                    "never looked up: cache per user with `vary=('authorization',)` if answers "
                    "are per user, or drop the rule"
                )
            if errors >= 0.1 * lookups:
                reasons.append(
                    f"the backend failed {int(errors):,} times: check that Redis is reachable"
                )
            share = e.repeat_share
            if share is not None and share < 0.5:
                reasons.append(
                    f"only {share:.0%} of its GETs repeat an earlier request ({int(e.keys or 0):,} "
                    "distinct): most keys are asked for once. If the key holds what the answer "
                    "does not depend on, narrow it (`query=(...)`: the query parameters the "
                    "handler reads; fewer `vary` headers); otherwise drop the rule"
                )
            if not reasons:
                reasons.append(
                    "its entries expire before they are asked for again: a longer `ttl` (see "
                    "how long answers stay the same: opscope_response_stable_seconds), or drop "
                    "the rule"
                )
            evidence: dict[str, Any] = {
                "source": ctx.source,
                "hit_ratio": round(ratio, 3),
                "lookups": int(lookups),
                **{k: int(v) for k, v in sorted(c.items())},
            }
            if share is not None:
                evidence["repeat_share"] = round(share, 3)
            yield Finding.make(
                check=self.id,
                category=self.category,
                severity=Severity.warning,
                target=ctx.target,
                object=e.route,
                title=f"The cache rule for {e.route} answers only {ratio:.0%} of {int(lookups):,} "
                "look-ups from the cache",
                detail="Every miss pays the look-up and the store on top of the handler.",
                evidence=evidence,
                recommendation=_sentence("; ".join(reasons)),
            )


def _sentence(text: str) -> str:
    return text[:1].upper() + text[1:] + "."


CACHE_CHECKS = (CacheableEndpoint(), CacheLowHitRatio())
