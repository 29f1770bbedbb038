"""The Keras 3 flavor (MLflow's ``mlflow.keras``): save, log and load ``keras.Model`` objects in
Keras' native ``.keras`` format, whatever the backend (TensorFlow, PyTorch, JAX).

The backend a model was saved with is recorded in its MLmodel (``keras_backend``). Loading sets
``KERAS_BACKEND`` to it before keras is first imported, unless the user has set that variable,
so a model trained on PyTorch loads in a fresh process (``mltrack models serve``) on a machine
without TensorFlow. A ``.keras`` file holds no backend code: when the recorded backend's library
is missing, another installed backend is used.

The files follow MLflow's layout (``data/model.keras``, ``data/keras_module.txt`` and the
``keras`` flavor keys ``data``, ``keras_version``, ``keras_backend``, ``save_exported_model``),
so models move between MLflow and jupyter_mltrack.

Importing this module does not import keras; ``MlflowCallback`` (a keras ``Callback``) is
imported when it is first used.
"""

from __future__ import annotations

import importlib.util
import os
import sys
from typing import Any

from jupyter_mltrack.exceptions import InvalidModelError, InvalidParameterValue
from jupyter_mltrack.models.info import ModelInfo, artifact_path_of, local_model_path
from jupyter_mltrack.models.info import log_model as _log_model
from jupyter_mltrack.models.model import (
    Model,
    check_kwargs,
    finish_metadata,
    read_model,
    require_flavor,
    save_with,
    write_flavor_dir,
)
from jupyter_mltrack.models.requirements import (
    pinned,
    resolve_environment,
)

__all__ = [
    "FLAVOR_NAME",
    "MLflowCallback",
    "MlflowCallback",
    "autolog",
    "get_default_conda_env",
    "get_default_pip_requirements",
    "load_model",
    "log_model",
    "save_model",
]

FLAVOR_NAME = "keras"
_DATA = "data"  # the folder holding the model, as in MLflow
_MODEL_NAME = "model"  # data/model.keras, or data/model/ for an exported SavedModel
_KERAS_MODULE_FILE = "keras_module.txt"
# backend -> the distributions a model saved on it needs besides keras
_BACKEND_DISTS = {
    "tensorflow": ["tensorflow"],
    "torch": ["torch"],
    "jax": ["jax", "jaxlib"],
    "numpy": [],
    "openvino": ["openvino"],
}
_BACKEND_MODULES = {"tensorflow": "tensorflow", "torch": "torch", "jax": "jax", "numpy": "numpy"}
_FALLBACK_BACKENDS = ("tensorflow", "jax", "torch", "numpy")  # Keras' own order of preference
_SAVE_KWARGS = ("overwrite", "zipped", "include_optimizer", "save_format")


# -- requirements -------------------------------------------------------------------------------
def _current_backend() -> str:
    """The backend keras runs on (or will, once imported), without importing keras."""
    keras = sys.modules.get("keras")
    if keras is not None:
        return str(keras.backend.backend())
    return os.environ.get("KERAS_BACKEND") or "tensorflow"


def _dists(backend: str) -> list[str]:
    return ["keras", *_BACKEND_DISTS.get(backend, [])]


def get_default_pip_requirements() -> list[str]:
    """Pinned requirements of a Keras model: keras and its backend's library (e.g. torch)."""
    return pinned(_dists(_current_backend()))


def get_default_conda_env() -> dict[str, Any]:
    """The default conda environment of a Keras model."""
    _reqs, conda, _python = resolve_environment(get_default_pip_requirements())
    return conda


