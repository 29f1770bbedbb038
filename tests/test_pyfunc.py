"""Custom models (pyfunc): the seed's ChurnPipelineModel with a pickled preprocessor and a
``runs:/`` model artifact, predict conventions, params, signature enforcement at predict,
artifacts resolution and its bad inputs, and a real cross-process round trip."""

from __future__ import annotations

import os
import pickle
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from sklearn.linear_model import LogisticRegression
from sklearn.preprocessing import StandardScaler

import jupyter_mltrack as mlflow
from jupyter_mltrack.exceptions import InvalidParameterValue, MlflowException, ResourceDoesNotExist

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def mlf(tmp_path):
    mlflow.set_tracking_uri(str(tmp_path / "store"))
    return mlflow


@pytest.fixture
def churn():
    rng = np.random.default_rng(0)
    frame = pd.DataFrame(
        {
            "age": rng.integers(18, 80, 200).astype(float),
            "tenure": rng.integers(0, 72, 200).astype(float),
            "monthly_charge": rng.uniform(20, 120, 200),
        }
    )
    target = ((frame["monthly_charge"] > 70) & (frame["tenure"] < 24)).astype(int)
    return frame, target


def _local(model_uri):
    from jupyter_mltrack.models.uri import resolve_model_uri

    return Path(resolve_model_uri(model_uri).local_path)


# the seed's custom model, verbatim
class ChurnPipelineModel(mlflow.pyfunc.PythonModel):
    def load_context(self, context):
        import pickle

        with open(context.artifacts["preprocessor"], "rb") as f:
            self.preprocessor = pickle.load(f)
        self.model = mlflow.sklearn.load_model(context.artifacts["model"])

    def predict(self, context, model_input):
        processed = self.preprocessor.transform(model_input)
        return self.model.predict_proba(processed)[:, 1]


def _base_run(churn):
    """A preprocessor pickled to preprocessor.pkl and a classifier logged as runs:/<id>/model."""
    frame, target = churn
    preprocessor = StandardScaler().fit(frame)
    with open("preprocessor.pkl", "wb") as fh:
        pickle.dump(preprocessor, fh)
    classifier = LogisticRegression().fit(preprocessor.transform(frame), target)
    with mlflow.start_run() as base:
        mlflow.sklearn.log_model(classifier, artifact_path="model")
    return base.info.run_id, preprocessor, classifier


def test_seed_custom_python_model(mlf, churn):
    frame, _ = churn
    base_run_id, preprocessor, classifier = _base_run(churn)

    with mlflow.start_run():
        # Save preprocessor as artifact
        mlflow.log_artifact("preprocessor.pkl")

        mlflow.pyfunc.log_model(
            artifact_path="pipeline",
            python_model=ChurnPipelineModel(),
            artifacts={"preprocessor": "preprocessor.pkl", "model": f"runs:/{base_run_id}/model"},
            conda_env={
                "channels": ["defaults"],
                "dependencies": ["python=3.11", "scikit-learn=1.4.0", "pandas=2.0.0"],
            },
        )
        run_id = mlflow.active_run().info.run_id

    os.remove("preprocessor.pkl")  # the model holds its own copy
    loaded = mlflow.pyfunc.load_model(f"runs:/{run_id}/pipeline")
    expected = classifier.predict_proba(preprocessor.transform(frame.iloc[:10]))[:, 1]
    np.testing.assert_allclose(loaded.predict(frame.iloc[:10]), expected)

    python_model = loaded.unwrap_python_model()
    assert isinstance(python_model, ChurnPipelineModel)
    folder = _local(f"runs:/{run_id}/pipeline")
    assert (folder / "artifacts" / "preprocessor" / "preprocessor.pkl").is_file()
    assert (folder / "artifacts" / "model" / "MLmodel").is_file()
    meta = yaml.safe_load((folder / "MLmodel").read_text())
    assert meta["flavors"]["python_function"]["artifacts"] == {
        "preprocessor": {
            "path": "artifacts/preprocessor/preprocessor.pkl",
            "uri": "preprocessor.pkl",
        },
        "model": {"path": "artifacts/model", "uri": f"runs:/{base_run_id}/model"},
    }
    # the conda_env is the environment as given
    assert yaml.safe_load((folder / "conda.yaml").read_text()) == {
        "channels": ["defaults"],
        "dependencies": ["python=3.11", "scikit-learn=1.4.0", "pandas=2.0.0"],
    }
    reqs = (folder / "requirements.txt").read_text().split()
    assert "scikit-learn==1.4.0" in reqs and "pandas==2.0.0" in reqs
    assert yaml.safe_load((folder / "python_env.yaml").read_text())["python"] == "3.11"


