"""What PyTorch Lightning autologging logs during ``Trainer.fit``, as a Lightning callback.

- at the start: params (the module's ``save_hyperparameters()`` values, the datamodule's,
  ``epochs``, ``optimizer_name`` and the optimizer's settings, the model's size, EarlyStopping
  settings), ``model_summary.txt``, the train / eval datasets;
- per step, with ``log_every_n_step=n``: the values logged with ``self.log(..., on_step=True)``
  at global steps ``n, 2n, ...`` (Lightning's ``trainer.global_step``, counted after the
  optimizer step), and the learning rates at those steps (first, last and changed values: the
  same curve from fewer points);
- per epoch (every ``log_every_n_epoch``): every other logged value (``trainer
  .callback_metrics``, including validation and ``on_train_epoch_end`` values) at step = epoch,
  and the learning rates when no step metrics are logged;
- checkpoints (``checkpoint=True``): ``checkpoints/latest_checkpoint.pth`` each time the
  monitored metric improves (or one per epoch / per ``checkpoint_save_freq`` steps), and the
  best weights are remembered so the logged model is the best one.

Every hook catches its own errors: a problem while logging is recorded and reported once after
the fit; the training goes on.
"""

from __future__ import annotations

import copy
import importlib
import json
import os
import tempfile
import time
import warnings
from typing import Any

from jupyter_mltrack.pytorch import _logging
from jupyter_mltrack.pytorch._logging import FirstForward, MetricBuffer, Problems

LATEST_CHECKPOINT_TAG = "mlflow.latest_checkpoint_artifact"  # MLflow's tag
CHECKPOINT_DIR = "checkpoints"
FLUSH_POINTS = 1000
FLUSH_SECONDS = 2.0
CHECKPOINT_WRITE_SECONDS = 30.0  # checkpoints due sooner wait in memory (written at the end)
CHECKPOINT_PENDING_BYTES = 256 * 1024 * 1024
_EARLY_STOPPING_PARAMS = ("monitor", "mode", "patience", "min_delta", "stopped_epoch")

_callback_classes: dict[str, type] = {}
_UNUSED_BATCH_HOOKS = (
    "on_train_batch_start",
    "on_before_backward",
    "on_after_backward",
    "on_before_optimizer_step",
    "on_before_zero_grad",
    "on_validation_batch_start",
    "on_validation_batch_end",
)


def make_callback(package: str, fit_run: Any, config: Any, problems: Problems) -> Any:
    """A callback of ``package`` (``pytorch_lightning`` or ``lightning.pytorch``) logging one
    fit into ``fit_run``."""
    cls = _callback_classes.get(package)
    if cls is None:
        pl = importlib.import_module(package)
        # Lightning dispatches every hook of every callback, each through a profiler context,
        # ~6 times per training step; it skips a hook that is not callable, so the per-batch
        # hooks this callback does not use are switched off (about 2% of a small model's fit).
        unused = {name: None for name in _UNUSED_BATCH_HOOKS if hasattr(pl.Callback, name)}
        cls = type("MLTrackAutologCallback", (TrainingFollower, pl.Callback), unused)
        _callback_classes[package] = cls
    return cls(package, fit_run, config, problems)


