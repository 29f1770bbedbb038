"""The generic model flavor (MLflow's ``mlflow.pyfunc``): custom ``PythonModel`` classes, and
``load_model`` giving a ``PyFuncModel`` whose ``predict`` works for any flavor and enforces the
model's signature.

A ``PythonModel`` is saved with cloudpickle (loading it runs code from the file: load only
models you trust). Its ``artifacts={}`` (local files or folders, ``runs:/`` and ``models:/``
URIs) are copied into the model directory and handed to ``load_context`` as local paths.
"""

from __future__ import annotations

import importlib
import inspect
import os
import pickle
import re
import shutil
import warnings
from typing import Any

from jupyter_mltrack.exceptions import InvalidParameterValue, MlflowException, ResourceDoesNotExist
from jupyter_mltrack.models.info import ModelInfo, artifact_path_of, local_model_path
from jupyter_mltrack.models.info import log_model as _log_model
from jupyter_mltrack.models.model import (
    PYFUNC,
    InvalidModelError,
    Model,
    add_code_paths,
    check_kwargs,
    copy_code_paths,
    finish_metadata,
    plain_data,
    read_model,
    require_flavor,
    save_with,
    write_mlmodel,
)
from jupyter_mltrack.models.requirements import (
    CONDA_ENV_FILE,
    REQUIREMENTS_FILE,
    merge_requirements,
    package_versions,
    pinned,
    read_requirements_file,
    resolve_environment,
    write_environment,
)

FLAVOR_NAME = PYFUNC
MAIN = "loader_module"
CODE = "code"
DATA = "data"
ENV = "env"
PY_VERSION = "python_version"
PYTHON_MODEL_FILE = "python_model.pkl"
ARTIFACTS_DIR = "artifacts"

# loader modules named in MLmodel files -> the module here that loads them
_LOADERS = {
    "jupyter_mltrack.sklearn": "jupyter_mltrack.sklearn",
    "mlflow.sklearn": "jupyter_mltrack.sklearn",
    "jupyter_mltrack.pyfunc": "jupyter_mltrack.pyfunc",
    "mlflow.pyfunc.model": "jupyter_mltrack.pyfunc",
    "mlflow.pytorch": "jupyter_mltrack.pytorch",
    "mlflow.xgboost": "jupyter_mltrack.xgboost",
    "mlflow.lightgbm": "jupyter_mltrack.lightgbm",
    "mlflow.keras": "jupyter_mltrack.keras",
}
_ARTIFACT_KEY = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]*$")

_UNSET = object()  # not computed yet


class PythonModelContext:
    """What ``load_context`` receives: ``artifacts`` (key -> local path) and ``model_config``."""

    def __init__(
        self, artifacts: dict[str, str], model_config: dict[str, Any] | None = None
    ) -> None:
        self._artifacts = artifacts
        self._model_config = model_config or {}

    @property
    def artifacts(self) -> dict[str, str]:
        return self._artifacts

    @property
    def model_config(self) -> dict[str, Any]:
        return self._model_config

    def __repr__(self) -> str:
        return f"PythonModelContext(artifacts={self._artifacts!r})"


class PythonModel:
    """Base class of custom models: override ``predict`` and, to load artifacts, ``load_context``."""

    def load_context(self, context: PythonModelContext) -> None:
        """Called once when the model is loaded; ``context.artifacts[key]`` are local paths."""

    def predict(
        self, context: PythonModelContext, model_input: Any, params: dict[str, Any] | None = None
    ) -> Any:
        """Return the predictions for ``model_input`` (already checked against the signature)."""
        raise NotImplementedError(f"{type(self).__name__} must implement predict().")


class _FunctionModel(PythonModel):
    """A plain function given as ``python_model`` (MLflow accepts those too)."""

    def __init__(self, func: Any) -> None:
        self.func = func

    def predict(
        self, context: PythonModelContext, model_input: Any, params: dict[str, Any] | None = None
    ) -> Any:
        return self.func(model_input)


def _caller(python_model: Any) -> tuple[bool, bool]:
    """(passes context, passes params) for the model's ``predict``: accepts
    ``predict(context, model_input[, params])`` and ``predict(model_input[, params])``."""
    try:
        parameters = list(inspect.signature(python_model.predict).parameters.values())
    except (TypeError, ValueError):
        return True, False
    kinds = inspect.Parameter
    takes_params = any(p.name == "params" or p.kind == kinds.VAR_KEYWORD for p in parameters)
    positional = [
        p
        for p in parameters
        if p.kind in (kinds.POSITIONAL_ONLY, kinds.POSITIONAL_OR_KEYWORD) and p.name != "params"
    ]
    var_args = any(p.kind == kinds.VAR_POSITIONAL for p in parameters)
    takes_context = (
        len(positional) >= 2 or var_args or (bool(positional) and positional[0].name == "context")
    )
    return takes_context, takes_params


