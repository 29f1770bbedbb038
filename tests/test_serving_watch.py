"""Reload on promotion: ``serve --watch`` follows a stage or alias without failing a request."""

from __future__ import annotations

import http.client
import json
import os
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from tests.test_serving import free_port, request, serve_cmd, start_server, stop_server

BODY = json.dumps({"dataframe_records": [{"x": 1.0, "y": 2.0}]})


def _log_constant(mlflow: Any, value: int, name: str = "Watched") -> int:
    """Register a DummyClassifier that always predicts ``value``; returns its version."""
    import pandas as pd
    from sklearn.dummy import DummyClassifier

    X = pd.DataFrame({"x": [0.0, 1.0, 2.0], "y": [1.0, 0.0, 1.0]})
    model = DummyClassifier(strategy="constant", constant=value).fit(X, [0, 1, value])
    with mlflow.start_run():
        info = mlflow.sklearn.log_model(
            model, name="model", input_example=X.head(1), registered_model_name=name
        )
    return int(info.registered_model_version)


@pytest.fixture
def store(tmp_path: Path) -> Any:
    import jupyter_mltrack as mlflow

    uri = str(tmp_path / "store")
    mlflow.set_tracking_uri(uri)
    return uri


def test_promotion_reloads_under_concurrent_requests(store: str, tmp_path: Path) -> None:
    import jupyter_mltrack as mlflow

    client = mlflow.MlflowClient(store)
    v1 = _log_constant(mlflow, 0)
    client.transition_model_version_stage("Watched", v1, "Production")
    v2 = _log_constant(mlflow, 1)

    port = free_port()
    env = {**os.environ, "MLTRACK_TRACKING_URI": store}
    cmd = serve_cmd("models:/Watched/Production", port, "--watch", "--poll-interval", "0.2")
    proc = start_server(cmd, port, env)
    results: list[tuple[int, Any]] = []
    stop = threading.Event()

    def hammer() -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        deadline = time.monotonic() + 30  # bounded, whatever happens
        while not stop.is_set() and time.monotonic() < deadline:
            try:
                conn.request("POST", "/invocations", BODY, {"Content-Type": "application/json"})
                response = conn.getresponse()
                results.append((response.status, json.loads(response.read())))
            except Exception as exc:  # a dropped request is a failure too
                results.append((0, repr(exc)))
                conn.close()
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        conn.close()

    threads = [threading.Thread(target=hammer) for _ in range(3)]
    try:
        for thread in threads:
            thread.start()
        time.sleep(0.5)
        client.transition_model_version_stage(
            "Watched", v2, "Production", archive_existing_versions=True
        )
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            meta = json.loads(request(port, "GET", "/metadata")[2])
            if meta["version"] == v2:
                break
            time.sleep(0.05)
        time.sleep(0.5)  # keep hammering the new model a little
        stop.set()
        for thread in threads:
            thread.join(30)

        assert meta["version"] == v2 and meta["stage"] == "Production"
        failures = [r for r in results if r[0] != 200]
        assert not failures, failures[:3]
        predictions = [r[1]["predictions"][0] for r in results]
        assert predictions[0] == 0 and predictions[-1] == 1
        assert set(predictions) == {0, 1}
        assert len(results) > 50

        # a version that cannot load is skipped: the old one keeps serving, /health says why
        broken = tmp_path / "broken"
        broken.mkdir()
        (broken / "MLmodel").write_text("flavors: {}\n")
        v3 = client.create_model_version("Watched", str(broken)).version
        client.transition_model_version_stage(
            "Watched", v3, "Production", archive_existing_versions=True
        )
        deadline = time.monotonic() + 20
        health: dict[str, Any] = {}
        while time.monotonic() < deadline:
            health = json.loads(request(port, "GET", "/health")[2])
            if health["last_reload_error"]:
                break
            time.sleep(0.05)
        assert health["last_reload_error"].startswith(f"v{v3}:")
        assert health["version"] == v2
        status, _, body = request(port, "POST", "/invocations", BODY, "application/json")
        assert status == 200 and json.loads(body) == {"predictions": [1]}
    finally:
        stop.set()
        stop_server(proc)


def test_alias_watch_swaps_in_process(store: str) -> None:
    import jupyter_mltrack as mlflow
    from jupyter_mltrack.serving.app import create_app

    client = mlflow.MlflowClient(store)
    v1 = _log_constant(mlflow, 0, "Aliased")
    v2 = _log_constant(mlflow, 1, "Aliased")
    client.set_registered_model_alias("Aliased", "champion", v1)
    app = create_app("models:/Aliased@champion", watch=True, poll_interval=60)
    slot, watcher = app.state.slot, app.state.watcher
    first = slot.current
    assert (first.version, first.alias) == (v1, "champion")
    assert watcher.check() is False  # nothing moved

    client.set_registered_model_alias("Aliased", "champion", v2)
    assert watcher.check() is True
    assert slot.current.version == v2 and slot.current.alias == "champion"
    assert json.loads(slot.current.metadata_body)["version"] == v2
    # the model an in-flight request took is untouched by the swap
    import pandas as pd

    assert first.predict(pd.DataFrame({"x": [1.0], "y": [2.0]}), None).tolist() == [0]

    client.delete_registered_model_alias("Aliased", "champion")
    assert watcher.check() is False  # the alias points nowhere: keep serving v2
    assert slot.current.version == v2


@pytest.mark.parametrize("uri", ["models:/Fixed/1", "models:/Fixed/latest"])
def test_watch_needs_a_stage_or_alias(store: str, uri: str) -> None:
    import jupyter_mltrack as mlflow
    from jupyter_mltrack.exceptions import InvalidParameterValue
    from jupyter_mltrack.serving.app import create_app

    _log_constant(mlflow, 0, "Fixed")
    with pytest.raises(InvalidParameterValue, match="stage or an alias"):
        create_app(uri, watch=True)
