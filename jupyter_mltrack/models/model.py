"""The model format: a directory holding ``MLmodel`` (YAML metadata), the serialized model and
its environment files. ``Model`` is the metadata; ``log_model`` puts a flavor's saved directory
into the active run's artifacts so that ``runs:/<run_id>/<name>`` loads it.

``MLmodel`` keeps MLflow's keys (flavors, signature, saved_input_example_info, run_id,
artifact_path, utc_time_created, model_uuid) so MLflow-saved models load here, plus
``mltrack_model_format``: a model written by a newer format is refused, never misread.
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import shutil
import uuid
import warnings
from collections.abc import Callable
from typing import Any

from jupyter_mltrack.exceptions import (
    InvalidModelError,
    InvalidParameterValue,
    ResourceDoesNotExist,
)
from jupyter_mltrack.models.signature import ModelSignature, Schema

MLMODEL_FILE = "MLmodel"
MODEL_FORMAT_VERSION = 1
PYFUNC = "python_function"


def _yaml() -> Any:
    import yaml

    return yaml


class Model:
    """The metadata of one model (the content of its ``MLmodel`` file)."""

    def __init__(
        self,
        artifact_path: str | None = None,
        run_id: str | None = None,
        utc_time_created: str | None = None,
        flavors: dict[str, dict[str, Any]] | None = None,
        signature: ModelSignature | None = None,
        saved_input_example_info: dict[str, Any] | None = None,
        model_uuid: str | None = None,
        metadata: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        self.artifact_path = artifact_path
        self.run_id = run_id
        self.utc_time_created = utc_time_created or str(
            _dt.datetime.now(_dt.timezone.utc).replace(tzinfo=None)
        )
        self.flavors = flavors if flavors is not None else {}
        self.signature = signature
        self.saved_input_example_info = saved_input_example_info
        self.model_uuid = model_uuid or uuid.uuid4().hex
        self.metadata = metadata
        self.mltrack_model_format = kwargs.pop("mltrack_model_format", MODEL_FORMAT_VERSION)
        self.__dict__.update(kwargs)

    # -- flavors and schemas ----------------------------------------------------------------
    def add_flavor(self, name: str, **params: Any) -> Model:
        """Record a flavor and its configuration (``loader_module``, file names...)."""
        self.flavors[name] = params
        return self

    def get_input_schema(self) -> Schema | None:
        return self.signature.inputs if self.signature is not None else None

    def get_output_schema(self) -> Schema | None:
        return self.signature.outputs if self.signature is not None else None

    def get_params_schema(self) -> Any:
        return self.signature.params if self.signature is not None else None

    @property
    def signature_dict(self) -> dict[str, Any] | None:
        return self.signature.to_dict() if self.signature is not None else None

    def load_input_example(self, path: str) -> Any:
        """The saved input example (a DataFrame, a numpy array or JSON data), or None."""
        from jupyter_mltrack.models.example import load_input_example

        return load_input_example(path, self.saved_input_example_info)

    # -- (de)serialization ------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        skip = {"signature"}
        out = {k: v for k, v in self.__dict__.items() if not k.startswith("_") and k not in skip}
        out = {k: v for k, v in out.items() if v is not None}
        if self.signature is not None:
            out["signature"] = self.signature.to_dict()
        return dict(sorted(out.items()))

    def to_yaml(self) -> str:
        yaml = _yaml()
        dumper = getattr(yaml, "CSafeDumper", yaml.SafeDumper)
        return yaml.dump(self.to_dict(), Dumper=dumper, default_flow_style=False, sort_keys=False)

    def to_json(self) -> str:
        return json.dumps(self.to_dict())

    def save(self, path: str) -> None:
        """Write ``MLmodel`` to ``path`` (a file path)."""
        with open(path, "w", encoding="utf-8") as fh:
            fh.write(self.to_yaml())

    @classmethod
    def from_dict(cls, model_dict: dict[str, Any]) -> Model:
        data = dict(model_dict)
        signature = data.pop("signature", None)
        if isinstance(signature, dict):
            signature = ModelSignature.from_dict(signature)
        return cls(signature=signature, **data)

    @classmethod
    def log(
        cls,
        artifact_path: str,
        flavor: Any,
        registered_model_name: str | None = None,
        **kwargs: Any,
    ) -> Any:
        """Log a model with ``flavor`` (a module with ``save_model(path=..., mlflow_model=...)``)
        into the active run, as MLflow's ``Model.log`` does."""
        from jupyter_mltrack.models.info import artifact_path_of, log_model

        kwargs.pop("await_registration_for", None)
        return log_model(
            flavor.save_model,
            artifact_path_of(artifact_path, None),
            registered_model_name,
            **kwargs,
        )

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> Model:
        """The metadata of the model at ``path`` (its directory, its MLmodel file, or a
        ``runs:/`` / ``models:/`` URI)."""
        path = os.fspath(path)
        if path.startswith(("runs:/", "models:/")):
            from jupyter_mltrack.models.uri import resolve_model_uri

            path = resolve_model_uri(path).local_path
        return read_model(path)


