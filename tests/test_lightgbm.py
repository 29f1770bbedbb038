"""The LightGBM flavor and autologging: real boosters and scikit-learn wrappers trained on small
data, real stores, a real scoring server."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import warnings
from pathlib import Path

import lightgbm as lgb
import numpy as np
import pandas as pd
import pytest
import yaml

from jupyter_mltrack.exceptions import InvalidParameterValue
from tests.test_serving import free_port, invoke, serve_cmd, start_server, stop_server

ROUNDS = 8
PARAMS = {"objective": "binary", "num_leaves": 4, "verbose": -1, "num_threads": 1}


@pytest.fixture(autouse=True)
def _autolog_off():
    """Every test leaves LightGBM (and scikit-learn) unpatched, whatever happened in it."""
    yield
    import jupyter_mltrack
    from jupyter_mltrack.autolog import lightgbm as lgb_autolog

    jupyter_mltrack.autolog(disable=True)
    jupyter_mltrack.lightgbm.autolog(disable=True)
    assert not lgb_autolog.is_enabled()


@pytest.fixture(scope="module")
def data():
    """A small binary task with int and float columns; train and validation parts."""
    rng = np.random.default_rng(0)
    n = 240
    X = pd.DataFrame(
        {
            "age": rng.integers(18, 80, n),
            "tenure": rng.integers(0, 72, n),
            "charge": rng.uniform(20, 120, n),
        }
    )
    y = ((X.charge > 70) & (X.tenure < 36)).astype(int)
    return X[:180], y[:180], X[180:], y[180:]


@pytest.fixture
def tracked(tmp_path):
    import jupyter_mltrack as mlflow

    mlflow.set_tracking_uri(str(tmp_path / "store"))
    return mlflow


def _runs(mlflow):
    return mlflow.search_runs(output_format="list", order_by=["attributes.start_time ASC"])


def _artifacts(mlflow, run_id, path=None):
    return sorted(a.path for a in mlflow.MlflowClient().list_artifacts(run_id, path))


def _history(mlflow, run_id, key):
    return [(m.step, m.value) for m in mlflow.MlflowClient().get_metric_history(run_id, key)]


def _contexts(run):
    return sorted(
        (d.dataset.name, t.value)
        for d in run.inputs.dataset_inputs
        for t in d.tags
        if t.key == "mlflow.data.context"
    )


def _native(data, rounds=ROUNDS, **train_kwargs):
    X, y, Xv, yv = data
    train_set = lgb.Dataset(X, label=y)
    valid_set = lgb.Dataset(Xv, label=yv, reference=train_set)
    return lgb.train(
        PARAMS,
        train_set,
        rounds,
        valid_sets=[train_set, valid_set],
        valid_names=["train", "valid"],
        **train_kwargs,
    )


# -- autologging: native train --------------------------------------------------------------------
def test_native_train_logs_a_run_with_everything(tracked, data):
    X, _, Xv, _ = data
    tracked.lightgbm.autolog()
    booster = _native(data)
    (run,) = _runs(tracked)
    run_id = run.info.run_id
    assert run.info.status == "FINISHED" and run.data.tags["mlflow.autologging"] == "lightgbm"
    assert {
        "objective": "binary",
        "num_leaves": "4",
        "num_boost_round": str(ROUNDS),
        "keep_training_booster": "False",
    }.items() <= run.data.params.items()
    assert "train_set" not in run.data.params and "callbacks" not in run.data.params
    for key in ("train-binary_logloss", "valid-binary_logloss"):
        assert [s for s, _ in _history(tracked, run_id, key)] == list(range(ROUNDS))
    assert "best_iteration" not in run.data.metrics  # no early stopping
    files = set(_artifacts(tracked, run_id))
    assert {
        "feature_importance_split.json",
        "feature_importance_split.png",
        "feature_importance_gain.json",
        "feature_importance_gain.png",
        "model",
    } <= files
    client = tracked.MlflowClient()
    split = json.loads(
        Path(client.download_artifacts(run_id, "feature_importance_split.json")).read_text()
    )
    assert split == dict(zip(X.columns, booster.feature_importance("split").tolist()))
    assert _contexts(run) == [("dataset", "train"), ("valid", "eval")]
    loaded = tracked.lightgbm.load_model(f"runs:/{run_id}/model")
    assert isinstance(loaded, lgb.Booster)
    np.testing.assert_allclose(loaded.predict(Xv), booster.predict(Xv))
    pyfunc = tracked.pyfunc.load_model(f"runs:/{run_id}/model")
    np.testing.assert_allclose(pyfunc.predict(Xv), booster.predict(Xv))
    np.testing.assert_allclose(pyfunc.predict(Xv.to_numpy()), booster.predict(Xv))
    assert pyfunc.metadata.get_input_schema().input_names() == list(X.columns)


def test_early_stopping_records_stopped_and_best_iteration(tracked):
    rng = np.random.default_rng(1)
    X = rng.normal(size=(300, 5))
    y = (X[:, 0] + rng.normal(scale=2.0, size=300) > 0).astype(int)  # noisy: overfits fast
    train_set = lgb.Dataset(X[:200], label=y[:200])
    valid_set = lgb.Dataset(X[200:], label=y[200:], reference=train_set)
    tracked.lightgbm.autolog()
    booster = lgb.train(
        {**PARAMS, "num_leaves": 31, "learning_rate": 0.8, "min_data_in_leaf": 2},
        train_set,
        200,
        valid_sets=[valid_set],
        callbacks=[lgb.early_stopping(3, verbose=False)],
    )
    (run,) = _runs(tracked)
    stopped, best = (
        int(run.data.metrics["stopped_iteration"]),
        int(run.data.metrics["best_iteration"]),
    )
    assert best == booster.best_iteration and stopped == best + 3 < 200
    history = _history(tracked, run.info.run_id, "valid_0-binary_logloss")
    # one point per iteration run (MLflow's stopped_iteration), then the best one's value
    assert [s for s, _ in history] == list(range(stopped + 1))
    assert history[-1][1] == history[best - 1][1]
    assert history[-1][1] == pytest.approx(booster.best_score["valid_0"]["binary_logloss"])


def test_log_every_n_steps_and_no_datasets(tracked, data):
    tracked.lightgbm.autolog(log_every_n_steps=4, log_datasets=False, log_models=False)
    _native(data, rounds=10)
    (run,) = _runs(tracked)
    assert [s for s, _ in _history(tracked, run.info.run_id, "valid-binary_logloss")] == [0, 4, 8]
    assert run.inputs.dataset_inputs == []
    assert "model" not in _artifacts(tracked, run.info.run_id)


# -- autologging: the scikit-learn wrappers -------------------------------------------------------
def test_wrapper_fit_is_one_run_with_everything(tracked, data):
    """With every integration on (scikit-learn too, whose LabelEncoder the classifier fits
    inside), a wrapper's fit is one run."""
    X, y, Xv, yv = data
    tracked.autolog(log_input_examples=True)
    model = lgb.LGBMClassifier(n_estimators=6, num_leaves=4, verbose=-1, n_jobs=1)
    assert model.fit(X, y, eval_X=Xv, eval_y=yv) is model
    (run,) = _runs(tracked)
    run_id = run.info.run_id
    assert run.info.status == "FINISHED" and run.data.tags["estimator_name"] == "LGBMClassifier"
    assert run.data.params["num_boost_round"] == "6" and run.data.params["num_leaves"] == "4"
    history = _history(tracked, run_id, "valid_0-binary_logloss")
    assert [s for s, _ in history] == list(range(6))
    assert history[-1][1] == pytest.approx(model.evals_result_["valid_0"]["binary_logloss"][-1])
    assert {"feature_importance_gain.png", "model"} <= set(_artifacts(tracked, run_id))
    assert "model/input_example.json" in _artifacts(tracked, run_id, "model")
    assert _contexts(run) == [("dataset", "train"), ("valid_0", "eval")]
    loaded = tracked.lightgbm.load_model(f"runs:/{run_id}/model")
    assert type(loaded) is lgb.LGBMClassifier
    np.testing.assert_array_equal(loaded.predict(Xv), model.predict(Xv))
    np.testing.assert_allclose(loaded.predict_proba(Xv), model.predict_proba(Xv))
    pyfunc = tracked.pyfunc.load_model(f"runs:/{run_id}/model")
    np.testing.assert_array_equal(pyfunc.predict(Xv), model.predict(Xv))


