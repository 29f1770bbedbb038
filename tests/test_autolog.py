"""scikit-learn autologging: real fits on scikit-learn's small data sets, into real stores."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import warnings

import numpy as np
import pytest
from sklearn.cluster import KMeans
from sklearn.datasets import load_breast_cancer, load_diabetes, load_iris
from sklearn.ensemble import RandomForestClassifier, VotingClassifier
from sklearn.linear_model import LinearRegression, LogisticRegression, Ridge
from sklearn.metrics import accuracy_score, mean_squared_error, precision_score, r2_score
from sklearn.model_selection import GridSearchCV, RandomizedSearchCV, train_test_split
from sklearn.multiclass import OneVsRestClassifier
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import FunctionTransformer, StandardScaler
from sklearn.tree import DecisionTreeClassifier

from jupyter_mltrack.autolog import sklearn as sk_autolog
from jupyter_mltrack.exceptions import InvalidParameterValue

CLASSIFIER_METRICS = {
    "training_accuracy_score",
    "training_f1_score",
    "training_precision_score",
    "training_recall_score",
    "training_roc_auc",
    "training_log_loss",
    "training_score",
}
REGRESSOR_METRICS = {
    "training_r2_score",
    "training_mean_absolute_error",
    "training_mean_squared_error",
    "training_root_mean_squared_error",
    "training_score",
}


@pytest.fixture(autouse=True)
def _autolog_off():
    """Every test leaves scikit-learn unpatched, whatever happened in it."""
    yield
    import jupyter_mltrack

    jupyter_mltrack.autolog(disable=True)
    assert not sk_autolog.is_enabled()


@pytest.fixture(scope="module")
def iris():
    return load_iris(return_X_y=True, as_frame=True)


@pytest.fixture
def tracked(tmp_path):
    """The package on an embedded (SQLite) store."""
    import jupyter_mltrack as mlflow

    mlflow.set_tracking_uri(str(tmp_path / "store"))
    return mlflow


def _runs(mlflow):
    return mlflow.search_runs(output_format="list", order_by=["attributes.start_time ASC"])


def _artifacts(mlflow, run_id, path=None):
    return sorted(a.path for a in mlflow.MlflowClient().list_artifacts(run_id, path))


# -- what a fit logs ----------------------------------------------------------------------------
def test_classifier_fit_logs_a_run_whose_model_loads(mlflow, iris):
    """SQLite and PostgreSQL: a fit outside any run gets its own run, ended after the fit."""
    X, y = iris
    mlflow.autolog()
    model = RandomForestClassifier(n_estimators=10, random_state=0)
    assert model.fit(X, y) is model
    assert mlflow.active_run() is None

    (run,) = _runs(mlflow)
    assert run.info.status == "FINISHED"
    assert mlflow.last_active_run().info.run_id == run.info.run_id
    tags, params, metrics = run.data.tags, run.data.params, run.data.metrics
    assert tags["mlflow.autologging"] == "sklearn"
    assert tags["estimator_name"] == "RandomForestClassifier"
    assert tags["estimator_class"] == "sklearn.ensemble._forest.RandomForestClassifier"
    assert params == {k: str(v) for k, v in model.get_params(deep=False).items()}
    assert set(metrics) == CLASSIFIER_METRICS
    assert metrics["training_accuracy_score"] == pytest.approx(accuracy_score(y, model.predict(X)))
    assert metrics["training_score"] == metrics["training_accuracy_score"]
    assert {"feature_importance.png", "model"} <= set(_artifacts(mlflow, run.info.run_id))

    from jupyter_mltrack.pyfunc import load_model

    loaded = load_model(f"runs:/{run.info.run_id}/model")
    np.testing.assert_array_equal(loaded.predict(X.head(7)), model.predict(X.head(7)))
    assert loaded.metadata.get_input_schema().input_names() == list(X.columns)


def test_regressor_metrics_and_coefficients(tracked):
    X, y = load_diabetes(return_X_y=True)
    tracked.autolog()
    model = Ridge(alpha=0.5).fit(X, y)
    (run,) = _runs(tracked)
    metrics = run.data.metrics
    assert set(metrics) == REGRESSOR_METRICS
    predicted = model.predict(X)
    assert metrics["training_r2_score"] == pytest.approx(r2_score(y, predicted))
    assert metrics["training_mean_squared_error"] == pytest.approx(mean_squared_error(y, predicted))
    assert metrics["training_root_mean_squared_error"] == pytest.approx(
        mean_squared_error(y, predicted) ** 0.5
    )
    artifacts = _artifacts(tracked, run.info.run_id)
    assert "coefficients.png" in artifacts and "feature_importance.png" not in artifacts
    png = tracked.MlflowClient().download_artifacts(run.info.run_id, "coefficients.png")
    with open(png, "rb") as fh:
        assert fh.read(8) == b"\x89PNG\r\n\x1a\n"


def test_binary_metrics_use_pos_label(tracked):
    X, y01 = load_breast_cancer(return_X_y=True)
    y = np.where(y01 == 1, "benign", "malignant")
    tracked.sklearn.autolog(pos_label="malignant")
    model = make_pipeline(StandardScaler(), LogisticRegression()).fit(X, y)
    metrics = _runs(tracked)[0].data.metrics
    assert set(metrics) == CLASSIFIER_METRICS
    expected = precision_score(y, model.predict(X), pos_label="malignant")
    assert metrics["training_precision_score"] == pytest.approx(expected)


def test_sample_weight_reaches_the_metrics(tracked, iris):
    X, y = iris
    weights = np.where(y == 2, 5.0, 1.0)
    tracked.autolog()
    model = LogisticRegression(C=0.05, max_iter=300).fit(X, y, sample_weight=weights)
    metrics = _runs(tracked)[0].data.metrics
    expected = accuracy_score(y, model.predict(X), sample_weight=weights)
    assert metrics["training_accuracy_score"] == pytest.approx(expected)
    assert metrics["training_score"] == pytest.approx(model.score(X, y, sample_weight=weights))


def test_autologged_figure_leaves_pyplot_alone(tracked, iris):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    X, y = iris
    mine = plt.figure("mine")
    tracked.autolog()
    LogisticRegression(max_iter=300).fit(X, y)
    assert plt.get_fignums() == [mine.number] and plt.gcf() is mine
    plt.close("all")


# -- one run per outermost fit ----------------------------------------------------------------
def test_pipeline_is_one_run_with_shallow_params(tracked, iris):
    X, y = iris
    tracked.autolog()
    make_pipeline(StandardScaler(), LogisticRegression(max_iter=300)).fit(X, y)
    (run,) = _runs(tracked)
    assert run.data.tags["estimator_name"] == "Pipeline"
    assert set(run.data.params) == set(
        Pipeline([("m", LogisticRegression())]).get_params(deep=False)
    )
    assert "coefficients.png" in _artifacts(tracked, run.info.run_id)


def test_meta_estimators_and_fit_transform_fit_predict_are_one_run_each(tracked, iris):
    X, y = iris
    tracked.autolog()
    VotingClassifier(
        [("lr", LogisticRegression(max_iter=300)), ("tree", DecisionTreeClassifier())]
    ).fit(X, y)
    OneVsRestClassifier(LogisticRegression(max_iter=300)).fit(X, y)
    StandardScaler().fit_transform(X)
    KMeans(n_clusters=3, n_init=1, random_state=0).fit_predict(X)
    runs = _runs(tracked)
    assert [r.data.tags["estimator_name"] for r in runs] == [
        "VotingClassifier",
        "OneVsRestClassifier",
        "StandardScaler",
        "KMeans",
    ]
    assert "training_score" in runs[3].data.metrics  # KMeans.score: unsupervised, on X alone


def test_fits_in_joblib_threads_belong_to_the_outer_fit(tracked, iris):
    """A threading-backend worker's fits are part of the fit that farmed them out."""
    import joblib

    X, y = iris
    tracked.autolog()
    with joblib.parallel_backend("threading", n_jobs=2):
        OneVsRestClassifier(LogisticRegression(max_iter=300), n_jobs=2).fit(X, y)
    assert [r.data.tags["estimator_name"] for r in _runs(tracked)] == ["OneVsRestClassifier"]


