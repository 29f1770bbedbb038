"""``Client`` (alias ``MlflowClient``): the tracking API with explicit ids, MLflow's names."""

from __future__ import annotations

import json
import os
import posixpath
import time
from collections.abc import Sequence
from time import time as _time
from typing import Any

from jupyter_mltrack import validation
from jupyter_mltrack.entities import (
    DatasetInput,
    Experiment,
    FileInfo,
    Metric,
    MetricSeries,
    PagedList,
    Param,
    Run,
    RunInfo,
    RunStatus,
    RunTag,
    ViewType,
)
from jupyter_mltrack.exceptions import InvalidParameterValue
from jupyter_mltrack.store import get_store
from jupyter_mltrack.store.artifacts import ArtifactRepository, get_artifact_repository
from jupyter_mltrack.store.base import Store
from jupyter_mltrack.tracking import config
from jupyter_mltrack.tracking.context import PARENT_RUN_TAG, USER_TAG, git_dirty_tag
from jupyter_mltrack.tracking.logged_models_client import LoggedModelMethods
from jupyter_mltrack.tracking.registry_client import RegistryMethods
from jupyter_mltrack.tracking.writer import MetricWriter, writer_for


def _now_ms() -> int:
    return int(time.time() * 1000)


class Client(RegistryMethods, LoggedModelMethods):
    """Tracking client over one store; every read sees this process's earlier writes."""

    def __init__(self, tracking_uri: str | None = None, registry_uri: str | None = None) -> None:
        self._tracking_uri = str(tracking_uri) if tracking_uri else config.get_tracking_uri()
        self._registry_uri = registry_uri or self._tracking_uri
        self.store: Store = get_store(self._tracking_uri)
        self._writer: MetricWriter = writer_for(self.store)
        self._artifact_uris: dict[str, str] = {}

    @property
    def tracking_uri(self) -> str:
        return self._tracking_uri

    def flush(self) -> None:
        """Persist every buffered metric point of this store now."""
        self._writer.flush()

    # -- experiments --------------------------------------------------------------------------
    def create_experiment(
        self,
        name: str,
        artifact_location: str | None = None,
        tags: dict[str, Any] | None = None,
    ) -> str:
        """Create an experiment and return its id."""
        return self.store.create_experiment(name, artifact_location, tags)

    def get_experiment(self, experiment_id: str) -> Experiment:
        return self.store.get_experiment(experiment_id)

    def get_experiment_by_name(self, name: str) -> Experiment | None:
        return self.store.get_experiment_by_name(name)

    def search_experiments(
        self,
        view_type: int = ViewType.ACTIVE_ONLY,
        max_results: int = 1000,
        filter_string: str | None = None,
        order_by: Sequence[str] | None = None,
        page_token: str | None = None,
    ) -> PagedList[Experiment]:
        """Experiments matching ``filter_string`` (``name``, ``tags.``, times), one page."""
        return self.store.search_experiments(
            view_type, max_results, filter_string, order_by, page_token
        )

    def delete_experiment(self, experiment_id: str) -> None:
        """Soft-delete an experiment and its runs (``mltrack gc`` removes them for good)."""
        self.store.delete_experiment(experiment_id)

    def restore_experiment(self, experiment_id: str) -> None:
        self.store.restore_experiment(experiment_id)

    def rename_experiment(self, experiment_id: str, new_name: str) -> None:
        self.store.rename_experiment(experiment_id, new_name)

    def set_experiment_tag(self, experiment_id: str, key: str, value: Any) -> None:
        self.store.set_experiment_tag(experiment_id, key, value)

    def delete_experiment_tag(self, experiment_id: str, key: str) -> None:
        """Remove tag ``key`` from an experiment (ResourceDoesNotExist when it has none)."""
        self.store.delete_experiment_tag(experiment_id, key)

    # -- runs ---------------------------------------------------------------------------------
    def create_run(
        self,
        experiment_id: str,
        start_time: int | None = None,
        tags: dict[str, Any] | None = None,
        run_name: str | None = None,
    ) -> Run:
        """Create a RUNNING run in ``experiment_id`` (a readable name is generated if none)."""
        tag_map = {k: str(v) for k, v in (tags or {}).items()}
        user = tag_map.get(USER_TAG) or _user()
        run = self.store.create_run(
            str(experiment_id), user, start_time or _now_ms(), tag_map, run_name
        )
        self._writer.owned[run.info.run_id] = {}  # its params/tags can be written behind
        self._artifact_uris[run.info.run_id] = run.info.artifact_uri or ""
        return run

    def get_run(self, run_id: str) -> Run:
        self._writer.flush()
        return self.store.get_run(run_id)

    def get_run_tag(self, run_id: str, key: str) -> str | None:
        """One tag of a run, None when unset (ours: cheaper than ``get_run`` for one value)."""
        self._writer.flush()
        return self.store.get_run_tag(run_id, key)

    def get_parent_run(self, run_id: str) -> Run | None:
        parent = self.get_run(run_id).data.tags.get(PARENT_RUN_TAG)
        return self.get_run(parent) if parent else None

    def search_runs(
        self,
        experiment_ids: str | Sequence[str],
        filter_string: str = "",
        run_view_type: int = ViewType.ACTIVE_ONLY,
        max_results: int = 1000,
        order_by: Sequence[str] | None = None,
        page_token: str | None = None,
    ) -> PagedList[Run]:
        """Runs matching ``filter_string``, ordered and paged; ``.token`` fetches the next page."""
        self._writer.flush()
        ids = [experiment_ids] if isinstance(experiment_ids, (str, int)) else list(experiment_ids)
        return self.store.search_runs(
            [str(i) for i in ids], filter_string, run_view_type, max_results, order_by, page_token
        )

    def delete_run(self, run_id: str) -> None:
        self._writer.flush()
        self.store.delete_run(run_id)
        self._writer.owned.pop(run_id, None)

    def restore_run(self, run_id: str) -> None:
        self.store.restore_run(run_id)

    def update_run(self, run_id: str, status: str | None = None, name: str | None = None) -> None:
        self.store.update_run_info(run_id, status, None, name)

    def set_terminated(
        self, run_id: str, status: str | None = None, end_time: int | None = None
    ) -> RunInfo:
        """End a run: flush its metrics, set status (FINISHED by default) and end time."""
        final_status = RunStatus.from_string(status or RunStatus.FINISHED)
        info = self._writer.flush_with(
            lambda pending: self.store.update_run_info(
                run_id,
                final_status,
                end_time or _now_ms(),
                None,
                tags=git_dirty_tag(),
                pending=pending,
            )
        )
        self._writer.owned.pop(run_id, None)
        return info

    # -- logging ------------------------------------------------------------------------------
    def log_metric(
        self,
        run_id: str,
        key: str,
        value: Any,
        timestamp: int | None = None,
        step: int | None = None,
        synchronous: bool | None = None,
    ) -> None:
        """Log one point. Buffered unless ``synchronous=True``; reads always see it."""
        # The hot path (millions of calls): cached checks first, the full ones only on a miss.
        store = self.store
        run_key = store._writable.get(run_id) or store.writable_run_key(run_id)
        if key not in validation.valid_keys:
            validation.validate_key(key, "Metric")
        if type(value) is not float:
            value = validation.metric_value(key, value)
        ts = (
            int(_time() * 1000)
            if timestamp is None
            else validation.int_value(timestamp, "Metric timestamp")
        )
        if step is None:
            step = 0
        elif type(step) is not int:
            step = validation.int_value(step, "Metric step")
        if value != value:  # NaN: stored as 0.0 flagged is_nan (SQLite has no NaN)
            row = (run_key, key, step, ts, 0.0, True)
        else:
            row = (run_key, key, step, ts, value, False)
        if synchronous:
            self._writer.flush()
            store.write_metric_rows([row])
        else:
            self._writer.add(row)

    def log_param(self, run_id: str, key: str, value: Any, synchronous: bool | None = None) -> Any:
        """Log a param (stored as ``str(value)``); logging a different value again is an error."""
        self.log_batch(run_id, params=[Param(key, value)], synchronous=synchronous)
        return value

    def set_tag(self, run_id: str, key: str, value: Any, synchronous: bool | None = None) -> None:
        self.log_batch(run_id, tags=[RunTag(key, value)], synchronous=synchronous)

    def delete_tag(self, run_id: str, key: str) -> None:
        self._writer.flush()
        self.store.delete_tag(run_id, key)

    def log_batch(
        self,
        run_id: str,
        metrics: Sequence[Metric] = (),
        params: Sequence[Param] = (),
        tags: Sequence[RunTag] = (),
        synchronous: bool | None = None,
    ) -> None:
        """Log metrics, params and tags together (all or nothing).

        For runs this process created, the writes are queued and written behind (reads in this
        process still see them; ``synchronous=True`` writes now); a param already logged with
        another value is refused at once either way.
        """
        owned = self._writer.owned.get(run_id)
        if owned is None or synchronous:
            self._writer.flush()
            self.store.log_batch(run_id, list(metrics), list(params), list(tags))
            if owned is not None:
                owned.update((p.key, validation.param_value(p.key, p.value)) for p in params)
            return
        run_key = self.store.writable_run_key(run_id)
        new_params = validation.new_params(run_id, params, owned)
        tag_rows = [validation.tag_row(run_key, t) for t in tags]
        metric_rows = [validation.metric_row(run_key, m) for m in metrics]
        owned.update(new_params)
        if new_params:
            self._writer.add_params([(run_key, run_id, k, v) for k, v in new_params.items()])
        if tag_rows:
            self._writer.add_tags(tag_rows)
        for row in metric_rows:
            self._writer.add(row)

    def log_metric_points(self, run_id: str, points: Sequence[tuple[str, Any, int, int]]) -> None:
        """Log many points given as ``(key, value, timestamp, step)`` tuples (ours: the form a
        training loop collects, without a ``Metric`` per point); all or nothing. For runs this
        process created they are written behind, by the writer thread woken at once: the
        database work overlaps the training instead of waiting for ``end_run``."""
        if self._writer.owned.get(run_id) is None:
            self.log_batch(run_id, metrics=[Metric(k, v, t, s) for k, v, t, s in points])
            return
        store = self.store
        run_key = store._writable.get(run_id) or store.writable_run_key(run_id)
        valid_keys = validation.valid_keys
        rows = []
        for key, value, timestamp, step in points:
            if key not in valid_keys:
                validation.validate_key(key, "Metric")
            if type(value) is not float:
                value = validation.metric_value(key, value)
            if type(step) is not int:
                step = validation.int_value(step, "Metric step")
            if type(timestamp) is not int:
                timestamp = validation.int_value(timestamp, "Metric timestamp")
            if value != value:  # NaN: stored as 0.0 flagged is_nan
                rows.append((run_key, key, step, timestamp, 0.0, True))
            else:
                rows.append((run_key, key, step, timestamp, value, False))
        self._writer.add_many(rows, write_now=False)

    def log_inputs(
        self,
        run_id: str,
        datasets: Sequence[DatasetInput] | None = None,
        models: Sequence[Any] | None = None,
    ) -> None:
        """Record datasets (``DatasetInput`` objects) as inputs of a run.

        A dataset is stored once per experiment and (name, digest); logging it to the same
        run again merges the input's tags. ``models`` (MLflow 3's model inputs) are accepted
        for compatibility; the link between a model and its run lives on the logged model.
        """
        self.store.log_inputs(run_id, validation.dataset_inputs(datasets))

    def get_metric_history(self, run_id: str, key: str) -> list[Metric]:
        """Every point of metric ``key``, ordered by step then time."""
        self._writer.flush()
        return self.store.get_metric_history(run_id, key)

    def get_metric_series(
        self,
        run_ids: Sequence[str],
        key: str,
        max_points: int = 2000,
        x_axis: str = "step",
    ) -> dict[str, MetricSeries]:
        """Histories of ``key`` for several runs, ready to plot: each cut in the store to about
        ``max_points`` points by min/max buckets (so a 100,000-step curve stays quick).

        ``x_axis`` is ``"step"`` or ``"timestamp"`` (milliseconds). Runs that never logged
        ``key`` are left out of the result.
        """
        if max_points < 16:
            raise InvalidParameterValue(f"max_points must be at least 16, got {max_points}.")
        self._writer.flush()
        return self.store.get_metric_series(list(run_ids), key, max_points, x_axis)

    # -- artifacts ----------------------------------------------------------------------------
    def artifact_repository(self, run_id: str, for_write: bool = False) -> ArtifactRepository:
        """Where the run's artifacts live (ours); ``for_write`` checks the run accepts them."""
        return self._repo(run_id, for_write)

    def _repo(self, run_id: str, for_write: bool = False) -> ArtifactRepository:
        if for_write:
            self.store.writable_run_key(run_id)
        uri = self._artifact_uris.get(run_id)
        if uri is None:  # a run's artifact location never changes: look it up once
            uri = self._artifact_uris[run_id] = self.store.get_run(run_id).info.artifact_uri or ""
        return get_artifact_repository(uri, self._tracking_uri)

    def log_artifact(self, run_id: str, local_path: str, artifact_path: str | None = None) -> None:
        """Copy a local file (or folder) into the run's artifacts."""
        local_path = os.fspath(local_path)
        repo = self._repo(run_id, for_write=True)
        if os.path.isdir(local_path):
            name = os.path.basename(os.path.normpath(local_path))
            target = posixpath.join(artifact_path, name) if artifact_path else name
            repo.log_artifacts(local_path, target)
        else:
            repo.log_artifact(local_path, artifact_path)

    def log_artifacts(self, run_id: str, local_dir: str, artifact_path: str | None = None) -> None:
        """Copy a local folder's contents into the run's artifacts."""
        self._repo(run_id, for_write=True).log_artifacts(os.fspath(local_dir), artifact_path)

    def log_text(self, run_id: str, text: str, artifact_file: str) -> None:
        """Write ``text`` as the artifact ``artifact_file``."""
        self._repo(run_id, for_write=True).write_bytes(str(text).encode("utf-8"), artifact_file)

    def log_bytes(self, run_id: str, data: bytes, artifact_file: str) -> None:
        """Write raw bytes as the artifact ``artifact_file`` (our addition; MLflow has none)."""
        self._repo(run_id, for_write=True).write_bytes(data, artifact_file)

    def log_dict(self, run_id: str, dictionary: Any, artifact_file: str) -> None:
        """Write a dict as JSON, or YAML when ``artifact_file`` ends in .yaml/.yml."""
        if artifact_file.endswith((".yaml", ".yml")):
            import yaml

            data = yaml.safe_dump(dictionary, default_flow_style=False, sort_keys=False)
        else:
            data = json.dumps(dictionary, indent=2, default=str)
        self._repo(run_id, for_write=True).write_bytes(data.encode("utf-8"), artifact_file)

    def log_figure(
        self,
        run_id: str,
        figure: Any,
        artifact_file: str,
        *,
        save_kwargs: dict[str, Any] | None = None,
    ) -> None:
        """Save a matplotlib figure (or a plotly figure as .html) as an artifact."""
        repo = self._repo(run_id, for_write=True)
        kwargs = save_kwargs or {}
        if hasattr(figure, "savefig"):
            repo.write_with(artifact_file, lambda path: figure.savefig(path, **kwargs))
        elif hasattr(figure, "write_html") and artifact_file.endswith(".html"):
            repo.write_with(artifact_file, lambda path: figure.write_html(path, **kwargs))
        elif hasattr(figure, "write_image"):
            repo.write_with(artifact_file, lambda path: figure.write_image(path, **kwargs))
        else:
            raise InvalidParameterValue(
                f"log_figure takes a matplotlib or plotly figure, got {type(figure).__name__}."
            )

    def log_image(
        self,
        run_id: str,
        image: Any,
        artifact_file: str | None = None,
        key: str | None = None,
        step: int | None = None,
        timestamp: int | None = None,
        synchronous: bool | None = None,
    ) -> None:
        """Save a PIL image or a numpy array (HxW, HxWx3, HxWx4; uint8 or floats in [0, 1])."""
        if (artifact_file is None) == (key is None):
            raise InvalidParameterValue("log_image needs exactly one of artifact_file or key.")
        if key is not None:
            validation.validate_key(key, "Image key")
            artifact_file = f"images/{key}/step_{step or 0}_{timestamp or _now_ms()}.png"
        pil_image = _to_pil(image)
        self._repo(run_id, for_write=True).write_with(
            artifact_file or "image.png", lambda path: pil_image.save(path)
        )

    def list_artifacts(self, run_id: str, path: str | None = None) -> list[FileInfo]:
        """Direct children of ``path`` in the run's artifacts."""
        return self._repo(run_id).list_artifacts(path)

    def download_artifacts(self, run_id: str, path: str, dst_path: str | None = None) -> str:
        """Copy an artifact (file or folder) to a local folder and return its local path."""
        return self._repo(run_id).download_artifacts(path, dst_path)

    def read_artifact(self, run_id: str, path: str, max_bytes: int | None = None) -> bytes:
        """The bytes of one artifact file, or its first ``max_bytes`` (previews), without a copy."""
        if max_bytes is not None and max_bytes < 0:
            raise InvalidParameterValue(f"max_bytes must be >= 0, got {max_bytes}.")
        return self._repo(run_id).read_bytes(path, max_bytes)


