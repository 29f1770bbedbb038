"""The XGBoost flavor and autologging: real boosters and scikit-learn wrappers trained on small
data, real stores, a real scoring server."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import xgboost as xgb
import yaml

from jupyter_mltrack.exceptions import InvalidParameterValue
from tests.test_serving import free_port, invoke, serve_cmd, start_server, stop_server

ROUNDS = 8


@pytest.fixture(autouse=True)
def _autolog_off():
    """Every test leaves XGBoost (and scikit-learn) unpatched, whatever happened in it."""
    yield
    import jupyter_mltrack
    from jupyter_mltrack.autolog import xgboost as xgb_autolog

    jupyter_mltrack.autolog(disable=True)
    jupyter_mltrack.xgboost.autolog(disable=True)
    assert not xgb_autolog.is_enabled()


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
    dtrain, dval = xgb.DMatrix(X, label=y), xgb.DMatrix(Xv, label=yv)
    params = {"objective": "binary:logistic", "max_depth": 2, "eta": 0.3, "nthread": 1}
    evals = [(dtrain, "train"), (dval, "validation")]
    return xgb.train(params, dtrain, rounds, evals=evals, verbose_eval=False, **train_kwargs)


# -- autologging: native train --------------------------------------------------------------------
def test_native_train_logs_a_run_with_everything(tracked, data):
    X, _, Xv, _ = data
    tracked.xgboost.autolog()
    booster = _native(data)
    (run,) = _runs(tracked)
    run_id = run.info.run_id
    assert run.info.status == "FINISHED" and run.data.tags["mlflow.autologging"] == "xgboost"
    assert {
        "objective": "binary:logistic",
        "max_depth": "2",
        "eta": "0.3",
        "num_boost_round": str(ROUNDS),
        "early_stopping_rounds": "None",
    }.items() <= run.data.params.items()
    assert "dtrain" not in run.data.params and "callbacks" not in run.data.params
    for key in ("train-logloss", "validation-logloss"):
        history = _history(tracked, run_id, key)
        assert [step for step, _ in history] == list(range(ROUNDS))
    final = booster.eval(xgb.DMatrix(Xv, label=data[3]), name="validation")
    assert run.data.metrics["validation-logloss"] == pytest.approx(
        float(final.split(":")[-1]), 1e-5
    )
    assert "stopped_iteration" not in run.data.metrics
    # feature importance: MLflow's JSON and a chart
    assert {"feature_importance_weight.json", "feature_importance_weight.png", "model"} <= set(
        _artifacts(tracked, run_id)
    )
    client = tracked.MlflowClient()
    local = Path(client.download_artifacts(run_id, "feature_importance_weight.json"))
    assert json.loads(local.read_text()) == booster.get_score(importance_type="weight")
    png = Path(client.download_artifacts(run_id, "feature_importance_weight.png")).read_bytes()
    assert png.startswith(b"\x89PNG")
    # the training and validation data as dataset inputs
    assert _contexts(run) == [("dataset", "train"), ("validation", "eval")]
    train_input = next(d for d in run.inputs.dataset_inputs if d.dataset.name == "dataset")
    assert [c["name"] for c in json.loads(train_input.dataset.schema)["mlflow_colspec"]] == list(
        X.columns
    )
    # the model loads as a Booster predicting the same, and through pyfunc on frames and arrays
    loaded = tracked.xgboost.load_model(f"runs:/{run_id}/model")
    assert isinstance(loaded, xgb.Booster)
    expected = booster.predict(xgb.DMatrix(Xv))
    np.testing.assert_allclose(loaded.predict(xgb.DMatrix(Xv)), expected)
    pyfunc = tracked.pyfunc.load_model(f"runs:/{run_id}/model")
    np.testing.assert_allclose(pyfunc.predict(Xv), expected)
    np.testing.assert_allclose(pyfunc.predict(Xv.to_numpy()), expected, rtol=1e-6)
    assert pyfunc.metadata.get_input_schema().input_names() == list(X.columns)


def test_early_stopping_records_stopped_and_best_iteration(tracked):
    rng = np.random.default_rng(1)
    X = rng.normal(size=(300, 5))
    y = (X[:, 0] + rng.normal(scale=2.0, size=300) > 0).astype(int)  # noisy: overfits fast
    dtrain, dval = xgb.DMatrix(X[:200], label=y[:200]), xgb.DMatrix(X[200:], label=y[200:])
    tracked.xgboost.autolog()
    booster = xgb.train(
        {"objective": "binary:logistic", "max_depth": 6, "eta": 1.0, "nthread": 1},
        dtrain,
        200,
        evals=[(dval, "validation")],
        early_stopping_rounds=3,
        verbose_eval=False,
    )
    (run,) = _runs(tracked)
    metrics = run.data.metrics
    stopped, best = int(metrics["stopped_iteration"]), int(metrics["best_iteration"])
    assert best == booster.best_iteration and stopped == booster.num_boosted_rounds() - 1
    assert stopped < 199 and stopped == best + 3
    history = _history(tracked, run.info.run_id, "validation-logloss")
    # one point per iteration run, then the best iteration's value one step past the last
    assert [step for step, _ in history] == list(range(stopped + 2))
    assert history[-1][1] == history[best][1] == pytest.approx(booster.best_score)
    assert run.data.params["early_stopping_rounds"] == "3"


def test_log_every_n_steps_thins_the_curve(tracked, data):
    tracked.xgboost.autolog(log_every_n_steps=3)
    _native(data, rounds=10)
    (run,) = _runs(tracked)
    assert [s for s, _ in _history(tracked, run.info.run_id, "train-logloss")] == [0, 3, 6, 9]


def test_options_input_example_registration_format_and_no_models(tracked, data):
    X, *_ = data
    tracked.xgboost.autolog(
        log_input_examples=True,
        registered_model_name="churn-xgb",
        model_format="json",
        importance_types=["gain", "cover"],
        log_datasets=False,
        extra_tags={"team": "ml"},
    )
    _native(data)
    (run,) = _runs(tracked)
    run_id = run.info.run_id
    files = _artifacts(tracked, f"{run_id}", "model")
    assert "model/model.json" in files and "model/input_example.json" in files
    assert {"feature_importance_gain.json", "feature_importance_cover.png"} <= set(
        _artifacts(tracked, run_id)
    )
    assert "feature_importance_weight.json" not in _artifacts(tracked, run_id)
    assert run.inputs.dataset_inputs == [] and run.data.tags["team"] == "ml"
    (version,) = tracked.MlflowClient().search_model_versions("name='churn-xgb'")
    assert version.run_id == run_id
    pyfunc = tracked.pyfunc.load_model("models:/churn-xgb/1")
    assert pyfunc.predict(X.head(2)).shape == (2,)

    tracked.xgboost.autolog(log_models=False)
    _native(data)
    assert "model" not in _artifacts(tracked, _runs(tracked)[-1].info.run_id)


def test_arrays_and_a_dmatrix_built_before_autolog(tracked):
    """A DMatrix made before autolog was on (no reference to its data) is read back, missing
    values as NaN; the array-trained booster predicts through pyfunc on arrays and frames."""
    rng = np.random.default_rng(2)
    X = rng.normal(size=(150, 4))
    X[::7, 1] = np.nan
    y = (X[:, 0] > 0).astype(int)
    dtrain = xgb.DMatrix(X, label=y)
    tracked.xgboost.autolog(log_input_examples=True)
    booster = xgb.train({"objective": "binary:logistic", "nthread": 1}, dtrain, 3)
    (run,) = _runs(tracked)
    (train_input,) = run.inputs.dataset_inputs
    from jupyter_mltrack.data import from_numpy

    expected_digest = from_numpy(X.astype(np.float32), targets=y.astype(np.float32)).digest
    assert train_input.dataset.digest == expected_digest
    pyfunc = tracked.pyfunc.load_model(f"runs:/{run.info.run_id}/model")
    expected = booster.predict(xgb.DMatrix(X[:5]))
    np.testing.assert_allclose(pyfunc.predict(X[:5].astype(np.float32)), expected, rtol=1e-6)
    assert pyfunc.metadata.get_input_schema().is_tensor_spec()


def test_silent_and_unsupported_versions(tracked, data, monkeypatch):
    from jupyter_mltrack.autolog import xgboost as xgb_autolog
    from jupyter_mltrack.tracking.client import Client

    tracked.xgboost.autolog(silent=True)
    monkeypatch.setattr(Client, "log_batch", lambda *a, **k: 1 / 0)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert _native(data, rounds=2).num_boosted_rounds() == 2
    monkeypatch.undo()
    monkeypatch.setattr(xgb_autolog._LIBRARY, "supported_versions", ((9, 0), (9, 1)))
    with pytest.warns(UserWarning, match=r"outside the versions autologging is tested with"):
        tracked.xgboost.autolog(disable_for_unsupported_versions=True)
    assert not xgb_autolog.is_enabled() and xgb.train.__code__.co_name != "train_with_autolog"
    _native(data, rounds=2)
    assert len(_runs(tracked)) == 1  # only the silent one


# -- autologging: the scikit-learn wrappers -------------------------------------------------------
def test_wrapper_fit_is_one_run_with_everything(tracked, data):
    """With every integration on (scikit-learn too), a wrapper's fit is one run."""
    X, y, Xv, yv = data
    tracked.autolog()
    model = xgb.XGBClassifier(n_estimators=6, max_depth=2, n_jobs=1)
    assert model.fit(X, y, eval_set=[(Xv, yv)], verbose=False) is model
    (run,) = _runs(tracked)
    run_id = run.info.run_id
    assert run.info.status == "FINISHED"
    assert run.data.tags["estimator_name"] == "XGBClassifier"
    assert run.data.params["num_boost_round"] == "6" and run.data.params["max_depth"] == "2"
    assert [s for s, _ in _history(tracked, run_id, "validation_0-logloss")] == list(range(6))
    assert run.data.metrics["validation_0-logloss"] == pytest.approx(
        model.evals_result()["validation_0"]["logloss"][-1]
    )
    assert {"feature_importance_weight.png", "model"} <= set(_artifacts(tracked, run_id))
    assert _contexts(run) == [("dataset", "train"), ("validation_0", "eval")]
    loaded = tracked.xgboost.load_model(f"runs:/{run_id}/model")
    assert type(loaded) is xgb.XGBClassifier
    np.testing.assert_array_equal(loaded.predict(Xv), model.predict(Xv))
    np.testing.assert_allclose(loaded.predict_proba(Xv), model.predict_proba(Xv))
    pyfunc = tracked.pyfunc.load_model(f"runs:/{run_id}/model")
    np.testing.assert_array_equal(pyfunc.predict(Xv), model.predict(Xv))


