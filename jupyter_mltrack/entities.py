"""Tracking entities with MLflow's names, constructor signatures and attributes."""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

T = TypeVar("T")


class LifecycleStage:
    """Whether an experiment or run is active or soft-deleted."""

    ACTIVE = "active"
    DELETED = "deleted"


class ViewType:
    """Which runs/experiments a search returns: active, deleted or all."""

    ACTIVE_ONLY = 1
    DELETED_ONLY = 2
    ALL = 3

    _BY_NAME = {"ACTIVE_ONLY": 1, "DELETED_ONLY": 2, "ALL": 3}

    @classmethod
    def from_string(cls, view_str: str) -> int:
        return cls._BY_NAME[view_str.upper()]

    @classmethod
    def to_string(cls, view_type: int) -> str:
        return {v: k for k, v in cls._BY_NAME.items()}[view_type]

    @classmethod
    def stages(cls, view_type: int) -> tuple[str, ...]:
        """The lifecycle stages a view type selects."""
        if view_type == cls.ACTIVE_ONLY:
            return (LifecycleStage.ACTIVE,)
        if view_type == cls.DELETED_ONLY:
            return (LifecycleStage.DELETED,)
        return (LifecycleStage.ACTIVE, LifecycleStage.DELETED)


class RunStatus:
    """Run states, stored as MLflow's strings."""

    RUNNING = "RUNNING"
    SCHEDULED = "SCHEDULED"
    FINISHED = "FINISHED"
    FAILED = "FAILED"
    KILLED = "KILLED"

    ALL = (RUNNING, SCHEDULED, FINISHED, FAILED, KILLED)
    TERMINATED = (FINISHED, FAILED, KILLED)

    @staticmethod
    def to_string(status: str | int) -> str:
        if isinstance(status, int):
            return RunStatus.ALL[status - 1]
        return status

    @staticmethod
    def from_string(status: str) -> str:
        if status not in RunStatus.ALL:
            from jupyter_mltrack.exceptions import InvalidParameterValue

            raise InvalidParameterValue(
                f"Invalid run status {status!r}; use one of {', '.join(RunStatus.ALL)}."
            )
        return status

    @staticmethod
    def is_terminated(status: str) -> bool:
        return status in RunStatus.TERMINATED


class _Entity:
    """Shared repr/eq for the small value classes below."""

    __slots__ = ()

    def _fields(self) -> tuple[str, ...]:
        # every class's slots: a subclass such as RunTag adds none but keeps Param's fields
        return tuple(f for cls in type(self).__mro__ for f in getattr(cls, "__slots__", ()))

    def __repr__(self) -> str:
        inner = ", ".join(f"{k}={getattr(self, k)!r}" for k in self._fields())
        return f"<{type(self).__name__}: {inner}>"

    def __eq__(self, other: object) -> bool:
        if type(other) is not type(self):
            return NotImplemented
        return all(_same(getattr(self, k), getattr(other, k)) for k in self._fields())

    def __hash__(self) -> int:
        return hash(tuple(repr(getattr(self, k)) for k in self._fields()))

    def __iter__(self) -> Iterator[tuple[str, Any]]:
        for k in self._fields():
            yield k, getattr(self, k)

    def to_dictionary(self) -> dict[str, Any]:
        return dict(self)


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
        return True
    return a == b


class Metric(_Entity):
    """One metric point: key, value, timestamp (ms since epoch), step."""

    __slots__ = ("key", "step", "timestamp", "value")

    def __init__(self, key: str, value: float, timestamp: int, step: int, **_: Any) -> None:
        self.key = key
        self.value = value
        self.timestamp = timestamp
        self.step = step


class Param(_Entity):
    """A run parameter; values are strings, as in MLflow."""

    __slots__ = ("key", "value")

    def __init__(self, key: str, value: Any) -> None:
        self.key = key
        self.value = value


class RunTag(Param):
    """A tag on a run."""

    __slots__ = ()


