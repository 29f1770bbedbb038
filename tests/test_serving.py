"""The scoring server: a real ``mltrack models serve`` process on a free loopback port, real HTTP
requests (every input format and error), startup failures, and serving from the notebook."""

from __future__ import annotations

import http.client
import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

SEED_BODY = '{"dataframe_records": [{"age": 35, "tenure": 24, "monthly_charge": 85.5}]}'
MAX_BODY = 4096


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def port_open(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def serve_cmd(uri: str, port: int, *extra: str) -> list[str]:
    return [
        sys.executable,
        "-m",
        "jupyter_mltrack.cli",
        "models",
        "serve",
        "-m",
        uri,
        "-p",
        str(port),
        *extra,
    ]


def start_server(
    cmd: list[str], port: int, env: dict[str, str], timeout: float = 60
) -> subprocess.Popen:
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"server exited: {proc.stderr.read()}")
        try:
            status, _, _ = request(port, "GET", "/ping")
            if status == 200:
                return proc
        except OSError:
            time.sleep(0.05)
    proc.kill()
    raise AssertionError("server did not answer /ping in time")


def stop_server(proc: subprocess.Popen) -> None:
    proc.terminate()
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def request(
    port: int,
    method: str,
    path: str,
    body: bytes | str | None = None,
    content_type: str | None = None,
) -> tuple[int, dict[str, str], bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        headers = {"Content-Type": content_type} if content_type else {}
        conn.request(method, path, body.encode() if isinstance(body, str) else body, headers)
        response = conn.getresponse()
        return response.status, dict(response.getheaders()), response.read()
    finally:
        conn.close()


def invoke(port: int, body: Any, content_type: str = "application/json") -> tuple[int, Any]:
    raw = body if isinstance(body, (str, bytes)) else json.dumps(body)
    status, _, data = request(port, "POST", "/invocations", raw, content_type)
    assert b"Traceback" not in data
    return status, json.loads(data)


def churn_data(n: int = 300) -> tuple[Any, Any]:
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(0)
    X = pd.DataFrame(
        {
            "age": rng.integers(18, 80, n),
            "tenure": rng.integers(0, 72, n),
            "monthly_charge": rng.uniform(20, 120, n),
        }
    )
    y = ((X.monthly_charge > 70) & (X.tenure < 36)).astype(int)
    return X, y


@pytest.fixture(scope="module")
def churn(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """A store with ChurnPredictor v1 in Production (a LogisticRegression on the seed's columns)."""
    from sklearn.linear_model import LogisticRegression

    import jupyter_mltrack as mlflow

    root = tmp_path_factory.mktemp("serving")
    store = str(root / "store")
    mlflow.set_tracking_uri(store)
    X, y = churn_data()
    model = LogisticRegression(max_iter=1000).fit(X, y)
    with mlflow.start_run():
        info = mlflow.sklearn.log_model(
            model, name="model", input_example=X.head(2), registered_model_name="ChurnPredictor"
        )
    mlflow.MlflowClient(store).transition_model_version_stage("ChurnPredictor", 1, "Production")
    mlflow.set_tracking_uri(None)
    env = {**os.environ, "MLTRACK_TRACKING_URI": store}
    return {
        "store": store,
        "env": env,
        "model": model,
        "X": X,
        "run_uri": info.model_uri,
        "root": root,
    }


@pytest.fixture(scope="module")
def server(churn: dict[str, Any]) -> Iterator[int]:
    """One server for the module: models:/ChurnPredictor/Production with a small body limit."""
    port = free_port()
    cmd = serve_cmd("models:/ChurnPredictor/Production", port, "--max-body-bytes", str(MAX_BODY))
    proc = start_server(cmd, port, churn["env"])
    yield port
    stop_server(proc)


def expected(churn: dict[str, Any], rows: list[dict[str, Any]]) -> list[int]:
    import pandas as pd

    return churn["model"].predict(pd.DataFrame(rows)).tolist()


ROWS = [
    {"age": 35, "tenure": 24, "monthly_charge": 85.5},
    {"age": 61, "tenure": 60, "monthly_charge": 20.25},
]


def test_the_seed_curl_call_is_answered(server: int, churn: dict[str, Any]) -> None:
    status, body = invoke(server, SEED_BODY)
    assert status == 200
    assert body == {"predictions": expected(churn, ROWS[:1])}


@pytest.mark.parametrize(
    ("payload", "content_type"),
    [
        ({"dataframe_records": ROWS}, "application/json"),
        (
            {
                "dataframe_split": {
                    "columns": ["age", "tenure", "monthly_charge"],
                    "data": [list(r.values()) for r in ROWS],
                }
            },
            "application/json",
        ),
        (
            {
                "dataframe_split": {
                    "index": [5, 6],
                    "columns": ["monthly_charge", "age", "tenure"],
                    "data": [[r["monthly_charge"], r["age"], r["tenure"]] for r in ROWS],
                }
            },
            "application/json",
        ),
        ({"instances": ROWS}, "application/json"),
        ({"inputs": [list(r.values()) for r in ROWS]}, "application/json"),
        ({"inputs": {k: [r[k] for r in ROWS] for k in ROWS[0]}}, "application/json"),
        ({"dataframe_records": ROWS, "params": {}}, "application/json; charset=utf-8"),
        ({"dataframe_records": ROWS}, "Application/JSON;charset=UTF-8"),
        ("age,tenure,monthly_charge\n35,24,85.5\n61,60,20.25\n", "text/csv"),
        ("age,tenure,monthly_charge\n35,24,85.5\n61,60,20.25\n", "text/csv; charset=utf-8"),
    ],
    ids=[
        "records",
        "split",
        "split-reordered",
        "instances",
        "inputs-rows",
        "inputs-columns",
        "json-charset",
        "json-case",
        "csv",
        "csv-charset",
    ],
)
def test_every_input_format(
    server: int, churn: dict[str, Any], payload: Any, content_type: str
) -> None:
    status, body = invoke(server, payload, content_type)
    assert status == 200, body
    assert body == {"predictions": expected(churn, ROWS)}


@pytest.mark.parametrize(
    ("payload", "content_type", "status", "code", "words"),
    [
        ('{"dataframe_records": [', "application/json", 400, "BAD_REQUEST", ["not valid JSON"]),
        ("[1, 2]", "application/json", 400, "BAD_REQUEST", ["JSON object"]),
        (
            '{"records": []}',
            "application/json",
            400,
            "BAD_REQUEST",
            ["'records'", "dataframe_split"],
        ),
        (
            '{"inputs": [[1]], "instances": [[1]]}',
            "application/json",
            400,
            "BAD_REQUEST",
            ["exactly one"],
        ),
        (
            '{"dataframe_records": [{"age": 35, "tenure": 24}]}',
            "application/json",
            400,
            "INVALID_PARAMETER_VALUE",
            ["missing", "monthly_charge"],
        ),
        (
            '{"dataframe_records": [{"age": "old", "tenure": 24, "monthly_charge": 85.5}]}',
            "application/json",
            400,
            "INVALID_PARAMETER_VALUE",
            ["age"],
        ),
        (
            '{"dataframe_records": [{"age": 35.5, "tenure": 24, "monthly_charge": 85.5}]}',
            "application/json",
            400,
            "INVALID_PARAMETER_VALUE",
            ["age", "fractional"],
        ),
        (
            '{"dataframe_records": 3}',
            "application/json",
            400,
            "BAD_REQUEST",
            ["list of row objects"],
        ),
        (
            '{"dataframe_split": {"columns": ["age"], "data": [[1, 2]]}}',
            "application/json",
            400,
            "BAD_REQUEST",
            ["dataframe_split"],
        ),
        ('{"inputs": [[1, 2, 3.5], [3]]}', "application/json", 400, "INVALID_PARAMETER_VALUE", []),
        ("", "text/csv", 400, "BAD_REQUEST", ["CSV"]),
        ("age,tenure\n1,2\n3,4,5,6\n", "text/csv", 400, "BAD_REQUEST", ["CSV"]),
        (SEED_BODY, "text/plain", 415, "BAD_REQUEST", ["text/plain"]),
        (SEED_BODY, None, 415, "BAD_REQUEST", ["Content-Type"]),
        (SEED_BODY, "application/json; format=pandas-split", 400, "BAD_REQUEST", ["format"]),
        (
            '{"dataframe_records": [' + ",".join([json.dumps(ROWS[0])] * 100) + "]}",
            "application/json",
            413,
            "BAD_REQUEST",
            ["limit", "4,096"],
        ),
    ],
    ids=[
        "bad-json",
        "not-object",
        "unknown-key",
        "two-keys",
        "missing-column",
        "text-for-number",
        "fraction-for-long",
        "records-not-list",
        "split-ragged",
        "inputs-ragged",
        "empty-csv",
        "bad-csv",
        "text-plain",
        "no-content-type",
        "format-param",
        "too-large",
    ],
)
def test_bad_requests_get_a_clear_json_error(
    server: int, payload: str, content_type: str | None, status: int, code: str, words: list[str]
) -> None:
    got, headers, raw = request(server, "POST", "/invocations", payload, content_type)
    assert got == status, raw
    assert headers["content-type"] == "application/json"
    body = json.loads(raw)
    assert set(body) == {"error_code", "message"}
    assert body["error_code"] == code
    for word in words:
        assert word in body["message"]
    assert "Traceback" not in body["message"] and 'File "' not in body["message"]


def test_the_limit_holds_for_chunked_bodies_too(server: int) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", server, timeout=10)
    chunks = iter([b'{"dataframe_records": [', b" " * MAX_BODY, b"]}"])
    conn.request(
        "POST", "/invocations", chunks, {"Content-Type": "application/json"}, encode_chunked=True
    )
    response = conn.getresponse()
    assert response.status == 413
    assert json.loads(response.read())["error_code"] == "BAD_REQUEST"
    conn.close()


def test_ping_health_version(server: int) -> None:
    from jupyter_mltrack import __version__

    assert request(server, "GET", "/ping")[0::2] == (200, b"\n")
    status, _, body = request(server, "GET", "/health")
    assert status == 200
    health = json.loads(body)
    assert health["status"] == "ok" and health["version"] == 1
    assert request(server, "GET", "/version")[0::2] == (200, __version__.encode())
    assert request(server, "GET", "/invocations")[0] == 405


def test_metadata(server: int, churn: dict[str, Any]) -> None:
    status, _, body = request(server, "GET", "/metadata")
    assert status == 200
    meta = json.loads(body)
    assert meta["name"] == "ChurnPredictor"
    assert meta["version"] == 1
    assert meta["stage"] == "Production"
    assert meta["alias"] is None
    assert meta["run_id"] == churn["run_uri"].split("/")[1]
    assert "sklearn" in meta["flavors"]
    assert [c["name"] for c in meta["signature"]["inputs"]] == ["age", "tenure", "monthly_charge"]
    assert meta["signature"]["outputs"]
    assert meta["input_example"]["dataframe_split"]["columns"] == [
        "age",
        "tenure",
        "monthly_charge",
    ]
    # the example is a valid request
    status, predictions = invoke(int(server), meta["input_example"])
    assert status == 200 and len(predictions["predictions"]) == 2


def test_runs_uri_and_path_are_served(churn: dict[str, Any]) -> None:
    """A runs:/ URI on another port; bound to 127.0.0.1, the server answers there."""
    port = free_port()
    proc = start_server(serve_cmd(churn["run_uri"], port), port, churn["env"])
    try:
        status, body = invoke(port, SEED_BODY)
        assert status == 200 and body == {"predictions": expected(churn, ROWS[:1])}
        meta = json.loads(request(port, "GET", "/metadata")[2])
        assert meta["name"] is None and meta["run_id"] == churn["run_uri"].split("/")[1]
    finally:
        stop_server(proc)


# -- startup failures -------------------------------------------------------------------------
def _fails(cmd: list[str], env: dict[str, str], port: int, words: list[str]) -> None:
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode != 0
    assert "Traceback" not in done.stderr
    for word in words:
        assert word in done.stderr
    assert not port_open(port) or words[0] == "in use"


def test_a_bad_uri_fails_before_the_port_opens(churn: dict[str, Any]) -> None:
    port = free_port()
    _fails(serve_cmd("models:/NoSuchModel/Production", port), churn["env"], port, ["NoSuchModel"])


def test_a_broken_model_fails_before_the_port_opens(churn: dict[str, Any], tmp_path: Path) -> None:
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "MLmodel").write_text("flavors: [not, a, mapping\n")
    port = free_port()
    _fails(serve_cmd(str(broken), port), churn["env"], port, ["Corrupt model metadata"])


def test_a_port_in_use_fails_with_a_message(churn: dict[str, Any]) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = subprocess.run(
            serve_cmd(churn["run_uri"], port),
            env=churn["env"],
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert done.returncode != 0
    assert "in use" in done.stderr and str(port) in done.stderr
    assert "Traceback" not in done.stderr


def test_env_manager_choices(churn: dict[str, Any]) -> None:
    from click.testing import CliRunner

    from jupyter_mltrack.cli import main

    result = CliRunner().invoke(
        main, ["models", "serve", "-m", churn["run_uri"], "--env-manager", "conda"]
    )
    assert result.exit_code != 0 and "not supported" in result.output
    help_text = CliRunner().invoke(main, ["models", "serve", "--help"]).output
    for option in (
        "--model-uri",
        "--port",
        "--host",
        "--workers",
        "--env-manager",
        "--watch",
        "--max-body-bytes",
    ):
        assert option in help_text


# -- from the notebook ------------------------------------------------------------------------
def test_serve_from_python_and_stop(
    churn: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    import jupyter_mltrack as mlflow

    mlflow.set_tracking_uri(churn["store"])
    handle = mlflow.serve("models:/ChurnPredictor/Production")
    try:
        out = capsys.readouterr().out
        assert handle.url in out and "curl -X POST" in out and "dataframe_split" in out
        assert handle.host == "127.0.0.1" and handle.running
        assert handle.url == f"http://127.0.0.1:{handle.port}"
        status, body = invoke(handle.port, SEED_BODY)
        assert status == 200 and body == {"predictions": expected(churn, ROWS[:1])}
        assert handle in mlflow.serving.running_servers()
        assert "ChurnPredictor v1" in repr(handle)
    finally:
        handle.stop()
    assert not handle.running
    assert not port_open(handle.port)
    assert handle not in mlflow.serving.running_servers()
    handle.stop()  # twice is fine


def test_the_curl_example_comes_from_the_signature_without_an_example(
    churn: dict[str, Any],
) -> None:
    from sklearn.linear_model import LogisticRegression

    import jupyter_mltrack as mlflow
    from jupyter_mltrack.models.signature import infer_signature
    from jupyter_mltrack.serving.app import create_app
    from jupyter_mltrack.serving.server import curl_example, example_request

    X, y = churn_data(50)
    mlflow.set_tracking_uri(churn["store"])
    with mlflow.start_run():
        info = mlflow.sklearn.log_model(
            LogisticRegression().fit(X, y), name="m", signature=infer_signature(X)
        )
    served = create_app(info.model_uri).state.slot.current
    request_body = example_request(served)
    assert request_body == {"dataframe_records": [{"age": 0, "tenure": 0, "monthly_charge": 0.0}]}
    assert '\'{"dataframe_records"' in curl_example("http://127.0.0.1:1", served)


def test_mltrack_serve_magic(ip: Any, churn: dict[str, Any]) -> None:
    ip.run_line_magic("mltrack", f"store {churn['store']}")
    handle = ip.run_line_magic("mltrack", "serve models:/ChurnPredictor/Production")
    try:
        assert handle.running
        assert invoke(handle.port, SEED_BODY)[0] == 200
    finally:
        ip.run_line_magic("mltrack", "serve --stop")
    assert not handle.running and not port_open(handle.port)
    from IPython.core.error import UsageError

    with pytest.raises(UsageError):
        ip.run_line_magic("mltrack", "serve")


# -- startup: the URI is resolved in a forked child while the server imports its stack ---------
_RESOLVE_IN_CHILD = """
import json, sys
from jupyter_mltrack.serving.early_resolve import EarlyResolution
resolving = EarlyResolution(sys.argv[1], None)
forked = bool(resolving._pid)
from jupyter_mltrack.serving.app import load_served_model
served = load_served_model(sys.argv[1], None, resolving.result())
print(json.dumps({"forked": forked, "path": served.path,
                  "version": served.version, "sqlalchemy": "sqlalchemy" in sys.modules}))
"""


def test_the_server_process_resolves_the_uri_without_opening_the_store(
    churn: dict[str, Any],
) -> None:
    """The store (and SQLAlchemy) are used by the forked child only; the serving process gets
    the same location as a plain resolution and never imports SQLAlchemy."""
    from jupyter_mltrack.models.uri import resolve_model_uri
    from jupyter_mltrack.tracking.client import Client

    uri = "models:/ChurnPredictor/Production"
    done = subprocess.run(
        [sys.executable, "-c", _RESOLVE_IN_CHILD, uri],
        env=churn["env"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout.strip().splitlines()[-1])
    expected_path = resolve_model_uri(uri, Client(churn["store"])).local_path
    assert report == {"forked": True, "path": expected_path, "version": 1, "sqlalchemy": False}


_RESOLVE_ERRORS_IN_CHILD = """
import json, sys
from jupyter_mltrack.exceptions import MlflowException
from jupyter_mltrack.serving.early_resolve import EarlyResolution
for uri in sys.argv[1:]:
    resolving = EarlyResolution(uri, None)
    forked = bool(resolving._pid)
    try:
        resolving.result()
        print(json.dumps([uri, forked, None, None]))
    except MlflowException as exc:
        print(json.dumps([uri, forked, type(exc).__name__, exc.message]))
"""


def test_early_resolution_raises_what_a_plain_resolution_raises(churn: dict[str, Any]) -> None:
    from jupyter_mltrack.exceptions import MlflowException
    from jupyter_mltrack.models.uri import resolve_model_uri
    from jupyter_mltrack.tracking.client import Client

    uris = ["runs:/0123456789abcdef/model", "models:/NoSuchModel/Production", "/no/such/dir"]
    done = subprocess.run(
        [sys.executable, "-c", _RESOLVE_ERRORS_IN_CHILD, *uris],
        env=churn["env"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    reports = [json.loads(line) for line in done.stdout.strip().splitlines()]
    for uri, (reported_uri, forked, kind, message) in zip(uris, reports, strict=True):
        with pytest.raises(MlflowException) as plain:
            resolve_model_uri(uri, Client(churn["store"]))
        assert (reported_uri, kind, message) == (
            uri,
            type(plain.value).__name__,
            plain.value.message,
        )
        assert forked  # a fresh single-threaded process resolves in a forked child


def test_early_resolution_does_not_fork_with_threads_running(churn: dict[str, Any]) -> None:
    import threading

    from jupyter_mltrack.serving.early_resolve import EarlyResolution

    stop = threading.Event()
    worker = threading.Thread(target=stop.wait)
    worker.start()
    try:
        resolving = EarlyResolution(churn["run_uri"], churn["store"])
        assert resolving._pid == 0  # forking a threaded process is unsafe: resolved in process
        assert resolving.result().local_path.endswith("model")
    finally:
        stop.set()
        worker.join()
