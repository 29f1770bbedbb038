"""Autolog with the unified ``lightning`` package (``import lightning.pytorch as L``), the way
Lightning's own docs import it today: the same callback, patched on ``lightning.pytorch``'s
``Trainer.fit`` (the other tests use ``pytorch_lightning``)."""

from __future__ import annotations

import lightning.pytorch as L
import numpy as np
import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from jupyter_mltrack.autolog import pytorch as pt_autolog

pytestmark = [
    pytest.mark.filterwarnings("ignore:.*treespec, LeafSpec.*"),
    pytest.mark.filterwarnings("ignore:You defined a `validation_step` but have no"),
]


class UnifiedRegressor(L.LightningModule):
    def __init__(self, n_in: int = 4, lr: float = 0.05) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.net = nn.Linear(n_in, 1)

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

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=self.hparams.lr)


@pytest.fixture
def tracked(tmp_path):
    import jupyter_mltrack as mlflow

    mlflow.set_tracking_uri(str(tmp_path / "store"))
    yield mlflow
    pt_autolog.autolog(disable=True)


def test_autolog_follows_a_lightning_pytorch_fit(tracked):
    torch.manual_seed(0)
    X = torch.randn(32, 4)
    y = X.sum(1, keepdim=True)
    train = DataLoader(TensorDataset(X, y), batch_size=8)  # 4 steps per epoch
    val = DataLoader(TensorDataset(X[:8], y[:8]), batch_size=8)
    original_fit = L.Trainer.fit
    tracked.pytorch.autolog(log_every_n_steps=2)
    assert L.Trainer.fit is not original_fit
    model = UnifiedRegressor()
    trainer = L.Trainer(
        max_epochs=2,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        num_sanity_val_steps=0,
        log_every_n_steps=2,
    )
    trainer.fit(model, train, val)
    run = tracked.last_active_run()
    assert run.data.tags["mlflow.autologging"] == "pytorch"
    assert run.data.params["lr"] == "0.05" and run.data.params["epochs"] == "2"
    client = tracked.MlflowClient()
    steps = [m.step for m in client.get_metric_history(run.info.run_id, "train_loss")]
    assert steps == [2, 4, 6, 8]
    assert [m.step for m in client.get_metric_history(run.info.run_id, "val_loss")] == [0, 1]
    loaded = tracked.pyfunc.load_model(f"runs:/{run.info.run_id}/model")
    with torch.no_grad():
        expected = model(X).numpy()
    np.testing.assert_allclose(loaded.predict(X.numpy()), expected, rtol=1e-5)
    requirements = tracked.pyfunc.get_model_dependencies(f"runs:/{run.info.run_id}/model")
    with open(requirements) as fh:
        assert f"lightning=={L.__version__}" in fh.read().split()
    tracked.pytorch.autolog(disable=True)
    assert L.Trainer.fit is original_fit
