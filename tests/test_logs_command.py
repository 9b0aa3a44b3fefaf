"""`opscope logs` as a command: options, output formats, exit codes."""

from __future__ import annotations

import gzip
import json
import os
import threading
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from opscope.db.logs.command import logs_command

LOG = (
    "2024-05-01 10:00:01.000 UTC [200] app@shop LOG:  duration: 1.500 ms  statement: select 1\n"
    "2024-05-01 10:00:02.000 UTC [201] app@shop LOG:  duration: 2500.000 ms  statement: "
    "select pg_sleep(2.5)\n"
    "2024-05-01 10:00:03.000 UTC [202] app@shop ERROR:  division by zero\n"
    "2024-05-01 10:00:03.000 UTC [202] app@shop STATEMENT:  select 1/0\n"
)


@pytest.fixture
def app() -> typer.Typer:
    app = typer.Typer()
    app.command("logs")(logs_command)

    @app.command("version")
    def version() -> None:  # a second command makes "logs" a sub-command, as in opscope
        pass

    return app


@pytest.fixture
def logfile(tmp_path: Path) -> Path:
    path = tmp_path / "postgresql.log"
    path.write_text(LOG)
    return path


runner = CliRunner()


def test_json_output(app: typer.Typer, logfile: Path) -> None:
    result = runner.invoke(app, ["logs", str(logfile), "--format", "json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["summary"]["queries"] == 2
    assert data["summary"]["log"]["queries"] == 2
    assert data["targets"] == [
        {"kind": "postgresql-log", "name": "postgresql.log", "server_version": None}
    ]
    slow = [f for f in data["findings"] if f["check"] == "slow_query"]
    assert len(slow) == 1 and slow[0]["evidence"]["source"] == "log"
    assert slow[0]["severity"] == "critical"  # its median is over the threshold


def test_terminal_output(app: typer.Typer, logfile: Path) -> None:
    result = runner.invoke(app, ["logs", str(logfile)])
    assert result.exit_code == 0, result.output
    assert "Top statements by total time" in result.stdout
    assert "select pg_sleep(2.5)" in result.stdout
    assert "division by zero" in result.stdout


def test_markdown_and_html_to_files(app: typer.Typer, logfile: Path, tmp_path: Path) -> None:
    md, html = tmp_path / "r.md", tmp_path / "r.html"
    assert runner.invoke(app, ["logs", str(logfile), "-o", str(md)]).exit_code == 0
    assert "select pg_sleep($1)" in md.read_text()
    assert runner.invoke(app, ["logs", str(logfile), "-o", str(html)]).exit_code == 0
    assert "<html" in html.read_text().lower()


def test_stdin_and_gzip(app: typer.Typer, logfile: Path, tmp_path: Path) -> None:
    packed = tmp_path / "postgresql.log.gz"
    packed.write_bytes(gzip.compress(LOG.encode()))
    result = runner.invoke(app, ["logs", "-", "-f", "json"], input=packed.read_bytes())
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["summary"]["queries"] == 2


def test_filters(app: typer.Typer, logfile: Path) -> None:
    args = ["logs", str(logfile), "-f", "json", "--min-duration", "100", "--db", "shop"]
    result = runner.invoke(app, [*args, "--since", "2024-05-01T10:00:00Z"])
    assert json.loads(result.stdout)["summary"]["queries"] == 1


def test_fail_on(app: typer.Typer, logfile: Path) -> None:
    assert runner.invoke(app, ["logs", str(logfile), "--fail-on", "critical"]).exit_code == 1
    assert runner.invoke(app, ["logs", str(logfile), "--fail-on", "warning", "--slow", "9000"]
                         ).exit_code == 0  # fmt: skip


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["/no/such/file"], "no such file"),
        (["{log}", "--since", "yesterday"], "--since"),
        (["{log}", "--prefix", "%m %Z"], "unknown escape"),
        (["{log}", "--format", "pdf"], "unknown format"),
        (["{log}", "--log-format", "xml"], "unknown log format"),
        (["{log}", "--fail-on", "fatal"], "unknown severity"),
    ],
)
def test_usage_errors_exit_2_with_one_line(
    app: typer.Typer, logfile: Path, args: list[str], message: str
) -> None:
    result = runner.invoke(app, ["logs", *[a.replace("{log}", str(logfile)) for a in args]])
    assert result.exit_code == 2
    assert message in result.stderr
    assert "Traceback" not in result.output
    assert len(result.stderr.strip().splitlines()) == 1


def test_unreadable_file(app: typer.Typer, tmp_path: Path) -> None:
    directory = tmp_path / "dir.log"
    directory.mkdir()
    result = runner.invoke(app, ["logs", str(directory)])
    assert result.exit_code == 2 and "not a file" in result.stderr


def test_a_named_pipe_is_read(app: typer.Typer, tmp_path: Path) -> None:
    """`opscope logs <(zcat pg.log.gz)` hands over a FIFO, not a regular file."""
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    writer = threading.Thread(target=lambda: fifo.write_text(LOG), daemon=True)
    writer.start()
    result = CliRunner().invoke(app, ["logs", str(fifo), "--format", "json"])
    # A writer still alive may already have closed its end (the command read to EOF):
    # a blocking open for reading would then wait forever for a writer that never comes,
    # which hung CI. A non-blocking open returns at once, and it unblocks a writer that
    # still waits in open() because the command refused without reading.
    writer.join(timeout=2)
    if writer.is_alive():
        drain = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK)
        writer.join(timeout=10)
        os.close(drain)
    assert not writer.is_alive(), "the FIFO's writer never got a reader"
    assert result.exit_code in (0, 1), result.output
    assert json.loads(result.output)["summary"]["queries"] == 2
    result = CliRunner().invoke(app, ["logs", str(tmp_path), "--format", "json"])
    assert result.exit_code == 2 and "not a file" in result.output
