"""What the resources checks read: one host's sample, its process groups and disk growth, the
connection pools of its apps and PgBouncers with what their databases can take, and the
uptime probes."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from opscope.resources.capacity import Capacity
from opscope.resources.history import Growth
from opscope.resources.host import HostSample
from opscope.resources.pgbouncer import BouncerPool
from opscope.resources.pools import AppPool
from opscope.resources.probes import ProbeResult
from opscope.resources.processes import GroupSample
from opscope.resources.settings import ResourceSettings, ResourceThresholds

KIND = "resources"
#: the scope of `opscope analyze resources`
MAIN = "main"


@dataclass
class ResourcesContext:
    target: str
    now: datetime
    settings: ResourceSettings = field(default_factory=ResourceSettings)
    host: HostSample | None = None
    groups: list[GroupSample] = field(default_factory=list)
    growth: dict[str, Growth] = field(default_factory=dict)
    pools: list[AppPool] = field(default_factory=list)
    bouncers: list[BouncerPool] = field(default_factory=list)
    #: what each pool's database can take, by app name (pools) or PgBouncer name
    capacity: dict[str, Capacity] = field(default_factory=dict)
    probes: list[ProbeResult] = field(default_factory=list)

    @property
    def thresholds(self) -> ResourceThresholds:
        return self.settings.thresholds
