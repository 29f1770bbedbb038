"""Our client over HTTP: against a real ``mlflow server``, and against tiny local HTTP servers
that record what the client sends (auth headers) or answer on cue (retries, failures)."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import ssl
import subprocess
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import requests

import jupyter_mltrack as mlflow
from jupyter_mltrack.entities import Metric, Param, RunTag, ViewType
from jupyter_mltrack.exceptions import (
    InvalidParameterValue,
    MlflowException,
    ResourceAlreadyExists,
    ResourceDoesNotExist,
)
from jupyter_mltrack.store.base import PendingWrites
from jupyter_mltrack.store.rest.http import ServerUnreachable
from jupyter_mltrack.store.rest.registry import NotSupportedByServer
from jupyter_mltrack.store.rest.store import (
    MAX_ENTITIES_PER_BATCH,
    MAX_METRICS_PER_BATCH,
    MAX_PARAMS_TAGS_PER_BATCH,
    RestStore,
    _batches,
)
from jupyter_mltrack.tracking.client import MlflowClient

ROOT = Path(__file__).resolve().parent.parent
MLFLOW_BIN = ROOT / "benchmarks" / ".venv-mlflow" / "bin" / "mlflow"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _wait_for_health(url: str, proc: subprocess.Popen[bytes], log: Path, seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"mlflow server exited ({proc.returncode}):\n{log.read_text()[-3000:]}")
        try:
            if requests.get(url + "/health", timeout=1).status_code == 200:
                return
        except requests.RequestException:
            pass
        time.sleep(0.25)
    pytest.fail(
        f"mlflow server did not answer /health within {seconds} s:\n{log.read_text()[-3000:]}"
    )


def _start_mlflow(root: Path, port: int) -> subprocess.Popen[bytes]:
    """``mlflow server`` on 127.0.0.1:``port`` with its database and artifacts under ``root``."""
    root.mkdir(parents=True, exist_ok=True)
    with open(root / "server.log", "ab") as out:
        return subprocess.Popen(
            [
                str(MLFLOW_BIN),
                "server",
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
                "--backend-store-uri",
                f"sqlite:///{root / 'mlflow.db'}",
                "--artifacts-destination",
                str(root / "artifacts"),
                "--workers",
                "1",
            ],
            cwd=root,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group: the workers stop with it
        )


def _stop(proc: subprocess.Popen[bytes], sig: int = signal.SIGTERM) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, sig)
    try:
        proc.wait(15)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(5)


@pytest.fixture(scope="session")
def mlflow_server(tmp_path_factory: pytest.TempPathFactory, mlflow_python: Path) -> Iterator[str]:
    """URL of a real ``mlflow server`` (MLflow from benchmarks/.venv-mlflow) on a free port."""
    root = tmp_path_factory.mktemp("mlflow-server")
    port = _free_port()
    proc = _start_mlflow(root, port)
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_for_health(url, proc, root / "server.log", 120)
        yield url
    finally:
        _stop(proc)


@pytest.fixture(scope="session")
def mltrack_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """URL of our own ``mltrack server`` (SQLite store, proxied artifacts) on a free port."""
    import sys

    root = tmp_path_factory.mktemp("mltrack-server")
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLTRACK_", "MLFLOW_"))}
    with open(root / "server.log", "ab") as out:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "jupyter_mltrack.cli",
                "server",
                "--backend-store-uri",
                str(root / "store"),
                "--port",
                str(port),
                "--artifacts-destination",
                str(root / "artifacts"),
            ],
            cwd=root,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_for_health(url, proc, root / "server.log", 60)
        yield url
    finally:
        _stop(proc)


@pytest.fixture(params=["mlflow", "mltrack"])
def remote(request: pytest.FixtureRequest) -> MlflowClient:
    """The fluent API and a client pointed at a real server (MLflow's, then ours), in a fresh
    experiment; ``client.test_server`` says which."""
    url = request.getfixturevalue(f"{request.param}_server")
    mlflow.set_tracking_uri(url)
    experiment = mlflow.set_experiment(f"exp-{uuid.uuid4().hex[:10]}")
    client = MlflowClient()
    client.test_experiment_id = experiment.experiment_id  # type: ignore[attr-defined]
    client.test_server = request.param  # type: ignore[attr-defined]
    return client


def _experiment_id(client: MlflowClient) -> str:
    return client.test_experiment_id  # type: ignore[attr-defined]


def _count_calls(store: RestStore, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Record the endpoint of every call the store's HTTP client makes."""
    seen: list[str] = []
    original = store.http.call

    def counting(method: str, endpoint: str, body: Any = None, **kwargs: Any) -> Any:
        seen.append(endpoint)
        return original(method, endpoint, body, **kwargs)

    monkeypatch.setattr(store.http, "call", counting)
    return seen


# -- against a real MLflow server -------------------------------------------------------------
def test_run_logging_round_trip(remote: MlflowClient, monkeypatch: pytest.MonkeyPatch) -> None:
    calls = _count_calls(remote.store, monkeypatch)
    with mlflow.start_run(run_name="parent") as parent:
        mlflow.log_param("lr", 0.01)
        mlflow.log_params({"depth": 3, "kind": "tree"})
        mlflow.set_tag("team", "ml")
        for step in range(2500):
            mlflow.log_metric("loss", 1.0 / (step + 1), step=step)
        mlflow.log_metric("nan_metric", float("nan"))
        with mlflow.start_run(run_name="child", nested=True) as child:
            mlflow.log_metric("acc", 0.9)
    batches = [c for c in calls if c.endswith("/runs/log-batch")]
    assert 3 <= len(batches) <= 8  # 2500 points need at least 3 calls of 1000, not one each

    run = remote.get_run(parent.info.run_id)
    assert run.info.status == "FINISHED"
    assert run.info.run_name == "parent"
    assert run.data.params == {"lr": "0.01", "depth": "3", "kind": "tree"}
    assert run.data.tags["team"] == "ml"
    assert run.data.metrics["loss"] == pytest.approx(1.0 / 2500)
    assert run.data.metrics["nan_metric"] != run.data.metrics["nan_metric"]
    history = remote.get_metric_history(parent.info.run_id, "loss")
    assert [m.step for m in history] == list(range(2500))
    assert history[0].value == 1.0

    series = remote.get_metric_series([parent.info.run_id, child.info.run_id], "loss", 100)
    assert list(series) == [parent.info.run_id]  # the child never logged "loss"
    assert series[parent.info.run_id].downsampled
    assert 16 <= len(series[parent.info.run_id].x) <= 200

    child_run = remote.get_run(child.info.run_id)
    assert child_run.data.tags["mlflow.parentRunId"] == parent.info.run_id
    assert remote.get_parent_run(child.info.run_id).info.run_id == parent.info.run_id


def test_client_batches_split_to_mlflow_limits(remote: MlflowClient) -> None:
    run = remote.create_run(_experiment_id(remote))
    run_id = run.info.run_id
    metrics = [Metric("m", float(i), 1000 + i, i) for i in range(2300)]
    params = [Param(f"p{i}", i) for i in range(230)]
    tags = [RunTag(f"t{i}", i) for i in range(150)]
    remote.log_batch(run_id, metrics, params, tags, synchronous=True)
    got = remote.get_run(run_id)
    assert len(got.data.params) == 230
    assert len([k for k in got.data.tags if k.startswith("t")]) == 150
    assert len(remote.get_metric_history(run_id, "m")) == 2300


def test_retried_log_batch_adds_no_duplicate_points(remote: MlflowClient) -> None:
    run_id = remote.create_run(_experiment_id(remote)).info.run_id
    store = remote.store
    key = store.writable_run_key(run_id)
    rows = [(key, "x", i, 5000 + i, float(i), False) for i in range(10)]
    store.write_pending(PendingWrites(metrics=list(rows)))
    store.write_pending(PendingWrites(metrics=list(rows)))  # what a retry after a lost answer does
    assert len(remote.get_metric_history(run_id, "x")) == 10


def test_param_conflict_is_refused_and_the_rest_is_kept(remote: MlflowClient) -> None:
    run_id = remote.create_run(_experiment_id(remote)).info.run_id
    remote.log_param(run_id, "a", 1, synchronous=True)
    store = remote.store
    key = store.writable_run_key(run_id)
    pending = PendingWrites(
        metrics=[(key, "kept", 0, 1, 1.0, False)],
        params=[(key, run_id, "a", "2"), (key, run_id, "b", "3")],
        tags=[(key, "t", "v")],
    )
    with pytest.raises(InvalidParameterValue):
        store.write_pending(pending)
    run = remote.get_run(run_id)
    assert run.data.params == {"a": "1", "b": "3"}
    assert run.data.metrics == {"kept": 1.0}
    assert run.data.tags["t"] == "v"


def test_search_filter_order_and_paging(remote: MlflowClient) -> None:
    exp_id = _experiment_id(remote)
    for i in range(7):
        with mlflow.start_run(run_name=f"r{i}"):
            mlflow.log_metric("acc", i / 10)
            mlflow.log_param("group", "even" if i % 2 == 0 else "odd")
    seen: list[float] = []
    token = None
    while True:
        page = remote.search_runs(
            [exp_id],
            "metrics.acc >= 0.2 and params.group = 'even'",
            order_by=["metrics.acc DESC"],
            max_results=1,
            page_token=token,
        )
        seen.extend(r.data.metrics["acc"] for r in page)
        token = page.token
        if not token:
            break
    assert seen == [0.6, 0.4, 0.2]

    frame = mlflow.search_runs([exp_id], order_by=["metrics.acc ASC"])
    assert len(frame) == 7
    assert list(frame["metrics.acc"]) == [i / 10 for i in range(7)]
    assert {"run_id", "experiment_id", "status", "start_time", "params.group"} <= set(frame)
    assert frame["tags.mlflow.runName"].iloc[0] == "r0"

    with pytest.raises(MlflowException):
        remote.search_runs([exp_id], "metrics.acc >>> 1")


def test_delete_restore_and_experiments(remote: MlflowClient) -> None:
    exp_id = _experiment_id(remote)
    run_id = remote.create_run(exp_id).info.run_id
    remote.delete_run(run_id)
    assert remote.search_runs([exp_id]) == []
    assert len(remote.search_runs([exp_id], run_view_type=ViewType.ALL)) == 1
    with pytest.raises(MlflowException):
        remote.log_metric(run_id, "x", 1.0, synchronous=True)
    remote.restore_run(run_id)
    remote.log_metric(run_id, "x", 1.0)
    assert remote.get_run(run_id).data.metrics == {"x": 1.0}
    remote.set_terminated(run_id)

    name = f"other-{uuid.uuid4().hex[:8]}"
    other = remote.create_experiment(name, tags={"k": "v"})
    assert remote.get_experiment(other).tags == {"k": "v"}
    with pytest.raises(ResourceAlreadyExists):
        remote.create_experiment(name)
    remote.rename_experiment(other, name + "-renamed")
    remote.set_experiment_tag(other, "k2", "v2")
    exp = remote.get_experiment_by_name(name + "-renamed")
    assert exp is not None and exp.tags == {"k": "v", "k2": "v2"}
    assert remote.get_experiment_by_name("no-such-experiment-" + name) is None
    remote.delete_experiment(other)
    assert remote.get_experiment(other).lifecycle_stage == "deleted"
    found = remote.search_experiments(
        view_type=ViewType.DELETED_ONLY, filter_string=f"name = '{name}-renamed'"
    )
    assert [e.experiment_id for e in found] == [other]
    remote.restore_experiment(other)
    with pytest.raises(ResourceDoesNotExist):
        remote.get_run("0" * 32)
    with pytest.raises(MlflowException, match="gc"):
        remote.store.gc()


def test_registry_stages_aliases_and_search(remote: MlflowClient) -> None:
    name = f"model-{uuid.uuid4().hex[:8]}"
    run_ids = []
    for _ in range(3):
        with mlflow.start_run() as run:
            mlflow.log_metric("acc", 0.5)
        run_ids.append(run.info.run_id)
    model = remote.create_registered_model(name, tags={"owner": "me"}, description="d")
    assert model.name == name and model.tags == {"owner": "me"}
    versions = [
        remote.create_model_version(name, f"runs:/{rid}/model", run_id=rid) for rid in run_ids
    ]
    assert [v.version for v in versions] == [1, 2, 3]
    assert versions[0].current_stage == "None"

    mv = remote.transition_model_version_stage(name, 1, "production")
    assert mv.current_stage == "Production"
    remote.transition_model_version_stage(name, 2, "Production", archive_existing_versions=True)
    assert remote.get_model_version(name, 1).current_stage == "Archived"
    assert remote.get_model_version_by_stage(name, "Production").version == 2
    assert [v.version for v in remote.get_latest_versions(name, ["Production"])] == [2]
    assert remote.get_latest_model_version(name).version == 3
    with pytest.raises(ResourceDoesNotExist, match="Staging"):
        remote.get_model_version_by_stage(name, "Staging")

    remote.set_registered_model_alias(name, "champion", 3)
    assert remote.get_model_version_by_alias(name, "champion").version == 3
    assert remote.get_registered_model(name).aliases == {"champion": 3}
    remote.delete_registered_model_alias(name, "champion")
    with pytest.raises(MlflowException):
        remote.get_model_version_by_alias(name, "champion")

    remote.set_model_version_tag(name, 3, "validated", "yes")
    remote.update_model_version(name, 3, description="third")
    mv3 = remote.get_model_version(name, 3)
    assert mv3.tags == {"validated": "yes"} and mv3.description == "third"
    found = remote.search_model_versions(f"name = '{name}'")
    assert sorted(v.version for v in found) == [1, 2, 3]
    assert name in [m.name for m in remote.search_registered_models(f"name = '{name}'")]

    # promote without a gate: the standard stage move, on any MLflow server
    promoted = remote.promote(name, 3, stage="Staging", archive_existing_versions=False)
    assert promoted.current_stage == "Staging"
    if remote.test_server == "mltrack":  # type: ignore[attr-defined]
        # our server keeps the audit trail and rolls back
        assert remote.rollback_candidate(name, stage="Production").version == 1
        assert remote.rollback(name, stage="Production", comment="bad v2").version == 1
        assert remote.get_model_version(name, 1).current_stage == "Production"
        actions = [e.action for e in remote.get_audit_trail(name)]
        assert {"register", "transition", "promote", "rollback"} <= set(actions)
    else:
        # our audit trail / rollback are extensions a plain MLflow server lacks: a clear error
        with pytest.raises(NotSupportedByServer, match="not supported by this server"):
            remote.get_audit_trail(name)
        with pytest.raises(NotSupportedByServer):
            remote.rollback(name, stage="Production")

    remote.delete_model_version(name, 1)
    with pytest.raises(ResourceDoesNotExist):
        remote.get_model_version(name, 1)
    remote.rename_registered_model(name, name + "-b")
    assert remote.get_registered_model(name + "-b").name == name + "-b"
    remote.delete_registered_model(name + "-b")
    with pytest.raises(ResourceDoesNotExist):
        remote.get_registered_model(name + "-b")


def test_artifacts_round_trip(remote: MlflowClient, tmp_path: Path) -> None:
    source = tmp_path / "data.csv"
    source.write_text("a,b\n1,2\n")
    with mlflow.start_run() as run:
        mlflow.log_text("hello", "notes/hello.txt")
        mlflow.log_artifact(str(source), "inputs")
        mlflow.log_dict({"k": 1}, "config.json")
    run_id = run.info.run_id
    assert run.info.artifact_uri.startswith("mlflow-artifacts:")
    top = {f.path: f.is_dir for f in remote.list_artifacts(run_id)}
    assert top == {"notes": True, "inputs": True, "config.json": False}
    assert [f.path for f in remote.list_artifacts(run_id, "inputs")] == ["inputs/data.csv"]
    assert remote.read_artifact(run_id, "notes/hello.txt") == b"hello"
    local = remote.download_artifacts(run_id, "inputs", str(tmp_path / "down"))
    assert Path(local, "data.csv").read_text() == "a,b\n1,2\n"


def test_server_killed_and_restarted_mid_load_loses_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, mlflow_python: Path
) -> None:
    """SIGKILL the server while the writer streams log-batch calls, start it again on the same
    port and database: the client waits through the outage and every point lands once."""
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR", "0.5")  # retry more often, as long
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "12")
    root, port = tmp_path / "server", _free_port()
    url = f"http://127.0.0.1:{port}"
    procs = [_start_mlflow(root, port)]
    try:
        _wait_for_health(url, procs[0], root / "server.log", 120)
        client = MlflowClient(url)
        run_id = client.create_run(client.create_experiment("fault")).info.run_id
        total = 8_000
        progress = [0, -1]  # [steps logged, step at the kill]

        def kill_and_restart() -> None:
            time.sleep(1.5)
            progress[1] = progress[0]
            _stop(procs[0], signal.SIGKILL)
            procs.append(_start_mlflow(root, port))

        killer = threading.Thread(target=kill_and_restart)
        killer.start()
        for step in range(total):
            client.log_metric(run_id, "x", float(step), step=step, timestamp=1_000_000 + step)
            progress[0] = step
            if step % 1000 == 999:
                client.flush()  # blocks (retrying) while the server is down
        killer.join()
        client.set_terminated(run_id)

        history = client.get_metric_history(run_id, "x")
        assert [m.step for m in history] == list(range(total))  # none lost, none twice
        assert client.get_run(run_id).info.status == "FINISHED"
        assert 0 < progress[1] < total - 1  # killed mid-load
        assert len(procs) == 2 and procs[0].returncode is not None
    finally:
        for proc in procs:
            _stop(proc)


