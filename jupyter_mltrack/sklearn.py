"""The scikit-learn flavor (MLflow's ``mlflow.sklearn``): save, log and load estimators.

Serialization formats: ``cloudpickle`` (the default, as in MLflow 2), ``pickle``, and
``skops`` (``skops.io``), which does not run code from the file when loading. Loading a pickled
model runs whatever code the file holds: load pickles only from sources you trust.

With ``skops``, the types skops does not trust by default are trusted automatically when they
come from scikit-learn, numpy or scipy (a plain RandomForest or a pipeline needs nothing);
types from anywhere else must be listed by the user with ``skops_trusted_types=[...]``.
"""

from __future__ import annotations

import os
import pickle
from typing import Any

from jupyter_mltrack.exceptions import InvalidParameterValue
from jupyter_mltrack.models.info import ModelInfo, artifact_path_of, local_model_path
from jupyter_mltrack.models.info import log_model as _log_model
from jupyter_mltrack.models.model import (
    PYFUNC,
    Model,
    add_code_paths,
    check_kwargs,
    copy_code_paths,
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

FLAVOR_NAME = "sklearn"
SERIALIZATION_FORMAT_PICKLE = "pickle"
SERIALIZATION_FORMAT_CLOUDPICKLE = "cloudpickle"
SERIALIZATION_FORMAT_SKOPS = "skops"
SUPPORTED_SERIALIZATION_FORMATS = [
    SERIALIZATION_FORMAT_PICKLE,
    SERIALIZATION_FORMAT_CLOUDPICKLE,
    SERIALIZATION_FORMAT_SKOPS,
]
_FILES = {"pickle": "model.pkl", "cloudpickle": "model.pkl", "skops": "model.skops"}
_PREDICT_FNS = ("predict", "predict_proba", "predict_log_proba", "predict_joint_log_proba", "score")

# skops: types trusted without asking, by module prefix; the parts of those libraries that read
# or write files, run code or build code are never trusted automatically.
_TRUSTED_PREFIXES = ("sklearn.", "numpy.", "scipy.", "builtins.", "collections.")
_NEVER_TRUSTED_BUILTINS = frozenset(
    [
        "eval",
        "exec",
        "compile",
        "open",
        "input",
        "breakpoint",
        "__import__",
        "getattr",
        "setattr",
        "delattr",
        "globals",
        "locals",
        "vars",
        "exit",
        "quit",
        "help",
        "memoryview",
    ]
)
_NEVER_TRUSTED_MODULES = (
    "numpy.testing",
    "numpy.f2py",
    "numpy.distutils",
    "numpy.lib.npyio",
    "numpy.lib._npyio_impl",
    "scipy.io",
    "sklearn.utils._testing",
    "sklearn.externals",
)
_NEVER_TRUSTED_NUMPY = frozenset(
    [
        "load",
        "save",
        "savez",
        "savez_compressed",
        "fromfile",
        "tofile",
        "loadtxt",
        "savetxt",
        "genfromtxt",
        "memmap",
    ]
)


def get_default_pip_requirements(include_cloudpickle: bool = False) -> list[str]:
    """Pinned requirements of a scikit-learn model (cloudpickle when that format is used)."""
    dists = ["scikit-learn", "numpy", "scipy"]
    if include_cloudpickle:
        dists.append("cloudpickle")
    return pinned(dists)


def get_default_conda_env(include_cloudpickle: bool = False) -> dict[str, Any]:
    _reqs, conda, _python = resolve_environment(get_default_pip_requirements(include_cloudpickle))
    return conda


def save_model(
    sk_model: Any,
    path: str | os.PathLike[str],
    conda_env: Any = None,
    code_paths: list[str] | None = None,
    mlflow_model: Model | None = None,
    serialization_format: str = SERIALIZATION_FORMAT_CLOUDPICKLE,
    signature: Any = None,
    input_example: Any = None,
    pip_requirements: Any = None,
    extra_pip_requirements: Any = None,
    pyfunc_predict_fn: str = "predict",
    metadata: dict[str, Any] | None = None,
    *,
    skops_trusted_types: list[str] | None = None,
    **kwargs: Any,
) -> None:
    """Save a scikit-learn model as a model directory at ``path`` (which must not exist or be empty).

    Parameters
    ----------
    sk_model
        A fitted scikit-learn estimator (or pipeline, or search's ``best_estimator_``).
    path
        The directory to create.
    serialization_format
        ``"cloudpickle"`` (default), ``"pickle"`` or ``"skops"``.
    signature, input_example
        The model's signature (``infer_signature``) and an example input; when only the
        example is given, the signature is inferred from it and the model's prediction.
    pip_requirements, extra_pip_requirements, conda_env
        Replace, extend, or state the whole environment (at most one of them).
    pyfunc_predict_fn
        The estimator method ``pyfunc.load_model(...).predict`` calls.
    skops_trusted_types
        With ``serialization_format="skops"``: types from outside scikit-learn/numpy/scipy that
        the model holds and that you trust.
    """
    check_kwargs(kwargs, "save_model")
    if serialization_format not in SUPPORTED_SERIALIZATION_FORMATS:
        raise InvalidParameterValue(
            f"Unknown serialization_format {serialization_format!r}; use one of "
            f"{', '.join(SUPPORTED_SERIALIZATION_FORMATS)}."
        )
    if pyfunc_predict_fn not in _PREDICT_FNS:
        raise InvalidParameterValue(
            f"pyfunc_predict_fn must be one of {', '.join(_PREDICT_FNS)}, got {pyfunc_predict_fn!r}."
        )
    # serialize before creating anything, so a refused model leaves no directory behind
    data, trusted = _serialize(sk_model, serialization_format, skops_trusted_types)

    def write(target: str) -> None:
        import sklearn

        file = _FILES[serialization_format]
        with open(os.path.join(target, file), "wb") as fh:
            fh.write(data)
        code = copy_code_paths(code_paths, target)
        model = finish_metadata(
            target,
            mlflow_model,
            signature=signature,
            input_example=input_example,
            metadata=metadata,
            infer_output=getattr(sk_model, pyfunc_predict_fn, None),
        )
        dists = ["scikit-learn", "numpy", "scipy"]
        if serialization_format == SERIALIZATION_FORMAT_CLOUDPICKLE:
            dists.append("cloudpickle")
        if serialization_format == SERIALIZATION_FORMAT_SKOPS:
            dists.append("skops")
        if _uses_pandas(sk_model, model):
            dists.append("pandas")
        write_flavor_dir(
            target,
            model,
            flavor=FLAVOR_NAME,
            flavor_conf={
                "pickled_model": file,
                "sklearn_version": sklearn.__version__,
                "serialization_format": serialization_format,
                "skops_trusted_types": trusted,
            },
            loader_module="jupyter_mltrack.sklearn",
            pyfunc_conf={"model_path": file, "predict_fn": pyfunc_predict_fn},
            code=code,
            dists=dists,
            environment=(pip_requirements, extra_pip_requirements, conda_env),
        )

    save_with(path, write)


def log_model(
    sk_model: Any,
    artifact_path: str | None = None,
    conda_env: Any = None,
    code_paths: list[str] | None = None,
    serialization_format: str = SERIALIZATION_FORMAT_CLOUDPICKLE,
    registered_model_name: str | None = None,
    signature: Any = None,
    input_example: Any = None,
    await_registration_for: int | None = None,
    pip_requirements: Any = None,
    extra_pip_requirements: Any = None,
    pyfunc_predict_fn: str = "predict",
    metadata: dict[str, Any] | None = None,
    *,
    name: str | None = None,
    skops_trusted_types: list[str] | None = None,
    **kwargs: Any,
) -> ModelInfo:
    """Log a scikit-learn model into the active run (started if none is), under ``name``
    (MLflow 3) or ``artifact_path`` (MLflow 2), default ``"model"``; load it back with
    ``runs:/<run_id>/<name>``. ``registered_model_name`` also registers it.
    Other parameters: see ``save_model``."""
    check_kwargs(kwargs, "log_model")
    return _log_model(
        save_model,
        artifact_path_of(artifact_path, name),
        registered_model_name,
        sk_model=sk_model,
        conda_env=conda_env,
        code_paths=code_paths,
        serialization_format=serialization_format,
        signature=signature,
        input_example=input_example,
        pip_requirements=pip_requirements,
        extra_pip_requirements=extra_pip_requirements,
        pyfunc_predict_fn=pyfunc_predict_fn,
        metadata=metadata,
        skops_trusted_types=skops_trusted_types,
    )


def load_model(model_uri: str, dst_path: str | None = None) -> Any:
    """The scikit-learn model at ``model_uri`` (``runs:/``, ``models:/``, a path...).

    Loading a pickle/cloudpickle model runs code from the file: load only models you trust.
    """
    path = local_model_path(model_uri, dst_path)
    model = read_model(path)
    conf = require_flavor(model, FLAVOR_NAME, path)
    add_code_paths(path, conf.get("code"))
    return _load_file(
        os.path.join(path, conf.get("pickled_model", "model.pkl")),
        conf.get("serialization_format", SERIALIZATION_FORMAT_CLOUDPICKLE),
        conf.get("skops_trusted_types"),
    )


# -- pyfunc ---------------------------------------------------------------------------------------
class _SklearnModelWrapper:
    def __init__(self, sk_model: Any, predict_fn: str) -> None:
        self.sk_model = sk_model
        self.predict_fn = predict_fn

    def predict(self, data: Any, params: dict[str, Any] | None = None) -> Any:
        method = getattr(self.sk_model, self.predict_fn, None)
        if method is None:
            raise InvalidParameterValue(
                f"The model ({type(self.sk_model).__name__}) has no {self.predict_fn}() method "
                "to predict with; load it with jupyter_mltrack.sklearn.load_model to use it."
            )
        return method(data)


def _load_pyfunc(path: str, model_config: dict[str, Any] | None = None) -> _SklearnModelWrapper:
    """The pyfunc loader (``loader_module: jupyter_mltrack.sklearn``); ``path`` is the model
    directory or, as MLflow passes it, the model file in it."""
    directory = path if os.path.isdir(path) else os.path.dirname(path)
    model = read_model(directory)
    conf = model.flavors.get(FLAVOR_NAME) or {}
    predict_fn = model.flavors.get(PYFUNC, {}).get("predict_fn", "predict")
    add_code_paths(directory, conf.get("code"))
    sk_model = _load_file(
        os.path.join(directory, conf.get("pickled_model", "model.pkl")),
        conf.get("serialization_format", SERIALIZATION_FORMAT_CLOUDPICKLE),
        conf.get("skops_trusted_types"),
    )
    return _SklearnModelWrapper(sk_model, predict_fn)


# -- serialization --------------------------------------------------------------------------------
def _serialize(
    sk_model: Any, fmt: str, skops_trusted_types: list[str] | None
) -> tuple[bytes, list[str] | None]:
    if fmt == SERIALIZATION_FORMAT_PICKLE:
        return pickle.dumps(sk_model, protocol=pickle.DEFAULT_PROTOCOL), None
    if fmt == SERIALIZATION_FORMAT_CLOUDPICKLE:
        import cloudpickle

        return cloudpickle.dumps(sk_model, protocol=pickle.DEFAULT_PROTOCOL), None
    sio = _skops()
    try:
        data = sio.dumps(sk_model)
    except (TypeError, NotImplementedError, AttributeError) as exc:
        raise InvalidParameterValue(
            f"skops cannot serialize this model ({type(sk_model).__name__}): {exc}. Use "
            "serialization_format='cloudpickle' if you trust everyone who will load it."
        ) from None
    untrusted = sio.get_untrusted_types(data=data)
    _check_trust(untrusted, skops_trusted_types, "save")
    # store what the user approved, so loading needs no arguments
    return data, sorted(set(skops_trusted_types or []) & set(untrusted)) or None


def _check_trust(untrusted: list[str], user_trusted: list[str] | None, when: str) -> list[str]:
    allowed = set(user_trusted or [])
    refused = [t for t in untrusted if t not in allowed and not _auto_trusted(t)]
    if refused:
        listed = ", ".join(repr(t) for t in refused)
        if when == "save":
            raise InvalidParameterValue(
                f"The model holds type(s) from outside scikit-learn, numpy and scipy that skops "
                f"will not load unless trusted: {listed}. If you trust them, pass "
                f"skops_trusted_types=[{listed}] to log_model/save_model (or use "
                "serialization_format='cloudpickle')."
            )
        raise InvalidParameterValue(
            f"The skops model file holds type(s) that were not trusted when it was saved: "
            f"{listed}. Refusing to load it (the file may have been changed)."
        )
    return list(untrusted)


def _auto_trusted(type_name: str) -> bool:
    if not type_name.startswith(_TRUSTED_PREFIXES):
        return False
    module, _, name = type_name.rpartition(".")
    if module == "builtins":
        return name not in _NEVER_TRUSTED_BUILTINS
    if module.startswith("numpy") and name in _NEVER_TRUSTED_NUMPY:
        return False
    return not any(module == m or module.startswith(m + ".") for m in _NEVER_TRUSTED_MODULES)


def _skops() -> Any:
    try:
        import skops.io as sio
    except ImportError:
        raise InvalidParameterValue(
            "serialization_format='skops' needs skops: pip install 'jupyter-mltrack[sklearn]' "
            "(or pip install skops)."
        ) from None
    return sio


def _load_file(file: str, fmt: str, trusted: list[str] | None) -> Any:
    if not os.path.isfile(file):
        raise InvalidParameterValue(f"The model file {file} is missing from the model directory.")
    with open(file, "rb") as fh:
        data = fh.read()
    if fmt == SERIALIZATION_FORMAT_SKOPS:
        sio = _skops()
        untrusted = sio.get_untrusted_types(data=data)
        return sio.loads(data, trusted=_check_trust(untrusted, trusted, "load"))
    if fmt not in SUPPORTED_SERIALIZATION_FORMATS:
        raise InvalidParameterValue(
            f"The model at {os.path.dirname(file)} uses serialization format {fmt!r}, which "
            f"this version cannot read ({', '.join(SUPPORTED_SERIALIZATION_FORMATS)})."
        )
    return pickle.loads(data)  # cloudpickle output is read by pickle (cloudpickle imported on need)


def _uses_pandas(sk_model: Any, model: Model) -> bool:
    if hasattr(sk_model, "feature_names_in_"):
        return True
    info = model.saved_input_example_info or {}
    inputs = model.get_input_schema()
    return info.get("type") == "dataframe" or (inputs is not None and inputs.has_input_names())


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
    max_tuning_runs: int | None = 5,
    log_post_training_metrics: bool = True,
    serialization_format: str = SERIALIZATION_FORMAT_CLOUDPICKLE,
    registered_model_name: str | None = None,
    pos_label: Any = None,
    extra_tags: dict[str, Any] | None = None,
) -> None:
    """Enable (or with ``disable=True`` disable) autologging of scikit-learn fits: params,
    training metrics, the fitted model, a feature importance chart and search child runs.
    See ``jupyter_mltrack.autolog.sklearn.autolog`` for the parameters."""
    from jupyter_mltrack.autolog import sklearn as _autolog_sklearn

    _autolog_sklearn.autolog(
        log_input_examples=log_input_examples,
        log_model_signatures=log_model_signatures,
        log_models=log_models,
        log_datasets=log_datasets,
        disable=disable,
        exclusive=exclusive,
        disable_for_unsupported_versions=disable_for_unsupported_versions,
        silent=silent,
        max_tuning_runs=max_tuning_runs,
        log_post_training_metrics=log_post_training_metrics,
        serialization_format=serialization_format,
        registered_model_name=registered_model_name,
        pos_label=pos_label,
        extra_tags=extra_tags,
    )
