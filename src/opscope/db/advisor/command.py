"""`opscope indexes advise DSN`: the indexes the workload needs, with the evidence."""

from __future__ import annotations

from typing import Annotated

import psycopg
import typer

from opscope.checks import CheckFailed
from opscope.cli_common import (
    ConfigOpt,
    FailOnOpt,
    FormatOpt,
    OutputOpt,
    check_output_options,
    emit,
    fail,
    load_or_fail,
    resolve_target,
)
from opscope.db.advisor.advise import advise, statements_window
from opscope.db.advisor.findings import result_findings
from opscope.db.analyze import target_name
from opscope.db.catalog import Catalog
from opscope.db.checks.base import qualified
from opscope.db.connection import SqlRunner, TargetConnectionError, connect, redact
from opscope.db.context import KIND
from opscope.db.naming import BUILD_PREFIX
from opscope.db.plans.samples import read_samples
from opscope.db.statements import read_statements
from opscope.findings import Report, Target


def one_line(exc: BaseException) -> str:
    """The first line of an error's message (psycopg adds DETAIL and HINT lines)."""
    lines = str(exc).strip().splitlines()
    return lines[0] if lines else type(exc).__name__


def leftover_notes(catalog: Catalog) -> list[str]:
    """An index under opscope's temporary build name was left by an interrupted
    `--verify --apply` (killed, or its session lost): offer the statement that drops it."""
    out: list[str] = []
    for idx in catalog.indexes:
        if idx.name.startswith(BUILD_PREFIX):
            what = (
                "is an INVALID index left by an interrupted --verify --apply"
                if not idx.is_valid
                else "was built by an interrupted --verify --apply but never renamed"
            )
            out.append(
                f"{idx.qualified} {what}: DROP INDEX CONCURRENTLY "
                f"{qualified(idx.schema, idx.name)};"
            )
    return out


def advise_command(
    target: Annotated[
        str, typer.Argument(help="A DSN (postgresql://...) or a database named in the config.")
    ],
    max_indexes: Annotated[
        int | None,
        typer.Option(
            "--max-indexes",
            min=1,
            help="Recommend at most this many indexes (default: advisor.max_indexes, 10).",
            show_default=False,
        ),
    ] = None,
    min_improvement: Annotated[
        float | None,
        typer.Option(
            "--min-improvement",
            min=0.1,
            max=100,
            help="Percent by which an index must cut a statement's planner cost to count "
            "(default: advisor.min_improvement, 20).",
            show_default=False,
        ),
    ] = None,
    statements: Annotated[
        int | None,
        typer.Option(
            "--statements",
            min=1,
            help="Top statements by total time to study (default: advisor.statements, 50).",
            show_default=False,
        ),
    ] = None,
    verify_: Annotated[
        bool,
        typer.Option(
            "--verify",
            help="With --apply (staging only): build the indexes and time the statements "
            "before and after.",
        ),
    ] = False,
    apply: Annotated[
        bool, typer.Option("--apply", help="Allow --verify to create the indexes.")
    ] = False,
    config: ConfigOpt = None,
    fmt: FormatOpt = None,
    output: OutputOpt = None,
    fail_on: FailOnOpt = None,
) -> None:
    """Recommend indexes for the workload in pg_stat_statements, costed with hypopg."""
    if verify_ and not apply:
        fail("--verify builds indexes for real: add --apply (and run it on staging)")
    check_output_options(fmt, output, fail_on)
    cfg = load_or_fail(config)
    config_name, dsn = resolve_target(target, cfg)
    name = config_name or target_name(dsn)
    # the command line wins over opscope.yaml's advisor section, which wins over defaults
    overrides: dict[str, float | int] = {}
    if max_indexes is not None:
        overrides["max_indexes"] = max_indexes
    if min_improvement is not None:
        overrides["min_improvement"] = min_improvement / 100
    if statements is not None:
        overrides["statements"] = statements
    settings = cfg.advisor.model_copy(update=overrides)
    try:
        conn = connect(dsn, cfg.session)
    except TargetConnectionError as exc:
        fail(str(exc))
    try:
        runner = SqlRunner(conn)
        catalog = Catalog(runner)
        summary = catalog.summary
        snapshot = read_statements(runner)
        examples = read_samples(runner, summary.has_pg_qualstats)
        result = advise(
            conn,
            catalog,
            snapshot.statements,
            examples=examples,
            settings=settings,
            statements_window_s=statements_window(snapshot, summary),
        )
        notes = [*result.notes, *leftover_notes(catalog)]
    except CheckFailed as exc:
        fail(str(exc))
    except psycopg.Error as exc:
        # a catalog query over the statement timeout, a lost connection, hypopg refusing:
        # one line, like every other error of the command line
        fail(f"indexes advise failed: {one_line(exc)}")
    finally:
        conn.close()
    report = Report(targets=[Target(kind=KIND, name=name, server_version=summary.server_version)])
    report.findings.extend(result_findings(result, target=name))
    info: dict[str, object] = {
        "statements_studied": len(result.workload),
        "candidates": result.candidates,
        "candidates_costed": result.costed,
        "explains": result.explains,
        "verified": result.verified,
        "partial": result.partial,
        "notes": notes,
    }
    if verify_ and result.recommendations:
        from opscope.db.advisor.verify import Interrupted, VerifyFailed, verify

        try:
            checked = verify(
                dsn,
                cfg.session,
                result.recommendations,
                echo=lambda line: typer.echo(line, err=True),
            )
        except Interrupted as exc:
            typer.echo(f"opscope: {redact(str(exc))}", err=True)
            raise typer.Exit(exc.exit_code) from None
        except VerifyFailed as exc:
            fail(f"--verify failed: {exc}")
        except (psycopg.Error, TargetConnectionError) as exc:
            fail(f"--verify failed: {one_line(exc)}")
        info["applied"] = checked.applied
        info["timings"] = [
            {
                "queryid": t.statement.queryid,
                "query": t.statement.query,
                "before_ms": t.before_ms,
                "after_ms": t.after_ms,
                "speedup": round(t.speedup, 2) if t.speedup else None,
            }
            for t in checked.timings
        ]
        info["not_timed"] = checked.skipped
        for t in checked.timings:
            typer.echo(
                f"query {t.statement.queryid}: {t.before_ms} ms -> {t.after_ms} ms", err=True
            )
    report.summary[name] = {"advisor": info}
    emit(report, fmt, output, fail_on)
