"""Thresholds of the server-health checks of `analyze db` (`postgresql.health`): connections,
sessions idle in transaction, long queries, lock waits, the cache, replication slots, and the
settings advice drawn from the measured workload."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class HealthSettings(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    #: `connection_saturation`: connections over the slots ordinary roles may use
    connection_warning_ratio: float = Field(default=0.8, gt=0, le=1)
    connection_critical_ratio: float = Field(default=0.95, gt=0, le=1)
    #: `idle_in_transaction`: a session idle inside its transaction this long
    idle_in_transaction_s: float = Field(default=60.0, gt=0)
    idle_in_transaction_critical_s: float = Field(default=900.0, gt=0)
    #: `long_running_query`: a statement running this long
    long_query_s: float = Field(default=300.0, gt=0)
    long_query_critical_s: float = Field(default=3600.0, gt=0)
    #: `blocked_queries`: sessions waiting for a lock at least this long
    blocked_min_wait_s: float = Field(default=5.0, ge=0)
    #: `low_cache_hit_ratio`: below this share of blocks found in shared buffers...
    cache_hit_ratio: float = Field(default=0.99, gt=0, le=1)
    #: ...once at least this many blocks were read or hit since the statistics began
    cache_min_blocks: int = Field(default=100_000, ge=0)
    #: `replication_slot_inactive`: an inactive slot holding back at least this much WAL
    slot_retained_bytes: int = Field(default=1 << 30, ge=0)
    #: the database server's memory, for the memory settings advice; None: this host's,
    #: when the server runs on it (a local socket or a loopback address), else no advice
    server_memory_bytes: int | None = Field(default=None, ge=1)
    #: `work_mem_advice`: statements that wrote at least this much temp per call
    work_mem_min_temp_bytes: int = Field(default=1 << 20, ge=0)
    #: ...and work_mem for all connections at once may take at most this share of memory
    work_mem_memory_share: float = Field(default=0.25, gt=0, le=1)
    #: `max_connections_advice`: the peak seen reaches this share of the usable slots
    max_connections_peak_ratio: float = Field(default=0.8, gt=0, le=1)
