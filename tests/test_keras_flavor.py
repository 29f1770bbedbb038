"""The Keras 3 flavor on the PyTorch backend: save/log/load, pyfunc, a fresh process without
KERAS_BACKEND, a real scoring server, and bad inputs. Tiny Dense models on numpy data."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import keras
import numpy as np
import pandas as pd
import pytest
import yaml

import jupyter_mltrack as mlflow
from jupyter_mltrack.exceptions import InvalidModelError, InvalidParameterValue
from jupyter_mltrack.models.signature import infer_signature
from tests.test_serving import free_port, invoke, request, serve_cmd, stop_server

COLUMNS = ["a", "b", "c", "d"]


def make_data(rows: int = 64) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    X = rng.normal(size=(rows, 4)).astype("float32")
    y = (X @ np.array([1.0, -2.0, 0.5, 3.0], dtype="float32")).astype("float32")
    return X, y


def make_model(lr: float = 0.01) -> Any:
    keras.utils.set_random_seed(0)
    model = keras.Sequential(
        [keras.Input((4,)), keras.layers.Dense(8, activation="relu"), keras.layers.Dense(1)]
    )
    model.compile(optimizer=keras.optimizers.Adam(lr), loss="mse", metrics=["mae"])
    return model


@pytest.fixture(scope="module")
def trained() -> dict[str, Any]:
    X, y = make_data()
    model = make_model()
    model.fit(X, y, epochs=2, batch_size=16, verbose=0)
    return {"model": model, "X": X, "y": y, "expected": model.predict(X, verbose=0)}


@pytest.fixture(scope="module")
def logged(trained: dict[str, Any], tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """One store with the model logged three ways (no signature, columns, tensors)."""
    store = str(tmp_path_factory.mktemp("keras-store") / "store")
    mlflow.set_tracking_uri(store)
    model, X = trained["model"], trained["X"]
    frame = pd.DataFrame(X, columns=COLUMNS)
    with mlflow.start_run() as run:
        plain = mlflow.keras.log_model(model, name="plain")
        columns = mlflow.keras.log_model(model, name="columns", input_example=frame.head(3))
        tensors = mlflow.keras.log_model(
            model, name="tensors", signature=infer_signature(X, trained["expected"])
        )
    mlflow.set_tracking_uri(None)
    return {
        "store": store,
        "run_id": run.info.run_id,
        "plain": plain.model_uri,
        "columns": columns.model_uri,
        "tensors": tensors.model_uri,
    }


@pytest.fixture
def on_store(logged: dict[str, Any]) -> dict[str, Any]:
    mlflow.set_tracking_uri(logged["store"])
    return logged


def env_without_backend(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "KERAS_BACKEND"}
    return {**env, **extra}


@pytest.fixture(scope="module")
def server(logged: dict[str, Any]) -> Iterator[tuple[int, subprocess.Popen]]:
    """A real ``mltrack models serve`` process for the tensor-signature model, started without
    KERAS_BACKEND (the recorded backend is used). Waiting for it is left to the test, so the
    fresh-process test runs while it starts."""
    port = free_port()
    env = env_without_backend(MLTRACK_TRACKING_URI=logged["store"])
    proc = subprocess.Popen(
        serve_cmd(logged["tensors"], port),
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    yield port, proc
    stop_server(proc)


def wait_until_serving(port: int, proc: subprocess.Popen, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"server exited: {proc.stderr.read()[-3000:]}")
        try:
            if request(port, "GET", "/ping")[0] == 200:
                return
        except OSError:
            time.sleep(0.1)
    raise AssertionError("server did not answer /ping in time")


# -- save and load ----------------------------------------------------------------------------------
def test_save_model_records_backend_and_pins_requirements(trained, tmp_path):
    path = tmp_path / "model"
    mlflow.keras.save_model(trained["model"], path, metadata={"owner": "ana"})
    meta = yaml.safe_load((path / "MLmodel").read_text())
    assert meta["flavors"]["keras"] == {
        "data": "data",
        "keras_backend": "torch",
        "keras_version": keras.__version__,
        "save_exported_model": False,
    }
    assert meta["flavors"]["python_function"]["loader_module"] == "jupyter_mltrack.keras"
    assert meta["metadata"] == {"owner": "ana"}
    assert (path / "data" / "model.keras").is_file()
    assert (path / "data" / "keras_module.txt").read_text() == "keras"
    import torch

    requirements = (path / "requirements.txt").read_text().split()
    assert f"keras=={keras.__version__}" in requirements
    assert f"torch=={torch.__version__.split('+')[0]}" in requirements  # no +cpu local label
    assert mlflow.keras.get_default_pip_requirements() == [
        f"keras=={keras.__version__}",
        f"torch=={torch.__version__.split('+')[0]}",
    ]
    loaded = mlflow.keras.load_model(str(path))
    assert isinstance(loaded, keras.Model)
    np.testing.assert_allclose(loaded.predict(trained["X"], verbose=0), trained["expected"])


def test_extra_requirements_and_load_model_kwargs(trained, tmp_path):
    path = tmp_path / "model"
    mlflow.keras.save_model(
        trained["model"],
        path,
        extra_pip_requirements=["pandas>=2"],
        save_model_kwargs={"save_format": "keras"},
    )
    assert "pandas>=2" in (path / "requirements.txt").read_text().split()
    loaded = mlflow.keras.load_model(str(path), load_model_kwargs={"compile": False})
    assert not loaded.compiled  # compile=False reached keras.saving.load_model
    np.testing.assert_allclose(loaded.predict(trained["X"], verbose=0), trained["expected"])


def test_logged_model_loads_by_run_uri_with_equal_predictions(trained, on_store):
    loaded = mlflow.keras.load_model(on_store["plain"])
    np.testing.assert_allclose(loaded.predict(trained["X"], verbose=0), trained["expected"])
    run = mlflow.get_run(on_store["run_id"])
    assert {"plain", "columns", "tensors"} <= {
        a.path for a in mlflow.MlflowClient().list_artifacts(run.info.run_id)
    }


# -- pyfunc ---------------------------------------------------------------------------------------------
def test_pyfunc_dataframe_in_dataframe_out_and_ndarray_in_ndarray_out(trained, on_store):
    X, expected = trained["X"], trained["expected"]
    pyfunc = mlflow.pyfunc.load_model(on_store["plain"])
    frame = pd.DataFrame(X, columns=COLUMNS, index=range(100, 100 + len(X)))
    out = pyfunc.predict(frame)
    assert isinstance(out, pd.DataFrame) and list(out.index) == list(frame.index)
    np.testing.assert_allclose(out.to_numpy(), expected, rtol=1e-6)
    array_out = pyfunc.predict(X)
    assert isinstance(array_out, np.ndarray)
    np.testing.assert_allclose(array_out, expected, rtol=1e-6)


def test_pyfunc_enforces_the_signature(trained, on_store):
    X, expected = trained["X"], trained["expected"]
    by_columns = mlflow.pyfunc.load_model(on_store["columns"])
    frame = pd.DataFrame(X, columns=COLUMNS)
    out = by_columns.predict(frame[["d", "c", "b", "a"]])  # reordered to the signature's order
    assert isinstance(out, pd.DataFrame)
    np.testing.assert_allclose(out.to_numpy(), expected, rtol=1e-6)
    with pytest.raises(InvalidParameterValue, match=r"missing 1 column.*'d'"):
        by_columns.predict(frame[["a", "b", "c"]])
    by_tensor = mlflow.pyfunc.load_model(on_store["tensors"])
    # a tensor signature turns a DataFrame into an array before the model sees it (as MLflow)
    np.testing.assert_allclose(by_tensor.predict(frame), expected, rtol=1e-6)
    np.testing.assert_allclose(by_tensor.predict(X.astype("float64")), expected, rtol=1e-6)
    with pytest.raises(InvalidParameterValue, match=r"Shape mismatch.*\[-1, 4\].*\[64, 3\]"):
        by_tensor.predict(X[:, :3])


# -- a fresh process and a real server ------------------------------------------------------------------
FRESH = """
import json, os, sys
import numpy as np
import jupyter_mltrack as mlflow
import jupyter_mltrack.keras
mlflow.keras.autolog()
report = {"keras_after_autolog": "keras" in sys.modules, "backend_env": os.environ.get("KERAS_BACKEND")}
X = np.load(sys.argv[2])
model = mlflow.keras.load_model(sys.argv[1])
import keras
report["backend"] = keras.backend.backend()
report["tensorflow"] = "tensorflow" in sys.modules
report["fit_patched"] = "fit" in keras.Model.__dict__
report["predictions"] = model.predict(X, verbose=0).tolist()
report["pyfunc"] = mlflow.pyfunc.load_model(sys.argv[1]).predict(X).tolist()
print(json.dumps(report))
"""


def test_a_fresh_process_without_keras_backend_loads_with_the_recorded_one(
    trained, on_store, server, tmp_path
):
    """No KERAS_BACKEND (keras would pick TensorFlow, which is not installed): the flavor sets
    the recorded backend before keras is imported. Enabling autolog there imports nothing and
    patches fit once the load imports keras."""
    np.save(tmp_path / "X.npy", trained["X"][:5])
    done = subprocess.run(
        [sys.executable, "-c", FRESH, on_store["plain"], str(tmp_path / "X.npy")],
        env=env_without_backend(MLTRACK_TRACKING_URI=on_store["store"]),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert report["keras_after_autolog"] is False and report["backend_env"] is None
    assert report["backend"] == "torch" and report["tensorflow"] is False
    assert report["fit_patched"] is True
    np.testing.assert_allclose(report["predictions"], trained["expected"][:5], rtol=1e-6)
    np.testing.assert_allclose(report["pyfunc"], trained["expected"][:5], rtol=1e-6)


def test_served_model_answers_like_the_original(trained, server):
    port, proc = server
    wait_until_serving(port, proc)
    X, expected = trained["X"][:3], trained["expected"][:3]
    for body in (
        {"inputs": X.tolist()},
        {"instances": X.tolist()},
        {"dataframe_split": {"columns": COLUMNS, "data": X.tolist()}},
    ):
        status, answer = invoke(port, body)
        assert status == 200, answer
        np.testing.assert_allclose(answer["predictions"], expected, rtol=1e-5)
    status, answer = invoke(port, {"inputs": X[:, :3].tolist()})
    assert status == 400 and "Shape mismatch" in answer["message"]


# -- bad inputs -----------------------------------------------------------------------------------------
def test_not_a_keras_model_is_a_clear_error_and_starts_no_run(tmp_path):
    from sklearn.linear_model import LinearRegression

    X, y = make_data()
    mlflow.set_tracking_uri(str(tmp_path / "store"))
    with pytest.raises(InvalidParameterValue, match=r"Keras 3 models.*LinearRegression"):
        mlflow.keras.save_model(LinearRegression().fit(X, y), tmp_path / "m")
    with pytest.raises(InvalidParameterValue, match=r"got builtins.str"):
        mlflow.keras.log_model("model.keras", name="model")
    assert mlflow.active_run() is None and not (tmp_path / "m").exists()
    assert mlflow.search_runs(output_format="list") == []


def test_unknown_save_format_and_bad_save_arguments(trained, tmp_path):
    model = trained["model"]
    with pytest.raises(InvalidParameterValue, match=r"Unknown save format 'h5'.*native \.keras"):
        mlflow.keras.save_model(model, tmp_path / "a", save_model_kwargs={"save_format": "h5"})
    with pytest.raises(InvalidParameterValue, match=r"unknown argument\(s\) 'compress'"):
        mlflow.keras.save_model(model, tmp_path / "b", save_model_kwargs={"compress": True})
    with pytest.raises(InvalidParameterValue, match=r"save_model_kwargs must be a dict"):
        mlflow.keras.save_model(model, tmp_path / "c", save_model_kwargs=["zipped"])
    with pytest.raises(InvalidParameterValue, match=r"zipped=False is not supported"):
        mlflow.keras.save_model(model, tmp_path / "d", save_model_kwargs={"zipped": False})
    with pytest.raises(InvalidParameterValue, match=r"needs TensorFlow.*save_exported_model=False"):
        mlflow.keras.save_model(model, tmp_path / "e", save_exported_model=True)
    with pytest.raises(TypeError, match=r"unexpected keyword argument.*serialization_format"):
        mlflow.keras.save_model(model, tmp_path / "f", serialization_format="h5")
    assert not any((tmp_path / n).exists() for n in "abcdef")


def test_loading_what_is_not_a_keras_model(trained, tmp_path):
    from sklearn.linear_model import LinearRegression

    X, y = make_data()
    mlflow.sklearn.save_model(LinearRegression().fit(X, y), tmp_path / "sk")
    with pytest.raises(InvalidModelError, match=r"no 'keras' flavor.*sklearn"):
        mlflow.keras.load_model(str(tmp_path / "sk"))
    mlflow.keras.save_model(trained["model"], tmp_path / "k")
    (tmp_path / "k" / "data" / "model.keras").unlink()
    with pytest.raises(InvalidModelError, match=r"model\.keras is missing"):
        mlflow.keras.load_model(str(tmp_path / "k"))
    with pytest.raises(InvalidParameterValue, match=r"load_model_kwargs must be a dict"):
        mlflow.keras.load_model(str(tmp_path / "k"), load_model_kwargs="compile")


def test_pyfunc_refuses_input_it_cannot_pass_to_keras(on_store):
    pyfunc = mlflow.pyfunc.load_model(on_store["plain"])
    with pytest.raises(InvalidParameterValue, match=r"predicts on a pandas DataFrame.*got str"):
        pyfunc._model_impl.predict("1,2,3,4")


def test_signatures_are_mlflows():
    """Names and defaults of MLflow 3.17's mlflow.keras functions (plus name= of MLflow 3)."""
    import inspect

    def names(function: Any) -> list[str]:
        return [
            p.name
            for p in inspect.signature(function).parameters.values()
            if p.kind is not p.VAR_KEYWORD
        ]

    assert names(mlflow.keras.save_model) == [
        "model",
        "path",
        "save_exported_model",
        "conda_env",
        "mlflow_model",
        "signature",
        "input_example",
        "pip_requirements",
        "extra_pip_requirements",
        "save_model_kwargs",
        "metadata",
    ]
    assert names(mlflow.keras.log_model)[:12] == [
        "model",
        "artifact_path",
        "save_exported_model",
        "conda_env",
        "signature",
        "input_example",
        "registered_model_name",
        "await_registration_for",
        "pip_requirements",
        "extra_pip_requirements",
        "save_model_kwargs",
        "metadata",
    ]
    assert "name" in names(mlflow.keras.log_model)
    assert names(mlflow.keras.load_model) == [
        "model_uri",
        "dst_path",
        "custom_objects",
        "load_model_kwargs",
    ]


def test_importing_the_flavor_imports_no_keras():
    code = (
        "import json, sys\nimport jupyter_mltrack as mlflow\nimport jupyter_mltrack.keras\n"
        "mlflow.keras.get_default_pip_requirements()\n"
        "print(json.dumps('keras' in sys.modules))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) is False


def test_model_path_must_be_new(trained, tmp_path: Path):
    (tmp_path / "taken").mkdir()
    (tmp_path / "taken" / "file").write_text("x")
    with pytest.raises(InvalidParameterValue, match=r"already exists and is not empty"):
        mlflow.keras.save_model(trained["model"], tmp_path / "taken")
