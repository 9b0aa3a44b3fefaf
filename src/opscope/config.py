"""opscope.yaml -> frozen pydantic models, one section per area.

The core knows no area: each area registers the top-level keys it owns (`databases`,
`postgresql`, later `apis`, `airflow`, `services`, `serve`) as a `ConfigSection`, and reads its
own settings back with `section.of(config)`. Unknown keys are rejected, ``${ENV_VAR}`` (and
``${ENV_VAR:-default}``) is interpolated in string values, and every error names the file, the
line and the dotted key, in one line.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Generic, TypeVar

import yaml
from pydantic import BaseModel, ValidationError

ENV_VAR = "OPSCOPE_CONFIG"
DEFAULT_FILE = "opscope.yaml"

M = TypeVar("M", bound=BaseModel)


class ConfigError(Exception):
    """A user mistake in the config file; the message is one line and names where."""


@dataclass(frozen=True)
class ConfigSection(Generic[M]):
    """A top-level key of opscope.yaml and the model that validates its value."""

    key: str
    model: type[M]
    #: one line for `opscope config check` and the docs
    summary: str
    #: top-level keys of older layouts whose settings now live in this section: naming one
    #: is an error that says where it went
    replaces: tuple[str, ...] = ()

    def of(self, config: Config) -> M:
        """This section's settings in `config`, or its defaults when the file has none."""
        value = config.sections.get(self.key)
        return value if isinstance(value, self.model) else self.model()


@dataclass(frozen=True)
class Config:
    """A whole opscope.yaml: each area's validated section by key, plus what every area
    shares."""

    sections: Mapping[str, BaseModel] = field(default_factory=dict)
    #: where snapshots for growth and diff reports are kept between runs
    state_dir: Path | None = None
    #: the file this came from, for messages
    source: Path | None = None

    def resolved_state_dir(self) -> Path:
        if self.state_dir is not None:
            return self.state_dir
        env = os.environ.get("OPSCOPE_STATE_DIR")
        if env:
            return Path(env)
        base = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
        return Path(base) / "opscope"


#: keys every config has, whatever areas are installed
CORE_KEYS = ("state_dir",)


_ENV_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


def interpolate(text: str, env: Mapping[str, str], where: str) -> str:
    """`text` with ${NAME} and ${NAME:-default} replaced from `env`; a ConfigError
    starting with `where` for a variable that is not set."""

    def repl(match: re.Match[str]) -> str:
        name, default = match.group(1), match.group(2)
        if name in env:
            return env[name]
        if default is not None:
            return default
        raise ConfigError(f"{where}: environment variable {name} is not set")

    return _ENV_REF.sub(repl, text)


def key_path(loc: Iterable[int | str]) -> str:
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


def _interpolate_tree(
    value: Any, env: Mapping[str, str], where: _Located, loc: tuple[int | str, ...]
) -> Any:
    if isinstance(value, str):
        try:
            return interpolate(value, env, "")
        except ConfigError as exc:
            raise where.error(loc, str(exc).removeprefix(": ")) from None
    if isinstance(value, dict):
        return {k: _interpolate_tree(v, env, where, (*loc, str(k))) for k, v in value.items()}
    if isinstance(value, list):
        return [_interpolate_tree(v, env, where, (*loc, i)) for i, v in enumerate(value)]
    return value


#: a config file is a few kilobytes; anything this big is a mistake (or an attack)
MAX_FILE_BYTES = 1 << 20
#: values the file may hold once its aliases are expanded: YAML aliases let a few hundred
#: bytes stand for billions of values ("billion laughs"), which every later step would walk
MAX_VALUES = 100_000


