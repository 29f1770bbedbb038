"""Counts on both sides of a transfer, compared: the proof that nothing was lost or doubled.

Each count is read again from the stores (nothing is taken from the copier's own tallies):
experiments, runs, params, tags, metric points (the sum of every history's length), dataset
inputs, artifact files and bytes, registered models, versions, versions in a stage, aliases. Runs are compared
pair by pair through the transfer's journal; the destination's run count is the number of
active runs in its experiments minus those that were there before the transfer, so a duplicate
left by an interrupted attempt shows up.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field, fields

from jupyter_mltrack.entities import LifecycleStage, Run, Stage
from jupyter_mltrack.exceptions import ResourceDoesNotExist
from jupyter_mltrack.store.artifacts import get_artifact_repository
from jupyter_mltrack.tracking.client import Client
from jupyter_mltrack.transfer.copy import Plan, artifact_files, list_runs, list_versions
from jupyter_mltrack.transfer.state import TransferState

MAX_PROBLEMS = 20


@dataclass
class Counts:
    """What one side holds for a transfer."""

    experiments: int = 0
    runs: int = 0
    params: int = 0
    tags: int = 0
    metric_points: int = 0
    dataset_inputs: int = 0
    artifact_files: int = 0
    artifact_bytes: int = 0
    registered_models: int = 0
    model_versions: int = 0
    staged_versions: int = 0
    aliases: int = 0

    def add(self, other: Counts) -> None:
        for f in fields(self):
            setattr(self, f.name, getattr(self, f.name) + getattr(other, f.name))


@dataclass
class Report:
    """Source and destination counts side by side, and what differs in detail."""

    source: Counts
    destination: Counts
    problems: list[str] = field(default_factory=list)

    @property
    def rows(self) -> list[tuple[str, int, int]]:
        return [
            (
                f.name.replace("_", " "),
                getattr(self.source, f.name),
                getattr(self.destination, f.name),
            )
            for f in fields(Counts)
        ]

    @property
    def ok(self) -> bool:
        return self.source == self.destination and not self.problems


def run_counts(client: Client, run: Run) -> Counts:
    """Params, tags, metric points, dataset inputs and artifacts of one run."""
    counts = Counts(
        runs=1,
        params=len(run.data.params),
        tags=len(run.data.tags),
        dataset_inputs=len(run.inputs.dataset_inputs),
    )
    for key in run.data.metrics:
        counts.metric_points += len(client.get_metric_history(run.info.run_id, key))
    if run.info.artifact_uri:
        repo = get_artifact_repository(run.info.artifact_uri, client.tracking_uri)
        for info in artifact_files(repo):
            counts.artifact_files += 1
            counts.artifact_bytes += info.file_size or 0
    return counts


def model_counts(client: Client, name: str) -> Counts | None:
    """Versions, staged versions and aliases of one registered model (None if it is missing)."""
    try:
        model = client.get_registered_model(name)
    except ResourceDoesNotExist:
        return None
    versions = list_versions(client, name)
    return Counts(
        registered_models=1,
        model_versions=len(versions),
        staged_versions=sum(1 for v in versions if (v.current_stage or Stage.NONE) != Stage.NONE),
        aliases=len(model.aliases),
    )


def _differences(what: str, a: Counts, b: Counts) -> Iterable[str]:
    for f in fields(Counts):
        x, y = getattr(a, f.name), getattr(b, f.name)
        if x != y:
            yield f"{what}: {f.name.replace('_', ' ')} {x} in the source, {y} in the destination"


def verify(source: Client, destination: Client, plan: Plan, state: TransferState) -> Report:
    """Count ``plan``'s items in ``source`` and their copies in ``destination``."""
    src, dst = Counts(), Counts()
    problems: list[str] = []
    src.experiments = len(plan.experiments)
    experiments = {}
    for experiment in plan.experiments:
        known = state.experiment(experiment.experiment_id)
        if known is None:
            problems.append(f"experiment {experiment.name!r} was not copied")
        else:
            experiments[known[0]] = known[1]
    dst.experiments = len(experiments)
    for dst_id, before in experiments.items():
        dst.runs += len(list_runs(destination, dst_id)) - before
    run_map = state.mapping("run")
    for run in plan.runs:
        a = run_counts(source, run)
        src.add(a)
        dst_id = run_map.get(run.info.run_id)
        if dst_id is None:
            problems.append(f"run {run.info.run_id} was not copied")
            continue
        try:
            copy = destination.get_run(dst_id)
        except ResourceDoesNotExist:
            problems.append(f"run {run.info.run_id}: its copy {dst_id} is missing")
            continue
        if copy.info.lifecycle_stage != LifecycleStage.ACTIVE:
            problems.append(f"run {run.info.run_id}: its copy {dst_id} is deleted")
            continue
        b = run_counts(destination, copy)
        b.runs = 0  # counted per experiment above
        dst.add(b)
        b.runs = 1
        problems.extend(_differences(f"run {run.info.run_id} -> {dst_id}", a, b))
    for model in plan.models:
        a = model_counts(source, model.name) or Counts()
        src.add(a)
        b = model_counts(destination, model.name)
        if b is None:
            problems.append(f"registered model {model.name!r} is missing")
            continue
        dst.add(b)
        problems.extend(_differences(f"model {model.name!r}", a, b))
    if len(problems) > MAX_PROBLEMS:
        problems = [*problems[:MAX_PROBLEMS], f"... and {len(problems) - MAX_PROBLEMS} more"]
    return Report(src, dst, problems)
