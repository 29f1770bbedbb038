"""The copier: experiments, runs and registered models from a source Client to a destination.

What is kept: experiment names and tags (an experiment of the same name in the destination is
reused); for each active run its name, start and end times, status, params, every point of
every metric history (value, step, timestamp), every tag (system tags included;
``mlflow.parentRunId`` points at the copied parent, so parents are copied first), every dataset
input (name, digest, source, schema, profile and the input's tags) and every artifact file; registered models with description and tags, their versions (description,
tags, stage, and a source moved to the copied run's artifacts) and aliases.

What the protocol cannot keep: ids and version numbers are the destination's (a source with
deleted versions 2 and 3 gets versions 1, 2 ...; aliases follow the mapping), creation times of
experiments and versions, the user of a model version, MLflow 3 logged models (``models:/m-...``
sources are copied verbatim with a warning).
"""

from __future__ import annotations

import os
import posixpath
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import unquote, urlparse

from jupyter_mltrack.entities import (
    Experiment,
    FileInfo,
    Metric,
    ModelVersion,
    Param,
    RegisteredModel,
    Run,
    RunStatus,
    Stage,
    ViewType,
)
from jupyter_mltrack.exceptions import MlflowException, ResourceDoesNotExist
from jupyter_mltrack.store import DB_FILE_NAME, canonical_uri
from jupyter_mltrack.store.artifacts import (
    ArtifactRepository,
    get_artifact_repository,
    uri_to_path,
)
from jupyter_mltrack.tracking.client import Client
from jupyter_mltrack.transfer import TransferError
from jupyter_mltrack.transfer.state import TransferState

PARENT_TAG = "mlflow.parentRunId"
POINTS_PER_BATCH = 5000  # per log_batch call; REST stores split further to the server's limits
PAGE = 1000
_SCHEMES = ("", "file", "sqlite", "postgresql", "http", "https")


# -- opening both ends ------------------------------------------------------------------------
def _scheme(uri: str) -> str:
    scheme = urlparse(uri).scheme
    return "" if len(scheme) <= 1 else scheme.split("+")[0]


def _local_path(uri: str) -> Path | None:
    """The file or folder a local store URI names (None for servers and PostgreSQL)."""
    scheme = _scheme(uri)
    if scheme == "":
        return Path(uri).expanduser()
    if scheme == "file":
        return Path(unquote(urlparse(uri).path))
    if scheme == "sqlite":
        return Path(uri.split(":///", 1)[-1]).expanduser()
    return None


def _same_endpoint(a: str, b: str) -> bool:
    return canonical_uri(a).rstrip("/") == canonical_uri(b).rstrip("/")


def _check_uri(uri: str, role: str) -> None:
    if _scheme(uri) not in _SCHEMES:
        raise TransferError(
            f"Unknown {role} URI scheme {urlparse(uri).scheme!r} in {uri!r}. Use a store folder, "
            "sqlite:///file.db, postgresql://..., or an http(s):// tracking server."
        )


def open_store(uri: str, role: str) -> Client:
    """A client for ``uri``, after one read that proves the store or server answers."""
    try:
        client = Client(uri)
        client.search_experiments(max_results=1)
    except MlflowException as err:
        raise TransferError(f"Cannot open the {role} {uri}: {err.message}") from None
    except Exception as err:  # a database driver's own errors (PostgreSQL down, bad file)
        raise TransferError(f"Cannot open the {role} {uri}: {err}") from None
    return client


def open_source(source: str, destination: str) -> Client:
    """Check both URIs and open the source (which must exist); nothing is created.

    The destination is opened later with ``open_store``, once the source was read: a bad
    source or experiment filter must not leave a new, empty destination store behind.
    """
    _check_uri(source, "source")
    _check_uri(destination, "destination")
    if _same_endpoint(source, destination):
        raise TransferError(f"Source and destination are the same store ({source}).")
    path = _local_path(source)
    if path is not None and not (path.is_file() or (path / DB_FILE_NAME).is_file()):
        raise TransferError(f"No jupyter_mltrack store at {path} (the source must exist).")
    return open_store(source, "source")


def destination_exists(destination: str) -> bool:
    """False for a local destination store that does not exist yet (a dry run leaves it so)."""
    path = _local_path(destination)
    return path is None or path.is_file() or (path / DB_FILE_NAME).is_file()


# -- what to copy -----------------------------------------------------------------------------
@dataclass
class Plan:
    """What the source holds for this transfer, read before anything is written."""

    experiments: list[Experiment]
    runs: list[Run]  # parents before their children
    models: list[RegisteredModel]


