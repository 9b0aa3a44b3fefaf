"""The one pipeline: a plugin adds a check, a command and a section without any line of
opscope naming it; plan rules run as checks; errors that share a cause show once; the
package has no import cycle and its core names no area."""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from conftest import SandboxDb
from opscope.checks import Registry
from opscope.db.checks.plans import PlanCheck
from opscope.db.context import KIND
from opscope.db.plans.analysis import explain_statement
from opscope.db.plans.diagnose import PlanInputs, PlanIssue
from opscope.db.plans.model import Plan
from opscope.db.plugin import register_checks
from opscope.db.settings import postgres_config
from opscope.plugins import default_plugins
from opscope.report import render

SRC = Path(__file__).resolve().parent.parent / "src" / "opscope"

PLUGIN = '''
"""A plugin as a third party writes it: one check, one command, one section."""
from typing import Annotated, Any

import typer
from rich.text import Text

from opscope.cli_common import FormatOpt, OutputOpt, emit
from opscope.findings import Finding, Report, Severity, Target


class ProbeCheck:
    id = "probe_check"
    category = "probe"
    kind = "postgresql"
    summary = "Says which analysis ran it."
    scopes = ("main", "statement")

    def run(self, context: Any) -> list[Finding]:
        return [
            Finding.make(
                check=self.id,
                category=self.category,
                severity=Severity.info,
                target=context.target,
                object=context.target,
                title=f"probe ran in the {context.scope} scope",
            )
        ]


class ProbeSection:
    id = "probe"
    kind = "probe"

    def terminal(self, report: Report, target: Target) -> Text:
        return Text(f"probe section: answer {report.summary[target.name]['answer']}")

    def markdown(self, report: Report, target: Target) -> str:
        return f"probe section: answer {report.summary[target.name]['answer']}"

    def html(self, report: Report, target: Target) -> str:
        return f"<p class=probe>probe section: answer {report.summary[target.name]['answer']}</p>"


def probe_command(fmt: FormatOpt = None, output: OutputOpt = None) -> None:
    """Report the answer."""
    report = Report(targets=[Target(kind="probe", name="deep")], summary={"deep": {"answer": 42}})
    emit(report, fmt, output, None)


def register_checks() -> list[Any]:
    return [ProbeCheck()]


def register_commands(cli: Any) -> None:
    # not "probe": opscope's API area has that command
    cli.add("deep", probe_command)


def register_sections() -> list[Any]:
    return [ProbeSection()]
'''


