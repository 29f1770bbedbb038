"""Benchmark 11: overhead of tracking a PyTorch training, Lightning autolog and a plain loop.

A tiny model (a 2-layer MLP, 32 -> 64 -> 1, MSE loss, SGD) on random data: 3,200 training rows
in batches of 32 (100 steps per epoch), 10 epochs = 1,000 optimizer steps; 320 validation rows.
Every variant builds a fresh model (and Trainer) untimed, then times the training; variants
alternate within each round (``interleaved``) and medians are compared, so drift on a shared
machine hits every variant alike. Overhead = median with tracking - median without.

- Lightning (``Trainer.fit``, Trainer defaults apart from no progress bar, no logger, no
  Lightning checkpointing and no model summary, so the bare loop is as lean as it gets; the
  module logs ``train_loss`` per step, Lightning's default ``log_every_n_steps``, and
  ``val_loss`` per epoch): without tracking versus with the library's autolog at its defaults
  (``mlflow.pytorch.autolog()``, a run per fit, checkpoints, the model logged at the end).
- Plain loop (a ``DataLoader`` over a ``TensorDataset``; forward, loss, ``zero_grad``,
  ``backward``, ``step``): without tracking versus what each library's user writes. Ours:
  ``with mlflow.pytorch.track_training(model, optimizer) as run:`` and ``run.log(loss=loss)``
  per step (params, learning rates per step and the model come with it); also with
  ``log_models=False`` for reference. MLflow has no autolog of a plain loop: ``with
  mlflow.start_run():`` and ``mlflow.log_metric("loss", loss.item(), step=step)`` per step;
  also with ``mlflow.pytorch.log_model(model, name="model", signature=...,
  serialization_format="pickle")`` at the end for reference (as MLflow's Lightning autolog logs
  it; its default ``pt2`` format needs an input example and traces the model).

Both sides run one intra-op thread (``torch.set_num_threads(1)``: less noise on a shared
machine, same setting on both). After timing, the last tracked run of each variant is read back
(metric points, logged model) and the checks go into the result.
"""

from __future__ import annotations

import logging
import os
import statistics
import time
import warnings
from collections.abc import Callable
from functools import partial
from importlib import import_module
from typing import Any

from _common import SEED, base_parser, emit, interleaved, lib_version, load, store_uri, workdir

try:
    import pytorch_lightning as pl
    import torch
    import torch.nn.functional as F
except ImportError as exc:  # MLflow's venv without the --torch extras
    raise SystemExit(
        f"{exc}: the autolog benchmark needs torch and pytorch-lightning; for MLflow's venv run "
        "`bash benchmarks/setup_mlflow_venv.sh --torch`."
    ) from None

N_FEATURES, HIDDEN, BATCH, LR = 32, 64, 32, 0.01
STEPS_PER_EPOCH, VAL_BATCHES = 100, 10


def sizes(lib: str, quick: bool) -> dict[str, Any]:
    """Epochs per training and timed rounds per part. Every variant first runs once with one
    epoch, untimed (imports, first run, first model logged); MLflow's tracked variants take
    tens of seconds each, so it runs fewer rounds (its overheads dwarf the noise)."""
    if quick:
        return {"epochs": 3, "warmup_epochs": 0, "loop": 1, "lightning": 1, "reference": 0}
    if lib == "mltrack":
        return {"epochs": 10, "warmup_epochs": 1, "loop": 41, "lightning": 21, "reference": 25}
    return {"epochs": 10, "warmup_epochs": 1, "loop": 3, "lightning": 3, "reference": 1}


def timed_rounds(
    make: Callable[[int], dict[str, Callable[[], float]]], n: dict[str, Any], rounds: int
) -> dict[str, list[float]]:
    """``make(epochs)`` gives the variants; a one-epoch warm-up round, then ``rounds``."""
    if n["warmup_epochs"] and rounds:
        interleaved(make(n["warmup_epochs"]), 1)
    return interleaved(make(n["epochs"]), rounds)


# -- the model, the data --------------------------------------------------------------------------
class TinyNet(torch.nn.Module):
    """The plain-loop model: a 2-layer MLP."""

    def __init__(self, n_features: int = N_FEATURES, hidden: int = HIDDEN) -> None:
        super().__init__()
        self.net = torch.nn.Sequential(
            torch.nn.Linear(n_features, hidden), torch.nn.ReLU(), torch.nn.Linear(hidden, 1)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class TinyModule(pl.LightningModule):
    """The same MLP as a LightningModule."""

    def __init__(self, n_features: int = N_FEATURES, hidden: int = HIDDEN, lr: float = LR) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.net = TinyNet(n_features, hidden)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)

    def training_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
        x, y = batch
        loss = F.mse_loss(self(x), y)
        self.log("train_loss", loss)
        return loss

    def validation_step(self, batch: Any, batch_idx: int) -> None:
        x, y = batch
        self.log("val_loss", F.mse_loss(self(x), y))

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.SGD(self.parameters(), lr=self.hparams.lr)


