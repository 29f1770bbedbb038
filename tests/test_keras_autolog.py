"""Keras 3 autologging and MlflowCallback: real fits of tiny Dense models (PyTorch backend, CPU)
into real SQLite stores."""

from __future__ import annotations

import inspect
import warnings
from pathlib import Path
from typing import Any

import keras
import numpy as np
import pandas as pd
import pytest

import jupyter_mltrack as mlflow
from jupyter_mltrack.autolog import keras as keras_autolog
from jupyter_mltrack.exceptions import InvalidParameterValue
from jupyter_mltrack.tracking.client import Client

EPOCHS = 3
BATCH = 16
ROWS = 64  # 4 steps per epoch


@pytest.fixture(autouse=True)
def _autolog_off():
    """Every test leaves keras.Model unpatched, whatever happened in it."""
    yield
    mlflow.keras.autolog(disable=True)
    assert not keras_autolog.is_enabled()
    assert "fit" not in keras.Model.__dict__


@pytest.fixture
def tracked(tmp_path):
    mlflow.set_tracking_uri(str(tmp_path / "store"))
    return mlflow


@pytest.fixture(scope="module")
def data() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    X = rng.normal(size=(ROWS, 4)).astype("float32")
    y = (X @ np.array([1.0, -2.0, 0.5, 3.0], dtype="float32")).astype("float32")
    return X, y


def make_model(lr: float = 0.01) -> Any:
    keras.utils.set_random_seed(0)
    model = keras.Sequential(
        [keras.Input((4,)), keras.layers.Dense(8, activation="relu"), keras.layers.Dense(1)]
    )
    model.compile(optimizer=keras.optimizers.Adam(lr), loss="mse", metrics=["mae"])
    return model


def runs(tracked) -> list[Any]:
    return tracked.search_runs(output_format="list", order_by=["attributes.start_time ASC"])


def history(run_id: str, key: str) -> list[tuple[int, float]]:
    return [(m.step, m.value) for m in Client().get_metric_history(run_id, key)]


def artifacts(run_id: str, path: str | None = None) -> set[str]:
    return {a.path for a in Client().list_artifacts(run_id, path)}


# -- what a fit logs ------------------------------------------------------------------------------------
def test_fit_logs_params_epoch_metrics_summary_datasets_and_model(tracked, data):
    X, y = data
    tracked.keras.autolog()
    model = make_model()
    result = model.fit(
        X, y, epochs=EPOCHS, batch_size=BATCH, validation_data=(X[:8], y[:8]), verbose=0
    )
    assert isinstance(result, keras.callbacks.History)
    (run,) = runs(tracked)
    run_id = run.info.run_id
    assert run.info.status == "FINISHED" and run.data.tags["mlflow.autologging"] == "keras"
    params = run.data.params
    assert params["epochs"] == "3" and params["batch_size"] == "16"
    assert params["optimizer_name"] == "adam" and params["optimizer_learning_rate"] == "0.01"
    assert params["loss"] == "mse" and params["shuffle"] == "True"
    assert not {"x", "y", "callbacks", "validation_data", "verbose"} & set(params)
    loss = history(run_id, "loss")
    assert [step for step, _ in loss] == [0, 1, 2]  # exactly `epochs` points, step = epoch
    np.testing.assert_allclose([v for _, v in loss], result.history["loss"], rtol=1e-6)
    assert [step for step, _ in history(run_id, "val_mae")] == [0, 1, 2]
    assert {"model", "model_summary.txt"} <= artifacts(run_id)
    summary = Path(Client().download_artifacts(run_id, "model_summary.txt"))
    assert "dense" in summary.read_text(encoding="utf-8")
    contexts = sorted(
        t.value for i in tracked.get_run(run_id).inputs.dataset_inputs for t in i.tags
    )
    assert contexts == ["eval", "train"]
    loaded = tracked.keras.load_model(f"runs:/{run_id}/model")
    np.testing.assert_allclose(loaded.predict(X, verbose=0), model.predict(X, verbose=0), rtol=1e-6)
    pyfunc = tracked.pyfunc.load_model(f"runs:/{run_id}/model")
    assert pyfunc.metadata.get_input_schema().inputs[0].shape == (-1, 4)  # from the data
    np.testing.assert_allclose(
        pyfunc.predict(pd.DataFrame(X)), model.predict(X, verbose=0), rtol=1e-6
    )


