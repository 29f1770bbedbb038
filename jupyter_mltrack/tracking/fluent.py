"""The fluent tracking API (module functions over an active-run stack), MLflow's names."""

from __future__ import annotations

import os
import threading
from collections.abc import Mapping, Sequence
from typing import Any

from jupyter_mltrack import system_metrics
from jupyter_mltrack.entities import (
    Dataset,
    DatasetInput,
    Experiment,
    InputTag,
    Metric,
    Param,
    Run,
    RunStatus,
    RunTag,
    ViewType,
)
from jupyter_mltrack.exceptions import InvalidParameterValue, InvalidState, ResourceDoesNotExist
from jupyter_mltrack.tracking import config
from jupyter_mltrack.tracking.client import Client, _now_ms
from jupyter_mltrack.tracking.context import NOTE_TAG, PARENT_RUN_TAG, run_context_tags

DEFAULT_EXPERIMENT_ID = "0"
DATASET_CONTEXT_TAG = "mlflow.data.context"


class _State(threading.local):
    def __init__(self) -> None:
        self.stack: list[ActiveRun] = []
        self.last: Run | None = None


_state = _State()
_active_experiment_id: str | None = None
_clients: dict[str, Client] = {}


def _client() -> Client:
    uri = config.get_tracking_uri()
    client = _clients.get(uri)
    if client is None:
        client = _clients[uri] = Client(uri)
    return client


class ActiveRun(Run):
    """The run returned by ``start_run``; as a context manager it ends the run on exit."""

    def __init__(self, run: Run, client: Client) -> None:
        super().__init__(run.info, run.data)
        self._client = client
        self._run_id = run.info.run_id  # read on every log_metric: skip the property
        # True for a notebook cell's run: start_run() inside the cell opens a child run.
        self.nests_children = False

    def __enter__(self) -> ActiveRun:
        return self

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> bool:
        if exc_type is None:
            status = RunStatus.FINISHED
        elif issubclass(exc_type, KeyboardInterrupt):
            status = RunStatus.KILLED
        else:
            status = RunStatus.FAILED
        if _state.stack and _state.stack[-1].info.run_id == self.info.run_id:
            end_run(status)
        elif any(r.info.run_id == self.info.run_id for r in _state.stack):
            end_run(status)  # inner runs were left open: end down to this one
        return False


# -- tracking URI and experiments ---------------------------------------------------------
def set_tracking_uri(uri: str | os.PathLike[str]) -> None:
    """Track to ``uri``: a folder (embedded store), ``sqlite:///x.db`` or a PostgreSQL URL."""
    config.set_tracking_uri(uri)


def get_tracking_uri() -> str:
    return config.get_tracking_uri()


def set_registry_uri(uri: str) -> None:
    config.set_registry_uri(uri)


def get_registry_uri() -> str:
    return config.get_registry_uri()


def create_experiment(
    name: str, artifact_location: str | None = None, tags: dict[str, Any] | None = None
) -> str:
    return _client().create_experiment(name, artifact_location, tags)


def get_experiment(experiment_id: str) -> Experiment:
    return _client().get_experiment(experiment_id)


def get_experiment_by_name(name: str) -> Experiment | None:
    return _client().get_experiment_by_name(name)


def search_experiments(
    view_type: int = ViewType.ACTIVE_ONLY,
    max_results: int | None = None,
    filter_string: str | None = None,
    order_by: list[str] | None = None,
) -> list[Experiment]:
    """All experiments matching the filter (every page)."""
    client, found, token = _client(), [], None
    while True:
        page = client.search_experiments(view_type, 1000, filter_string, order_by, token)
        found.extend(page)
        token = page.token
        if not token or (max_results is not None and len(found) >= max_results):
            return found[:max_results] if max_results is not None else found


def delete_experiment(experiment_id: str) -> None:
    _client().delete_experiment(experiment_id)