class _PythonModelWrapper:
    def __init__(self, python_model: Any, context: PythonModelContext) -> None:
        self.python_model = python_model
        self.context = context
        self._with_context, self._with_params = _caller(python_model)

    def predict(self, data: Any, params: dict[str, Any] | None = None) -> Any:
        args = (self.context, data) if self._with_context else (data,)
        if self._with_params:
            return self.python_model.predict(*args, params=params)
        if params:
            warnings.warn(
                f"{type(self.python_model).__name__}.predict takes no params; ignoring them.",
                UserWarning,
                stacklevel=3,
            )
        return self.python_model.predict(*args)


class PyFuncModel:
    """A loaded model of any flavor: ``predict(data, params=None)`` checks ``data`` against the
    signature (missing columns and unsafe types are errors) and calls the flavor's model."""

    def __init__(self, model_meta: Model, model_impl: Any, path: str | None = None) -> None:
        self._model_meta = model_meta
        self._model_impl = model_impl
        self._plain_columns: Any = _UNSET
        self._path = path

    @property
    def metadata(self) -> Model:
        """The parsed ``MLmodel``."""
        return self._model_meta

    @property
    def loader_module(self) -> str | None:
        return self._model_meta.flavors.get(PYFUNC, {}).get(MAIN)

    @property
    def model_config(self) -> dict[str, Any]:
        context = getattr(self._model_impl, "context", None)
        return context.model_config if context is not None else {}

    def predict(self, data: Any, params: dict[str, Any] | None = None) -> Any:
        """Predictions for ``data``: a DataFrame, a dict of lists, a list of dicts or a numpy
        array (see the signature rules in ``jupyter_mltrack.models.enforce``)."""
        from jupyter_mltrack.models import enforce
        from jupyter_mltrack.models.enforce import enforce_params, enforce_schema, to_frame

        schema = self._model_meta.get_input_schema()
        if schema is not None:
            if self._plain_columns is _UNSET:
                self._plain_columns = enforce.conforming_columns(self._model_meta)
            plain = self._plain_columns
            # a frame that already matches a plain numeric signature is passed on as it is
            if params is not None or plain is None or not enforce.already_conforms(data, plain):
                data = enforce_schema(data, schema)
        elif isinstance(data, (dict, list)) and not isinstance(
            self._model_impl, _PythonModelWrapper
        ):
            data = to_frame(data)
        params = enforce_params(params, self._model_meta.get_params_schema())
        return self._model_impl.predict(data, params=params)

    def unwrap_python_model(self) -> Any:
        """The ``PythonModel`` instance of a custom model."""
        if not isinstance(self._model_impl, _PythonModelWrapper):
            raise MlflowException(
                "unwrap_python_model() is for models logged with pyfunc.log_model(python_model=...); "
                f"this one has the flavors {', '.join(sorted(self._model_meta.flavors))} "
                "(get_raw_model() returns the underlying model)."
            )
        return self._model_impl.python_model

    def get_raw_model(self) -> Any:
        """The underlying model object (the estimator, or the PythonModel)."""
        impl = self._model_impl
        for attr in ("python_model", "sk_model"):
            if hasattr(impl, attr):
                return getattr(impl, attr)
        raw = getattr(impl, "get_raw_model", None)  # flavors' wrappers, as in MLflow
        return raw() if callable(raw) else impl

    def __repr__(self) -> str:
        meta = self._model_meta
        lines = ["jupyter_mltrack.pyfunc.loaded_model:"]
        if meta.artifact_path:
            lines.append(f"  artifact_path: {meta.artifact_path}")
        lines.append(f"  flavor: {self.loader_module}")
        if meta.run_id:
            lines.append(f"  run_id: {meta.run_id}")
        return "\n".join(lines)


