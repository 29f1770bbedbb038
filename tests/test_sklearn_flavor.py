"""The scikit-learn flavor: the seed's log_model call, loading by runs:/ and models:/, every
serialization format (skops without listing sklearn's types), requirements and environments."""

from __future__ import annotations

import json
import os
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.datasets import load_breast_cancer
from sklearn.ensemble import RandomForestClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import GridSearchCV
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import FunctionTransformer, StandardScaler

from jupyter_mltrack.exceptions import InvalidParameterValue


@pytest.fixture(scope="module")
def data():
    X, y = load_breast_cancer(return_X_y=True, as_frame=True)
    return X, y


@pytest.fixture(scope="module")
def small_rf(data):
    X, y = data
    return RandomForestClassifier(n_estimators=5, max_depth=3, random_state=0).fit(X, y)


@pytest.fixture
def mlf(tmp_path):
    """The package on an embedded SQLite store (model tests need no second backend)."""
    import jupyter_mltrack as mlflow

    mlflow.set_tracking_uri(str(tmp_path / "store"))
    return mlflow


def _local(model_uri):
    from jupyter_mltrack.models.uri import resolve_model_uri

    return Path(resolve_model_uri(model_uri).local_path)


# -- the seed -------------------------------------------------------------------------------------
def test_seed_basic_tracking_round_trip(mlflow, data):
    """The seed's "Basic Tracking" block, verbatim except the import and the server URI; on
    SQLite and PostgreSQL."""
    import matplotlib

    matplotlib.use("Agg")
    from sklearn.metrics import accuracy_score, f1_score
    from sklearn.model_selection import train_test_split

    X, y = data
    mlflow.set_experiment("customer-churn-prediction")

    X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=0.2)

    with mlflow.start_run(run_name="rf-baseline"):
        # Log hyperparameters
        params = {"n_estimators": 100, "max_depth": 5, "min_samples_split": 10}
        mlflow.log_params(params)

        # Train
        model = RandomForestClassifier(**params, random_state=42)
        model.fit(X_train, y_train)

        # Log metrics
        preds = model.predict(X_test)
        mlflow.log_metric("accuracy", accuracy_score(y_test, preds))
        mlflow.log_metric("f1_score", f1_score(y_test, preds, average="weighted"))

        # Log the model (with input schema for validation)
        signature = mlflow.models.infer_signature(X_train, model.predict(X_train))
        mlflow.sklearn.log_model(
            model, artifact_path="model", signature=signature, input_example=X_train.iloc[:3]
        )

        # Log artifacts (plots, feature importance, confusion matrix)
        import matplotlib.pyplot as plt

        fig, ax = plt.subplots()
        pd.Series(model.feature_importances_, index=X.columns).sort_values().plot.barh(ax=ax)
        plt.tight_layout()
        mlflow.log_figure(fig, "feature_importance.png")

        print(f"Run ID: {mlflow.active_run().info.run_id}")
        run_id = mlflow.active_run().info.run_id
    plt.close(fig)

    uri = f"runs:/{run_id}/model"
    loaded = mlflow.sklearn.load_model(uri)
    np.testing.assert_array_equal(loaded.predict(X_test), preds)
    pyfunc_model = mlflow.pyfunc.load_model(uri)
    np.testing.assert_array_equal(pyfunc_model.predict(X_test), preds)
    assert pyfunc_model.metadata.run_id == run_id
    assert pyfunc_model.metadata.get_input_schema().input_names() == list(X.columns)

    listed = {f.path for f in mlflow.MlflowClient().list_artifacts(run_id, "model")}
    assert {
        "model/MLmodel",
        "model/model.pkl",
        "model/requirements.txt",
        "model/python_env.yaml",
        "model/conda.yaml",
        "model/input_example.json",
    } <= listed
    example = mlflow.models.Model.load(uri).load_input_example(str(_local(uri)))
    pd.testing.assert_frame_equal(example, X_train.iloc[:3].reset_index(drop=True))


