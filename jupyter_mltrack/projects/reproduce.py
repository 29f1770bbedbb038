"""Reproduce a run: re-execute what it recorded as a new run, then compare the two.

What is re-executed depends on how the run was made, read from its tags:

- a project run (``mltrack.project.uri``): the same entry point, parameters and git commit,
  through ``jupyter_mltrack.projects.run``;
- a notebook run (``mltrack.project.notebook``): the executed notebook kept as its artifact,
  outputs cleared, with the same injected parameters, in the notebook's folder;
- a ``%%track`` cell run (``mltrack.cell.magic``): the recorded cell source, alone in a fresh
  kernel. A cell that uses what earlier cells defined cannot run alone: that is reported as
  "cannot be reproduced", not as a difference.

The new run carries ``mltrack.reproduces=<original run id>``. A metric of the original
matches when ``|a - b| <= tolerance * max(1, |a|)`` (relative for large values, absolute near
zero); every metric of the original must match for the reproduction to pass.
"""

from __future__ import annotations

import html
import json
import math
import shlex
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from jupyter_mltrack.entities import Run
from jupyter_mltrack.exceptions import MlflowException, ResourceDoesNotExist

REPRODUCES_TAG = "mltrack.reproduces"
DEFAULT_TOLERANCE = 1e-6
PROJECT_URI_TAG = "mltrack.project.uri"
PROJECT_VERSION_TAG = "mltrack.project.version"
ENTRY_POINT_TAG = "mlflow.project.entryPoint"
PARENT_TAG = "mlflow.parentRunId"
PACKAGES_TAG = "mltrack.packages"
GIT_COMMIT_TAG = "mlflow.source.git.commit"
CELL_MAGIC_TAG = "mltrack.cell.magic"
CELL_SOURCE_TAG = "mltrack.cell.source"
CELL_NOTEBOOK_TAG = "mltrack.notebook.path"
REPRODUCIBLE_TAG = "mltrack.reproducible"
REASONS_TAG = "mltrack.reproducible.reasons"
SOURCE_ARTIFACT = "cell/source.py"
ENV_MANAGERS = ("local", "virtualenv")


class NotReproducible(MlflowException):
    """The run cannot be re-executed: what it needs was not recorded, or cannot run alone."""


@dataclass
class Row:
    """One param or metric of the original run next to the reproduction's."""

    kind: str  # "param" or "metric"
    key: str
    original: Any
    new: Any
    ok: bool  # params: equal; metrics: within tolerance

    @property
    def differs(self) -> bool:
        return self.original != self.new


