"""PyTorch Lightning autologging and ``track_training`` for plain loops: real tiny fits on the
CPU into a real SQLite store (params, exact metric curves, the best model, datasets), disabling
restores ``Trainer.fit``, ``%%track`` cells, a failing store that never stops training, and
``load_checkpoint`` of the logged checkpoints (local store and through a server)."""

from __future__ import annotations

import json
import subprocess
import sys
import warnings

import numpy as np
import pytest
import pytorch_lightning as pl
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from jupyter_mltrack.autolog import pytorch as pt_autolog
from jupyter_mltrack.exceptions import InvalidParameterValue, ResourceDoesNotExist

torch.set_num_threads(1)
pytestmark = [  # Lightning's own notes about these tiny setups
    pytest.mark.filterwarnings("ignore:.*treespec, LeafSpec.*"),
    pytest.mark.filterwarnings("ignore:You defined a `validation_step` but have no"),
]
BATCHES = 5  # batches per epoch of the training loader
TRAINER = {
    "logger": False,
    "enable_checkpointing": False,
    "enable_progress_bar": False,
    "enable_model_summary": False,
    "num_sanity_val_steps": 0,
}


class LitRegressor(pl.LightningModule):
    def __init__(self, n_in: int = 4, hidden: int = 8, lr: float = 0.05) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.net = nn.Sequential(nn.Linear(n_in, hidden), nn.ReLU(), nn.Linear(hidden, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)

    def training_step(self, batch, batch_idx):
        x, y = batch
        loss = nn.functional.mse_loss(self(x), y)
        self.log("train_loss", loss)
        return loss

    def validation_step(self, batch, batch_idx):
        x, y = batch
        self.log("val_loss", nn.functional.mse_loss(self(x), y))

    def on_train_epoch_end(self) -> None:
        self.log("epoch_marker", float(self.current_epoch))

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=self.hparams.lr)


@pytest.fixture(autouse=True)
def _autolog_off():
    yield
    pt_autolog.autolog(disable=True)
    assert not pt_autolog.is_enabled()


@pytest.fixture(scope="module")
def data():
    generator = torch.Generator().manual_seed(0)
    X = torch.randn(40, 4, generator=generator)
    y = X.sum(1, keepdim=True)
    train = DataLoader(TensorDataset(X, y), batch_size=8)  # BATCHES batches
    val = DataLoader(TensorDataset(X[:16], y[:16]), batch_size=8)
    return X, train, val


@pytest.fixture
def tracked(tmp_path):
    import jupyter_mltrack as mlflow

    mlflow.set_tracking_uri(str(tmp_path / "store"))
    return mlflow


def _fit(data, epochs: int = 3, validate: bool = True, **module_args):
    _X, train, val = data
    torch.manual_seed(0)
    model = LitRegressor(**module_args)
    trainer = pl.Trainer(max_epochs=epochs, **TRAINER)
    trainer.fit(model, train, val if validate else None)
    return model, trainer


def _history(mlflow, run_id: str, key: str) -> list[tuple[int, float]]:
    return [(m.step, m.value) for m in mlflow.MlflowClient().get_metric_history(run_id, key)]


def _artifacts(mlflow, run_id: str, path: str | None = None) -> list[str]:
    return sorted(a.path for a in mlflow.MlflowClient().list_artifacts(run_id, path))


def _out(model: nn.Module, X: torch.Tensor) -> np.ndarray:
    with torch.no_grad():
        return model.eval()(X).numpy()