def test_log_model_returns_model_info_and_writes_mlmodel(mlf, data, small_rf):
    X, _ = data
    signature = mlf.models.infer_signature(X, small_rf.predict(X))
    with mlf.start_run() as run:
        info = mlf.sklearn.log_model(
            small_rf, name="clf", signature=signature, metadata={"team": "ds"}
        )
    assert info.model_uri == f"runs:/{run.info.run_id}/clf"
    assert (info.artifact_path, info.run_id) == ("clf", run.info.run_id)
    assert set(info.flavors) == {"python_function", "sklearn"}
    assert info.signature == signature and info.registered_model_version is None
    meta = yaml.safe_load((_local(info.model_uri) / "MLmodel").read_text())
    assert meta["mltrack_model_format"] == 1
    assert meta["run_id"] == run.info.run_id and meta["artifact_path"] == "clf"
    assert meta["flavors"]["sklearn"]["serialization_format"] == "cloudpickle"
    assert meta["flavors"]["python_function"]["loader_module"] == "jupyter_mltrack.sklearn"
    assert meta["python_version"].count(".") == 2
    assert meta["package_versions"]["scikit-learn"]
    assert meta["metadata"] == {"team": "ds"}
    assert meta["signature"] == signature.to_dict()
    assert meta["utc_time_created"]


def test_requirements_pin_what_the_model_needs_only(mlf, small_rf):
    import sklearn

    with mlf.start_run():
        info = mlf.sklearn.log_model(small_rf, artifact_path="model")
    folder = _local(info.model_uri)
    reqs = (folder / "requirements.txt").read_text().split()
    names = [r.split("==")[0] for r in reqs]
    assert f"scikit-learn=={sklearn.__version__}" in reqs
    assert f"numpy=={np.__version__}" in reqs
    assert {"jupyter-mltrack", "scipy", "cloudpickle"} <= set(names)
    assert "pandas" in names  # fitted on a DataFrame
    # not the whole environment
    assert not {"pytest", "sqlalchemy", "alembic", "ipython", "matplotlib"} & set(names)
    python_env = yaml.safe_load((folder / "python_env.yaml").read_text())
    assert python_env["dependencies"] == ["-r requirements.txt"]
    conda = yaml.safe_load((folder / "conda.yaml").read_text())
    assert conda["dependencies"][0].startswith("python=")
    assert conda["dependencies"][-1]["pip"] == reqs
    arrays = LogisticRegression().fit(np.array([[0.0], [1.0]]), [0, 1])
    with mlf.start_run():
        info = mlf.sklearn.log_model(arrays, artifact_path="model")
    assert "pandas" not in (_local(info.model_uri) / "requirements.txt").read_text()


def test_pip_requirements_extra_and_conda_env(mlf, small_rf, tmp_path):
    with mlf.start_run():
        replaced = mlf.sklearn.log_model(
            small_rf, name="a", pip_requirements=["scikit-learn", "mypkg==1.0"]
        )
        extra = mlf.sklearn.log_model(
            small_rf, name="b", extra_pip_requirements=["shap>=0.4", "numpy<3"]
        )
        conda = mlf.sklearn.log_model(
            small_rf,
            name="c",
            conda_env={
                "channels": ["defaults"],
                "dependencies": ["python=3.11", "scikit-learn=1.4.0", {"pip": ["xgboost==2.0"]}],
            },
        )
    assert (_local(replaced.model_uri) / "requirements.txt").read_text().split()[1:] == [
        "scikit-learn",
        "mypkg==1.0",
    ]
    extra_reqs = (_local(extra.model_uri) / "requirements.txt").read_text().split()
    assert "shap>=0.4" in extra_reqs and "numpy<3" in extra_reqs
    assert not [r for r in extra_reqs if r.startswith("numpy==")]  # the user's line replaced ours
    folder = _local(conda.model_uri)
    assert (
        yaml.safe_load((folder / "conda.yaml").read_text())["dependencies"][1]
        == "scikit-learn=1.4.0"
    )
    assert "scikit-learn==1.4.0" in (folder / "requirements.txt").read_text().split()
    assert yaml.safe_load((folder / "python_env.yaml").read_text())["python"] == "3.11"
    with pytest.raises(InvalidParameterValue, match="at most one of conda_env, pip_requirements"):
        mlf.sklearn.save_model(
            small_rf, tmp_path / "x", pip_requirements=["a"], extra_pip_requirements=["b"]
        )
    reqfile = tmp_path / "reqs.txt"
    reqfile.write_text("# pinned\nscikit-learn\n\nlightgbm==4.0\n")
    mlf.sklearn.save_model(small_rf, tmp_path / "y", pip_requirements=str(reqfile))
    assert (tmp_path / "y" / "requirements.txt").read_text().split()[1:] == [
        "scikit-learn",
        "lightgbm==4.0",
    ]


