"""The Store contract every backend implements (embedded SQL today, REST client later)."""

from __future__ import annotations

import abc
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from jupyter_mltrack.entities import (
    DatasetInput,
    Experiment,
    Metric,
    MetricSeries,
    PagedList,
    Param,
    Run,
    RunInfo,
    RunTag,
)


@dataclass
class PendingWrites:
    """Buffered writes persisted together in one transaction.

    metrics: ``(run_key, key, step, timestamp, value, is_nan)`` (the history table's column
    order; NaN as 0.0 with is_nan); params: ``(run_key, run_id, key,
    value)``; tags: ``(run_key, key, value)``. Values are already validated.
    """

    metrics: list[tuple[int, str, int, int, float, bool]] = field(default_factory=list)
    params: list[tuple[int, str, str, str]] = field(default_factory=list)
    tags: list[tuple[int, str, str]] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.metrics or self.params or self.tags)


class Store(abc.ABC):
    """Experiments, runs and their data. Ids are MLflow's strings; timestamps are ms."""

    artifact_root: str

    # experiments
    @abc.abstractmethod
    def create_experiment(
        self, name: str, artifact_location: str | None = None, tags: dict[str, str] | None = None
    ) -> str: ...

    @abc.abstractmethod
    def get_experiment(self, experiment_id: str) -> Experiment: ...

    @abc.abstractmethod
    def get_experiment_by_name(self, name: str) -> Experiment | None: ...

    @abc.abstractmethod
    def search_experiments(
        self,
        view_type: int,
        max_results: int,
        filter_string: str | None,
        order_by: Sequence[str] | None,
        page_token: str | None,
    ) -> PagedList[Experiment]: ...

    @abc.abstractmethod
    def delete_experiment(self, experiment_id: str) -> None: ...

    @abc.abstractmethod
    def restore_experiment(self, experiment_id: str) -> None: ...

    @abc.abstractmethod
    def rename_experiment(self, experiment_id: str, new_name: str) -> None: ...

    @abc.abstractmethod
    def set_experiment_tag(self, experiment_id: str, key: str, value: str) -> None: ...

    @abc.abstractmethod
    def delete_experiment_tag(self, experiment_id: str, key: str) -> None: ...

    # runs
    @abc.abstractmethod
    def create_run(
        self,
        experiment_id: str,
        user_id: str,
        start_time: int,
        tags: dict[str, str],
        run_name: str | None,
    ) -> Run: ...

    @abc.abstractmethod
    def get_run(self, run_id: str) -> Run: ...

    def get_run_tag(self, run_id: str, key: str) -> str | None:
        """One tag's value (None when the run has no such tag); stores answer it cheaper."""
        return self.get_run(run_id).data.tags.get(key)

    @abc.abstractmethod
    def update_run_info(
        self,
        run_id: str,
        run_status: str | None,
        end_time: int | None,
        run_name: str | None,
        tags: dict[str, str] | None = None,
        pending: PendingWrites | None = None,
    ) -> RunInfo:
        """Change a run's status/end/name; ``tags`` and ``pending`` go in the same transaction."""

    @abc.abstractmethod
    def delete_run(self, run_id: str) -> None: ...

    @abc.abstractmethod
    def restore_run(self, run_id: str) -> None: ...

    @abc.abstractmethod
    def writable_run_key(self, run_id: str) -> int:
        """The internal key metric rows are written under; raises if the run is not writable."""

    @abc.abstractmethod
    def log_batch(
        self,
        run_id: str,
        metrics: Sequence[Metric],
        params: Sequence[Param],
        tags: Sequence[RunTag],
    ) -> None: ...

    @abc.abstractmethod
    def write_pending(self, pending: PendingWrites) -> None:
        """Persist buffered writes in one transaction; a param conflict found there is raised
        after everything else was committed."""

    @abc.abstractmethod
    def log_inputs(self, run_id: str, datasets: Sequence[DatasetInput]) -> None:
        """Record datasets as inputs of a run (``run.inputs.dataset_inputs``)."""

    @abc.abstractmethod
    def delete_tag(self, run_id: str, key: str) -> None: ...

    @abc.abstractmethod
    def get_metric_history(self, run_id: str, key: str) -> list[Metric]: ...

    def get_metric_series(
        self, run_ids: Sequence[str], key: str, max_points: int, x_axis: str = "step"
    ) -> dict[str, MetricSeries]:
        """Histories of ``key`` for several runs, each cut to about ``max_points`` points.

        This fallback reads every point; SQL stores downsample in the database instead.
        """
        from jupyter_mltrack.store.downsample import min_max_buckets

        out = {}
        for run_id in run_ids:
            history = [m for m in self.get_metric_history(run_id, key) if m.value == m.value]
            if not history:
                continue
            xs = [m.step if x_axis == "step" else m.timestamp for m in history]
            out[run_id] = min_max_buckets(
                run_id, key, x_axis, xs, [m.value for m in history], max_points
            )
        return out

    @abc.abstractmethod
    def search_runs(
        self,
        experiment_ids: Sequence[str],
        filter_string: str | None,
        run_view_type: int,
        max_results: int,
        order_by: Sequence[str] | None,
        page_token: str | None,
    ) -> PagedList[Run]: ...

    @abc.abstractmethod
    def search_runs_columns(
        self,
        experiment_ids: Sequence[str],
        filter_string: str | None,
        run_view_type: int,
        max_results: int,
        order_by: Sequence[str] | None,
    ) -> dict[str, Any]:
        """The same search as columns (for DataFrames): ``info`` rows and per-kind key maps."""

    @abc.abstractmethod
    def gc(self, older_than_ms: int | None = None) -> tuple[list[str], list[str]]:
        """Permanently remove deleted runs and experiments; return (run ids, experiment ids)."""
