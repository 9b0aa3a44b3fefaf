"""`opscope indexes advise DSN`: the indexes the workload needs, with the evidence."""

from __future__ import annotations

from typing import Annotated

import psycopg
import typer

from opscope.cli_common import (
    ConfigOpt,
    FailOnOpt,
    FormatOpt,
    OutputOpt,
    check_output_options,
    emit,
    fail,
    load_or_fail,
    say,
)
from opscope.db.advisor.analysis import advise_indexes
from opscope.db.advisor.verify import Interrupted, VerifyFailed
from opscope.db.command import target_and_name
from opscope.db.connection import TargetConnectionError
from opscope.errors import first_line


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
    name, dsn = target_and_name(target, cfg)
    # the command line wins over opscope.yaml's advisor section, which wins over defaults
    overrides: dict[str, float | int] = {}
    if max_indexes is not None:
        overrides["max_indexes"] = max_indexes
    if min_improvement is not None:
        overrides["min_improvement"] = min_improvement / 100
    if statements is not None:
        overrides["statements"] = statements
    try:
        report = advise_indexes(
            cfg,
            dsn,
            name=name,
            overrides=overrides,
            verify_apply=verify_,
            echo=say,
        )
    except TargetConnectionError as exc:
        fail(str(exc))
    except Interrupted as exc:
        say(f"opscope: {exc}")
        raise typer.Exit(exc.exit_code) from None
    except VerifyFailed as exc:
        fail(f"--verify failed: {exc}")
    except psycopg.Error as exc:
        # a catalog query over the statement timeout, a lost connection, a failed build:
        # one line, like every other error of the command line
        fail(f"indexes advise failed: {first_line(exc)}")
    for t in report.summary.get(name, {}).get("advisor", {}).get("timings", []):
        say(f"query {t['queryid']}: {t['before_ms']} ms -> {t['after_ms']} ms")
    emit(report, fmt, output, fail_on)