def test_wrapper_early_stopping(tracked, data):
    X, y, Xv, yv = data
    tracked.xgboost.autolog()
    model = xgb.XGBRegressor(n_estimators=300, learning_rate=1.0, early_stopping_rounds=2, n_jobs=1)
    model.fit(X, y, eval_set=[(Xv, yv)], verbose=False)
    (run,) = _runs(tracked)
    stopped = int(run.data.metrics["stopped_iteration"])
    assert run.data.metrics["best_iteration"] == model.best_iteration
    assert stopped == model.best_iteration + 2 < 299
    steps = [s for s, _ in _history(tracked, run.info.run_id, "validation_0-rmse")]
    assert steps == list(range(stopped + 2))


def test_wrapper_inside_a_pipeline_logs_into_the_pipeline_run(tracked, data):
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    X, y, Xv, _ = data
    tracked.autolog()
    pipeline = make_pipeline(StandardScaler(), xgb.XGBClassifier(n_estimators=4, n_jobs=1))
    pipeline.fit(X, y)
    (run,) = _runs(tracked)
    assert run.data.tags["estimator_name"] == "Pipeline"
    assert "num_boost_round" not in run.data.params  # the inner fit made no run or params
    loaded = tracked.sklearn.load_model(f"runs:/{run.info.run_id}/model")
    np.testing.assert_array_equal(loaded.predict(Xv), pipeline.predict(Xv))