# -- loading ----------------------------------------------------------------------------------
def load_model(
    model_uri: str,
    suppress_warnings: bool = False,
    dst_path: str | None = None,
    model_config: dict[str, Any] | None = None,
) -> PyFuncModel:
    """Load a model of any flavor as a ``PyFuncModel``.

    Parameters
    ----------
    model_uri
        ``runs:/<run_id>/<name>``, ``models:/<name>/<version|stage|latest>``,
        ``models:/<name>@<alias>``, a ``file://`` URI or a local path.
    dst_path
        Copy the model directory there first (as MLflow downloads it).
    model_config
        Overrides for the ``model_config`` the model was saved with, handed to a custom
        model's ``load_context`` or to the flavor's loader (PyTorch: ``{"device": "cuda"}``
        predicts there instead of on the CPU).
    """
    path = local_model_path(model_uri, dst_path)
    meta = read_model(path)
    conf = require_flavor(meta, PYFUNC, path)
    add_code_paths(path, conf.get(CODE))
    loader = conf.get(MAIN)
    if not loader:
        raise InvalidModelError(
            f"Corrupt model metadata in {path}: python_function has no loader_module."
        )
    if "python_model" in conf or _LOADERS.get(loader) == __name__:
        impl = _load_python_model(path, conf, model_config)
    else:
        try:
            module = importlib.import_module(_LOADERS.get(loader, loader))
        except ImportError as exc:
            raise InvalidModelError(
                f"The model at {path} needs the loader module {loader!r}, which is not "
                f"available here ({exc}). Its flavors: {', '.join(sorted(meta.flavors))}; "
                "jupyter_mltrack loads sklearn, pytorch, keras, xgboost, lightgbm and "
                "python_function (custom) models."
            ) from None
        data = conf.get(DATA) or conf.get("model_path")
        target = os.path.join(path, data) if data else path
        # the flavor's loader gets the saved model_config with the caller's overrides (e.g.
        # PyTorch's {"device": "cuda"}); loaders written for one argument keep working
        config = {**(conf.get("model_config") or {}), **(model_config or {})}
        impl = module._load_pyfunc(target, config) if config else module._load_pyfunc(target)
    return PyFuncModel(meta, impl, path)


def _load_python_model(
    path: str, conf: dict[str, Any], model_config: dict[str, Any] | None
) -> _PythonModelWrapper:
    file = os.path.join(path, conf.get("python_model", PYTHON_MODEL_FILE))
    if not os.path.isfile(file):
        raise InvalidModelError(f"The model file {file} is missing from the model directory.")
    with open(file, "rb") as fh:
        python_model = _CompatUnpickler(fh).load()
    artifacts = {}
    for key, info in (conf.get("artifacts") or {}).items():
        local = os.path.join(path, info["path"] if isinstance(info, dict) else str(info))
        if not os.path.exists(local):
            raise InvalidModelError(
                f"The model's artifact {key!r} is missing from {path} (expected at {local})."
            )
        artifacts[key] = local
    config = {**(conf.get("model_config") or {}), **(model_config or {})}
    context = PythonModelContext(artifacts, config)
    if hasattr(python_model, "load_context"):
        python_model.load_context(context)
    return _PythonModelWrapper(python_model, context)


class _CompatUnpickler(pickle.Unpickler):
    """Reads models whose class derives from MLflow's PythonModel without needing mlflow."""

    def find_class(self, module: str, name: str) -> Any:
        if module in ("mlflow.pyfunc", "mlflow.pyfunc.model") and name in (
            "PythonModel",
            "PythonModelContext",
        ):
            return globals()[name]
        return super().find_class(module, name)


def _load_pyfunc(path: str, model_config: dict[str, Any] | None = None) -> _PythonModelWrapper:
    """The pyfunc loader for custom models (``loader_module: jupyter_mltrack.pyfunc``)."""
    directory = path if os.path.isdir(path) else os.path.dirname(path)
    meta = read_model(directory)
    return _load_python_model(directory, require_flavor(meta, PYFUNC, directory), model_config)


def get_model_dependencies(model_uri: str, format: str = "pip") -> str:
    """The path of the model's ``requirements.txt`` (``format="pip"``) or ``conda.yaml``."""
    if format not in ("pip", "conda"):
        raise InvalidParameterValue(f"format must be 'pip' or 'conda', got {format!r}.")
    path = local_model_path(model_uri)
    read_model(path)
    file = os.path.join(path, REQUIREMENTS_FILE if format == "pip" else CONDA_ENV_FILE)
    if not os.path.isfile(file):
        raise ResourceDoesNotExist(f"The model at {path} has no {os.path.basename(file)}.")
    return file


