"""Notebooks as projects: run a notebook headlessly (nbclient) as one tracked run.

Parameters follow papermill's convention: they are assigned in a new cell, tagged
``injected-parameters``, placed right after the cell tagged ``parameters`` (at the top when no
cell has that tag), so they override the defaults that cell sets.

The kernel gets the run's id in ``MLTRACK_RUN_ID`` / ``MLFLOW_RUN_ID``, the store in
``MLTRACK_TRACKING_URI`` and the experiment in ``MLFLOW_EXPERIMENT_ID``: ``mlflow.log_metric``
and ``mlflow.start_run()`` inside the notebook log into that run, and ``%%track`` cells become
its child runs (see ``tracking.fluent.exported_run_id``). The executed notebook, outputs
included, is kept as the artifact ``notebook/<name>.ipynb`` whether it succeeded or not.
"""

from __future__ import annotations

import ast
import json
import os
import sys
import tempfile
from pathlib import Path
from typing import Any

from jupyter_mltrack.entities import Run, RunStatus
from jupyter_mltrack.exceptions import InvalidParameterValue, MlflowException

PARAMETERS_TAG = "parameters"
INJECTED_TAG = "injected-parameters"
NOTEBOOK_TAG = "mltrack.project.notebook"
PARAMS_TAG = "mltrack.project.params"
ENV_TAG = "mlflow.project.env"
ERROR_TYPE_TAG = "mltrack.error.type"
ERROR_MESSAGE_TAG = "mltrack.error.message"
ARTIFACT_DIR = "notebook"
DEFAULT_TIMEOUT_S = 3600
_RUN_ENV_VARS = ("MLTRACK_RUN_ID", "MLFLOW_RUN_ID")
_FLUSH_SOURCE = (
    "import sys as _sys\n"
    "if 'jupyter_mltrack.tracking.writer' in _sys.modules:\n"
    "    _sys.modules['jupyter_mltrack.tracking.writer'].flush_all()"
)


class NotebookRunError(MlflowException):
    """A notebook run failed: a cell raised (the run is FAILED, its executed notebook kept)."""

    def __init__(self, message: str, run_id: str | None = None, cell: int | None = None) -> None:
        super().__init__(message)
        self.run_id = run_id
        self.cell = cell


# -- parameters -------------------------------------------------------------------------------
def typed_value(value: Any) -> Any:
    """A parameter as the notebook sees it: ``"0.1"`` -> 0.1, ``"3"`` -> 3, other text stays a
    string; values that are not strings (from the Python API) are kept as they are."""
    if not isinstance(value, str):
        return value
    text = value.strip()
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            continue
    return value


def _literal_source(name: str, value: Any) -> str:
    if not name.isidentifier():
        raise InvalidParameterValue(
            f"Notebook parameter {name!r} is not a Python variable name (use -P name=value)."
        )
    text = repr(value)
    try:
        ast.literal_eval(text)
    except (ValueError, SyntaxError):
        raise InvalidParameterValue(
            f"Notebook parameter {name}={text}: only numbers, strings, bools, None and "
            "lists/dicts of them can be injected."
        ) from None
    return f"{name} = {text}"


def inject_parameters(nb: Any, parameters: dict[str, Any]) -> Any:
    """Put a cell assigning ``parameters`` right after the ``parameters`` cell (in place).

    A cell injected by an earlier run is replaced, so an executed notebook can be run again.
    Returns the notebook.
    """
    import nbformat  # only when notebooks are involved (model venvs lack it)

    nb.cells = [c for c in nb.cells if INJECTED_TAG not in c.get("metadata", {}).get("tags", [])]
    if not parameters:
        return nb
    lines = ["# Parameters injected by mltrack run"]
    lines += [_literal_source(name, value) for name, value in parameters.items()]
    cell = nbformat.v4.new_code_cell("\n".join(lines), metadata={"tags": [INJECTED_TAG]})
    at = next((i + 1 for i, c in enumerate(nb.cells) if _is_parameters_cell(c)), 0)
    nb.cells.insert(at, cell)
    return nb


def _is_parameters_cell(cell: Any) -> bool:
    return cell.cell_type == "code" and PARAMETERS_TAG in cell.get("metadata", {}).get("tags", [])


def notebook_defaults(nb: Any) -> dict[str, Any]:
    """The literal assignments of the ``parameters`` cell (its defaults)."""
    from jupyter_mltrack.notebook.capture import _NOT_CONSTANT, constant_value

    cell = next((c for c in nb.cells if _is_parameters_cell(c)), None)
    if cell is None:
        return {}
    try:
        tree = ast.parse(cell.source)
    except SyntaxError:
        return {}
    found = {}
    for node in tree.body:
        if isinstance(node, ast.Assign) and len(node.targets) == 1:
            target = node.targets[0]
            value = constant_value(node.value)
            if isinstance(target, ast.Name) and value is not _NOT_CONSTANT:
                found[target.id] = value
    return found


