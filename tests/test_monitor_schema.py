"""schemathesis against the running service's own OpenAPI schema, with a store that holds
real runs, series and findings: no answer is a 5xx, none breaks the schema."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings

from serve_process import ServeProcess, write_config

TOKEN = "schemathesis-token-0123456789"


@pytest.fixture(scope="module")
def running(tmp_path_factory: pytest.TempPathFactory, cluster: object) -> Iterator[ServeProcess]:
    from opscope.db.sandbox import Sandbox

    assert isinstance(cluster, Sandbox)
    tmp = tmp_path_factory.mktemp("schema")
    cluster.psql("CREATE DATABASE schema_target")
    cluster.psql("CREATE EXTENSION pg_stat_statements", dbname="schema_target")
    path = write_config(
        tmp / "opscope.yaml",
        {
            "databases": {"target": {"dsn": cluster.dsn("schema_target")}},
            "serve": {
                "store": str(tmp / "store.db"),
                "token": TOKEN,
                "interval_s": 0.5,
                "analysis_interval_s": 1,
            },
        },
    )
    service = ServeProcess(path, tmp, token=TOKEN).start()
    try:
        service.wait_for(
            lambda: (
                service.collector("analysis/postgresql/target")["runs"] >= 1
                and service.collector("postgresql/target")["runs"] >= 2
            ),
            "no data to test against",
        )
        yield service
    finally:
        service.stop()
        cluster.psql("DROP DATABASE schema_target WITH (FORCE)")


def test_the_api_keeps_to_its_schema(running: ServeProcess) -> None:
    schema = schemathesis.openapi.from_url(
        f"{running.base}/openapi.json", headers={"Authorization": f"Bearer {TOKEN}"}
    )
    operations = [result.ok() for result in schema.get_all_operations()]  # type: ignore[union-attr]
    assert len(operations) >= 8
    for operation in operations:

        @given(case=operation.as_strategy())
        @settings(max_examples=30, suppress_health_check=list(HealthCheck), deadline=None)
        def keeps_to_it(case: schemathesis.Case[Any]) -> None:
            case.call_and_validate(headers={"Authorization": f"Bearer {TOKEN}"})

        keeps_to_it()


def test_without_the_token_every_operation_is_401(running: ServeProcess) -> None:
    import httpx

    for path in ("/metrics", "/api/v1/collectors", "/api/v1/findings", "/openapi.json"):
        assert httpx.get(running.base + path, timeout=10).status_code == 401
    assert Path(running.log).exists()