@pytest.fixture(scope="module")
def plugin_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A distribution on a path of its own, found by entry points like an installed one."""
    root = tmp_path_factory.mktemp("plugin")
    (root / "opscope_probe.py").write_text(textwrap.dedent(PLUGIN))
    info = root / "opscope_probe-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: opscope-probe\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text("[opscope.plugins]\nprobe = opscope_probe\n")
    return root


def opscope_with(plugin: Path, *args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(plugin), "OPSCOPE_STATE_DIR": str(cwd)}
    return subprocess.run(
        [sys.executable, "-m", "opscope", *args],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=cwd,
        env=env,
    )


def test_a_plugin_brings_a_check_a_command_and_a_section(
    db: SandboxDb, plugin_path: Path, tmp_path: Path
) -> None:
    listed = opscope_with(plugin_path, "checks", cwd=tmp_path)
    assert "probe_check" in listed.stdout, listed.stderr
    analyzed = opscope_with(plugin_path, "analyze", "db", db.dsn, "-f", "json", cwd=tmp_path)
    assert analyzed.returncode == 0, analyzed.stderr
    titles = [f["title"] for f in json.loads(analyzed.stdout)["findings"]]
    assert "probe ran in the main scope" in titles
    explained = opscope_with(plugin_path, "explain", db.dsn, "SELECT 1", "-f", "json", cwd=tmp_path)
    assert explained.returncode == 0, explained.stderr
    titles = [f["title"] for f in json.loads(explained.stdout)["findings"]]
    assert titles == ["probe ran in the statement scope"]
    for fmt, expected in [
        ("terminal", "probe section: answer 42"),
        ("markdown", "probe section: answer 42"),
        ("html", "<p class=probe>probe section: answer 42</p>"),
    ]:
        shown = opscope_with(plugin_path, "deep", "-f", fmt, cwd=tmp_path)
        assert shown.returncode == 0, shown.stderr
        assert expected in shown.stdout, (fmt, shown.stdout)
    as_json = opscope_with(plugin_path, "deep", "-f", "json", cwd=tmp_path)
    assert json.loads(as_json.stdout)["summary"] == {"deep": {"answer": 42}}
    # without the plugin on the path, none of it exists
    plain = subprocess.run(
        [sys.executable, "-m", "opscope", "deep"], capture_output=True, text=True, cwd=tmp_path
    )
    assert plain.returncode == 2 and "No such command" in plain.stderr


class _BrokenRule(PlanCheck):
    id = "plan_broken"
    summary = "A rule with a bug."

    def rule(self, plan: Plan, inputs: PlanInputs) -> list[PlanIssue]:
        raise ZeroDivisionError("the rule divided by zero")


def test_a_plan_rule_that_fails_is_an_error_and_the_rest_is_reported(db: SandboxDb) -> None:
    db.execute(
        "CREATE TABLE orders (id int, customer_id int)",
        "INSERT INTO orders SELECT g, g % 5000 FROM generate_series(1, 50000) g",
        "ANALYZE orders",
    )
    registry = Registry()
    for check in [*register_checks(), _BrokenRule()]:
        registry.register(check)
    report = explain_statement(
        postgres_config(),
        db.dsn,
        "SELECT * FROM orders WHERE customer_id = 7",
        name=db.name,
        registry=registry,
    )
    assert [(e.check, e.message) for e in report.errors] == [
        ("plan_broken", "ZeroDivisionError: the rule divided by zero")
    ]
    assert [f.check for f in report.findings] == ["plan_seq_scan"]
    tree = report.summary[db.name]["plan"]["tree"]
    assert "Seq Scan on public.orders" in tree
    assert "!! plan_seq_scan: Sequential scan of public.orders" in tree


def test_errors_that_share_a_cause_show_once(db: SandboxDb) -> None:
    db.execute("DROP EXTENSION pg_stat_statements")
    report = db.analyze()
    cause = "is not available: add it to"
    stopped = [e.check for e in report.errors if cause in e.message]
    assert len(stopped) >= 3, report.errors  # the JSON keeps one entry per check
    for fmt in ("terminal", "markdown", "html"):
        text = render(report, fmt, width=400)
        assert text.count(cause) == 1, fmt
        for check in stopped:
            assert check in text or check.replace("_", "\\_") in text


# --- the shape of the package -------------------------------------------------------------


def _modules() -> dict[str, Path]:
    out: dict[str, Path] = {}
    for path in SRC.rglob("*.py"):
        parts = ("opscope", *path.relative_to(SRC).with_suffix("").parts)
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        out[name] = path
    return out


def _imports(path: Path, modules: dict[str, Path]) -> set[str]:
    """Every opscope module `path` imports, at any depth of the file (a function-local import
    counts: it is still a dependency), with the packages each import initializes."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        names: list[str] = []
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module, *(f"{node.module}.{a.name}" for a in node.names)]
        elif isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        for name in names:
            parts = name.split(".")
            # importing a.b.c runs a/__init__ and a/b/__init__ first
            found.update(".".join(parts[:i]) for i in range(1, len(parts) + 1))
    return {m for m in found if m in modules}


def _cycles(graph: dict[str, set[str]]) -> Iterator[list[str]]:
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    counter = [0]

    def visit(v: str) -> Iterator[list[str]]:
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                yield from visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component: list[str] = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                yield sorted(component)

    for v in sorted(graph):
        if v not in index:
            yield from visit(v)


def test_no_import_cycle() -> None:
    modules = _modules()
    graph = {
        name: {m for m in _imports(path, modules) if m != name and not name.startswith(m + ".")}
        for name, path in modules.items()
    }
    assert list(_cycles(graph)) == []


def test_the_cycle_finder_finds_one() -> None:
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert list(_cycles(graph)) == [["a", "b", "c"]]


def test_the_core_names_no_area() -> None:
    """report/, cli.py, the core modules and the service (monitor/) know areas only through
    the plugin hooks."""
    plugins = default_plugins()
    kinds = {kind for kind in plugins.sections} | {c.kind for c in plugins.checks}
    area_packages = {"opscope.db", "opscope.api", "opscope.dags", "opscope.resources"}
    core = [SRC / "cli.py", SRC / "cli_common.py", SRC / "plugins.py", SRC / "config.py"]
    core += [*(SRC / "report").rglob("*.py"), *(SRC / "report" / "templates").iterdir()]
    core += [*(SRC / "monitor").rglob("*.py")]
    for path in core:
        text = path.read_text()
        for package in area_packages:
            assert package not in text, f"{path.name} imports {package}"
        for kind in kinds:
            assert f'"{kind}"' not in text and f"'{kind}'" not in text, (path.name, kind)
    assert KIND in kinds
