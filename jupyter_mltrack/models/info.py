"""Models in runs: ``log_model`` (save into a temp dir, copy into the active run's artifacts),
``ModelInfo``, and reading or amending logged models by URI."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import warnings
from collections.abc import Callable
from typing import Any

from jupyter_mltrack.exceptions import InvalidParameterValue
from jupyter_mltrack.models.model import MLMODEL_FILE, Model, model_dir, read_model
from jupyter_mltrack.models.signature import ModelSignature

LOG_MODEL_HISTORY_TAG = "mlflow.log-model.history"


class ModelInfo:
    """What ``log_model`` returns: where the model is (``model_uri``) and what it is."""

    def __init__(
        self, model: Model, model_uri: str, registered_model_version: int | None = None
    ) -> None:
        self.artifact_path = model.artifact_path
        self.name = model.artifact_path
        self.run_id = model.run_id
        self.model_uri = model_uri
        self.flavors = model.flavors
        self.signature = model.signature
        self.saved_input_example_info = model.saved_input_example_info
        self.utc_time_created = model.utc_time_created
        self.model_uuid = model.model_uuid
        self.metadata = model.metadata
        self.mltrack_version = getattr(model, "mltrack_version", None)
        self.registered_model_version = registered_model_version
        self.model_id = None  # MLflow 3's LoggedModel id; models here live in the run

    @property
    def signature_dict(self) -> dict[str, Any] | None:
        return self.signature.to_dict() if self.signature is not None else None

    def __repr__(self) -> str:
        return f"ModelInfo(model_uri={self.model_uri!r}, flavors={sorted(self.flavors)})"


def artifact_path_of(artifact_path: str | None, name: str | None) -> str:
    """The model's path in the run from MLflow 2's ``artifact_path`` or MLflow 3's ``name``."""
    from jupyter_mltrack.store.artifacts import clean_artifact_path

    if artifact_path and name and artifact_path != name:
        raise InvalidParameterValue(
            f"artifact_path={artifact_path!r} and name={name!r} disagree; give one of them."
        )
    path = clean_artifact_path(name or artifact_path or "model")
    if not path:
        raise InvalidParameterValue("A model needs a name inside the run, e.g. name='model'.")
    return path


def log_model(
    save: Callable[..., Any],
    artifact_path: str,
    registered_model_name: str | None = None,
    **save_kwargs: Any,
) -> ModelInfo:
    """Save a model with the flavor's ``save`` into the active run's artifacts (a run is
    started if none is active, as MLflow does). A model already at ``artifact_path`` is replaced
    only once the new one is saved."""
    from jupyter_mltrack.tracking import fluent

    run_id = fluent._run_id()
    active = fluent.active_run()
    client = active._client if active is not None else fluent._client()
    model = Model(artifact_path=artifact_path, run_id=run_id)
    repo = client.artifact_repository(run_id, for_write=True)
    if repo.is_local:
        _save_in_place(
            repo,
            run_id,
            artifact_path,
            lambda path: save(path=path, mlflow_model=model, **save_kwargs),
        )
    else:
        with tempfile.TemporaryDirectory(prefix="mltrack-model-") as tmp:
            local = os.path.join(tmp, "model")
            save(path=local, mlflow_model=model, **save_kwargs)
            _replace_existing(repo, run_id, artifact_path, stacklevel=4)
            client.log_artifacts(run_id, local, artifact_path)
    _record_history(client, run_id, model)
    model_uri = f"runs:/{run_id}/{artifact_path}"
    version = None
    if registered_model_name is not None:
        version = _register(model_uri, registered_model_name)
    return ModelInfo(model, model_uri, version)


