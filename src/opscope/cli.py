"""The `opscope` command: one Typer app; each area adds its commands through the plugin
hooks (opscope.plugins), so this module names none of them.

Thin on purpose: parse arguments, call the area's function, render. User mistakes and
unreachable targets end in one line on stderr and exit code 2, never a traceback.
"""

from __future__ import annotations

import json
import sys
import types
import typing
from pathlib import Path
from typing import Annotated, Any

import typer
import yaml
from pydantic import BaseModel, SecretStr

from opscope import __version__
from opscope.cli_common import ConfigOpt, fail, load_or_fail, say
from opscope.config import ENV_VAR, Config
from opscope.plugins import CommandSet, PluginError, default_plugins
from opscope.redact import MASK, redact

app = typer.Typer(
    name="opscope",
    help="Find out why a data platform is slow, and keep watch over it.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
cli = CommandSet(app)
cli.group("analyze", "Analyze a target and report findings with fixes.")
config_app = cli.group("config", "Check and show opscope.yaml.")


@app.command("checks")
def list_checks(
    fmt: Annotated[str, typer.Option("--format", "-f", help="text or json")] = "text",
    config: ConfigOpt = None,
) -> None:
    """List every registered check with what triggers it."""
    if config is not None:
        load_or_fail(config)  # like every command: a broken file is said, whatever the command
    checks = sorted(default_plugins().checks, key=lambda c: (c.kind, c.category, c.id))
    if fmt == "json":
        typer.echo(
            json.dumps(
                [
                    {"id": c.id, "kind": c.kind, "category": c.category, "summary": c.summary}
                    for c in checks
                ],
                indent=2,
            )
        )
        return
    if fmt != "text":
        fail(f"unknown format {fmt!r} (expected text or json)")
    width = max(len(c.id) for c in checks)
    for c in checks:
        typer.echo(f"{c.id:<{width}}  {c.kind}/{c.category}: {c.summary}")


def masked(value: Any, given_only: bool = False) -> Any:
    """A config value as `config check` shows it: secrets (SecretStr, passwords in DSNs and
    URLs) masked. An optional block (a database's overrides) shows the keys it sets, every
    other block its keys with the defaults filled in."""
    if isinstance(value, SecretStr):
        return MASK
    if isinstance(value, BaseModel):
        fields = type(value).model_fields
        return {
            k: masked(getattr(value, k), given_only=_optional(fields[k].annotation))
            for k in fields
            if not given_only or k in value.model_fields_set
            if getattr(value, k) is not None
        }
    if isinstance(value, dict):
        return {str(k): masked(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [masked(v) for v in value]
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, str):
        return redact(value)
    return value


def _optional(annotation: Any) -> bool:
    return isinstance(annotation, types.UnionType) and type(None) in typing.get_args(annotation)


def resolved(config: Config) -> dict[str, Any]:
    """Every section as it will be used: the file's values over the defaults."""
    plugins = default_plugins()
    out: dict[str, Any] = {}
    for key, section in sorted(plugins.config.items()):
        value = masked(section.of(config))
        # a mapping section (databases) is shown as the mapping itself
        out[key] = value.get("root", value) if isinstance(value, dict) else value
    out["state_dir"] = str(config.resolved_state_dir())
    return out


@config_app.command("check")
def config_check(config: ConfigOpt = None) -> None:
    """Validate the config file and print it resolved, with secrets masked."""
    cfg = load_or_fail(config)
    source = str(cfg.source) if cfg.source else f"no file (${ENV_VAR} and ./opscope.yaml unset)"
    say(f"# {source}: valid")
    typer.echo(yaml.safe_dump(resolved(cfg), sort_keys=False, allow_unicode=True), nl=False)


@app.command("version")
def version() -> None:
    """Print opscope's version."""
    typer.echo(__version__)


def _install_area_commands() -> None:
    try:
        default_plugins().install_commands(cli)
    except PluginError as exc:
        say(f"opscope: error: {exc}")
        sys.exit(2)


_install_area_commands()


def main() -> None:
    try:
        app(standalone_mode=True)
    except KeyboardInterrupt:
        typer.echo("opscope: interrupted", err=True)
        sys.exit(130)