class Reporter:
    """Told how a transfer goes; the command line draws a progress bar from it."""

    def start(self, runs: int) -> None:
        """The transfer is about to copy ``runs`` runs (those already done included)."""

    def run_step(self, run: Run, step: str) -> None:
        """``step`` of a source run: ``created`` (empty destination run exists), ``data``
        (params, tags and metrics copied), ``done`` (artifacts and status too), ``skipped``."""

    def points(self, count: int) -> None:
        """``count`` more metric points were written."""

    def warn(self, text: str) -> None:
        """Something was copied differently or not at all."""


@dataclass
class Summary:
    """What one transfer did."""

    experiments_created: int = 0
    experiments_reused: int = 0
    runs_copied: int = 0
    runs_skipped: int = 0
    runs_redone: int = 0
    points: int = 0
    inputs: int = 0
    artifact_files: int = 0
    models_copied: int = 0
    versions_copied: int = 0
    warnings: list[str] = field(default_factory=list)


def _all_pages(fetch: object) -> Iterator[object]:
    token: str | None = None
    while True:
        page = fetch(token)  # type: ignore[operator]
        yield from page
        token = page.token
        if not token or not page:
            return


def list_experiments(client: Client, names: Sequence[str] = ()) -> list[Experiment]:
    """Active experiments of ``client``, only those named in ``names`` when given."""
    found = list(
        _all_pages(lambda t: client.search_experiments(ViewType.ACTIVE_ONLY, PAGE, page_token=t))
    )
    if not names:
        return found  # type: ignore[return-value]
    by_name = {e.name: e for e in found}  # type: ignore[attr-defined]
    missing = [n for n in names if n not in by_name]
    if missing:
        raise TransferError(
            f"No active experiment named {', '.join(repr(n) for n in missing)} in "
            f"{client.tracking_uri}; nothing was copied."
        )
    return [by_name[n] for n in dict.fromkeys(names)]


def list_runs(client: Client, experiment_id: str) -> list[Run]:
    return list(
        _all_pages(  # type: ignore[arg-type]
            lambda t: client.search_runs(
                [experiment_id],
                run_view_type=ViewType.ACTIVE_ONLY,
                max_results=PAGE,
                order_by=["attributes.start_time ASC"],
                page_token=t,
            )
        )
    )


def list_versions(client: Client, name: str) -> list[ModelVersion]:
    quoted = name.replace("'", "\\'")
    versions = list(
        _all_pages(lambda t: client.search_model_versions(f"name='{quoted}'", PAGE, page_token=t))
    )
    return sorted(versions, key=lambda v: int(v.version))  # type: ignore[attr-defined]


def list_models(client: Client) -> list[RegisteredModel]:
    found = _all_pages(lambda t: client.search_registered_models(max_results=PAGE, page_token=t))
    # search answers may leave out aliases: read each model once
    return [client.get_registered_model(m.name) for m in found]  # type: ignore[attr-defined]


def _parents_first(runs: list[Run]) -> list[Run]:
    by_id = {r.info.run_id: r for r in runs}
    ordered: list[Run] = []
    placed: set[str] = set()
    for run in runs:
        chain: list[Run] = []
        current: Run | None = run
        while current is not None and current.info.run_id not in placed:
            chain.append(current)
            placed.add(current.info.run_id)
            current = by_id.get(current.data.tags.get(PARENT_TAG, ""))
        ordered.extend(reversed(chain))
    return ordered


def artifact_files(repo: ArtifactRepository, path: str | None = None) -> Iterator[FileInfo]:
    """Every file under ``path`` of ``repo``, depth first."""
    for info in repo.list_artifacts(path):
        if info.is_dir:
            yield from artifact_files(repo, info.path)
        else:
            yield info