def test_model_artifacts_bring_their_requirements(mlf, churn):
    base_run_id, _, _ = _base_run(churn)
    with mlflow.start_run():
        info = mlflow.pyfunc.log_model(
            name="pipeline",
            python_model=ChurnPipelineModel(),
            artifacts={"preprocessor": "preprocessor.pkl", "model": f"runs:/{base_run_id}/model"},
        )
    names = [
        r.split("==")[0] for r in (_local(info.model_uri) / "requirements.txt").read_text().split()
    ]
    assert {"jupyter-mltrack", "cloudpickle", "scikit-learn", "numpy", "pandas"} <= set(names)


class Echo(mlflow.pyfunc.PythonModel):
    def predict(self, context, model_input, params=None):
        return {"rows": len(model_input), "params": params, "columns": list(model_input.columns)}


class OldStyle:
    """No base class, MLflow 1.x predict(self, context, model_input)."""

    def predict(self, context, model_input):
        return model_input["x"] * 2


class NoContext(mlflow.pyfunc.PythonModel):
    def predict(self, model_input, params=None):
        return (model_input, params)


def test_predict_conventions_and_params(mlf, tmp_path):
    signature = mlflow.models.infer_signature(pd.DataFrame({"x": [1.0]}), params={"k": 3})
    mlflow.pyfunc.save_model(tmp_path / "echo", python_model=Echo(), signature=signature)
    echo = mlflow.pyfunc.load_model(str(tmp_path / "echo"))
    assert echo.predict(pd.DataFrame({"x": [1, 2]})) == {
        "rows": 2,
        "params": {"k": 3},
        "columns": ["x"],
    }
    assert echo.predict({"x": [1.0]}, params={"k": 7})["params"] == {"k": 7}
    assert echo.predict([{"x": 1.0}, {"x": 2.0}])["rows"] == 2

    mlflow.pyfunc.save_model(tmp_path / "old", python_model=OldStyle())
    old = mlflow.pyfunc.load_model(str(tmp_path / "old"))
    assert old.predict(pd.DataFrame({"x": [1, 2]})).tolist() == [2, 4]
    with pytest.warns(UserWarning, match="declares no params"):
        old.predict(pd.DataFrame({"x": [1]}), params={"k": 1})

    mlflow.pyfunc.save_model(tmp_path / "noctx", python_model=NoContext())
    assert mlflow.pyfunc.load_model(str(tmp_path / "noctx")).predict("text") == ("text", None)

    mlflow.pyfunc.save_model(tmp_path / "fn", python_model=lambda df: df["x"] + 1)
    assert mlflow.pyfunc.load_model(str(tmp_path / "fn")).predict(
        pd.DataFrame({"x": [1]})
    ).tolist() == [2]


def test_signature_enforced_at_predict(mlf, churn):
    frame, _ = churn
    with mlflow.start_run():
        info = mlflow.pyfunc.log_model(name="m", python_model=Echo(), input_example=frame.iloc[:3])
    model = mlflow.pyfunc.load_model(info.model_uri)
    assert model.metadata.get_input_schema().input_names() == ["age", "tenure", "monthly_charge"]
    with pytest.raises(
        InvalidParameterValue, match=r"missing 2 column\(s\).*'age', 'monthly_charge'"
    ) as err:
        model.predict(frame[["tenure"]])
    assert err.value.error_code == "INVALID_PARAMETER_VALUE"
    with pytest.raises(
        InvalidParameterValue, match=r"column 'tenure': cannot convert .* to double"
    ):
        model.predict(frame.assign(tenure="long"))
    with pytest.warns(UserWarning, match="'customer_id'"):
        out = model.predict(frame.iloc[:2].assign(customer_id=[1, 2]))
    assert out["columns"] == ["age", "tenure", "monthly_charge"]
    # ints where doubles are expected are converted
    assert model.predict({"age": [30], "tenure": [2], "monthly_charge": [99]})["rows"] == 1


def test_unwrap_and_metadata(mlf, tmp_path):
    from sklearn.dummy import DummyClassifier

    mlflow.sklearn.save_model(DummyClassifier().fit([[0]], [1]), tmp_path / "sk")
    loaded = mlflow.pyfunc.load_model(str(tmp_path / "sk"))
    assert set(loaded.metadata.flavors) == {"python_function", "sklearn"}
    assert loaded.loader_module == "jupyter_mltrack.sklearn"
    assert type(loaded.get_raw_model()).__name__ == "DummyClassifier"
    with pytest.raises(MlflowException, match="unwrap_python_model"):
        loaded.unwrap_python_model()
    assert "jupyter_mltrack.sklearn" in repr(loaded)


