"""The model format: MLmodel metadata, bad model directories (missing, corrupt, newer format,
wrong flavor), model info, the run's model history, cheap requirements and a light import."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import yaml
from sklearn.dummy import DummyClassifier

import jupyter_mltrack as mlflow
from jupyter_mltrack.exceptions import InvalidParameterValue, ResourceDoesNotExist
from jupyter_mltrack.models import InvalidModelError, Model, ModelSignature

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def mlf(tmp_path):
    mlflow.set_tracking_uri(str(tmp_path / "store"))
    return mlflow


@pytest.fixture
def saved(tmp_path):
    """A saved sklearn model directory."""
    path = tmp_path / "saved"
    mlflow.sklearn.save_model(DummyClassifier().fit([[0.0], [1.0]], [0, 1]), path)
    return path


class Const(mlflow.pyfunc.PythonModel):
    def predict(self, context, model_input, params=None):
        return [1] * len(model_input)


def _edit_mlmodel(path: Path, **changes):
    meta = yaml.safe_load((path / "MLmodel").read_text())
    meta.update(changes)
    (path / "MLmodel").write_text(yaml.safe_dump(meta))


# -- bad model directories ------------------------------------------------------------------------
@pytest.mark.parametrize("loader", ["sklearn", "pyfunc"])
def test_missing_mlmodel(mlf, tmp_path, loader):
    folder = tmp_path / "not_a_model"
    folder.mkdir()
    (folder / "weights.bin").write_bytes(b"x")
    with pytest.raises(
        InvalidModelError,
        match=r"Not a model directory: no MLmodel file in .*not_a_model\. It holds: weights.bin",
    ):
        getattr(mlflow, loader).load_model(str(folder))


def test_missing_mlmodel_points_at_the_model_inside(mlf):
    with mlflow.start_run() as run:
        mlflow.sklearn.log_model(DummyClassifier().fit([[0]], [0]), name="clf")
    with pytest.raises(InvalidModelError, match="It contains model\\(s\\) 'clf'; add that name"):
        mlflow.pyfunc.load_model(f"runs:/{run.info.run_id}/")


def test_nonexistent_path(mlf, tmp_path):
    with pytest.raises(ResourceDoesNotExist, match="does not exist"):
        mlflow.sklearn.load_model(str(tmp_path / "nowhere"))


def test_corrupt_yaml(saved):
    (saved / "MLmodel").write_text("flavors: [unclosed\n  : :")
    with pytest.raises(
        InvalidModelError, match=r"Corrupt model metadata in .*MLmodel: not valid YAML"
    ):
        mlflow.pyfunc.load_model(str(saved))
    (saved / "MLmodel").write_text("just a string\n")
    with pytest.raises(InvalidModelError, match="expected a mapping with a non-empty 'flavors'"):
        mlflow.sklearn.load_model(str(saved))
    (saved / "MLmodel").write_bytes(b"\xff\xfe\x00garbage")
    with pytest.raises(InvalidModelError, match="Corrupt model metadata"):
        Model.load(saved)


def test_corrupt_signature(saved):
    _edit_mlmodel(saved, signature={"inputs": "{not json"})
    with pytest.raises(
        InvalidModelError, match=r"Corrupt model metadata.*Unreadable model signature"
    ):
        mlflow.pyfunc.load_model(str(saved))


def test_newer_format_is_refused(saved):
    _edit_mlmodel(saved, mltrack_model_format=2)
    for load in (mlflow.sklearn.load_model, mlflow.pyfunc.load_model, Model.load):
        with pytest.raises(
            InvalidModelError, match=r"written by a newer jupyter_mltrack .*model format 2.*upgrade"
        ):
            load(str(saved))


def test_flavor_the_model_does_not_have(mlf, tmp_path):
    mlflow.pyfunc.save_model(tmp_path / "custom", python_model=Const())
    with pytest.raises(
        InvalidModelError,
        match=r"has no 'sklearn' flavor \(its flavors: python_function\)\. Load it with jupyter_mltrack.pyfunc.load_model",
    ):
        mlflow.sklearn.load_model(str(tmp_path / "custom"))


def test_missing_model_file(saved):
    (saved / "model.pkl").unlink()
    with pytest.raises(InvalidParameterValue, match=r"model file .*model.pkl is missing"):
        mlflow.sklearn.load_model(str(saved))


# -- format ----------------------------------------------------------------------------------------
def test_model_metadata_round_trip(saved):
    model = Model.load(saved)
    assert model.mltrack_model_format == 1
    assert set(model.flavors) == {"python_function", "sklearn"}
    assert Model.load(saved / "MLmodel").model_uuid == model.model_uuid
    again = Model.from_dict(yaml.safe_load(model.to_yaml()))
    assert again.to_dict() == model.to_dict()
    assert (
        json.loads(model.to_json())["flavors"]["sklearn"]["serialization_format"] == "cloudpickle"
    )


def test_model_info_history_and_set_signature(mlf):
    with mlflow.start_run() as run:
        first = mlflow.sklearn.log_model(DummyClassifier().fit([[0]], [0]), name="a")
        mlflow.pyfunc.log_model(name="b", python_model=Const())
    history = json.loads(mlflow.get_run(run.info.run_id).data.tags["mlflow.log-model.history"])
    assert [h["artifact_path"] for h in history] == ["a", "b"]
    assert history[0]["model_uuid"] == first.model_uuid

    info = mlflow.models.get_model_info(first.model_uri)
    assert (info.run_id, info.artifact_path, info.model_uuid) == (
        run.info.run_id,
        "a",
        first.model_uuid,
    )
    signature = mlflow.models.infer_signature(np.zeros((2, 1)))
    mlflow.models.set_signature(first.model_uri, signature)
    updated = mlflow.models.get_model_info(first.model_uri)
    assert updated.signature == signature and updated.signature_dict == signature.to_dict()
    with pytest.raises(InvalidParameterValue, match="immutable"):
        mlflow.models.set_signature("models:/X/1", signature)


def test_signature_must_be_a_model_signature(mlf, tmp_path):
    with pytest.raises(InvalidParameterValue, match="signature must be a ModelSignature"):
        mlflow.pyfunc.save_model(tmp_path / "m", python_model=Const(), signature={"inputs": "[]"})
    assert not (tmp_path / "m").exists()
    mlflow.pyfunc.save_model(tmp_path / "ok", python_model=Const(), signature=ModelSignature())


def test_numpy_input_example_and_json_example(mlf, tmp_path):
    mlflow.pyfunc.save_model(
        tmp_path / "arr", python_model=Const(), input_example=np.zeros((2, 3, 4))
    )
    info = yaml.safe_load((tmp_path / "arr" / "MLmodel").read_text())["saved_input_example_info"]
    assert info["type"] == "ndarray"
    assert Model.load(tmp_path / "arr").load_input_example(str(tmp_path / "arr")).shape == (2, 3, 4)
    mlflow.pyfunc.save_model(tmp_path / "txt", python_model=Const(), input_example="hello")
    assert (
        Model.load(tmp_path / "txt").load_input_example(str(tmp_path / "txt")).iloc[0, 0] == "hello"
    )


# -- cost -----------------------------------------------------------------------------------------
def test_log_model_runs_no_subprocess_and_is_fast(mlf, monkeypatch):
    from sklearn.datasets import load_breast_cancer
    from sklearn.ensemble import RandomForestClassifier

    X, y = load_breast_cancer(return_X_y=True, as_frame=True)
    model = RandomForestClassifier(n_estimators=100, random_state=0).fit(X, y)
    signature = mlflow.models.infer_signature(X, model.predict(X))

    def no_subprocess(*args, **kwargs):
        raise AssertionError("log_model must not start a subprocess")

    monkeypatch.setattr(subprocess.Popen, "__init__", no_subprocess)
    with mlflow.start_run():
        mlflow.sklearn.log_model(model, name="warm")  # first call imports yaml & co
        start = time.perf_counter()
        info = mlflow.sklearn.log_model(
            model, name="model", signature=signature, input_example=X.iloc[:3]
        )
        loaded = mlflow.pyfunc.load_model(info.model_uri)
        loaded.predict(X.iloc[:5])
        elapsed = time.perf_counter() - start
    # measured ~30 ms; MLflow takes ~3.5 s for log_model alone. Generous for slow CI machines.
    assert elapsed < 1.0, f"log_model + load + predict took {elapsed:.2f} s"


def test_requirements_helpers(tmp_path):
    from jupyter_mltrack.models.requirements import (
        package_version,
        requirement_name,
        resolve_environment,
    )

    assert requirement_name("Scikit_Learn>=1.0 ; python_version>'3'") == "scikit-learn"
    assert package_version("definitely-not-installed-pkg") is None
    reqs, conda, python = resolve_environment(["numpy==1.0"])
    assert reqs[0].startswith("jupyter-mltrack") and reqs[1] == "numpy==1.0"
    assert conda["dependencies"][0] == f"python={python}"
    with pytest.raises(InvalidParameterValue, match="is not a file"):
        resolve_environment([], pip_requirements=str(tmp_path / "missing.txt"))
    with pytest.raises(InvalidParameterValue, match="is not a file"):
        resolve_environment([], conda_env=str(tmp_path / "missing.yaml"))


def test_import_stays_light():
    code = (
        "import sys, jupyter_mltrack, jupyter_mltrack.models;"
        "heavy = [m for m in ('numpy', 'pandas', 'yaml', 'sklearn', 'cloudpickle', 'skops',"
        " 'jupyter_mltrack.sklearn', 'jupyter_mltrack.pyfunc') if m in sys.modules];"
        "print(heavy)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == "[]"
    code = "import sys, jupyter_mltrack; print([m for m in sys.modules if m.startswith('jupyter_mltrack.models')])"
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == "[]"


def test_metadata_is_stored_as_plain_data(mlf, tmp_path):
    mlflow.pyfunc.save_model(
        tmp_path / "m",
        python_model=Const(),
        metadata={"acc": np.float64(0.9), "dims": (2, np.int64(3))},
    )
    assert Model.load(tmp_path / "m").metadata == {"acc": 0.9, "dims": [2, 3]}
    with pytest.raises(InvalidParameterValue, match="metadata must hold plain data"):
        mlflow.pyfunc.save_model(tmp_path / "n", python_model=Const(), metadata={"f": object()})


def test_unknown_loader_module(saved):
    meta = yaml.safe_load((saved / "MLmodel").read_text())
    meta["flavors"]["python_function"]["loader_module"] = "mlflow.h2o"
    (saved / "MLmodel").write_text(yaml.safe_dump(meta))
    with pytest.raises(InvalidModelError, match=r"needs the loader module 'mlflow\.h2o'"):
        mlflow.pyfunc.load_model(str(saved))


def test_model_log_with_a_flavor_module(mlf):
    with mlflow.start_run():
        info = Model.log("clf", mlflow.sklearn, sk_model=DummyClassifier().fit([[0]], [1]))
    assert mlflow.sklearn.load_model(info.model_uri).predict([[5]]).tolist() == [1]
