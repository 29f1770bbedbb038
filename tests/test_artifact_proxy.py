"""The artifact proxy (``/api/2.0/mlflow-artifacts/artifacts``) and the logged-model routes on a
real server process (uvicorn on a free loopback port): upload, download, list, delete, paths
that escape refused with 400, a 50 MB upload streamed, our client through the proxy, and the
real MLflow client's ``log_model`` / ``load_model`` against us."""

from __future__ import annotations

import hashlib
import http.client
import json
import os
import socket
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

ROOT = Path(__file__).resolve().parent.parent
API = "/api/2.0/mlflow-artifacts/artifacts"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Server:
    def __init__(self, proc: subprocess.Popen[bytes], port: int, destination: Path) -> None:
        self.proc = proc
        self.port = port
        self.url = f"http://127.0.0.1:{port}"
        self.destination = destination

    def peak_rss_kb(self) -> int:
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
        return 0

    def raw(self, method: str, path: str, body: bytes | None = None) -> tuple[int, Any]:
        """A request sent as written (no client-side normalization of '..' or '//')."""
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        try:
            conn.request(method, path, body=body)
            response = conn.getresponse()
            data = response.read()
        finally:
            conn.close()
        try:
            return response.status, json.loads(data)
        except ValueError:
            return response.status, data


def start_server(store: str, destination: str | Path, log: Path, env: dict | None = None):
    port = _free_port()
    code = textwrap.dedent(
        f"""
        import uvicorn
        from jupyter_mltrack.tracking_server import create_app
        app = create_app({store!r}, artifacts_destination={str(destination)!r})
        uvicorn.run(app, host="127.0.0.1", port={port}, log_level="warning")
        """
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", code],
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
        env={**os.environ, **(env or {})},
    )
    deadline = time.time() + 60
    while time.time() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited: {log.read_text()[-2000:]}")
        try:
            if requests.get(f"http://127.0.0.1:{port}/health", timeout=1).ok:
                return proc, port
        except requests.ConnectionError:
            time.sleep(0.2)
    proc.kill()
    raise RuntimeError(f"server did not start: {log.read_text()[-2000:]}")


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Server]:
    destination = tmp_path / "served-artifacts"
    destination.mkdir()
    proc, port = start_server(
        f"sqlite:///{tmp_path / 'server.db'}", destination, tmp_path / "server.log"
    )
    try:
        yield Server(proc, port, destination)
    finally:
        proc.terminate()
        proc.wait(timeout=20)


def test_upload_download_list_delete(server):
    url = f"{server.url}{API}"
    assert requests.put(f"{url}/1/run/artifacts/notes/a.txt", data=b"hello").status_code == 200
    assert requests.put(f"{url}/1/run/artifacts/b.bin", data=b"\x00" * 10).json() == {}
    assert (server.destination / "1/run/artifacts/notes/a.txt").read_bytes() == b"hello"
    got = requests.get(f"{url}/1/run/artifacts/notes/a.txt")
    assert got.status_code == 200 and got.content == b"hello"
    listing = requests.get(url, params={"path": "1/run/artifacts"}).json()
    assert listing == {
        "files": [
            {"path": "notes", "is_dir": True},
            {"path": "b.bin", "is_dir": False, "file_size": 10},
        ]
    }
    assert requests.get(url, params={"path": "1/nothing"}).json() == {}
    missing = requests.get(f"{url}/1/run/artifacts/none.txt")
    assert missing.status_code == 404
    assert missing.json()["error_code"] == "RESOURCE_DOES_NOT_EXIST"
    assert requests.delete(f"{url}/1/run/artifacts/notes").status_code == 200
    assert not (server.destination / "1/run/artifacts/notes").exists()
    assert requests.get(url, params={"path": "1/run/artifacts"}).json()["files"] == [
        {"path": "b.bin", "is_dir": False, "file_size": 10}
    ]


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("PUT", f"{API}/a/../../escaped.txt"),
        ("PUT", f"{API}/a/%2E%2E/%2E%2E/escaped.txt"),
        ("PUT", f"{API}//tmp/escaped.txt"),
        ("PUT", f"{API}/a\\..\\escaped.txt"),
        ("GET", f"{API}/../../etc/passwd"),
        ("GET", f"{API}?path=../.."),
        ("GET", f"{API}?path=/etc"),
        ("DELETE", f"{API}/x/../.."),
        ("POST", "/api/2.0/mlflow-artifacts/mpu/create/../x"),
    ],
)
def test_escaping_paths_are_refused(server, method, path):
    status, body = server.raw(method, path, b"x" if method == "PUT" else None)
    assert status == 400, body
    assert body["error_code"] == "INVALID_PARAMETER_VALUE"
    assert "Invalid path" in body["message"]
    assert not (server.destination.parent / "escaped.txt").exists()