def test_fit_error_propagates_and_the_run_fails(tracked, data):
    X, y, *_ = data
    tracked.xgboost.autolog()
    with pytest.raises(ValueError):
        xgb.XGBClassifier(n_estimators=2).fit(X, y[:10])
    with pytest.raises(TypeError, match="Invalid type for the `evals`"):
        xgb.train({}, xgb.DMatrix(X, label=y), 2, evals=[("not a DMatrix", "v")])
    with pytest.raises(TypeError):  # train() itself says what is wrong with its arguments
        xgb.train({}, dtrain=None, bogus=1)
    runs = _runs(tracked)
    assert [r.info.status for r in runs] == ["FAILED", "FAILED", "FAILED"]


def test_exclusive_leaves_user_runs_alone(tracked, data):
    tracked.xgboost.autolog(exclusive=True)
    with tracked.start_run() as run:
        _native(data)
    (only,) = _runs(tracked)
    assert only.info.run_id == run.info.run_id and only.data.params == {}


def test_train_in_a_track_cell_logs_into_the_cell_run(ip):
    ip.run_cell(
        "import numpy as np, xgboost as xgb\n"
        "import jupyter_mltrack as mlflow\n"
        "rng = np.random.default_rng(0)\n"
        "X = rng.normal(size=(120, 3)); y = (X[:, 0] > 0).astype(int)\n"
        "mlflow.autolog()\n"
    ).raise_error()
    ip.run_cell(
        "%%track xgb-cell\n"
        "rounds = 5\n"
        "d = xgb.DMatrix(X, label=y)\n"
        "booster = xgb.train({'objective': 'binary:logistic'}, d, rounds, evals=[(d, 'train')],"
        " verbose_eval=False)\n"
    ).raise_error()
    import jupyter_mltrack as mlflow

    (run,) = mlflow.search_runs(output_format="list")
    assert run.info.run_name == "xgb-cell" and run.info.status == "FINISHED"
    assert "mlflow.autologging" not in run.data.tags
    assert run.data.params["rounds"] == "5" and run.data.params["num_boost_round"] == "5"
    assert len(_history(mlflow, run.info.run_id, "train-logloss")) == 5
    assert {"model", "feature_importance_weight.png"} <= set(_artifacts(mlflow, run.info.run_id))


