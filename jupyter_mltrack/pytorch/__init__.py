"""The PyTorch flavor (MLflow's ``mlflow.pytorch``): save, log and load ``torch.nn.Module``
models; autologging of PyTorch Lightning (``autolog``); tracking of plain training loops
(``track_training``).

>>> with mlflow.pytorch.track_training(model, optimizer) as run:   # doctest: +SKIP
...     for epoch in range(3):
...         for x, y in loader:
...             loss = loss_fn(model(x), y); loss.backward(); optimizer.step()
...             run.log(loss=loss)

Formats (``serialization_format``): ``"state_dict"`` (the default when the module can be rebuilt
from its class: the weights plus the class and its constructor arguments), ``"pickle"`` (the
whole module, MLflow's default; chosen automatically when the class cannot be rebuilt, e.g. an
``nn.Sequential``), ``"torchscript"`` (the default for scripted or traced modules) and
``"pt2"`` (``torch.export``, needs an ``input_example``). Classes defined in a notebook or a
local ``.py`` file are stored by value, so the model loads in another process (``mltrack models
serve``) without that code. Loading a ``state_dict``, ``pickle`` or ``torchscript`` model runs
code from the model's files: load models you trust.

Requirements pin ``torch`` at its public version: ``torch==2.13.0`` for an installed
``2.13.0+cpu`` (pip cannot find local ``+cpu`` builds on PyPI); the exact build is recorded as
``pytorch_version`` in ``MLmodel``. On a CPU-only machine install that version from the PyTorch
CPU index (``--index-url https://download.pytorch.org/whl/cpu``) before the rest.

``import jupyter_mltrack.pytorch`` does not import torch; every function imports it on use.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Mapping
from typing import Any

from jupyter_mltrack.exceptions import InvalidParameterValue
from jupyter_mltrack.models.info import ModelInfo, artifact_path_of, local_model_path
from jupyter_mltrack.models.info import log_model as _log_model
from jupyter_mltrack.models.model import (
    MLMODEL_FILE,
    TOLERATED_KWARGS,
    Model,
    add_code_paths,
    copy_code_paths,
    finish_metadata,
    plain_data,
    read_model,
    require_flavor,
    save_with,
    write_flavor_dir,
)
from jupyter_mltrack.models.requirements import (
    pinned,
    resolve_environment,
)
from jupyter_mltrack.pytorch import _code, _formats
from jupyter_mltrack.pytorch._checkpoints import load_checkpoint
from jupyter_mltrack.pytorch._formats import PICKLE, PT2, STATE_DICT, TORCHSCRIPT
from jupyter_mltrack.pytorch._predict import PyTorchWrapper, predict
from jupyter_mltrack.pytorch._training import TrainingTracker, track_training

__all__ = [
    "FLAVOR_NAME",
    "SERIALIZATION_FORMATS",
    "TrainingTracker",
    "autolog",
    "get_default_conda_env",
    "get_default_pip_requirements",
    "load_checkpoint",
    "load_model",
    "load_state_dict",
    "log_model",
    "log_state_dict",
    "save_model",
    "save_state_dict",
    "track_training",
]

FLAVOR_NAME = "pytorch"
SERIALIZATION_FORMAT_STATE_DICT = STATE_DICT
SERIALIZATION_FORMAT_PICKLE = PICKLE
SERIALIZATION_FORMAT_TORCHSCRIPT = TORCHSCRIPT
SERIALIZATION_FORMAT_PT2 = PT2
SERIALIZATION_FORMATS = list(_formats.FORMATS)
DATA = "data"  # the model's data folder (MLflow's ``model_data``)
EXTRA_FILES = "extra_files"
_STATE_DICT_FILE = "state_dict.pth"


def get_default_pip_requirements() -> list[str]:
    """``torch`` and ``cloudpickle`` pinned at their installed (public) versions, as MLflow."""
    return pinned(["torch", "cloudpickle"])


def get_default_conda_env() -> dict[str, Any]:
    _reqs, conda, _python = resolve_environment(get_default_pip_requirements())
    return conda


# -- saving ---------------------------------------------------------------------------------------
def save_model(
    pytorch_model: Any,
    path: str | os.PathLike[str],
    conda_env: Any = None,
    mlflow_model: Model | None = None,
    code_paths: list[str] | None = None,
    pickle_module: Any = None,
    signature: Any = None,
    input_example: Any = None,
    extra_files: list[str] | None = None,
    pip_requirements: Any = None,
    extra_pip_requirements: Any = None,
    metadata: dict[str, Any] | None = None,
    export_model: bool = False,
    serialization_format: str | None = None,
    *,
    init_kwargs: Mapping[str, Any] | None = None,
    **kwargs: Any,
) -> None:
    """Save a PyTorch module as a model directory at ``path`` (which must not exist or be empty).

    Parameters
    ----------
    pytorch_model
        A ``torch.nn.Module`` (a LightningModule too), or a scripted/traced module.
    serialization_format
        ``"state_dict"``, ``"pickle"``, ``"torchscript"`` or ``"pt2"``; by default
        ``"torchscript"`` for scripted modules, ``"state_dict"`` when the module can be rebuilt
        from its class and constructor arguments, else ``"pickle"``.
    init_kwargs
        The constructor arguments the module was built with (``state_dict`` format). Without
        them, a LightningModule's ``save_hyperparameters()`` values are used, else none.
    pickle_module
        The module ``torch.save`` pickles with (``"pickle"`` format); default: cloudpickle.
    signature, input_example
        The model's signature and an example input (an array, tensor or DataFrame); with only
        the example, the signature is inferred from it and the model's output on it.
    export_model
        MLflow's older switch for ``serialization_format="pt2"``.
    pip_requirements, extra_pip_requirements, conda_env
        Replace, extend, or state the whole environment (at most one of them).
    extra_files
        Local files copied into the model (``extra_files/``).
    kwargs
        Passed on to ``torch.save`` (e.g. ``pickle_protocol``).
    """
    save_kwargs = _torch_save_kwargs(kwargs, "save_model")
    model = _check_module(pytorch_model)
    requested = _requested_format(serialization_format, export_model)
    try:
        fmt, rebuild = _formats.choose(model, requested, init_kwargs)
    except _formats.NotRebuildable as exc:
        raise InvalidParameterValue(
            f"Cannot save {type(model).__name__} as a state dict: {exc}. Or save the whole "
            "module with serialization_format='pickle' (or 'torchscript' / 'pt2')."
        ) from None
    if pickle_module is not None and not hasattr(pickle_module, "Pickler"):
        raise InvalidParameterValue(
            f"pickle_module must be a module with a Pickler (e.g. pickle or cloudpickle), got "
            f"{type(pickle_module).__name__}."
        )
    example = _plain_example(input_example)
    classes = _code.model_classes(model)
    extras = _check_extra_files(extra_files)

    def write(target: str) -> None:
        import torch

        conf = _formats.write(
            model,
            fmt,
            os.path.join(target, DATA),
            rebuild=rebuild,
            pickle_module=pickle_module,
            example=example,
            save_kwargs=save_kwargs,
            classes=classes,
        )
        if rebuild is not None and rebuild.kwargs:
            try:
                conf["init_kwargs"] = plain_data(rebuild.kwargs, "init_kwargs")
            except InvalidParameterValue:
                pass  # shown only when plain; the file holds them either way
        code = copy_code_paths(code_paths, target)
        meta = finish_metadata(
            target,
            mlflow_model,
            signature=signature,
            input_example=example,
            metadata=metadata,
            infer_output=lambda data: predict(model, data),
        )
        dists = ["torch"]
        if fmt in (STATE_DICT, PICKLE):
            dists.append("cloudpickle")
        dists += _code.library_distributions(classes)
        if extras:
            conf[EXTRA_FILES] = _copy_extra_files(extras, target)
        write_flavor_dir(
            target,
            meta,
            flavor=FLAVOR_NAME,
            flavor_conf={"model_data": DATA, "pytorch_version": str(torch.__version__), **conf},
            loader_module=__name__,
            pyfunc_conf={"data": DATA},
            code=code,
            dists=dists,
            environment=(pip_requirements, extra_pip_requirements, conda_env),
        )

    save_with(path, write)


def log_model(
    pytorch_model: Any,
    artifact_path: str | None = None,
    conda_env: Any = None,
    code_paths: list[str] | None = None,
    pickle_module: Any = None,
    registered_model_name: str | None = None,
    signature: Any = None,
    input_example: Any = None,
    await_registration_for: int | None = None,
    extra_files: list[str] | None = None,
    pip_requirements: Any = None,
    extra_pip_requirements: Any = None,
    metadata: dict[str, Any] | None = None,
    name: str | None = None,
    export_model: bool = False,
    serialization_format: str | None = None,
    *,
    init_kwargs: Mapping[str, Any] | None = None,
    **kwargs: Any,
) -> ModelInfo:
    """Log a PyTorch module into the active run (started if none is) under ``name`` (MLflow 3)
    or ``artifact_path`` (MLflow 2), default ``"model"``; load it back with
    ``runs:/<run_id>/<name>``. ``registered_model_name`` also registers it.
    Other parameters: see ``save_model``."""
    save_kwargs = _torch_save_kwargs(kwargs, "log_model")
    return _log_model(
        save_model,
        artifact_path_of(artifact_path, name),
        registered_model_name,
        pytorch_model=pytorch_model,
        conda_env=conda_env,
        code_paths=code_paths,
        pickle_module=pickle_module,
        signature=signature,
        input_example=input_example,
        extra_files=extra_files,
        pip_requirements=pip_requirements,
        extra_pip_requirements=extra_pip_requirements,
        metadata=metadata,
        export_model=export_model,
        serialization_format=serialization_format,
        init_kwargs=init_kwargs,
        **save_kwargs,
    )


def _torch_save_kwargs(kwargs: dict[str, Any], function: str) -> dict[str, Any]:
    """``torch.save`` arguments among ``kwargs``; MLflow 3's log_model arguments that have no
    effect here are dropped; anything else is a TypeError."""
    allowed = {"pickle_protocol", "_use_new_zipfile_serialization", "_disable_byteorder_record"}
    unknown = sorted(set(kwargs) - allowed - TOLERATED_KWARGS)
    if unknown:
        raise TypeError(
            f"{function}() got unexpected keyword argument(s): {', '.join(unknown)} (extra "
            f"keyword arguments go to torch.save, which takes {', '.join(sorted(allowed))})"
        )
    return {k: v for k, v in kwargs.items() if k in allowed}


def _check_module(pytorch_model: Any) -> Any:
    import torch

    if isinstance(pytorch_model, type):
        raise InvalidParameterValue(
            f"pytorch_model must be a module instance, not the class: pass "
            f"{pytorch_model.__name__}(...)."
        )
    if not isinstance(pytorch_model, torch.nn.Module):
        hint = (
            " A state dict is logged with log_state_dict."
            if isinstance(pytorch_model, Mapping)
            else ""
        )
        raise InvalidParameterValue(
            f"pytorch_model must be a torch.nn.Module, got {type(pytorch_model).__name__}.{hint}"
        )
    return _formats.unwrap(pytorch_model)


def _requested_format(serialization_format: str | None, export_model: bool) -> str | None:
    if not export_model:
        return serialization_format
    if serialization_format not in (None, PT2):
        raise InvalidParameterValue(
            f"export_model=True means serialization_format='pt2'; got also "
            f"serialization_format={serialization_format!r}. Give only serialization_format."
        )
    return PT2


def _plain_example(example: Any) -> Any:
    """A tensor example as a numpy array (what the model format stores)."""
    if example is None:
        return None
    import torch

    if isinstance(example, torch.Tensor):
        return example.detach().cpu().numpy()
    if (
        isinstance(example, (list, tuple))
        and example
        and all(isinstance(v, torch.Tensor) for v in example)
    ):
        return [v.detach().cpu().numpy() for v in example]
    return example


def _check_extra_files(extra_files: list[str] | None) -> list[str]:
    if extra_files is None:
        return []
    if isinstance(extra_files, (str, os.PathLike)) or not all(
        isinstance(f, (str, os.PathLike)) for f in extra_files
    ):
        raise InvalidParameterValue("extra_files must be a list of file paths.")
    files = [os.fspath(f) for f in extra_files]
    missing = [f for f in files if not os.path.isfile(f)]
    if missing:
        raise InvalidParameterValue(f"extra_files: {', '.join(missing)} not found.")
    return files


def _copy_extra_files(files: list[str], target: str) -> list[dict[str, str]]:
    folder = os.path.join(target, EXTRA_FILES)
    os.makedirs(folder, exist_ok=True)
    entries = []
    for file in files:
        shutil.copyfile(file, os.path.join(folder, os.path.basename(file)))
        entries.append({"path": f"{EXTRA_FILES}/{os.path.basename(file)}"})
    return entries


# -- loading --------------------------------------------------------------------------------------
def load_model(
    model_uri: str,
    dst_path: str | None = None,
    *,
    map_location: Any = None,
    device: Any = None,
    **kwargs: Any,
) -> Any:
    """The ``torch.nn.Module`` at ``model_uri`` (``runs:/``, ``models:/``, a path...), in eval
    mode, on the CPU unless ``device`` (moved there after loading) or ``map_location`` (as
    ``torch.load`` takes it) says otherwise. Models saved by MLflow load too."""
    if kwargs:
        raise TypeError(
            f"load_model() got unexpected keyword argument(s): {', '.join(sorted(kwargs))} "
            "(it takes map_location and device)"
        )
    path = local_model_path(model_uri, dst_path)
    return _load(path, map_location=map_location, device=device)


def _load(path: str, map_location: Any = None, device: Any = None) -> Any:
    if device is not None:
        device = _usable_device(device)
    meta = read_model(path)
    conf = require_flavor(meta, FLAVOR_NAME, path)
    add_code_paths(path, conf.get("code"))
    data_dir = os.path.join(path, conf.get("model_data") or DATA)
    return _formats.read(data_dir, conf, map_location=map_location, device=device)


def _usable_device(device: Any) -> Any:
    """``device`` as a ``torch.device`` this process can use; a clear error otherwise."""
    import torch

    try:
        found = torch.device(device)
    except (RuntimeError, TypeError, ValueError):
        raise InvalidParameterValue(
            f"device {device!r} is not a torch device; use e.g. 'cpu', 'cuda', 'cuda:1' or 'mps'."
        ) from None
    available = {
        "cuda": torch.cuda.is_available,
        "mps": lambda: torch.backends.mps.is_available(),
    }.get(found.type)
    if available is not None and not available():
        raise InvalidParameterValue(
            f"device {device!r}: this process has no {found.type.upper()} device (torch "
            f"{torch.__version__}); load the model on 'cpu' instead."
        )
    return found


def _load_pyfunc(path: str, model_config: dict[str, Any] | None = None) -> PyTorchWrapper:
    """The pyfunc loader (``loader_module: jupyter_mltrack.pytorch``); ``path`` is the model
    directory or its data folder. Predictions run on the CPU unless
    ``model_config={"device": ...}`` says otherwise."""
    directory = (
        path
        if os.path.isfile(os.path.join(path, MLMODEL_FILE))
        else os.path.dirname(os.path.normpath(path))
    )
    device = (model_config or {}).get("device")
    return PyTorchWrapper(_load(directory, device=device))


# -- state dicts ----------------------------------------------------------------------------------
def save_state_dict(state_dict: dict[str, Any], path: str, **kwargs: Any) -> None:
    """Save a state dict (of a model, or a checkpoint dict) as ``<path>/state_dict.pth``."""
    import torch

    if not isinstance(state_dict, dict):
        raise InvalidParameterValue(
            f"state_dict must be a dict (model.state_dict()), got {type(state_dict).__name__}; "
            "a whole model is logged with log_model."
        )
    os.makedirs(path, exist_ok=True)
    torch.save(state_dict, os.path.join(path, _STATE_DICT_FILE), **kwargs)


def log_state_dict(state_dict: dict[str, Any], artifact_path: str, **kwargs: Any) -> None:
    """Log a state dict as the artifact ``<artifact_path>/state_dict.pth`` of the active run
    (not a model: load it with ``load_state_dict``)."""
    from jupyter_mltrack.tracking import fluent

    with tempfile.TemporaryDirectory(prefix="mltrack-state-") as tmp:
        save_state_dict(state_dict, tmp, **kwargs)
        fluent.log_artifacts(tmp, artifact_path)


def load_state_dict(state_dict_uri: str, **kwargs: Any) -> dict[str, Any]:
    """The state dict logged at ``state_dict_uri`` (``runs:/<run_id>/<artifact_path>`` or a
    path); ``kwargs`` go to ``torch.load`` (``weights_only=True`` unless told)."""
    import torch

    path = local_model_path(state_dict_uri)
    file = os.path.join(path, _STATE_DICT_FILE) if os.path.isdir(path) else path
    if not os.path.isfile(file):
        raise InvalidParameterValue(f"No state dict at {state_dict_uri!r} ({file} is missing).")
    kwargs.setdefault("weights_only", True)
    return torch.load(file, **kwargs)


# -- autologging ----------------------------------------------------------------------------------
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
    """Enable (or with ``disable=True`` disable) autologging of PyTorch Lightning's
    ``Trainer.fit``: hyperparameters, optimizer settings, logged metrics per epoch (and per
    step with ``log_every_n_step``), learning rates, checkpoints and the best model. See
    ``jupyter_mltrack.autolog.pytorch.autolog`` for the parameters."""
    from jupyter_mltrack.autolog import pytorch as _autolog_pytorch

    _autolog_pytorch.autolog(
        log_every_n_epoch=log_every_n_epoch,
        log_every_n_step=log_every_n_step,
        log_models=log_models,
        log_datasets=log_datasets,
        disable=disable,
        exclusive=exclusive,
        disable_for_unsupported_versions=disable_for_unsupported_versions,
        silent=silent,
        registered_model_name=registered_model_name,
        extra_tags=extra_tags,
        checkpoint=checkpoint,
        checkpoint_monitor=checkpoint_monitor,
        checkpoint_mode=checkpoint_mode,
        checkpoint_save_best_only=checkpoint_save_best_only,
        checkpoint_save_weights_only=checkpoint_save_weights_only,
        checkpoint_save_freq=checkpoint_save_freq,
        log_model_signatures=log_model_signatures,
        log_every_n_steps=log_every_n_steps,
    )