def model_dir(path: str) -> str:
    """The model directory for ``path`` (a directory, or its ``MLmodel`` file)."""
    if os.path.isfile(path) and os.path.basename(path) == MLMODEL_FILE:
        return os.path.dirname(os.path.abspath(path))
    return path


def read_model(path: str) -> Model:
    """Parse ``<path>/MLmodel`` with a clear error for every way it can be unusable."""
    path = model_dir(path)
    if not os.path.exists(path):
        raise ResourceDoesNotExist(f"No model at {path!r}: the path does not exist.")
    file = os.path.join(path, MLMODEL_FILE)
    if not os.path.isfile(file):
        raise InvalidModelError(_not_a_model(path))
    yaml = _yaml()
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    try:
        with open(file, encoding="utf-8") as fh:
            data = yaml.load(fh, Loader=loader)
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        raise InvalidModelError(
            f"Corrupt model metadata in {file}: not valid YAML ({exc})."
        ) from None
    if (
        not isinstance(data, dict)
        or not isinstance(data.get("flavors"), dict)
        or not data["flavors"]
    ):
        raise InvalidModelError(
            f"Corrupt model metadata in {file}: expected a mapping with a non-empty 'flavors' "
            "section."
        )
    version = data.get("mltrack_model_format", MODEL_FORMAT_VERSION)
    if not isinstance(version, int):
        raise InvalidModelError(
            f"Corrupt model metadata in {file}: mltrack_model_format is {version!r}."
        )
    if version > MODEL_FORMAT_VERSION:
        raise InvalidModelError(
            f"The model at {path} was written by a newer jupyter_mltrack (model format "
            f"{version}; this version reads format {MODEL_FORMAT_VERSION} and older); upgrade: "
            "pip install -U jupyter-mltrack."
        )
    try:
        return Model.from_dict(data)
    except InvalidParameterValue as exc:
        raise InvalidModelError(f"Corrupt model metadata in {file}: {exc}") from None


def _not_a_model(path: str) -> str:
    message = f"Not a model directory: no {MLMODEL_FILE} file in {path}."
    if os.path.isdir(path):
        inside = sorted(os.listdir(path))
        models = [n for n in inside if os.path.isfile(os.path.join(path, n, MLMODEL_FILE))]
        if models:
            message += f" It contains model(s) {', '.join(repr(m) for m in models)}; add that name to the URI or path."
        else:
            message += f" It holds: {', '.join(inside[:20]) or 'nothing'}."
    return message


def require_flavor(model: Model, flavor: str, path: str) -> dict[str, Any]:
    """The configuration of ``flavor``, or an error listing the flavors the model has."""
    conf = model.flavors.get(flavor)
    if not isinstance(conf, dict):
        has = ", ".join(sorted(model.flavors)) or "none"
        raise InvalidModelError(
            f"The model at {path} has no {flavor!r} flavor (its flavors: {has}). "
            + (
                "Load it with jupyter_mltrack.pyfunc.load_model instead."
                if PYFUNC in model.flavors and flavor != PYFUNC
                else ""
            )
        )
    return conf


# -- code and arguments ------------------------------------------------------------------------
# Arguments of MLflow's log_model that have no effect here (no LoggedModel entity, no async
# registration); accepted so MLflow code runs unchanged. Anything else is a TypeError.
TOLERATED_KWARGS = frozenset(
    {
        "await_registration_for",
        "params",
        "tags",
        "model_type",
        "step",
        "model_id",
        "prompts",
        "resources",
        "auth_policy",
        "example_no_conversion",
        "infer_code_paths",
        "run_id",
    }
)


