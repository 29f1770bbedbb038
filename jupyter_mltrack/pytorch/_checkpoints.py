"""Loading the Lightning checkpoints that autologging logs (MLflow's
``mlflow.pytorch.load_checkpoint``).

``autolog(checkpoint=True)`` logs ``checkpoints/latest_checkpoint.pth`` (best only, the
default) or one folder per save, ``checkpoints/epoch_<n>/`` or ``checkpoints/global_step_<n>/``;
the run tag ``mlflow.latest_checkpoint_artifact`` names the last file written. A checkpoint in a
local artifact folder is read where it is; a remote one is downloaded to a temp folder first.
"""

from __future__ import annotations

import operator
import os
import posixpath
import re
import tempfile
from collections.abc import Mapping
from typing import Any

from jupyter_mltrack.exceptions import InvalidParameterValue, ResourceDoesNotExist
from jupyter_mltrack.pytorch._lightning import CHECKPOINT_DIR, LATEST_CHECKPOINT_TAG

_FILES = ("checkpoint.pth", "checkpoint.weights.pth")  # full, weights only
_FOLDER = re.compile(r"(epoch|global_step)_(\d+)")
_HOW = {
    "epoch": "autolog(checkpoint_save_best_only=False) logs one per epoch",
    "global_step": (
        "autolog(checkpoint_save_best_only=False, checkpoint_save_freq=<n>) logs one every n steps"
    ),
}


def load_checkpoint(
    model_class: type,
    run_id: str | None = None,
    epoch: int | None = None,
    global_step: int | None = None,
    kwargs: Mapping[str, Any] | None = None,
) -> Any:
    """A LightningModule restored from a checkpoint that autologging logged into a run.

    Parameters
    ----------
    model_class
        The ``LightningModule`` subclass that was trained; its ``load_from_checkpoint`` builds
        the module.
    run_id
        The run holding the checkpoints; by default the active run, else the last run of this
        process (the run of the latest autologged fit).
    epoch
        Load the checkpoint of this epoch (``checkpoint_save_freq="epoch"`` with
        ``checkpoint_save_best_only=False``).
    global_step
        Load the checkpoint of this global step (an int ``checkpoint_save_freq`` with
        ``checkpoint_save_best_only=False``). With neither ``epoch`` nor ``global_step``, the
        latest checkpoint written is loaded.
    kwargs
        Passed on to ``model_class.load_from_checkpoint`` (e.g. ``map_location``, ``strict`` or
        hyperparameters that override the saved ones).

    Returns
    -------
    The ``model_class`` instance ``load_from_checkpoint`` returns.
    """
    load = _loader(model_class)
    extra = _load_kwargs(kwargs)
    epoch = _number(epoch, "epoch")
    global_step = _number(global_step, "global_step")
    if epoch is not None and global_step is not None:
        raise InvalidParameterValue(
            f"Give epoch or global_step, not both (got epoch={epoch}, global_step={global_step}):"
            " a run's checkpoints are saved per epoch or every n steps."
        )
    client, run_id = _client_and_run(run_id)
    repo = client.artifact_repository(run_id)
    if epoch is not None:
        path = _numbered(client, repo, run_id, "epoch", epoch)
    elif global_step is not None:
        path = _numbered(client, repo, run_id, "global_step", global_step)
    else:
        path = _latest(client, run_id)
    if repo.is_local:
        file = repo.local_path(path)
        if not os.path.isfile(file):
            raise ResourceDoesNotExist(
                f"Run {run_id!r} names the checkpoint {path!r}, but {file} does not exist "
                "(were the run's artifacts deleted?)."
            )
        return load(file, **extra)
    with tempfile.TemporaryDirectory(prefix="mltrack-ckpt-") as tmp:
        return load(repo.download_artifacts(path, tmp), **extra)


def _loader(model_class: Any) -> Any:
    """``model_class.load_from_checkpoint``, or a clear error saying what to pass."""
    if not isinstance(model_class, type):
        name = type(model_class).__name__
        if hasattr(type(model_class), "load_from_checkpoint"):
            raise InvalidParameterValue(
                f"model_class must be the class, not an instance: pass {name}, not {name}(...)."
            )
        raise InvalidParameterValue(
            f"model_class must be the LightningModule subclass that was trained, got "
            f"{model_class!r} ({name}); e.g. load_checkpoint(MyLitModule, run_id)."
        )
    load = getattr(model_class, "load_from_checkpoint", None)
    if not callable(load):
        raise InvalidParameterValue(
            f"{model_class.__name__} has no load_from_checkpoint: pass the LightningModule "
            "subclass that was trained (Lightning checkpoints rebuild it). A torch.nn.Module "
            "logged as a model loads with mlflow.pytorch.load_model('runs:/<run_id>/model')."
        )
    return load