def test_log_model_starts_a_run_when_none_is_active(mlf, small_rf):
    assert mlf.active_run() is None
    info = mlf.sklearn.log_model(small_rf, "model")
    assert mlf.active_run().info.run_id == info.run_id
    mlf.end_run()
    assert mlf.sklearn.load_model(info.model_uri).n_estimators == 5


def test_name_and_artifact_path(mlf, small_rf, tmp_path):
    with mlf.start_run():
        assert mlf.sklearn.log_model(small_rf).artifact_path == "model"
        assert mlf.sklearn.log_model(small_rf, name="m2").artifact_path == "m2"
        assert (
            mlf.sklearn.log_model(small_rf, artifact_path="nested/m3").artifact_path == "nested/m3"
        )
        with pytest.raises(InvalidParameterValue, match="disagree"):
            mlf.sklearn.log_model(small_rf, artifact_path="a", name="b")
        with pytest.raises(InvalidParameterValue, match=r"'\.\.' would leave"):
            mlf.sklearn.log_model(small_rf, name="../escape")


def test_mlflow_only_kwargs_are_tolerated_and_typos_are_not(mlf, small_rf):
    with mlf.start_run():
        mlf.sklearn.log_model(
            small_rf, name="m", await_registration_for=0, params={"a": 1}, tags={"b": 2}
        )
        with pytest.raises(TypeError, match="signatur"):
            mlf.sklearn.log_model(small_rf, name="m2", signatur=None)


def test_relogging_the_same_path_replaces_the_model(mlf, small_rf):
    with mlf.start_run():
        mlf.sklearn.log_model(small_rf, name="m", serialization_format="pickle")
        with pytest.warns(UserWarning, match="already had a model at 'm'; it is replaced"):
            info = mlf.sklearn.log_model(small_rf, name="m", serialization_format="skops")
    files = {p.name for p in _local(info.model_uri).iterdir()}
    assert "model.skops" in files and "model.pkl" not in files


def test_a_failing_save_leaves_the_runs_model_and_no_staging_folder(mlf, data, small_rf):
    """Models are saved in a hidden folder inside the run's artifacts and renamed into place:
    a save that fails keeps the model already there and leaves nothing behind."""
    import threading

    with mlf.start_run() as run:
        mlf.sklearn.log_model(small_rf, name="m", serialization_format="pickle")
        unpicklable = LogisticRegression()
        unpicklable.lock = threading.Lock()  # pickle refuses locks
        with pytest.raises(TypeError, match="lock"):
            mlf.sklearn.log_model(unpicklable, name="m", serialization_format="pickle")
        mlf.log_text("notes", "extra/readme.txt")
        nested = mlf.sklearn.log_model(small_rf, name="extra/model")  # beside other files
    root = Path(_local(f"runs:/{run.info.run_id}/m")).parent
    leftovers = [p for p in root.rglob("*") if p.name.startswith(".tmp")]
    assert leftovers == []
    kept = mlf.sklearn.load_model(f"runs:/{run.info.run_id}/m")
    assert list(kept.predict(data[0][:5])) == list(small_rf.predict(data[0][:5]))
    client = mlf.MlflowClient()
    assert [a.path for a in client.list_artifacts(run.info.run_id)] == ["extra", "m"]
    assert {a.path for a in client.list_artifacts(run.info.run_id, "extra")} == {
        "extra/model",
        "extra/readme.txt",
    }
    assert mlf.pyfunc.load_model(nested.model_uri) is not None
    history = json.loads(client.get_run(run.info.run_id).data.tags["mlflow.log-model.history"])
    assert [h["artifact_path"] for h in history] == ["m", "extra/model"]