# -- checks -------------------------------------------------------------------------------------
def _require_keras_model(model: Any) -> Any:
    """The keras module, once ``model`` is known to be a Keras 3 ``keras.Model``."""
    keras = sys.modules.get("keras")  # a keras model exists only once keras is imported
    if keras is None or not isinstance(model, keras.Model):
        kind = f"{type(model).__module__}.{type(model).__qualname__}"
        hint = ""
        if "tf_keras" in kind or kind.startswith("tensorflow."):
            hint = " tf.keras (Keras 2) models are not supported; build the model with Keras 3."
        raise InvalidParameterValue(
            f"jupyter_mltrack.keras saves Keras 3 models (keras.Model, e.g. keras.Sequential); "
            f"got {kind}.{hint} Use the flavor of the model's library (e.g. "
            "jupyter_mltrack.sklearn) or jupyter_mltrack.pyfunc for other models."
        )
    return keras


def _check_save_kwargs(save_model_kwargs: Any) -> dict[str, Any]:
    """``save_model_kwargs`` checked and ready for ``keras.Model.save`` (see ``save_model``)."""
    if save_model_kwargs is None:
        return {}
    if not isinstance(save_model_kwargs, dict):
        raise InvalidParameterValue(
            f"save_model_kwargs must be a dict of keras.Model.save arguments, got "
            f"{type(save_model_kwargs).__name__}."
        )
    unknown = sorted(set(save_model_kwargs) - set(_SAVE_KWARGS))
    if unknown:
        raise InvalidParameterValue(
            f"save_model_kwargs: unknown argument(s) {', '.join(map(repr, unknown))}; "
            f"keras.Model.save takes {', '.join(_SAVE_KWARGS)}."
        )
    kwargs = dict(save_model_kwargs)
    save_format = kwargs.pop("save_format", None)
    if save_format not in (None, False, "keras", ".keras"):
        raise InvalidParameterValue(
            f"Unknown save format {save_format!r}: this flavor writes Keras 3's native .keras "
            "format (save_format='keras', the default); for a TensorFlow SavedModel use "
            "save_exported_model=True. Legacy formats (h5, tf) are not written."
        )
    if kwargs.get("zipped") is False:
        raise InvalidParameterValue(
            "save_model_kwargs: zipped=False is not supported; the model is saved as one "
            "zipped .keras file."
        )
    kwargs.pop("overwrite", None)  # the file is always new
    return kwargs


def check_logging_options(log_every_epoch: bool, log_every_n_steps: int | None) -> None:
    """MLflow's rules for the two metric frequencies (one or the other), with the fix named."""
    if log_every_n_steps is not None and (
        isinstance(log_every_n_steps, bool)
        or not isinstance(log_every_n_steps, int)
        or log_every_n_steps < 1
    ):
        raise InvalidParameterValue(
            f"log_every_n_steps must be a positive integer or None, got {log_every_n_steps!r}."
        )
    if log_every_epoch and log_every_n_steps is not None:
        raise InvalidParameterValue(
            f"log_every_n_steps={log_every_n_steps} needs log_every_epoch=False: metrics are "
            "logged either per epoch or every n steps (as in MLflow)."
        )
    if not log_every_epoch and log_every_n_steps is None:
        raise InvalidParameterValue(
            "log_every_epoch=False needs log_every_n_steps (a positive integer): otherwise no "
            "metric would be logged."
        )


def _require_tensorflow() -> None:
    if importlib.util.find_spec("tensorflow") is None:
        raise InvalidParameterValue(
            "save_exported_model=True writes a TensorFlow SavedModel and needs TensorFlow "
            "(pip install tensorflow); use save_exported_model=False (the default) to save the "
            "native .keras format, which loads on every backend."
        )


def _check_exportable(signature: Any) -> None:
    _require_tensorflow()
    from jupyter_mltrack.models.signature import ModelSignature

    if not isinstance(signature, ModelSignature) or not signature.inputs.is_tensor_spec():
        raise InvalidParameterValue(
            "save_exported_model=True needs a signature of tensors (the exported endpoint's "
            "input shapes): pass signature=infer_signature(x_numpy, model.predict(x_numpy))."
        )