def loaders() -> tuple[Any, Any]:
    """(train, validation) DataLoaders over random regression data."""
    from torch.utils.data import DataLoader, TensorDataset

    gen = torch.Generator().manual_seed(SEED)
    w = torch.randn(N_FEATURES, 1, generator=gen)

    def data(rows: int) -> TensorDataset:
        x = torch.randn(rows, N_FEATURES, generator=gen)
        return TensorDataset(x, x @ w + 0.1 * torch.randn(rows, 1, generator=gen))

    train = DataLoader(data(STEPS_PER_EPOCH * BATCH), batch_size=BATCH, shuffle=True)
    val = DataLoader(data(VAL_BATCHES * BATCH), batch_size=BATCH)
    return train, val


# -- Lightning ------------------------------------------------------------------------------------
def trainer(epochs: int) -> Any:
    return pl.Trainer(
        max_epochs=epochs,
        accelerator="cpu",
        devices=1,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
    )


def lightning_part(mlflow: Any, n: dict[str, Any]) -> dict[str, Any]:
    """``Trainer.fit`` without tracking, with ``mlflow.pytorch.autolog()`` (defaults) and, for
    reference, with ``autolog(log_models=False, checkpoint=False)`` (the metrics alone)."""
    flavor = import_module(f"{mlflow.__name__}.pytorch")
    train, val = loaders()
    last: dict[str, str] = {}
    settings = {"autolog": {}, "metrics_only": {"log_models": False, "checkpoint": False}}

    def make(epochs: int) -> dict[str, Callable[[], float]]:
        def fit(name: str) -> Callable[[], float]:
            def variant() -> float:
                if name == "plain":
                    flavor.autolog(disable=True)
                else:
                    flavor.autolog(silent=True, **settings[name])
                torch.manual_seed(SEED)
                model, t = TinyModule(), trainer(epochs)
                t0 = time.perf_counter()
                t.fit(model, train, val)
                seconds = time.perf_counter() - t0
                if name != "plain":
                    last[name] = mlflow.last_active_run().info.run_id
                return seconds

            return variant

        return {name: fit(name) for name in ("plain", *settings)}

    samples = timed_rounds(make, n, n["lightning"])
    flavor.autolog(disable=True)
    out = overhead(samples, "plain", autolog="autolog", metrics_only="metrics_only")
    out["check"] = {
        name: check_run(mlflow, last.get(name), {"val_loss": n["epochs"]}, model=name == "autolog")
        for name in settings
    }
    return out


# -- a plain loop ---------------------------------------------------------------------------------
def fresh() -> tuple[TinyNet, Any]:
    torch.manual_seed(SEED)
    model = TinyNet()
    return model, torch.optim.SGD(model.parameters(), lr=LR)


def loop_plain(loader: Any, epochs: int) -> float:
    model, optimizer = fresh()
    t0 = time.perf_counter()
    for _epoch in range(epochs):
        for x, y in loader:
            loss = F.mse_loss(model(x), y)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    return time.perf_counter() - t0


def loop_ours(mlflow: Any, loader: Any, epochs: int, **kwargs: Any) -> tuple[float, str]:
    """The plain loop with our two lines: ``track_training`` and ``run.log``."""
    model, optimizer = fresh()
    t0 = time.perf_counter()
    with mlflow.pytorch.track_training(model, optimizer, **kwargs) as run:
        for _epoch in range(epochs):
            for x, y in loader:
                loss = F.mse_loss(model(x), y)
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
                run.log(loss=loss)
    return time.perf_counter() - t0, run.run_id


def loop_mlflow(mlflow: Any, loader: Any, epochs: int, log_model: bool) -> tuple[float, str]:
    """The plain loop as an MLflow user tracks it: ``log_metric`` per step in a run."""
    infer_signature = import_module(f"{mlflow.__name__}.models").infer_signature
    model, optimizer = fresh()
    t0 = time.perf_counter()
    with mlflow.start_run() as active:
        step = 0
        for _epoch in range(epochs):
            for x, y in loader:
                loss = F.mse_loss(model(x), y)
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
                step += 1
                mlflow.log_metric("loss", loss.item(), step=step)
        if log_model:  # as MLflow's own Lightning autolog logs it: pickled, with a signature
            with torch.no_grad():
                signature = infer_signature(x.numpy(), model(x).numpy())
            mlflow.pytorch.log_model(
                model, name="model", signature=signature, serialization_format="pickle"
            )
    return time.perf_counter() - t0, active.info.run_id