def test_every_n_steps_exact_count_written_once_per_epoch(tracked, data, monkeypatch):
    """4 steps an epoch, 3 epochs, every 3rd step: steps 3, 6, 9, 12; validation at the end of
    each epoch. The values of an epoch go to the store in one log_batch call."""
    writes: list[int] = []
    real = Client.log_batch

    def counting(self, run_id, metrics=(), params=(), tags=(), synchronous=None):
        if metrics:
            writes.append(len(metrics))
        return real(self, run_id, metrics, params, tags, synchronous)

    monkeypatch.setattr(Client, "log_batch", counting)
    X, y = data
    tracked.keras.autolog(log_every_epoch=False, log_every_n_steps=3)
    make_model().fit(
        X, y, epochs=EPOCHS, batch_size=BATCH, validation_data=(X[:8], y[:8]), verbose=0
    )
    run_id = runs(tracked)[0].info.run_id
    assert [s for s, _ in history(run_id, "loss")] == [3, 6, 9, 12]
    assert [s for s, _ in history(run_id, "val_loss")] == [4, 8, 12]
    assert len(writes) == EPOCHS  # batched: one write per epoch, not one per value


def test_every_step_of_a_longer_fit_is_batched(tracked, data, monkeypatch):
    writes: list[int] = []
    real = Client.log_batch

    def counting(self, run_id, metrics=(), params=(), tags=(), synchronous=None):
        if metrics:
            writes.append(len(metrics))
        return real(self, run_id, metrics, params, tags, synchronous)

    monkeypatch.setattr(Client, "log_batch", counting)
    X, y = data
    tracked.keras.autolog(log_every_epoch=False, log_every_n_steps=1, log_models=False)
    make_model().fit(X, y, epochs=2, batch_size=1, verbose=0)  # 128 steps, 2 metrics each
    run_id = runs(tracked)[0].info.run_id
    assert [s for s, _ in history(run_id, "mae")] == list(range(1, 129))
    assert writes == [128, 128]


def test_early_stopping_params_and_metrics(tracked, data):
    X, y = data
    tracked.keras.autolog()
    # mode="max" on a falling loss: epoch 0 stays best, training stops at epoch 1
    stop = keras.callbacks.EarlyStopping(
        monitor="loss", mode="max", patience=1, restore_best_weights=True
    )
    result = make_model().fit(X, y, epochs=10, batch_size=BATCH, callbacks=[stop], verbose=0)
    assert len(result.history["loss"]) == 2
    run = runs(tracked)[0]
    assert run.data.params["monitor"] == "loss" and run.data.params["patience"] == "1"
    assert run.data.params["restore_best_weights"] == "True"
    assert run.data.metrics["stopped_epoch"] == 1 and run.data.metrics["restored_epoch"] == 0
    loss = history(run.info.run_id, "loss")
    # the restored epoch's metrics again at stopped_epoch + 1, as MLflow logs them
    assert [s for s, _ in loss] == [0, 1, 2] and loss[2][1] == loss[0][1]


def test_user_callback_list_is_not_changed(tracked, data):
    X, y = data
    tracked.keras.autolog(log_models=False)
    callbacks = [keras.callbacks.TerminateOnNaN()]
    make_model().fit(X, y, epochs=1, batch_size=BATCH, callbacks=callbacks, verbose=0)
    make_model().fit(X, y, epochs=1, batch_size=BATCH, callbacks=callbacks, verbose=0)
    assert len(callbacks) == 1 and len(runs(tracked)) == 2


def test_dataframe_training_data(tracked):
    rng = np.random.default_rng(1)
    X = pd.DataFrame(rng.normal(size=(32, 4)), columns=["a", "b", "c", "d"])
    y = pd.Series(X.a * 2 - X.d, name="label")
    tracked.keras.autolog(log_input_examples=True, registered_model_name="keras-frame")
    model = make_model()
    model.fit(X, y, epochs=1, verbose=0)
    run = runs(tracked)[0]
    assert run.data.params["batch_size"] == "32"  # Keras' default for arrays
    (train,) = tracked.get_run(run.info.run_id).inputs.dataset_inputs
    assert train.dataset.source_type == "code" and "label" in train.dataset.schema
    pyfunc = tracked.pyfunc.load_model("models:/keras-frame/1")
    assert [c.name for c in pyfunc.metadata.get_input_schema().inputs] == ["a", "b", "c", "d"]
    out = pyfunc.predict(X.head(3))
    assert isinstance(out, pd.DataFrame)  # a DataFrame in, a DataFrame out
    np.testing.assert_allclose(
        out.to_numpy(), model.predict(X.head(3).to_numpy(), verbose=0), rtol=1e-5
    )
    assert any(p.endswith("input_example.json") for p in artifacts(run.info.run_id, "model"))


