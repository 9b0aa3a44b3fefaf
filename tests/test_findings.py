"""The findings contract and the check registry, with plain inputs."""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pytest

from opscope.checks import CheckFailed, DuplicateCheckError, Registry, run_checks
from opscope.findings import Finding, Report, Severity

DOCS = Path(__file__).resolve().parent.parent / "docs"


def _f(severity: Severity, obj: str = "public.t", **evidence: Any) -> Finding:
    return Finding.make(
        check="c",
        category="tables",
        severity=severity,
        target="db",
        object=obj,
        title="t",
        evidence=evidence,
    )


def test_ids_are_stable_and_distinguish_objects() -> None:
    assert _f(Severity.info).id == _f(Severity.warning).id
    assert _f(Severity.info, "public.a").id != _f(Severity.info, "public.b").id
    assert re.fullmatch(r"[0-9a-f]{16}", _f(Severity.info).id)


def test_fail_on_threshold() -> None:
    report = Report(findings=[_f(Severity.warning)])
    assert report.fails(Severity.warning) and report.fails(Severity.info)
    assert not report.fails(Severity.critical) and not report.fails(None)
    assert not Report().fails(Severity.info)


def test_json_orders_worst_first_then_heaviest() -> None:
    report = Report(
        findings=[
            _f(Severity.info, "public.small", bytes=10),
            _f(Severity.critical, "public.z"),
            _f(Severity.info, "public.big", bytes=1000),
        ]
    )
    data = json.loads(report.to_json())
    assert [f["object"] for f in data["findings"]] == ["public.z", "public.big", "public.small"]


def test_severity_parse() -> None:
    assert Severity.parse(" Critical ") is Severity.critical
    with pytest.raises(ValueError, match="unknown severity 'bad'"):
        Severity.parse("bad")


class _Boom:
    id = "boom"
    category = "tables"
    kind = "test"
    summary = "always fails"

    def run(self, context: Any) -> Iterable[Finding]:
        raise RuntimeError("kaput\nsecond line")


class _Refuses(_Boom):
    id = "refuses"

    def run(self, context: Any) -> Iterable[Finding]:
        raise CheckFailed("needs an extension")


class _Works(_Boom):
    id = "works"

    def run(self, context: Any) -> Iterable[Finding]:
        return [_f(Severity.info)]


def test_registry_rejects_duplicates() -> None:
    registry = Registry()
    registry.register(_Works())
    with pytest.raises(DuplicateCheckError):
        registry.register(_Works())


def test_a_failing_check_becomes_an_error_entry_and_others_run() -> None:
    findings, errors = run_checks([_Boom(), _Refuses(), _Works()], context=None, target="db")
    assert len(findings) == 1
    assert [(e.check, e.message) for e in errors] == [
        ("boom", "RuntimeError: kaput second line"),
        ("refuses", "needs an extension"),
    ]