class ExperimentTag(Param):
    """A tag on an experiment."""

    __slots__ = ()


class FileInfo(_Entity):
    """An artifact listing entry: path relative to the run's artifact root."""

    __slots__ = ("file_size", "is_dir", "path")

    def __init__(self, path: str, is_dir: bool, file_size: int | None) -> None:
        self.path = path
        self.is_dir = is_dir
        self.file_size = file_size


@dataclass(eq=True)
class Experiment:
    """An experiment: a named group of runs."""

    experiment_id: str
    name: str
    artifact_location: str
    lifecycle_stage: str = LifecycleStage.ACTIVE
    tags: dict[str, str] = field(default_factory=dict)
    creation_time: int | None = None
    last_update_time: int | None = None

    def __post_init__(self) -> None:
        if isinstance(self.tags, list):  # MLflow accepts a list of ExperimentTag
            self.tags = {t.key: t.value for t in self.tags}


class RunInfo(_Entity):
    """Metadata of a run: ids, status, times, artifact location."""

    __slots__ = (
        "artifact_uri",
        "end_time",
        "experiment_id",
        "lifecycle_stage",
        "run_id",
        "run_name",
        "start_time",
        "status",
        "user_id",
    )

    def __init__(
        self,
        run_uuid: str | None = None,
        experiment_id: str = "0",
        user_id: str = "",
        status: str = RunStatus.RUNNING,
        start_time: int | None = None,
        end_time: int | None = None,
        lifecycle_stage: str = LifecycleStage.ACTIVE,
        artifact_uri: str | None = None,
        run_id: str | None = None,
        run_name: str | None = None,
    ) -> None:
        self.run_id = run_id or run_uuid or ""
        self.experiment_id = str(experiment_id)
        self.user_id = user_id
        self.status = status
        self.start_time = start_time
        self.end_time = end_time
        self.lifecycle_stage = lifecycle_stage
        self.artifact_uri = artifact_uri
        self.run_name = run_name

    @property
    def run_uuid(self) -> str:
        return self.run_id


class RunData:
    """A run's params, latest metric values and tags, as dicts."""

    def __init__(
        self,
        metrics: Iterable[Metric] | None = None,
        params: Iterable[Param] | None = None,
        tags: Iterable[RunTag] | None = None,
    ) -> None:
        self._metric_objs = list(metrics or [])
        self.metrics: dict[str, float] = {m.key: m.value for m in self._metric_objs}
        self.params: dict[str, str] = {p.key: p.value for p in (params or [])}
        self.tags: dict[str, str] = {t.key: t.value for t in (tags or [])}

    @classmethod
    def from_dicts(
        cls, metrics: dict[str, float], params: dict[str, str], tags: dict[str, str]
    ) -> RunData:
        data = cls()
        data.metrics, data.params, data.tags = metrics, params, tags
        return data

    def __repr__(self) -> str:
        return f"<RunData: metrics={self.metrics}, params={self.params}, tags={self.tags}>"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, RunData):
            return NotImplemented
        return (self.metrics, self.params, self.tags) == (other.metrics, other.params, other.tags)

    def to_dictionary(self) -> dict[str, Any]:
        return {"metrics": self.metrics, "params": self.params, "tags": self.tags}


class Dataset(_Entity):
    """A logged dataset's metadata: MLflow's ``run.inputs.dataset_inputs[i].dataset``.

    ``source``, ``schema`` and ``profile`` are JSON strings, as MLflow stores them; ``digest``
    identifies the content among datasets of the same name.
    """

    __slots__ = ("digest", "name", "profile", "schema", "source", "source_type")

    def __init__(
        self,
        name: str,
        digest: str,
        source_type: str,
        source: str,
        schema: str | None = None,
        profile: str | None = None,
    ) -> None:
        self.name = name
        self.digest = digest
        self.source_type = source_type
        self.source = source
        self.schema = schema
        self.profile = profile