# -- autologging: failures, enabling, disabling ---------------------------------------------------
def test_failing_store_writes_warn_once_and_training_goes_on(tracked, data, monkeypatch):
    from jupyter_mltrack.tracking.client import Client

    def broken(*args, **kwargs):
        raise OSError("disk full")

    tracked.xgboost.autolog()
    monkeypatch.setattr(Client, "log_batch", broken)
    with pytest.warns(UserWarning, match=r"metrics not logged \(OSError: disk full\)") as caught:
        booster = _native(data)
    assert booster.num_boosted_rounds() == ROUNDS
    assert len([w for w in caught if "autolog" in str(w.message)]) == 1
    assert caught[0].filename == _native.__code__.co_filename  # points at the training call
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the same problem is not reported twice
        _native(data)
    with pytest.warns(UserWarning, match=r"XGBClassifier.fit .*params not logged \(OSError"):
        model = xgb.XGBClassifier(n_estimators=3).fit(data[0], data[1])
    assert model.predict(data[2]).shape == (len(data[2]),)
    monkeypatch.undo()
    runs = _runs(tracked)
    assert len(runs) == 3 and all(r.info.status == "FINISHED" for r in runs)


def test_failing_model_logging_keeps_the_wrapper_fit(tracked, data, monkeypatch):
    import jupyter_mltrack.xgboost

    monkeypatch.setattr(jupyter_mltrack.xgboost, "log_model", lambda *a, **k: 1 / 0)
    tracked.xgboost.autolog()
    model = xgb.XGBRegressor(n_estimators=3)
    with pytest.warns(UserWarning, match=r"the model not logged \(ZeroDivisionError"):
        assert model.fit(data[0], data[1]) is model
    (run,) = _runs(tracked)
    assert run.info.status == "FINISHED" and run.data.params["num_boost_round"] == "3"


