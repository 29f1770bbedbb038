"""``MlflowCallback``: a Keras 3 callback that logs a ``fit`` into a run (MLflow's
``mlflow.keras.MlflowCallback``): the optimizer's config and the loss as params, the model
summary as ``model_summary.txt``, and metrics per epoch (``step`` = epoch) or every n training
steps (``step`` = the optimizer's step count).

Metric values are collected and written with one ``log_batch`` per epoch (and per 1,000 values
within a long epoch), never one write per value. A problem while logging never stops training:
it is reported in one warning when training ends. Autologging adds this callback to every
``fit`` and reports its problems with its own.

Importing this module imports keras.
"""

from __future__ import annotations

import math
import re
from typing import Any

import keras

from jupyter_mltrack.entities import Metric, Param, RunTag
from jupyter_mltrack.exceptions import InvalidParameterValue
from jupyter_mltrack.keras import check_logging_options
from jupyter_mltrack.validation import MAX_PARAM_VALUE_LENGTH

SUMMARY_ARTIFACT = "model_summary.txt"
MAX_BUFFERED = 1000  # metric values held before a write within an epoch


class MlflowCallback(keras.callbacks.Callback):
    """Log a Keras ``fit`` into a run.

    Parameters
    ----------
    run
        The run to log into (a ``Run``/``ActiveRun`` or a run id). Default: the active run
        when training starts, or a new run left active, as MLflow's logging functions do.
    log_every_epoch
        Log the epoch's metrics (``loss``, ``val_loss``...) at the end of each epoch.
    log_every_n_steps
        Instead, log the batch metrics every n training steps (needs
        ``log_every_epoch=False``); validation metrics are then logged at each epoch's last
        step.
    model_id
        MLflow 3's logged-model id; accepted for compatibility (models live in the run here).

    Examples
    --------
    >>> with mlflow.start_run():
    ...     model.fit(x, y, epochs=5, callbacks=[mlflow.keras.MlflowCallback()])
    """

    def __init__(
        self,
        run: Any = None,
        log_every_epoch: bool = True,
        log_every_n_steps: int | None = None,
        model_id: str | None = None,
    ) -> None:
        super().__init__()
        check_logging_options(log_every_epoch, log_every_n_steps)
        self.run = run
        self.log_every_epoch = log_every_epoch
        self.log_every_n_steps = log_every_n_steps
        self.model_id = model_id
        # without per-step logging the batch hook does nothing: Keras may then keep calling
        # batch hooks from its worker threads instead of in the training loop
        self.async_safe = log_every_n_steps is None
        # set by autologging: params of the fit call, the EarlyStopping callback, reporting
        self._fit_params: dict[str, Any] = {}
        self._early_stopping: Any = None
        self._reports_itself = True
        self._reset()

    def _reset(self) -> None:
        self._client: Any = None
        self._run_id: str | None = None
        self._buffer: list[Metric] = []
        self._epoch_logs: dict[int, dict[str, float]] = {}
        self._step = 0  # training steps done (the optimizer's iterations)
        self._epoch_start = 0
        self._summary_logged = False
        self.problems: list[str] = []

    # -- keras hooks (each one guarded: logging must never stop training) -----------------------
    def on_train_begin(self, logs: dict[str, Any] | None = None) -> None:
        self._reset()
        self._guard("the run", self._open)
        if self._run_id is None:
            return
        self._step = self._iterations()
        self._guard("params", self._log_params)
        if getattr(self.model, "built", False):
            self._guard("the model summary", self._log_summary)

    def on_epoch_begin(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        self._epoch_start = self._step

    def on_train_batch_end(self, batch: int, logs: dict[str, Any] | None = None) -> None:
        n = self.log_every_n_steps
        if n is None:
            return
        self._step = self._epoch_start + batch + 1
        if self._run_id is None or self._step % n or not logs:
            return
        try:
            self._collect(logs, self._step)
            if len(self._buffer) >= MAX_BUFFERED:
                self._flush()
        except Exception as exc:
            self._problem(f"step metrics not logged ({describe(exc)})")

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        if self._run_id is None or not logs:
            return
        try:
            values = numeric(logs)
            self._epoch_logs[epoch] = values
            if self.log_every_epoch:
                self._collect(values, epoch)
            else:
                validation = {k: v for k, v in values.items() if k.startswith("val_")}
                self._collect(validation, self._step)
            self._flush()
        except Exception as exc:
            self._problem(f"epoch metrics not logged ({describe(exc)})")

    def on_train_end(self, logs: dict[str, Any] | None = None) -> None:
        if self._run_id is not None:
            self._guard("early stopping", self._log_early_stopping)
            self._guard("metrics", self._flush)
            if not self._summary_logged:
                self._guard("the model summary", self._log_summary)
        if self._reports_itself and self.problems:
            from jupyter_mltrack.autolog.patching import warn_once

            details = "; ".join(self.problems)
            warn_once(
                f"jupyter_mltrack MlflowCallback: logging was incomplete: {details}. "
                "Training itself is not affected.",
                silent=False,
                stacklevel=2,
            )

    def finish_after_error(self) -> None:
        """Write what was collected before training failed (on_train_end is not called)."""
        if self._run_id is not None:
            self._guard("metrics", self._flush)

    # -- what is logged -------------------------------------------------------------------------
    def _open(self) -> None:
        from jupyter_mltrack.tracking import fluent

        run = self.run
        if run is None:
            run = fluent.active_run() or fluent.start_run()  # left active, as MLflow does
        if isinstance(run, str):
            self._client, self._run_id = fluent._client(), run
            return
        info = getattr(run, "info", None)
        if info is None:
            raise InvalidParameterValue(
                f"MlflowCallback(run=...) takes a run or a run id, got {type(run).__name__}."
            )
        self._client = getattr(run, "_client", None) or fluent._client()
        self._run_id = info.run_id

    def _iterations(self) -> int:
        try:
            return int(self.model.optimizer.iterations)
        except Exception:  # no optimizer state to read: count from zero
            return 0

    def _log_params(self) -> None:
        params: dict[str, Any] = {}
        optimizer = getattr(self.model, "optimizer", None)
        if optimizer is not None:
            params.update({f"optimizer_{k}": v for k, v in optimizer.get_config().items()})
            params["optimizer_name"] = optimizer_name(optimizer)
        loss = getattr(self.model, "loss", None)
        if loss is not None:
            params["loss"] = loss_name(loss)
        params.update(self._fit_params)
        kept = log_params_keeping_first(self._client, self._run_id, params)
        if kept:
            self._problem(
                f"params already in the run with other values were left as they were: "
                f"{', '.join(kept)} (start a run per fit to log each one)"
            )

    def _log_summary(self) -> None:
        lines: list[str] = []
        self.model.summary(print_fn=lambda line, *args, **kwargs: lines.append(str(line)))
        self._client.log_text(self._run_id, "\n".join(lines), SUMMARY_ARTIFACT)
        self._summary_logged = True

    def _log_early_stopping(self) -> None:
        """MLflow's early-stopping metrics: ``stopped_epoch``; with restored weights also
        ``restored_epoch`` and that epoch's metrics again at step ``stopped_epoch + 1``."""
        es = self._early_stopping
        stopped = int(getattr(es, "stopped_epoch", 0) or 0) if es is not None else 0
        if not stopped:
            return
        values = {"stopped_epoch": float(stopped)}
        restored = None
        if getattr(es, "restore_best_weights", False) and getattr(es, "best_weights", None):
            restored = int(es.best_epoch)
            values["restored_epoch"] = float(restored)
        self._collect(values, 0)
        if restored is not None and self.log_every_epoch and restored in self._epoch_logs:
            self._collect(self._epoch_logs[restored], stopped + 1)

    # -- buffered writes ------------------------------------------------------------------------
    def _collect(self, values: dict[str, Any], step: int) -> None:
        from jupyter_mltrack.tracking.client import _now_ms

        now = _now_ms()
        buffer = self._buffer
        for key, value in values.items():
            number = _number(value)
            if number is not None:
                buffer.append(Metric(key, number, now, step))

    def _flush(self) -> None:
        if not self._buffer:
            return
        metrics, self._buffer = self._buffer, []  # a failed write is not retried forever
        self._client.log_batch(self._run_id, metrics=metrics)

    # -- problems -------------------------------------------------------------------------------
    def _guard(self, what: str, step: Any) -> None:
        try:
            step()
        except Exception as exc:
            self._problem(f"{what} not logged ({describe(exc)})")

    def _problem(self, text: str) -> None:
        if text not in self.problems:
            self.problems.append(text)


MLflowCallback = MlflowCallback  # MLflow's older spelling


# -- helpers shared with autologging ---------------------------------------------------------------
def numeric(logs: dict[str, Any]) -> dict[str, float]:
    """The entries of Keras ``logs`` that are numbers, as floats."""
    out = {}
    for key, value in logs.items():
        number = _number(value)
        if number is not None:
            out[str(key)] = number
    return out


def _number(value: Any) -> float | None:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if not math.isinf(number) else None


def param_text(value: Any) -> str:
    """A param value as text: float32 values (Keras keeps learning rates in float32) in their
    shortest form (``0.01``, not ``0.009999999776482582``); long values cut."""
    if isinstance(value, float) and not isinstance(value, bool) and math.isfinite(value):
        import numpy as np

        as32 = np.float32(value)
        text = str(as32) if float(as32) == value else repr(value)
    else:
        text = value if isinstance(value, str) else str(value)
    if len(text) > MAX_PARAM_VALUE_LENGTH:
        text = text[: MAX_PARAM_VALUE_LENGTH - 3] + "..."
    return text


def optimizer_name(optimizer: Any) -> str:
    """The optimizer's name without the counter Keras appends to generated names (a session's
    tenth Adam is ``adam_9``; it is logged as ``adam``, so runs compare)."""
    name = str(getattr(optimizer, "name", "") or type(optimizer).__name__)
    generated = re.sub(r"(.)([A-Z][a-z]+)", r"\1_\2", type(optimizer).__name__)
    generated = re.sub(r"([a-z])([A-Z])", r"\1_\2", generated).lower()  # Keras' own rule
    return generated if re.fullmatch(rf"{re.escape(generated)}(_\d+)?", name) else name


def loss_name(loss: Any) -> str:
    """A compiled loss as text: its name (``"mse"``, ``"sparse_categorical_crossentropy"``)."""
    if isinstance(loss, str):
        return loss
    if isinstance(loss, dict):
        return str({k: loss_name(v) for k, v in loss.items()})
    if isinstance(loss, (list, tuple)):
        return str([loss_name(v) for v in loss])
    name = getattr(loss, "name", None) or getattr(loss, "__name__", None)
    return str(name) if name else type(loss).__name__


def log_params_keeping_first(
    client: Any, run_id: str, params: dict[str, Any], tags: list[RunTag] | None = None
) -> list[str]:
    """Log params (and tags); in a run that already has some of them with other values (two
    fits in one run), keep the first values and return those keys."""
    texts = {k: param_text(v) for k, v in params.items()}
    param_list = [Param(k, v) for k, v in texts.items()]
    try:
        client.log_batch(run_id, params=param_list, tags=tags or [])
        return []
    except InvalidParameterValue:
        existing = client.get_run(run_id).data.params
    fresh = [p for p in param_list if p.key not in existing]
    client.log_batch(run_id, params=fresh, tags=tags or [])
    return sorted(k for k, v in texts.items() if k in existing and existing[k] != v)


def describe(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