def _load_kwargs(kwargs: Any) -> dict[str, Any]:
    if kwargs is None:
        return {}
    if not isinstance(kwargs, Mapping):
        raise InvalidParameterValue(
            f"kwargs must be a dict of load_from_checkpoint arguments (e.g. "
            f"{{'map_location': 'cpu'}}), got {type(kwargs).__name__}."
        )
    return dict(kwargs)


def _number(value: Any, name: str) -> int | None:
    if value is None:
        return None
    try:
        if isinstance(value, bool):
            raise TypeError
        number = operator.index(value)
    except TypeError:
        raise InvalidParameterValue(
            f"{name} must be an int, got {type(value).__name__} {value!r}."
        ) from None
    if number < 0:
        raise InvalidParameterValue(f"{name} must be >= 0, got {number}.")
    return number


def _client_and_run(run_id: str | None) -> tuple[Any, str]:
    """The client and the id of the run to read (checked to exist)."""
    from jupyter_mltrack.tracking import fluent

    active = fluent.active_run()
    client = active._client if active is not None else fluent._client()
    if run_id is None:
        run = active if active is not None else fluent.last_active_run()
        if run is None:
            raise InvalidParameterValue(
                "No run to load a checkpoint from: no run is active and none ran in this "
                "process. Pass run_id= (the run an autologged fit logged into)."
            )
        run_id = run.info.run_id
    client.get_run(run_id)  # an unknown id fails here, not as "no checkpoints"
    return client, run_id


def _latest(client: Any, run_id: str) -> str:
    path = client.get_run_tag(run_id, LATEST_CHECKPOINT_TAG)
    if not path:
        raise ResourceDoesNotExist(
            f"Run {run_id!r} has no logged checkpoint (no {LATEST_CHECKPOINT_TAG} tag). "
            "Lightning autologging logs them: mlflow.pytorch.autolog(checkpoint=True), the "
            "default, before Trainer.fit."
        )
    return path


def _numbered(client: Any, repo: Any, run_id: str, kind: str, number: int) -> str:
    """The checkpoint file in ``checkpoints/<kind>_<number>/``, weights only or full."""
    folder = f"{CHECKPOINT_DIR}/{kind}_{number}"
    names = {posixpath.basename(f.path) for f in repo.list_artifacts(folder) if not f.is_dir}
    found = [name for name in _FILES if name in names]
    if found:
        # both exist only when two fits logged into one run: take the latest one's kind
        latest = posixpath.basename(client.get_run_tag(run_id, LATEST_CHECKPOINT_TAG) or "")
        return f"{folder}/{latest if latest in found else found[0]}"
    raise ResourceDoesNotExist(_missing(repo, run_id, kind, number))


def _missing(repo: Any, run_id: str, kind: str, number: int) -> str:
    """Why ``<kind>_<number>`` is not there, with the checkpoints the run does have."""
    existing: dict[str, list[int]] = {"epoch": [], "global_step": []}
    latest = False
    for info in repo.list_artifacts(CHECKPOINT_DIR):
        name = posixpath.basename(info.path)
        match = _FOLDER.fullmatch(name)
        if info.is_dir and match:
            existing[match.group(1)].append(int(match.group(2)))
        elif not info.is_dir and name.startswith("latest_checkpoint") and name.endswith(".pth"):
            latest = True
    label = "epoch" if kind == "epoch" else "global step"
    same = sorted(existing[kind])
    if same:
        plural = "epochs" if kind == "epoch" else "global steps"
        return (
            f"Run {run_id!r} has no checkpoint for {label} {number}; it has checkpoints for "
            f"{plural} {', '.join(map(str, same))}."
        )
    other = "global_step" if kind == "epoch" else "epoch"
    if existing[other]:
        has = (
            f"checkpoints for {other.replace('_', ' ')}s "
            f"{', '.join(map(str, sorted(existing[other])))} (pass {other}=)"
        )
    elif latest:
        has = "only the latest (best) checkpoint: load it with neither epoch nor global_step"
    else:
        has = "no checkpoints: Lightning autologging logs them with autolog(checkpoint=True)"
    return (
        f"Run {run_id!r} has no checkpoint for {label} {number}, nor any per {label} "
        f"({_HOW[kind]}); it has {has}."
    )