# -- Lightning ------------------------------------------------------------------------------------
def test_fit_logs_params_curves_datasets_and_the_best_model(tracked, data):
    tracked.pytorch.autolog(log_every_n_steps=2)
    model, _trainer = _fit(data, epochs=3, hidden=6)
    run = tracked.last_active_run()
    run = tracked.get_run(run.info.run_id)
    assert run.info.status == "FINISHED" and run.data.tags["mlflow.autologging"] == "pytorch"
    params = run.data.params
    assert {k: params[k] for k in ("n_in", "hidden", "lr", "epochs", "optimizer_name")} == {
        "n_in": "4",
        "hidden": "6",
        "lr": "0.05",
        "epochs": "3",
        "optimizer_name": "Adam",
    }
    assert params["total_params"] == str(sum(p.numel() for p in model.parameters()))
    # 15 optimizer steps, logged at global steps 2, 4, ..., 14
    assert [s for s, _ in _history(tracked, run.info.run_id, "train_loss")] == list(range(2, 15, 2))
    # a constant learning rate: its first and last point draw the whole curve
    assert _history(tracked, run.info.run_id, "lr") == [(2, 0.05), (14, 0.05)]
    # epoch values at step = epoch, including what the module logs in on_train_epoch_end
    val = _history(tracked, run.info.run_id, "val_loss")
    assert [s for s, _ in val] == [0, 1, 2]
    assert _history(tracked, run.info.run_id, "epoch_marker") == [(0, 0.0), (1, 1.0), (2, 2.0)]
    assert {"model", "model_summary.txt", "checkpoints"} <= set(
        _artifacts(tracked, run.info.run_id)
    )
    assert run.data.tags["mlflow.latest_checkpoint_artifact"] == "checkpoints/latest_checkpoint.pth"
    contexts = sorted(i.tags[0].value for i in run.inputs.dataset_inputs)
    assert contexts == ["eval", "train"]
    # val_loss fell every epoch: the best checkpoint is the final model
    info = tracked.models.get_model_info(f"runs:/{run.info.run_id}/model")
    assert info.metadata["best_epoch"] == 2 and info.metadata["checkpoint_monitor"] == "val_loss"
    assert info.flavors["pytorch"]["serialization_format"] == "state_dict"
    loaded = tracked.pytorch.load_model(f"runs:/{run.info.run_id}/model")
    assert type(loaded).__name__ == "LitRegressor" and loaded.hparams["hidden"] == 6
    X = data[0]
    np.testing.assert_allclose(_out(loaded, X), _out(model, X), rtol=1e-6, atol=1e-6)
    predicted = tracked.pyfunc.load_model(f"runs:/{run.info.run_id}/model").predict(X.numpy())
    np.testing.assert_allclose(predicted, _out(model, X), rtol=1e-6, atol=1e-6)
    assert info.signature.inputs.to_dict()[0]["tensor-spec"]["shape"] == [-1, 4]
    requirements = tracked.pyfunc.get_model_dependencies(f"runs:/{run.info.run_id}/model")
    with open(requirements) as fh:
        assert f"pytorch-lightning=={pl.__version__}" in fh.read().split()


def test_the_logged_model_is_the_best_checkpoint_not_the_last(tracked, data):
    # "max" of a falling val_loss: epoch 0 is the best
    tracked.pytorch.autolog(checkpoint_mode="max", log_datasets=False)
    model, _trainer = _fit(data, epochs=3)
    run_id = tracked.last_active_run().info.run_id
    info = tracked.models.get_model_info(f"runs:/{run_id}/model")
    assert info.metadata["best_epoch"] == 0
    checkpoint_file = tracked.MlflowClient().download_artifacts(
        run_id, "checkpoints/latest_checkpoint.pth"
    )
    checkpoint = torch.load(checkpoint_file, weights_only=False)
    assert checkpoint["epoch"] == 1  # saved once epoch 0 was complete
    loaded = tracked.pytorch.load_model(f"runs:/{run_id}/model")
    for key, value in loaded.state_dict().items():
        assert torch.equal(value, checkpoint["state_dict"][key])
    # a whole Lightning checkpoint, taken when it was best and written at the end
    assert {"optimizer_states", "loops", "hyper_parameters"} <= set(checkpoint)
    restored = LitRegressor.load_from_checkpoint(checkpoint_file)
    for key, value in restored.state_dict().items():
        assert torch.equal(value, loaded.state_dict()[key])
    X = data[0]
    # not the final weights, which the trained module itself still holds
    assert not np.allclose(_out(loaded, X), _out(model, X))


