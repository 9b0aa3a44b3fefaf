"""`opscope indexes advise DSN`: the indexes the workload needs, with the evidence."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from pathlib import Path
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
    parse_duration,
    say,
)
from opscope.db.advisor.analysis import advise_indexes
from opscope.db.advisor.sources import WorkloadError, WorkloadSources
from opscope.db.advisor.verify import Interrupted, VerifyFailed
from opscope.db.command import target_and_name
from opscope.db.connection import TargetConnectionError
from opscope.db.logs.reader import LogInputError
from opscope.errors import first_line
from opscope.findings import Report


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
    statement: Annotated[
        list[str] | None,
        typer.Option(
            "--statement",
            help="Advise for this statement (repeatable) instead of pg_stat_statements.",
            show_default=False,
        ),
    ] = None,
    sql_file: Annotated[
        list[Path] | None,
        typer.Option(
            "--sql-file",
            help="Advise for the statements of this SQL file (repeatable).",
            show_default=False,
        ),
    ] = None,
    log: Annotated[
        list[str] | None,
        typer.Option(
            "--log",
            help="Advise for the statements of this server log (repeatable; - reads stdin), "
            "each weighed by its logged durations.",
            show_default=False,
        ),
    ] = None,
    activity: Annotated[
        str | None,
        typer.Option(
            "--activity",
            help="Sample pg_stat_activity this long (60s, 5m) and advise for what ran.",
            show_default=False,
        ),
    ] = None,
    min_calls: Annotated[
        int, typer.Option("--min-calls", min=1, help="Leave out statements called less often.")
    ] = 1,
    min_time: Annotated[
        str | None,
        typer.Option(
            "--min-time",
            help="Leave out statements whose total time is below this (500ms, 2s, 1m).",
            show_default=False,
        ),
    ] = None,
    watch: Annotated[
        str | None,
        typer.Option(
            "--watch",
            help="Advise again every INTERVAL (30s, 5m), printing the report whenever the "
            "recommended indexes change; Ctrl-C stops.",
            show_default=False,
            metavar="INTERVAL",
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
    """Recommend indexes for a workload (pg_stat_statements, or the statements, SQL files,
    logs or pg_stat_activity samples given), costed with hypopg."""
    if verify_ and not apply:
        fail("--verify builds indexes for real: add --apply (and run it on staging)")
    if watch is not None and verify_:
        fail("--watch and --verify do not go together: --verify builds the indexes once")
    check_output_options(fmt, output, fail_on)
    sources = WorkloadSources(
        statements=tuple(statement or ()),
        sql_files=tuple(sql_file or ()),
        logs=tuple(log or ()),
        activity_s=parse_duration(activity, "--activity") if activity else None,
        min_calls=min_calls,
        min_time_ms=parse_duration(min_time, "--min-time") * 1000 if min_time else 0.0,
    )
    every = parse_duration(watch, "--watch") if watch is not None else None
    if every is not None and every <= 0:
        fail("--watch: the interval must be above 0")
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

    def once() -> Report:
        try:
            return advise_indexes(
                cfg,
                dsn,
                name=name,
                overrides=overrides,
                verify_apply=verify_,
                sources=sources,
                echo=say,
            )
        except TargetConnectionError as exc:
            fail(str(exc))
        except Interrupted as exc:
            say(f"opscope: {exc}")
            raise typer.Exit(exc.exit_code) from None
        except VerifyFailed as exc:
            fail(f"--verify failed: {exc}")
        except (WorkloadError, LogInputError) as exc:
            fail(str(exc))
        except psycopg.Error as exc:
            # a catalog query over the statement timeout, a lost connection, a failed build:
            # one line, like every other error of the command line
            fail(f"indexes advise failed: {first_line(exc)}")

    if every is None:
        report = once()
        for t in report.summary.get(name, {}).get("advisor", {}).get("timings", []):
            say(f"query {t['queryid']}: {t['before_ms']} ms -> {t['after_ms']} ms")
        emit(report, fmt, output, fail_on)
        return
    watch_loop(once, every, fmt, output)


def watch_loop(
    advise: Callable[[], Report],
    every: float,
    fmt: str | None,
    output: Path | None,
    sleep: Callable[[float], None] = time.sleep,
    rounds: int | None = None,
) -> None:
    """Advise every `every` seconds; the report is shown the first time and each time the
    set of recommended changes differs from the last one shown."""
    shown: tuple[str, ...] | None = None
    done = 0
    say(f"opscope: advising every {every:g} s; Ctrl-C stops")
    try:
        while rounds is None or done < rounds:
            report = advise()
            changes = tuple(sorted(f.fix_sql or f.title for f in report.fixes))
            if changes != shown:
                shown = changes
                emit(report, fmt, output, None)
                sys.stdout.flush()
            done += 1
            if rounds is None or done < rounds:
                sleep(every)
    except KeyboardInterrupt:
        say("opscope: stopped")