def test_wrapper_early_stopping_with_eval_set(tracked, data):
    X, y, Xv, yv = data
    tracked.lightgbm.autolog()
    model = lgb.LGBMRegressor(n_estimators=300, learning_rate=0.9, verbose=-1, n_jobs=1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # LightGBM 4.7 prefers eval_X/eval_y to eval_set
        model.fit(X, y, eval_set=[(Xv, yv)], callbacks=[lgb.early_stopping(2, verbose=False)])
    (run,) = _runs(tracked)
    stopped = int(run.data.metrics["stopped_iteration"])
    assert run.data.metrics["best_iteration"] == model.best_iteration_
    assert stopped == model.best_iteration_ + 2 < 300
    steps = [s for s, _ in _history(tracked, run.info.run_id, "valid_0-l2")]
    assert steps == list(range(stopped + 1))


def test_wrapper_inside_a_pipeline_logs_into_the_pipeline_run(tracked, data):
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    X, y, Xv, _ = data
    tracked.autolog()
    pipeline = make_pipeline(StandardScaler(), lgb.LGBMClassifier(n_estimators=4, verbose=-1))
    pipeline.fit(X, y)
    (run,) = _runs(tracked)
    assert run.data.tags["estimator_name"] == "Pipeline"
    assert "num_boost_round" not in run.data.params
    loaded = tracked.sklearn.load_model(f"runs:/{run.info.run_id}/model")
    np.testing.assert_array_equal(loaded.predict(Xv), pipeline.predict(Xv))


def test_train_in_a_track_cell_logs_into_the_cell_run(ip):
    ip.run_cell(
        "import numpy as np, lightgbm as lgb\n"
        "import jupyter_mltrack as mlflow\n"
        "rng = np.random.default_rng(0)\n"
        "X = rng.normal(size=(120, 3)); y = (X[:, 0] > 0).astype(int)\n"
        "mlflow.autolog()\n"
    ).raise_error()
    ip.run_cell(
        "%%track lgb-cell\n"
        "rounds = 5\n"
        "ds = lgb.Dataset(X, label=y)\n"
        "booster = lgb.train({'objective': 'binary', 'verbose': -1}, ds, rounds,"
        " valid_sets=[ds])\n"
    ).raise_error()
    import jupyter_mltrack as mlflow

    (run,) = mlflow.search_runs(output_format="list")
    assert run.info.run_name == "lgb-cell" and run.info.status == "FINISHED"
    assert "mlflow.autologging" not in run.data.tags
    assert run.data.params["rounds"] == "5" and run.data.params["num_boost_round"] == "5"
    assert len(_history(mlflow, run.info.run_id, "training-binary_logloss")) == 5
    assert {"model", "feature_importance_split.png"} <= set(_artifacts(mlflow, run.info.run_id))


# -- autologging: failures, enabling, disabling ---------------------------------------------------
def test_failing_store_writes_warn_once_and_training_goes_on(tracked, data, monkeypatch):
    from jupyter_mltrack.tracking.client import Client

    def broken(*args, **kwargs):
        raise OSError("disk full")

    tracked.lightgbm.autolog()
    monkeypatch.setattr(Client, "log_batch", broken)
    with pytest.warns(UserWarning, match=r"metrics not logged \(OSError: disk full\)") as caught:
        booster = _native(data)
    assert booster.current_iteration() == ROUNDS
    assert len([w for w in caught if "autolog" in str(w.message)]) == 1
    assert caught[0].filename == _native.__code__.co_filename
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the same problem is not reported twice
        _native(data)
    with pytest.warns(UserWarning, match=r"LGBMRegressor.fit .*params not logged \(OSError"):
        model = lgb.LGBMRegressor(n_estimators=3, verbose=-1).fit(data[0], data[1])
    assert model.predict(data[2]).shape == (len(data[2]),)
    monkeypatch.undo()
    runs = _runs(tracked)
    assert len(runs) == 3 and all(r.info.status == "FINISHED" for r in runs)


def test_disable_restores_everything_exactly(tracked, data):
    import lightgbm.engine
    import lightgbm.sklearn

    def state():
        functions = [lgb.train, lightgbm.engine.train, lightgbm.sklearn.train]
        classes = [lgb.LGBMModel, lgb.LGBMClassifier, lgb.LGBMRegressor, lgb.LGBMRanker]
        return functions, [dict(vars(c)) for c in classes]

    before = state()
    tracked.lightgbm.autolog()
    tracked.lightgbm.autolog()  # twice: still one layer of patching
    assert lgb.train is not before[0][0] and lgb.train.__wrapped__ is before[0][0]
    assert lgb.LGBMClassifier.fit.__wrapped__ is before[1][1]["fit"]
    _native(data, rounds=2)
    assert len(_runs(tracked)) == 1
    tracked.lightgbm.autolog(disable=True)
    after = state()
    assert all(a is b for a, b in zip(after[0], before[0])) and after[1] == before[1]
    _native(data, rounds=2)
    lgb.LGBMClassifier(n_estimators=2, verbose=-1).fit(data[0], data[1])
    assert len(_runs(tracked)) == 1


def test_enabling_imports_no_lightgbm_and_patches_on_import():
    code = """
import json, sys
import jupyter_mltrack as mlflow
mlflow.lightgbm.autolog()
imported = "lightgbm" in sys.modules
import lightgbm
print(json.dumps({"imported": imported, "patched": lightgbm.train.__code__.co_name == "train_with_autolog"}))
"""
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout.strip().splitlines()[-1]) == {"imported": False, "patched": True}