# -- saving -------------------------------------------------------------------------------------
def save_model(
    model: Any,
    path: str | os.PathLike[str],
    save_exported_model: bool = False,
    conda_env: Any = None,
    mlflow_model: Model | None = None,
    signature: Any = None,
    input_example: Any = None,
    pip_requirements: Any = None,
    extra_pip_requirements: Any = None,
    save_model_kwargs: dict[str, Any] | None = None,
    metadata: dict[str, Any] | None = None,
    **kwargs: Any,
) -> None:
    """Save a Keras 3 model as a model directory at ``path`` (which must not exist or be empty).

    Parameters
    ----------
    model
        A ``keras.Model`` (Sequential, functional or subclassed) on any backend.
    path
        The directory to create.
    save_exported_model
        Write a TensorFlow SavedModel (``model.export``) instead of the native ``.keras`` file;
        needs TensorFlow and a tensor ``signature``.
    signature, input_example
        The model's signature (``infer_signature``) and an example input; when only the
        example is given, the signature is inferred from it and the model's prediction.
    pip_requirements, extra_pip_requirements, conda_env
        Replace, extend, or state the whole environment (at most one of them). By default:
        keras and the backend's library, pinned.
    save_model_kwargs
        Arguments for ``keras.Model.save`` (``include_optimizer``...); ``save_format`` may
        only be ``"keras"``.
    metadata
        Plain data stored in MLmodel.
    """
    check_kwargs(kwargs, "save_model")
    keras = _require_keras_model(model)
    save_kwargs = _check_save_kwargs(save_model_kwargs)
    if save_exported_model:
        _check_exportable(signature)
    backend = str(keras.backend.backend())

    def write(target: str) -> None:
        data_dir = os.path.join(target, _DATA)
        os.makedirs(data_dir)
        with open(os.path.join(data_dir, _KERAS_MODULE_FILE), "w", encoding="utf-8") as fh:
            fh.write("keras")
        model_path = os.path.join(data_dir, _MODEL_NAME)
        if save_exported_model:
            _export(keras, model, model_path, signature)
        else:
            _save_native(model, model_path + ".keras", save_kwargs)
        meta = finish_metadata(
            target,
            mlflow_model,
            signature=signature,
            input_example=input_example,
            metadata=metadata,
            infer_output=lambda example: _predict(model, example),
        )
        dists = _dists(backend)
        write_flavor_dir(
            target,
            meta,
            flavor=FLAVOR_NAME,
            flavor_conf={
                "data": _DATA,
                "keras_version": keras.__version__,
                "keras_backend": backend,
                "save_exported_model": bool(save_exported_model),
            },
            loader_module=__name__,
            pyfunc_conf={},
            code=None,
            dists=dists,
            environment=(pip_requirements, extra_pip_requirements, conda_env),
            record_code=False,  # MLflow's keras flavor takes no code_paths
        )

    save_with(path, write)


def _save_native(model: Any, file: str, save_kwargs: dict[str, Any]) -> None:
    try:
        model.save(file, **save_kwargs)
    except ValueError as exc:  # an unbuilt model, an argument Keras refuses...
        raise InvalidParameterValue(f"Keras could not save the model: {exc}") from exc


def _export(keras: Any, model: Any, path: str, signature: Any) -> None:
    """A TensorFlow SavedModel with one ``serve`` endpoint taking the signature's tensors."""
    import tensorflow as tf

    specs = [
        tf.TensorSpec(shape=[None if d == -1 else d for d in spec.shape], dtype=spec.type)
        for spec in signature.inputs.inputs
    ]
    archive = keras.export.ExportArchive()
    archive.track(model)
    archive.add_endpoint(name="serve", fn=model.call, input_signature=specs)
    archive.write_out(path)