# -- runs ---------------------------------------------------------------------------------------------
def test_active_run_is_used_and_left_open_and_exclusive_stays_out(tracked, data):
    X, y = data
    tracked.keras.autolog(log_models=False)
    with tracked.start_run() as run:
        make_model().fit(X, y, epochs=2, batch_size=BATCH, verbose=0)
        assert tracked.active_run().info.run_id == run.info.run_id
    assert len(runs(tracked)) == 1
    assert [s for s, _ in history(run.info.run_id, "loss")] == [0, 1]
    tracked.keras.autolog(exclusive=True)
    with tracked.start_run() as mine:
        make_model().fit(X, y, epochs=1, batch_size=BATCH, verbose=0)
    assert tracked.get_run(mine.info.run_id).data.metrics == {}


def test_fit_in_track_cell_logs_into_the_cell_run(ip, data):
    X, y = data
    mlflow.keras.autolog()
    ip.push({"X": X, "y": y, "model": make_model()})
    result = ip.run_cell(
        "%%track keras-fit\nepochs = 2\nhistory = model.fit(X, y, epochs=epochs, batch_size=16, "
        "verbose=0)\n"
    )
    result.raise_error()
    (run,) = mlflow.search_runs(output_format="list")
    assert run.info.run_name == "keras-fit" and run.info.status == "FINISHED"
    assert "mlflow.autologging" not in run.data.tags
    assert run.data.params["epochs"] == "2" and run.data.params["optimizer_name"] == "adam"
    assert [s for s, _ in history(run.info.run_id, "loss")] == [0, 1]
    assert {"model", "model_summary.txt"} <= artifacts(run.info.run_id)


def test_fit_error_propagates_and_the_run_fails(tracked, data):
    X, y = data
    tracked.keras.autolog()
    with pytest.raises(ValueError):
        make_model().fit(X[:, :3], y, epochs=1, verbose=0)  # wrong input width
    (run,) = runs(tracked)
    assert run.info.status == "FAILED"


# -- autologging never breaks training -------------------------------------------------------------
def test_failing_store_write_warns_once_and_training_returns(tracked, data, monkeypatch):
    def broken(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(Client, "log_batch", broken)
    X, y = data
    tracked.keras.autolog()
    model = make_model()
    with pytest.warns(UserWarning, match=r"incomplete: .*OSError: disk full") as caught:
        result = model.fit(X, y, epochs=EPOCHS, batch_size=BATCH, verbose=0)
    ours = [w for w in caught if "jupyter_mltrack autolog" in str(w.message)]
    assert len(ours) == 1 and ours[0].filename == __file__  # points at the user's fit call
    message = str(ours[0].message)
    assert "params not logged" in message and "epoch metrics not logged" in message
    assert "the model not logged" in message
    assert len(result.history["loss"]) == EPOCHS
    assert result.history["loss"][-1] < result.history["loss"][0]  # it trained
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)  # the same problems are not reported twice
        model.fit(X, y, epochs=1, batch_size=BATCH, verbose=0)
    assert {r.info.status for r in runs(tracked)} == {"FINISHED"}


def test_store_unreachable_before_fit_still_trains(tracked, data, monkeypatch):
    from jupyter_mltrack.autolog.patching import FitRun

    def unreachable(*args, **kwargs):
        raise ConnectionError("store unreachable")

    monkeypatch.setattr(FitRun, "open", classmethod(unreachable))
    X, y = data
    tracked.keras.autolog(silent=False)
    with pytest.warns(UserWarning, match="store unreachable"):
        result = make_model().fit(X, y, epochs=1, batch_size=BATCH, verbose=0)
    assert len(result.history["loss"]) == 1


def test_silent_suppresses_autolog_warnings(tracked, data, monkeypatch):
    monkeypatch.setattr(Client, "log_batch", lambda *a, **k: 1 / 0)
    X, y = data
    tracked.keras.autolog(silent=True, log_models=False)
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)
        make_model().fit(X, y, epochs=1, batch_size=BATCH, verbose=0)