def test_model_config_and_code_paths(mlf, tmp_path):
    pkg = tmp_path / "helpers_pkg_for_pyfunc"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("def triple(x):\n    return 3 * x\n")

    class UsesConfig(mlflow.pyfunc.PythonModel):
        def load_context(self, context):
            self.factor = context.model_config["factor"]

        def predict(self, context, model_input, params=None):
            import helpers_pkg_for_pyfunc

            return helpers_pkg_for_pyfunc.triple(model_input) * self.factor

    mlflow.pyfunc.save_model(
        tmp_path / "m", python_model=UsesConfig(), model_config={"factor": 2}, code_paths=[str(pkg)]
    )
    assert (tmp_path / "m" / "code" / "helpers_pkg_for_pyfunc" / "__init__.py").is_file()
    sys.modules.pop("helpers_pkg_for_pyfunc", None)
    model = mlflow.pyfunc.load_model(str(tmp_path / "m"))
    assert model.predict(1) == 6
    assert (
        mlflow.pyfunc.load_model(str(tmp_path / "m"), model_config={"factor": 10}).predict(1) == 30
    )


def test_get_model_dependencies(mlf, tmp_path):
    mlflow.pyfunc.save_model(tmp_path / "m", python_model=Echo())
    path = mlflow.pyfunc.get_model_dependencies(str(tmp_path / "m"))
    assert path.endswith("requirements.txt") and "cloudpickle==" in Path(path).read_text()
    assert mlflow.pyfunc.get_model_dependencies(str(tmp_path / "m"), format="conda").endswith(
        "conda.yaml"
    )


# -- bad input ------------------------------------------------------------------------------------
def test_artifact_pointing_to_a_missing_file_logs_nothing(mlf):
    with mlflow.start_run() as run:
        with pytest.raises(
            ResourceDoesNotExist,
            match=r"artifacts\['preprocessor'\] points at 'nope.pkl', which does not exist",
        ):
            mlflow.pyfunc.log_model(
                artifact_path="pipeline",
                python_model=Echo(),
                artifacts={"preprocessor": "nope.pkl"},
            )
        with pytest.raises(
            ResourceDoesNotExist, match=r"artifacts\['model'\].*has no artifact 'model'"
        ):
            mlflow.pyfunc.log_model(
                name="p2",
                python_model=Echo(),
                artifacts={"model": f"runs:/{run.info.run_id}/model"},
            )
    assert mlflow.MlflowClient().list_artifacts(run.info.run_id) == []


def test_bad_python_model_and_artifact_names(mlf, tmp_path):
    with pytest.raises(InvalidParameterValue, match=r"an instance, not the class: pass Echo\(\)"):
        mlflow.pyfunc.save_model(tmp_path / "a", python_model=Echo)
    with pytest.raises(InvalidParameterValue, match="must be a PythonModel"):
        mlflow.pyfunc.save_model(tmp_path / "b", python_model=42)
    with pytest.raises(InvalidParameterValue, match="exactly one of python_model"):
        mlflow.pyfunc.save_model(tmp_path / "c")
    Path("f.txt").write_text("x")
    with pytest.raises(InvalidParameterValue, match=r"Invalid artifact name '\.\./up'"):
        mlflow.pyfunc.save_model(tmp_path / "d", python_model=Echo(), artifacts={"../up": "f.txt"})
    for name in "abcd":
        assert not (tmp_path / name).exists()


def test_unpicklable_python_model(mlf, tmp_path):
    import threading

    model = Echo()
    model.lock = threading.Lock()
    with pytest.raises(InvalidParameterValue, match=r"Cannot pickle python_model.*load_context"):
        mlflow.pyfunc.save_model(tmp_path / "m", python_model=model)


def test_missing_artifact_in_saved_model(mlf, tmp_path):
    Path("f.txt").write_text("x")
    mlflow.pyfunc.save_model(tmp_path / "m", python_model=Echo(), artifacts={"f": "f.txt"})
    (tmp_path / "m" / "artifacts" / "f" / "f.txt").unlink()
    with pytest.raises(InvalidParameterValue, match="artifact 'f' is missing"):
        mlflow.pyfunc.load_model(str(tmp_path / "m"))


