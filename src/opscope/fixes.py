"""Each fix shown once: findings that call for the same change are grouped into one `Fix`.

The area says what a finding's fix changes (`Change`s read from its `fix_sql`, for
PostgreSQL); the grouping here knows no area. A change can serve another that it subsumes:
an index on (a, b) serves the lookups an index on (a) was asked for, and `VACUUM (ANALYZE)`
does what `ANALYZE` would. Findings go to the smallest fix that serves their own change.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

from opscope.findings import BENEFIT_KEYS, Finding, Fix, fingerprint, fix_rank
from opscope.sqltext import flatten, short_query


@dataclass(frozen=True)
class Change:
    """One step of a fix, as far as telling fixes apart is concerned."""

    #: what is done: "create_index", "drop_index", "analyze", "vacuum", "sql", ...
    action: str
    #: what it is done to
    object: str
    columns: tuple[str, ...] = ()
    #: columns carried along without being part of the key (an index's INCLUDE list)
    include: tuple[str, ...] = ()
    #: everything else that must be equal for two changes to be one (method, predicate, ...)
    variant: str = ""
    #: also serves a change of the same action, object and variant whose columns are a
    #: prefix of these
    prefix_serves: bool = False
    #: other actions on the same object that this change accomplishes too
    covers: frozenset[str] = frozenset()
    #: how a person would say it ("create an index on public.t (a)")
    title: str = ""

    @property
    def key(self) -> tuple[str, str, tuple[str, ...], tuple[str, ...], str]:
        return (self.action, self.object, self.columns, self.include, self.variant)

    def serves(self, other: Change) -> bool:
        if self.key == other.key:
            return True
        if self.object != other.object:
            return False
        if other.action in self.covers and not other.columns and not other.variant:
            return True
        return (
            self.prefix_serves
            and (self.action, self.variant) == (other.action, other.variant)
            and self.columns[: len(other.columns)] == other.columns
            and set(other.include) <= {*self.columns, *self.include}
        )


ChangeReader = Callable[[Finding], Sequence[Change]]


def fix_target(finding: Finding) -> str:
    """Where the fix applies: `evidence.fix_target` when it is not the finding's own target
    (an endpoint's finding whose fix is an index on its database), else its target."""
    where = finding.evidence.get("fix_target")
    return where if isinstance(where, str) and where else finding.target


def text_changes(finding: Finding) -> tuple[Change, ...]:
    """The fallback: the fix is its SQL text, white space folded."""
    text = flatten(finding.fix_sql or "")
    return (Change("sql", text, title=short_query(text, 70)),)


def _serves(big: Sequence[Change], small: Sequence[Change]) -> bool:
    return all(any(b.serves(s) for b in big) for s in small)


def _benefit(findings: Iterable[Finding]) -> dict[str, float]:
    out: dict[str, float] = {}
    for f in findings:
        for key in BENEFIT_KEYS:
            value = f.evidence.get(key)
            if isinstance(value, int | float) and not isinstance(value, bool) and value > 0:
                out[key] = max(out.get(key, 0.0), float(value))
    return out


def _weight(f: Finding) -> tuple[object, ...]:
    """Which finding's SQL stands for its group: the one that measured the most."""
    return (*(-float(f.evidence.get(k, 0) or 0) for k in BENEFIT_KEYS), -f.severity.rank, f.check)


def group_fixes(findings: Iterable[Finding], read: ChangeReader = text_changes) -> list[Fix]:
    """The distinct fixes of `findings` (those with `fix_sql`), ranked best first."""
    groups: dict[tuple[str, tuple[object, ...]], tuple[tuple[Change, ...], list[Finding]]] = {}
    for f in findings:
        if not f.fix_sql:
            continue
        changes = tuple(read(f)) or text_changes(f)
        key = (fix_target(f), tuple(c.key for c in changes))
        groups.setdefault(key, (changes, []))[1].append(f)
    entries = [(target, changes, members) for (target, _), (changes, members) in groups.items()]

    def strictly_serves(big: int, small: int) -> bool:
        a, b = entries[big], entries[small]
        return a[0] == b[0] and _serves(a[1], b[1]) and not _serves(b[1], a[1])

    def size(i: int) -> tuple[int, int]:
        return len(entries[i][1]), sum(len(c.columns) for c in entries[i][1])

    # A change only serves one on the same object, so the entries that could serve entry i
    # all have a change on the object of i's first change: compare within those, never all
    # pairs (a database of 1,000 tables has thousands of distinct fixes).
    on_object: dict[tuple[str, str], list[int]] = {}
    for i, (target, changes, _) in enumerate(entries):
        for obj in dict.fromkeys(c.object for c in changes):
            on_object.setdefault((target, obj), []).append(i)

    def rivals(i: int) -> list[int]:
        target, changes, _ = entries[i]
        return [j for j in on_object[(target, changes[0].object)] if j != i]

    # a fix of its own for every change nothing else subsumes; each other change joins the
    # smallest of those that does its job: the least beyond what was asked
    indexes = range(len(entries))
    roots = {i for i in indexes if not any(strictly_serves(j, i) for j in rivals(i))}
    resolved: dict[int, list[Finding]] = {i: list(entries[i][2]) for i in sorted(roots)}
    for i in indexes:
        if i in resolved:
            continue
        serving = [r for r in rivals(i) if r in roots and strictly_serves(r, i)]
        if serving:
            resolved[min(serving, key=lambda r: (size(r), r))].extend(entries[i][2])
        else:
            resolved[i] = list(entries[i][2])
    fixes: list[Fix] = []
    for i, members in resolved.items():
        target, changes, own = entries[i]
        lead = min(own, key=_weight)
        ordered_members = sorted(members, key=lambda f: (-f.severity.rank, f.check, f.id))
        titles = [c.title for c in changes if c.title]
        fixes.append(
            Fix(
                id=fingerprint("fix", target, *(repr(c.key) for c in changes)),
                target=target,
                title="; ".join(titles) if titles else short_query(lead.fix_sql or "", 70),
                fix_sql=lead.fix_sql,
                findings=tuple(f.id for f in ordered_members),
                checks=tuple(f.check for f in ordered_members),
                severity=max((f.severity for f in members), key=lambda s: s.rank),
                benefit=_benefit(members),
            )
        )
    return sorted(fixes, key=fix_rank)