def test_symlink_out_of_the_destination_is_refused(server, tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.txt").write_text("secret")
    (server.destination / "link").symlink_to(outside)
    for method, body in (("GET", None), ("PUT", b"overwrite")):
        status, answer = server.raw(method, f"{API}/link/secret.txt", body)
        assert status == 400 and answer["error_code"] == "INVALID_PARAMETER_VALUE"
    assert (outside / "secret.txt").read_text() == "secret"


def test_multipart_upload_is_declined_the_way_mlflow_clients_expect(server):
    status, body = server.raw("POST", "/api/2.0/mlflow-artifacts/mpu/create/1/x.bin", b"{}")
    assert status == 501
    assert body["message"].startswith(
        "Multipart upload is not supported for the current artifact repository"
    )


def test_50_mb_upload_is_streamed(server, tmp_path):
    size = 50 * 1024 * 1024
    chunk = os.urandom(1024 * 1024)
    digest = hashlib.sha256()

    def body() -> Iterator[bytes]:
        for _ in range(size // len(chunk)):
            digest.update(chunk)
            yield chunk

    before = server.peak_rss_kb()
    answer = requests.put(f"{server.url}{API}/big/blob.bin", data=body())  # chunked
    assert answer.status_code == 200, answer.text
    stored = server.destination / "big/blob.bin"
    assert stored.stat().st_size == size
    growth_mb = (server.peak_rss_kb() - before) / 1024
    assert growth_mb < 25, f"server memory grew by {growth_mb:.0f} MB for a 50 MB upload"
    back = hashlib.sha256()
    with requests.get(f"{server.url}{API}/big/blob.bin", stream=True) as got:
        for part in got.iter_content(1 << 20):
            back.update(part)
    assert back.hexdigest() == digest.hexdigest()
    assert not list(stored.parent.glob(".tmp-*"))  # no temp file left behind


def test_our_client_through_the_proxy(server, tmp_path):
    """``mlflow-artifacts:`` locations resolve against the tracking URI (the server)."""
    from jupyter_mltrack.store.artifacts import get_artifact_repository

    repo = get_artifact_repository("mlflow-artifacts:/5/run/artifacts", server.url)
    src = tmp_path / "src"
    (src / "sub").mkdir(parents=True)
    (src / "a.txt").write_text("A")
    (src / "sub" / "b.txt").write_text("B")
    repo.log_artifacts(str(src), "tree")
    repo.write_bytes(b"12345", "data/x.bin")
    assert [f.path for f in repo.list_artifacts()] == ["data", "tree"]
    assert [f.path for f in repo.list_artifacts("tree")] == ["tree/sub", "tree/a.txt"]
    assert repo.list_artifacts("data/x.bin") == []
    assert repo.read_bytes("data/x.bin", 3) == b"123"
    local = repo.download_artifacts("tree", str(tmp_path / "dl"))
    assert Path(local, "sub", "b.txt").read_text() == "B"
    assert Path(repo.download_artifacts("data/x.bin")).read_bytes() == b"12345"
    same = get_artifact_repository(f"{server.url}{API}/5/run/artifacts")
    assert same.read_bytes("tree/a.txt") == b"A"
    repo.delete_artifacts("tree")
    assert [f.path for f in repo.list_artifacts()] == ["data"]


def test_logged_model_routes(server):
    base = f"{server.url}/api/2.0/mlflow"
    exp = requests.post(f"{base}/experiments/create", json={"name": "lm"}).json()
    run = requests.post(f"{base}/runs/create", json={"experiment_id": exp["experiment_id"]})
    run_id = run.json()["run"]["info"]["run_id"]
    created = requests.post(
        f"{base}/logged-models",
        json={
            "experiment_id": exp["experiment_id"],
            "name": "model",
            "source_run_id": run_id,
            "params": [{"key": "a", "value": "1"}],
            "tags": [{"key": "mlflow.user", "value": "me"}],
        },
    )
    assert created.status_code == 200, created.text
    info = created.json()["model"]["info"]
    model_id = info["model_id"]
    assert info["status"] == "LOGGED_MODEL_PENDING"
    assert info["artifact_uri"] == (
        f"mlflow-artifacts:/{exp['experiment_id']}/models/{model_id}/artifacts"
    )
    assert created.json()["model"]["data"]["params"] == [{"key": "a", "value": "1"}]
    final = requests.patch(
        f"{base}/logged-models/{model_id}",
        json={"model_id": model_id, "status": "LOGGED_MODEL_READY"},
    )
    assert final.json()["model"]["info"]["status"] == "LOGGED_MODEL_READY"
    assert requests.post(
        f"{base}/runs/outputs", json={"run_id": run_id, "models": [{"model_id": model_id}]}
    ).ok
    tags = requests.patch(
        f"{base}/logged-models/{model_id}/tags", json={"tags": [{"key": "k", "value": "v"}]}
    )
    assert tags.ok
    assert requests.delete(f"{base}/logged-models/{model_id}/tags/k").ok
    found = requests.post(
        f"{base}/logged-models/search",
        json={"experiment_ids": [exp["experiment_id"]], "filter": "name = 'model'"},
    ).json()
    assert [m["info"]["model_id"] for m in found["models"]] == [model_id]
    missing = requests.get(f"{base}/logged-models/m-nope")
    assert missing.status_code == 404
    assert missing.json()["error_code"] == "RESOURCE_DOES_NOT_EXIST"
    assert requests.delete(f"{base}/logged-models/{model_id}").ok
    assert requests.get(f"{base}/logged-models/{model_id}").status_code == 404
    again = requests.get(f"{base}/logged-models/{model_id}", params={"allow_deleted": "true"})
    assert again.ok


MLFLOW_SNIPPET = """
import sys
import mlflow, mlflow.sklearn, mlflow.pyfunc
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression
mlflow.set_tracking_uri(sys.argv[1])
mlflow.set_experiment("iris")
X, y = load_iris(return_X_y=True)
model = LogisticRegression(max_iter=300).fit(X, y)
with mlflow.start_run() as run:
    mlflow.log_param("max_iter", 300)
    info = mlflow.sklearn.log_model(model, name="model", registered_model_name="iris",
                                    input_example=X[:2])
loaded = mlflow.pyfunc.load_model("models:/iris/1")
assert list(loaded.predict(X[:3])) == list(model.predict(X[:3]))
again = mlflow.sklearn.load_model(f"runs:/{run.info.run_id}/model")
assert list(again.predict(X[:3])) == list(model.predict(X[:3]))
by_id = mlflow.sklearn.load_model(info.model_uri)
client = mlflow.MlflowClient()
assert client.get_logged_model(info.model_id).status.name == "READY"
outputs = client.get_run(run.info.run_id).outputs.model_outputs
print("OK", info.model_id, run.info.run_id, len(outputs))
"""


def test_real_mlflow_client_log_model_and_load_model(server, tmp_path, mlflow_python):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "MLTRACK_"))}
    done = subprocess.run(
        [str(mlflow_python), "-c", MLFLOW_SNIPPET, server.url],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-4000:]
    model_id, _run_id, n_outputs = done.stdout.split("OK", 1)[1].split()
    print("run outputs seen by MLflow:", n_outputs)
    # The files are in the server's destination, under the logged model's own folder.
    stored = list(server.destination.glob(f"*/models/{model_id}/artifacts/MLmodel"))
    assert stored, list(server.destination.rglob("*"))
    # Our client loads the same model by the registry and by the run.
    import jupyter_mltrack as mlflow

    mlflow.set_tracking_uri(server.url)
    loaded = mlflow.pyfunc.load_model("models:/iris/1")
    assert len(loaded.predict([[5.1, 3.5, 1.4, 0.2]])) == 1
