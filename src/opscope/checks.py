"""The check protocol and registry.

Built-in checks and plugins register the same way (see `opscope.plugins`); the CLI, the
service and the tests all run checks through `run_checks`, so one failing check becomes an
entry in the report's ``errors`` and never stops the others.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

from opscope.errors import flat_message
from opscope.findings import CheckError, Finding

log = logging.getLogger(__name__)

#: the scope of a kind's main analysis (`analyze db` for postgresql, `opscope logs` for
#: postgresql-log); a check without a `scopes` attribute runs there only
MAIN = "main"


class CheckFailed(Exception):
    """A check could not run for a reason the user can act on (missing extension, permission).

    Its message is one line and ends up verbatim in the report's ``errors``.
    """


@dataclass(frozen=True)
class Skipped:
    """Yielded by a check among its findings for a part it could not examine (a statement
    whose plan the server refused, a table behind a lock): it becomes an entry in the
    report's `errors`, and the findings of the rest are kept."""

    message: str


@runtime_checkable
class Check(Protocol):
    """Read-only members, so a class attribute satisfies them as well as an instance's."""

    @property
    def id(self) -> str: ...

    @property
    def category(self) -> str: ...

    #: which kind of target the check reads ("postgresql", "api", "dags", ...)
    @property
    def kind(self) -> str: ...

    #: one sentence for docs and `opscope checks`: what triggers it
    @property
    def summary(self) -> str: ...

    def run(self, context: Any) -> Iterable[Finding | Skipped]: ...


def scopes_of(check: Check) -> tuple[str, ...]:
    """Which analyses of its kind run `check`: its `scopes` attribute (optional, so a plugin
    check needs only the five members above), else the main one."""
    scopes = getattr(check, "scopes", None)
    return tuple(scopes) if scopes else (MAIN,)


class DuplicateCheckError(ValueError):
    pass


class Registry:
    """Checks by (kind, id). One id may exist once per kind of target: `slow_query` means the
    same thing whether pg_stat_statements or a server log is its source."""

    def __init__(self) -> None:
        self._checks: dict[tuple[str, str], Check] = {}

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

    def for_kind(self, kind: str, scope: str = MAIN) -> list[Check]:
        """The checks one analysis runs: of this kind, in this scope, in registration order."""
        return [c for c in self._checks.values() if c.kind == kind and scope in scopes_of(c)]

    def select(self, kind: str, scope: str, only: Iterable[str] | None) -> list[Check]:
        """`for_kind`, narrowed to the ids in `only` (the CLI's --check); an unknown id is a
        ValueError naming it."""
        checks = self.for_kind(kind, scope)
        if not only:
            return checks
        wanted = set(only)
        unknown = sorted(wanted - {c.id for c in checks})
        if unknown:
            raise ValueError(f"unknown check {unknown[0]!r} (see `opscope checks` for the list)")
        return [c for c in checks if c.id in wanted]

    def ids(self) -> list[str]:
        return sorted({check_id for _, check_id in self._checks})


def run_checks(
    checks: Iterable[Check], context: Any, target: str | None = None
) -> tuple[list[Finding], list[CheckError]]:
    findings: list[Finding] = []
    errors: list[CheckError] = []
    for check in checks:
        try:
            results = list(check.run(context))
        except CheckFailed as exc:
            errors.append(CheckError(check=check.id, message=str(exc), target=target))
            continue
        except Exception as exc:  # a broken check must not take the report down with it
            log.warning("check %s failed", check.id, exc_info=True)
            errors.append(CheckError(check=check.id, message=flat_message(exc), target=target))
            continue
        for item in results:
            if isinstance(item, Skipped):
                errors.append(CheckError(check=check.id, message=item.message, target=target))
            else:
                findings.append(item)
    return findings, errors