# -- local stand-in servers -------------------------------------------------------------------
CUT = -200  # an answer status meaning: the headers of a 200 go out, the body never does


class _Recorder:
    """A real HTTP server on 127.0.0.1 that records requests and answers from a script."""

    def __init__(self, answer: Callable[[str, str, int], tuple[int, dict[str, Any]]]) -> None:
        self.requests: list[tuple[str, str, dict[str, str]]] = []
        self.answer = answer
        recorder = self

        class Handler(BaseHTTPRequestHandler):
            def _handle(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                if length:
                    self.rfile.read(length)
                path = self.path.split("?", 1)[0]
                recorder.requests.append((self.command, path, dict(self.headers)))
                count = sum(1 for _, p, _ in recorder.requests if p == path)
                status, body = (
                    (200, {}) if path == "/health" else recorder.answer(self.command, path, count)
                )
                data = json.dumps(body).encode()
                self.send_response(200 if status == CUT else status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                if status == CUT:  # as a server killed mid-reply: headers, then nothing
                    self.wfile.flush()
                    self.close_connection = True
                    return
                self.wfile.write(data)

            do_GET = do_POST = do_PATCH = do_DELETE = _handle

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def calls(self, suffix: str) -> list[tuple[str, str, dict[str, str]]]:
        return [r for r in self.requests if r[1].endswith(suffix)]

    def __enter__(self) -> _Recorder:
        self.thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.server.shutdown()
        self.server.server_close()


_RUN = {
    "run": {
        "info": {
            "run_id": "r1",
            "experiment_id": "0",
            "status": "RUNNING",
            "lifecycle_stage": "active",
            "artifact_uri": "mlflow-artifacts:/0/r1/artifacts",
        },
        "data": {"params": [{"key": "a", "value": "1"}]},
    }
}


@pytest.fixture(autouse=False)
def fast_retries(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR", "0")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "4")
    for var in ("MLFLOW_TRACKING_TOKEN", "MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD"):
        monkeypatch.delenv(var, raising=False)


def test_bearer_token_wins_over_basic_auth(
    fast_retries: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    with _Recorder(lambda *_: (200, _RUN)) as server:
        monkeypatch.setenv("MLFLOW_TRACKING_USERNAME", "alice")
        monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", "s3cret")
        monkeypatch.setenv("MLFLOW_TRACKING_TOKEN", "tok-123")
        client = MlflowClient(server.url)
        assert client.get_run("r1").data.params == {"a": "1"}
        assert server.calls("/runs/get")[0][2]["Authorization"] == "Bearer tok-123"

        monkeypatch.delenv("MLFLOW_TRACKING_TOKEN")  # read at every call: no reopening needed
        client.get_run("r1")
        # "alice:s3cret" in base64
        assert server.calls("/runs/get")[1][2]["Authorization"] == "Basic YWxpY2U6czNjcmV0"

        monkeypatch.delenv("MLFLOW_TRACKING_USERNAME")
        client.get_run("r1")
        assert "Authorization" not in server.calls("/runs/get")[2][2]
        assert server.calls("/runs/get")[2][2]["User-Agent"].startswith("jupyter-mltrack/")


def test_refused_credentials_say_which_variables_to_set(fast_retries: None) -> None:
    with (
        _Recorder(lambda *_: (401, {})) as server,
        pytest.raises(MlflowException, match="MLFLOW_TRACKING_TOKEN") as info,
    ):
        MlflowClient(server.url).get_run("r1")
    assert info.value.error_code == "UNAUTHENTICATED"


def test_retries_503_then_succeeds(fast_retries: None) -> None:
    def answer(method: str, path: str, count: int) -> tuple[int, dict[str, Any]]:
        if count <= 2:
            return 503, {"error_code": "TEMPORARILY_UNAVAILABLE", "message": "busy"}
        return 200, _RUN

    with _Recorder(answer) as server:
        run = MlflowClient(server.url).get_run("r1")
    assert run.info.run_id == "r1"
    assert len(server.calls("/runs/get")) == 3


def test_log_batch_is_retried_but_a_create_is_not(fast_retries: None) -> None:
    def answer(method: str, path: str, count: int) -> tuple[int, dict[str, Any]]:
        if path.endswith("/runs/create"):
            return 500, {"error_code": "INTERNAL_ERROR", "message": "boom"}
        if path.endswith("/runs/log-batch") and count == 1:
            return 502, {}
        return 200, _RUN

    with _Recorder(answer) as server:
        store = RestStore(server.url)
        with pytest.raises(MlflowException, match="boom"):
            store.create_run("0", "me", 1, {}, None)
        assert len(server.calls("/runs/create")) == 1  # a create is never repeated after a 500
        store.log_batch("r1", [Metric("m", 1.0, 1, 0)], [], [])
        assert len(server.calls("/runs/log-batch")) == 2


def test_an_answer_cut_after_its_headers_is_retried_when_safe(fast_retries: None) -> None:
    """A server killed mid-reply: the headers arrive, the body does not. log-batch (idempotent)
    is sent again and succeeds; a create is not repeated and says why."""

    def answer(method: str, path: str, count: int) -> tuple[int, dict[str, Any]]:
        if path.endswith("/runs/get"):
            return 200, _RUN
        if count == 1:
            return CUT, {}
        return 200, {"experiment_id": "7"} if path.endswith("/experiments/create") else {}

    with _Recorder(answer) as server:
        store = RestStore(server.url)
        store.log_batch("r1", [Metric("m", 1.0, 1, 0)], [], [])
        assert len(server.calls("/runs/log-batch")) == 2
        with pytest.raises(MlflowException, match=r"cut its answer.*not repeated") as info:
            store.create_experiment("e")
        assert len(server.calls("/experiments/create")) == 1
    assert "Traceback" not in str(info.value)


def test_answers_cut_every_time_give_up_with_a_clear_error(fast_retries: None) -> None:
    def answer(method: str, path: str, count: int) -> tuple[int, dict[str, Any]]:
        return (200, _RUN) if path.endswith("/runs/get") else (CUT, {})

    with _Recorder(answer) as server:
        with pytest.raises(ServerUnreachable, match=r"cut its answer .* short 5 times"):
            RestStore(server.url).log_batch("r1", [Metric("m", 1.0, 1, 0)], [], [])
        assert len(server.calls("/runs/log-batch")) == 5  # 1 + MLFLOW_HTTP_REQUEST_MAX_RETRIES


class _CuttingArtifactServer:
    """A real HTTP server on 127.0.0.1 serving one artifact through the proxy's routes; the
    first ``cuts`` downloads stop halfway (as a server killed mid-download)."""

    def __init__(self, payload: bytes, cuts: int) -> None:
        self.payload, self.cuts, self.downloads = payload, cuts, 0
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                if self.path == "/health":
                    body = b"OK"
                elif "?" in self.path:  # a listing: the path names a file, not a folder
                    body = b'{"files": []}'
                else:
                    owner.downloads += 1
                    self.send_response(200)
                    self.send_header("Content-Length", str(len(owner.payload)))
                    self.end_headers()
                    if owner.downloads <= owner.cuts:
                        self.wfile.write(owner.payload[: len(owner.payload) // 2])
                        self.wfile.flush()
                        self.close_connection = True
                    else:
                        self.wfile.write(owner.payload)
                    return
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def repository(self) -> Any:
        from jupyter_mltrack.store.artifacts_http import PROXY_PREFIX, HttpArtifactRepository

        return HttpArtifactRepository(f"{self.url}{PROXY_PREFIX}/1/run/artifacts")

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def test_a_download_cut_short_starts_again_and_leaves_no_half_file(
    fast_retries: None, tmp_path: Path
) -> None:
    payload = os.urandom(200_000)
    server = _CuttingArtifactServer(payload, cuts=2)
    try:
        dst = tmp_path / "dst"
        local = server.repository().download_artifacts("model/weights.bin", str(dst))
        assert Path(local).read_bytes() == payload
        assert server.downloads == 3
        assert sorted(p.name for p in dst.iterdir()) == ["weights.bin"]
        server.downloads = 0
        assert server.repository().read_bytes("model/weights.bin") == payload
        assert server.downloads == 3
    finally:
        server.close()


def test_a_download_cut_every_time_is_a_clear_error_and_writes_nothing(
    fast_retries: None, tmp_path: Path
) -> None:
    server = _CuttingArtifactServer(os.urandom(50_000), cuts=100)
    try:
        with pytest.raises(ServerUnreachable, match=r"Downloading .* was cut short 5 times"):
            server.repository().download_artifacts("weights.bin", str(tmp_path / "dst"))
        assert list((tmp_path / "dst").iterdir()) == []
        assert server.downloads == 5
        with pytest.raises(ServerUnreachable, match=r"Downloading .* was cut short \("):
            b"".join(server.repository().iter_bytes("weights.bin"))  # streamed: not restarted
        assert server.downloads == 6
    finally:
        server.close()


def test_create_is_retried_after_429(fast_retries: None) -> None:
    def answer(method: str, path: str, count: int) -> tuple[int, dict[str, Any]]:
        if count == 1:
            return 429, {"error_code": "REQUEST_LIMIT_EXCEEDED", "message": "slow down"}
        return 200, {"experiment_id": "7"}

    with _Recorder(answer) as server:
        assert RestStore(server.url).create_experiment("e") == "7"
        assert len(server.calls("/experiments/create")) == 2  # refused unprocessed: safe


def test_gives_up_with_a_clear_error_after_the_retries(fast_retries: None) -> None:
    with _Recorder(lambda *_: (503, {})) as server:
        with pytest.raises(MlflowException, match="HTTP 503") as info:
            MlflowClient(server.url).get_run("r1")
        assert len(server.calls("/runs/get")) == 5  # 1 + MLFLOW_HTTP_REQUEST_MAX_RETRIES
    assert info.value.error_code == "TEMPORARILY_UNAVAILABLE"


def test_non_json_answer_is_a_clear_error(fast_retries: None) -> None:
    class Html(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            data = b"<html>login</html>"
            self.send_response(200)
            self.send_header("Content-Type", "text/html")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Html)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}"
        with pytest.raises(MlflowException, match="not JSON"):
            MlflowClient(url).get_run("r1")
    finally:
        server.shutdown()
        server.server_close()


def test_unreachable_server_fails_fast_and_clearly() -> None:
    url = f"http://127.0.0.1:{_free_port()}"
    mlflow.set_tracking_uri(url)
    started = time.monotonic()
    with pytest.raises(ServerUnreachable, match="Cannot reach the tracking server at URL") as info:
        mlflow.search_runs(search_all_experiments=True)
    assert time.monotonic() - started < 10
    assert url in str(info.value) and "mltrack server" in str(info.value)


def test_credentials_in_the_url_stay_out_of_messages() -> None:
    url = f"http://bob:hunter2@127.0.0.1:{_free_port()}"
    with pytest.raises(ServerUnreachable) as info:
        MlflowClient(url).get_run("r1")
    assert "hunter2" not in str(info.value)


@pytest.fixture
def https_server(tmp_path: Path) -> Iterator[str]:
    """A real HTTPS server with a self-signed certificate that answers runs/get."""
    if shutil.which("openssl") is None:
        pytest.fail("openssl is missing: run scripts/install-system-deps.sh (scripts/test.sh does)")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        [
            "openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
            "-subj", "/CN=127.0.0.1", "-keyout", str(key), "-out", str(cert),
        ],
        check=True,
        capture_output=True,
    )  # fmt: skip
    recorder = _Recorder(lambda *_: (200, _RUN))
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    recorder.server.socket = context.wrap_socket(recorder.server.socket, server_side=True)
    with recorder:
        yield f"https://127.0.0.1:{recorder.port}"


def test_insecure_tls_switch(
    https_server: str, fast_retries: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("MLFLOW_TRACKING_INSECURE_TLS", raising=False)
    with pytest.raises(ServerUnreachable, match="MLFLOW_TRACKING_INSECURE_TLS"):
        MlflowClient(https_server).get_run("r1")
    monkeypatch.setenv("MLFLOW_TRACKING_INSECURE_TLS", "true")
    assert MlflowClient(https_server).get_run("r1").info.run_id == "r1"


# -- URIs that need a vendor plugin -----------------------------------------------------------
@pytest.mark.parametrize(
    ("uri", "needle"),
    [
        ("databricks", "DATABRICKS_TOKEN"),
        ("databricks://my-profile", "DATABRICKS_TOKEN"),
        ("databricks-uc", "DATABRICKS_TOKEN"),
        (
            "azureml://westeurope.api.azureml.ms/mlflow/v1.0/subscriptions/s/resourceGroups/g"
            "/providers/Microsoft.MachineLearningServices/workspaces/w",
            "https://westeurope.api.azureml.ms/mlflow/v1.0/subscriptions/s",
        ),
    ],
)
def test_hosted_uris_explain_what_they_need(uri: str, needle: str) -> None:
    mlflow.set_tracking_uri(uri)
    with pytest.raises(InvalidParameterValue, match="MLFLOW_TRACKING_TOKEN") as info:
        mlflow.search_runs(search_all_experiments=True)
    assert needle in str(info.value)
    assert not Path("databricks").exists()  # never mistaken for a store folder


def test_databricks_host_is_named_when_set(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DATABRICKS_HOST", "adb-1.azuredatabricks.net")
    with pytest.raises(InvalidParameterValue, match=r"https://adb-1\.azuredatabricks\.net"):
        MlflowClient("databricks")


# -- pure helpers -----------------------------------------------------------------------------
def test_batches_respect_every_limit() -> None:
    metrics = [(1, "m", i, i, float(i), False) for i in range(2345)]
    params = [(f"p{i}", "v") for i in range(250)]
    tags = [(f"t{i}", "v") for i in range(120)]
    chunks = list(_batches(metrics, params, tags))
    for m, p, t in chunks:
        assert len(m) <= MAX_METRICS_PER_BATCH
        assert len(p) <= MAX_PARAMS_TAGS_PER_BATCH and len(t) <= MAX_PARAMS_TAGS_PER_BATCH
        assert 0 < len(m) + len(p) + len(t) <= MAX_ENTITIES_PER_BATCH
    assert [x for c in chunks for x in c[0]] == metrics
    assert [x for c in chunks for x in c[1]] == params
    assert [x for c in chunks for x in c[2]] == tags
    assert len(chunks) == 3
