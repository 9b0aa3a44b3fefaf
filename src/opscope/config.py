"""opscope.yaml -> frozen pydantic models.

Unknown keys are rejected, ``${ENV_VAR}`` (and ``${ENV_VAR:-default}``) is interpolated in
string values, and every error names the file, the line and the dotted key, in one line.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from opscope.db.plans.signature import parse_function_entry

ENV_VAR = "OPSCOPE_CONFIG"
DEFAULT_FILE = "opscope.yaml"


class ConfigError(Exception):
    """A user mistake in the config file; the message is one line and names where."""


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class SessionSettings(_Frozen):
    """How opscope behaves on every session it opens on a watched database."""

    statement_timeout_ms: int = Field(default=30_000, ge=0)
    lock_timeout_ms: int = Field(default=1_000, ge=0)
    connect_timeout_s: int = Field(default=10, ge=1)
    application_name: str = "opscope"


class DbThresholds(_Frozen):
    """Thresholds of the database checks; docs/config.md lists each with its meaning."""

    slow_query_ms: float = Field(default=1000.0, gt=0)
    top_statements: int = Field(default=10, ge=0)
    top_statements_min_share: float = Field(default=0.01, ge=0, le=1)
    min_calls: int = Field(default=1, ge=1)
    unused_index_min_stats_age_days: float = Field(default=7.0, ge=0)
    index_bloat_ratio: float = Field(default=0.3, gt=0, lt=1)
    index_bloat_min_bytes: int = Field(default=1 << 20, ge=0)
    table_bloat_ratio: float = Field(default=0.3, gt=0, lt=1)
    table_bloat_min_bytes: int = Field(default=1 << 20, ge=0)
    table_bloat_rewrite_ratio: float = Field(default=0.7, gt=0, lt=1)
    stale_statistics_ratio: float = Field(default=0.2, gt=0)
    stale_statistics_min_rows: int = Field(default=1000, ge=0)
    large_table_bytes: int = Field(default=1 << 30, ge=0)
    seq_scan_min_bytes: int = Field(default=10 << 20, ge=0)
    seq_scan_ratio: float = Field(default=0.5, gt=0, le=1)
    seq_scan_min_scans: int = Field(default=10, ge=1)
    xid_age_warning: int = Field(default=500_000_000, ge=1)
    xid_age_critical: int = Field(default=1_200_000_000, ge=1)
    vacuum_overdue_hours: float = Field(default=24.0, ge=0)
    vacuum_overdue_min_dead_tuples: int = Field(default=1000, ge=0)


class PlanSettings(_Frozen):
    """Thresholds of the plan diagnosis (defaults suit OLTP and mixed workloads)."""

    #: a sequential scan matters from this many rows in the table
    seq_scan_min_rows: int = Field(default=10_000, ge=0)
    #: ...when the filter throws away at least this share of the rows it reads
    seq_scan_discard_ratio: float = Field(default=0.9, gt=0, le=1)
    #: estimated and actual rows differ by this factor or more
    misestimate_factor: float = Field(default=10.0, gt=1)
    #: ...and the larger of the two is at least this many rows (1 vs 9 rows is noise)
    misestimate_min_rows: float = Field(default=100.0, ge=0)
    #: a nested loop's inner side runs at least this many times
    nested_loop_min_loops: int = Field(default=1000, ge=1)
    #: how many statements (by total time) the automatic review of `analyze db` plans
    review_statements: int = Field(default=10, ge=0)
    #: the review runs EXPLAIN ANALYZE only for read-only statements whose mean time is
    #: below this: a review must not add heavy load
    review_analyze_max_mean_ms: float = Field(default=500.0, ge=0)
    #: functions outside PostgreSQL's built-ins that the user knows only read, so EXPLAIN
    #: ANALYZE may run statements that reach them: `schema.name(type, ...)`, or
    #: `schema.name` for every overload
    read_only_functions: tuple[str, ...] = ()
    #: extensions whose immutable and stable functions are trusted to only read
    read_only_extensions: tuple[str, ...] = ()

    @field_validator("read_only_functions")
    @classmethod
    def _function_entries(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for entry in value:
            parse_function_entry(entry)
        return value


class AdvisorSettings(_Frozen):
    """Bounds and weights of the index advisor."""

    #: recommend at most this many indexes
    max_indexes: int = Field(default=10, ge=1)
    #: a statement counts as helped when its planner cost drops by at least this share
    min_improvement: float = Field(default=0.2, gt=0, le=1)
    #: the top statements by total time that make up the workload
    statements: int = Field(default=50, ge=1)
    #: tables with fewer rows are never indexed: a few pages read in full cost nothing
    min_table_rows: int = Field(default=1000, ge=0)
    #: candidates costed at most (each costs one EXPLAIN per statement on its table)
    max_candidates: int = Field(default=80, ge=1)
    #: INCLUDE at most this many columns for a covering index
    max_include: int = Field(default=3, ge=0)
    #: planner-cost units one index entry adds to a written row (a btree descent, WAL)
    write_cost_per_row: float = Field(default=2.0, ge=0)
    #: candidates of equality keys only that match more than this share of the rows are not
    #: costed: a low-cardinality column (a status with five values) is better read in full
    max_equality_share: float = Field(default=0.1, gt=0, le=1)
    #: stop costing after this many seconds and report what was found (partial)
    time_budget_s: float = Field(default=60.0, gt=0)


class DatabaseConfig(_Frozen):
    dsn: str
    thresholds: DbThresholds | None = None

    @field_validator("dsn")
    @classmethod
    def _dsn_scheme(cls, value: str) -> str:
        if not value.startswith(("postgresql://", "postgres://")) and "=" not in value:
            raise ValueError("expected a postgresql:// URL or a key=value connection string")
        return value


class Config(_Frozen):
    databases: dict[str, DatabaseConfig] = Field(default_factory=dict)
    session: SessionSettings = SessionSettings()
    thresholds: DbThresholds = DbThresholds()
    plans: PlanSettings = PlanSettings()
    advisor: AdvisorSettings = AdvisorSettings()
    #: where snapshots for growth and diff reports are kept between runs
    state_dir: Path | None = None
    #: the file this came from, for messages; not a config key
    source: Path | None = Field(default=None, exclude=True)

    def thresholds_for(self, database: str | None) -> DbThresholds:
        """The global thresholds, with the keys a database's own block sets replacing them."""
        db = self.databases.get(database) if database else None
        if db is None or db.thresholds is None:
            return self.thresholds
        own = db.thresholds
        return self.thresholds.model_copy(
            update={key: getattr(own, key) for key in own.model_fields_set}
        )

    def resolved_state_dir(self) -> Path:
        if self.state_dir is not None:
            return self.state_dir
        env = os.environ.get("OPSCOPE_STATE_DIR")
        if env:
            return Path(env)
        base = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
        return Path(base) / "opscope"