def test_reads_pickles_of_mlflow_python_models(tmp_path):
    """A model pickled against mlflow.pyfunc.PythonModel loads without mlflow installed."""
    import types

    fake_pkg, fake_pyfunc, fake_model = (
        types.ModuleType(n) for n in ("mlflow", "mlflow.pyfunc", "mlflow.pyfunc.model")
    )

    class PythonModel:
        pass

    PythonModel.__module__, PythonModel.__qualname__ = "mlflow.pyfunc.model", "PythonModel"
    fake_model.PythonModel = PythonModel
    saved = {n: sys.modules.get(n) for n in ("mlflow", "mlflow.pyfunc", "mlflow.pyfunc.model")}
    sys.modules.update(
        {"mlflow": fake_pkg, "mlflow.pyfunc": fake_pyfunc, "mlflow.pyfunc.model": fake_model}
    )
    try:
        data = pickle.dumps(PythonModel())
    finally:
        for name, module in saved.items():
            if module is None:
                sys.modules.pop(name, None)
            else:
                sys.modules[name] = module
    import io

    from jupyter_mltrack.pyfunc import _CompatUnpickler

    assert isinstance(_CompatUnpickler(io.BytesIO(data)).load(), mlflow.pyfunc.PythonModel)


# -- across processes -----------------------------------------------------------------------------
SEED_SCRIPT = """
import pickle, sys
import numpy as np, pandas as pd
from sklearn.linear_model import LogisticRegression
from sklearn.preprocessing import StandardScaler
import jupyter_mltrack as mlflow

mlflow.set_tracking_uri(sys.argv[1])
frame = pd.DataFrame({"age": [20.0, 40.0, 60.0, 30.0], "tenure": [1.0, 30.0, 60.0, 5.0]})
target = [1, 0, 0, 1]
pre = StandardScaler().fit(frame)
with open("preprocessor.pkl", "wb") as f:
    pickle.dump(pre, f)
with mlflow.start_run() as base:
    mlflow.sklearn.log_model(LogisticRegression().fit(pre.transform(frame), target), artifact_path="model")
base_run_id = base.info.run_id

class ChurnPipelineModel(mlflow.pyfunc.PythonModel):
    def load_context(self, context):
        import pickle
        with open(context.artifacts["preprocessor"], "rb") as f:
            self.preprocessor = pickle.load(f)
        self.model = mlflow.sklearn.load_model(context.artifacts["model"])

    def predict(self, context, model_input):
        processed = self.preprocessor.transform(model_input)
        return self.model.predict_proba(processed)[:, 1]

with mlflow.start_run() as run:
    mlflow.log_artifact("preprocessor.pkl")
    mlflow.pyfunc.log_model(
        artifact_path="pipeline",
        python_model=ChurnPipelineModel(),
        artifacts={"preprocessor": "preprocessor.pkl", "model": f"runs:/{base_run_id}/model"},
        input_example=frame.iloc[:2],
    )
print(run.info.run_id)
"""

LOAD_SCRIPT = """
import sys
import pandas as pd
import jupyter_mltrack as mlflow

mlflow.set_tracking_uri(sys.argv[1])
model = mlflow.pyfunc.load_model(f"runs:/{sys.argv[2]}/pipeline")
print(model.predict(pd.DataFrame({"age": [20.0, 60.0], "tenure": [1.0, 60.0]})).round(3).tolist())
"""


def test_seed_model_defined_in_main_loads_in_another_process(tmp_path):
    """The class lives in ``__main__`` (as in a notebook): cloudpickle stores it by value, and a
    fresh process without that class loads and predicts."""
    store = tmp_path / "store"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    writer = tmp_path / "writer"
    writer.mkdir()
    (writer / "seed.py").write_text(textwrap.dedent(SEED_SCRIPT))
    logged = subprocess.run(
        [sys.executable, "seed.py", str(store)],
        cwd=writer,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert logged.returncode == 0, logged.stderr
    run_id = logged.stdout.strip().splitlines()[-1]
    (writer / "preprocessor.pkl").unlink()
    reader = tmp_path / "reader"
    reader.mkdir()
    (reader / "load.py").write_text(textwrap.dedent(LOAD_SCRIPT))
    loaded = subprocess.run(
        [sys.executable, "load.py", str(store), run_id],
        cwd=reader,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert loaded.returncode == 0, loaded.stderr
    high, low = eval(loaded.stdout.strip().splitlines()[-1])
    assert 0.5 < high <= 1 and 0 <= low < 0.5
