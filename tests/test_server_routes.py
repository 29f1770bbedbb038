"""``mltrack server``: a real server process on a free loopback port, driven with JSON over HTTP.

Every MLflow route and ours, on a SQLite store and on a real PostgreSQL server; error bodies
(code, message, status, never a stack trace); token and basic auth; the body size limit; the
loopback rule; several workers sharing one store.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

API = "/api/2.0/mlflow"
OURS = "/api/2.0/mltrack"
TOKEN = "s3cret-token-for-tests-0123456789"
ERROR_BODIES: list[dict[str, Any]] = []  # every error body seen, checked for stack traces


# -- a real server process --------------------------------------------------------------------
def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def server_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLTRACK_", "MLFLOW_"))}
    env.update(extra)
    return env


def server_cmd(store: str, port: int, *extra: str) -> list[str]:
    return [
        sys.executable,
        "-m",
        "jupyter_mltrack.cli",
        "server",
        "--backend-store-uri",
        store,
        "--port",
        str(port),
        *extra,
    ]


class Server:
    """A running ``mltrack server`` process and an httpx client to it."""

    def __init__(self, proc: subprocess.Popen, port: int, artifacts: Path | None) -> None:
        self.proc = proc
        self.port = port
        self.url = f"http://127.0.0.1:{port}"
        self.artifacts = artifacts
        self.http = httpx.Client(base_url=self.url, timeout=30)

    def call(self, method: str, route: str, expect: int = 200, /, **fields: Any) -> dict[str, Any]:
        """A JSON call the way MLflow's client makes it: GET fields in the query string."""
        if method == "GET":
            response = self.http.request(method, route, params=fields)
        else:
            response = self.http.request(method, route, json=fields)
        assert response.status_code == expect, (method, route, response.status_code, response.text)
        body = response.json() if response.content else {}
        if expect != 200:
            ERROR_BODIES.append(body)
            assert set(body) >= {"error_code", "message"}, body
        return body

    def stop(self) -> str:
        self.http.close()
        self.proc.terminate()
        try:
            _, err = self.proc.communicate(timeout=15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            _, err = self.proc.communicate()
        return err


def start_server(
    store: str,
    *extra: str,
    env: dict[str, str] | None = None,
    cwd: Path | None = None,
    artifacts: Path | None = None,
    timeout: float = 60,
) -> Server:
    port = free_port()
    args = list(extra)
    if artifacts is not None:
        args += ["--artifacts-destination", str(artifacts)]
    proc = subprocess.Popen(
        server_cmd(store, port, *args),
        env=env or server_env(),
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"server exited: {proc.stderr.read()}")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/health", timeout=1).text == "OK":
                return Server(proc, port, artifacts)
        except httpx.HTTPError:
            time.sleep(0.1)
    proc.kill()
    raise AssertionError(f"server did not start in {timeout} s: {proc.stderr.read()}")


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Server]:
    """One server per backend for this module, JSON body limit 1 MB."""
    root = tmp_path_factory.mktemp(f"server-{request.param}")
    dropdb = None
    if request.param == "sqlite":
        store = str(root / "store")
    else:
        import sqlalchemy as sa

        pg = request.getfixturevalue("pg_server")
        name = f"srv_{uuid.uuid4().hex[:12]}"
        admin = sa.create_engine(pg, isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            conn.exec_driver_sql(f"CREATE DATABASE {name}")
        store = f"{pg.rsplit('/', 1)[0]}/{name}"

        def dropdb() -> None:
            with admin.connect() as conn:
                conn.exec_driver_sql(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
            admin.dispose()

    srv = start_server(store, "--max-body-mb", "1", cwd=root, artifacts=root / "artifacts")
    srv.backend = request.param  # type: ignore[attr-defined]
    yield srv
    log = srv.stop()
    assert "Traceback" not in log or "INTERNAL" in log, log
    if dropdb:
        dropdb()


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def new_run(server: Server, **fields: Any) -> tuple[str, str]:
    exp = server.call("POST", f"{API}/experiments/create", name=unique("exp"))["experiment_id"]
    run = server.call("POST", f"{API}/runs/create", experiment_id=exp, **fields)["run"]
    return exp, run["info"]["run_id"]


# -- health and plumbing ----------------------------------------------------------------------
def test_health_version_and_unknown_paths(server: Server) -> None:
    assert server.http.get("/health").text == "OK"
    assert server.http.get("/version").status_code == 200
    body = server.call("GET", f"{API}/nope", 404)
    assert body["error_code"] == "ENDPOINT_NOT_FOUND"
    body = server.call("GET", f"{API}/runs/create", 405)
    assert body["error_code"] == "BAD_REQUEST"
    info = server.call("GET", "/api/3.0/mlflow/server-info")
    assert info["workspaces_enabled"] is False
    assert server.call("GET", f"{OURS}/server-info")["server"] == "jupyter_mltrack"


def test_ajax_prefix_serves_the_same_routes(server: Server) -> None:
    name = unique("ajax")
    exp_id = server.call("POST", "/ajax-api/2.0/mlflow/experiments/create", name=name)[
        "experiment_id"
    ]
    got = server.call("GET", f"{API}/experiments/get", experiment_id=exp_id)["experiment"]
    assert got["name"] == name


def test_malformed_bodies_are_bad_requests(server: Server) -> None:
    response = server.http.post(f"{API}/experiments/create", content=b"{not json")
    assert response.status_code == 400
    assert response.json()["error_code"] == "BAD_REQUEST"
    response = server.http.post(f"{API}/experiments/create", content=b"[1, 2]")
    assert response.status_code == 400
    assert response.json()["error_code"] == "INVALID_PARAMETER_VALUE"
    body = server.call("POST", f"{API}/experiments/create", 400)
    assert body == {
        "error_code": "INVALID_PARAMETER_VALUE",
        "message": "Missing value for required parameter 'name'.",
    }
    body = server.call("POST", f"{API}/runs/search", 400, max_results="many")
    assert "max_results" in body["message"]


def test_body_too_large_is_413(server: Server) -> None:
    big = {"name": "x" * (2 * 1024 * 1024)}
    response = server.http.post(f"{API}/experiments/create", json=big)
    assert response.status_code == 413
    assert response.json()["error_code"] == "RESOURCE_EXHAUSTED"
    assert "1 MB" in response.json()["message"]


# -- experiments ------------------------------------------------------------------------------
def test_experiment_routes(server: Server) -> None:
    name = unique("exp")
    exp_id = server.call(
        "POST",
        f"{API}/experiments/create",
        name=name,
        tags=[{"key": "team", "value": "ds"}],
    )["experiment_id"]
    exp = server.call("GET", f"{API}/experiments/get", experiment_id=exp_id)["experiment"]
    assert exp["name"] == name and exp["lifecycle_stage"] == "active"
    assert exp["tags"] == [{"key": "team", "value": "ds"}]
    assert exp["artifact_location"] == f"mlflow-artifacts:/{exp_id}"
    assert isinstance(exp["creation_time"], int)
    by_name = server.call("GET", f"{API}/experiments/get-by-name", experiment_name=name)
    assert by_name["experiment"]["experiment_id"] == exp_id

    body = server.call("POST", f"{API}/experiments/create", 400, name=name)
    assert body["error_code"] == "RESOURCE_ALREADY_EXISTS"
    body = server.call("GET", f"{API}/experiments/get", 404, experiment_id="987654")
    assert body["error_code"] == "RESOURCE_DOES_NOT_EXIST"
    body = server.call("GET", f"{API}/experiments/get-by-name", 404, experiment_name="zz")
    assert body["error_code"] == "RESOURCE_DOES_NOT_EXIST"

    server.call(
        "POST", f"{API}/experiments/set-experiment-tag", experiment_id=exp_id, key="k", value="v"
    )
    server.call("POST", f"{API}/experiments/update", experiment_id=exp_id, new_name=name + "-2")
    found = server.call(
        "POST", f"{API}/experiments/search", filter=f"name = '{name}-2'", max_results=5
    )["experiments"]
    assert [e["experiment_id"] for e in found] == [exp_id]
    assert {"key": "k", "value": "v"} in found[0]["tags"]
    server.call("POST", f"{API}/experiments/delete-experiment-tag", experiment_id=exp_id, key="k")
    gone = server.call("GET", f"{API}/experiments/get", experiment_id=exp_id)["experiment"]
    assert "k" not in {t["key"] for t in gone.get("tags", [])}
    missing = server.call(
        "POST", f"{API}/experiments/delete-experiment-tag", 404, experiment_id=exp_id, key="k"
    )
    assert missing["error_code"] == "RESOURCE_DOES_NOT_EXIST"
    # GET form of search, with order_by repeated in the query string
    got = server.http.get(
        f"{API}/experiments/search",
        params=[
            ("filter", f"name LIKE '{name}%'"),
            ("order_by", "name DESC"),
            ("max_results", "1"),
        ],
    ).json()
    assert len(got["experiments"]) == 1

    server.call("POST", f"{API}/experiments/delete", experiment_id=exp_id)
    deleted = server.call("GET", f"{API}/experiments/get", experiment_id=exp_id)["experiment"]
    assert deleted["lifecycle_stage"] == "deleted"
    found = server.call(
        "POST", f"{API}/experiments/search", filter=f"name = '{name}-2'", view_type="DELETED_ONLY"
    )
    assert len(found["experiments"]) == 1
    body = server.call("POST", f"{API}/runs/create", 400, experiment_id=exp_id)
    assert body["error_code"] == "INVALID_STATE"
    server.call("POST", f"{API}/experiments/restore", experiment_id=exp_id)
    body = server.call("POST", f"{API}/experiments/restore", 400, experiment_id=exp_id)
    assert body["error_code"] == "INVALID_STATE"


def test_experiment_search_pages(server: Server) -> None:
    prefix = unique("page")
    for i in range(5):
        server.call("POST", f"{API}/experiments/create", name=f"{prefix}-{i}")
    seen, token = [], None
    while True:
        fields: dict[str, Any] = {"filter": f"name LIKE '{prefix}%'", "max_results": 2}
        if token:
            fields["page_token"] = token
        page = server.call("POST", f"{API}/experiments/search", **fields)
        seen += [e["name"] for e in page["experiments"]]
        token = page.get("next_page_token")
        if not token:
            break
    assert sorted(seen) == [f"{prefix}-{i}" for i in range(5)]


# -- runs -------------------------------------------------------------------------------------
def test_run_lifecycle_and_logging(server: Server) -> None:
    exp_id, run_id = new_run(
        server,
        user_id="alice",
        run_name="first",
        start_time="1700000000000",  # int64 as a string, as protobuf JSON allows
        tags=[{"key": "team", "value": "ds"}],
    )
    run = server.call("GET", f"{API}/runs/get", run_id=run_id)["run"]
    info = run["info"]
    assert info["run_id"] == info["run_uuid"] == run_id
    assert info["run_name"] == "first" and info["user_id"] == "alice"
    assert info["status"] == "RUNNING" and info["start_time"] == 1_700_000_000_000
    assert info["artifact_uri"] == f"mlflow-artifacts:/{exp_id}/{run_id}/artifacts"

    server.call(
        "POST", f"{API}/runs/log-metric", run_id=run_id, key="loss", value=0.5, timestamp=1, step=0
    )
    server.call(
        "POST",
        f"{API}/runs/log-metric",
        run_uuid=run_id,
        key="loss",
        value="0.25",
        timestamp="2",
        step="1",
    )
    server.call(
        "POST", f"{API}/runs/log-metric", run_id=run_id, key="odd", value="NaN", timestamp=3
    )
    server.call("POST", f"{API}/runs/log-parameter", run_id=run_id, key="lr", value="0.01")
    server.call("POST", f"{API}/runs/set-tag", run_id=run_id, key="note", value="hello")
    server.call("POST", f"{API}/runs/set-tag", run_id=run_id, key="gone", value="soon")
    server.call("POST", f"{API}/runs/delete-tag", run_id=run_id, key="gone")
    server.call(
        "POST",
        f"{API}/runs/log-batch",
        run_id=run_id,
        metrics=[
            {"key": "acc", "value": 0.8, "timestamp": 10, "step": 0},
            {"key": "acc", "value": 0.9, "timestamp": 11, "step": 1},
        ],
        params=[{"key": "depth", "value": "5"}, {"key": "lr", "value": "0.01"}],
        tags=[{"key": "stage", "value": "dev"}],
    )
    data = server.call("GET", f"{API}/runs/get", run_id=run_id)["run"]["data"]
    metrics = {m["key"]: m["value"] for m in data["metrics"]}
    assert metrics == {"loss": 0.25, "odd": "NaN", "acc": 0.9}
    assert {p["key"]: p["value"] for p in data["params"]} == {"lr": "0.01", "depth": "5"}
    tags = {t["key"]: t["value"] for t in data["tags"]}
    assert tags["note"] == "hello" and tags["stage"] == "dev" and "gone" not in tags
    assert tags["mlflow.runName"] == "first"

    history = server.call("GET", f"{API}/metrics/get-history", run_id=run_id, metric_key="loss")
    assert [(m["step"], m["value"], m["timestamp"]) for m in history["metrics"]] == [
        (0, 0.5, 1),
        (1, 0.25, 2),
    ]
    first = server.call(
        "GET", f"{API}/metrics/get-history", run_id=run_id, metric_key="loss", max_results=1
    )
    assert len(first["metrics"]) == 1 and first["next_page_token"]
    rest = server.call(
        "GET",
        f"{API}/metrics/get-history",
        run_id=run_id,
        metric_key="loss",
        max_results=1,
        page_token=first["next_page_token"],
    )
    assert rest["metrics"][0]["value"] == 0.25 and "next_page_token" not in rest

    # a param may not change; the whole batch is refused
    body = server.call(
        "POST",
        f"{API}/runs/log-batch",
        400,
        run_id=run_id,
        params=[{"key": "lr", "value": "0.1"}],
        metrics=[{"key": "never", "value": 1, "timestamp": 1, "step": 0}],
    )
    assert body["error_code"] == "INVALID_PARAMETER_VALUE" and "lr" in body["message"]
    after = server.call("GET", f"{API}/runs/get", run_id=run_id)["run"]["data"]
    assert "never" not in {m["key"] for m in after["metrics"]}
    body = server.call("POST", f"{API}/runs/log-metric", 400, run_id=run_id, key="bad", value="abc")
    assert body["error_code"] == "INVALID_PARAMETER_VALUE"

    info = server.call(
        "POST", f"{API}/runs/update", run_id=run_id, status="FINISHED", end_time=1_700_000_100_000
    )["run_info"]
    assert info["status"] == "FINISHED" and info["end_time"] == 1_700_000_100_000
    renamed = server.call("POST", f"{API}/runs/update", run_id=run_id, run_name="renamed")
    assert renamed["run_info"]["run_name"] == "renamed"

    server.call("POST", f"{API}/runs/delete", run_id=run_id)
    deleted = server.call("GET", f"{API}/runs/get", run_id=run_id)["run"]["info"]
    assert deleted["lifecycle_stage"] == "deleted"
    body = server.call(
        "POST", f"{API}/runs/log-metric", 400, run_id=run_id, key="x", value=1, timestamp=1
    )
    assert body["error_code"] == "INVALID_STATE"
    server.call("POST", f"{API}/runs/restore", run_id=run_id)
    server.call("POST", f"{API}/runs/log-metric", run_id=run_id, key="x", value=1, timestamp=1)

    body = server.call("GET", f"{API}/runs/get", 404, run_id="0" * 32)
    assert body["error_code"] == "RESOURCE_DOES_NOT_EXIST"
    body = server.call("GET", f"{API}/runs/get", 400)
    assert body["message"] == "Missing value for required parameter 'run_id'."


def test_search_runs_filter_order_pages_and_numeric_params(server: Server) -> None:
    exp_id = server.call("POST", f"{API}/experiments/create", name=unique("search"))[
        "experiment_id"
    ]
    for i, n in enumerate([10, 50, 100, 200]):
        run_id = server.call("POST", f"{API}/runs/create", experiment_id=exp_id)["run"]["info"][
            "run_id"
        ]
        server.call(
            "POST",
            f"{API}/runs/log-batch",
            run_id=run_id,
            metrics=[{"key": "f1_score", "value": 0.8 + i * 0.03, "timestamp": 1, "step": 0}],
            params=[{"key": "n_estimators", "value": str(n)}],
        )
    # the seed's filter: unquoted numbers compare numerically, params too (MLflow cannot)
    found = server.call(
        "POST",
        f"{API}/runs/search",
        experiment_ids=[exp_id],
        filter="metrics.f1_score > 0.85 AND params.n_estimators > 50",
        order_by=["metrics.f1_score DESC"],
        max_results=10,
    )["runs"]
    values = [{p["key"]: p["value"] for p in r["data"]["params"]}["n_estimators"] for r in found]
    assert values == ["200", "100"]
    page = server.call("POST", f"{API}/runs/search", experiment_ids=[exp_id], max_results=3)
    assert len(page["runs"]) == 3 and page["next_page_token"]
    page2 = server.call(
        "POST",
        f"{API}/runs/search",
        experiment_ids=[exp_id],
        max_results=3,
        page_token=page["next_page_token"],
    )
    assert len(page2["runs"]) == 1 and "next_page_token" not in page2
    empty = server.call(
        "POST", f"{API}/runs/search", experiment_ids=[exp_id], filter="metrics.f1_score > 5"
    )
    assert empty == {}
    body = server.call(
        "POST", f"{API}/runs/search", 400, experiment_ids=[exp_id], filter="metrics.f1 >> 1"
    )
    assert body["error_code"] == "INVALID_PARAMETER_VALUE" and "position" in body["message"]


def test_log_inputs_and_outputs(server: Server) -> None:
    exp_id, run_id = new_run(server)
    model_id = "m-1"
    if server.http.post(f"{API}/logged-models/search", json={}).status_code != 404:
        # the logged-model routes are mounted: outputs must name a real logged model
        created = server.call(
            "POST", f"{API}/logged-models", experiment_id=exp_id, name="m", source_run_id=run_id
        )
        model_id = created["model"]["info"]["model_id"]
    server.call(
        "POST", f"{API}/runs/outputs", run_id=run_id, models=[{"model_id": model_id, "step": 0}]
    )
    server.call("POST", f"{API}/runs/log-inputs", run_id=run_id, models=[{"model_id": model_id}])
    dataset = {"dataset": {"name": "d", "digest": "abc", "source_type": "local", "source": "{}"}}
    tags = [{"key": "mlflow.data.context", "value": "training"}]
    server.call("POST", f"{API}/runs/log-inputs", run_id=run_id, datasets=[dataset])
    server.call(
        "POST", f"{API}/runs/log-inputs", run_id=run_id, datasets=[{**dataset, "tags": tags}]
    )
    run = server.call("GET", f"{API}/runs/get", run_id=run_id)["run"]
    assert run["inputs"]["dataset_inputs"] == [{**dataset, "tags": tags}]  # stored once
    found = server.call("POST", f"{API}/runs/search", experiment_ids=[exp_id])["runs"]
    assert found[0]["inputs"]["dataset_inputs"][0]["dataset"]["digest"] == "abc"
    body = server.call(
        "POST", f"{API}/runs/log-inputs", 400, run_id=run_id, datasets=[{"dataset": {"name": "d"}}]
    )
    assert body["error_code"] == "INVALID_PARAMETER_VALUE" and "digest" in body["message"]
    body = server.call("POST", f"{API}/runs/log-inputs", 404, run_id="f" * 32)
    assert body["error_code"] == "RESOURCE_DOES_NOT_EXIST"


def test_list_artifacts_and_path_escapes(server: Server) -> None:
    exp_id, run_id = new_run(server)
    folder = server.artifacts / exp_id / run_id / "artifacts"
    (folder / "plots").mkdir(parents=True)
    (folder / "model.txt").write_text("hello")
    (folder / "plots" / "loss.png").write_bytes(b"png")
    listing = server.call("GET", f"{API}/artifacts/list", run_id=run_id)
    assert listing["root_uri"] == f"mlflow-artifacts:/{exp_id}/{run_id}/artifacts"
    assert listing["files"] == [
        {"path": "plots", "is_dir": True},
        {"path": "model.txt", "is_dir": False, "file_size": 5},
    ]
    sub = server.call("GET", f"{API}/artifacts/list", run_id=run_id, path="plots")
    assert sub["files"] == [{"path": "plots/loss.png", "is_dir": False, "file_size": 3}]
    for bad in ("../..", "/etc", "plots/../../.."):
        body = server.call("GET", f"{API}/artifacts/list", 400, run_id=run_id, path=bad)
        assert body["error_code"] == "INVALID_PARAMETER_VALUE"
    # an experiment pointed at the server's own file system is not read through the server
    exp = server.call(
        "POST", f"{API}/experiments/create", name=unique("etc"), artifact_location="/etc"
    )["experiment_id"]
    run = server.call("POST", f"{API}/runs/create", experiment_id=exp)["run"]["info"]
    assert run["artifact_uri"].startswith("/etc/")
    body = server.call("GET", f"{API}/artifacts/list", 400, run_id=run["run_id"])
    assert "outside" in body["message"]
    # mlflow-artifacts: locations from a client are stored under the destination
    exp = server.call(
        "POST",
        f"{API}/experiments/create",
        name=unique("proxied"),
        artifact_location="mlflow-artifacts:/team/a",
    )["experiment_id"]
    got = server.call("GET", f"{API}/experiments/get", experiment_id=exp)["experiment"]
    assert got["artifact_location"] == "mlflow-artifacts:/team/a"
    body = server.call(
        "POST",
        f"{API}/experiments/create",
        400,
        name=unique("escape"),
        artifact_location="mlflow-artifacts:/../../etc",
    )
    assert body["error_code"] == "INVALID_PARAMETER_VALUE"


# -- registry ---------------------------------------------------------------------------------
def test_registry_routes(server: Server) -> None:
    exp_id, run_id = new_run(server)
    name = unique("Churn")
    rm = server.call(
        "POST",
        f"{API}/registered-models/create",
        name=name,
        tags=[{"key": "owner", "value": "ds"}],
        description="first",
    )["registered_model"]
    assert rm["name"] == name and rm["description"] == "first"
    body = server.call("POST", f"{API}/registered-models/create", 400, name=name)
    assert body["error_code"] == "RESOURCE_ALREADY_EXISTS"

    source = f"mlflow-artifacts:/{exp_id}/{run_id}/artifacts/model"
    mv = server.call(
        "POST",
        f"{API}/model-versions/create",
        name=name,
        source=source,
        run_id=run_id,
        tags=[{"key": "k", "value": "v"}],
        description="v1",
    )["model_version"]
    assert mv["version"] == "1" and mv["current_stage"] == "None" and mv["status"] == "READY"
    assert mv["source"] == source and mv["run_id"] == run_id
    v2 = server.call(
        "POST",
        f"{API}/model-versions/create",
        name=name,
        source=f"runs:/{run_id}/model",
        run_id=run_id,
    )["model_version"]
    assert v2["version"] == "2"

    got = server.call("GET", f"{API}/model-versions/get", name=name, version="1")["model_version"]
    assert got["tags"] == [{"key": "k", "value": "v"}] and got["description"] == "v1"
    upd = server.call(
        "PATCH", f"{API}/model-versions/update", name=name, version="1", description="new"
    )
    assert upd["model_version"]["description"] == "new"
    server.call(
        "POST", f"{API}/model-versions/set-tag", name=name, version="1", key="ok", value="yes"
    )
    server.call("DELETE", f"{API}/model-versions/delete-tag", name=name, version="1", key="k")
    tags = server.call("GET", f"{API}/model-versions/get", name=name, version="1")["model_version"][
        "tags"
    ]
    assert tags == [{"key": "ok", "value": "yes"}]

    staged = server.call(
        "POST", f"{API}/model-versions/transition-stage", name=name, version="1", stage="staging"
    )["model_version"]
    assert staged["current_stage"] == "Staging"
    server.call(
        "POST",
        f"{API}/model-versions/transition-stage",
        name=name,
        version="2",
        stage="Production",
        archive_existing_versions=True,
    )
    latest = server.call(
        "POST", f"{API}/registered-models/get-latest-versions", name=name, stages=["Production"]
    )["model_versions"]
    assert [(v["version"], v["current_stage"]) for v in latest] == [("2", "Production")]
    latest_get = server.http.get(
        f"{API}/registered-models/get-latest-versions",
        params=[("name", name), ("stages", "Staging")],
    ).json()
    assert [v["version"] for v in latest_get["model_versions"]] == ["1"]
    body = server.call(
        "POST", f"{API}/model-versions/transition-stage", 400, name=name, version="1", stage="Prod"
    )
    assert body["error_code"] == "INVALID_PARAMETER_VALUE"

    server.call("POST", f"{API}/registered-models/alias", name=name, alias="champion", version="2")
    by_alias = server.call("GET", f"{API}/registered-models/alias", name=name, alias="champion")
    assert by_alias["model_version"]["version"] == "2"
    assert by_alias["model_version"]["aliases"] == ["champion"]
    model = server.call("GET", f"{API}/registered-models/get", name=name)["registered_model"]
    assert model["aliases"] == [{"alias": "champion", "version": "2"}]
    assert {v["version"]: v["current_stage"] for v in model["latest_versions"]} == {
        "1": "Staging",
        "2": "Production",
    }
    assert model["tags"] == [{"key": "owner", "value": "ds"}]
    server.call("DELETE", f"{API}/registered-models/alias", name=name, alias="champion")
    body = server.call("GET", f"{API}/registered-models/alias", 404, name=name, alias="champion")
    assert body["error_code"] == "RESOURCE_DOES_NOT_EXIST"

    uri = server.call("GET", f"{API}/model-versions/get-download-uri", name=name, version="1")
    assert uri["artifact_uri"] == source
    uri = server.call("GET", f"{API}/model-versions/get-download-uri", name=name, version="2")
    assert uri["artifact_uri"] == f"mlflow-artifacts:/{exp_id}/{run_id}/artifacts/model"

    found = server.call("GET", f"{API}/model-versions/search", filter=f"name = '{name}'")
    assert sorted(v["version"] for v in found["model_versions"]) == ["1", "2"]
    found = server.http.get(
        f"{API}/model-versions/search",
        params=[
            ("filter", f"name = '{name}'"),
            ("order_by", "version_number DESC"),
            ("max_results", "1"),
        ],
    )
    assert found.status_code in (200, 400)  # order keys differ between grammars; must not 500

    server.call("POST", f"{API}/registered-models/set-tag", name=name, key="t", value="1")
    server.call("DELETE", f"{API}/registered-models/delete-tag", name=name, key="t")
    server.call("PATCH", f"{API}/registered-models/update", name=name, description="second")
    models = server.call("GET", f"{API}/registered-models/search", filter=f"name = '{name}'")
    assert [m["description"] for m in models["registered_models"]] == ["second"]
    renamed = server.call(
        "POST", f"{API}/registered-models/rename", name=name, new_name=name + "-r"
    )
    assert renamed["registered_model"]["name"] == name + "-r"
    server.call("DELETE", f"{API}/model-versions/delete", name=name + "-r", version="1")
    body = server.call("GET", f"{API}/model-versions/get", 404, name=name + "-r", version="1")
    assert body["error_code"] == "RESOURCE_DOES_NOT_EXIST"
    server.call("DELETE", f"{API}/registered-models/delete", name=name + "-r")
    body = server.call("GET", f"{API}/registered-models/get", 404, name=name + "-r")
    assert body["error_code"] == "RESOURCE_DOES_NOT_EXIST"


# -- ours -------------------------------------------------------------------------------------
def test_promote_with_gate_rollback_and_audit_trail(server: Server) -> None:
    _, run_id = new_run(server)
    server.call(
        "POST", f"{API}/runs/log-metric", run_id=run_id, key="accuracy", value=0.8, timestamp=1
    )
    name = unique("Gate")
    server.call("POST", f"{API}/registered-models/create", name=name)
    for _ in range(2):
        server.call(
            "POST",
            f"{API}/model-versions/create",
            name=name,
            source=f"runs:/{run_id}/m",
            run_id=run_id,
        )
    body = server.call(
        "POST",
        f"{OURS}/model-versions/promote",
        400,
        name=name,
        version="1",
        gate={"metric": "accuracy", "threshold": 0.9},
    )
    assert body["error_code"] == "INVALID_STATE" and body["validation"]["passed"] is False
    assert body["validation"]["value"] == 0.8
    stage = server.call("GET", f"{API}/model-versions/get", name=name, version="1")["model_version"]
    assert stage["current_stage"] == "None"

    promoted = server.call(
        "POST",
        f"{OURS}/model-versions/promote",
        name=name,
        version="1",
        gate={"metric": "accuracy", "threshold": 0.75},
        comment="good enough",
    )["model_version"]
    assert promoted["current_stage"] == "Production"
    server.call("POST", f"{OURS}/model-versions/promote", name=name, version="2")
    candidate = server.call(
        "GET", f"{OURS}/model-versions/rollback-candidate", name=name, stage="Production"
    )["model_version"]
    assert candidate["version"] == "1"
    back = server.call("POST", f"{OURS}/model-versions/rollback", name=name, stage="Production")
    assert back["model_version"]["version"] == "1"
    assert back["model_version"]["current_stage"] == "Production"
    server.call("POST", f"{OURS}/model-versions/promote", name=name, version="2", alias="champion")

    trail = server.call("GET", f"{OURS}/registered-models/audit-trail", name=name)["entries"]
    actions = [e["action"] for e in trail]
    assert actions[:2] == ["register", "register"]
    assert "promote_refused" in actions and "rollback" in actions
    refused = next(e for e in trail if e["action"] == "promote_refused")
    assert refused["details"]["validation"]["threshold"] == 0.9
    gated = next(e for e in trail if e["action"] == "promote" and e["version"] == "1")
    assert gated["comment"] == "good enough" and gated["details"]["validation"]["passed"]
    body = server.call(
        "POST", f"{OURS}/model-versions/promote", 400, name=name, version="1", gate={"x": 1}
    )
    assert body["error_code"] == "INVALID_PARAMETER_VALUE"


def test_metric_series(server: Server) -> None:
    _, run_id = new_run(server)
    server.call(
        "POST",
        f"{API}/runs/log-batch",
        run_id=run_id,
        metrics=[
            {"key": "loss", "value": 1 / (i + 1), "timestamp": i, "step": i} for i in range(100)
        ],
    )
    series = server.call(
        "POST", f"{OURS}/metrics/get-series", run_ids=[run_id], metric_key="loss", max_points=20
    )["series"]
    assert len(series) == 1 and series[0]["run_id"] == run_id
    assert len(series[0]["x"]) <= 40 and max(series[0]["values"]) == 1.0
    assert series[0]["downsampled"] is True


# -- error bodies -----------------------------------------------------------------------------
def test_no_stack_trace_in_any_error_body(server: Server) -> None:
    assert ERROR_BODIES, "the tests above saw errors"
    for body in ERROR_BODIES:
        text = json.dumps(body)
        assert "Traceback" not in text and 'File "' not in text and "sqlalchemy" not in text.lower()


def test_unexpected_errors_are_generic_500s(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """An exception we did not plan for: 500 INTERNAL_ERROR, details only in the log."""
    from jupyter_mltrack.tracking_server import routes_tracking
    from jupyter_mltrack.tracking_server.app import create_app

    app = create_app(str(tmp_path / "store"))

    def broken(ctx: Any, p: Any) -> dict[str, Any]:
        raise RuntimeError("secret detail /srv/db password=hunter2")

    app.table[f"{API}/runs/get"]["GET"] = broken
    transport = httpx.ASGITransport(app=app)

    async def call() -> httpx.Response:
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            return await client.get(f"{API}/runs/get", params={"run_id": "x"})

    from concurrent.futures import ThreadPoolExecutor

    import anyio

    # a thread of its own: Playwright's sync API (browser tests) keeps a loop on the main thread
    with ThreadPoolExecutor(max_workers=1) as pool:
        response = pool.submit(anyio.run, call).result()
    assert response.status_code == 500
    assert response.json()["error_code"] == "INTERNAL_ERROR"
    assert "hunter2" not in response.text and "Traceback" not in response.text
    assert "hunter2" in caplog.text  # the log keeps the details
    assert routes_tracking.HANDLERS["get_run"] is not broken


# -- auth -------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def token_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    root = tmp_path_factory.mktemp("token")
    srv = start_server(
        str(root / "store"), "--auth", "token", env=server_env(MLTRACK_SERVER_TOKEN=TOKEN), cwd=root
    )
    yield srv
    srv.stop()


def test_token_auth(token_server: Server) -> None:
    http = token_server.http
    assert http.get("/health").text == "OK"  # probes need no credentials
    for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": "Basic " + TOKEN}):
        response = http.get(
            f"{API}/experiments/get", params={"experiment_id": "0"}, headers=headers
        )
        assert response.status_code == 401
        assert response.json()["error_code"] == "UNAUTHENTICATED"
        assert response.headers["www-authenticate"].startswith("Bearer")
        ERROR_BODIES.append(response.json())
    response = http.post(f"{OURS}/model-versions/promote", json={}, headers={})
    assert response.status_code == 401  # our routes too
    response = http.get("/api/2.0/mlflow-artifacts/artifacts", headers={})
    assert response.status_code == 401  # and whatever is mounted behind
    ok = http.get(
        f"{API}/experiments/get",
        params={"experiment_id": "0"},
        headers={"Authorization": f"Bearer {TOKEN}"},
    )
    assert ok.status_code == 200 and ok.json()["experiment"]["name"] == "Default"


def test_basic_auth(tmp_path: Path) -> None:
    env = server_env(MLTRACK_SERVER_USERNAME="ana", MLTRACK_SERVER_PASSWORD="pw-9f8e7d")
    srv = start_server(str(tmp_path / "store"), "--auth", "basic", env=env, cwd=tmp_path)
    try:
        url = f"{API}/experiments/get"
        params = {"experiment_id": "0"}
        assert srv.http.get(url, params=params).status_code == 401
        assert srv.http.get(url, params=params, auth=("ana", "wrong")).status_code == 401
        assert srv.http.get(url, params=params, auth=("bob", "pw-9f8e7d")).status_code == 401
        bad = srv.http.get(url, params=params, headers={"Authorization": "Basic !!notbase64"})
        assert bad.status_code == 401
        assert bad.headers["www-authenticate"].startswith("Basic")
        assert srv.http.get(url, params=params, auth=("ana", "pw-9f8e7d")).status_code == 200
    finally:
        srv.stop()


def test_auth_needs_its_secrets(tmp_path: Path) -> None:
    port = free_port()
    for mode, env in (("token", {}), ("token", {"MLTRACK_SERVER_TOKEN": "short"}), ("basic", {})):
        done = subprocess.run(
            server_cmd(str(tmp_path / "store"), port, "--auth", mode),
            env=server_env(**env),
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert done.returncode != 0
        assert "MLTRACK_SERVER_" in done.stderr and "Traceback" not in done.stderr


def test_no_auth_only_on_loopback(tmp_path: Path) -> None:
    done = subprocess.run(
        server_cmd(str(tmp_path / "store"), free_port(), "--host", "0.0.0.0"),
        env=server_env(),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode != 0
    assert "Refusing to serve on 0.0.0.0 without authentication" in done.stderr
    assert "Traceback" not in done.stderr

    from jupyter_mltrack.exceptions import InvalidParameterValue
    from jupyter_mltrack.tracking_server.auth import Auth, check_exposure, is_loopback

    assert is_loopback("127.0.0.1") and is_loopback("::1") and is_loopback("localhost")
    assert (
        is_loopback("127.0.0.5") and not is_loopback("10.0.0.1") and not is_loopback("example.com")
    )
    check_exposure("10.0.0.1", Auth("none"), allow_insecure=True)  # the explicit opt-out
    check_exposure("10.0.0.1", Auth("token", token=b"x" * 20), allow_insecure=False)
    with pytest.raises(InvalidParameterValue):
        check_exposure("10.0.0.1", Auth("none"), allow_insecure=False)


# -- several workers share the store ----------------------------------------------------------
def test_workers_share_state(tmp_path: Path) -> None:
    from concurrent.futures import ThreadPoolExecutor

    srv = start_server(str(tmp_path / "store"), "--workers", "2", cwd=tmp_path)
    try:
        exp = srv.call("POST", f"{API}/experiments/create", name="shared")["experiment_id"]

        def create(i: int) -> str:
            with httpx.Client(base_url=srv.url, timeout=30) as http:  # new connections: any worker
                response = http.post(f"{API}/runs/create", json={"experiment_id": exp})
                run_id = response.json()["run"]["info"]["run_id"]
                http.post(
                    f"{API}/runs/log-metric",
                    json={"run_id": run_id, "key": "m", "value": i, "timestamp": 1},
                ).raise_for_status()
                return run_id

        with ThreadPoolExecutor(8) as pool:
            run_ids = list(pool.map(create, range(24)))
        found = srv.call("POST", f"{API}/runs/search", experiment_ids=[exp], max_results=100)
        assert {r["info"]["run_id"] for r in found["runs"]} == set(run_ids)
        assert sorted(r["data"]["metrics"][0]["value"] for r in found["runs"]) == list(range(24))

        # a run deleted through one worker is refused by every worker
        victim = run_ids[0]
        srv.call("POST", f"{API}/runs/delete", run_id=victim)

        def log(_: int) -> int:
            with httpx.Client(base_url=srv.url, timeout=30) as http:
                return http.post(
                    f"{API}/runs/log-metric",
                    json={"run_id": victim, "key": "late", "value": 1, "timestamp": 1},
                ).status_code

        with ThreadPoolExecutor(4) as pool:
            assert set(pool.map(log, range(16))) == {400}
    finally:
        srv.stop()
