"""Where a pipeline's history comes from, and opening it: a metadata database (through the
database area's safe sessions), an API server, or an import file."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from opscope.dags.model import Pipeline
from opscope.dags.readers.importer import read_import
from opscope.dags.readers.metadata import MetadataReader, Selection
from opscope.dags.readers.rest import RestReader
from opscope.dags.settings import AirflowTarget, DagsSettings
from opscope.db.connection import ConnectionFactory, SqlRunner, describe_dsn
from opscope.redact import redact

if TYPE_CHECKING:
    import httpx

DB = "db"
URL = "url"
IMPORT = "import"


@dataclass(frozen=True)
class DagSource:
    kind: str
    #: a DSN, an API base URL or a file path
    location: str
    token: str | None = None
    username: str | None = None
    password: str | None = None

    def describe(self) -> str:
        """Where, for the summary and messages, with no secret."""
        if self.kind == DB:
            return describe_dsn(self.location)
        if self.kind == URL:
            parts = urlsplit(self.location)
            host = parts.hostname or ""
            port = f":{parts.port}" if parts.port else ""
            return f"{parts.scheme}://{host}{port}{parts.path}".rstrip("/")
        return redact(self.location)

    def default_name(self) -> str:
        if self.kind == DB:
            return describe_dsn(self.location).rsplit("/", 1)[-1] or "airflow"
        if self.kind == URL:
            return urlsplit(self.location).hostname or "airflow"
        return Path(self.location).stem or "import"


@contextlib.contextmanager
def open_pipeline(
    source: DagSource,
    settings: DagsSettings,
    selection: Selection,
    *,
    connect: ConnectionFactory,
    http: httpx.Client | None = None,
) -> Iterator[Pipeline]:
    """The pipeline of `source`, whose runs stream while the block lasts."""
    import httpx

    if source.kind == DB:
        conn = connect(source.location, settings.session)
        try:
            yield MetadataReader(SqlRunner(conn), source.location, selection).read()
        finally:
            conn.close()
    elif source.kind == URL:
        own = http is None
        client = http or httpx.Client(
            timeout=settings.rest.timeout_s, verify=settings.rest.verify_tls
        )
        try:
            reader = RestReader(
                client,
                source.location,
                token=source.token,
                username=source.username,
                password=source.password,
                page_size=settings.rest.page_size,
                selection=selection,
            )
            yield reader.read()
        finally:
            if own:
                client.close()
    elif source.kind == IMPORT:
        yield read_import(Path(source.location), selection)
    else:
        raise ValueError(f"unknown source kind {source.kind!r}")


def target_source(target: AirflowTarget) -> DagSource:
    """Where a deployment named under `airflow:` is read from: its metadata database, or its
    REST API with the credentials the config gives."""
    if target.db:
        return DagSource(DB, target.db)
    assert target.url is not None  # the config requires one of db and url
    token = target.token.get_secret_value() if target.token else None
    password = target.password.get_secret_value() if target.password else None
    return DagSource(URL, target.url, token, target.username, password)
