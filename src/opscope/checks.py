"""The check protocol and registry.

Built-in checks and plugins (entry point group ``opscope.checks``) register the same way; the
CLI, the service and the tests all run checks through `run_checks`, so one failing check
becomes an entry in the report's ``errors`` and never stops the others.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator
from importlib.metadata import entry_points
from typing import Any, Protocol, runtime_checkable

from opscope.errors import flat_message
from opscope.findings import CheckError, Finding

log = logging.getLogger(__name__)


class CheckFailed(Exception):
    """A check could not run for a reason the user can act on (missing extension, permission).

    Its message is one line and ends up verbatim in the report's ``errors``.
    """


@runtime_checkable
class Check(Protocol):
    id: str
    category: str
    #: which kind of target the check reads ("postgresql", "api", "dags", ...)
    kind: str
    #: one sentence for docs and `opscope checks`: what triggers it
    summary: str

    def run(self, context: Any) -> Iterable[Finding]: ...


class DuplicateCheckError(ValueError):
    pass


class Registry:
    """Checks by (kind, id). One id may exist once per kind of target: `slow_query` means the
    same thing whether pg_stat_statements or a server log is its source."""

    def __init__(self) -> None:
        self._checks: dict[tuple[str, str], Check] = {}
        #: entry points already loaded, so loading twice is harmless while two plugins
        #: claiming one id still fail
        self.loaded_sources: set[str] = set()

    def register(self, check: Check) -> Check:
        key = (check.kind, check.id)
        if key in self._checks:
            raise DuplicateCheckError(
                f"check id {check.id!r} is already registered for {check.kind}"
            )
        self._checks[key] = check
        return check

    def __iter__(self) -> Iterator[Check]:
        return iter(self._checks.values())

    def find(self, kind: str, check_id: str) -> Check | None:
        return self._checks.get((kind, check_id))

    def for_kind(self, kind: str) -> list[Check]:
        return [c for c in self._checks.values() if c.kind == kind]

    def ids(self) -> list[str]:
        return sorted({check_id for _, check_id in self._checks})


registry = Registry()


def load_plugins(target: Registry = registry, group: str = "opscope.checks") -> None:
    """Register checks published by installed packages under the entry point group."""
    for ep in entry_points(group=group):
        if ep.value in target.loaded_sources:
            continue
        obj = ep.load()
        # an entry point names one check (class or instance) or a list of them
        for item in obj if isinstance(obj, list | tuple) else [obj]:
            target.register(item() if isinstance(item, type) else item)
        target.loaded_sources.add(ep.value)


def default_registry() -> Registry:
    """The process-wide registry with built-ins and installed plugins loaded once."""
    if not registry.ids():
        load_plugins(registry)
    return registry


def run_checks(
    checks: Iterable[Check], context: Any, target: str | None = None
) -> tuple[list[Finding], list[CheckError]]:
    findings: list[Finding] = []
    errors: list[CheckError] = []
    for check in checks:
        try:
            findings.extend(check.run(context))
        except CheckFailed as exc:
            errors.append(CheckError(check=check.id, message=str(exc), target=target))
        except Exception as exc:  # a broken check must not take the report down with it
            log.warning("check %s failed", check.id, exc_info=True)
            errors.append(CheckError(check=check.id, message=flat_message(exc), target=target))
    return findings, errors