class TrainingFollower:
    """The hooks (mixed into a Lightning ``Callback`` by ``make_callback``)."""

    def __init__(self, package: str, fit_run: Any, config: Any, problems: Problems) -> None:
        self.package = package
        self.client = fit_run.client
        self.run_id = fit_run.run_id
        self.config = config
        self.problems = problems
        self.buffer = MetricBuffer(self.client, self.run_id)
        self.module: Any = None
        self.rank_zero = True
        self.step_names: set[str] = set()
        self.last_step = -1
        self.last_checkpoint_step = -1
        self.pending_epoch: int | None = None
        self.best_value: float | None = None
        self.best_epoch: int | None = None
        self.best_state: dict[str, Any] | None = None
        self.first_forward: FirstForward | None = None
        self.rates: _logging.LearningRates | None = None
        self.curve: _logging.RateCurve | None = None
        self.last_flush = time.monotonic()
        # artifact path -> (checkpoint snapshot or bytes, its metrics, the metrics' path)
        self.pending_checkpoints: dict[str, tuple[Any, dict[str, Any], str]] = {}
        self.pending_bytes = 0
        self.last_checkpoint_write = time.monotonic()

    def _safely(self, what: str, function: Any, *args: Any) -> None:
        try:
            function(*args)
        except Exception as exc:
            self.problems.add(what, exc)

    # -- Lightning hooks ------------------------------------------------------------------------
    def on_train_start(self, trainer: Any, pl_module: Any) -> None:
        # in distributed training only the first process logs
        self.rank_zero = bool(getattr(trainer, "is_global_zero", True))
        if not self.rank_zero:
            return
        self.module = pl_module
        self._safely("params not logged", self._log_params, trainer, pl_module)
        self._safely("the model summary not logged", self._log_summary, pl_module)
        if self.config.log_datasets:
            self._safely("datasets not logged", self._log_datasets, trainer)
        if self.config.log_models and self.config.log_model_signatures:
            self._safely("no signature", self._watch_forward, pl_module)

    def on_train_batch_end(
        self, trainer: Any, pl_module: Any, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        if not self.rank_zero:
            return
        step = trainer.global_step
        every = self.config.log_every_n_step
        if every and step != self.last_step and step % every == 0:
            self.last_step = step
            self._safely("step metrics not logged", self._log_step, trainer, step)
        freq = self.config.checkpoint_save_freq
        if (
            self.config.checkpoint
            and isinstance(freq, int)
            and step
            and step % freq == 0
            and step != self.last_checkpoint_step
        ):
            self.last_checkpoint_step = step
            self._safely("checkpoint not logged", self._checkpoint_at_step, trainer, step)

    def on_train_epoch_end(self, trainer: Any, pl_module: Any) -> None:
        if not self.rank_zero:
            return
        if self.config.log_every_n_step:
            self._safely("step metrics not logged", self._note_step_names, trainer)
        # logged at the next hook: the module's own on_train_epoch_end runs after callbacks',
        # and what it logs belongs to this epoch
        self.pending_epoch = trainer.current_epoch

    def on_train_epoch_start(self, trainer: Any, pl_module: Any) -> None:
        self._end_epoch(trainer)

    def on_train_end(self, trainer: Any, pl_module: Any) -> None:
        self._wrap_up(trainer)

    def on_exception(self, trainer: Any, pl_module: Any, exception: BaseException) -> None:
        self._wrap_up(trainer)

    def _wrap_up(self, trainer: Any) -> None:
        self._end_epoch(trainer)
        if self.curve is not None:
            self.curve.finish(self.buffer.points)
        self._safely("checkpoint not logged", self.write_checkpoints)
        self.flush()

    # -- after the fit --------------------------------------------------------------------------
    def after_fit(self, trainer: Any) -> None:
        """Early-stopping results and the model (called once ``fit`` has returned)."""
        self._safely("early stopping results not logged", self._log_early_stopping, trainer)
        self.flush()
        if self.config.log_models and self.module is not None:
            self._safely("the model not logged", self._log_model)

    def finish(self) -> None:
        if self.first_forward is not None:
            self.first_forward.remove()
        self.flush()

    def flush(self) -> None:
        self.last_flush = time.monotonic()
        self._safely("metrics not logged", self.buffer.flush)

    # -- what is logged -------------------------------------------------------------------------
    def _log_params(self, trainer: Any, pl_module: Any) -> None:
        params: dict[str, Any] = {}
        for owner in (pl_module, getattr(trainer, "datamodule", None)):
            hparams = getattr(owner, "hparams", None)
            if hparams:
                params.update(dict(hparams))
        params["epochs"] = trainer.max_epochs
        params.update(_logging.optimizer_params(list(trainer.optimizers)))
        params.update(_logging.model_size(pl_module))
        early = self._early_stopping(trainer)
        if early is not None:
            params.update(
                {p: getattr(early, p) for p in _EARLY_STOPPING_PARAMS if hasattr(early, p)}
            )
        _logging.log_params(self.client, self.run_id, params, self.problems)

    def _log_summary(self, pl_module: Any) -> None:
        summary = importlib.import_module(f"{self.package}.utilities.model_summary")
        text = str(summary.ModelSummary(pl_module, max_depth=-1))
        self.client.log_text(self.run_id, text, "model_summary.txt")

    def _log_datasets(self, trainer: Any) -> None:
        described = []
        for context, loaders in (
            ("train", trainer.train_dataloader),
            ("eval", trainer.val_dataloaders),
        ):
            if isinstance(loaders, (list, tuple)):
                loaders = loaders[0] if len(loaders) == 1 else None
            if loaders is None or isinstance(loaders, dict):
                continue
            dataset = _logging.dataset_of(loaders)
            if dataset is not None:
                described.append((dataset, context))
        _logging.log_datasets(self.client, self.run_id, described)

    def _watch_forward(self, pl_module: Any) -> None:
        self.first_forward = FirstForward(pl_module)

    def _log_step(self, trainer: Any, step: int) -> None:
        values = dict(_step_metrics(trainer))
        self.step_names.update(values)
        self.buffer.add(values, step)
        if self.curve is None:
            self.curve = _logging.RateCurve(list(trainer.optimizers))
        self.curve.observe(step, int(time.time() * 1000), self.buffer.points)
        self._maybe_flush()

    def _maybe_flush(self) -> None:
        """Write the points once there are many, or the last write is a while ago (a live
        chart keeps up; short steps or epochs do not each cost a write)."""
        if len(self.buffer) >= FLUSH_POINTS or time.monotonic() - self.last_flush >= FLUSH_SECONDS:
            self.flush()

    def _learning_rates(self, trainer: Any) -> dict[str, float]:
        if self.rates is None:
            self.rates = _logging.LearningRates(list(trainer.optimizers))
        return dict(self.rates.current())

    def _note_step_names(self, trainer: Any) -> None:
        self.step_names.update(_step_metrics(trainer))

    def _metrics(self, trainer: Any) -> dict[str, float]:
        metrics = {}
        for key, value in trainer.callback_metrics.items():
            number = _logging.to_float(value)
            if number is not None:
                metrics[key] = number
        return metrics

    def _end_epoch(self, trainer: Any) -> None:
        epoch = self.pending_epoch
        if epoch is None:
            return
        self.pending_epoch = None
        try:
            metrics = self._metrics(trainer)
        except Exception as exc:
            self.problems.add("epoch metrics not logged", exc)
            return
        if (epoch + 1) % self.config.log_every_n_epoch == 0:
            self._safely("epoch metrics not logged", self._log_epoch, trainer, epoch, metrics)
        if self.config.checkpoint and self.config.checkpoint_save_freq == "epoch":
            self._safely(
                "checkpoint not logged",
                self._consider_checkpoint,
                trainer,
                metrics,
                f"epoch_{epoch}",
                epoch,
            )
        self._maybe_flush()

    def _log_epoch(self, trainer: Any, epoch: int, metrics: dict[str, float]) -> None:
        values = {
            k: v
            for k, v in metrics.items()
            if k not in self.step_names
            and not (k.endswith("_step") and f"{k[:-5]}_epoch" in metrics)
        }
        if not self.config.log_every_n_step:
            values.update(self._learning_rates(trainer))
        self.buffer.add(values, epoch)

    def _checkpoint_at_step(self, trainer: Any, step: int) -> None:
        self._consider_checkpoint(trainer, self._metrics(trainer), f"global_step_{step}")

    def _consider_checkpoint(
        self, trainer: Any, metrics: dict[str, float], where: str, epoch: int | None = None
    ) -> None:
        """Remember the best weights (per ``checkpoint_monitor``) and log a checkpoint when
        due."""
        config = self.config
        epoch = trainer.current_epoch if epoch is None else epoch
        value = metrics.get(config.checkpoint_monitor) if config.checkpoint_monitor else None
        improved = value is not None and (
            self.best_value is None
            or (
                value < self.best_value
                if config.checkpoint_mode == "min"
                else value > self.best_value
            )
        )
        weights = None
        if improved:
            self.best_value, self.best_epoch = value, epoch
            self.best_state = weights = _copy_state(self.module.state_dict())
        if config.checkpoint_save_best_only:
            if improved:
                self._save_checkpoint(trainer, CHECKPOINT_DIR, "latest_", metrics, epoch, weights)
        else:
            self._save_checkpoint(trainer, f"{CHECKPOINT_DIR}/{where}", "", metrics, epoch, weights)

    def _save_checkpoint(
        self,
        trainer: Any,
        folder: str,
        prefix: str,
        metrics: dict[str, float],
        epoch: int,
        weights: dict[str, Any] | None,
    ) -> None:
        """Take the checkpoint now (a copy in memory) and write it with the others that are
        due: at once when the last write is ``CHECKPOINT_WRITE_SECONDS`` old, else at the end
        of the fit (a failing fit writes them too). A short fit so writes its best checkpoint
        once, and serializes it once."""
        weights_only = self.config.checkpoint_save_weights_only
        name = f"{prefix}checkpoint{'.weights' if weights_only else ''}.pth"
        data = _checkpoint_snapshot(trainer, weights_only, weights)
        summary = {**metrics, "epoch": epoch, "global_step": trainer.global_step}
        previous = self.pending_checkpoints.pop(f"{folder}/{name}", None)
        if previous is not None:
            self.pending_bytes -= _size(previous[0])
        self.pending_checkpoints[f"{folder}/{name}"] = (
            data,
            summary,
            f"{folder}/{prefix}checkpoint_metrics.json",
        )
        self.pending_bytes += _size(data)
        if (
            time.monotonic() - self.last_checkpoint_write >= CHECKPOINT_WRITE_SECONDS
            or self.pending_bytes >= CHECKPOINT_PENDING_BYTES
        ):
            self.write_checkpoints()

    def write_checkpoints(self) -> None:
        """Write the pending checkpoints (and their metrics): straight into a local artifact
        folder (each file renamed into place), else with one artifact upload."""
        self.last_checkpoint_write = time.monotonic()
        if not self.pending_checkpoints:
            return
        pending, self.pending_checkpoints, self.pending_bytes = self.pending_checkpoints, {}, 0
        repo = self.client.artifact_repository(self.run_id, for_write=True)
        if repo.is_local:
            for path, (data, summary, metrics_path) in pending.items():
                _write_local(repo, path, data)
                repo.write_bytes(json.dumps(summary).encode("utf-8"), metrics_path)
        else:
            self._upload_checkpoints(pending)
        self.client.set_tag(self.run_id, LATEST_CHECKPOINT_TAG, list(pending)[-1])

    def _upload_checkpoints(self, pending: dict[str, tuple[Any, dict[str, Any], str]]) -> None:
        with tempfile.TemporaryDirectory(prefix="mltrack-ckpt-") as tmp:
            for path, (data, summary, metrics_path) in pending.items():
                file = os.path.join(tmp, *path.split("/"))
                os.makedirs(os.path.dirname(file), exist_ok=True)
                _write_checkpoint(data, file)
                with open(os.path.join(tmp, *metrics_path.split("/")), "w") as fh:
                    json.dump(summary, fh)
            self.client.log_artifacts(self.run_id, tmp)

    def _early_stopping(self, trainer: Any) -> Any:
        callbacks = importlib.import_module(f"{self.package}.callbacks")
        for callback in trainer.callbacks:
            if isinstance(callback, callbacks.EarlyStopping):
                return callback
        return None

    def _log_early_stopping(self, trainer: Any) -> None:
        early = self._early_stopping(trainer)
        if early is None or not getattr(early, "stopped_epoch", 0):
            return
        values: dict[str, Any] = {
            "stopped_epoch": early.stopped_epoch,
            "restored_epoch": early.stopped_epoch - max(1, early.patience),
        }
        if getattr(early, "best_score", None) is not None:
            values["best_score"] = early.best_score
        if hasattr(early, "wait_count"):
            values["wait_count"] = early.wait_count
        self.buffer.add(values, 0)

    def _log_model(self) -> None:
        from jupyter_mltrack.pytorch import log_model

        model = self.module
        signature = self.first_forward.signature() if self.first_forward is not None else None
        metadata = None
        best = self.best_state
        final = None
        if best is not None:
            metadata = {
                "checkpoint_monitor": self.config.checkpoint_monitor,
                "checkpoint_mode": self.config.checkpoint_mode,
                "best_value": self.best_value,
                "best_epoch": self.best_epoch,
            }
            final = {k: v.detach().clone() for k, v in model.state_dict().items()}
            model.load_state_dict(best)
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # a model already in the run is replaced
                log_model(
                    model,
                    name="model",
                    signature=signature,
                    registered_model_name=self.config.registered_model_name,
                    metadata=metadata,
                )
        finally:
            if final is not None:
                model.load_state_dict(final)


def _copy_state(state_dict: Any) -> dict[str, Any]:
    """The module's weights copied to the CPU (the training goes on changing its own)."""
    return {k: v.detach().to("cpu", copy=True) for k, v in state_dict.items()}


def _checkpoint_snapshot(trainer: Any, weights_only: bool, weights: dict | None) -> Any:
    """The checkpoint ``trainer.save_checkpoint`` would write, copied in memory (serialized
    when written: a fit whose monitored metric keeps improving pays one ``torch.save``, not
    one per improvement). ``weights``: the module's weights already copied. Lightning
    versions without a checkpoint connector get the serialized bytes."""
    connector = getattr(trainer, "_checkpoint_connector", None)
    if connector is None or not hasattr(connector, "dump_checkpoint"):
        return _checkpoint_file_bytes(trainer, weights_only)
    checkpoint = connector.dump_checkpoint(weights_only)
    snapshot = {}
    for key, value in checkpoint.items():
        if key == "state_dict" and weights is not None and list(value) == list(weights):
            snapshot[key] = weights
        else:
            snapshot[key] = copy.deepcopy(value)
    return snapshot


def _checkpoint_file_bytes(trainer: Any, weights_only: bool) -> bytes:
    with tempfile.TemporaryDirectory(prefix="mltrack-ckpt-") as tmp:
        file = os.path.join(tmp, "checkpoint.pth")
        trainer.save_checkpoint(file, weights_only=weights_only)
        with open(file, "rb") as fh:
            return fh.read()


def _write_checkpoint(data: Any, file: str) -> None:
    import torch

    with open(file, "wb") as fh:  # a file object: torch names the archive after a path
        if isinstance(data, bytes):
            fh.write(data)
        else:
            torch.save(data, fh)


def _write_local(repo: Any, path: str, data: Any) -> None:
    """Write a checkpoint into a local artifact folder atomically (temp file, then rename): a
    crash while writing leaves the previous checkpoint."""
    tmp = repo.temp_file_near(path)
    try:
        _write_checkpoint(data, tmp)
        repo.log_artifact_as(tmp, path, move=True)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def _size(data: Any) -> int:
    """Bytes held by a pending checkpoint (its tensors, for a snapshot)."""
    if isinstance(data, bytes):
        return len(data)
    total = 0
    pending = [data]
    while pending:
        item = pending.pop()
        if isinstance(item, dict):
            pending.extend(item.values())
        elif isinstance(item, (list, tuple)):
            pending.extend(item)
        elif hasattr(item, "element_size") and hasattr(item, "nelement"):
            total += item.element_size() * item.nelement()
    return total


def _step_metrics(trainer: Any) -> dict[str, Any]:
    """The values logged with ``on_step=True`` in this step (named as Lightning's loggers get
    them: ``loss_step`` for a value also logged per epoch)."""
    results = getattr(trainer, "_results", None)
    if results is not None and hasattr(results, "metrics"):
        return dict(results.metrics(True)["log"])
    # fallback for Lightning versions without the result collection: MLflow's approach
    metrics = trainer.callback_metrics
    return {
        k: v for k, v in metrics.items() if not k.endswith("_epoch") and f"{k}_step" not in metrics
    }