def test_checkpoints_per_steps_early_stopping_and_registration(tracked, data):
    tracked.pytorch.autolog(
        checkpoint_save_best_only=False,
        checkpoint_save_freq=5,
        checkpoint_save_weights_only=True,
        registered_model_name="lit-regressor",
        log_datasets=False,
    )
    _X, train, val = data
    stop = pl.callbacks.EarlyStopping(monitor="val_loss", mode="max", patience=1)
    trainer = pl.Trainer(max_epochs=6, callbacks=[stop], **TRAINER)
    trainer.fit(LitRegressor(), train, val)
    run = tracked.get_run(tracked.last_active_run().info.run_id)
    run_id = run.info.run_id
    folders = _artifacts(tracked, run_id, "checkpoints")
    steps = [5 * (i + 1) for i in range(trainer.global_step // 5)]
    assert folders == [f"checkpoints/global_step_{s}" for s in sorted(steps, key=str)]
    assert _artifacts(tracked, run_id, "checkpoints/global_step_5") == [
        "checkpoints/global_step_5/checkpoint.weights.pth",
        "checkpoints/global_step_5/checkpoint_metrics.json",
    ]
    assert run.data.params["patience"] == "1" and run.data.params["monitor"] == "val_loss"
    assert _history(tracked, run_id, "stopped_epoch") == [(0, float(stop.stopped_epoch))]
    assert stop.stopped_epoch > 0 and trainer.current_epoch < 6
    (version,) = tracked.MlflowClient().search_model_versions("name='lit-regressor'")
    assert version.run_id == run_id


class WithBackbone(pl.LightningModule):
    """Its constructor needs a module that save_hyperparameters leaves out."""

    def __init__(self, backbone: nn.Module, lr: float = 0.05) -> None:
        super().__init__()
        self.save_hyperparameters(ignore=["backbone"])
        self.backbone = backbone

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.backbone(x)

    def training_step(self, batch, batch_idx):
        x, y = batch
        return nn.functional.mse_loss(self(x), y)

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=self.hparams.lr)


def test_a_module_that_cannot_be_rebuilt_is_logged_whole(tracked, data):
    tracked.pytorch.autolog(log_datasets=False, checkpoint=False)
    torch.manual_seed(0)
    model = WithBackbone(nn.Sequential(nn.Linear(4, 3), nn.Tanh(), nn.Linear(3, 1)))
    pl.Trainer(max_epochs=1, **TRAINER).fit(model, data[1])
    uri = f"runs:/{tracked.last_active_run().info.run_id}/model"
    assert tracked.models.get_model_info(uri).flavors["pytorch"]["serialization_format"] == "pickle"
    loaded = tracked.pytorch.load_model(uri)
    np.testing.assert_allclose(_out(loaded, data[0]), _out(model, data[0]), rtol=1e-6)


@pytest.mark.parametrize(
    ("epochs", "every_step", "every_epoch", "step_points", "epoch_points"),
    [
        (2, 1, 1, list(range(1, 11)), [0, 1]),
        (3, 3, 2, [3, 6, 9, 12, 15], [1]),
        (2, None, 1, [], [0, 1]),
    ],
)
def test_metric_curves_have_the_exact_steps(
    tracked, data, epochs, every_step, every_epoch, step_points, epoch_points
):
    tracked.pytorch.autolog(
        log_every_n_step=every_step,
        log_every_n_epoch=every_epoch,
        log_models=False,
        log_datasets=False,
        checkpoint=False,
    )
    _fit(data, epochs=epochs, validate=False)
    run = tracked.last_active_run()
    train = [s for s, _ in _history(tracked, run.info.run_id, "train_loss")]
    marker = [s for s, _ in _history(tracked, run.info.run_id, "epoch_marker")]
    if every_step:
        assert train == step_points
        lr_steps = [s for s, _ in _history(tracked, run.info.run_id, "lr")]
        assert lr_steps == [step_points[0], step_points[-1]]  # constant: first and last
    else:  # epoch metrics only: the last step's value at step = epoch, lr per epoch
        assert train == epoch_points
        assert [s for s, _ in _history(tracked, run.info.run_id, "lr")] == epoch_points
    assert marker == epoch_points
    assert "model" not in _artifacts(tracked, run.info.run_id)


def test_lightning_dispatches_only_the_hooks_the_callback_uses(tracked, data):
    """Lightning calls every callable hook of every callback (through a profiler context) about
    six times per step; the autolog callback leaves the per-batch ones it does not use
    uncallable, so a fit calls it once per training batch, not six times."""
    from pytorch_lightning.trainer import call

    calls: dict[str, int] = {}
    original = call._call_callback_hooks

    def counting(trainer, hook_name, *args, **kwargs):
        for callback in trainer.callbacks:
            if type(callback).__name__ == "MLTrackAutologCallback" and callable(
                getattr(callback, hook_name)
            ):
                calls[hook_name] = calls.get(hook_name, 0) + 1
        return original(trainer, hook_name, *args, **kwargs)

    tracked.pytorch.autolog(log_every_n_steps=1)
    call._call_callback_hooks = counting
    try:
        _fit(data, epochs=2)
    finally:
        call._call_callback_hooks = original
    batches = calls["on_train_batch_end"]
    assert batches > 0
    assert "on_before_backward" not in calls and "on_train_batch_start" not in calls
    epochs = calls["on_train_epoch_start"]
    per_batch = {name: n for name, n in calls.items() if n > 2 * epochs}
    assert per_batch == {"on_train_batch_end": batches}  # one dispatch per batch, not six
    run_id = tracked.last_active_run().info.run_id
    assert len(_history(tracked, run_id, "train_loss")) == batches  # still logs every step


def test_disable_restores_trainer_fit_exactly(tracked, data):
    had_own = "fit" in pl.Trainer.__dict__
    original = pl.Trainer.__dict__.get("fit")
    tracked.pytorch.autolog()
    tracked.pytorch.autolog(log_every_n_epoch=2)  # twice: still one layer
    assert pl.Trainer.fit is not original and pl.Trainer.fit.__wrapped__ is original
    tracked.pytorch.autolog(disable=True)
    assert ("fit" in pl.Trainer.__dict__) == had_own and pl.Trainer.__dict__.get("fit") is original
    _fit(data, epochs=1, validate=False)
    assert tracked.search_runs(output_format="list") == []


def test_active_run_is_used_and_exclusive_leaves_it_alone(tracked, data):
    tracked.pytorch.autolog(log_models=False, log_datasets=False)
    with tracked.start_run() as run:
        _fit(data, epochs=1)
    assert tracked.get_run(run.info.run_id).data.params["epochs"] == "1"
    assert tracked.get_run(run.info.run_id).info.status == "FINISHED"
    tracked.pytorch.autolog(exclusive=True, log_models=False, log_datasets=False)
    with tracked.start_run() as user_run:
        _fit(data, epochs=1)
    assert tracked.get_run(user_run.info.run_id).data.params == {}
    assert len(tracked.search_runs(output_format="list")) == 2


def test_a_failing_fit_ends_the_run_failed_and_raises(tracked, data):
    tracked.pytorch.autolog(log_datasets=False)

    class Broken(LitRegressor):
        def training_step(self, batch, batch_idx):
            if self.global_step == 3:
                raise ValueError("diverged")
            return super().training_step(batch, batch_idx)

    with pytest.raises(ValueError, match="diverged"):
        pl.Trainer(max_epochs=2, **TRAINER).fit(Broken(), data[1])
    (run,) = tracked.search_runs(output_format="list")
    assert run.info.status == "FAILED" and "model" not in _artifacts(tracked, run.info.run_id)


def test_failing_store_writes_never_stop_the_fit(tracked, data, monkeypatch):
    from jupyter_mltrack.tracking.client import Client

    def broken(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(Client, "log_batch", broken)
    monkeypatch.setattr(Client, "log_metric_points", broken)  # the metric points' way
    tracked.pytorch.autolog(log_every_n_step=1)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        model, trainer = _fit(data, epochs=2)
    ours = [w for w in caught if "jupyter_mltrack autolog" in str(w.message)]
    assert len(ours) == 1 and "disk full" in str(ours[0].message)
    assert ours[0].filename == __file__  # points at the user's fit call
    assert trainer.global_step == 2 * BATCHES and trainer.state.finished
    assert model.trainer is trainer


def test_bad_options_are_clear_errors():
    autolog = pt_autolog.autolog
    with pytest.raises(InvalidParameterValue, match="log_every_n_step must be a positive"):
        autolog(log_every_n_step=0)
    with pytest.raises(InvalidParameterValue, match="same option"):
        autolog(log_every_n_step=2, log_every_n_steps=5)
    with pytest.raises(InvalidParameterValue, match="checkpoint_mode must be 'min' or 'max'"):
        autolog(checkpoint_mode="lowest")
    with pytest.raises(InvalidParameterValue, match="checkpoint_save_freq"):
        autolog(checkpoint_save_freq="daily")
    with pytest.raises(InvalidParameterValue, match="name the metric to monitor"):
        autolog(checkpoint_monitor=None)
    assert not pt_autolog.is_enabled()


def test_signature_is_mlflows():
    """MLflow 3's mlflow.pytorch.autolog names and defaults, plus log_every_n_steps."""
    import inspect

    import jupyter_mltrack

    parameters = inspect.signature(jupyter_mltrack.pytorch.autolog).parameters
    assert [(p.name, p.default) for p in parameters.values()] == [
        ("log_every_n_epoch", 1),
        ("log_every_n_step", None),
        ("log_models", True),
        ("log_datasets", True),
        ("disable", False),
        ("exclusive", False),
        ("disable_for_unsupported_versions", False),
        ("silent", False),
        ("registered_model_name", None),
        ("extra_tags", None),
        ("checkpoint", True),
        ("checkpoint_monitor", "val_loss"),
        ("checkpoint_mode", "min"),
        ("checkpoint_save_best_only", True),
        ("checkpoint_save_weights_only", False),
        ("checkpoint_save_freq", "epoch"),
        ("log_model_signatures", True),
        ("log_every_n_steps", None),
    ]


def test_lightning_imported_after_autolog_is_patched_then():
    code = """
import json, sys
import jupyter_mltrack as mlflow
mlflow.pytorch.autolog()
before = sorted(m for m in ("torch", "pytorch_lightning") if m in sys.modules)
import pytorch_lightning as pl
print(json.dumps([before, hasattr(pl.Trainer.fit, "__wrapped__")]))
"""
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout.strip().splitlines()[-1]) == [[], True]


def test_fit_in_a_track_cell_logs_into_the_cell_run(ip, data):
    ip.push({"LitRegressor": LitRegressor, "train": data[1], "val": data[2], "pl": pl})
    ip.run_cell(
        "import jupyter_mltrack as mlflow\n"
        "mlflow.pytorch.autolog(log_datasets=False)\n"
        f"TRAINER = {TRAINER!r}\n"
    ).raise_error()
    ip.run_cell(
        "%%track lightning-fit\n"
        "hidden = 5\n"
        "model = LitRegressor(hidden=hidden)\n"
        "pl.Trainer(max_epochs=2, **TRAINER).fit(model, train, val)\n"
    ).raise_error()
    import jupyter_mltrack as mlflow

    (run,) = mlflow.search_runs(output_format="list")
    assert run.info.run_name == "lightning-fit" and run.info.status == "FINISHED"
    assert "mlflow.autologging" not in run.data.tags
    assert run.data.params["hidden"] == "5" and run.data.params["epochs"] == "2"
    assert [s for s, _ in _history(mlflow, run.info.run_id, "val_loss")] == [0, 1]
    assert "model" in _artifacts(mlflow, run.info.run_id)


# -- load_checkpoint ------------------------------------------------------------------------------
def _checkpoint_file(mlflow, run_id: str, path: str) -> dict:
    local = mlflow.MlflowClient().artifact_repository(run_id).local_path(path)
    return torch.load(local, weights_only=False)


def _same_weights(module: nn.Module, state_dict: dict) -> bool:
    own = module.state_dict()
    return list(own) == list(state_dict) and all(torch.equal(own[k], state_dict[k]) for k in own)


def test_load_checkpoint_loads_the_latest_checkpoint(tracked, data):
    # "max" of a falling val_loss: the latest (best) checkpoint is epoch 0's, not the final model
    tracked.pytorch.autolog(checkpoint_mode="max")
    model, _trainer = _fit(data, epochs=3)
    run_id = tracked.last_active_run().info.run_id
    file = _checkpoint_file(tracked, run_id, "checkpoints/latest_checkpoint.pth")
    assert file["epoch"] == 1  # taken once epoch 0 was complete
    # no run given and none active: the run of the last fit
    loaded = tracked.pytorch.load_checkpoint(LitRegressor)
    assert type(loaded) is LitRegressor and _same_weights(loaded, file["state_dict"])
    assert not _same_weights(model, file["state_dict"])
    # kwargs reach load_from_checkpoint: a device and a hyperparameter override
    again = tracked.pytorch.load_checkpoint(
        LitRegressor, run_id, kwargs={"map_location": "cpu", "lr": 0.5}
    )
    assert again.hparams.lr == 0.5 and again.hparams.hidden == 8
    assert _same_weights(again, file["state_dict"])
    # inside an active run, that run is the default
    with tracked.start_run():
        _fit(data, epochs=1)
        active_id = tracked.active_run().info.run_id
        inner = _checkpoint_file(tracked, active_id, "checkpoints/latest_checkpoint.pth")
        assert _same_weights(tracked.pytorch.load_checkpoint(LitRegressor), inner["state_dict"])


def test_load_checkpoint_of_an_epoch(tracked, data):
    tracked.pytorch.autolog(checkpoint_save_best_only=False, log_models=False, log_datasets=False)
    _fit(data, epochs=3)
    run_id = tracked.last_active_run().info.run_id
    tag = tracked.get_run(run_id).data.tags["mlflow.latest_checkpoint_artifact"]
    assert tag == "checkpoints/epoch_2/checkpoint.pth"
    files = {
        e: _checkpoint_file(tracked, run_id, f"checkpoints/epoch_{e}/checkpoint.pth")
        for e in (1, 2)
    }
    loaded = tracked.pytorch.load_checkpoint(LitRegressor, run_id, epoch=1)
    assert _same_weights(loaded, files[1]["state_dict"])
    assert not _same_weights(loaded, files[2]["state_dict"])
    latest = tracked.pytorch.load_checkpoint(LitRegressor, run_id)
    assert _same_weights(latest, files[2]["state_dict"])
    with pytest.raises(
        ResourceDoesNotExist, match=r"no checkpoint for epoch 7; .* epochs 0, 1, 2\."
    ):
        tracked.pytorch.load_checkpoint(LitRegressor, run_id, epoch=7)
    with pytest.raises(
        ResourceDoesNotExist, match=r"nor any per global step .* epochs 0, 1, 2 \(pass epoch=\)"
    ):
        tracked.pytorch.load_checkpoint(LitRegressor, run_id, global_step=5)


def test_load_checkpoint_of_a_global_step_weights_only(tracked, data):
    tracked.pytorch.autolog(
        checkpoint_save_best_only=False,
        checkpoint_save_freq=5,
        checkpoint_save_weights_only=True,
        log_models=False,
        log_datasets=False,
    )
    _fit(data, epochs=2)  # 10 steps: checkpoints at steps 5 and 10
    run_id = tracked.last_active_run().info.run_id
    path = "checkpoints/global_step_5/checkpoint.weights.pth"
    file = _checkpoint_file(tracked, run_id, path)
    assert "optimizer_states" not in file
    loaded = tracked.pytorch.load_checkpoint(LitRegressor, run_id, global_step=5)
    assert _same_weights(loaded, file["state_dict"])
    last = _checkpoint_file(tracked, run_id, "checkpoints/global_step_10/checkpoint.weights.pth")
    assert _same_weights(tracked.pytorch.load_checkpoint(LitRegressor, run_id), last["state_dict"])
    with pytest.raises(ResourceDoesNotExist, match=r"global step 7; .* global steps 5, 10\."):
        tracked.pytorch.load_checkpoint(LitRegressor, run_id, global_step=np.int64(7))


def test_load_checkpoint_bad_inputs_are_clear_errors(tracked, data):
    load = tracked.pytorch.load_checkpoint
    with pytest.raises(InvalidParameterValue, match="No run to load a checkpoint from"):
        load(LitRegressor)
    with pytest.raises(InvalidParameterValue, match="epoch or global_step, not both"):
        load(LitRegressor, "any", epoch=1, global_step=5)
    with pytest.raises(InvalidParameterValue, match="Linear has no load_from_checkpoint: pass"):
        load(nn.Linear, "any")
    with pytest.raises(InvalidParameterValue, match="not an instance: pass LitRegressor"):
        load(LitRegressor(), "any")
    with pytest.raises(InvalidParameterValue, match="epoch must be an int"):
        load(LitRegressor, "any", epoch="2")
    with pytest.raises(InvalidParameterValue, match="global_step must be >= 0"):
        load(LitRegressor, "any", global_step=-5)
    with pytest.raises(InvalidParameterValue, match="kwargs must be a dict"):
        load(LitRegressor, "any", kwargs=["cpu"])
    with tracked.start_run() as bare:
        pass
    with pytest.raises(
        ResourceDoesNotExist, match=r"no logged checkpoint .*autolog\(checkpoint=True\)"
    ):
        load(LitRegressor, bare.info.run_id)
    with pytest.raises(
        ResourceDoesNotExist, match=r"epoch 0, nor any .*no checkpoints.*checkpoint=True"
    ):
        load(LitRegressor, bare.info.run_id, epoch=0)
    with pytest.raises(ResourceDoesNotExist):
        load(LitRegressor, "0" * 32)
    tracked.pytorch.autolog(log_models=False, log_datasets=False)  # best only
    _fit(data, epochs=1)
    with pytest.raises(
        ResourceDoesNotExist, match=r"only the latest .* neither epoch nor global_step"
    ):
        load(LitRegressor, epoch=0)


def test_load_checkpoint_from_a_remote_store(tmp_path, data):
    """Through ``mltrack server`` (proxied artifacts): downloaded to a temp folder, loaded."""
    import jupyter_mltrack as mlflow
    from tests.test_server_routes import start_server

    server = start_server(str(tmp_path / "server-store"), cwd=tmp_path, artifacts=tmp_path / "art")
    try:
        mlflow.set_tracking_uri(server.url)
        mlflow.set_experiment("remote")  # a new experiment's artifacts go through the server
        mlflow.pytorch.autolog(
            checkpoint_save_best_only=False, log_models=False, log_datasets=False
        )
        _fit(data, epochs=2)
        run_id = mlflow.last_active_run().info.run_id
        assert not mlflow.MlflowClient().artifact_repository(run_id).is_local
        files = {}
        for epoch in (0, 1):
            copy = mlflow.MlflowClient().download_artifacts(
                run_id, f"checkpoints/epoch_{epoch}/checkpoint.pth", str(tmp_path / str(epoch))
            )
            files[epoch] = torch.load(copy, weights_only=False)["state_dict"]
        loaded = mlflow.pytorch.load_checkpoint(LitRegressor, epoch=0)
        assert _same_weights(loaded, files[0]) and not _same_weights(loaded, files[1])
        latest = mlflow.pytorch.load_checkpoint(LitRegressor, run_id)
        assert _same_weights(latest, files[1])
        with pytest.raises(ResourceDoesNotExist, match=r"epoch 4; .* epochs 0, 1\."):
            mlflow.pytorch.load_checkpoint(LitRegressor, run_id, epoch=4)
    finally:
        server.stop()


# -- plain PyTorch loops ----------------------------------------------------------------------------
def _plain_loop(tracker, model, optimizer, X, y, epochs=5, scheduler=None):
    for epoch in range(epochs):
        for i in range(0, len(X), 8):
            loss = nn.functional.mse_loss(model(X[i : i + 8]), y[i : i + 8])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            if scheduler is not None:
                scheduler.step()
            tracker.log(loss=loss)
        tracker.log(epoch_loss=loss, epoch=epoch)


def test_track_training_logs_curves_params_and_the_model(tracked, data):
    X = data[0][:32]
    y = X.sum(1, keepdim=True)
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 1))
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=10, gamma=0.5)
    with tracked.pytorch.track_training(
        model, optimizer, log_every_n_steps=3, params={"epochs": 5}, train_data=data[1]
    ) as run:
        _plain_loop(run, model, optimizer, X, y, scheduler=scheduler)
    logged = tracked.get_run(run.run_id)
    assert logged.info.status == "FINISHED"
    params = logged.data.params
    assert params["optimizer_name"] == "SGD" and params["momentum"] == "0.9"
    assert params["lr"] == "0.01" and params["epochs"] == "5" and params["total_params"] == "49"
    # 20 optimizer steps, logged at 3, 6, ..., 18; the lr halves after step 10: the points
    # kept draw that step (the value before and after the change, the first and the last)
    assert [s for s, _ in _history(tracked, run.run_id, "loss")] == list(range(3, 19, 3))
    assert _history(tracked, run.run_id, "lr") == [(3, 0.01), (9, 0.01), (12, 0.005), (18, 0.005)]
    assert [s for s, _ in _history(tracked, run.run_id, "epoch_loss")] == [0, 1, 2, 3, 4]
    assert [i.tags[0].value for i in logged.inputs.dataset_inputs] == ["train"]
    loaded = tracked.pytorch.load_model(run.model_uri)
    np.testing.assert_allclose(_out(loaded, X), _out(model, X), rtol=1e-6)
    assert tracked.models.get_model_info(run.model_uri).signature is not None


