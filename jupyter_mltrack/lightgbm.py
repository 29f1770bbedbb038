"""The LightGBM flavor (MLflow's ``mlflow.lightgbm``): save, log and load boosters and the
scikit-learn wrappers (``LGBMClassifier``, ``LGBMRegressor``, ``LGBMRanker``).

A ``lightgbm.Booster`` is stored in LightGBM's text format (``model.lgb``: loading it runs no
code). A scikit-learn wrapper is serialized as ``load_model`` gives the same class back with its
fitted state: with skops (``model.skops``, MLflow 3's default; loading runs no code from the
file, and LightGBM's own types are trusted without asking) when skops is installed, else with
cloudpickle (``model.pkl``: loading a pickle runs code from the file, load only models you
trust). ``serialization_format`` chooses. The ``MLmodel`` keys are MLflow's.

``lightgbm`` is imported only when a function here is called.
"""

from __future__ import annotations

import importlib.util
import os
from typing import Any

from jupyter_mltrack.exceptions import InvalidParameterValue
from jupyter_mltrack.models.info import ModelInfo, artifact_path_of, local_model_path
from jupyter_mltrack.models.info import log_model as _log_model
from jupyter_mltrack.models.model import (
    InvalidModelError,
    Model,
    add_code_paths,
    check_extra_files,
    check_kwargs,
    copy_code_paths,
    copy_extra_files,
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

FLAVOR_NAME = "lightgbm"
SUPPORTED_SERIALIZATION_FORMATS = ["skops", "cloudpickle", "pickle"]
_BOOSTER_FILE = "model.lgb"
_FILES = {"pickle": "model.pkl", "cloudpickle": "model.pkl", "skops": "model.skops"}
# what a fitted wrapper holds besides scikit-learn/numpy types (MLflow trusts the same)
_TRUSTED_TYPES = [
    "lightgbm.basic.Booster",
    "lightgbm.sklearn.LGBMClassifier",
    "lightgbm.sklearn.LGBMModel",
    "lightgbm.sklearn.LGBMRanker",
    "lightgbm.sklearn.LGBMRegressor",
]


def get_default_pip_requirements(
    include_cloudpickle: bool = False, include_skops: bool = False
) -> list[str]:
    """Pinned requirements of a LightGBM model (cloudpickle or skops for a scikit-learn wrapper
    saved in that format)."""
    dists = ["lightgbm"]
    if include_cloudpickle:
        dists.append("cloudpickle")
    if include_skops:
        dists.append("skops")
    return pinned(dists)


def get_default_conda_env(
    include_cloudpickle: bool = False, include_skops: bool = False
) -> dict[str, Any]:
    reqs = get_default_pip_requirements(include_cloudpickle, include_skops)
    _reqs, conda, _python = resolve_environment(reqs)
    return conda


def save_model(
    lgb_model: Any,
    path: str | os.PathLike[str],
    conda_env: Any = None,
    code_paths: list[str] | None = None,
    mlflow_model: Model | None = None,
    signature: Any = None,
    input_example: Any = None,
    pip_requirements: Any = None,
    extra_pip_requirements: Any = None,
    metadata: dict[str, Any] | None = None,
    serialization_format: str | None = None,
    skops_trusted_types: list[str] | None = None,
    extra_files: list[str] | None = None,
    **kwargs: Any,
) -> None:
    """Save a LightGBM model as a model directory at ``path`` (which must not exist or be empty).

    Parameters
    ----------
    lgb_model
        A trained ``lightgbm.Booster`` or a fitted ``LGBMClassifier`` / ``LGBMRegressor`` /
        ``LGBMRanker``.
    path
        The directory to create.
    signature, input_example
        The model's signature and an example input; when only the example is given, the
        signature is inferred from it and the model's prediction.
    pip_requirements, extra_pip_requirements, conda_env
        Replace, extend, or state the whole environment (at most one of them).
    serialization_format
        For a scikit-learn wrapper: ``"skops"`` (the default when skops is installed),
        ``"cloudpickle"`` (the default otherwise) or ``"pickle"``. A Booster is always saved in
        LightGBM's text format.
    skops_trusted_types
        With ``"skops"``: types from outside LightGBM/scikit-learn/numpy/scipy that the model
        holds and that you trust.
    extra_files
        Local files copied into the model's ``extra_files/`` folder.
    """
    check_kwargs(kwargs, "save_model")
    kind = _check_model(lgb_model, "save_model")
    fmt = _serialization_format(serialization_format)
    extras = check_extra_files(extra_files)
    # serialize before creating anything: a refused model leaves no directory behind
    data, trusted = _serialize(lgb_model, kind, fmt, skops_trusted_types)

    def write(target: str) -> None:
        import lightgbm

        file = _BOOSTER_FILE if kind == "booster" else _FILES[fmt]
        with open(os.path.join(target, file), "wb") as fh:
            fh.write(data)
        code = copy_code_paths(code_paths, target)
        model = finish_metadata(
            target,
            mlflow_model,
            signature=signature,
            input_example=input_example,
            metadata=metadata,
            infer_output=_LGBModelWrapper(lgb_model).predict,
        )
        dists = ["lightgbm"]
        if kind == "sklearn":
            dists += ["scikit-learn", "skops" if fmt == "skops" else "cloudpickle"]
        if _takes_frames(lgb_model, model):
            dists.append("pandas")
        write_flavor_dir(
            target,
            model,
            flavor=FLAVOR_NAME,
            flavor_conf={
                "lgb_version": lightgbm.__version__,
                "data": file,
                "model_class": f"{type(lgb_model).__module__}.{type(lgb_model).__qualname__}",
                "serialization_format": fmt,
                "skops_trusted_types": trusted,
                **copy_extra_files(extras, target),
            },
            loader_module="jupyter_mltrack.lightgbm",
            pyfunc_conf={"data": file},
            code=code,
            dists=dists,
            environment=(pip_requirements, extra_pip_requirements, conda_env),
        )

    save_with(path, write)


def log_model(
    lgb_model: Any,
    artifact_path: str | None = None,
    conda_env: Any = None,
    code_paths: list[str] | None = None,
    registered_model_name: str | None = None,
    signature: Any = None,
    input_example: Any = None,
    await_registration_for: int | None = None,
    pip_requirements: Any = None,
    extra_pip_requirements: Any = None,
    metadata: dict[str, Any] | None = None,
    extra_files: list[str] | None = None,
    *,
    name: str | None = None,
    serialization_format: str | None = None,
    skops_trusted_types: list[str] | None = None,
    **kwargs: Any,
) -> ModelInfo:
    """Log a LightGBM model into the active run (started if none is), under ``name`` (MLflow 3)
    or ``artifact_path`` (MLflow 2), default ``"model"``; load it back with
    ``runs:/<run_id>/<name>``. ``registered_model_name`` also registers it.
    Other parameters: see ``save_model``."""
    check_kwargs(kwargs, "log_model")
    _check_model(lgb_model, "log_model")
    _serialization_format(serialization_format)
    return _log_model(
        save_model,
        artifact_path_of(artifact_path, name),
        registered_model_name,
        lgb_model=lgb_model,
        conda_env=conda_env,
        code_paths=code_paths,
        signature=signature,
        input_example=input_example,
        pip_requirements=pip_requirements,
        extra_pip_requirements=extra_pip_requirements,
        metadata=metadata,
        serialization_format=serialization_format,
        skops_trusted_types=skops_trusted_types,
        extra_files=extra_files,
    )


def load_model(model_uri: str, dst_path: str | None = None) -> Any:
    """The LightGBM model at ``model_uri`` (``runs:/``, ``models:/``, a path...): a
    ``lightgbm.Booster``, or the scikit-learn wrapper it was saved as.

    Loading a scikit-learn wrapper saved with cloudpickle/pickle runs code from the file: load
    only models you trust (skops files are checked against the types trusted at save time).
    """
    path = local_model_path(model_uri, dst_path)
    model = read_model(path)
    conf = require_flavor(model, FLAVOR_NAME, path)
    add_code_paths(path, conf.get("code"))
    return _load_from_conf(path, conf)


# -- pyfunc ---------------------------------------------------------------------------------------
class _LGBModelWrapper:
    """``pyfunc`` face of a LightGBM model: ``predict`` takes a DataFrame or an array."""

    def __init__(self, lgb_model: Any) -> None:
        self.lgb_model = lgb_model

    def get_raw_model(self) -> Any:
        return self.lgb_model

    def predict(self, data: Any, params: dict[str, Any] | None = None) -> Any:
        import numpy as np
        import pandas as pd

        model = self.lgb_model
        columns = getattr(model, "feature_names_in_", None)
        if columns is not None and not isinstance(data, pd.DataFrame):
            array = np.asarray(data)
            if array.ndim == 2 and array.shape[1] == len(columns):
                # fitted on a DataFrame: give the array its column names (no sklearn warning)
                data = pd.DataFrame(array, columns=list(columns))
        return model.predict(data, **dict(params or {}))


def _load_pyfunc(path: str, model_config: dict[str, Any] | None = None) -> _LGBModelWrapper:
    """The pyfunc loader (``loader_module: jupyter_mltrack.lightgbm``); ``path`` is the model
    directory or, as MLflow passes it, the model file in it."""
    directory = path if os.path.isdir(path) else os.path.dirname(path)
    model = read_model(directory)
    conf = require_flavor(model, FLAVOR_NAME, directory)
    add_code_paths(directory, conf.get("code"))
    return _LGBModelWrapper(_load_from_conf(directory, conf))


# -- files ----------------------------------------------------------------------------------------
def _check_model(lgb_model: Any, function: str) -> str:
    """``"booster"`` or ``"sklearn"``; anything else is a clear error."""
    try:
        import lightgbm
    except ImportError:
        raise InvalidParameterValue(
            f"lightgbm.{function} needs LightGBM: pip install 'jupyter-mltrack[lightgbm]'."
        ) from None
    if isinstance(lgb_model, lightgbm.Booster):
        return "booster"
    if isinstance(lgb_model, lightgbm.LGBMModel):
        if not lgb_model.__sklearn_is_fitted__():
            raise InvalidParameterValue(
                f"The {type(lgb_model).__name__} is not fitted; call fit() before {function}."
            )
        return "sklearn"
    cls = type(lgb_model)
    root = cls.__module__.split(".")[0]
    hint = (
        f" Log it with jupyter_mltrack.{root}.log_model instead."
        if root in ("xgboost", "sklearn")
        else " Log other models with jupyter_mltrack.pyfunc.log_model(python_model=...)."
    )
    raise InvalidParameterValue(
        f"jupyter_mltrack.lightgbm.{function} takes a lightgbm.Booster or a fitted LightGBM "
        f"scikit-learn model (LGBMClassifier, LGBMRegressor, LGBMRanker); got "
        f"{cls.__module__}.{cls.__qualname__}.{hint}"
    )


def _serialization_format(value: str | None) -> str:
    if value is None:
        return "skops" if importlib.util.find_spec("skops") is not None else "cloudpickle"
    if value not in SUPPORTED_SERIALIZATION_FORMATS:
        raise InvalidParameterValue(
            f"Unknown serialization_format {value!r}; use one of "
            f"{', '.join(SUPPORTED_SERIALIZATION_FORMATS)} (a Booster is always saved in "
            "LightGBM's text format)."
        )
    return value


def _serialize(
    lgb_model: Any, kind: str, fmt: str, skops_trusted_types: list[str] | None
) -> tuple[bytes, list[str] | None]:
    if kind == "booster":
        return lgb_model.model_to_string().encode("utf-8"), None
    from jupyter_mltrack.sklearn import _serialize as serialize_estimator

    trusted = [*_TRUSTED_TYPES, *(skops_trusted_types or [])] if fmt == "skops" else None
    return serialize_estimator(lgb_model, fmt, trusted)


def _load_from_conf(directory: str, conf: dict[str, Any]) -> Any:
    import lightgbm

    file = os.path.join(directory, str(conf.get("data", _BOOSTER_FILE)))
    if not os.path.isfile(file):
        raise InvalidModelError(f"The model file {file} is missing from the model directory.")
    model_class = str(conf.get("model_class") or "lightgbm.basic.Booster")
    if model_class.rsplit(".", 1)[-1] == "Booster":
        return lightgbm.Booster(model_file=file)
    from jupyter_mltrack.sklearn import _load_file

    fmt = conf.get("serialization_format") or "cloudpickle"
    loaded = _load_file(file, fmt, conf.get("skops_trusted_types"))
    if not isinstance(loaded, (lightgbm.Booster, lightgbm.LGBMModel)):
        raise InvalidModelError(
            f"The file {file} holds a {type(loaded).__name__}, not a LightGBM model."
        )
    return loaded


def _takes_frames(lgb_model: Any, model: Model) -> bool:
    info = model.saved_input_example_info or {}
    inputs = model.get_input_schema()
    return (
        hasattr(lgb_model, "feature_names_in_")
        or info.get("type") == "dataframe"
        or (inputs is not None and inputs.has_input_names())
    )


# -- autologging ----------------------------------------------------------------------------------
def autolog(
    log_input_examples: bool = False,
    log_model_signatures: bool = True,
    log_models: bool = True,
    log_datasets: bool = True,
    disable: bool = False,
    exclusive: bool = False,
    disable_for_unsupported_versions: bool = False,
    silent: bool = False,
    registered_model_name: str | None = None,
    extra_tags: dict[str, Any] | None = None,
    log_every_n_steps: int = 1,
) -> None:
    """Enable (or with ``disable=True`` disable) autologging of ``lightgbm.train`` and the
    scikit-learn wrappers' ``fit``: params, per-iteration eval metrics, early-stopping results,
    feature importance (split and gain), the training data and the model.
    See ``jupyter_mltrack.autolog.lightgbm.autolog`` for the parameters."""
    from jupyter_mltrack.autolog import lightgbm as _autolog_lightgbm

    _autolog_lightgbm.autolog(
        log_input_examples=log_input_examples,
        log_model_signatures=log_model_signatures,
        log_models=log_models,
        log_datasets=log_datasets,
        disable=disable,
        exclusive=exclusive,
        disable_for_unsupported_versions=disable_for_unsupported_versions,
        silent=silent,
        registered_model_name=registered_model_name,
        extra_tags=extra_tags,
        log_every_n_steps=log_every_n_steps,
    )
