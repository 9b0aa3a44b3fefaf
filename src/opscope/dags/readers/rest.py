"""The Airflow REST API reader: `/api/v1` of Airflow 2 (basic auth, or a bearer token where
an auth backend takes one) and `/api/v2` of Airflow 3 (a bearer token, or one obtained from
`/auth/token` with a user name and password).

It lists the DAGs, their tasks (the dependency graph), the pools and the newest runs, then
each run's task instances and, for an instance tried more than once, its earlier tries
(`.../tries`; Airflow 2.10+). One request per run: the metadata database reader is the one
for long histories."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from datetime import datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from opscope.dags.model import Dag, Pipeline, Pool, Run, TaskTry
from opscope.dags.readers.metadata import Selection
from opscope.dags.readers.serialized import graph_from_tasks
from opscope.errors import first_line

if TYPE_CHECKING:
    import httpx


class RestError(Exception):
    """The API server could not be read; one line, no secret."""


def _ts(value: Any) -> float | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


def _int(value: Any, default: int) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else default


class RestReader:
    def __init__(
        self,
        client: httpx.Client,
        base_url: str,
        *,
        token: str | None = None,
        username: str | None = None,
        password: str | None = None,
        page_size: int = 100,
        selection: Selection | None = None,
    ) -> None:
        self.client = client
        self.base = base_url.rstrip("/")
        self.token = token
        self.username = username
        self.password = password
        self.page_size = page_size
        self.selection = selection or Selection()
        self.api = ""
        self.requests = 0
        self._headers: dict[str, str] = {}
        self._auth: httpx.BasicAuth | None = None

    # --- HTTP -------------------------------------------------------------------------

    def _request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        import httpx

        url = f"{self.base}{path}"
        self.requests += 1
        try:
            response = self.client.request(
                method,
                url,
                headers=self._headers,
                auth=self._auth or httpx.USE_CLIENT_DEFAULT,
                **kwargs,
            )
        except httpx.HTTPError as exc:
            raise RestError(
                f"cannot reach {self.base}: {first_line(exc) or type(exc).__name__}"
            ) from None
        return response

    def _get(self, path: str, params: Mapping[str, Any] | None = None) -> Any:
        response = self._request("GET", path, params=params)
        if response.status_code in (401, 403):
            where = path.split("?")[0]
            raise RestError(
                f"{self.base} refused the credentials (HTTP {response.status_code} on {where})"
            )
        if response.status_code >= 400:
            raise RestError(f"{self.base}{path.split('?')[0]}: HTTP {response.status_code}")
        try:
            return response.json()
        except ValueError:
            raise RestError(f"{self.base}{path}: the answer is not JSON") from None

    def _pages(
        self, path: str, key: str, params: Mapping[str, Any] | None = None, limit: int | None = None
    ) -> Iterator[dict[str, Any]]:
        offset = 0
        while True:
            page_limit = self.page_size if limit is None else min(self.page_size, limit - offset)
            if page_limit <= 0:
                return
            data = self._get(path, {**(params or {}), "limit": page_limit, "offset": offset})
            items = data.get(key) if isinstance(data, dict) else None
            if not isinstance(items, list) or not items:
                return
            yield from (i for i in items if isinstance(i, dict))
            offset += len(items)
            total = data.get("total_entries")
            if isinstance(total, int) and offset >= total:
                return

    def _login(self) -> None:
        """Pick the API version and the way to authenticate."""
        import httpx

        if self.token:
            self._headers = {"Authorization": f"Bearer {self.token}"}
        for api in ("v2", "v1"):
            response = self._request("GET", f"/api/{api}/version")
            if response.status_code == 404:
                continue
            self.api = api
            break
        else:
            raise RestError(
                f"{self.base} has neither /api/v2 nor /api/v1: not an Airflow API server"
            )
        if self.token or not self.username:
            return
        if self.api == "v1":
            self._auth = httpx.BasicAuth(self.username, self.password or "")
            return
        response = self._request(
            "POST", "/auth/token", json={"username": self.username, "password": self.password or ""}
        )
        if response.status_code >= 400:
            raise RestError(
                f"{self.base} refused the user name and password (HTTP {response.status_code})"
            )
        try:
            token = response.json()["access_token"]
        except (ValueError, KeyError, TypeError):
            raise RestError(f"{self.base}/auth/token gave no access_token") from None
        self._headers = {"Authorization": f"Bearer {token}"}

    # --- reading --------------------------------------------------------------------------

    def read(self) -> Pipeline:
        self._login()
        root = f"/api/{self.api}"
        version_info = self._get(f"{root}/version")
        version = version_info.get("version") if isinstance(version_info, dict) else None
        wanted = set(self.selection.dags or ())
        dags: dict[str, Dag] = {}
        for item in self._pages(f"{root}/dags", "dags"):
            dag_id = item.get("dag_id")
            if not isinstance(dag_id, str) or (wanted and dag_id not in wanted):
                continue
            tasks = self._get(f"{root}/dags/{quote(dag_id, safe='')}/tasks")
            graph = graph_from_tasks(tasks.get("tasks", []) if isinstance(tasks, dict) else [])
            limit = item.get("max_active_tasks")
            dags[dag_id] = Dag(
                dag_id,
                limit if isinstance(limit, int) else None,
                {None: graph},
            )
        pools = {
            p["name"]: Pool(p["name"], p["slots"])
            for p in self._pages(f"{root}/pools", "pools")
            if isinstance(p.get("name"), str) and isinstance(p.get("slots"), int)
        }
        runs = [run for dag_id in dags for run in self._runs(root, dag_id)]
        pipeline = Pipeline(
            source="airflow-rest",
            airflow_version=version if isinstance(version, str) else None,
            dags=dags,
            pools=pools,
            runs=(),
            run_count=len(runs),
        )
        pipeline.runs = self._stream(root, runs, pipeline)
        return pipeline

    def _runs(self, root: str, dag_id: str) -> list[Run]:
        params: dict[str, Any] = {"order_by": "-start_date"}
        if self.selection.since is not None:
            params["start_date_gte"] = self.selection.since.isoformat()
        out: list[Run] = []
        path = f"{root}/dags/{quote(dag_id, safe='')}/dagRuns"
        for item in self._pages(path, "dag_runs", params, limit=self.selection.max_runs):
            run_id = item.get("dag_run_id")
            if not isinstance(run_id, str):
                continue
            logical = _ts(item.get("logical_date") or item.get("execution_date"))
            out.append(
                Run(
                    dag_id=dag_id,
                    run_id=run_id,
                    state=item.get("state"),
                    run_type=item.get("run_type"),
                    logical_date=logical,
                    run_after=_ts(item.get("run_after")) or logical,
                    queued_at=_ts(item.get("queued_at")),
                    start=_ts(item.get("start_date")),
                    end=_ts(item.get("end_date")),
                    dag_version=None,  # the API gives the newest graph only
                )
            )
        out.reverse()
        return out

    def _stream(self, root: str, runs: list[Run], pipeline: Pipeline) -> Iterator[Run]:
        tries_supported = True
        for run in runs:
            base = f"{root}/dags/{quote(run.dag_id, safe='')}/dagRuns/{quote(run.run_id, safe='')}"
            for item in self._pages(f"{base}/taskInstances", "task_instances"):
                current = _try(item)
                if current is None:
                    continue
                run.tries.append(current)
                if current.try_number > 1 and tries_supported:
                    task = quote(current.task_id, safe="")
                    path = f"{base}/taskInstances/{task}"
                    if current.map_index >= 0:
                        path += f"/{current.map_index}"
                    response = self._request("GET", f"{path}/tries")
                    if response.status_code == 404:
                        tries_supported = False
                        pipeline.notes.append(
                            "this API server has no task instance tries endpoint (Airflow "
                            "before 2.10): only the last try of each task is read"
                        )
                        continue
                    if response.status_code >= 400:
                        raise RestError(f"{self.base}{path}/tries: HTTP {response.status_code}")
                    for earlier in response.json().get("task_instances", []):
                        older = _try(earlier)
                        if older is not None and older.try_number < current.try_number:
                            run.tries.append(older)
            pipeline.tries_read += len(run.tries)
            yield run


def _try(item: Mapping[str, Any]) -> TaskTry | None:
    task_id = item.get("task_id")
    if not isinstance(task_id, str):
        return None
    return TaskTry(
        task_id=task_id,
        map_index=_int(item.get("map_index"), -1),
        try_number=_int(item.get("try_number"), 1),
        state=item.get("state") if isinstance(item.get("state"), str) else None,
        pool=item.get("pool") if isinstance(item.get("pool"), str) else None,
        pool_slots=_int(item.get("pool_slots"), 1),
        scheduled=_ts(item.get("scheduled_when")),
        queued=_ts(item.get("queued_when")),
        start=_ts(item.get("start_date")),
        end=_ts(item.get("end_date")),
    )
