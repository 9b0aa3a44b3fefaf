"""`opscope check`: every area's analysis of every configured target, once, in one report."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import suppress

from opscope.config import Config
from opscope.errors import first_line
from opscope.findings import CheckError, Report, utc_now
from opscope.monitor.collector import CollectContext
from opscope.monitor.settings import serve_settings, store_path
from opscope.monitor.store import Store, StoreError
from opscope.plugins import Plugins
from opscope.redact import redact


def _history(config: Config) -> Store | None:
    """The service's store, when one exists, for what analyses read from history (index
    usage over the whole observed window); never created or migrated by a check."""
    url = serve_settings(config).store_url(config)
    path = store_path(url)
    if path is not None and not path.exists():
        return None
    with suppress(StoreError):
        return Store.open(url, migrate=False)
    return None


def evaluate_everything(
    config: Config, plugins: Plugins, echo: Callable[[str], None] = lambda _: None
) -> tuple[Report, list[str]]:
    """One report of every analysis; the names of the targets that could not be read (each
    also an `errors` entry), so the command can exit 2 after showing the rest."""
    report = Report(generated_at=utc_now())
    unreachable: list[str] = []
    store = _history(config)
    context = CollectContext(history=store, clock=utc_now)
    try:
        for analysis in plugins.analyses(config):
            try:
                report.extend(analysis.run(context))
            except Exception as exc:  # one target down must not hide the others
                message = redact(first_line(exc)) or type(exc).__name__
                echo(f"opscope: error: {analysis.name}: {message}")
                unreachable.append(analysis.target)
                report.errors.append(
                    CheckError(check="connection", message=message, target=analysis.target)
                )
    finally:
        if store is not None:
            store.close()
    return report, unreachable