# -- saving -----------------------------------------------------------------------------------
def _resolve_artifacts(artifacts: dict[str, Any] | None) -> list[tuple[str, str, str]]:
    """(key, local source, original reference) for each artifact; every entry is checked
    before anything is written."""
    if not artifacts:
        return []
    if not isinstance(artifacts, dict):
        raise InvalidParameterValue(
            f"artifacts must be a dict of name -> path or URI, got {type(artifacts).__name__}."
        )
    from jupyter_mltrack.models.uri import resolve_model_uri

    resolved = []
    for key, ref in artifacts.items():
        if not isinstance(key, str) or not _ARTIFACT_KEY.match(key) or key in (".", ".."):
            raise InvalidParameterValue(
                f"Invalid artifact name {key!r}: use letters, digits, '_', '-' and '.' "
                "(it becomes a folder name in the model)."
            )
        text = os.fspath(ref)
        if text.startswith(("runs:/", "models:/")):
            try:
                local = resolve_model_uri(text).local_path
            except MlflowException as exc:
                raise ResourceDoesNotExist(
                    f"artifacts[{key!r}] = {text!r}: {exc.message}"
                ) from None
        else:
            local = text[len("file://") :] if text.startswith("file://") else text
            if not os.path.exists(local):
                raise ResourceDoesNotExist(
                    f"artifacts[{key!r}] points at {text!r}, which does not exist "
                    f"(relative paths are taken from {os.getcwd()})."
                )
        resolved.append((key, os.path.abspath(local), text))
    return resolved


def _copy_artifacts(
    resolved: list[tuple[str, str, str]], target: str
) -> tuple[dict[str, Any], list[str]]:
    """Copy artifacts into ``artifacts/<key>`` (a folder as itself, a file inside it, keeping its
    name); return the MLmodel entries and the requirements of artifacts that are models."""
    entries, reqs = {}, []
    for key, source, ref in resolved:
        folder = os.path.join(target, ARTIFACTS_DIR, key)
        if os.path.isdir(source):
            shutil.copytree(source, folder)
            rel = f"{ARTIFACTS_DIR}/{key}"
            reqs.extend(read_requirements_file(folder))
        else:
            os.makedirs(folder)
            shutil.copyfile(source, os.path.join(folder, os.path.basename(source)))
            rel = f"{ARTIFACTS_DIR}/{key}/{os.path.basename(source)}"
        entries[key] = {"path": rel, "uri": ref}
    return entries, reqs


def _check_python_model(python_model: Any) -> Any:
    if isinstance(python_model, type):
        raise InvalidParameterValue(
            f"python_model must be an instance, not the class: pass {python_model.__name__}()."
        )
    if not hasattr(python_model, "predict"):
        if callable(python_model):
            return _FunctionModel(python_model)
        raise InvalidParameterValue(
            f"python_model must be a PythonModel (with a predict method), got {type(python_model).__name__}."
        )
    return python_model