def test_bad_autolog_options_are_clear_errors():
    import jupyter_mltrack
    from jupyter_mltrack.autolog import lightgbm as lgb_autolog

    with pytest.raises(InvalidParameterValue, match="log_every_n_steps must be a positive"):
        jupyter_mltrack.lightgbm.autolog(log_every_n_steps=-2)
    with pytest.raises(InvalidParameterValue, match="registered_model_name must be a string"):
        jupyter_mltrack.lightgbm.autolog(registered_model_name=3)
    assert not lgb_autolog.is_enabled()


def test_autolog_signature_is_mlflows():
    import inspect

    import jupyter_mltrack

    shape = [
        (p.name, p.default)
        for p in inspect.signature(jupyter_mltrack.lightgbm.autolog).parameters.values()
    ]
    assert shape == [
        ("log_input_examples", False),
        ("log_model_signatures", True),
        ("log_models", True),
        ("log_datasets", True),
        ("disable", False),
        ("exclusive", False),
        ("disable_for_unsupported_versions", False),
        ("silent", False),
        ("registered_model_name", None),
        ("extra_tags", None),
        ("log_every_n_steps", 1),
    ]


# -- the flavor -----------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def classifier(data):
    X, y, *_ = data
    return lgb.LGBMClassifier(n_estimators=5, num_leaves=4, verbose=-1).fit(X, y)