# -- MlflowCallback -------------------------------------------------------------------------------------
def test_mlflow_callback_inside_start_run(tracked, data):
    X, y = data
    with tracked.start_run() as run:
        make_model().fit(
            X, y, epochs=2, batch_size=BATCH, verbose=0, callbacks=[mlflow.keras.MlflowCallback()]
        )
        assert tracked.active_run().info.run_id == run.info.run_id
    logged = tracked.get_run(run.info.run_id)
    assert logged.data.params["optimizer_learning_rate"] == "0.01"
    assert [s for s, _ in history(run.info.run_id, "loss")] == [0, 1]
    assert artifacts(run.info.run_id) == {"model_summary.txt"}  # no model: that is autolog's
    other = tracked.MlflowClient().create_run("0")
    callback = mlflow.keras.MlflowCallback(run=other, log_every_epoch=False, log_every_n_steps=2)
    make_model().fit(X, y, epochs=1, batch_size=BATCH, verbose=0, callbacks=[callback])
    assert [s for s, _ in history(other.info.run_id, "loss")] == [2, 4]
    assert mlflow.keras.MLflowCallback is mlflow.keras.MlflowCallback


def test_autolog_leaves_a_fit_with_its_own_callback_alone(tracked, data):
    X, y = data
    tracked.keras.autolog()
    with tracked.start_run() as run, pytest.warns(UserWarning, match="own MlflowCallback"):
        make_model().fit(X, y, epochs=1, verbose=0, callbacks=[mlflow.keras.MlflowCallback()])
    assert len(runs(tracked)) == 1
    assert "model" not in artifacts(run.info.run_id)  # autolog stayed out


def test_mlflow_callback_bad_options():
    with pytest.raises(InvalidParameterValue, match=r"needs log_every_epoch=False"):
        mlflow.keras.MlflowCallback(log_every_n_steps=5)
    with pytest.raises(InvalidParameterValue, match=r"needs log_every_n_steps"):
        mlflow.keras.MlflowCallback(log_every_epoch=False)
    with pytest.raises(InvalidParameterValue, match=r"positive integer or None, got 0"):
        mlflow.keras.MlflowCallback(log_every_epoch=False, log_every_n_steps=0)


# -- enabling and disabling ------------------------------------------------------------------------------
def test_disable_restores_fit_exactly(tracked, data):
    from keras.src.backend.torch.trainer import TorchTrainer

    original = keras.Model.fit
    assert "fit" not in keras.Model.__dict__ and original is TorchTrainer.fit
    tracked.keras.autolog()
    tracked.keras.autolog(log_every_epoch=True)  # enabling again does not wrap the wrapper
    patched = keras.Model.__dict__["fit"]
    assert patched.__wrapped__ is original and keras.Sequential.fit is patched
    assert keras_autolog.is_enabled() and "keras" in mlflow.autolog.enabled_integrations()
    tracked.autolog(disable=True)  # the generic switch reaches the keras integration
    assert "fit" not in keras.Model.__dict__ and keras.Model.fit is original
    X, y = data
    make_model().fit(X, y, epochs=1, batch_size=BATCH, verbose=0)
    assert runs(tracked) == []


def test_bad_options_are_clear_errors():
    with pytest.raises(InvalidParameterValue, match=r"log_every_n_steps=5 needs log_every_epoch"):
        mlflow.keras.autolog(log_every_n_steps=5)
    with pytest.raises(InvalidParameterValue, match=r"Unknown save format 'tf'"):
        mlflow.keras.autolog(save_model_kwargs={"save_format": "tf"})
    with pytest.raises(InvalidParameterValue, match=r"needs TensorFlow"):
        mlflow.keras.autolog(save_exported_model=True)
    with pytest.raises(InvalidParameterValue, match=r"extra_tags must be a dict"):
        mlflow.keras.autolog(extra_tags="team=ml")
    assert not keras_autolog.is_enabled()


def test_signatures_are_mlflows():
    """Names and defaults of MLflow 3.17's mlflow.keras.autolog; MlflowCallback as in the brief
    (``run`` first, as mlflow.tensorflow's) plus MLflow 3's model_id."""

    def shape(function: Any) -> list[tuple[str, Any]]:
        return [(p.name, p.default) for p in inspect.signature(function).parameters.values()]

    expected = [
        ("log_every_epoch", True),
        ("log_every_n_steps", None),
        ("log_models", True),
        ("log_model_signatures", True),
        ("save_exported_model", False),
        ("log_datasets", True),
        ("log_input_examples", False),
        ("disable", False),
        ("exclusive", False),
        ("disable_for_unsupported_versions", False),
        ("silent", False),
        ("registered_model_name", None),
        ("save_model_kwargs", None),
        ("extra_tags", None),
    ]
    assert shape(mlflow.keras.autolog) == expected
    assert shape(keras_autolog.autolog) == expected
    assert shape(mlflow.keras.MlflowCallback.__init__)[1:] == [
        ("run", None),
        ("log_every_epoch", True),
        ("log_every_n_steps", None),
        ("model_id", None),
    ]