def test_input_example_alone_infers_the_signature(mlf, data, small_rf):
    X, _ = data
    with mlf.start_run():
        info = mlf.sklearn.log_model(small_rf, name="m", input_example=X.iloc[:2])
    assert info.signature.inputs.input_names() == list(X.columns)
    assert info.signature.outputs.inputs[0].shape == (-1,)


def test_pyfunc_predict_fn(mlf, data, small_rf, tmp_path):
    X, _ = data
    mlf.sklearn.save_model(small_rf, tmp_path / "m", pyfunc_predict_fn="predict_proba")
    proba = mlf.pyfunc.load_model(str(tmp_path / "m")).predict(X.iloc[:4])
    np.testing.assert_allclose(proba, small_rf.predict_proba(X.iloc[:4]))
    with pytest.raises(InvalidParameterValue, match="pyfunc_predict_fn must be one of"):
        mlf.sklearn.save_model(small_rf, tmp_path / "n", pyfunc_predict_fn="transform")


def test_dst_path_copies_the_model(mlf, small_rf, tmp_path):
    with mlf.start_run():
        info = mlf.sklearn.log_model(small_rf, name="m")
    dst = tmp_path / "download"
    mlf.sklearn.load_model(info.model_uri, dst_path=str(dst))
    assert (dst / "m" / "MLmodel").is_file()


# -- serialization formats ------------------------------------------------------------------------
@pytest.mark.parametrize("fmt", ["cloudpickle", "pickle", "skops"])
def test_save_and_load_each_format(mlf, data, small_rf, tmp_path, fmt):
    X, _ = data
    path = tmp_path / fmt
    mlf.sklearn.save_model(small_rf, str(path), serialization_format=fmt, input_example=X.iloc[:2])
    meta = yaml.safe_load((path / "MLmodel").read_text())
    assert meta["flavors"]["sklearn"]["serialization_format"] == fmt
    assert (path / meta["flavors"]["sklearn"]["pickled_model"]).is_file()
    loaded = mlf.sklearn.load_model(str(path))
    np.testing.assert_array_equal(loaded.predict(X), small_rf.predict(X))
    via_uri = mlf.pyfunc.load_model(path.as_uri())
    np.testing.assert_array_equal(via_uri.predict(X.iloc[:10]), small_rf.predict(X.iloc[:10]))
    reqs = (path / "requirements.txt").read_text()
    assert ("skops==" in reqs) == (fmt == "skops")
    assert ("cloudpickle==" in reqs) == (fmt == "cloudpickle")


def test_unknown_serialization_format(mlf, small_rf, tmp_path):
    with pytest.raises(InvalidParameterValue, match="use one of pickle, cloudpickle, skops"):
        mlf.sklearn.save_model(small_rf, tmp_path / "m", serialization_format="joblib")
    assert not (tmp_path / "m").exists()