class InputTag(Param):
    """A tag on a dataset input, e.g. ``mlflow.data.context`` = ``training``."""

    __slots__ = ()


class DatasetInput(_Entity):
    """A dataset used by a run, with the input's tags (a list of ``InputTag``)."""

    __slots__ = ("dataset", "tags")

    def __init__(self, dataset: Dataset, tags: Iterable[InputTag] | None = None) -> None:
        self.dataset = dataset
        self.tags = list(tags or [])


class RunInputs:
    """A run's inputs (MLflow's ``run.inputs``): the datasets it was given."""

    def __init__(self, dataset_inputs: Iterable[DatasetInput] | None = None) -> None:
        self.dataset_inputs: list[DatasetInput] = list(dataset_inputs or [])

    def __repr__(self) -> str:
        return f"<RunInputs: dataset_inputs={self.dataset_inputs!r}>"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, RunInputs):
            return NotImplemented
        return self.dataset_inputs == other.dataset_inputs


class Run:
    """A run: ``info`` (RunInfo) and ``data`` (RunData)."""

    def __init__(
        self, run_info: RunInfo, run_data: RunData | None, run_inputs: RunInputs | None = None
    ):
        self._info = run_info
        self._data = run_data or RunData()
        self._inputs = run_inputs or RunInputs()

    @property
    def info(self) -> RunInfo:
        return self._info

    @property
    def data(self) -> RunData:
        return self._data

    @property
    def inputs(self) -> RunInputs:
        return self._inputs

    def __repr__(self) -> str:
        return f"<Run: info={self.info!r}, data={self.data!r}>"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Run):
            return NotImplemented
        return self.info == other.info and self.data == other.data

    def to_dictionary(self) -> dict[str, Any]:
        return {"info": self.info.to_dictionary(), "data": self.data.to_dictionary()}


class PagedList(list, Generic[T]):
    """A list of results with ``token`` for the next page (None on the last page)."""

    def __init__(self, items: Iterable[T], token: str | None) -> None:
        super().__init__(items)
        self.token = token


# -- model registry ---------------------------------------------------------------------------
class Stage:
    """Model version stages (first-class here, as in MLflow 2)."""

    NONE = "None"
    STAGING = "Staging"
    PRODUCTION = "Production"
    ARCHIVED = "Archived"

    ALL = (NONE, STAGING, PRODUCTION, ARCHIVED)

    @classmethod
    def canonical(cls, stage: str | None) -> str:
        """``"production"`` -> ``"Production"``; an unknown stage is a clear error."""
        text = "None" if stage is None else str(stage)
        for known in cls.ALL:
            if text.lower() == known.lower():
                return known
        from jupyter_mltrack.exceptions import InvalidParameterValue

        raise InvalidParameterValue(
            f"Invalid stage {stage!r}; valid stages are: {', '.join(cls.ALL)} (case-insensitive)."
        )


@dataclass
class ModelVersion:
    """One version of a registered model."""

    name: str
    version: int
    creation_timestamp: int
    last_updated_timestamp: int | None = None
    description: str | None = None
    user_id: str | None = None
    current_stage: str = Stage.NONE
    source: str | None = None
    run_id: str | None = None
    status: str = "READY"
    status_message: str | None = None
    tags: dict[str, str] = field(default_factory=dict)
    run_link: str | None = None
    aliases: list[str] = field(default_factory=list)


@dataclass
class RegisteredModel:
    """A registered model: its versions (latest per stage), tags and aliases."""

    name: str
    creation_timestamp: int | None = None
    last_updated_timestamp: int | None = None
    description: str | None = None
    latest_versions: list[ModelVersion] = field(default_factory=list)
    tags: dict[str, str] = field(default_factory=dict)
    aliases: dict[str, int] = field(default_factory=dict)