def loop_part(lib: str, mlflow: Any, n: dict[str, Any]) -> dict[str, Any]:
    """The plain loop without tracking and with each library's usual tracking code; then the
    reference variant (ours without the model, MLflow with it) against the bare loop."""
    import_module(f"{mlflow.__name__}.pytorch")
    train, _val = loaders()
    last: dict[str, str] = {}

    def tracked(name: str, run: Callable[[], tuple[float, str]]) -> Callable[[], float]:
        def variant() -> float:
            seconds, last[name] = run()
            return seconds

        return variant

    def variants(name: str, options: dict[str, Any]) -> Callable[[int], dict]:
        loop = loop_ours if lib == "mltrack" else loop_mlflow

        def make(epochs: int) -> dict[str, Callable[[], float]]:
            run = partial(loop, mlflow, train, epochs, **options)
            return {"plain": partial(loop_plain, train, epochs), name: tracked(name, run)}

        return make

    if lib == "mltrack":  # track_training's defaults; for reference without the model
        main, reference = variants("tracked", {}), variants("reference", {"log_models": False})
    else:  # log_metric per step; for reference with log_model at the end
        main = variants("tracked", {"log_model": False})
        reference = variants("reference", {"log_model": True})

    samples = timed_rounds(main, n, n["loop"])
    out = overhead(samples, "plain", tracked="tracked")
    if n["reference"]:
        out["reference"] = overhead(
            timed_rounds(reference, n, n["reference"]), "plain", reference="reference"
        )["reference"]
        out["reference"]["what"] = "log_models=False" if lib == "mltrack" else "+ log_model"
    steps = n["epochs"] * STEPS_PER_EPOCH
    with_model = {"tracked"} if lib == "mltrack" else {"reference"}
    out["check"] = {
        name: check_run(mlflow, run_id, {"loss": steps}, model=name in with_model)
        for name, run_id in last.items()
    }
    return out


# -- figures and checks ---------------------------------------------------------------------------
def overhead(samples: dict[str, list[float]], plain: str, **tracked: str) -> dict[str, Any]:
    """Medians of every variant; per tracked variant its overhead (difference of the medians)
    in seconds and in % of the untracked median, and for reference the median of the per-round
    differences (``paired_s``: a round's two trainings ran back to back, so it is less
    sensitive to load that comes and goes) and the difference of the fastest of each
    (``best_s``: noise only ever adds time)."""
    med = {name: statistics.median(values) for name, values in samples.items()}
    out: dict[str, Any] = {"median_s": med, "samples_s": samples, "n": len(samples[plain])}
    for name, variant in tracked.items():
        extra = med[variant] - med[plain]
        paired = statistics.median(t - p for t, p in zip(samples[variant], samples[plain]))
        best = min(samples[variant]) - min(samples[plain])
        out[name] = {
            "overhead_s": extra,
            "overhead_pct": 100 * extra / med[plain],
            "paired_s": paired,
            "paired_pct": 100 * paired / med[plain],
            "best_s": best,
            "best_pct": 100 * best / min(samples[plain]),
        }
    return out


def check_run(mlflow: Any, run_id: str | None, points: dict[str, int], model: bool) -> dict:
    """Read a tracked run back: metric points per key, and whether a model was logged."""
    if run_id is None:
        return {"error": "no run"}
    client = import_module(f"{mlflow.__name__}.tracking").MlflowClient()
    found = {key: len(client.get_metric_history(run_id, key)) for key in points}
    out: dict[str, Any] = {"run_id": run_id, "points": found, "expected": points}
    if model:
        in_run = any(a.path == "model" for a in client.list_artifacts(run_id))
        out["model_logged"] = in_run or bool(_logged_models(mlflow, run_id))
    out["ok"] = found == points and out.get("model_logged", True)
    return out


def _logged_models(mlflow: Any, run_id: str) -> list[Any]:
    """MLflow 3 keeps models apart from the run's artifacts (logged models)."""
    search = getattr(mlflow, "search_logged_models", None)
    if search is None:
        return []
    try:
        found = search(filter_string=f"source_run_id = '{run_id}'", output_format="list")
    except Exception:
        return []
    return list(found)


def main() -> None:
    args = base_parser(__doc__.splitlines()[0]).parse_args()
    n = sizes(args.lib, args.quick)
    warnings.simplefilter("ignore")
    for name in ("pytorch_lightning", "lightning.pytorch", "lightning_fabric", "mlflow"):
        logging.getLogger(name).setLevel(logging.ERROR)
    torch.set_num_threads(1)
    mlflow = load(args.lib)
    result: dict[str, Any] = {
        "lib": args.lib,
        "version": lib_version(args.lib),
        "torch": torch.__version__,
        "lightning_version": pl.__version__,
        "sizes": {**n, "steps": n["epochs"] * STEPS_PER_EPOCH, "batch": BATCH},
        "cpus": os.cpu_count(),
    }
    with workdir("autolog", args.lib, args.keep) as wd:
        mlflow.set_tracking_uri(store_uri(args.lib, wd))
        mlflow.set_experiment("autolog-bench")
        result["loop"] = loop_part(args.lib, mlflow, n)
        result["lightning"] = lightning_part(mlflow, n)
    emit(result)


if __name__ == "__main__":
    main()