def test_users_joblib_threads_each_log_their_fit(tracked, iris):
    """The user's own joblib tasks are not part of any fit: each logs its own run."""
    from joblib import Parallel, delayed

    X, y = iris
    tracked.autolog()
    Parallel(n_jobs=2, backend="threading")(
        delayed(lambda c: LogisticRegression(C=c, max_iter=300).fit(X, y))(c)
        for c in (0.5, 1.0, 2.0, 4.0)
    )
    runs = _runs(tracked)
    assert sorted(r.data.params["C"] for r in runs) == ["0.5", "1.0", "2.0", "4.0"]


def test_each_user_thread_logs_its_own_fit(tracked, iris):
    X, y = iris
    tracked.autolog()
    errors = []

    def fit(c):
        try:
            LogisticRegression(C=c, max_iter=300).fit(X, y)
        except Exception as exc:  # surfaced by the assertion below
            errors.append(exc)

    threads = [threading.Thread(target=fit, args=(c,)) for c in (0.5, 2.0)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    runs = _runs(tracked)
    assert sorted(r.data.params["C"] for r in runs) == ["0.5", "2.0"]
    assert all(r.info.status == "FINISHED" for r in runs)


# -- searches -----------------------------------------------------------------------------------
def test_grid_search_parent_and_child_runs(tracked, iris):
    X, y = iris
    tracked.sklearn.autolog(max_tuning_runs=3)
    grid = {"C": [0.01, 0.1, 1.0, 10.0]}
    search = GridSearchCV(LogisticRegression(max_iter=300), grid, cv=3).fit(X, y)

    runs = _runs(tracked)
    parents = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
    children = [r for r in runs if "mlflow.parentRunId" in r.data.tags]
    (parent,) = parents
    assert len(children) == 3  # bounded by max_tuning_runs; no runs for the inner fits
    assert {c.data.tags["mlflow.parentRunId"] for c in children} == {parent.info.run_id}
    assert parent.data.tags["estimator_name"] == "GridSearchCV"
    assert parent.data.params["best_C"] == str(search.best_params_["C"])
    assert parent.data.metrics["best_cv_score"] == pytest.approx(search.best_score_)
    assert set(parent.data.metrics) >= CLASSIFIER_METRICS

    results = search.cv_results_
    for child in children:  # the seed estimator's params, with the candidate's C
        assert child.data.params["max_iter"] == "300"
        assert child.data.tags["estimator_name"] == "LogisticRegression"
        assert not any(key.startswith("split") for key in child.data.metrics)
    ranks = sorted(c.data.metrics["rank_test_score"] for c in children)
    assert ranks == sorted(results["rank_test_score"])[:3]  # the best ranked candidates
    for child in children:
        i = [str(p["C"]) for p in results["params"]].index(child.data.params["C"])
        assert child.data.metrics["mean_test_score"] == pytest.approx(results["mean_test_score"][i])
        assert child.data.metrics["std_test_score"] == pytest.approx(results["std_test_score"][i])

    artifacts = _artifacts(tracked, parent.info.run_id)
    assert {"cv_results.csv", "model", "best_estimator", "coefficients.png"} <= set(artifacts)
    csv = tracked.MlflowClient().download_artifacts(parent.info.run_id, "cv_results.csv")
    import pandas as pd

    frame = pd.read_csv(csv)
    assert len(frame) == 4 and "mean_test_score" in frame.columns


def test_randomized_search_all_candidates_with_none(tracked, iris):
    X, y = iris
    tracked.sklearn.autolog(max_tuning_runs=None, log_models=False)
    RandomizedSearchCV(
        DecisionTreeClassifier(random_state=0),
        {"max_depth": [1, 2, 3, 4, 5]},
        n_iter=3,
        cv=2,
        random_state=0,
    ).fit(X, y)
    runs = _runs(tracked)
    assert len(runs) == 4
    (parent,) = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
    assert "model" not in _artifacts(tracked, parent.info.run_id)


# -- runs: active, failed, exclusive --------------------------------------------------------------
def test_active_run_is_reused_and_left_open(tracked, iris):
    X, y = iris
    tracked.autolog()
    with tracked.start_run() as run:
        LogisticRegression(max_iter=300).fit(X, y)
        assert tracked.active_run().info.run_id == run.info.run_id
        assert tracked.get_run(run.info.run_id).info.status == "RUNNING"
    (stored,) = _runs(tracked)
    assert stored.info.run_id == run.info.run_id and stored.info.status == "FINISHED"
    assert "mlflow.autologging" not in stored.data.tags  # the user's run, not autolog's
    assert "training_accuracy_score" in stored.data.metrics


def test_second_fit_in_one_run_keeps_first_params_and_warns(tracked, iris):
    X, y = iris
    tracked.autolog()
    with tracked.start_run():
        LogisticRegression(C=1.0, max_iter=300).fit(X, y)
        with pytest.warns(UserWarning, match="params already in the run"):
            second = LogisticRegression(C=2.0, max_iter=300).fit(X, y)
    assert second.coef_ is not None
    assert _runs(tracked)[0].data.params["C"] == "1.0"


class Boom(Exception):
    pass


def _boom(X):
    raise Boom("bad transform")


def test_fit_error_propagates_unchanged_and_run_fails(tracked, iris):
    X, _ = iris
    tracked.autolog()
    with pytest.raises(Boom) as info:
        FunctionTransformer(_boom).fit_transform(X)
    assert str(info.value) == "bad transform" and info.value.__cause__ is None
    with pytest.raises(ValueError, match="class"):  # scikit-learn's own error, untouched
        LogisticRegression().fit(X, np.zeros(len(X)))
    runs = _runs(tracked)
    assert [r.info.status for r in runs] == ["FAILED", "FAILED"]
    assert tracked.active_run() is None


def test_interrupted_fit_is_killed(tracked, iris):
    def interrupt(X):
        raise KeyboardInterrupt

    tracked.autolog()
    with pytest.raises(KeyboardInterrupt):
        FunctionTransformer(interrupt).fit_transform(iris[0])
    assert _runs(tracked)[0].info.status == "KILLED"


def test_exclusive_leaves_user_runs_alone(tracked, iris):
    X, y = iris
    tracked.autolog(exclusive=True)
    with tracked.start_run() as run:
        LogisticRegression(max_iter=300).fit(X, y)
    assert tracked.get_run(run.info.run_id).data.metrics == {}
    LogisticRegression(max_iter=300).fit(X, y)  # outside any run: a run of its own
    assert len(_runs(tracked)) == 2


# -- failures of autologging itself ---------------------------------------------------------------
def test_logging_failure_warns_once_and_the_fit_returns(tracked, iris, monkeypatch):
    import jupyter_mltrack.sklearn

    def broken(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(jupyter_mltrack.sklearn, "log_model", broken)
    X, y = iris
    tracked.autolog()
    model = LogisticRegression(max_iter=300)
    with pytest.warns(UserWarning, match=r"the model not logged \(OSError: disk full\)") as caught:
        assert model.fit(X, y) is model
    assert len([w for w in caught if "autolog" in str(w.message)]) == 1
    assert caught[0].filename == __file__  # points at the user's fit call
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the same problem is not reported twice
        model.fit(X, y)
    run = _runs(tracked)[0]
    assert run.info.status == "FINISHED" and "training_accuracy_score" in run.data.metrics


def test_store_failure_before_fit_still_fits(tracked, iris, monkeypatch):
    from jupyter_mltrack.autolog.patching import FitRun

    def unreachable(*args, **kwargs):
        raise ConnectionError("store unreachable")

    monkeypatch.setattr(FitRun, "open", classmethod(unreachable))
    X, y = iris
    tracked.autolog()
    with pytest.warns(UserWarning, match="store unreachable"):
        model = LogisticRegression(max_iter=300).fit(X, y)
    assert model.predict(X.head(1)).shape == (1,)


def test_silent_suppresses_autolog_warnings(tracked, iris, monkeypatch):
    import jupyter_mltrack.sklearn

    monkeypatch.setattr(jupyter_mltrack.sklearn, "log_model", lambda *a, **k: 1 / 0)
    tracked.autolog(silent=True)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        LogisticRegression(max_iter=300).fit(*iris)


# -- enabling and disabling ------------------------------------------------------------------------
def _class_dicts():
    classes = {cls for cls, _ in sk_autolog._targets()}
    return {
        (cls, name): (name in cls.__dict__, cls.__dict__.get(name))
        for cls in classes
        for name in sk_autolog.FIT_METHODS
    }


def test_disable_restores_the_original_methods(tracked, iris):
    before = _class_dicts()
    original_fit = RandomForestClassifier.fit
    pipeline_fit_transform = Pipeline.__dict__["fit_transform"]
    tracked.autolog()
    tracked.autolog()  # twice: still one layer of patching
    assert RandomForestClassifier.fit is not original_fit
    assert RandomForestClassifier.fit.__wrapped__ is original_fit
    assert Pipeline.__dict__["fit_transform"].fn.__wrapped__ is pipeline_fit_transform.fn
    # available_if still decides: a pipeline ending in a transformer has no fit_predict
    assert not hasattr(make_pipeline(StandardScaler()), "fit_predict")
    LinearRegression().fit(*iris)
    assert len(_runs(tracked)) == 1

    tracked.sklearn.autolog(disable=True)
    assert RandomForestClassifier.fit is original_fit
    assert Pipeline.__dict__["fit_transform"] is pipeline_fit_transform
    assert _class_dicts() == before
    LinearRegression().fit(*iris)
    assert len(_runs(tracked)) == 1


def test_bad_options_are_clear_errors():
    import jupyter_mltrack

    with pytest.raises(InvalidParameterValue, match="max_tuning_runs"):
        jupyter_mltrack.sklearn.autolog(max_tuning_runs=-1)
    with pytest.raises(InvalidParameterValue, match="serialization_format"):
        jupyter_mltrack.sklearn.autolog(serialization_format="json")
    with pytest.raises(InvalidParameterValue, match="exclude_flavors"):
        jupyter_mltrack.autolog(exclude_flavors=["tensorflow"])
    assert not sk_autolog.is_enabled()


def test_exclude_flavors_and_integration_registry():
    import jupyter_mltrack
    from jupyter_mltrack import autolog as package

    every = ["sklearn", "xgboost", "lightgbm", "pytorch", "keras"]
    assert [i.flavor for i in package.integrations()] == every
    jupyter_mltrack.autolog(exclude_flavors=every)
    assert package.enabled_integrations() == []
    jupyter_mltrack.autolog(exclude_flavors=["keras", "xgboost"])
    assert package.enabled_integrations() == ["sklearn", "lightgbm", "pytorch"]
    jupyter_mltrack.autolog()
    assert package.enabled_integrations() == every  # all installed here
    package(disable=True)  # the package module is callable too
    assert package.enabled_integrations() == []


def test_signatures_are_mlflows():
    """Names and defaults of MLflow 3.17's mlflow.autolog and mlflow.sklearn.autolog."""
    import inspect

    import jupyter_mltrack

    def shape(function):
        return [(p.name, p.default) for p in inspect.signature(function).parameters.values()]

    common = [
        ("log_input_examples", False),
        ("log_model_signatures", True),
        ("log_models", True),
        ("log_datasets", True),
    ]
    assert shape(jupyter_mltrack.autolog) == [
        *common,
        ("log_traces", True),
        ("disable", False),
        ("exclusive", False),
        ("disable_for_unsupported_versions", False),
        ("silent", False),
        ("extra_tags", None),
        ("exclude_flavors", None),
    ]
    assert shape(jupyter_mltrack.sklearn.autolog) == [
        *common,
        ("disable", False),
        ("exclusive", False),
        ("disable_for_unsupported_versions", False),
        ("silent", False),
        ("max_tuning_runs", 5),
        ("log_post_training_metrics", True),
        ("serialization_format", "cloudpickle"),
        ("registered_model_name", None),
        ("pos_label", None),
        ("extra_tags", None),
    ]


def test_autolog_name_imports_no_framework():
    code = """
import json, sys
import jupyter_mltrack.autolog.patching  # binds the package as the attribute first
import jupyter_mltrack as mlflow
callable_ = callable(mlflow.autolog)
print(json.dumps({"callable": callable_, "sklearn": "sklearn" in sys.modules}))
"""
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == {"callable": True, "sklearn": False}


# -- models -----------------------------------------------------------------------------------------
def test_input_example_and_registration(tracked, iris):
    X, y = iris
    tracked.sklearn.autolog(log_input_examples=True, registered_model_name="iris-tree")
    DecisionTreeClassifier(max_depth=2).fit(X, y)
    (run,) = _runs(tracked)
    assert "input_example.json" in [
        p.rsplit("/", 1)[-1] for p in _artifacts(tracked, run.info.run_id, "model")
    ]
    (version,) = tracked.MlflowClient().search_model_versions("name='iris-tree'")
    assert version.run_id == run.info.run_id
    loaded = tracked.pyfunc.load_model("models:/iris-tree/1")
    assert list(loaded.predict(X.head(3))) == [0, 0, 0]


# -- the seed guide and the notebook ----------------------------------------------------------------
SEED_SNIPPET = """
mlflow.autolog()   # enables all supported frameworks

# Works automatically for: sklearn, XGBoost, LightGBM, PyTorch, TensorFlow/Keras, Spark MLlib
with mlflow.start_run():
    model = RandomForestClassifier(n_estimators=100)
    model.fit(X_train, y_train)
    # MLflow has already logged: all params, CV metrics, model, feature importance
"""


def test_seed_autologging_snippet_runs_verbatim(tracked):
    X, y = load_breast_cancer(return_X_y=True, as_frame=True)
    X_train, _X_test, y_train, _y_test = train_test_split(X, y, random_state=0)
    namespace = {
        "mlflow": tracked,
        "RandomForestClassifier": RandomForestClassifier,
        "X_train": X_train,
        "y_train": y_train,
    }
    exec(SEED_SNIPPET, namespace)
    run = tracked.last_active_run()
    assert run.info.status == "FINISHED"
    assert run.data.params["n_estimators"] == "100"
    assert set(run.data.metrics) >= CLASSIFIER_METRICS
    assert {"feature_importance.png", "model"} <= set(_artifacts(tracked, run.info.run_id))


def test_fit_in_track_cell_logs_into_the_cell_run(ip):
    ip.run_cell(
        "import jupyter_mltrack as mlflow\n"
        "from sklearn.datasets import load_iris\n"
        "from sklearn.linear_model import LogisticRegression\n"
        "X, y = load_iris(return_X_y=True, as_frame=True)\n"
        "mlflow.autolog()\n"
    ).raise_error()
    result = ip.run_cell(
        "%%track iris-fit\nC = 0.5\nmodel = LogisticRegression(C=C, max_iter=300).fit(X, y)\n"
    )
    result.raise_error()
    import jupyter_mltrack as mlflow

    (run,) = mlflow.search_runs(output_format="list")
    assert run.info.run_name == "iris-fit" and run.info.status == "FINISHED"
    assert "mlflow.autologging" not in run.data.tags
    assert run.data.params["C"] == "0.5" and run.data.params["max_iter"] == "300"
    assert "training_accuracy_score" in run.data.metrics
    assert {"model", "coefficients.png"} <= set(_artifacts(mlflow, run.info.run_id))
    assert not any(a.startswith("figures/") for a in _artifacts(mlflow, run.info.run_id))


def test_autolog_imports_no_framework_until_the_user_does():
    """``autolog()`` hooks every integration in without importing its framework (scikit-learn's
    patching alone imports every estimator module, ~2 s); importing one patches it."""
    import subprocess
    import sys

    code = """
import json, sys
import jupyter_mltrack as mlflow
mlflow.autolog()
heavy = ["sklearn", "torch", "pytorch_lightning", "keras", "xgboost", "lightgbm"]
before = [name for name in heavy if name in sys.modules]
from jupyter_mltrack.autolog import enabled_integrations
on = enabled_integrations()
import sklearn.linear_model
patched = hasattr(sklearn.linear_model.LogisticRegression.fit, "__wrapped__")
print(json.dumps([before, on, patched, [n for n in heavy if n in sys.modules]]))
"""
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=300, check=True
    )
    before, on, patched, after = json.loads(done.stdout.strip().splitlines()[-1])
    assert before == []
    assert on == ["sklearn", "xgboost", "lightgbm", "pytorch", "keras"]  # on, waiting for imports
    assert patched
    # scikit-learn's own estimator modules import torch when it is installed (array API
    # support); nothing else is imported
    assert [name for name in after if name != "torch"] == ["sklearn"]