def test_disable_restores_everything_exactly(tracked, data):
    import xgboost.sklearn
    import xgboost.training

    def state():
        functions = [xgb.train, xgboost.training.train, xgboost.sklearn.train]
        classes = [xgb.XGBModel, xgb.XGBClassifier, xgb.XGBRegressor, xgb.XGBRFClassifier]
        return functions, [dict(vars(c)) for c in classes], xgb.DMatrix.__init__

    before = state()
    tracked.xgboost.autolog()
    tracked.xgboost.autolog()  # twice: still one layer of patching
    assert xgb.train is not before[0][0] and xgb.train.__wrapped__ is before[0][0]
    assert xgboost.sklearn.train is xgb.train
    assert xgb.XGBRegressor.fit.__wrapped__ is before[1][0]["fit"]  # inherited from XGBModel
    _native(data, rounds=2)
    assert len(_runs(tracked)) == 1
    tracked.xgboost.autolog(disable=True)
    after = state()
    assert all(a is b for a, b in zip(after[0], before[0]))
    assert after[1] == before[1] and after[2] is before[2]
    _native(data, rounds=2)
    xgb.XGBClassifier(n_estimators=2).fit(data[0], data[1])
    assert len(_runs(tracked)) == 1


def test_enabling_imports_no_xgboost_and_patches_on_import():
    code = """
import json, sys
import jupyter_mltrack as mlflow
import warnings
warnings.simplefilter("ignore")  # integrations of other frameworks are not the point here
mlflow.autolog()
mlflow.xgboost.autolog()
imported = "xgboost" in sys.modules
import xgboost
from jupyter_mltrack.autolog import enabled_integrations
print(json.dumps({"imported": imported, "patched": xgboost.train.__code__.co_name == "train_with_autolog",
                  "enabled": enabled_integrations()}))
"""
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["imported"] is False and result["patched"] is True
    assert "xgboost" in result["enabled"]


def test_bad_autolog_options_are_clear_errors():
    import jupyter_mltrack
    from jupyter_mltrack.autolog import xgboost as xgb_autolog

    with pytest.raises(InvalidParameterValue, match=r"Unknown importance type.*'bogus'.*gain"):
        jupyter_mltrack.xgboost.autolog(importance_types=["bogus"])
    with pytest.raises(InvalidParameterValue, match=r"model_format.*'zip'"):
        jupyter_mltrack.xgboost.autolog(model_format="zip")
    with pytest.raises(InvalidParameterValue, match="log_every_n_steps must be a positive"):
        jupyter_mltrack.xgboost.autolog(log_every_n_steps=0)
    with pytest.raises(InvalidParameterValue, match="extra_tags must be a dict"):
        jupyter_mltrack.xgboost.autolog(extra_tags=["a"])
    assert not xgb_autolog.is_enabled()


def test_autolog_signature_is_mlflows():
    import inspect

    import jupyter_mltrack

    shape = [
        (p.name, p.default)
        for p in inspect.signature(jupyter_mltrack.xgboost.autolog).parameters.values()
    ]
    assert shape == [
        ("importance_types", None),
        ("log_input_examples", False),
        ("log_model_signatures", True),
        ("log_models", True),
        ("log_datasets", True),
        ("disable", False),
        ("exclusive", False),
        ("disable_for_unsupported_versions", False),
        ("silent", False),
        ("registered_model_name", None),
        ("model_format", "ubj"),  # MLflow 3.17's default (MLflow 2 had "xgb")
        ("extra_tags", None),
        ("log_every_n_steps", 1),
    ]


# -- the flavor -----------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def booster(data):
    return _native(data)