@dataclass
class Reproduction:
    """The outcome of ``reproduce``: both runs, the comparison and what went wrong."""

    original: Run
    new: Run | None
    kind: str
    tolerance: float
    rows: list[Row] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    error: str | None = None  # the re-execution failed (a cell raised, a command exited != 0)

    @property
    def mismatches(self) -> list[Row]:
        return [r for r in self.rows if r.kind == "metric" and not r.ok]

    @property
    def passed(self) -> bool:
        return self.error is None and not self.mismatches

    @property
    def exit_code(self) -> int:
        return 0 if self.passed else 1

    def verdict(self) -> str:
        if self.passed:
            count = sum(r.kind == "metric" for r in self.rows)
            return f"REPRODUCED: {count} metric(s) within tolerance {self.tolerance:g}."
        if self.error is not None:
            return f"NOT REPRODUCED: the re-execution failed: {self.error}"
        moved = ", ".join(r.key for r in self.mismatches)
        return f"NOT REPRODUCED: {len(self.mismatches)} metric(s) outside tolerance {self.tolerance:g}: {moved}."

    def title(self) -> str:
        def name(run: Run | None) -> str:
            return f"{run.info.run_id} ({run.info.run_name})" if run else "-"

        return f"Reproduction of {self.kind} run {name(self.original)} -> {name(self.new)}"

    def table_rows(self) -> list[list[str]]:
        """[kind, key, original, reproduction, check] as text (check: '', 'ok', 'DIFFERS')."""
        rows = []
        for row in self.rows:
            if row.kind == "param":
                check = "differs" if row.differs else ""
            else:
                check = "ok" if row.ok else "DIFFERS" + _delta(row)
            rows.append([row.kind, row.key, _text(row.original), _text(row.new), check])
        return rows

    def __repr__(self) -> str:
        rows = [["", "key", "original", "reproduction", "check"], *self.table_rows()]
        widths = [max(len(r[i]) for r in rows) for i in range(5)]
        lines = [self.title()]
        for n, row in enumerate(rows):
            mark = "!" if n and (row[4].startswith("DIFFERS") or row[4] == "differs") else " "
            lines.append(mark + " " + "  ".join(v.ljust(w) for v, w in zip(row, widths)).rstrip())
            if n == 0:
                lines.append("  " + "  ".join("-" * w for w in widths))
        lines += [f"note: {n}" for n in self.notes]
        lines.append(self.verdict())
        return "\n".join(lines)

    def _repr_html_(self) -> str:
        esc = html.escape
        body = []
        for cells in self.table_rows():
            check = cells[4]
            style = ""
            if check.startswith("DIFFERS"):
                style = " style='background:#fdd;color:#900;font-weight:bold'"
            elif check == "differs":
                style = " style='background:#ffc'"
            elif check == "ok":
                style = " style='color:#070'"
            body.append(f"<tr{style}>" + "".join(f"<td>{esc(c)}</td>" for c in cells) + "</tr>")
        head = "".join(f"<th>{c}</th>" for c in ("", "key", "original", "reproduction", "check"))
        notes = "".join(f"<li>{esc(n)}</li>" for n in self.notes)
        color = "#070" if self.passed else "#900"
        return (
            f"<div class='mltrack-reproduction'><table><caption style='text-align:left'>"
            f"{esc(self.title())}</caption><thead><tr>{head}</tr></thead><tbody>"
            f"{''.join(body)}</tbody></table>{f'<ul>{notes}</ul>' if notes else ''}"
            f"<p style='color:{color};font-weight:bold'>{esc(self.verdict())}</p></div>"
        )

    def rich_table(self) -> Any:
        """The comparison as a rich Table (the CLI prints it)."""
        from rich.table import Table

        table = Table(title=self.title(), title_justify="left")
        for name in ("", "key", "original", "reproduction", "check"):
            table.add_column(name, no_wrap=True)
        for cells in self.table_rows():
            check = cells[4]
            style = None
            if check.startswith("DIFFERS"):
                style = "bold red"
            elif check == "differs":
                style = "yellow"
            elif check == "ok":
                style = "green"
            table.add_row(*cells, style=style)
        return table