@dataclass
class AuditEntry:
    """One registry decision: a stage transition, alias move, promotion or rollback."""

    name: str
    version: int | None
    action: str
    target: str | None
    from_value: str | None
    to_value: str | None
    user_id: str | None
    timestamp: int
    comment: str | None = None
    details: dict[str, Any] | None = None


@dataclass
class MetricSeries:
    """One run's history of one metric, possibly downsampled for plotting.

    ``x`` holds steps or millisecond timestamps (see ``x_axis``); ``values`` the matching
    values. When ``downsampled`` is true each step bucket contributed its minimum and maximum
    (at the bucket's first and last x), so spikes survive; ``total_points`` is the number of
    points returned whole, or None for a downsampled series (counting would cost a scan).
    """

    run_id: str
    key: str
    x_axis: str
    x: list[float]
    values: list[float]
    total_points: int | None
    downsampled: bool = False


# -- logged models (MLflow 3) -----------------------------------------------------------------
class LoggedModelStatus:
    """A logged model's state: PENDING while its files upload, then READY or FAILED."""

    UNSPECIFIED = "UNSPECIFIED"
    PENDING = "PENDING"
    READY = "READY"
    FAILED = "FAILED"
    ALL = (PENDING, READY, FAILED)
    _PROTO = {"LOGGED_MODEL_PENDING": PENDING, "LOGGED_MODEL_READY": READY}
    _PROTO["LOGGED_MODEL_UPLOAD_FAILED"] = FAILED

    @classmethod
    def from_string(cls, status: object) -> str:
        """``READY``, ``ready``, ``LOGGED_MODEL_READY`` or an enum with a name -> ``READY``."""
        from jupyter_mltrack.exceptions import InvalidParameterValue

        text = str(getattr(status, "name", status) or "").upper()
        text = cls._PROTO.get(text, text)
        if text not in cls.ALL:
            raise InvalidParameterValue(
                f"Invalid logged model status {status!r}; use one of {', '.join(cls.ALL)}."
            )
        return text

    @classmethod
    def to_proto_name(cls, status: str) -> str:
        """MLflow's wire name: ``READY`` -> ``LOGGED_MODEL_READY``."""
        for proto, name in cls._PROTO.items():
            if name == status:
                return proto
        return "LOGGED_MODEL_STATUS_UNSPECIFIED"


class LoggedModelTag(Param):
    """A tag of a logged model."""


class LoggedModelParameter(Param):
    """A parameter of a logged model."""


class LoggedModelMetric(Metric):
    """A metric logged against a logged model: also the run and the dataset it came from."""

    __slots__ = ("dataset_digest", "dataset_name", "model_id", "run_id")

    def __init__(
        self,
        key: str,
        value: float,
        timestamp: int,
        step: int,
        model_id: str | None = None,
        run_id: str | None = None,
        dataset_name: str | None = None,
        dataset_digest: str | None = None,
        **_: Any,
    ) -> None:
        super().__init__(key, value, timestamp, step)
        self.model_id = model_id
        self.run_id = run_id
        self.dataset_name = dataset_name
        self.dataset_digest = dataset_digest

    def _fields(self) -> tuple[str, ...]:
        return Metric.__slots__ + self.__slots__


@dataclass
class LoggedModelOutput:
    """A logged model a run produced (MLflow's ``run.outputs.model_outputs`` item)."""

    model_id: str
    step: int = 0


@dataclass
class LoggedModel:
    """A model logged by MLflow 3's ``log_model``: a first-class entity with its own id."""

    experiment_id: str
    model_id: str
    name: str
    artifact_location: str
    creation_timestamp: int
    last_updated_timestamp: int
    model_type: str | None = None
    source_run_id: str | None = None
    status: str = LoggedModelStatus.PENDING
    status_message: str | None = None
    tags: dict[str, str] = field(default_factory=dict)
    params: dict[str, str] = field(default_factory=dict)
    metrics: list[Metric] = field(default_factory=list)
    lifecycle_stage: str = "active"

    @property
    def model_uri(self) -> str:
        return f"models:/{self.model_id}"