def test_skops_needs_no_trusted_types_for_sklearn_models(mlf, data, tmp_path):
    X, y = data
    rf = RandomForestClassifier(n_estimators=100, random_state=0).fit(X, y)
    pipe = Pipeline(
        [
            ("log", FunctionTransformer(np.log1p)),
            ("scale", StandardScaler()),
            ("lr", LogisticRegression(max_iter=2000)),
        ]
    ).fit(X, y)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        search = GridSearchCV(pipe, {"lr__C": [0.1, 1.0]}, cv=2).fit(X, y)
    for label, model in [
        ("rf", rf),
        ("pipe", pipe),
        ("search", search),
        ("best", search.best_estimator_),
    ]:
        with mlf.start_run():
            info = mlf.sklearn.log_model(model, name=label, serialization_format="skops")
        loaded = mlf.sklearn.load_model(info.model_uri)
        np.testing.assert_array_equal(loaded.predict(X.iloc[:20]), model.predict(X.iloc[:20]))
        meta = yaml.safe_load((_local(info.model_uri) / "MLmodel").read_text())
        assert meta["flavors"]["sklearn"]["skops_trusted_types"] is None


class ClipTransformer(TransformerMixin, BaseEstimator):
    """A user transformer from outside scikit-learn."""

    def __init__(self, upper=1000.0):
        self.upper = upper

    def fit(self, X, y=None):
        return self

    def transform(self, X):
        return np.minimum(np.asarray(X, dtype=float), self.upper)


def test_skops_asks_about_foreign_types_then_loads_without_arguments(mlf, data, tmp_path):
    X, y = data
    pipe = Pipeline([("clip", ClipTransformer()), ("lr", LogisticRegression(max_iter=50))])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        pipe.fit(X, y)
    foreign = f"{__name__}.ClipTransformer"
    with pytest.raises(InvalidParameterValue) as err:
        mlf.sklearn.save_model(pipe, tmp_path / "refused", serialization_format="skops")
    message = str(err.value)
    assert repr(foreign) in message and "skops_trusted_types=[" in message
    assert "'sklearn." not in message.split("unless trusted:")[1].split("If you")[0]
    assert not (tmp_path / "refused").exists()
    with mlf.start_run():
        info = mlf.sklearn.log_model(
            pipe, name="m", serialization_format="skops", skops_trusted_types=[foreign]
        )
        with pytest.raises(InvalidParameterValue, match="ClipTransformer"):
            mlf.sklearn.log_model(pipe, name="m2", serialization_format="skops")
    loaded = mlf.sklearn.load_model(info.model_uri)
    np.testing.assert_array_equal(loaded.predict(X), pipe.predict(X))

    # a file whose types were not trusted at save time is refused at load
    mlmodel = _local(info.model_uri) / "MLmodel"
    meta = yaml.safe_load(mlmodel.read_text())
    meta["flavors"]["sklearn"]["skops_trusted_types"] = None
    mlmodel.write_text(yaml.safe_dump(meta))
    with pytest.raises(
        InvalidParameterValue, match=r"not trusted when it was saved: .*ClipTransformer"
    ):
        mlf.sklearn.load_model(info.model_uri)


def test_skops_never_trusts_dangerous_builtins(mlf, tmp_path):
    model = FunctionTransformer(eval).fit(np.zeros((2, 1)))
    with pytest.raises(InvalidParameterValue, match=r"'builtins\.eval'"):
        mlf.sklearn.save_model(model, tmp_path / "m", serialization_format="skops")


def test_transformers_save_and_pyfunc_explains_the_missing_predict(mlf, tmp_path):
    scaler = StandardScaler().fit(np.array([[0.0], [2.0]]))
    mlf.sklearn.save_model(scaler, tmp_path / "scaler")
    assert mlf.sklearn.load_model(str(tmp_path / "scaler")).mean_.tolist() == [1.0]
    with pytest.raises(InvalidParameterValue, match=r"no predict\(\) method"):
        mlf.pyfunc.load_model(str(tmp_path / "scaler")).predict(np.array([[1.0]]))