def _save_in_place(repo: Any, run_id: str, artifact_path: str, save: Callable[[str], None]) -> None:
    """Save into a hidden folder beside the target (``.tmp-`` entries are not listed), then
    rename it into place: no copy, and a failing save leaves the run's artifacts as they were."""
    target = repo.local_path(artifact_path)
    parent = os.path.dirname(target)
    os.makedirs(parent, exist_ok=True)
    staging = tempfile.mkdtemp(prefix=".tmp-model-", dir=parent)
    try:
        local = os.path.join(staging, "model")
        save(local)
        _replace_existing(repo, run_id, artifact_path, stacklevel=5)
        try:
            os.rename(local, target)
        except OSError:  # the target holds other artifacts (or is on another file system)
            shutil.copytree(local, target, dirs_exist_ok=True)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _replace_existing(repo: Any, run_id: str, artifact_path: str, stacklevel: int) -> None:
    """Logging a model where the run already has one replaces it (MLflow overwrites too), without
    leaving files of the old one behind."""
    if repo.is_local:
        replaced = os.path.isfile(os.path.join(repo.local_path(artifact_path), MLMODEL_FILE))
    else:
        replaced = repo.exists(f"{artifact_path}/{MLMODEL_FILE}")
    if replaced:
        warnings.warn(
            f"Run {run_id} already had a model at {artifact_path!r}; it is replaced.",
            UserWarning,
            stacklevel=stacklevel,
        )
        repo.delete_artifacts(artifact_path)


def _record_history(client: Any, run_id: str, model: Model) -> None:
    entry = {
        "run_id": run_id,
        "artifact_path": model.artifact_path,
        "utc_time_created": model.utc_time_created,
        "model_uuid": model.model_uuid,
        "flavors": model.flavors,
    }
    if model.signature is not None:
        entry["signature"] = model.signature.to_dict()
    previous = client.get_run_tag(run_id, LOG_MODEL_HISTORY_TAG)
    history = []
    if previous:
        try:
            history = json.loads(previous)
        except ValueError:
            history = []
    history.append(entry)
    client.set_tag(run_id, LOG_MODEL_HISTORY_TAG, json.dumps(history, default=str))


def _register(model_uri: str, name: str) -> int:
    import jupyter_mltrack

    try:
        register = jupyter_mltrack.register_model
    except AttributeError:
        raise InvalidParameterValue(
            f"registered_model_name={name!r}: this jupyter_mltrack has no model registry yet "
            f"(jupyter_mltrack.register_model is missing). The model was logged at {model_uri}; "
            "register it once the registry is available."
        ) from None
    version = register(model_uri, name)
    return int(version.version)


def get_model_info(model_uri: str) -> ModelInfo:
    """The ModelInfo of a logged or saved model, from its MLmodel."""
    from jupyter_mltrack.models.uri import resolve_model_uri

    resolved = resolve_model_uri(model_uri)
    model = read_model(resolved.local_path)
    return ModelInfo(model, str(model_uri), resolved.version)


def set_signature(model_uri: str, signature: ModelSignature) -> None:
    """Set (or replace) the signature of a model logged in a run or saved to a path.

    Registered versions (``models:/``) are immutable: set it on the run's model instead.
    """
    from jupyter_mltrack.models.uri import resolve_model_uri

    if str(model_uri).startswith("models:/"):
        raise InvalidParameterValue(
            "Registered model versions are immutable; set the signature on the run's model "
            "(runs:/<run_id>/<name>) before registering it."
        )
    if not isinstance(signature, ModelSignature):
        raise InvalidParameterValue("signature must be a ModelSignature.")
    path = resolve_model_uri(model_uri).local_path
    model = read_model(path)
    model.signature = signature
    model.save(os.path.join(model_dir(path), MLMODEL_FILE))


def local_model_path(model_uri: str, dst_path: str | None = None) -> str:
    """The local directory of ``model_uri`` (copied under ``dst_path`` when given, as MLflow
    downloads there)."""
    from jupyter_mltrack.models.uri import resolve_model_uri

    path = resolve_model_uri(os.fspath(model_uri)).local_path
    if dst_path is None:
        return path
    target = os.path.join(os.fspath(dst_path), os.path.basename(os.path.normpath(path)))
    shutil.copytree(path, target, dirs_exist_ok=True)
    return target