def log_model(
    model: Any,
    artifact_path: str | None = None,
    save_exported_model: bool = False,
    conda_env: Any = None,
    signature: Any = None,
    input_example: Any = None,
    registered_model_name: str | None = None,
    await_registration_for: int | None = None,
    pip_requirements: Any = None,
    extra_pip_requirements: Any = None,
    save_model_kwargs: dict[str, Any] | None = None,
    metadata: dict[str, Any] | None = None,
    *,
    name: str | None = None,
    **kwargs: Any,
) -> ModelInfo:
    """Log a Keras 3 model into the active run (started if none is), under ``name`` (MLflow 3)
    or ``artifact_path`` (MLflow 2), default ``"model"``; load it back with
    ``runs:/<run_id>/<name>``. ``registered_model_name`` also registers it.
    Other parameters: see ``save_model``."""
    check_kwargs(kwargs, "log_model")
    _require_keras_model(model)  # before a run is started for it
    return _log_model(
        save_model,
        artifact_path_of(artifact_path, name),
        registered_model_name,
        model=model,
        save_exported_model=save_exported_model,
        conda_env=conda_env,
        signature=signature,
        input_example=input_example,
        pip_requirements=pip_requirements,
        extra_pip_requirements=extra_pip_requirements,
        save_model_kwargs=save_model_kwargs,
        metadata=metadata,
    )


# -- loading ------------------------------------------------------------------------------------
def _usable_backend(recorded: str) -> str:
    """``recorded`` if its library is installed, else the first installed backend."""
    for backend in (recorded, *_FALLBACK_BACKENDS):
        module = _BACKEND_MODULES.get(backend)
        if module is not None and importlib.util.find_spec(module) is not None:
            return backend
    return recorded


def _import_keras(backend: str | None) -> Any:
    """keras, imported on ``backend`` (or a usable one) unless it is imported already or the
    user chose a backend with ``KERAS_BACKEND``."""
    if backend and "keras" not in sys.modules and not os.environ.get("KERAS_BACKEND"):
        os.environ["KERAS_BACKEND"] = _usable_backend(str(backend))
    import keras

    return keras


def _load_keras(
    path: str,
    conf: dict[str, Any],
    custom_objects: dict[str, Any] | None = None,
    load_model_kwargs: dict[str, Any] | None = None,
) -> Any:
    if load_model_kwargs is not None and not isinstance(load_model_kwargs, dict):
        raise InvalidParameterValue(
            f"load_model_kwargs must be a dict of keras.saving.load_model arguments, got "
            f"{type(load_model_kwargs).__name__}."
        )
    model_path = os.path.join(path, str(conf.get("data", _MODEL_NAME)))
    if os.path.isdir(model_path):
        model_path = os.path.join(model_path, _MODEL_NAME)
    if conf.get("save_exported_model"):
        if importlib.util.find_spec("tensorflow") is None:
            raise InvalidModelError(
                f"The model at {path} is an exported TensorFlow SavedModel; loading it needs "
                "TensorFlow (pip install tensorflow)."
            )
        import tensorflow as tf

        return tf.saved_model.load(model_path)
    file = model_path + ".keras"
    if not os.path.isfile(file):
        raise InvalidModelError(f"The model file {file} is missing from the model directory.")
    keras = _import_keras(conf.get("keras_backend"))
    return keras.saving.load_model(file, custom_objects=custom_objects, **(load_model_kwargs or {}))


def load_model(
    model_uri: str,
    dst_path: str | None = None,
    custom_objects: dict[str, Any] | None = None,
    load_model_kwargs: dict[str, Any] | None = None,
) -> Any:
    """The Keras model at ``model_uri`` (``runs:/``, ``models:/``, a path...).

    Parameters
    ----------
    dst_path
        Copy the model directory there first.
    custom_objects
        Custom layers, losses... the model uses that are not registered with
        ``@keras.saving.register_keras_serializable()``.
    load_model_kwargs
        More arguments for ``keras.saving.load_model`` (``compile``, ``safe_mode``).
    """
    path = local_model_path(model_uri, dst_path)
    conf = require_flavor(read_model(path), FLAVOR_NAME, path)
    return _load_keras(path, conf, custom_objects, load_model_kwargs)