@pytest.mark.parametrize("fmt", ["xgb", "json", "ubj"])
def test_save_and_load_each_format(tracked, data, booster, tmp_path, fmt):
    Xv = data[2]
    path = tmp_path / fmt
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # XGBoost does not complain about the ".xgb" file
        tracked.xgboost.save_model(booster, path, model_format=fmt)
        loaded = tracked.xgboost.load_model(str(path))
    assert (path / f"model.{fmt}").is_file()
    np.testing.assert_allclose(loaded.predict(xgb.DMatrix(Xv)), booster.predict(xgb.DMatrix(Xv)))
    conf = yaml.safe_load((path / "MLmodel").read_text())["flavors"]
    assert conf["xgboost"]["model_class"] == "xgboost.core.Booster"
    assert (
        conf["xgboost"]["model_format"] == fmt and conf["xgboost"]["xgb_version"] == xgb.__version__
    )
    assert conf["python_function"]["loader_module"] == "jupyter_mltrack.xgboost"
    assert f"xgboost=={xgb.__version__}" in (path / "requirements.txt").read_text().splitlines()


def test_log_model_wrapper_with_example_signature_and_requirements(tracked, data):
    X, y, Xv, _ = data
    model = xgb.XGBRegressor(n_estimators=5, max_depth=2).fit(X, y)
    with tracked.start_run():
        info = tracked.xgboost.log_model(model, name="reg", input_example=X.head(3))
    assert info.signature.inputs.input_names() == list(X.columns)
    assert tracked.xgboost.get_default_pip_requirements() == [f"xgboost=={xgb.__version__}"]
    reqs = Path(tracked.pyfunc.get_model_dependencies(info.model_uri)).read_text().splitlines()
    assert {r.split("==")[0] for r in reqs} >= {"xgboost", "scikit-learn", "pandas"}
    loaded = tracked.xgboost.load_model(info.model_uri)
    assert type(loaded) is xgb.XGBRegressor
    np.testing.assert_allclose(loaded.predict(Xv), model.predict(Xv))
    pyfunc = tracked.pyfunc.load_model(info.model_uri)
    np.testing.assert_allclose(pyfunc.predict(Xv), model.predict(Xv))
    np.testing.assert_allclose(pyfunc.predict(Xv.to_numpy()), model.predict(Xv))
    assert type(pyfunc.get_raw_model()) is xgb.XGBRegressor


def test_default_format_extra_files_and_save_signature(tracked, booster, tmp_path):
    import inspect

    notes = tmp_path / "notes.txt"
    notes.write_text("trained on the churn sample")
    tracked.xgboost.save_model(booster, tmp_path / "m", extra_files=[str(notes)])
    conf = yaml.safe_load((tmp_path / "m" / "MLmodel").read_text())["flavors"]["xgboost"]
    assert conf["data"] == "model.ubj" and conf["model_format"] == "ubj"
    assert conf["extra_files"] == [{"path": "extra_files/notes.txt"}]
    assert (tmp_path / "m" / "extra_files" / "notes.txt").read_text() == notes.read_text()
    with pytest.raises(InvalidParameterValue, match="extra_files: no such file"):
        tracked.xgboost.save_model(booster, tmp_path / "n", extra_files=["missing.txt"])
    names = list(inspect.signature(tracked.xgboost.save_model).parameters)
    assert names == [
        "xgb_model", "path", "conda_env", "code_paths", "mlflow_model", "signature",
        "input_example", "pip_requirements", "extra_pip_requirements", "model_format",
        "metadata", "extra_files", "kwargs",
    ]  # fmt: skip