def set_experiment(
    experiment_name: str | None = None, experiment_id: str | None = None
) -> Experiment:
    """Make an experiment active (creating it by name if needed) and return it."""
    global _active_experiment_id
    if (experiment_name is None) == (experiment_id is None):
        raise InvalidParameterValue(
            "set_experiment needs exactly one of experiment_name or experiment_id."
        )
    client = _client()
    if experiment_name is not None:
        experiment = client.get_experiment_by_name(experiment_name)
        if experiment is None:
            from jupyter_mltrack.exceptions import ResourceAlreadyExists

            try:
                client.create_experiment(experiment_name)
            except ResourceAlreadyExists:  # created by another process meanwhile
                pass
            experiment = client.get_experiment_by_name(experiment_name)
            assert experiment is not None
    else:
        experiment = client.get_experiment(str(experiment_id))
    if experiment.lifecycle_stage != "active":
        raise InvalidState(
            f"Experiment {experiment.name!r} (id {experiment.experiment_id}) is deleted. Restore "
            "it with MlflowClient().restore_experiment(id), or choose another name."
        )
    _active_experiment_id = experiment.experiment_id
    return experiment


def set_experiment_tag(key: str, value: Any) -> None:
    _client().set_experiment_tag(_experiment_id(), key, value)


def set_experiment_tags(tags: dict[str, Any]) -> None:
    for key, value in tags.items():
        set_experiment_tag(key, value)


def _experiment_id() -> str:
    if _active_experiment_id is not None:
        return _active_experiment_id
    env_id = os.environ.get("MLFLOW_EXPERIMENT_ID")
    if env_id:
        return env_id
    env_name = os.environ.get("MLFLOW_EXPERIMENT_NAME")
    if env_name:
        return set_experiment(env_name).experiment_id
    return DEFAULT_EXPERIMENT_ID


# -- runs ---------------------------------------------------------------------------------
def start_run(
    run_id: str | None = None,
    experiment_id: str | None = None,
    run_name: str | None = None,
    nested: bool = False,
    parent_run_id: str | None = None,
    tags: dict[str, Any] | None = None,
    description: str | None = None,
    log_system_metrics: bool | None = None,
) -> ActiveRun:
    """Start (or resume, with ``run_id``) a run and make it active; use it in ``with``.

    ``log_system_metrics=True`` samples CPU, memory, disk, network (and NVIDIA GPUs) in a
    background thread until the run ends; None follows ``enable_system_metrics_logging()`` /
    ``MLFLOW_ENABLE_SYSTEM_METRICS_LOGGING`` (see ``jupyter_mltrack.system_metrics``).
    """
    stack = _state.stack
    if run_id is None and parent_run_id is None and not stack:
        exported = exported_run_id()
        if exported and nested:
            parent_run_id = exported
        elif exported:
            run_id = exported  # launched by `mltrack run` / a notebook project: log into its run
    if stack and not nested and stack[-1].nests_children:
        nested = True  # MLflow code pasted into a %%track cell opens a child of the cell's run
    if stack and not nested:
        active = stack[-1].info
        raise InvalidState(
            f"Run {active.run_id} ({active.run_name}) is already active. End it with "
            "end_run() first, or start a nested run with start_run(nested=True)."
        )
    client = _client()
    if run_id is not None:
        run = client.get_run(run_id)
        if run.info.lifecycle_stage != "active":
            raise InvalidState(f"Run {run_id} is deleted; restore it before resuming it.")
        client.update_run(run_id, RunStatus.RUNNING, run_name)
        run = client.get_run(run_id)
    else:
        parent = parent_run_id or (stack[-1].info.run_id if stack and nested else None)
        all_tags = run_context_tags()
        all_tags.update({k: str(v) for k, v in (tags or {}).items()})
        if parent:
            all_tags[PARENT_RUN_TAG] = parent
        if description:
            all_tags[NOTE_TAG] = description
        exp_id = str(experiment_id) if experiment_id is not None else _experiment_id()
        run = client.create_run(exp_id, tags=all_tags, run_name=run_name)
    active = ActiveRun(run, client)
    stack.append(active)
    system_metrics.run_started(active.info.run_id, client, log_system_metrics, run_id is not None)
    return active


