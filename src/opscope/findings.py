"""Finding, Severity and Report: the JSON contract every analysis command emits.

The shape is documented in docs/findings.md and is a public contract: CI gates, other tools
and the dashboard read it, so fields are only ever added, never renamed.
"""

from __future__ import annotations

import enum
import hashlib
import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from opscope import __version__
from opscope.display import json_safe

JsonValue = Any
#: what a library function reads the time from; tests hand in a fixed one
Clock = Callable[[], datetime]


def utc_now() -> datetime:
    return datetime.now(UTC)


class Severity(enum.StrEnum):
    critical = "critical"
    warning = "warning"
    info = "info"

    @property
    def rank(self) -> int:
        """Higher is worse; used to sort worst first and for --fail-on."""
        return _RANK[self]

    @classmethod
    def parse(cls, text: str) -> Severity:
        try:
            return cls(text.strip().lower())
        except ValueError:
            allowed = ", ".join(s.value for s in cls)
            raise ValueError(f"unknown severity {text!r} (expected one of: {allowed})") from None


_RANK = {Severity.critical: 3, Severity.warning: 2, Severity.info: 1}


def fingerprint(*parts: object) -> str:
    """A stable id: the same check on the same object gives the same id on every run."""
    digest = hashlib.sha256("\x1f".join(str(p) for p in parts).encode()).hexdigest()
    return digest[:16]


class Finding(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    id: str
    check: str
    category: str
    severity: Severity
    target: str
    object: str
    title: str
    detail: str = ""
    columns: tuple[str, ...] = ()
    evidence: Mapping[str, JsonValue] = Field(default_factory=dict)
    recommendation: str = ""
    fix_sql: str | None = None

    @classmethod
    def make(
        cls,
        *,
        check: str,
        category: str,
        severity: Severity,
        target: str,
        object: str,
        title: str,
        key: Sequence[Any] = (),
        **fields: Any,
    ) -> Finding:
        """Build a finding whose id fingerprints check, target, object and `key`
        (columns, a query id: whatever tells two findings on one object apart)."""
        columns = tuple(fields.get("columns", ()))
        ident = fingerprint(check, target, object, *columns, *key)
        return cls(
            id=ident,
            check=check,
            category=category,
            severity=severity,
            target=target,
            object=object,
            title=title,
            **fields,
        )


class CheckError(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    check: str
    message: str
    target: str | None = None


class Fix(BaseModel):
    """One distinct change (DDL, a setting, a config change) and the findings it resolves.

    Several checks often lead to the same change: an index that a foreign key, the advisor and
    a plan all ask for is one fix. A report's fixes are ranked by benefit, best first."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    id: str
    target: str
    #: what the change does, in a few words
    title: str
    fix_sql: str | None = None
    #: ids of the findings this change resolves
    findings: tuple[str, ...]
    #: their checks, in the order of `findings`
    checks: tuple[str, ...]
    #: the worst severity among them
    severity: Severity
    #: what it is expected to bring: `time_saved_ms`, `cost_saving`, `bytes_freed`
    benefit: Mapping[str, float] = Field(default_factory=dict)


class Target(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    kind: str
    name: str
    server_version: str | None = None


class Report(BaseModel):
    model_config = ConfigDict(extra="forbid")

    opscope_version: str = __version__
    generated_at: datetime = Field(default_factory=utc_now)
    targets: list[Target] = Field(default_factory=list)
    #: per target name for databases; areas may add their own keys (the log adds `queries`)
    summary: dict[str, JsonValue] = Field(default_factory=dict)
    findings: list[Finding] = Field(default_factory=list)
    #: ranked best first; see opscope.fixes
    fixes: list[Fix] = Field(default_factory=list)
    errors: list[CheckError] = Field(default_factory=list)

    def extend(self, other: Report) -> None:
        self.targets.extend(other.targets)
        self.summary.update(other.summary)
        self.findings.extend(other.findings)
        self.fixes = sorted([*self.fixes, *other.fixes], key=fix_rank)
        self.errors.extend(other.errors)

    def fix_by_finding(self) -> dict[str, Fix]:
        """The fix each finding points to, by finding id."""
        return {fid: fix for fix in self.fixes for fid in fix.findings}

    def sorted_findings(self) -> list[Finding]:
        """Worst first, then by category and object so output is stable between runs."""
        return sorted(
            self.findings,
            key=lambda f: (-f.severity.rank, f.category, f.check, -_weight(f), f.object, f.id),
        )

    def worst(self) -> Severity | None:
        return max((f.severity for f in self.findings), key=lambda s: s.rank, default=None)

    def fails(self, threshold: Severity | None) -> bool:
        worst = self.worst()
        return threshold is not None and worst is not None and worst.rank >= threshold.rank

    def to_json_dict(self) -> dict[str, JsonValue]:
        data = self.model_dump(mode="json")
        data["generated_at"] = self.generated_at.strftime("%Y-%m-%dT%H:%M:%SZ")
        pointers = {fid: fix.id for fix in self.fixes for fid in fix.findings}
        data["findings"] = [
            {**_finding_json(f), "fix": pointers.get(f.id)} for f in self.sorted_findings()
        ]
        for err in data["errors"]:
            if err.get("target") is None:
                err.pop("target", None)
        return data

    def to_json(self) -> str:
        return json_safe(json.dumps(self.to_json_dict(), indent=2, ensure_ascii=False)) + "\n"


#: evidence keys that measure how much a finding matters, in order of preference; within one
#: check, the heavier finding is listed first
_WEIGHT_KEYS = ("total_ms", "wasted_bytes", "bloat_bytes", "total_bytes", "heap_bytes", "bytes")


def _weight(finding: Finding) -> float:
    for key in _WEIGHT_KEYS:
        value = finding.evidence.get(key)
        if isinstance(value, int | float) and not isinstance(value, bool):
            return float(value)
    return 0.0


def _finding_json(finding: Finding) -> dict[str, JsonValue]:
    data = finding.model_dump(mode="json")
    data["columns"] = list(finding.columns)
    return data


#: evidence keys a finding may set to say what fixing it brings, in ranking order; a fix
#: takes the largest value of each among the findings it resolves (they describe one effect)
BENEFIT_KEYS = ("time_saved_ms", "cost_saving", "bytes_freed")


def fix_rank(fix: Fix) -> tuple[object, ...]:
    """Worst resolved finding first, then the most time saved, planner cost saved, bytes
    freed, the most findings resolved."""
    return (
        -fix.severity.rank,
        *(-fix.benefit.get(key, 0.0) for key in BENEFIT_KEYS),
        -len(fix.findings),
        fix.target,
        fix.title,
        fix.id,
    )


def count_by_severity(findings: Iterable[Finding]) -> dict[Severity, int]:
    counts = {s: 0 for s in Severity}
    for f in findings:
        counts[f.severity] += 1
    return counts