# -- the copier -------------------------------------------------------------------------------
class Transfer:
    """Copy what ``plan()`` finds in ``source`` into ``destination``, journalled in ``state``."""

    def __init__(
        self,
        source: Client,
        destination: Client | None,
        state: TransferState | None,
        experiments: Sequence[str] = (),
        reporter: Reporter | None = None,
    ) -> None:
        self.src = source
        self.dst = destination
        self.state = state
        self.names = list(experiments)
        self.report = reporter or Reporter()
        self.summary = Summary()
        self._dst_runs: dict[str, Run] = {}

    def plan(self) -> Plan:
        experiments = list_experiments(self.src, self.names)
        runs: list[Run] = []
        for experiment in experiments:
            runs.extend(list_runs(self.src, experiment.experiment_id))
        models = list_models(self.src)
        if self.names:  # only the models with a version made from a copied run
            ids = {r.info.run_id for r in runs}
            models = [
                m for m in models if any(v.run_id in ids for v in list_versions(self.src, m.name))
            ]
        return Plan(experiments, _parents_first(runs), models)

    def _warn(self, text: str) -> None:
        self.summary.warnings.append(text)
        self.report.warn(text)

    def run(self, plan: Plan) -> Summary:
        """Copy everything in ``plan``; finished items of an earlier attempt are skipped."""
        if self.dst is None or self.state is None:
            raise TransferError("A transfer needs a destination and a state file.")
        experiment_ids = {e.experiment_id: self._experiment(e) for e in plan.experiments}
        self.report.start(len(plan.runs))
        finished = self.state.done("run")
        for run in plan.runs:
            if run.info.run_id in finished:
                self.summary.runs_skipped += 1
                self.report.run_step(run, "skipped")
                continue
            self._run(run, experiment_ids[run.info.experiment_id])
        runs = {r.info.run_id: r for r in plan.runs}
        for model in plan.models:
            self._model(model, runs)
        return self.summary

    # experiments
    def _experiment(self, experiment: Experiment) -> str:
        assert self.dst is not None and self.state is not None
        known = self.state.experiment(experiment.experiment_id)
        if known is not None:
            try:
                self.dst.get_experiment(known[0])
            except ResourceDoesNotExist:
                raise TransferError(
                    f"The state file {self.state.path} maps experiment {experiment.name!r} to "
                    f"destination id {known[0]}, which no longer exists. Delete the state file "
                    "to start over."
                ) from None
            self.summary.experiments_reused += 1
            return known[0]
        existing = self.dst.get_experiment_by_name(experiment.name)
        if existing is not None and existing.lifecycle_stage == "active":
            dst_id = existing.experiment_id
            before = len(list_runs(self.dst, dst_id))
            self.summary.experiments_reused += 1
        elif existing is not None:
            raise TransferError(
                f"Experiment {experiment.name!r} is deleted in the destination; restore or "
                "permanently delete it there first."
            )
        else:
            dst_id = self.dst.create_experiment(experiment.name)
            before = 0
            self.summary.experiments_created += 1
        for key, value in experiment.tags.items():
            self.dst.set_experiment_tag(dst_id, key, value)
        self.state.set_experiment(experiment.experiment_id, dst_id, before)
        return dst_id

    # runs
    def _discard_partial(self, run: Run, dst_experiment: str) -> None:
        """Delete what an interrupted attempt left of ``run`` in the destination."""
        assert self.dst is not None and self.state is not None
        item = self.state.get("run", run.info.run_id)
        if item is None:
            return
        self.summary.runs_redone += 1
        partial = [item[0]] if item[0] else []
        if not partial:  # interrupted between create_run and the journal write
            mapped = set(self.state.mapping("run").values())
            partial = [
                r.info.run_id
                for r in list_runs(self.dst, dst_experiment)
                if r.info.run_id not in mapped
                and r.info.start_time == run.info.start_time
                and r.info.run_name == run.info.run_name
            ]
        for run_id in partial:
            try:
                self.dst.delete_run(run_id)
            except ResourceDoesNotExist:
                pass

    def _run(self, run: Run, dst_experiment: str) -> None:
        assert self.dst is not None and self.state is not None
        src_id = run.info.run_id
        self._discard_partial(run, dst_experiment)
        self.state.run_started(src_id, None)
        tags = dict(run.data.tags)
        parent = tags.get(PARENT_TAG)
        if parent:
            mapped = self.state.dst_of("run", parent)
            if mapped:
                tags[PARENT_TAG] = mapped
            else:
                self._warn(f"Run {src_id}: parent run {parent} is not copied; tag kept as is.")
        created = self.dst.create_run(
            dst_experiment,
            start_time=run.info.start_time,
            tags=tags,
            run_name=run.info.run_name,
        )
        dst_id = created.info.run_id
        self.state.run_started(src_id, dst_id)
        self.report.run_step(run, "created")
        params = [Param(k, v) for k, v in run.data.params.items()]
        if params:
            self.dst.log_batch(dst_id, params=params, synchronous=True)
        if run.inputs.dataset_inputs:
            self.dst.log_inputs(dst_id, run.inputs.dataset_inputs)
            self.summary.inputs += len(run.inputs.dataset_inputs)
        for key in sorted(run.data.metrics):
            history = self.src.get_metric_history(src_id, key)
            for start in range(0, len(history), POINTS_PER_BATCH):
                chunk = [
                    Metric(m.key, m.value, m.timestamp, m.step)
                    for m in history[start : start + POINTS_PER_BATCH]
                ]
                self.dst.log_batch(dst_id, metrics=chunk, synchronous=True)
                self.report.points(len(chunk))
                self.summary.points += len(chunk)
        self.report.run_step(run, "data")
        self._artifacts(run, created)
        status = run.info.status
        if status != RunStatus.RUNNING or run.info.end_time:
            self.dst.store.update_run_info(dst_id, status, run.info.end_time, None)
        self.state.run_done(src_id, dst_id)
        self.summary.runs_copied += 1
        self.report.run_step(run, "done")

    def _artifacts(self, run: Run, created: Run) -> None:
        assert self.dst is not None
        if not run.info.artifact_uri or not created.info.artifact_uri:
            return
        src_repo = get_artifact_repository(run.info.artifact_uri, self.src.tracking_uri)
        dst_repo = get_artifact_repository(created.info.artifact_uri, self.dst.tracking_uri)
        with tempfile.TemporaryDirectory(prefix="mltrack-transfer-") as tmp:
            for info in artifact_files(src_repo):
                local = os.path.join(tmp, posixpath.basename(info.path) or "artifact")
                with open(local, "wb") as fh:  # streamed: one file on disk at a time
                    for chunk in src_repo.iter_bytes(info.path):
                        fh.write(chunk)
                dst_repo.log_artifact_as(local, info.path)
                os.remove(local)
                self.summary.artifact_files += 1

    # registered models
    def _dst_run(self, run_id: str) -> Run:
        assert self.dst is not None
        if run_id not in self._dst_runs:
            self._dst_runs[run_id] = self.dst.get_run(run_id)
        return self._dst_runs[run_id]

    def _version_source(
        self, version: ModelVersion, runs: dict[str, Run]
    ) -> tuple[str, str | None]:
        """The destination's source and run id for a copied version."""
        source = version.source or ""
        src_run = runs.get(version.run_id or "")
        dst_id = self.state.dst_of("run", version.run_id or "") if self.state else None
        if src_run is None or dst_id is None:
            if version.run_id:
                self._warn(
                    f"Model {version.name} v{version.version}: run {version.run_id} is not "
                    "copied; the version keeps its source and loses its run link."
                )
            return source, None
        prefix = f"runs:/{src_run.info.run_id}"
        if source == prefix or source.startswith(prefix + "/"):
            return f"runs:/{dst_id}" + source[len(prefix) :], dst_id
        dst_root = (self._dst_run(dst_id).info.artifact_uri or "").rstrip("/")
        src_root = (src_run.info.artifact_uri or "").rstrip("/")
        roots = {src_root}
        if src_root.startswith("file:"):
            roots.add(uri_to_path(src_root).rstrip("/"))
        for root in roots:
            if root and (source == root or source.startswith(root + "/")):
                return dst_root + source[len(root) :], dst_id
        self._warn(
            f"Model {version.name} v{version.version}: source {source} is not under its run's "
            "artifacts; copied verbatim."
        )
        return source, dst_id

    def _model(self, model: RegisteredModel, runs: dict[str, Run]) -> None:
        assert self.dst is not None and self.state is not None
        name = model.name
        item = self.state.get("model", name)
        if item is not None and item[1]:
            return
        try:
            self.dst.get_registered_model(name)
            exists = True
        except ResourceDoesNotExist:
            exists = False
        if exists and item is None:
            self._warn(
                f"Registered model {name!r} already exists in the destination and was not "
                "created by this transfer; it is left alone (rename one of them and re-run)."
            )
            return
        if exists:  # half-copied by an interrupted attempt: start the model over
            self.dst.delete_registered_model(name)
        self.state.put("model", name, name, False)
        self.dst.create_registered_model(name, dict(model.tags), model.description)
        mapping: dict[str, str] = {}
        for version in list_versions(self.src, name):
            source, run_id = self._version_source(version, runs)
            created = self.dst.create_model_version(
                name,
                source,
                run_id=run_id,
                tags=dict(version.tags),
                description=version.description,
            )
            mapping[str(version.version)] = str(created.version)
            if version.current_stage and version.current_stage != Stage.NONE:
                self.dst.transition_model_version_stage(
                    name, created.version, version.current_stage, archive_existing_versions=False
                )
            self.state.put("model", name, name, False, {"versions": mapping})
            self.summary.versions_copied += 1
        for alias, number in model.aliases.items():
            target = mapping.get(str(number))
            if target is None:
                self._warn(f"Model {name}: alias {alias!r} names a missing version {number}.")
                continue
            self.dst.set_registered_model_alias(name, alias, target)
        self.state.put("model", name, name, True, {"versions": mapping})
        self.summary.models_copied += 1
