"""The small base shared by database checks: identity fields and a finding factory."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any, ClassVar

from opscope.checks import Skipped
from opscope.db.context import DATABASE, KIND, DbContext
from opscope.findings import Finding, Severity


class DbCheck:
    id: ClassVar[str]
    category: ClassVar[str]
    summary: ClassVar[str]
    kind: ClassVar[str] = KIND
    #: the analyses that run it (see opscope.db.context): most read the whole database
    scopes: ClassVar[tuple[str, ...]] = (DATABASE,)

    def run(self, context: DbContext) -> Iterable[Finding | Skipped]:
        raise NotImplementedError

    def finding(
        self,
        context: DbContext,
        *,
        severity: Severity,
        object: str,
        title: str,
        key: Sequence[object] = (),
        **fields: Any,
    ) -> Finding:
        return Finding.make(
            check=self.id,
            category=self.category,
            severity=severity,
            target=context.target,
            object=object,
            title=title,
            key=key,
            **fields,
        )