# -- executing ---------------------------------------------------------------------------------
def kernel_env(
    tracking_uri: str, run_id: str | None, experiment_id: str | None, notebook: str | None
) -> dict[str, str]:
    """The environment of a kernel that logs into ``run_id`` of the store at ``tracking_uri``."""
    env = {k: v for k, v in os.environ.items() if k not in _RUN_ENV_VARS}
    env["MLTRACK_TRACKING_URI"] = tracking_uri
    if run_id:
        env.update(dict.fromkeys(_RUN_ENV_VARS, run_id))
    if experiment_id:
        env["MLFLOW_EXPERIMENT_ID"] = experiment_id
        env.pop("MLFLOW_EXPERIMENT_NAME", None)
    if notebook:
        env["JPY_SESSION_NAME"] = notebook  # %%track cells record the notebook's path
    return env


def execute(
    nb: Any,
    *,
    cwd: str,
    env: dict[str, str],
    python: str | None = None,
    allow_errors: bool = False,
    timeout: int = DEFAULT_TIMEOUT_S,
) -> BaseException | None:
    """Execute ``nb`` in place in a fresh kernel run by ``python`` (default: this interpreter).

    Returns the execution error (nbclient's CellExecutionError, a timeout, a dead kernel), or
    None when every cell ran.
    """
    from jupyter_client.kernelspec import KernelSpecManager
    from jupyter_client.manager import AsyncKernelManager
    from nbclient import NotebookClient

    with tempfile.TemporaryDirectory(prefix="mltrack-kernel-") as specs:
        # our own kernel spec: the chosen interpreter, whatever kernels the machine has
        spec = Path(specs) / "mltrack"
        spec.mkdir()
        argv = [python or sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"]
        spec_json = {"argv": argv, "display_name": "mltrack", "language": "python"}
        (spec / "kernel.json").write_text(json.dumps(spec_json))
        km = AsyncKernelManager(
            kernel_name="mltrack", kernel_spec_manager=KernelSpecManager(kernel_dirs=[specs])
        )
        nb.metadata.pop("widgets", None)
        client = NotebookClient(
            nb,
            km=km,
            timeout=timeout,
            allow_errors=allow_errors,
            resources={"metadata": {"path": cwd}},
            store_widget_state=False,
        )
        client.reset_execution_trackers()
        error: BaseException | None = None
        # the kernel's own log (TCP warnings, crashes) goes to a file, not into our output
        log = (Path(specs) / "kernel.log").open("w")
        try:
            with client.setup_kernel(cwd=cwd, env=env, stdout=log, stderr=log):
                reply = client.wait_for_reply(client.kc.kernel_info())
                if reply is not None and "language_info" in reply["content"]:
                    nb.metadata["language_info"] = reply["content"]["language_info"]
                try:
                    for index, cell in enumerate(nb.cells):
                        client.execute_cell(
                            cell, index, execution_count=client.code_cells_executed + 1
                        )
                except Exception as err:  # a failed cell, a timeout, a kernel that died
                    error = err
                finally:
                    _flush_kernel(client, nb)
        except Exception as err:  # the kernel did not start
            error = error or err
        finally:
            log.close()
        if error is not None and failed_cell(nb) is None:
            tail = (Path(specs) / "kernel.log").read_text(errors="replace").strip()
            if tail:  # no cell error: the kernel's log says why (crash, bad interpreter)
                error = RuntimeError(f"{error}\nkernel log:\n{tail[-2000:]}")
    return error


def _flush_kernel(client: Any, nb: Any) -> None:
    """Persist what the kernel logged before it is shut down (a failed cell may come right
    after a log call, within the writer's buffer window)."""
    import nbformat  # only when notebooks are involved (model venvs lack it)

    cell = nbformat.v4.new_code_cell(_FLUSH_SOURCE)
    nb.cells.append(cell)
    try:
        client.execute_cell(cell, len(nb.cells) - 1)
    except Exception:  # the kernel is dead: nothing left to flush
        pass
    finally:
        nb.cells.pop()


def failed_cell(nb: Any) -> tuple[int, str, str] | None:
    """(index, error name, error value) of the first cell with an error output."""
    for index, cell in enumerate(nb.cells):
        for output in cell.get("outputs", []):
            if output.get("output_type") == "error":
                return index, output.get("ename", ""), output.get("evalue", "")
    return None


# -- the run -----------------------------------------------------------------------------------
def run_notebook(
    path: str | os.PathLike[str],
    parameters: dict[str, Any] | None = None,
    experiment_name: str | None = None,
    run_name: str | None = None,
    env_manager: str = "local",
    *,
    tags: dict[str, Any] | None = None,
    notebook: Any = None,
    python: str | None = None,
    tracking_uri: str | None = None,
    timeout: int = DEFAULT_TIMEOUT_S,
) -> Run:
    """Execute a notebook headlessly as one run, with ``parameters`` injected.

    Parameters
    ----------
    path
        The ``.ipynb`` file; the kernel runs in its folder.
    parameters
        ``name -> value``; text that reads as a number becomes a number (``-P lr=0.1``).
    experiment_name
        Experiment of the run (created if new; default: the active experiment).
    run_name
        Name of the run (generated when omitted).
    env_manager
        ``local`` (this interpreter) or ``virtualenv`` (a cached venv built from the
        ``requirements.txt`` next to the notebook).
    tags
        More tags for the run.
    notebook
        An ``nbformat`` notebook to execute instead of the file's content (``reproduce`` runs the
        recorded copy); ``path`` still names it and sets the working folder.
    python
        The interpreter of the kernel (overrides ``env_manager``).
    tracking_uri
        The store (default: the current tracking URI).

    Returns
    -------
    Run
        The finished run. A failing cell raises ``NotebookRunError`` (the run is FAILED and its
        executed notebook kept as an artifact).
    """
    import nbformat  # only when notebooks are involved (model venvs lack it)

    from jupyter_mltrack.tracking import fluent
    from jupyter_mltrack.tracking.client import Client
    from jupyter_mltrack.tracking.context import (
        SOURCE_NAME_TAG,
        SOURCE_TYPE_TAG,
        git_tags,
        run_context_tags,
    )

    path = Path(path).resolve()
    if notebook is None:
        if not path.is_file():
            raise InvalidParameterValue(f"No notebook at {path}.")
        notebook = nbformat.read(path, as_version=4)
    if python is None and env_manager == "virtualenv":
        from jupyter_mltrack.projects.pinned import requirements_file_python

        python = requirements_file_python(path.parent / "requirements.txt")
    elif env_manager not in ("local", "virtualenv"):
        raise InvalidParameterValue(
            f"env_manager must be 'local' or 'virtualenv', got {env_manager!r}."
        )
    given = {name: typed_value(value) for name, value in (parameters or {}).items()}
    inject_parameters(notebook, given)  # before the run exists: a bad name creates nothing
    effective = {**notebook_defaults(notebook), **given}

    client = Client(tracking_uri or fluent.get_tracking_uri())
    experiment_id = _experiment(client, experiment_name)
    run_tags = run_context_tags()
    run_tags.update(git_tags(str(path.parent)))
    run_tags.update(
        {
            SOURCE_NAME_TAG: str(path),
            SOURCE_TYPE_TAG: "NOTEBOOK",
            NOTEBOOK_TAG: str(path),
            PARAMS_TAG: json.dumps(given, sort_keys=True),
            ENV_TAG: env_manager,
        }
    )
    run_tags.update({k: str(v) for k, v in (tags or {}).items()})
    run = client.create_run(experiment_id, tags=run_tags, run_name=run_name)
    run_id = run.info.run_id
    try:
        if effective:
            from jupyter_mltrack.entities import Param

            client.log_batch(run_id, params=[Param(k, v) for k, v in effective.items()])
        client.flush()  # the kernel, another process, must see them
        env = kernel_env(client.tracking_uri, run_id, experiment_id, str(path))
        error = execute(notebook, cwd=str(path.parent), env=env, python=python, timeout=timeout)
    except BaseException as err:
        client.set_terminated(run_id, RunStatus.FAILED)
        raise err
    _keep_notebook(client, run_id, notebook, path.stem)
    if error is None:
        client.set_terminated(run_id, RunStatus.FINISHED)
        return client.get_run(run_id)
    cell = failed_cell(notebook)
    if cell is not None:
        ename, evalue = cell[1], cell[2]
        first_line = (notebook.cells[cell[0]].source.strip().splitlines() or [""])[0][:60]
        where = f"cell {cell[0] + 1} ({first_line!r})"  # counted from 1, as a reader counts
    else:
        ename, evalue, where = type(error).__name__, str(error).strip().splitlines()[-1:], "kernel"
        evalue = evalue[0] if evalue else ""
    client.set_tag(run_id, ERROR_TYPE_TAG, ename)
    client.set_tag(run_id, ERROR_MESSAGE_TAG, evalue[:4000])
    client.set_terminated(run_id, RunStatus.FAILED)
    raise NotebookRunError(
        f"Notebook {path.name} failed at {where}: {ename}: {evalue} (run {run_id} is FAILED; "
        f"the executed notebook is its artifact {ARTIFACT_DIR}/{path.stem}.ipynb).",
        run_id=run_id,
        cell=cell[0] if cell else None,
    )


def _experiment(client: Any, name: str | None) -> str:
    from jupyter_mltrack.exceptions import ResourceAlreadyExists
    from jupyter_mltrack.tracking import fluent

    if name is None:
        return fluent._experiment_id()
    experiment = client.get_experiment_by_name(name)
    if experiment is not None:
        return experiment.experiment_id
    try:
        return client.create_experiment(name)
    except ResourceAlreadyExists:  # created by another process meanwhile
        return client.get_experiment_by_name(name).experiment_id


def _keep_notebook(client: Any, run_id: str, nb: Any, stem: str) -> None:
    import nbformat  # only when notebooks are involved (model venvs lack it)

    with tempfile.TemporaryDirectory(prefix="mltrack-nb-") as tmp:
        target = Path(tmp) / f"{stem}.ipynb"
        nbformat.write(nb, target)
        client.log_artifact(run_id, str(target), ARTIFACT_DIR)