def check_kwargs(kwargs: dict[str, Any], function: str) -> None:
    unknown = sorted(set(kwargs) - TOLERATED_KWARGS)
    if unknown:
        raise TypeError(f"{function}() got unexpected keyword argument(s): {', '.join(unknown)}")


def copy_code_paths(code_paths: list[str] | None, target: str) -> str | None:
    """Copy user code (files or packages) into ``code/``; it is put on sys.path at load."""
    if not code_paths:
        return None
    code_dir = os.path.join(target, "code")
    os.makedirs(code_dir, exist_ok=True)
    for item in code_paths:
        source = os.fspath(item)
        if not os.path.exists(source):
            raise InvalidParameterValue(f"code_paths entry {source!r} does not exist.")
        dest = os.path.join(code_dir, os.path.basename(os.path.normpath(source)))
        if os.path.isdir(source):
            shutil.copytree(source, dest, dirs_exist_ok=True)
        else:
            shutil.copyfile(source, dest)
    return "code"


EXTRA_FILES_DIR = "extra_files"


def check_extra_files(extra_files: Any) -> list[str]:
    """The local files of MLflow 3's ``extra_files=[...]`` argument, checked before saving."""
    if extra_files is None:
        return []
    if isinstance(extra_files, (str, os.PathLike)) or not isinstance(extra_files, (list, tuple)):
        raise InvalidParameterValue(
            f"extra_files must be a list of file paths, got {type(extra_files).__name__}."
        )
    files = [os.fspath(f) for f in extra_files]
    files = [f[len("file://") :] if f.startswith("file://") else f for f in files]
    missing = [f for f in files if not os.path.isfile(f)]
    if missing:
        raise InvalidParameterValue(f"extra_files: no such file(s): {', '.join(missing)}.")
    return files


def copy_extra_files(files: list[str], target: str) -> dict[str, Any]:
    """Copy checked extra files into ``extra_files/``; the flavor configuration entry (MLflow's
    ``{"extra_files": [{"path": "extra_files/<name>"}]}``, empty when there are none)."""
    if not files:
        return {}
    folder = os.path.join(target, EXTRA_FILES_DIR)
    os.makedirs(folder, exist_ok=True)
    entries = []
    for file in files:
        shutil.copyfile(file, os.path.join(folder, os.path.basename(file)))
        entries.append({"path": f"{EXTRA_FILES_DIR}/{os.path.basename(file)}"})
    return {EXTRA_FILES_DIR: entries}


def add_code_paths(model_path: str, code: str | None) -> None:
    import sys

    if code:
        code_dir = os.path.join(model_path, code)
        if os.path.isdir(code_dir) and code_dir not in sys.path:
            sys.path.insert(0, code_dir)


# -- saving ---------------------------------------------------------------------------------------
def prepare_dir(path: str | os.PathLike[str]) -> tuple[str, bool]:
    """Create the target of ``save_model``: refuse a non-empty existing path (as MLflow does)."""
    path = os.path.abspath(os.fspath(path))
    if os.path.exists(path):
        if not os.path.isdir(path) or os.listdir(path):
            raise InvalidParameterValue(
                f"Path {path!r} already exists and is not empty; save_model writes a new "
                "directory. Choose another path or remove it first."
            )
        return path, False
    os.makedirs(path)
    return path, True


def save_with(path: str | os.PathLike[str], write: Callable[[str], None]) -> str:
    """Run ``write(dir)`` into a fresh model directory; remove it again if ``write`` fails."""
    target, created = prepare_dir(path)
    try:
        write(target)
    except BaseException:
        if created:
            shutil.rmtree(target, ignore_errors=True)
        else:
            for name in os.listdir(target):
                full = os.path.join(target, name)
                shutil.rmtree(full) if os.path.isdir(full) else os.unlink(full)
        raise
    return target