def test_loads_a_model_saved_by_mlflow(tracked, data, tmp_path):
    """The directory MLflow 3.17 writes for an XGBClassifier (its MLmodel, verbatim apart from
    the times) loads as the same class, and through pyfunc (loader_module mlflow.xgboost)."""
    X, y, Xv, _ = data
    model = xgb.XGBClassifier(n_estimators=3).fit(X, y)
    folder = tmp_path / "mlflow_model"
    folder.mkdir()
    model.save_model(folder / "model.ubj")
    (folder / "MLmodel").write_text(
        """flavors:
  python_function:
    data: model.ubj
    env:
      conda: conda.yaml
      virtualenv: python_env.yaml
    loader_module: mlflow.xgboost
    python_version: 3.11.7
  xgboost:
    code: null
    data: model.ubj
    model_class: xgboost.sklearn.XGBClassifier
    model_format: ubj
    xgb_version: 3.2.0
mlflow_version: 3.17.2
model_id: null
model_size_bytes: 3159
model_uuid: 8b10f03e4e2f44e085f43a13eb15715b
prompts: null
utc_time_created: '2026-11-26 09:35:27.608157'
"""
    )
    loaded = tracked.xgboost.load_model(str(folder))
    assert type(loaded) is xgb.XGBClassifier
    np.testing.assert_allclose(loaded.predict_proba(Xv), model.predict_proba(Xv))
    np.testing.assert_array_equal(
        tracked.pyfunc.load_model(str(folder)).predict(Xv), model.predict(Xv)
    )


def test_flavor_bad_inputs_are_clear_errors(tracked, data, booster, tmp_path):
    from sklearn.linear_model import LogisticRegression

    X, y, *_ = data
    with pytest.raises(
        InvalidParameterValue, match=r"got sklearn\..*LogisticRegression.*sklearn\.log_model"
    ):
        tracked.xgboost.log_model(LogisticRegression().fit(X, y), name="m")
    with pytest.raises(InvalidParameterValue, match="XGBClassifier is not fitted; call fit"):
        tracked.xgboost.save_model(xgb.XGBClassifier(), tmp_path / "unfitted")
    with pytest.raises(InvalidParameterValue, match=r"Unknown model_format 'pickle'.*'json'"):
        tracked.xgboost.save_model(booster, tmp_path / "bad", model_format="pickle")
    with pytest.raises(InvalidParameterValue, match="Unknown model_format"):
        tracked.xgboost.log_model(booster, name="m", model_format="bin")
    with pytest.raises(TypeError, match=r"unexpected keyword argument.*modle_format"):
        tracked.xgboost.save_model(booster, tmp_path / "typo", modle_format="json")
    assert not (tmp_path / "unfitted").exists() and not (tmp_path / "bad").exists()
    assert _runs(tracked) == []  # a refused model starts no run
    tracked.sklearn.save_model(LogisticRegression().fit(X, y), tmp_path / "sk")
    with pytest.raises(Exception, match="has no 'xgboost' flavor"):
        tracked.xgboost.load_model(str(tmp_path / "sk"))


def test_a_tampered_model_class_is_refused(tracked, booster, tmp_path):
    path = tmp_path / "m"
    tracked.xgboost.save_model(booster, path)
    mlmodel = yaml.safe_load((path / "MLmodel").read_text())
    mlmodel["flavors"]["xgboost"]["model_class"] = "subprocess.Popen"
    (path / "MLmodel").write_text(yaml.safe_dump(mlmodel))
    with pytest.raises(Exception, match="not an XGBoost model class; refusing"):
        tracked.xgboost.load_model(str(path))


# -- serving --------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def served(tmp_path_factory, data, booster):
    """One real ``mltrack models serve`` process for a logged Booster."""
    import jupyter_mltrack as mlflow

    root = tmp_path_factory.mktemp("xgb-serving")
    store = str(root / "store")
    mlflow.set_tracking_uri(store)
    with mlflow.start_run():
        info = mlflow.xgboost.log_model(booster, name="model", input_example=data[0].head(2))
    mlflow.set_tracking_uri(None)
    port = free_port()
    env = {**os.environ, "MLTRACK_TRACKING_URI": store}
    proc = start_server(serve_cmd(info.model_uri, port), port, env)
    yield port
    stop_server(proc)


def test_served_booster_answers_like_the_original(served, data, booster):
    Xv = data[2].head(4)
    expected = booster.predict(xgb.DMatrix(Xv))
    status, body = invoke(served, {"dataframe_records": Xv.to_dict(orient="records")})
    assert status == 200, body
    np.testing.assert_allclose(body["predictions"], expected, rtol=1e-6)
    status, body = invoke(served, {"dataframe_records": [{"age": 30, "tenure": 5}]})
    assert status == 400 and "charge" in json.dumps(body)
