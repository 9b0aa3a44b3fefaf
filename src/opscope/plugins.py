"""Areas and plugins: what each brings, and how opscope finds it.

An entry point in the group ``opscope.plugins`` names an object (usually a module) with any of
these hooks; opscope's own areas are published in its pyproject.toml exactly the same way, so
a third-party package extends opscope with no change to opscope itself:

- ``register_checks() -> Iterable[Check]``: checks, run through the registry;
- ``register_commands(cli: CommandSet) -> None``: CLI commands and groups;
- ``register_sections() -> Iterable[Section]``: how a target kind's summary reads in the
  terminal, Markdown and HTML reports (JSON stays data);
- ``register_config() -> Iterable[ConfigSection]``: the top-level keys of opscope.yaml it owns;
- ``register_collectors(config) -> Iterable[Collector]``: what `opscope serve` reads on a
  schedule, one collector per configured target (opscope.monitor.collector);
- ``register_analyses(config) -> Iterable[Analysis]``: the area's library function on each
  configured target, for `opscope check` and the service's findings.

The older group ``opscope.checks`` (an entry point naming a check or a list of checks) is
still read.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from importlib.metadata import entry_points
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

import typer
from rich.console import RenderableType

from opscope.checks import Check, Registry
from opscope.config import CORE_KEYS, Config, ConfigSection
from opscope.findings import Report, Target

if TYPE_CHECKING:
    from opscope.monitor.collector import Analysis, Collector

PLUGIN_GROUP = "opscope.plugins"
CHECK_GROUP = "opscope.checks"
HOOKS = (
    "register_checks",
    "register_commands",
    "register_sections",
    "register_config",
    "register_collectors",
    "register_analyses",
)


class PluginError(Exception):
    """Two plugins claim one name, or a plugin is malformed; the message names both."""


@runtime_checkable
class Section(Protocol):
    """The summary of one kind of target in the human formats."""

    #: unique per kind, e.g. "summary"
    id: str
    #: the `Target.kind` it renders
    kind: str

    def terminal(self, report: Report, target: Target) -> RenderableType | None: ...

    def markdown(self, report: Report, target: Target) -> str: ...

    #: HTML with every text from watched systems escaped
    def html(self, report: Report, target: Target) -> str: ...


class CommandSet:
    """The CLI as plugins see it: add a command at the top level or inside a group.

    Groups are shared: the core makes `analyze`, and each area adds its `analyze X`."""

    def __init__(self, app: typer.Typer) -> None:
        self.app = app
        self._groups: dict[str, typer.Typer] = {}
        self._names: dict[tuple[str, str], str] = {}

    def group(self, name: str, help: str) -> typer.Typer:
        """The group `name`, made with `help` the first time it is asked for."""
        if name not in self._groups:
            self._claim("", name, f"group {name}")
            sub = typer.Typer(help=help, no_args_is_help=True)
            self.app.add_typer(sub, name=name)
            self._groups[name] = sub
        return self._groups[name]

    def add(self, name: str, func: Callable[..., Any], *, group: str | None = None) -> None:
        """Register `func` (a Typer command function) as `opscope [group] name`."""
        if group is not None and group not in self._groups:
            raise PluginError(f"command {name!r}: no group {group!r} (create it with group())")
        self._claim(group or "", name, f"{func.__module__}.{func.__qualname__}")
        target = self._groups[group] if group is not None else self.app
        target.command(name)(func)

    def _claim(self, group: str, name: str, owner: str) -> None:
        key = (group, name)
        if key in self._names:
            where = f"opscope {group} {name}" if group else f"opscope {name}"
            raise PluginError(f"{where} is registered twice: {self._names[key]} and {owner}")
        self._names[key] = owner


@dataclass
class Plugins:
    """Everything the installed areas and plugins registered."""

    checks: Registry = field(default_factory=Registry)
    sections: dict[str, list[Section]] = field(default_factory=dict)
    config: dict[str, ConfigSection[Any]] = field(default_factory=dict)
    command_hooks: list[Callable[[CommandSet], None]] = field(default_factory=list)
    #: collectors and analyses depend on the configured targets: asked for per config
    collector_hooks: list[Callable[[Config], Iterable[Collector]]] = field(default_factory=list)
    analysis_hooks: list[Callable[[Config], Iterable[Analysis]]] = field(default_factory=list)
    #: entry point values already loaded, so loading twice is harmless
    loaded: set[str] = field(default_factory=set)

    def add(self, plugin: object, name: str) -> None:
        """Register what `plugin` brings through the hooks it defines."""
        hooks = [h for h in HOOKS if callable(getattr(plugin, h, None))]
        if not hooks:
            raise PluginError(f"plugin {name} defines none of the hooks {', '.join(HOOKS)}")
        if "register_checks" in hooks:
            for check in plugin.register_checks():  # type: ignore[attr-defined]
                self.add_check(check)
        if "register_sections" in hooks:
            for section in plugin.register_sections():  # type: ignore[attr-defined]
                self.add_section(section)
        if "register_config" in hooks:
            for spec in plugin.register_config():  # type: ignore[attr-defined]
                self.add_config(spec, name)
        if "register_commands" in hooks:
            self.command_hooks.append(plugin.register_commands)  # type: ignore[attr-defined]
        if "register_collectors" in hooks:
            self.collector_hooks.append(plugin.register_collectors)  # type: ignore[attr-defined]
        if "register_analyses" in hooks:
            self.analysis_hooks.append(plugin.register_analyses)  # type: ignore[attr-defined]

    def add_check(self, check: Check | type[Check]) -> None:
        self.checks.register(check() if isinstance(check, type) else check)

    def add_section(self, section: Section) -> None:
        present = self.sections.setdefault(section.kind, [])
        if any(s.id == section.id for s in present):
            raise PluginError(f"section {section.id!r} is registered twice for {section.kind}")
        present.append(section)

    def add_config(self, spec: ConfigSection[Any], owner: str) -> None:
        if spec.key in self.config or spec.key in CORE_KEYS:
            raise PluginError(f"config key {spec.key!r} is claimed twice (again by {owner})")
        self.config[spec.key] = spec

    def sections_for(self, kind: str) -> list[Section]:
        return self.sections.get(kind, [])

    def install_commands(self, cli: CommandSet) -> None:
        for hook in self.command_hooks:
            hook(cli)

    def collectors(self, config: Config) -> list[Collector]:
        """Every area's collectors for the targets `config` names; two of one name stop."""
        found = [c for hook in self.collector_hooks for c in hook(config)]
        _unique("collector", [c.name for c in found])
        return found

    def analyses(self, config: Config) -> list[Analysis]:
        found = [a for hook in self.analysis_hooks for a in hook(config)]
        _unique("analysis", [a.name for a in found])
        return found


def _unique(what: str, names: list[str]) -> None:
    seen: set[str] = set()
    for name in names:
        if name in seen:
            raise PluginError(f"{what} {name!r} is registered twice")
        seen.add(name)


def load_entry_points(plugins: Plugins) -> None:
    """Register what installed packages publish under the plugin and check groups."""
    for ep in entry_points(group=PLUGIN_GROUP):
        if ep.value in plugins.loaded:
            continue
        plugins.add(ep.load(), ep.name)
        plugins.loaded.add(ep.value)
    for ep in entry_points(group=CHECK_GROUP):
        if ep.value in plugins.loaded:
            continue
        obj = ep.load()
        # an entry point names one check (class or instance) or a list of them
        for item in obj if isinstance(obj, list | tuple) else [obj]:
            plugins.add_check(item)
        plugins.loaded.add(ep.value)


_default: Plugins | None = None


def default_plugins() -> Plugins:
    """The process-wide plugins, loaded from entry points once."""
    global _default
    if _default is None:
        loaded = Plugins()
        load_entry_points(loaded)
        _default = loaded
    return _default