# -- other sources ---------------------------------------------------------------------------------
def test_loads_a_model_saved_by_mlflow(mlf, data, small_rf, tmp_path):
    """An MLflow-written directory (loader_module mlflow.sklearn, no mltrack keys) loads here."""
    import cloudpickle

    X, _ = data
    folder = tmp_path / "mlflow_model"
    folder.mkdir()
    (folder / "model.pkl").write_bytes(cloudpickle.dumps(small_rf))
    (folder / "MLmodel").write_text(
        """flavors:
  python_function:
    env:
      conda: conda.yaml
      virtualenv: python_env.yaml
    loader_module: mlflow.sklearn
    model_path: model.pkl
    predict_fn: predict
    python_version: 3.11.7
  sklearn:
    code: null
    pickled_model: model.pkl
    serialization_format: cloudpickle
    sklearn_version: 1.9.1
    skops_trusted_types: null
is_signature_from_type_hint: false
mlflow_version: 3.17.2
model_id: null
model_uuid: e0089e1527b243a9ba7a3dfa9ece629c
signature:
  inputs: '[{"type": "tensor", "tensor-spec": {"dtype": "float64", "shape": [-1, 30]}}]'
  outputs: '[{"type": "tensor", "tensor-spec": {"dtype": "int64", "shape": [-1]}}]'
  params: null
utc_time_created: '2026-11-26 04:18:50.518776'
"""
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # fitted with feature names, predicted on an array
        expected = small_rf.predict(X.to_numpy()[:5])
        assert mlf.sklearn.load_model(str(folder)).n_estimators == 5
        got = mlf.pyfunc.load_model(str(folder)).predict(X.to_numpy()[:5])
    np.testing.assert_array_equal(got, expected)


def test_seed_loading_models_by_stage(mlf, data, small_rf):
    X, _ = data
    new_data = X.iloc[:5]
    with mlf.start_run():
        info = mlf.sklearn.log_model(small_rf, "model", registered_model_name="ChurnPredictor")
    assert info.registered_model_version == 1
    client = mlf.MlflowClient()
    client.transition_model_version_stage("ChurnPredictor", 1, "Staging")
    with mlf.start_run():
        mlf.sklearn.log_model(small_rf, "model", registered_model_name="ChurnPredictor")
        mlf.sklearn.log_model(small_rf, "model2", registered_model_name="ChurnPredictor")
    client.transition_model_version_stage("ChurnPredictor", 3, "Production")

    # Always loads the current Production version  no code change needed when you promote
    model = mlf.sklearn.load_model("models:/ChurnPredictor/Production")
    predictions = model.predict(new_data)

    # Load specific version (for A/B testing or rollback)
    model_v3 = mlf.sklearn.load_model("models:/ChurnPredictor/3")

    # Load from Staging for validation
    staging_model = mlf.sklearn.load_model("models:/ChurnPredictor/Staging")

    np.testing.assert_array_equal(predictions, small_rf.predict(new_data))
    assert model_v3.n_estimators == staging_model.n_estimators == 5
    assert mlf.pyfunc.load_model("models:/ChurnPredictor/latest").metadata.artifact_path == "model2"


def test_registered_model_name_without_registry_is_a_clear_error(mlf, small_rf, monkeypatch):
    import jupyter_mltrack
    from jupyter_mltrack.tracking import fluent

    monkeypatch.delattr(fluent, "register_model", raising=False)
    monkeypatch.delitem(jupyter_mltrack.__dict__, "register_model", raising=False)
    with (
        mlf.start_run() as run,
        pytest.raises(InvalidParameterValue, match="no model registry yet") as err,
    ):
        mlf.sklearn.log_model(small_rf, "model", registered_model_name="X")
    assert f"runs:/{run.info.run_id}/model" in str(err.value)


def test_save_model_refuses_a_non_empty_path(mlf, small_rf, tmp_path):
    target = tmp_path / "taken"
    target.mkdir()
    mlf.sklearn.save_model(small_rf, target)  # empty: fine
    with pytest.raises(InvalidParameterValue, match="already exists and is not empty"):
        mlf.sklearn.save_model(small_rf, target)
    with pytest.raises(InvalidParameterValue, match="already exists and is not empty"):
        mlf.sklearn.save_model(small_rf, target / "MLmodel")
    assert os.listdir(target)  # untouched
