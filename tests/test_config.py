"""Config parsing: plain inputs, every error one line naming file, line and key."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from opscope.config import Config, ConfigError, interpolate
from opscope.config import load_config as _load_config
from opscope.config import parse_config as _parse_config
from opscope.db.settings import POSTGRESQL, databases, settings_for
from opscope.plugins import default_plugins


def parse_config(text: str, source: str, env: dict[str, str]) -> Config:
    return _parse_config(text, source, default_plugins().config, env)


def load_config(path: Path | None = None, env: dict[str, str] | None = None) -> Config:
    return _load_config(path, default_plugins().config, env)


def test_defaults_without_a_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    config = load_config(env={})
    assert databases(config) == {}
    assert POSTGRESQL.of(config).thresholds.slow_query_ms == 1000
    assert POSTGRESQL.of(config).session.application_name == "opscope"


def test_explicit_missing_file_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="config file not found"):
        load_config(tmp_path / "nope.yaml", env={})


def test_full_config() -> None:
    text = (
        "databases:\n"
        "  warehouse:\n"
        "    dsn: postgresql://opscope:${PW}@db:5432/warehouse\n"
        "    thresholds:\n"
        "      slow_query_ms: 250\n"
        "  events:\n"
        "    dsn: ${EVENTS_DSN:-postgresql://localhost/events}\n"
        "postgresql:\n"
        "  session:\n"
        "    statement_timeout_ms: 5000\n"
        "  thresholds:\n"
        "    top_statements: 5\n"
    )
    config = parse_config(text, "opscope.yaml", env={"PW": "s3cret"})
    named = databases(config)
    assert named["warehouse"].dsn == "postgresql://opscope:s3cret@db:5432/warehouse"
    assert named["events"].dsn == "postgresql://localhost/events"
    assert settings_for(config, "warehouse").thresholds.slow_query_ms == 250
    assert settings_for(config, "events").thresholds.top_statements == 5
    assert settings_for(config, "events").session.statement_timeout_ms == 5000


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "databases:\n  a:\n    dsn: postgresql://h/d\n    color: red\n",
            "f.yaml:4: key databases.a.color: unknown key",
        ),
        (
            "postgresql:\n  thresholds:\n    slow_query_ms: fast\n",
            "f.yaml:3: key postgresql.thresholds.slow_query_ms: Input should be a valid number, "
            "unable to parse string as a number",
        ),
        (
            "thresholds:\n  slow_query_ms: 5\n",
            "f.yaml:1: key thresholds: moved to postgresql.thresholds (see docs/config.md)",
        ),
        ("colour: red\n", "f.yaml:1: key colour: unknown key"),
        (
            "postgresql:\n  thresholds:\n    slow_query_ms: -5\n",
            "f.yaml:3: key postgresql.thresholds.slow_query_ms: Input should be greater than 0",
        ),
        (
            "databases:\n  a:\n    dsn: mysql://h/d\n",
            "f.yaml:3: key databases.a.dsn: Value error, expected a postgresql:// URL or a "
            "key=value connection string",
        ),
        ("databases: [1, 2\n", "f.yaml:2: expected ',' or ']', but got '<stream end>'"),
        ("- just\n- a list\n", "f.yaml:1: the top level must be a mapping of keys"),
        (
            "databases:\n  a:\n    dsn: ${NOPE}\n",
            "f.yaml:3: key databases.a.dsn: environment variable NOPE is not set",
        ),
    ],
)
def test_errors_name_file_line_and_key(text: str, message: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_config(text, "f.yaml", env={})
    assert str(info.value) == message
    assert "\n" not in str(info.value)


@given(st.text(max_size=200))
def test_interpolate_never_fails_on_text_without_references(text: str) -> None:
    if "${" in text:
        return
    assert interpolate(text, {}, "where") == text


@given(st.text(max_size=300))
def test_arbitrary_yaml_gives_a_config_or_a_one_line_error(text: str) -> None:
    try:
        parse_config(text, "f.yaml", env={})
    except ConfigError as exc:
        assert str(exc).startswith("f.yaml")
        assert "\n" not in str(exc)


def test_duplicate_keys_and_recursive_aliases_are_errors() -> None:
    with pytest.raises(ConfigError) as info:
        parse_config("postgresql:\n  a: 5\n  a: 9\n", "f.yaml", env={})
    assert str(info.value) == "f.yaml:3: key 'a' is given twice"
    with pytest.raises(ConfigError) as info:
        parse_config("a: &a [*a]\n", "f.yaml", env={})
    assert "\n" not in str(info.value) and str(info.value).startswith("f.yaml")


def test_database_blocks_override_only_the_keys_they_set() -> None:
    text = (
        "postgresql:\n"
        "  thresholds:\n    large_table_bytes: 1000\n    slow_query_ms: 900\n"
        "  advisor:\n    max_indexes: 3\n    statements: 7\n"
        "databases:\n  w:\n    dsn: postgresql://h/w\n"
        "    thresholds:\n      slow_query_ms: 250\n"
        "    advisor:\n      max_indexes: 1\n"
        "    session:\n      lock_timeout_ms: 50\n"
    )
    config = parse_config(text, "f.yaml", env={})
    own = settings_for(config, "w")
    assert own.thresholds.slow_query_ms == 250 and own.thresholds.large_table_bytes == 1000
    assert own.advisor.max_indexes == 1 and own.advisor.statements == 7
    assert own.session.lock_timeout_ms == 50 and own.session.statement_timeout_ms == 30_000
    other = settings_for(config, "other")
    assert other.thresholds.slow_query_ms == 900 and other.advisor.max_indexes == 3


def test_an_alias_bomb_is_refused_before_it_expands(tmp_path: Path) -> None:
    # nine levels of nine aliases each: 9**9 (387 million) strings from a few hundred bytes
    lines = ['a0: &a0 ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    for level in range(1, 10):
        refs = ", ".join([f"*a{level - 1}"] * 9)
        lines.append(f"a{level}: &a{level} [{refs}]")
    bomb = tmp_path / "bomb.yaml"
    bomb.write_text("\n".join(lines) + "\n")
    assert bomb.stat().st_size < 1000
    # refused from the node graph, before anything walks the expanded values (which would
    # take hours: this test would not end)
    with pytest.raises(ConfigError) as info:
        load_config(bomb, env={})
    assert str(info.value) == f"{bomb}: the file's aliases expand to more than 100,000 values"


def test_aliases_within_the_bound_still_work() -> None:
    text = (
        "postgresql:\n  thresholds: &t\n    slow_query_ms: 250\n"
        "databases:\n  a:\n    dsn: postgresql://h/a\n    thresholds: *t\n"
    )
    config = parse_config(text, "f.yaml", env={})
    assert settings_for(config, "a").thresholds.slow_query_ms == 250


def test_a_huge_file_is_refused_before_it_is_read(tmp_path: Path) -> None:
    big = tmp_path / "big.yaml"
    with big.open("w") as fh:
        fh.write("# " + "x" * (2 << 20) + "\n")
    with pytest.raises(ConfigError) as info:
        load_config(big, env={})
    assert str(info.value) == f"{big}: larger than 1 MiB: not a config"


def test_a_self_referring_alias_names_its_line() -> None:
    with pytest.raises(ConfigError) as info:
        parse_config("postgresql: {}\na: &a [*a]\n", "f.yaml", env={})
    assert str(info.value) == "f.yaml:2: a YAML alias refers to itself"