def exported_run_id() -> str | None:
    """The run a launcher (``mltrack run``, a notebook project) exported to this process in
    ``MLTRACK_RUN_ID`` or ``MLFLOW_RUN_ID``: a top-level ``start_run()`` resumes it and a
    ``%%track`` cell or ``start_run(nested=True)`` opens a child of it."""
    return os.environ.get("MLTRACK_RUN_ID") or os.environ.get("MLFLOW_RUN_ID") or None


def end_run(status: str = RunStatus.FINISHED) -> None:
    """End the active run (metrics flushed, status and end time recorded)."""
    stack = _state.stack
    if not stack:
        return
    run = stack.pop()
    system_metrics.run_ending(run.info.run_id)  # its last system step is written before the end
    info = run._client.set_terminated(run.info.run_id, status)
    run.info.status, run.info.end_time = info.status, info.end_time
    _state.last = run


def active_run() -> ActiveRun | None:
    return _state.stack[-1] if _state.stack else None


def last_active_run() -> Run | None:
    """The active run, else the last run ended in this thread (re-read from the store)."""
    run = active_run() or _state.last
    return _client().get_run(run.info.run_id) if run else None


def get_run(run_id: str) -> Run:
    return _client().get_run(run_id)


def delete_run(run_id: str) -> None:
    _client().delete_run(run_id)


def get_parent_run(run_id: str) -> Run | None:
    return _client().get_parent_run(run_id)


def _run_id() -> str:
    """The active run's id, starting a run if there is none (as MLflow does)."""
    stack = _state.stack
    if stack:
        return stack[-1].info.run_id
    return start_run().info.run_id


def _run_for(run_id: str | None) -> str:
    return run_id if run_id is not None else _run_id()


# -- logging ------------------------------------------------------------------------------
def log_metric(
    key: str,
    value: Any,
    step: int | None = None,
    synchronous: bool | None = None,
    timestamp: int | None = None,
    run_id: str | None = None,
    **_: Any,
) -> None:
    """Log one metric point to the active run (buffered; reads always see it)."""
    stack = _state.stack
    if stack:
        active = stack[-1]
        active._client.log_metric(
            active._run_id if run_id is None else run_id, key, value, timestamp, step, synchronous
        )
    else:
        _client().log_metric(_run_for(run_id), key, value, timestamp, step, synchronous)


def log_metrics(
    metrics: dict[str, Any],
    step: int | None = None,
    synchronous: bool | None = None,
    run_id: str | None = None,
    timestamp: int | None = None,
    **_: Any,
) -> None:
    """Log several metrics at one step, with one timestamp."""
    rid = _run_for(run_id)
    ts = timestamp if timestamp is not None else _now_ms()
    client = _client()
    for key, value in metrics.items():
        client.log_metric(rid, key, value, ts, step, synchronous)


def log_param(key: str, value: Any, synchronous: bool | None = None) -> Any:
    _client().log_param(_run_id(), key, value)
    return value


def log_params(
    params: dict[str, Any], synchronous: bool | None = None, run_id: str | None = None
) -> None:
    _client().log_batch(_run_for(run_id), params=[Param(k, v) for k, v in params.items()])


def set_tag(key: str, value: Any, synchronous: bool | None = None) -> None:
    _client().set_tag(_run_id(), key, value)


def set_tags(tags: dict[str, Any], synchronous: bool | None = None) -> None:
    _client().log_batch(_run_id(), tags=[RunTag(k, v) for k, v in tags.items()])


def delete_tag(key: str) -> None:
    _client().delete_tag(_run_id(), key)


def log_batch(
    metrics: Sequence[Metric] = (), params: Sequence[Param] = (), tags: Sequence[RunTag] = ()
) -> None:
    _client().log_batch(_run_id(), metrics, params, tags)


