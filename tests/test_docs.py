"""Everything a user can set or see is documented: every check id, every config key, every
section of opscope.yaml. The lists come from the registries, so nothing is kept by hand."""

from __future__ import annotations

import re
import types
import typing
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from pydantic import BaseModel, RootModel

from opscope.plugins import default_plugins

DOCS = Path(__file__).resolve().parent.parent / "docs"
#: sections that map names to targets whose blocks override a shared section
TARGETS = ("databases", "apis")


def test_every_check_is_documented() -> None:
    text = (DOCS / "checks.md").read_text()
    for check in default_plugins().checks:
        assert f"`{check.id}`" in text, f"{check.id} missing from docs/checks.md"


def _models(annotation: Any) -> Iterator[type[BaseModel]]:
    """The pydantic models inside a field's type (`X | None`, `dict[str, X]`, ...)."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        yield annotation
        return
    if isinstance(annotation, types.UnionType) or typing.get_origin(annotation) is not None:
        for arg in typing.get_args(annotation):
            yield from _models(arg)


def _blocks(model: type[BaseModel], path: str) -> Iterator[tuple[str, type[BaseModel]]]:
    """(dotted path, model) of `model` and of every model nested in it; a mapping of names
    (a RootModel of a dict) stands for its values."""
    if issubclass(model, RootModel):
        for inner in _models(model.model_fields["root"].annotation):
            yield from _blocks(inner, path)
        return
    yield path, model
    for name, field in model.model_fields.items():
        for inner in _models(field.annotation):
            yield from _blocks(inner, f"{path}.{name}")


def _doc_sections(text: str) -> dict[str, str]:
    """The body under each heading whose title is a `code` path, by that path."""
    parts = re.split(r"^#+ `([^`]+)`.*$", text, flags=re.MULTILINE)
    return {parts[i]: parts[i + 1] for i in range(1, len(parts) - 1, 2)}


def test_every_config_key_is_documented() -> None:
    sections = _doc_sections((DOCS / "config.md").read_text())
    config = default_plugins().config
    assert config, "no config section is registered"
    named_targets = {k for k, spec in config.items() if issubclass(spec.model, RootModel)}
    for key, spec in config.items():
        for path, model in _blocks(spec.model, key):
            # a block nested in a named target (databases.NAME.thresholds,
            # apis.NAME.thresholds, airflow.NAME.thresholds) is documented where its shared form is
            # (postgresql.thresholds, dags.thresholds), which the target's entry points to
            body = sections.get(path)
            if body is None and path.count(".") >= 1 and path.split(".")[0] in named_targets:
                continue
            assert body is not None, f"docs/config.md has no section `{path}`"
            for name, field in model.model_fields.items():
                annotation = field.annotation
                if isinstance(annotation, type) and issubclass(annotation, BaseModel):
                    continue  # a nested block: its own section lists its keys
                assert re.search(rf"^\| `{re.escape(name)}` \|", body, re.MULTILINE), (
                    f"`{path}.{name}` is not in the table of `{path}` in docs/config.md"
                )
    assert "state_dir" in sections, "docs/config.md has no section `state_dir`"


def test_every_test_docs_security_names_exists() -> None:
    """docs/security.md says which test proves each promise: each one it names must exist."""
    text = (DOCS / "security.md").read_text()
    tests = Path(__file__).resolve().parent
    current = ""
    named = 0
    # `file.py::test_x`, then `::test_y` for another test of the same file
    for match in re.finditer(r"`(test_\w+\.py)?::(\w+)`", text):
        file, name = match.group(1), match.group(2)
        current = file or current
        assert current, f"::{name} in docs/security.md follows no test file"
        source = (tests / current).read_text()
        assert re.search(rf"^def {name}\(", source, re.MULTILINE), f"{current}::{name} is gone"
        named += 1
    assert named >= 10
