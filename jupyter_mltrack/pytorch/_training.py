"""Tracking a plain PyTorch training loop with two lines of code::

    with mlflow.pytorch.track_training(model, optimizer) as run:
        for epoch in range(epochs):
            for x, y in loader:
                loss = loss_fn(model(x), y)
                optimizer.zero_grad(); loss.backward(); optimizer.step()
                run.log(loss=loss)                       # per step
            run.log(val_loss=evaluate(model), epoch=epoch)  # per epoch

It logs into the active run (a ``with start_run()`` block, a ``%%track`` cell's run) or starts
one and ends it with the block: the optimizer's settings and the model's size as params; the
metrics given to ``log`` (step = optimizer steps taken so far, or ``epoch=``); the learning
rate of every parameter group at the logged optimizer steps (its first and last value and each
change: the same curve as a point per step, from far fewer points); the datasets; and at the end
the trained model (``runs:/<run_id>/model``) with a signature from its first forward pass.
Points are collected in memory and written in batches. A failing store never stops the
training: the first problem of each kind is reported in one warning.
"""

from __future__ import annotations

import time
import warnings
from time import time as _time
from typing import Any

from jupyter_mltrack.autolog import patching
from jupyter_mltrack.entities import RunStatus
from jupyter_mltrack.exceptions import InvalidParameterValue
from jupyter_mltrack.pytorch import _logging
from jupyter_mltrack.pytorch._logging import FirstForward, MetricBuffer

FLUSH_POINTS = 1000  # points held before they are handed to the writer thread
FLUSH_MS = 2000  # ... or milliseconds since the last write, so a live panel keeps up


def track_training(
    model: Any,
    optimizer: Any = None,
    *,
    log_every_n_steps: int = 1,
    log_models: bool = True,
    log_datasets: bool = True,
    train_data: Any = None,
    eval_data: Any = None,
    params: dict[str, Any] | None = None,
    signature: Any = None,
    registered_model_name: str | None = None,
    extra_tags: dict[str, Any] | None = None,
    silent: bool = False,
) -> TrainingTracker:
    """Track a plain PyTorch training loop (see the module docstring); use it with ``with``.

    Parameters
    ----------
    model
        The ``torch.nn.Module`` being trained; logged as ``model`` when the block ends
        without an error.
    optimizer
        An optimizer or a list of them: its settings become params, its learning rates are
        logged after each logged ``optimizer.step()``, and its steps count the training steps.
    log_every_n_steps
        Log step metrics (and learning rates) at steps ``n, 2n, 3n, ...`` only.
    log_models
        Log the trained model at the end.
    log_datasets, train_data, eval_data
        Log the training / evaluation data (a DataLoader over a TensorDataset, a tensor, an
        array or a DataFrame) as the run's inputs with context ``train`` / ``eval``.
    params
        More params to log (``epochs``, ``batch_size``...).
    signature
        The logged model's signature (default: inferred from the first forward call;
        ``False``: none).
    registered_model_name
        Also register the logged model under this name.
    extra_tags
        Tags set on the run when the block starts one.
    silent
        No warnings about logging problems.
    """
    import torch

    if not isinstance(model, torch.nn.Module):
        raise InvalidParameterValue(
            f"track_training needs the torch.nn.Module being trained, got {type(model).__name__}."
        )
    optimizers = _optimizers(optimizer)
    if (
        isinstance(log_every_n_steps, bool)
        or not isinstance(log_every_n_steps, int)
        or log_every_n_steps < 1
    ):
        raise InvalidParameterValue(
            f"log_every_n_steps must be a positive integer, got {log_every_n_steps!r}."
        )
    if params is not None and not isinstance(params, dict):
        raise InvalidParameterValue(f"params must be a dict, got {type(params).__name__}.")
    return TrainingTracker(
        model,
        optimizers,
        log_every_n_steps=log_every_n_steps,
        log_models=log_models,
        datasets=({"train": train_data, "eval": eval_data} if log_datasets else {}),
        params=dict(params or {}),
        signature=signature,
        registered_model_name=registered_model_name,
        extra_tags=dict(extra_tags or {}),
        silent=silent,
    )