def log_input(
    dataset: Any,
    context: str | None = None,
    tags: Mapping[str, Any] | None = None,
    model: Any = None,
) -> None:
    """Record ``dataset`` as an input of the active run (MLflow's ``mlflow.log_input``).

    Parameters
    ----------
    dataset : jupyter_mltrack.data.Dataset
        A dataset from ``mlflow.data.from_pandas`` / ``from_numpy`` (MLflow's own dataset
        objects work too).
    context : str, optional
        What the run used it for (``"training"``, ``"eval"``); stored as the input tag
        ``mlflow.data.context``.
    tags : dict, optional
        More input tags.
    model : optional
        MLflow 3's model input; accepted for compatibility, not stored.
    """
    entity = _dataset_entity(dataset)
    if context is not None and not isinstance(context, str):
        raise InvalidParameterValue(
            f"log_input: context must be a string such as 'training', got "
            f"{type(context).__name__}: {context!r}."
        )
    if tags is not None and not isinstance(tags, Mapping):
        raise InvalidParameterValue(
            f"log_input: tags must be a dict of strings, got {type(tags).__name__}."
        )
    input_tags = [InputTag(k, v if isinstance(v, str) else str(v)) for k, v in (tags or {}).items()]
    if context is not None:
        input_tags.append(InputTag(DATASET_CONTEXT_TAG, context))
    _client().log_inputs(_run_id(), [DatasetInput(entity, input_tags)])


def _dataset_entity(dataset: Any) -> Dataset:
    """The stored fields of a dataset object: ours, an entity, or MLflow's own dataset."""
    if isinstance(dataset, Dataset):
        return dataset
    to_entity = getattr(dataset, "_to_mlflow_entity", None)
    if not callable(to_entity):
        raise InvalidParameterValue(
            f"log_input expects a dataset, got {type(dataset).__name__}; wrap the data first, "
            "e.g. mlflow.log_input(mlflow.data.from_pandas(df), context='training')."
        )
    found = to_entity()
    if isinstance(found, Dataset):
        return found
    fields = ("name", "digest", "source_type", "source", "schema", "profile")
    return Dataset(*(getattr(found, f, None) for f in fields))


def log_artifact(
    local_path: str, artifact_path: str | None = None, run_id: str | None = None
) -> None:
    _client().log_artifact(_run_for(run_id), local_path, artifact_path)


def log_artifacts(
    local_dir: str, artifact_path: str | None = None, run_id: str | None = None
) -> None:
    _client().log_artifacts(_run_for(run_id), local_dir, artifact_path)


def log_text(text: str, artifact_file: str, run_id: str | None = None) -> None:
    _client().log_text(_run_for(run_id), text, artifact_file)


def log_dict(dictionary: Any, artifact_file: str, run_id: str | None = None) -> None:
    _client().log_dict(_run_for(run_id), dictionary, artifact_file)


def log_figure(
    figure: Any,
    artifact_file: str,
    *,
    save_kwargs: dict[str, Any] | None = None,
    run_id: str | None = None,
) -> None:
    _client().log_figure(_run_for(run_id), figure, artifact_file, save_kwargs=save_kwargs)


def log_image(
    image: Any,
    artifact_file: str | None = None,
    key: str | None = None,
    step: int | None = None,
    timestamp: int | None = None,
    synchronous: bool | None = None,
) -> None:
    _client().log_image(_run_id(), image, artifact_file, key, step, timestamp)


def get_artifact_uri(artifact_path: str | None = None) -> str:
    """The URI of the active run's artifacts (or of one artifact in them)."""
    uri = _client().get_run(_run_id()).info.artifact_uri or ""
    return f"{uri}/{artifact_path.lstrip('/')}" if artifact_path else uri


def flush() -> None:
    """Write every buffered metric point now (end_run and exit do this too)."""
    from jupyter_mltrack.tracking.writer import flush_all

    flush_all()


flush_async_logging = flush