def test_save_and_load_booster_and_wrapper(tracked, data, classifier, tmp_path):
    Xv = data[2]
    booster = _native(data)
    tracked.lightgbm.save_model(booster, tmp_path / "booster")
    tracked.lightgbm.save_model(classifier, tmp_path / "wrapper", input_example=Xv.head(2))
    assert (tmp_path / "booster" / "model.lgb").is_file()
    assert (tmp_path / "wrapper" / "model.skops").is_file()  # skops: MLflow 3's default
    conf = yaml.safe_load((tmp_path / "booster" / "MLmodel").read_text())["flavors"]
    assert conf["lightgbm"]["model_class"] == "lightgbm.basic.Booster"
    assert conf["lightgbm"]["lgb_version"] == lgb.__version__
    assert conf["python_function"]["loader_module"] == "jupyter_mltrack.lightgbm"
    loaded = tracked.lightgbm.load_model(str(tmp_path / "booster"))
    np.testing.assert_allclose(loaded.predict(Xv), booster.predict(Xv))
    wrapper = tracked.lightgbm.load_model(str(tmp_path / "wrapper"))
    assert type(wrapper) is lgb.LGBMClassifier
    np.testing.assert_allclose(wrapper.predict_proba(Xv), classifier.predict_proba(Xv))
    wrapper_conf = yaml.safe_load((tmp_path / "wrapper" / "MLmodel").read_text())["flavors"]
    assert wrapper_conf["lightgbm"]["serialization_format"] == "skops"
    assert "lightgbm.basic.Booster" in wrapper_conf["lightgbm"]["skops_trusted_types"]
    reqs = (tmp_path / "wrapper" / "requirements.txt").read_text().splitlines()
    assert {r.split("==")[0] for r in reqs} >= {"lightgbm", "scikit-learn", "skops", "pandas"}
    assert tracked.lightgbm.get_default_pip_requirements() == [f"lightgbm=={lgb.__version__}"]
    pyfunc = tracked.pyfunc.load_model(str(tmp_path / "wrapper"))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # an array gets the fitted column names: no warning
        np.testing.assert_array_equal(pyfunc.predict(Xv.to_numpy()), classifier.predict(Xv))
    np.testing.assert_array_equal(pyfunc.predict(Xv), classifier.predict(Xv))