def test_track_training_in_a_track_cell_and_with_an_active_run(ip, data):
    ip.push({"X": data[0][:16], "nn": nn, "torch": torch})
    ip.run_cell(
        "%%track loop-cell\n"
        "import jupyter_mltrack as mlflow\n"
        "lr = 0.05\n"
        "model = nn.Linear(4, 1)\n"
        "opt = torch.optim.Adam(model.parameters(), lr=lr)\n"
        "with mlflow.pytorch.track_training(model, opt) as t:\n"
        "    for _ in range(4):\n"
        "        loss = model(X).pow(2).mean(); opt.zero_grad(); loss.backward(); opt.step()\n"
        "        t.log(loss=loss)\n"
    ).raise_error()
    import jupyter_mltrack as mlflow

    (run,) = mlflow.search_runs(output_format="list")
    assert run.info.run_name == "loop-cell" and run.info.status == "FINISHED"
    assert run.data.params["lr"] == "0.05" and run.data.params["optimizer_name"] == "Adam"
    assert [s for s, _ in _history(mlflow, run.info.run_id, "loss")] == [1, 2, 3, 4]
    assert "model" in _artifacts(mlflow, run.info.run_id)


def test_track_training_survives_a_failing_store(tracked, data, monkeypatch):
    from jupyter_mltrack.tracking.client import Client

    def broken(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(Client, "log_batch", broken)
    monkeypatch.setattr(Client, "log_metric_points", broken)  # the metric points' way
    X = data[0][:32]
    model = nn.Linear(4, 1)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01)
    before = model.weight.detach().clone()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with tracked.pytorch.track_training(model, optimizer) as run:
            _plain_loop(run, model, optimizer, X, X.sum(1, keepdim=True), epochs=2)
    ours = [w for w in caught if "track_training" in str(w.message)]
    assert ours and all("disk full" in str(w.message) for w in ours)
    assert len({str(w.message) for w in ours}) == len(ours)  # each problem once
    assert run.step == 8 and not torch.equal(model.weight, before)  # it trained
    assert tracked.get_run(run.run_id).info.status == "FINISHED"