def _expanded_size(root: yaml.Node, source: str) -> int:
    """How many values the document holds with every alias expanded, counted on the node
    graph (aliases are shared nodes) without expanding anything."""
    sizes: dict[int, int] = {}
    on_path: set[int] = set()

    def size(node: yaml.Node) -> int:
        key = id(node)
        if key in sizes:
            return sizes[key]
        if key in on_path:
            raise ConfigError(f"{source}:{node.start_mark.line + 1}: a YAML alias refers to itself")
        on_path.add(key)
        total = 1
        if isinstance(node, yaml.MappingNode):
            for k, v in node.value:
                total += size(k) + size(v)
                if total > MAX_VALUES:
                    break
        elif isinstance(node, yaml.SequenceNode):
            for item in node.value:
                total += size(item)
                if total > MAX_VALUES:
                    break
        on_path.discard(key)
        sizes[key] = min(total, MAX_VALUES + 1)
        return sizes[key]

    return size(root)


def _compose(text: str, source: str) -> tuple[yaml.Node | None, Any]:
    """The node tree (for line numbers) and the data, refusing documents whose aliases
    expand beyond MAX_VALUES before anything is built from them."""
    loader = yaml.SafeLoader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None, None
        if _expanded_size(node, source) > MAX_VALUES:
            raise ConfigError(
                f"{source}: the file's aliases expand to more than {MAX_VALUES:,} values"
            )
        return node, loader.construct_document(node)
    finally:
        loader.dispose()


class _Located:
    """Builds `file:line: key ...: message` errors against the parsed YAML tree."""

    def __init__(self, source: str, node: yaml.Node | None) -> None:
        self.source = source
        self.node = node

    def error(self, loc: tuple[int | str, ...], message: str) -> ConfigError:
        line = _line_of(self.node, loc)
        at = f":{line}" if line else ""
        return ConfigError(f"{self.source}{at}: key {key_path(loc)}: {message}")

    def invalid(self, prefix: tuple[int | str, ...], exc: ValidationError) -> ConfigError:
        first = exc.errors()[0]
        loc = prefix + tuple(first["loc"])
        msg = "unknown key" if first["type"] == "extra_forbidden" else first["msg"]
        return self.error(loc, msg)


def parse_config(
    text: str,
    source: str,
    sections: Mapping[str, ConfigSection[Any]],
    env: Mapping[str, str] | None = None,
) -> Config:
    """Validate `text` against `sections` (the installed areas': `Plugins.config`)."""
    env = os.environ if env is None else env
    try:
        node, raw = _compose(text, source)
    except RecursionError:
        raise ConfigError(f"{source}: the file nests too deeply") from None
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
    where = _Located(source, node)
    raw = _interpolate_tree(raw, env, where, ())
    moved = {old: s.key for s in sections.values() for old in s.replaces}
    values: dict[str, BaseModel] = {}
    state_dir: Path | None = None
    for key, value in raw.items():
        key = str(key)
        if key == "state_dir":
            if value is not None and not isinstance(value, str):
                raise where.error((key,), "expected a directory path")
            state_dir = Path(value) if value else None
        elif key in sections:
            try:
                values[key] = sections[key].model.model_validate(value or {})
            except ValidationError as exc:
                raise where.invalid((key,), exc) from None
        elif key in moved:
            raise where.error((key,), f"moved to {moved[key]}.{key} (see docs/config.md)")
        else:
            raise where.error((key,), "unknown key")
    return Config(sections=values, state_dir=state_dir, source=Path(source))


def load_config(
    path: str | Path | None,
    sections: Mapping[str, ConfigSection[Any]],
    env: Mapping[str, str] | None = None,
) -> Config:
    """Load from `path`, else $OPSCOPE_CONFIG, else ./opscope.yaml if present, else defaults."""
    env = os.environ if env is None else env
    explicit = path is not None or bool(env.get(ENV_VAR))
    chosen = Path(path) if path is not None else Path(env.get(ENV_VAR) or DEFAULT_FILE)
    if not chosen.exists():
        if explicit:
            raise ConfigError(f"{chosen}: config file not found")
        return Config()
    try:
        with chosen.open("rb") as fh:
            data = fh.read(MAX_FILE_BYTES + 1)
        if len(data) > MAX_FILE_BYTES:
            raise ConfigError(f"{chosen}: larger than {MAX_FILE_BYTES >> 20} MiB: not a config")
        text = data.decode("utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{chosen}: cannot read config file: {exc}") from None
    return parse_config(text, str(chosen), sections, env)