def test_cloudpickle_format_and_extra_files(tracked, data, classifier, tmp_path):
    Xv = data[2]
    notes = tmp_path / "notes.txt"
    notes.write_text("v1")
    with tracked.start_run():
        info = tracked.lightgbm.log_model(
            classifier, name="m", serialization_format="cloudpickle", extra_files=[str(notes)]
        )
    files = {Path(p).name for p in _artifacts(tracked, info.run_id, "m")}
    assert {"model.pkl", "extra_files"} <= files
    reqs = Path(tracked.pyfunc.get_model_dependencies(info.model_uri)).read_text()
    assert "cloudpickle==" in reqs and "skops" not in reqs
    loaded = tracked.lightgbm.load_model(info.model_uri)
    np.testing.assert_array_equal(loaded.predict(Xv), classifier.predict(Xv))


def test_loads_a_model_saved_by_mlflow(tracked, data, tmp_path):
    """The directory MLflow 3.17 writes for a Booster (its MLmodel, verbatim apart from the
    times) loads here, and through pyfunc (loader_module mlflow.lightgbm)."""
    Xv = data[2]
    booster = _native(data)
    folder = tmp_path / "mlflow_model"
    folder.mkdir()
    booster.save_model(str(folder / "model.lgb"))
    (folder / "MLmodel").write_text(
        """flavors:
  lightgbm:
    code: null
    data: model.lgb
    lgb_version: 4.7.0
    model_class: lightgbm.basic.Booster
    serialization_format: skops
    skops_trusted_types:
    - lightgbm.sklearn.LGBMClassifier
    - lightgbm.sklearn.LGBMRegressor
    - collections.OrderedDict
    - lightgbm.basic.Booster
  python_function:
    data: model.lgb
    env:
      conda: conda.yaml
      virtualenv: python_env.yaml
    loader_module: mlflow.lightgbm
    python_version: 3.11.7
mlflow_version: 3.17.2
model_id: null
model_size_bytes: 4032
model_uuid: f3cb60afba67414e8f540f1b59832883
prompts: null
utc_time_created: '2026-11-26 09:35:35.520360'
"""
    )
    np.testing.assert_allclose(
        tracked.lightgbm.load_model(str(folder)).predict(Xv), booster.predict(Xv)
    )
    np.testing.assert_allclose(
        tracked.pyfunc.load_model(str(folder)).predict(Xv), booster.predict(Xv)
    )