def test_track_training_error_in_the_block_fails_the_run(tracked):
    model = nn.Linear(4, 1)
    with pytest.raises(RuntimeError, match="boom"), tracked.pytorch.track_training(model) as run:
        run.log(loss=1.0)
        raise RuntimeError("boom")
    logged = tracked.get_run(run.run_id)
    assert logged.info.status == "FAILED" and run.model_uri is None
    assert _history(tracked, run.run_id, "loss") == [(1, 1.0)]


def test_track_training_bad_inputs(tracked):
    track = tracked.pytorch.track_training
    with pytest.raises(InvalidParameterValue, match=r"torch\.nn\.Module being trained, got dict"):
        track({"w": 1})
    with pytest.raises(InvalidParameterValue, match=r"torch\.optim\.Optimizer"):
        track(nn.Linear(2, 1), optimizer="adam")
    with pytest.raises(InvalidParameterValue, match="log_every_n_steps must be a positive"):
        track(nn.Linear(2, 1), log_every_n_steps=0)
    with (
        pytest.warns(UserWarning, match="'note' are not single numbers"),
        track(nn.Linear(2, 1), log_models=False) as run,
    ):
        run.log(loss=0.5, note="fine")
    assert _history(tracked, run.run_id, "loss") == [(1, 0.5)]
    # with an optimizer (the per-step way): ints, numpy numbers and tensors are numbers; a
    # value that is not one number is refused with a warning, the others are kept once
    model = nn.Linear(2, 1)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    with (
        pytest.warns(UserWarning, match="'pair' are not single numbers"),
        track(model, optimizer, log_models=False) as run,
    ):
        model(torch.ones(1, 2)).sum().backward()
        optimizer.step()
        run.log(count=3, f64=np.float64(0.25), t=torch.tensor(2.0, requires_grad=True))
        run.log(kept=1.5, pair=torch.tensor([1.0, 2.0]))
    assert _history(tracked, run.run_id, "count") == [(1, 3.0)]
    assert _history(tracked, run.run_id, "f64") == [(1, 0.25)]
    assert _history(tracked, run.run_id, "t") == [(1, 2.0)]
    assert _history(tracked, run.run_id, "kept") == [(1, 1.5)]
    assert _history(tracked, run.run_id, "pair") == []