# -- pyfunc ---------------------------------------------------------------------------------------
def _predict(model: Any, data: Any) -> Any:
    """The model's predictions as numpy (a DataFrame is passed as its values)."""
    import numpy as np

    if hasattr(data, "to_numpy") and hasattr(data, "columns"):
        data = data.to_numpy()
    if hasattr(model, "predict"):
        return model.predict(data, verbose=0)
    output = model.serve(data)  # an exported SavedModel
    return (
        {k: np.asarray(v) for k, v in output.items()}
        if isinstance(output, dict)
        else (np.asarray(output))
    )


class _KerasModelWrapper:
    """What ``pyfunc.load_model`` returns for a Keras model: a DataFrame gives a DataFrame
    (same index), a numpy array, list or dict of arrays gives numpy, as in MLflow."""

    def __init__(self, keras_model: Any, signature: Any = None) -> None:
        self.keras_model = keras_model
        self.signature = signature

    def get_raw_model(self) -> Any:
        return self.keras_model

    def predict(self, data: Any, params: dict[str, Any] | None = None) -> Any:
        import numpy as np
        import pandas as pd

        if isinstance(data, pd.DataFrame):
            output = _predict(self.keras_model, data)
            if isinstance(output, np.ndarray) and output.ndim <= 2:
                return pd.DataFrame(output, index=data.index)
            return output
        if not isinstance(data, (np.ndarray, list, tuple, dict)):
            raise InvalidParameterValue(
                f"A Keras model predicts on a pandas DataFrame, a numpy array, a list or a dict "
                f"of arrays; got {type(data).__name__}."
            )
        return _predict(self.keras_model, data)


def _load_pyfunc(path: str, model_config: dict[str, Any] | None = None) -> _KerasModelWrapper:
    """The pyfunc loader (``loader_module: jupyter_mltrack.keras``); ``path`` is the model
    directory or, as MLflow may pass it, a path inside it."""
    directory = path
    if not os.path.isfile(os.path.join(directory, "MLmodel")):
        directory = os.path.dirname(os.path.normpath(path))
    meta = read_model(directory)
    conf = require_flavor(meta, FLAVOR_NAME, directory)
    return _KerasModelWrapper(_load_keras(directory, conf), meta.signature)


# -- autologging and the callback -------------------------------------------------------------------
def autolog(
    log_every_epoch: bool = True,
    log_every_n_steps: int | None = None,
    log_models: bool = True,
    log_model_signatures: bool = True,
    save_exported_model: bool = False,
    log_datasets: bool = True,
    log_input_examples: bool = False,
    disable: bool = False,
    exclusive: bool = False,
    disable_for_unsupported_versions: bool = False,
    silent: bool = False,
    registered_model_name: str | None = None,
    save_model_kwargs: dict[str, Any] | None = None,
    extra_tags: dict[str, Any] | None = None,
) -> None:
    """Enable (or with ``disable=True`` disable) autologging of ``keras.Model.fit``: params,
    metrics per epoch (or every n steps), early stopping, the model summary, the training data
    and the trained model. Keras is not imported here: ``fit`` is patched when it is.
    See ``jupyter_mltrack.autolog.keras.autolog`` for the parameters."""
    from jupyter_mltrack.autolog import keras as _autolog_keras

    _autolog_keras.autolog(
        log_every_epoch=log_every_epoch,
        log_every_n_steps=log_every_n_steps,
        log_models=log_models,
        log_model_signatures=log_model_signatures,
        save_exported_model=save_exported_model,
        log_datasets=log_datasets,
        log_input_examples=log_input_examples,
        disable=disable,
        exclusive=exclusive,
        disable_for_unsupported_versions=disable_for_unsupported_versions,
        silent=silent,
        registered_model_name=registered_model_name,
        save_model_kwargs=save_model_kwargs,
        extra_tags=extra_tags,
    )


def __getattr__(name: str) -> Any:
    # the callback subclasses keras.callbacks.Callback: import keras only when it is asked for
    if name in ("MlflowCallback", "MLflowCallback"):
        from jupyter_mltrack.keras.callback import MlflowCallback

        return MlflowCallback
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