def _text(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return repr(value) if value != value or abs(value) >= 1e-4 or value == 0 else f"{value:.6g}"
    return str(value)


def _delta(row: Row) -> str:
    if isinstance(row.original, float) and isinstance(row.new, float):
        return f" (Δ {row.new - row.original:+.4g})"
    return " (missing)" if row.new is None else ""


def within(original: float, new: float | None, tolerance: float) -> bool:
    """``|a - b| <= tolerance * max(1, |a|)``; NaN matches NaN; a missing value never matches."""
    if new is None:
        return False
    if math.isnan(original) or math.isnan(new):
        return math.isnan(original) and math.isnan(new)
    if math.isinf(original) or math.isinf(new):
        return original == new
    return abs(original - new) <= tolerance * max(1.0, abs(original))


# -- which kind of run ---------------------------------------------------------------------------
def run_kind(run: Run) -> str | None:
    """``notebook``, ``project`` or ``cell`` from the run's tags; None when none applies."""
    tags = run.data.tags
    uri = tags.get(PROJECT_URI_TAG)
    if tags.get("mltrack.project.notebook") and (not uri or uri.endswith(".ipynb")):
        return "notebook"
    if uri:
        return "project"
    if tags.get(CELL_MAGIC_TAG):
        return "cell"
    return None


def reproduce(
    run_id: str,
    tolerance: float = DEFAULT_TOLERANCE,
    env_manager: str = "local",
    run_name: str | None = None,
    tracking_uri: str | None = None,
) -> Reproduction:
    """Re-execute run ``run_id`` as a new run and compare the two.

    Parameters
    ----------
    run_id
        The run to reproduce.
    tolerance
        A metric matches when ``|a - b| <= tolerance * max(1, |a|)``.
    env_manager
        ``local`` (this environment) or ``virtualenv`` (a cached venv pinned to the package
        versions the run captured; for project runs, the project's own environment).
    run_name
        Name of the new run (generated when omitted).
    tracking_uri
        The store (default: the current tracking URI).

    Returns
    -------
    Reproduction
        ``passed`` / ``exit_code`` say whether every metric of the original was reproduced.
        A run that cannot be re-executed raises ``NotReproducible`` with the reason.
    """
    from jupyter_mltrack.tracking import fluent
    from jupyter_mltrack.tracking.client import Client

    if env_manager not in ENV_MANAGERS:
        raise NotReproducible(f"--env-manager must be local or virtualenv, got {env_manager!r}.")
    client = Client(tracking_uri or fluent.get_tracking_uri())
    try:
        original = client.get_run(run_id)
    except ResourceDoesNotExist:
        raise NotReproducible(f"No run {run_id!r} in {client.tracking_uri}.") from None
    kind = run_kind(original)
    if kind is None:
        raise NotReproducible(
            f"Run {run_id} was not made by `mltrack run` (a project or a notebook) nor by a "
            "%%track cell, so nothing recorded says how to execute it again."
        )
    result = Reproduction(original, None, kind, tolerance)
    _check_commit(original, result)
    runner = {"project": _project, "notebook": _notebook, "cell": _cell}[kind]
    runner(client, original, result, env_manager, run_name)
    if result.new is not None:
        result.new = client.get_run(result.new.info.run_id)
        result.rows = compare(client, original, result.new, tolerance)
    else:
        result.rows = compare(client, original, None, tolerance)
    return result


def _experiment_name(client: Any, run: Run) -> str:
    return client.get_experiment(run.info.experiment_id).name


def _check_commit(run: Run, result: Reproduction) -> None:
    """Notebook and cell runs re-run the recorded source, but imported local modules come from
    the working tree: say so when it is not at the recorded commit."""
    if result.kind == "project":
        return  # the project runner checks out the recorded version itself
    from jupyter_mltrack.tracking.context import git_tags

    recorded = run.data.tags.get(GIT_COMMIT_TAG)
    folder = _source_folder(run)
    current = git_tags(str(folder)).get(GIT_COMMIT_TAG) if folder else None
    if recorded and current and recorded != current:
        result.notes.append(
            f"the run was recorded at git commit {recorded[:12]}; {folder} is now at "
            f"{current[:12]}: local modules it imports may have changed"
        )


def _source_folder(run: Run) -> Path | None:
    tags = run.data.tags
    path = tags.get("mltrack.project.notebook") or tags.get(CELL_NOTEBOOK_TAG)
    if path and Path(path).parent.is_dir():
        return Path(path).parent
    return None


def _python(run: Run, env_manager: str, result: Reproduction) -> str | None:
    if env_manager != "virtualenv":
        return None
    from jupyter_mltrack.projects.pinned import captured_requirements, pinned_python

    reqs = captured_requirements(run.data.tags.get(PACKAGES_TAG, ""))
    result.notes.append(
        "ran in a virtualenv pinned to " + (", ".join(reqs) if reqs else "no recorded package")
    )
    return pinned_python(reqs)


# -- project runs --------------------------------------------------------------------------------
def _project(
    client: Any, run: Run, result: Reproduction, env_manager: str, run_name: str | None
) -> None:
    tags = run.data.tags
    try:
        from jupyter_mltrack import projects
    except ImportError:
        raise NotReproducible("Project runs need jupyter_mltrack.projects (mltrack run).") from None
    try:
        # the values the user gave (defaults re-resolve in the new checkout); older runs: all
        recorded = tags.get("mltrack.project.user_params") or tags.get("mltrack.project.params")
        parameters = json.loads(recorded or "{}")
    except ValueError:
        raise NotReproducible(
            f"The recorded parameters of run {run.info.run_id} are not valid JSON."
        ) from None
    if tags.get("mltrack.git.dirty") == "true" and tags.get(PROJECT_VERSION_TAG):
        result.notes.append(
            "the original ran with uncommitted changes; the reproduction runs commit "
            f"{tags[PROJECT_VERSION_TAG][:12]} as committed"
        )
    try:
        new = projects.run(
            tags[PROJECT_URI_TAG],
            entry_point=tags.get(ENTRY_POINT_TAG, "main"),
            parameters=parameters,
            env_manager=env_manager,
            experiment_name=_experiment_name(client, run),
            run_name=run_name,
            version=tags.get(PROJECT_VERSION_TAG) or None,
            tracking_uri=client.tracking_uri,
        )
    except MlflowException as err:
        failed = getattr(err, "run", None)
        if failed is None:  # refused before a run existed (project gone, bad parameter...)
            raise NotReproducible(f"The project could not be run again: {err.message}") from None
        new, result.error = failed, err.message
    client.set_tag(new.info.run_id, REPRODUCES_TAG, run.info.run_id)
    result.new = new


# -- notebook runs -------------------------------------------------------------------------------
def _notebook(
    client: Any, run: Run, result: Reproduction, env_manager: str, run_name: str | None
) -> None:
    import nbformat  # only when notebooks are involved (model venvs lack it)

    from jupyter_mltrack.projects.notebook import (
        ARTIFACT_DIR,
        PARAMS_TAG,
        NotebookRunError,
        run_notebook,
    )

    tags = run.data.tags
    path = Path(tags["mltrack.project.notebook"])
    try:
        text = client.read_artifact(run.info.run_id, f"{ARTIFACT_DIR}/{path.stem}.ipynb")
    except ResourceDoesNotExist:
        raise NotReproducible(
            f"Run {run.info.run_id} has no executed notebook ({ARTIFACT_DIR}/{path.stem}.ipynb) "
            "to run again."
        ) from None
    nb = nbformat.reads(text.decode("utf-8"), as_version=4)
    for cell in nb.cells:
        if cell.cell_type == "code":
            cell.outputs, cell.execution_count = [], None
    if not path.parent.is_dir():
        result.notes.append(f"{path.parent} no longer exists; ran in {Path.cwd()}")
        path = Path.cwd() / path.name
    parameters = json.loads(tags.get(PARAMS_TAG) or "{}")
    try:
        result.new = run_notebook(
            path,
            parameters,
            experiment_name=_experiment_name(client, run),
            run_name=run_name,
            env_manager=env_manager,
            tags={REPRODUCES_TAG: run.info.run_id},
            notebook=nb,
            python=_python(run, env_manager, result),
            tracking_uri=client.tracking_uri,
        )
    except NotebookRunError as err:
        result.new = client.get_run(err.run_id) if err.run_id else None
        result.error = err.message


# -- %%track cell runs ---------------------------------------------------------------------------
_LAST_RUN_SOURCE = (
    "import jupyter_mltrack as _mltrack\n"
    "print('mltrack-run-id:', _mltrack.last_active_run().info.run_id)"
)


def track_line(
    recorded: str, experiment: str, original_id: str, run_name: str | None
) -> tuple[str, list[str]]:
    """The ``%%track`` line of the reproduction, from the recorded one: same options, in the
    original's experiment, named ``run_name``, tagged; ``--register`` and ``--nested`` dropped
    (a reproduction registers no model version and has no parent). Returns (line, notes)."""
    from IPython.core.magic_arguments import parse_argstring

    from jupyter_mltrack.notebook.magics import MLTrackMagics

    rest = recorded.strip().removeprefix("%%track").strip()
    try:
        args = parse_argstring(MLTrackMagics.track, rest)
    except Exception:
        raise NotReproducible(f"The recorded magic line {recorded!r} cannot be parsed.") from None
    notes = []
    parts = [shlex.quote(run_name)] if run_name else []
    parts += ["--experiment", shlex.quote(experiment)]
    for flag, value in (
        ("--params", args.params),
        ("--metrics", args.metrics),
        ("--log-model", args.log_model),
    ):
        if value:
            parts += [flag, shlex.quote(value)]
    if args.no_figures:
        parts.append("--no-figures")
    for pair in args.tag:
        parts += ["--tag", shlex.quote(pair)]
    parts += ["--tag", shlex.quote(f"{REPRODUCES_TAG}={original_id}")]
    if args.register:
        notes.append(f"--register {args.register} left out: a reproduction registers no model")
    if args.nested:
        notes.append("--nested left out: the cell ran alone, without its parent run")
    return " ".join(parts), notes


def _cell_source(client: Any, run: Run) -> str | None:
    try:
        return client.read_artifact(run.info.run_id, SOURCE_ARTIFACT).decode("utf-8")
    except ResourceDoesNotExist:
        return run.data.tags.get(CELL_SOURCE_TAG)


def _cell(
    client: Any, run: Run, result: Reproduction, env_manager: str, run_name: str | None
) -> None:
    import nbformat  # only when notebooks are involved (model venvs lack it)

    from jupyter_mltrack.projects.notebook import execute, kernel_env

    tags = run.data.tags
    source = _cell_source(client, run)
    if source is None:
        raise NotReproducible(
            f"Run {run.info.run_id} recorded no cell source (%config MLTrack.capture_source "
            "was off?), so the cell cannot be run again."
        )
    hidden = tags.get(REPRODUCIBLE_TAG) == "false"
    if hidden:
        reasons = tags.get(REASONS_TAG) or "it depended on state left by other cells"
        result.notes.append(f"the cell was flagged as not reproducible on its own: {reasons}")
    line, notes = track_line(
        tags[CELL_MAGIC_TAG], _experiment_name(client, run), run.info.run_id, run_name
    )
    result.notes += notes
    nb = nbformat.v4.new_notebook(
        cells=[
            nbformat.v4.new_code_cell("%load_ext jupyter_mltrack"),
            nbformat.v4.new_code_cell(f"%%track {line}\n{source}"),
            nbformat.v4.new_code_cell(_LAST_RUN_SOURCE),
        ]
    )
    folder = _source_folder(run) or Path.cwd()
    env = kernel_env(client.tracking_uri, None, run.info.experiment_id, None)
    python = _python(run, env_manager, result)
    error = execute(nb, cwd=str(folder), env=env, python=python, allow_errors=True)
    new_id = _printed_run_id(nb.cells[2])
    failure = _error_output(nb.cells[1])
    if new_id is None or (failure and not _created_run(client, new_id, run.info.run_id)):
        detail = failure or (str(error).strip().splitlines() or ["the kernel did not run it"])[-1]
        raise NotReproducible(f"The cell could not be run again: {detail}")
    result.new = client.get_run(new_id)
    if failure and failure.startswith("NameError"):
        raise NotReproducible(
            f"The cell cannot be re-run alone: {failure}. It uses a name defined by an earlier "
            "cell of its notebook (a %%track cell that depends on earlier cells' state cannot "
            "be reproduced by itself). Reproduce the notebook instead (`mltrack run "
            "NOTEBOOK.ipynb`, then `mltrack reproduce` that run), or make the cell define what "
            f"it uses. The failed attempt is run {new_id}."
        )
    if failure:
        result.error = failure


def _printed_run_id(cell: Any) -> str | None:
    for output in cell.get("outputs", []):
        for line in output.get("text", "").splitlines():
            if line.startswith("mltrack-run-id:"):
                return line.split(":", 1)[1].strip()
    return None


def _error_output(cell: Any) -> str | None:
    for output in cell.get("outputs", []):
        if output.get("output_type") == "error":
            return f"{output.get('ename')}: {output.get('evalue')}"
    return None


def _created_run(client: Any, run_id: str, original_id: str) -> bool:
    return client.get_run(run_id).data.tags.get(REPRODUCES_TAG) == original_id


# -- the comparison ------------------------------------------------------------------------------
def compare(client: Any, original: Run, new: Run | None, tolerance: float) -> list[Row]:
    """Params and metrics of both runs, and the metrics of their child runs (``name/metric``,
    children paired by name in start order)."""
    rows: list[Row] = []
    new_params = new.data.params if new else {}
    for key in sorted(set(original.data.params) | set(new_params)):
        a, b = original.data.params.get(key), new_params.get(key)
        rows.append(Row("param", key, a, b, a == b))
    metrics = _metrics(client, original)
    new_metrics = _metrics(client, new) if new else {}
    for key in sorted(set(metrics) | set(new_metrics)):
        a, b = metrics.get(key), new_metrics.get(key)
        ok = within(a, b, tolerance) if a is not None else True  # new metrics never fail
        rows.append(Row("metric", key, a, b, ok))
    return rows


def _metrics(client: Any, run: Run) -> dict[str, float]:
    found = dict(run.data.metrics)
    children = client.search_runs(
        [run.info.experiment_id],
        f"tags.`{PARENT_TAG}` = '{run.info.run_id}'",
        max_results=1000,
        order_by=["attributes.start_time ASC"],
    )
    seen: dict[str, int] = {}
    for child in children:
        name = child.info.run_name or child.info.run_id
        seen[name] = seen.get(name, 0) + 1
        label = name if seen[name] == 1 else f"{name}#{seen[name]}"
        for key, value in child.data.metrics.items():
            found[f"{label}/{key}"] = value
    return found