def finish_metadata(
    path: str,
    mlflow_model: Model | None,
    *,
    signature: ModelSignature | None,
    input_example: Any,
    metadata: dict[str, Any] | None,
    infer_output: Callable[[Any], Any] | None = None,
) -> Model:
    """Fill the common parts of MLmodel: signature (inferred from the example when not given),
    input example, metadata, python and package versions."""
    from jupyter_mltrack.models.requirements import python_version

    model = mlflow_model or Model()
    if input_example is not None:
        from jupyter_mltrack.models.example import save_input_example

        model.saved_input_example_info = save_input_example(path, input_example)
        if signature is None:
            signature = _signature_from_example(input_example, infer_output)
    if signature is not None and signature is not False:
        if not isinstance(signature, ModelSignature):
            raise InvalidParameterValue(
                f"signature must be a ModelSignature (see infer_signature), got {type(signature).__name__}."
            )
        model.signature = signature
    if metadata is not None:
        if not isinstance(metadata, dict):
            raise InvalidParameterValue(f"metadata must be a dict, got {type(metadata).__name__}.")
        model.metadata = plain_data(metadata, "metadata")
    model.python_version = python_version()
    return model


def _signature_from_example(
    example: Any, infer_output: Callable[[Any], Any] | None
) -> ModelSignature | None:
    from jupyter_mltrack.models.signature import infer_signature

    output = None
    if infer_output is not None:
        try:
            output = infer_output(example)
        except Exception as exc:  # the signature is a convenience: never fail the save for it
            warnings.warn(
                f"Could not run the model on the input example to infer the output schema: {exc}",
                UserWarning,
                stacklevel=4,
            )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        signature = infer_signature(example, output)
    return signature if signature.inputs is not None else None


def plain_data(value: Any, label: str) -> Any:
    """``value`` with numpy scalars and arrays, tuples and sets made plain YAML data."""
    if isinstance(value, dict):
        return {str(k): plain_data(v, label) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [plain_data(v, label) for v in value]
    if hasattr(value, "tolist") and type(value).__module__ == "numpy":
        return value.tolist()  # before the float check: np.float64 is a float subclass
    if value is None or isinstance(value, (str, bool, int, float)):
        return value
    raise InvalidParameterValue(
        f"{label} must hold plain data (strings, numbers, booleans, lists, dicts); "
        f"got a {type(value).__name__}."
    )


def write_flavor_dir(
    target: str,
    model: Model,
    *,
    flavor: str,
    flavor_conf: dict[str, Any],
    loader_module: str,
    pyfunc_conf: dict[str, Any],
    code: str | None,
    dists: list[str],
    environment: tuple[Any, Any, Any],
    record_code: bool = True,
) -> None:
    """The end of every flavor's ``save_model``: the environment files (``requirements.txt``,
    ``python_env.yaml``, ``conda.yaml``) pinning ``dists`` unless the user's
    ``environment = (pip_requirements, extra_pip_requirements, conda_env)`` says otherwise, the
    ``python_function`` and flavor entries (both naming the ``code`` folder, as MLflow does,
    unless ``record_code=False`` for flavors that never take code), and ``MLmodel``."""
    from jupyter_mltrack.models.requirements import (
        package_versions,
        pinned,
        resolve_environment,
        write_environment,
    )

    pip_requirements, extra_pip_requirements, conda_env = environment
    reqs, conda, python = resolve_environment(
        pinned(dists), pip_requirements, extra_pip_requirements, conda_env
    )
    env = write_environment(target, reqs, conda, python)
    code_entry = {"code": code} if record_code else {}
    model.add_flavor(
        PYFUNC,
        loader_module=loader_module,
        **pyfunc_conf,
        env=env,
        python_version=python,
        **code_entry,
    )
    model.add_flavor(flavor, **flavor_conf, **code_entry)
    write_mlmodel(target, model, package_versions(["jupyter-mltrack", *dists]))


def write_mlmodel(path: str, model: Model, package_versions: dict[str, str]) -> None:
    from jupyter_mltrack import __version__

    model.mltrack_version = __version__
    model.mltrack_model_format = MODEL_FORMAT_VERSION
    model.package_versions = package_versions
    model.model_size_bytes = _dir_size(path)
    model.save(os.path.join(path, MLMODEL_FILE))


def _dir_size(path: str) -> int:
    total = 0
    for root, _dirs, files in os.walk(path):
        for name in files:
            total += os.path.getsize(os.path.join(root, name))
    return total
