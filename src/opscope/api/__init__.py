"""Web APIs: instrumentation for ASGI and WSGI apps (`Instrument`, `InstrumentWSGI`), the
endpoint probe, access-log analysis and `analyze_api`.

Importing this package needs neither Starlette nor Flask: each framework is read only when an
app of it is instrumented. The middleware classes load on first use, so the CLI, which
imports the area's plugin, does not pay for prometheus_client."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from opscope.api.asgi import Instrument
    from opscope.api.wsgi import InstrumentWSGI

__all__ = ["Instrument", "InstrumentWSGI"]


def __getattr__(name: str) -> Any:
    if name == "Instrument":
        from opscope.api.asgi import Instrument

        return Instrument
    if name == "InstrumentWSGI":
        from opscope.api.wsgi import InstrumentWSGI

        return InstrumentWSGI
    raise AttributeError(f"module 'opscope.api' has no attribute {name!r}")