MlflowClient = Client


def _user() -> str:
    from jupyter_mltrack.identity import current_user

    return current_user()


def _to_pil(image: Any) -> Any:
    try:
        from PIL import Image
    except ImportError:
        raise InvalidParameterValue(
            "log_image needs Pillow: pip install 'jupyter-mltrack[notebook]' (or pillow)."
        ) from None
    if isinstance(image, Image.Image):
        return image
    import numpy as np

    array = np.asarray(image)
    if array.ndim not in (2, 3) or (array.ndim == 3 and array.shape[2] not in (1, 3, 4)):
        raise InvalidParameterValue(
            f"log_image takes an HxW, HxWx1, HxWx3 or HxWx4 array; got shape {array.shape}."
        )
    if array.dtype.kind == "f":
        if array.size and (np.nanmin(array) < 0 or np.nanmax(array) > 1):
            raise InvalidParameterValue("Float images must have values in [0, 1].")
        array = (array * 255).round().astype(np.uint8)
    elif array.dtype != np.uint8:
        if array.size and (array.min() < 0 or array.max() > 255):
            raise InvalidParameterValue("Integer images must have values in [0, 255].")
        array = array.astype(np.uint8)
    if array.ndim == 3 and array.shape[2] == 1:
        array = array[:, :, 0]
    return Image.fromarray(array)