def _optimizers(optimizer: Any) -> list[Any]:
    items = (
        []
        if optimizer is None
        else (list(optimizer) if isinstance(optimizer, (list, tuple)) else [optimizer])
    )
    for item in items:
        if not hasattr(item, "param_groups") or not hasattr(item, "register_step_post_hook"):
            raise InvalidParameterValue(
                f"optimizer must be a torch.optim.Optimizer (or a list of them), got "
                f"{type(item).__name__}."
            )
    return items


class TrainingTracker:
    """The object ``track_training`` returns: ``log(**metrics)`` inside the ``with`` block."""

    def __init__(
        self,
        model: Any,
        optimizers: list[Any],
        *,
        log_every_n_steps: int,
        log_models: bool,
        datasets: dict[str, Any],
        params: dict[str, Any],
        signature: Any,
        registered_model_name: str | None,
        extra_tags: dict[str, Any],
        silent: bool,
    ) -> None:
        self.model = model
        self.optimizers = optimizers
        self.every = log_every_n_steps
        self.log_models = log_models
        self.silent = silent
        self.step = 0  # optimizer steps taken (or log calls, without an optimizer)
        self.run_id: str | None = None
        self.model_uri: str | None = None
        self._datasets = {k: v for k, v in datasets.items() if v is not None}
        self._params = params
        self._signature = signature
        self._registered_model_name = registered_model_name
        self._extra_tags = extra_tags
        self._fit_run: patching.FitRun | None = None
        self._buffer: MetricBuffer | None = None
        self._hooks: list[Any] = []
        self._first_forward: FirstForward | None = None
        self._last_flush = 0  # ms
        self._reported: set[str] = set()
        self._rates = _logging.RateCurve(optimizers)

    # -- the block ------------------------------------------------------------------------------
    def __enter__(self) -> TrainingTracker:
        try:
            self._fit_run = _open_run(self._extra_tags)
        except Exception as exc:
            self._problem("nothing is logged: no run to log into", exc)
            return self
        self.run_id = self._fit_run.run_id
        self._buffer = MetricBuffer(self._fit_run.client, self.run_id)
        self._last_flush = int(time.time() * 1000)
        self._safely("params not logged", self._log_params)
        described: list[tuple[Any, str]] = []
        for context, data in self._datasets.items():
            self._safely(
                f"the {context} dataset not logged", self._describe, data, context, described
            )
        if described:
            client, run_id = self._fit_run.client, self.run_id
            self._safely("datasets not logged", _logging.log_datasets, client, run_id, described)
        for optimizer in self.optimizers[:1]:  # the first optimizer's steps are the steps
            self._hooks.append(optimizer.register_step_post_hook(self._after_step))
        if self.log_models and self._signature is None:
            self._first_forward = FirstForward(self.model)
        return self

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        for hook in self._hooks:
            hook.remove()
        self._hooks.clear()
        if self._first_forward is not None:
            self._first_forward.remove()
        if self._fit_run is None:
            return
        if self._buffer is not None:
            self._safely("learning rates not logged", self._rates.finish, self._buffer.points)
        self._flush()
        if exc_type is None and self.log_models:
            self._safely("the model not logged", self._log_model)
        if exc_type is None:
            status = RunStatus.FINISHED
        elif issubclass(exc_type, KeyboardInterrupt):
            status = RunStatus.KILLED
        else:
            status = RunStatus.FAILED
        self._safely("the run could not be ended", self._fit_run.close, status)

    # -- logging --------------------------------------------------------------------------------
    def log(self, step: int | None = None, epoch: int | None = None, **metrics: Any) -> None:
        """Record metrics (numbers or one-element tensors): at the current step (optimizer
        steps taken; call it after ``optimizer.step()``), at ``step=``, or with ``epoch=`` as
        epoch metrics (step = the epoch). Step metrics are kept at steps ``n, 2n, ...`` for
        ``log_every_n_steps=n``."""
        buffer = self._buffer
        if buffer is None:
            return
        if step is None and epoch is None and self.optimizers:  # the per-step call
            # kept to a few bytecodes (no helper calls): it runs in every step of the loop
            step = self.step
            if step % self.every:
                return
            now = int(_time() * 1000)
            points = buffer.points
            mark = len(points)
            try:  # floats, tensors and numpy numbers; anything else takes the checked way
                for key, value in metrics.items():
                    if type(value) is not float:
                        value = value.item() + 0.0
                    points.append((key, value, now, step))
            except Exception:
                del points[mark:]
            else:
                if len(points) >= FLUSH_POINTS or now - self._last_flush >= FLUSH_MS:
                    self._flush()
                return
        try:
            if epoch is not None:
                step = int(epoch)
            else:
                if step is None:
                    if not self.optimizers:
                        self.step += 1
                    step = self.step
                elif type(step) is not int:
                    step = int(step)
                if step % self.every:
                    return
            buffer.add(metrics, step)
        except Exception as exc:
            self._problem("metrics not logged", exc)
            return
        self._maybe_flush(int(time.time() * 1000))

    def _maybe_flush(self, now: int) -> None:
        if len(self._buffer.points) >= FLUSH_POINTS or now - self._last_flush >= FLUSH_MS:
            self._flush()

    def _after_step(self, optimizer: Any, args: Any, kwargs: Any) -> None:
        step = self.step = self.step + 1
        if step % self.every or self._buffer is None:
            return
        try:  # the hot path of every training step: points appended directly
            self._rates.observe(step, int(time.time() * 1000), self._buffer.points)
        except Exception as exc:
            self._problem("learning rates not logged", exc)

    def _flush(self) -> None:
        self._last_flush = int(time.time() * 1000)
        if self._buffer is not None:
            self._safely("metrics not logged", self._buffer.flush)

    def _log_params(self) -> None:
        assert self._fit_run is not None
        params: dict[str, Any] = {"model_class": type(self.model).__name__}
        params.update(_logging.model_size(self.model))
        params.update(_logging.optimizer_params(self.optimizers))
        params.update(self._params)
        problems = _logging.Problems()
        _logging.log_params(self._fit_run.client, self._fit_run.run_id, params, problems)
        if problems:
            self._report(problems.text())

    def _describe(self, data: Any, context: str, described: list[tuple[Any, str]]) -> None:
        dataset = _logging.dataset_of(data)
        if dataset is None:
            raise InvalidParameterValue(
                f"{type(data).__name__} cannot be described as a dataset (use a tensor, an "
                "array, a DataFrame or a DataLoader over a TensorDataset)"
            )
        described.append((dataset, context))

    def _log_model(self) -> None:
        from jupyter_mltrack.pytorch import log_model

        signature = self._signature
        if signature is None and self._first_forward is not None:
            signature = self._first_forward.signature()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # a model already in the run is replaced
            info = log_model(
                self.model,
                name="model",
                signature=signature,
                registered_model_name=self._registered_model_name,
            )
        self.model_uri = info.model_uri

    # -- problems -------------------------------------------------------------------------------
    def _safely(self, what: str, function: Any, *args: Any) -> None:
        try:
            function(*args)
        except Exception as exc:
            self._problem(what, exc)

    def _problem(self, what: str, exc: BaseException) -> None:
        self._report(f"{what} ({_logging.describe(exc)})", key=what)

    def _report(self, details: str, key: str | None = None) -> None:
        """Warn about each kind of problem once per tracked block (a re-run of the cell warns
        again: the store may still be down)."""
        key = key or details
        if key in self._reported or self.silent:
            return
        self._reported.add(key)
        where = f" to run {self.run_id}" if self.run_id else ""
        warnings.warn(
            f"jupyter_mltrack track_training: logging{where} was incomplete: {details}. "
            "The training itself is not affected.",
            UserWarning,
            stacklevel=_logging.user_stacklevel(),
        )


def _open_run(extra_tags: dict[str, Any]) -> patching.FitRun:
    """The active run, or one started for the block (ended with it)."""
    from jupyter_mltrack.tracking import fluent

    active = fluent.active_run()
    if active is not None:
        return patching.FitRun(active, started=False)
    tags = {k: str(v) for k, v in extra_tags.items()}
    return patching.FitRun(fluent.start_run(tags=tags or None), started=True)