# -- search -------------------------------------------------------------------------------
def search_runs(
    experiment_ids: list[str] | None = None,
    filter_string: str = "",
    run_view_type: int = ViewType.ACTIVE_ONLY,
    max_results: int = 100_000,
    order_by: list[str] | None = None,
    output_format: str = "pandas",
    search_all_experiments: bool = False,
    experiment_names: list[str] | None = None,
) -> Any:
    """Runs matching the filter as a pandas DataFrame (or a list of Run with ``output_format="list"``)."""
    client = _client()
    ids = _search_experiment_ids(client, experiment_ids, experiment_names, search_all_experiments)
    if output_format == "list":
        found: list[Run] = []
        token = None
        while len(found) < max_results:
            page = client.search_runs(
                ids,
                filter_string,
                run_view_type,
                min(50_000, max_results - len(found)),
                order_by,
                token,
            )
            found.extend(page)
            token = page.token
            if not token:
                break
        return found
    if output_format != "pandas":
        raise InvalidParameterValue(
            f"output_format must be 'pandas' or 'list', got {output_format!r}."
        )
    client.flush()
    columns = client.store.search_runs_columns(
        ids, filter_string, run_view_type, max_results, order_by
    )
    from jupyter_mltrack.tracking.frames import runs_frame

    return runs_frame(columns)


def _search_experiment_ids(
    client: Client,
    experiment_ids: list[str] | None,
    experiment_names: list[str] | None,
    search_all: bool,
) -> list[str]:
    if experiment_ids and experiment_names:
        raise InvalidParameterValue("Give experiment_ids or experiment_names, not both.")
    if experiment_names:
        ids = []
        for name in experiment_names:
            experiment = client.get_experiment_by_name(name)
            if experiment is None:
                raise ResourceDoesNotExist(f"No experiment named {name!r}.")
            ids.append(experiment.experiment_id)
        return ids
    if experiment_ids:
        return [
            str(i)
            for i in (
                [experiment_ids] if isinstance(experiment_ids, (str, int)) else experiment_ids
            )
        ]
    if search_all:
        return [e.experiment_id for e in search_experiments(view_type=ViewType.ALL)]
    return [_experiment_id()]


def reset_state() -> None:
    """Forget the fluent API's process state: active runs (not ended), active experiment,
    explicit tracking URI, clients and opened stores. For tests and long-lived kernels that
    switch stores; runs still active are left as they are in the store."""
    global _active_experiment_id
    from jupyter_mltrack.store import forget_stores
    from jupyter_mltrack.tracking.writer import flush_all, forget_writers

    system_metrics.run_ending(None)
    flush_all()
    _state.stack.clear()
    _state.last = None
    _active_experiment_id = None
    _clients.clear()
    config.set_tracking_uri(None)
    config.set_notebook_tracking_uri(None)
    forget_writers()
    forget_stores()


def register_model(
    model_uri: str,
    name: str,
    await_registration_for: int = 300,
    *,
    tags: dict[str, Any] | None = None,
) -> Any:
    """Register the model at ``model_uri`` (``runs:/...``, ``models:/...`` or a path) under ``name``.

    The registered model is created when it does not exist; returns the new ModelVersion.
    """
    import os

    from jupyter_mltrack.exceptions import ResourceAlreadyExists
    from jupyter_mltrack.models.uri import resolve_model_uri
    from jupyter_mltrack.store.artifacts import path_to_uri

    client = _client()
    resolved = resolve_model_uri(model_uri, client)
    if not os.path.isfile(os.path.join(resolved.local_path, "MLmodel")):
        raise InvalidParameterValue(
            f"{model_uri} is not a logged model (no MLmodel file in it); log one with "
            "jupyter_mltrack.sklearn.log_model / pyfunc.log_model first."
        )
    try:
        client.create_registered_model(name)
    except ResourceAlreadyExists:
        pass
    return client.create_model_version(
        name,
        resolved.source or path_to_uri(resolved.local_path),
        run_id=resolved.run_id,
        tags=tags,
    )