def test_flavor_bad_inputs_are_clear_errors(tracked, data, classifier, tmp_path):
    import xgboost as xgb

    X, y, *_ = data
    with pytest.raises(
        InvalidParameterValue, match=r"got xgboost\..*XGBRegressor.*xgboost\.log_model"
    ):
        tracked.lightgbm.log_model(xgb.XGBRegressor(n_estimators=2).fit(X, y), name="m")
    with pytest.raises(InvalidParameterValue, match="LGBMRegressor is not fitted; call fit"):
        tracked.lightgbm.save_model(lgb.LGBMRegressor(), tmp_path / "unfitted")
    with pytest.raises(InvalidParameterValue, match=r"got builtins\.dict"):
        tracked.lightgbm.save_model({"not": "a model"}, tmp_path / "dict")
    with pytest.raises(TypeError, match=r"unexpected keyword argument.*model_format"):
        tracked.lightgbm.log_model(classifier, name="m", model_format="json")
    with pytest.raises(InvalidParameterValue, match="Unknown serialization_format 'joblib'"):
        tracked.lightgbm.log_model(classifier, name="m", serialization_format="joblib")
    with pytest.raises(InvalidParameterValue, match="extra_files must be a list"):
        tracked.lightgbm.save_model(classifier, tmp_path / "x", extra_files="notes.txt")
    assert not (tmp_path / "unfitted").exists() and _runs(tracked) == []
    tracked.xgboost.save_model(xgb.XGBRegressor(n_estimators=2).fit(X, y), tmp_path / "xgb")
    with pytest.raises(Exception, match="has no 'lightgbm' flavor"):
        tracked.lightgbm.load_model(str(tmp_path / "xgb"))


# -- serving --------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def served(tmp_path_factory, data, classifier):
    """One real ``mltrack models serve`` process for a logged LGBMClassifier."""
    import jupyter_mltrack as mlflow

    root = tmp_path_factory.mktemp("lgb-serving")
    store = str(root / "store")
    mlflow.set_tracking_uri(store)
    with mlflow.start_run():
        info = mlflow.lightgbm.log_model(classifier, name="model", input_example=data[0].head(2))
    mlflow.set_tracking_uri(None)
    port = free_port()
    env = {**os.environ, "MLTRACK_TRACKING_URI": store}
    proc = start_server(serve_cmd(info.model_uri, port), port, env)
    yield port
    stop_server(proc)


def test_served_classifier_answers_like_the_original(served, data, classifier):
    Xv = data[2].head(5)
    status, body = invoke(served, {"dataframe_records": Xv.to_dict(orient="records")})
    assert status == 200, body
    assert body["predictions"] == classifier.predict(Xv).tolist()
    split = {"columns": list(Xv.columns), "data": Xv.to_numpy().tolist()}
    status, body = invoke(served, {"dataframe_split": split})
    assert status == 200 and body["predictions"] == classifier.predict(Xv).tolist()
    status, body = invoke(
        served, {"dataframe_records": [{"age": "old", "tenure": 1, "charge": 2.0}]}
    )
    assert status == 400 and "age" in json.dumps(body)
