"""The cache's counts per rule template, kept in the middleware's Recorder so that /metrics
(and the multiprocess files) carry them beside the request figures: hits, misses (handler
calls made to fill an entry), stale answers served, bypasses (requests with credentials or a
Range) and backend errors."""

from __future__ import annotations

from typing import Any

HIT, MISS, STALE, BYPASS, ERROR = range(5)
EVENTS = ("hits", "misses", "stale", "bypasses", "errors")


class CacheStats:
    def __init__(self, recorder: Any = None) -> None:
        if recorder is None:
            from opscope.api.recorder import default_recorder

            recorder = default_recorder()
        self.recorder = recorder

    def count(self, template: str, event: int) -> None:
        self.recorder.cache_event(template, event)