_ENV_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


def interpolate(text: str, env: Mapping[str, str], where: str) -> str:
    def repl(match: re.Match[str]) -> str:
        name, default = match.group(1), match.group(2)
        if name in env:
            return env[name]
        if default is not None:
            return default
        raise ConfigError(f"{where}: environment variable {name} is not set")

    return _ENV_REF.sub(repl, text)


def _key_path(loc: tuple[int | str, ...]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def _line_of(node: yaml.Node | None, loc: tuple[int | str, ...]) -> int | None:
    """Line (1-based) of the deepest node along `loc` that exists in the YAML tree."""
    line = node.start_mark.line + 1 if node is not None else None
    for part in loc:
        if isinstance(node, yaml.MappingNode):
            for key_node, value_node in node.value:
                if key_node.value == part:
                    line = key_node.start_mark.line + 1
                    node = value_node
                    break
            else:
                return line
        elif isinstance(node, yaml.SequenceNode) and isinstance(part, int):
            if part >= len(node.value):
                return line
            node = node.value[part]
            line = node.start_mark.line + 1
        else:
            return line
    return line


def _duplicate_key(root: yaml.Node | None) -> tuple[str, int] | None:
    """The first key given twice in one mapping, with its line: YAML keeps the last one
    silently, which hides a typo'd override."""
    seen_nodes: set[int] = set()
    stack = [root]
    while stack:
        node = stack.pop()
        if node is None or id(node) in seen_nodes:
            continue
        seen_nodes.add(id(node))
        if isinstance(node, yaml.MappingNode):
            keys: set[str] = set()
            for key_node, value_node in node.value:
                key = str(key_node.value)
                if key in keys:
                    return key, key_node.start_mark.line + 1
                keys.add(key)
                stack.append(value_node)
        elif isinstance(node, yaml.SequenceNode):
            stack.extend(node.value)
    return None


def _interpolate_tree(value: Any, env: Mapping[str, str], where: str, path: str) -> Any:
    if isinstance(value, str):
        return interpolate(value, env, f"{where} key {path}")
    if isinstance(value, dict):
        return {
            k: _interpolate_tree(v, env, where, f"{path}.{k}" if path else str(k))
            for k, v in value.items()
        }
    if isinstance(value, list):
        return [_interpolate_tree(v, env, where, f"{path}[{i}]") for i, v in enumerate(value)]
    return value


def parse_config(text: str, source: str, env: Mapping[str, str] | None = None) -> Config:
    env = os.environ if env is None else env
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
        raw = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        at = f":{mark.line + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or "invalid YAML"
        raise ConfigError(f"{source}{at}: {problem}") from None
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise ConfigError(f"{source}:1: the top level must be a mapping of keys")
    duplicate = _duplicate_key(node)
    if duplicate is not None:
        key, key_line = duplicate
        raise ConfigError(f"{source}:{key_line}: key {key!r} is given twice")
    try:
        raw = _interpolate_tree(raw, env, source, "")
    except RecursionError:
        raise ConfigError(f"{source}: a YAML alias refers to itself") from None
    try:
        config = Config.model_validate(raw)
    except ValidationError as exc:
        first = exc.errors()[0]
        loc = tuple(first["loc"])
        line = _line_of(node, loc)
        at = f":{line}" if line else ""
        msg = first["msg"]
        if first["type"] == "extra_forbidden":
            msg = "unknown key"
        raise ConfigError(f"{source}{at}: key {_key_path(loc)}: {msg}") from None
    return config.model_copy(update={"source": Path(source)})


def load_config(path: str | Path | None = None, env: Mapping[str, str] | None = None) -> Config:
    """Load from `path`, else $OPSCOPE_CONFIG, else ./opscope.yaml if present, else defaults."""
    env = os.environ if env is None else env
    explicit = path is not None or bool(env.get(ENV_VAR))
    chosen = Path(path) if path is not None else Path(env.get(ENV_VAR) or DEFAULT_FILE)
    if not chosen.exists():
        if explicit:
            raise ConfigError(f"{chosen}: config file not found")
        return Config()
    try:
        text = chosen.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{chosen}: cannot read config file: {exc}") from None
    return parse_config(text, str(chosen), env)