def save_model(
    path: str | os.PathLike[str],
    loader_module: str | None = None,
    data_path: str | None = None,
    code_paths: list[str] | None = None,
    conda_env: Any = None,
    mlflow_model: Model | None = None,
    python_model: Any = None,
    artifacts: dict[str, Any] | None = None,
    signature: Any = None,
    input_example: Any = None,
    pip_requirements: Any = None,
    extra_pip_requirements: Any = None,
    metadata: dict[str, Any] | None = None,
    model_config: dict[str, Any] | None = None,
    **kwargs: Any,
) -> None:
    """Save a custom model (``python_model=`` with ``artifacts=``, or a ``loader_module`` with
    ``data_path``) as a model directory at ``path``.

    Parameters
    ----------
    python_model
        A ``PythonModel`` instance (or a function taking the input); pickled with cloudpickle.
    artifacts
        ``{name: local path | runs:/ URI | models:/ URI}``; copied into the model and given to
        ``load_context`` as ``context.artifacts[name]`` (a local path).
    signature, input_example
        Without a signature, the input schema is inferred from the example (the model is not
        run at save time).
    model_config
        A dict handed to the model as ``context.model_config``.
    """
    check_kwargs(kwargs, "save_model")
    if (python_model is None) == (loader_module is None):
        raise InvalidParameterValue(
            "Give exactly one of python_model (a PythonModel instance) or loader_module."
        )
    if loader_module is not None and artifacts:
        raise InvalidParameterValue(
            "artifacts go with python_model; with loader_module use data_path."
        )
    if python_model is not None:
        python_model = _check_python_model(python_model)
        import cloudpickle

        try:
            pickled = cloudpickle.dumps(python_model, protocol=pickle.DEFAULT_PROTOCOL)
        except Exception as exc:
            raise InvalidParameterValue(
                f"Cannot pickle python_model ({type(python_model).__name__}): {exc}. Keep "
                "unpicklable things (connections, open files, loaded models) out of the instance "
                "and load them in load_context from artifacts."
            ) from exc
    if data_path is not None and not os.path.exists(data_path):
        raise ResourceDoesNotExist(f"data_path {data_path!r} does not exist.")
    resolved = _resolve_artifacts(artifacts)

    def write(target: str) -> None:
        flavor: dict[str, Any] = {}
        dists = ["numpy", "pandas"]
        artifact_reqs: list[str] = []
        if python_model is not None:
            with open(os.path.join(target, PYTHON_MODEL_FILE), "wb") as fh:
                fh.write(pickled)
            flavor.update(loader_module=__name__, python_model=PYTHON_MODEL_FILE)
            flavor["cloudpickle_version"] = package_versions(["cloudpickle"]).get("cloudpickle")
            dists.append("cloudpickle")
            entries, artifact_reqs = _copy_artifacts(resolved, target)
            if entries:
                flavor["artifacts"] = entries
        else:
            flavor["loader_module"] = loader_module
            if data_path is not None:
                dest = os.path.join(target, DATA, os.path.basename(os.path.normpath(data_path)))
                if os.path.isdir(data_path):
                    shutil.copytree(data_path, dest)
                else:
                    os.makedirs(os.path.dirname(dest))
                    shutil.copyfile(data_path, dest)
                flavor[DATA] = os.path.relpath(dest, target).replace(os.sep, "/")
        code = copy_code_paths(code_paths, target)
        model = finish_metadata(
            target,
            mlflow_model,
            signature=signature,
            input_example=input_example,
            metadata=metadata,
        )
        defaults = merge_requirements(pinned(dists), artifact_reqs)
        reqs, conda, python = resolve_environment(
            defaults, pip_requirements, extra_pip_requirements, conda_env
        )
        flavor[ENV] = write_environment(target, reqs, conda, python)
        flavor[PY_VERSION] = python
        flavor[CODE] = code
        if model_config:
            flavor["model_config"] = plain_data(model_config, "model_config")
        model.add_flavor(PYFUNC, **flavor)
        write_mlmodel(target, model, package_versions(["jupyter-mltrack", *dists]))

    save_with(path, write)


def log_model(
    artifact_path: str | None = None,
    loader_module: str | None = None,
    data_path: str | None = None,
    code_paths: list[str] | None = None,
    conda_env: Any = None,
    python_model: Any = None,
    artifacts: dict[str, Any] | None = None,
    registered_model_name: str | None = None,
    signature: Any = None,
    input_example: Any = None,
    await_registration_for: int | None = None,
    pip_requirements: Any = None,
    extra_pip_requirements: Any = None,
    metadata: dict[str, Any] | None = None,
    model_config: dict[str, Any] | None = None,
    *,
    name: str | None = None,
    **kwargs: Any,
) -> ModelInfo:
    """Log a custom model into the active run (started if none is) under ``name`` /
    ``artifact_path`` (default ``"model"``). Parameters: see ``save_model``."""
    check_kwargs(kwargs, "log_model")
    return _log_model(
        save_model,
        artifact_path_of(artifact_path, name),
        registered_model_name,
        loader_module=loader_module,
        data_path=data_path,
        code_paths=code_paths,
        conda_env=conda_env,
        python_model=python_model,
        artifacts=artifacts,
        signature=signature,
        input_example=input_example,
        pip_requirements=pip_requirements,
        extra_pip_requirements=extra_pip_requirements,
        metadata=metadata,
        model_config=model_config,
    )


def add_to_model(
    model: Model,
    loader_module: str,
    data: str | None = None,
    code: str | None = None,
    conda_env: str | None = None,
    python_env: str | None = None,
    model_config: dict[str, Any] | None = None,
    **kwargs: Any,
) -> Model:
    """Add the python_function flavor to ``model`` (for writers of their own flavors)."""
    params: dict[str, Any] = {MAIN: loader_module, **kwargs}
    if data:
        params[DATA] = data
    if code:
        params[CODE] = code
    env = {k: v for k, v in (("conda", conda_env), ("virtualenv", python_env)) if v}
    if env:
        params[ENV] = env
    if model_config:
        params["model_config"] = model_config
    return model.add_flavor(PYFUNC, **params)
