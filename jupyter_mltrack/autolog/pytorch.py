"""PyTorch Lightning autologging (MLflow's ``mlflow.pytorch.autolog``).

``Trainer.fit`` of ``pytorch_lightning`` (and of ``lightning.pytorch`` when installed) is
wrapped; enabling autologging imports neither: the patch is applied when the user imports
Lightning (or at once if it is imported already). A fit logs into the active run (a ``with
start_run()`` block, a ``%%track`` cell's run) or into a run started for it and ended after it.
What the fit logs is described in ``jupyter_mltrack.pytorch._lightning``; at the end the model
is logged (the best weights per ``checkpoint_monitor`` when it was logged, else the final ones).

A problem while logging never breaks the fit: it is reported in one warning after the fit. An
exception raised by the fit reaches the caller unchanged, and a run autologging started for it
ends FAILED.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import threading
import warnings
from dataclasses import dataclass, field
from typing import Any

from jupyter_mltrack.autolog import import_hooks, patching
from jupyter_mltrack.autolog.patching import FitRun, PatchSet
from jupyter_mltrack.entities import RunStatus
from jupyter_mltrack.exceptions import InvalidParameterValue

FLAVOR = "pytorch"
LIBRARIES = ("pytorch_lightning", "lightning.pytorch")  # import names holding a Trainer
_DISTRIBUTIONS = {"pytorch_lightning": "pytorch-lightning", "lightning.pytorch": "lightning"}
SUPPORTED_VERSIONS = ((2, 0), (2, 6))  # tested range, for disable_for_unsupported_versions


@dataclass(frozen=True)
class AutologConfig:
    """The options of the last ``autolog()`` call (read by every patched fit)."""

    log_every_n_epoch: int = 1
    log_every_n_step: int | None = None
    log_models: bool = True
    log_datasets: bool = True
    exclusive: bool = False
    silent: bool = False
    registered_model_name: str | None = None
    extra_tags: dict[str, Any] = field(default_factory=dict)
    checkpoint: bool = True
    checkpoint_monitor: str | None = "val_loss"
    checkpoint_mode: str = "min"
    checkpoint_save_best_only: bool = True
    checkpoint_save_weights_only: bool = False
    checkpoint_save_freq: str | int = "epoch"
    log_model_signatures: bool = True


_config: AutologConfig | None = None
_patches: dict[str, PatchSet] = {}
_enable_lock = threading.Lock()


def autolog(
    log_every_n_epoch: int = 1,
    log_every_n_step: int | None = None,
    log_models: bool = True,
    log_datasets: bool = True,
    disable: bool = False,
    exclusive: bool = False,
    disable_for_unsupported_versions: bool = False,
    silent: bool = False,
    registered_model_name: str | None = None,
    extra_tags: dict[str, Any] | None = None,
    checkpoint: bool = True,
    checkpoint_monitor: str | None = "val_loss",
    checkpoint_mode: str = "min",
    checkpoint_save_best_only: bool = True,
    checkpoint_save_weights_only: bool = False,
    checkpoint_save_freq: str | int = "epoch",
    log_model_signatures: bool = True,
    *,
    log_every_n_steps: int | None = None,
) -> None:
    """Enable (or with ``disable=True`` disable) autologging of PyTorch Lightning fits.

    Parameters
    ----------
    log_every_n_epoch
        Log the epoch metrics of every n-th epoch.
    log_every_n_step, log_every_n_steps
        Also log step metrics (``self.log(..., on_step=True)`` values and learning rates) at
        global steps n, 2n, ...; ``None`` (default): epoch metrics only. The two names are
        the same option (MLflow's and the plural Lightning uses).
    log_models
        Log the trained model as ``model`` (the best checkpoint's weights when
        ``checkpoint_monitor`` was logged, else the final weights).
    log_datasets
        Log the train / validation data (DataLoaders over TensorDatasets) as run inputs.
    disable
        Put ``Trainer.fit`` back exactly as it was.
    exclusive
        Log nothing into runs the user started (``start_run``, a ``%%track`` cell).
    disable_for_unsupported_versions
        Do nothing for Lightning versions outside the tested range.
    silent
        No warnings from autologging.
    registered_model_name
        Register each logged model under this name (a new version per fit).
    extra_tags
        Tags set on the runs autologging starts.
    checkpoint, checkpoint_monitor, checkpoint_mode, checkpoint_save_best_only,
    checkpoint_save_weights_only, checkpoint_save_freq
        Log Lightning checkpoints (``checkpoints/latest_checkpoint.pth`` when the monitored
        metric improves, or one per epoch / per ``checkpoint_save_freq`` steps) and keep the
        best weights for the logged model.
    log_model_signatures
        Infer the model's signature from its first forward call.
    """
    global _config
    with _enable_lock:
        if disable:
            _config = None
            for name in LIBRARIES:
                import_hooks.cancel(name, _patch_library)
            for patch_set in _patches.values():
                patch_set.restore()
            return
        every_step = _check_options(
            log_every_n_epoch,
            log_every_n_step,
            log_every_n_steps,
            checkpoint_monitor,
            checkpoint_mode,
            checkpoint_save_best_only,
            checkpoint_save_freq,
            extra_tags,
        )
        if disable_for_unsupported_versions:
            unsupported = _unsupported_versions()
            if unsupported:
                _config = None
                for patch_set in _patches.values():
                    patch_set.restore()
                if not silent:
                    low, high = (".".join(map(str, v)) for v in SUPPORTED_VERSIONS)
                    warnings.warn(
                        f"{unsupported} is outside the versions autologging is tested with "
                        f"({low} to {high}.x); autologging stays off for it "
                        "(disable_for_unsupported_versions=True).",
                        UserWarning,
                        stacklevel=3,
                    )
                return
        patching.forget_warnings()
        _config = AutologConfig(
            log_every_n_epoch=log_every_n_epoch,
            log_every_n_step=every_step,
            log_models=log_models,
            log_datasets=log_datasets,
            exclusive=exclusive,
            silent=silent,
            registered_model_name=registered_model_name,
            extra_tags=dict(extra_tags or {}),
            checkpoint=checkpoint,
            checkpoint_monitor=checkpoint_monitor,
            checkpoint_mode=checkpoint_mode,
            checkpoint_save_best_only=checkpoint_save_best_only,
            checkpoint_save_weights_only=checkpoint_save_weights_only,
            checkpoint_save_freq=checkpoint_save_freq,
            log_model_signatures=log_model_signatures,
        )
    for name in LIBRARIES:  # outside the lock: a hook may run at once and patch
        patched = name in _patches and _patches[name].active
        if not patched and not import_hooks.pending(name) and _installed(name):
            import_hooks.when_imported(name, _patch_library)


def is_enabled() -> bool:
    return _config is not None


def _check_options(
    log_every_n_epoch: Any,
    log_every_n_step: Any,
    log_every_n_steps: Any,
    checkpoint_monitor: Any,
    checkpoint_mode: Any,
    checkpoint_save_best_only: bool,
    checkpoint_save_freq: Any,
    extra_tags: Any,
) -> int | None:
    def positive(value: Any) -> bool:
        return isinstance(value, int) and not isinstance(value, bool) and value >= 1

    if not positive(log_every_n_epoch):
        raise InvalidParameterValue(
            f"log_every_n_epoch must be a positive integer, got {log_every_n_epoch!r}."
        )
    if (
        log_every_n_step is not None
        and log_every_n_steps is not None
        and log_every_n_step != log_every_n_steps
    ):
        raise InvalidParameterValue(
            f"log_every_n_step={log_every_n_step!r} and log_every_n_steps={log_every_n_steps!r} "
            "are the same option; give one of them."
        )
    every = log_every_n_step if log_every_n_step is not None else log_every_n_steps
    if every is not None and not positive(every):
        raise InvalidParameterValue(
            f"log_every_n_step must be a positive integer or None, got {every!r}."
        )
    if checkpoint_mode not in ("min", "max"):
        raise InvalidParameterValue(
            f"checkpoint_mode must be 'min' or 'max', got {checkpoint_mode!r}."
        )
    if checkpoint_save_freq != "epoch" and not positive(checkpoint_save_freq):
        raise InvalidParameterValue(
            f"checkpoint_save_freq must be 'epoch' or a positive number of steps, got "
            f"{checkpoint_save_freq!r}."
        )
    if checkpoint_save_best_only and not checkpoint_monitor:
        raise InvalidParameterValue(
            "checkpoint_save_best_only=True compares checkpoints by checkpoint_monitor; name "
            "the metric to monitor (e.g. 'val_loss') or set checkpoint_save_best_only=False."
        )
    if extra_tags is not None and not isinstance(extra_tags, dict):
        raise InvalidParameterValue(f"extra_tags must be a dict, got {type(extra_tags).__name__}.")
    return every


def _installed(name: str) -> bool:
    top = name.partition(".")[0]
    try:
        return importlib.util.find_spec(top) is not None
    except (ImportError, ValueError):
        return False


def _unsupported_versions() -> str | None:
    """``"pytorch-lightning 3.0"`` for an installed Lightning outside the tested range."""
    for name in LIBRARIES:
        dist = _DISTRIBUTIONS[name]
        try:
            version = importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            continue
        try:
            parsed = tuple(int(p) for p in version.split(".")[:2])
        except ValueError:
            return f"{dist} {version}"
        if not SUPPORTED_VERSIONS[0] <= parsed <= SUPPORTED_VERSIONS[1]:
            return f"{dist} {version}"
    return None


def _patch_library(module: Any) -> None:
    """Wrap ``Trainer.fit`` of an imported Lightning (``when_imported`` callback)."""
    with _enable_lock:
        if _config is None:
            return  # disabled before the library was imported
        patch_set = _patches.setdefault(module.__name__, PatchSet())
        patch_set.apply([(module.Trainer, "fit")], _wrap)


# -- the patched method -----------------------------------------------------------------------
def _wrap(original: Any) -> Any:
    @patching.wraps(original)
    def fit_with_autolog(self: Any, *args: Any, **kwargs: Any) -> Any:
        config = _config
        if config is None or patching.in_fit():
            return original(self, *args, **kwargs)
        return _logged_fit(config, original, self, args, kwargs)

    return fit_with_autolog


def _logged_fit(
    config: AutologConfig, original: Any, trainer: Any, args: tuple, kwargs: dict
) -> Any:
    from jupyter_mltrack.pytorch import _lightning
    from jupyter_mltrack.pytorch._logging import Problems

    problems = Problems()
    with patching.outermost_fit():
        fit_run = None
        try:
            fit_run = FitRun.open(FLAVOR, config.extra_tags, config.exclusive)
        except Exception as exc:
            problems.add("no run to log into", exc)
        callback = None
        if fit_run is not None:
            try:
                package = type(trainer).__module__.split(".trainer")[0]
                callback = _lightning.make_callback(package, fit_run, config, problems)
                trainer.callbacks.append(callback)
            except Exception as exc:
                problems.add("the fit could not be followed", exc)
                callback = None
        try:
            result = original(trainer, *args, **kwargs)
        except BaseException as exc:
            _detach(trainer, callback, problems)
            if fit_run is not None:
                status = (
                    RunStatus.KILLED if isinstance(exc, KeyboardInterrupt) else RunStatus.FAILED
                )
                _close(fit_run, status, problems)
            _report(problems, config, fit_run)
            raise
        _detach(trainer, callback, problems)
        if fit_run is not None:
            try:
                if callback is not None:
                    callback.after_fit(trainer)
            except Exception as exc:
                problems.add("logging after the fit failed", exc)
            except BaseException:  # interrupted while logging: the run must not stay open
                _close(fit_run, RunStatus.KILLED, problems)
                raise
            _close(fit_run, RunStatus.FINISHED, problems)
    _report(problems, config, fit_run)
    return result


def _detach(trainer: Any, callback: Any, problems: Any) -> None:
    """Take our callback out of the trainer again (a second fit adds a fresh one)."""
    if callback is None:
        return
    try:
        callback.finish()
        if callback in trainer.callbacks:
            trainer.callbacks.remove(callback)
    except Exception as exc:
        problems.add("the callback could not be removed", exc)


def _close(fit_run: FitRun, status: str, problems: Any) -> None:
    try:
        fit_run.close(status)
    except Exception as exc:
        problems.add("the run could not be ended", exc)


def _report(problems: Any, config: AutologConfig, fit_run: FitRun | None) -> None:
    if not problems:
        return
    details = problems.text()
    where = f" to run {fit_run.run_id}" if fit_run is not None else ""
    patching.warn_once(
        f"jupyter_mltrack autolog: logging Trainer.fit{where} was incomplete: {details}. "
        "The fit itself is not affected.",
        config.silent,
        stacklevel=4,
        key=f"Trainer.fit: {details}",
    )
