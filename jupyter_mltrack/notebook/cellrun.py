"""Running one ``%%track`` cell as a run, exactly as the cell would run without the magic.

The cell's code runs through IPython's own ``run_ast_nodes`` in the user's namespace (so the
last expression is displayed and the traceback shows only the cell's frames); a failure is
recorded on the outer cell's ExecutionResult, so the frontend, nbclient and "Run All" see the
cell fail exactly as they would without the magic.
"""

from __future__ import annotations

import os
import time
from typing import Any

from IPython.core.async_helpers import _pseudo_sync_runner
from IPython.core.error import UsageError

from jupyter_mltrack import system_metrics
from jupyter_mltrack.entities import Metric, Param, RunStatus, RunTag
from jupyter_mltrack.exceptions import MlflowException
from jupyter_mltrack.notebook import capture, frame_inputs, hidden_state
from jupyter_mltrack.notebook.config import MLTrack
from jupyter_mltrack.notebook.figures import FigureCapture
from jupyter_mltrack.notebook.summary import RunSummary
from jupyter_mltrack.validation import MAX_TAG_VALUE_LENGTH

CELL_TAG = "mltrack.cell"  # links every run of one cell: its id, or its fingerprint
CELL_ID_TAG = "mltrack.cell.id"
CELL_SOURCE_TAG = "mltrack.cell.source"
CELL_MAGIC_TAG = "mltrack.cell.magic"
EXECUTION_COUNT_TAG = "mltrack.cell.execution_count"
DURATION_TAG = "mltrack.cell.duration_s"
KERNEL_TAG = "mltrack.kernel.id"
NOTEBOOK_TAG = "mltrack.notebook.path"
ERROR_TYPE_TAG = "mltrack.error.type"
ERROR_MESSAGE_TAG = "mltrack.error.message"
SOURCE_ARTIFACT = "cell/source.py"


def parse_tags(pairs: list[str]) -> dict[str, str]:
    """``["k=v", ...]`` -> dict; a pair without ``=`` or with an empty key is a UsageError."""
    tags = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise UsageError(f"--tag expects KEY=VALUE, got {pair!r} (e.g. --tag team=churn).")
        tags[key.strip()] = value
    return tags


def split_names(text: str | None) -> list[str]:
    names = [n.strip() for n in (text or "").split(",") if n.strip()]
    bad = [n for n in names if not n.isidentifier()]
    if bad:
        raise UsageError(f"Not variable names: {', '.join(bad)} (use --params a,b).")
    return names


class TrackedCell:
    """One execution of a ``%%track`` cell."""

    def __init__(
        self, shell: Any, options: MLTrack, args: Any, line: str, cell: str, cell_id: str | None
    ) -> None:
        self.shell, self.options, self.args = shell, options, args
        self.line, self.cell, self.cell_id = line, cell, cell_id
        self.notes: list[str] = []
        self.hidden: hidden_state.HiddenState | None = None
        self.transformed = cell
        self.inputs: list[frame_inputs.CellInput] = []

    # -- before the cell ----------------------------------------------------------------------
    def _prepare(self) -> tuple[Any, Any, dict[str, str]]:
        args = self.args
        tags = parse_tags(args.tag)
        self.extra_params = split_names(args.params)
        self.extra_metrics = split_names(args.metrics)
        if args.register and not args.log_model:
            raise UsageError(
                "--register NAME needs --log-model VAR (the variable holding the model)."
            )
        from jupyter_mltrack.tracking import fluent

        try:
            client = fluent._client()  # opens (or creates) the store: fail before the cell runs
            experiment_id = self._experiment_id(client, fluent)
        except MlflowException as err:
            raise UsageError(
                f"%%track cannot record this cell, so it was not run: {err.message}"
            ) from None
        active = fluent.active_run()
        exported = fluent.exported_run_id()  # run by a notebook project: cells are its children
        if active is not None and not args.nested and active.info.run_id != exported:
            raise UsageError(
                f"Run {active.info.run_name!r} ({active.info.run_id}) is still active (started "
                "with mlflow.start_run() earlier?). End it with mlflow.end_run(), or use "
                "%%track --nested to record this cell as its child. The cell was not run."
            )
        return client, experiment_id, tags

    def _experiment_id(self, client: Any, fluent: Any) -> str | None:
        name = self.args.experiment
        if name is None and fluent._active_experiment_id is None and self.options.experiment:
            name = self.options.experiment
        if name is None:
            return None
        experiment = client.get_experiment_by_name(name)
        if experiment is None:
            return client.create_experiment(name)
        if experiment.lifecycle_stage != "active":
            raise MlflowException(
                f"experiment {name!r} is deleted; restore it or pick another name."
            )
        return experiment.experiment_id

    def _context_tags(self, analysis: capture.CellAnalysis | None) -> dict[str, str]:
        tags = {CELL_MAGIC_TAG: f"%%track {self.line}".strip()}
        fingerprint = f"fp-{analysis.fingerprint}" if analysis else ""
        tags[CELL_TAG] = self.cell_id or fingerprint
        if self.cell_id:
            tags[CELL_ID_TAG] = self.cell_id
        outer = self.shell.displayhook.exec_result
        count = getattr(outer, "execution_count", None) or getattr(
            self.shell, "execution_count", None
        )
        if count is not None:
            tags[EXECUTION_COUNT_TAG] = str(count)
        kernel = _kernel_id()
        if kernel:
            tags[KERNEL_TAG] = kernel
        path = _notebook_path(self.shell)
        if path:
            tags[NOTEBOOK_TAG] = path
            tags["mlflow.source.name"] = path
            tags["mlflow.source.type"] = "NOTEBOOK"
        if self.options.capture_source and len(self.cell) <= MAX_TAG_VALUE_LENGTH:
            tags[CELL_SOURCE_TAG] = self.cell
        return {k: v for k, v in tags.items() if v}

    # -- the run ------------------------------------------------------------------------------
    def run(self) -> None:
        client, experiment_id, user_tags = self._prepare()
        shell = self.shell
        transformed = self.transformed = shell.transform_cell(self.cell)
        cell_name = shell.compile.cache(transformed, shell.execution_count, raw_code=self.cell)
        try:
            code_ast = shell.transform_ast(shell.compile.ast_parse(transformed, filename=cell_name))
        except SyntaxError as err:  # not run, not recorded: exactly like a plain cell
            shell.showsyntaxerror(filename=cell_name)
            self._mark_failed(err)
            return
        try:
            analysis = capture.analyze(transformed)
        except SyntaxError:
            analysis = None
        from jupyter_mltrack.tracking import fluent

        tags = {**self._context_tags(analysis), **user_tags}
        self.hidden = hidden_state.check_cell(
            shell, transformed, self.cell_id, _notebook_path(shell)
        )
        if self.hidden is not None:
            tags = {**self.hidden.tags(MAX_TAG_VALUE_LENGTH), **tags}
        if self.options.capture_inputs and not self.args.no_inputs:
            # what the cell reads, as it is before the cell runs (see frame_inputs)
            self.inputs = frame_inputs.collect(
                transformed, shell.user_ns, self.notes, _notebook_path(shell)
            )
        active = fluent.start_run(
            run_name=self.args.run_name,
            experiment_id=experiment_id,
            nested=self.args.nested or fluent.exported_run_id() is not None,
            tags=tags,
            log_system_metrics=True if self.args.system_metrics else None,
        )
        active.nests_children = True
        run_id = active.info.run_id
        if self.options.capture_source and self.cell:
            client.log_text(run_id, self.cell, SOURCE_ARTIFACT)
        figures = (
            FigureCapture() if self.options.capture_figures and not self.args.no_figures else None
        )
        if figures:
            figures.start()
        outer = shell.displayhook.exec_result
        started = time.perf_counter()
        error: BaseException | None = None
        try:
            result = outer if outer is not None else _Result()
            before = result.error_in_exec
            _pseudo_sync_runner(
                shell.run_ast_nodes(
                    code_ast.body,
                    cell_name,
                    interactivity=shell.ast_node_interactivity,
                    compiler=shell.compile,
                    result=result,
                )
            )
            if result.error_in_exec is not before:
                error = result.error_in_exec
        finally:
            duration = time.perf_counter() - started
            images = figures.stop() if figures else []
            self._finish(client, active, analysis, images, duration, error)
        if error is not None and outer is None:
            raise error  # called outside run_cell (e.g. run_cell_magic): the caller gets it

    def _mark_failed(self, err: BaseException) -> None:
        outer = self.shell.displayhook.exec_result
        if outer is not None:
            outer.error_in_exec = err

    # -- after the cell -----------------------------------------------------------------------
    def _finish(
        self,
        client: Any,
        active: Any,
        analysis: capture.CellAnalysis | None,
        images: list[tuple[str, bytes]],
        duration: float,
        error: BaseException | None,
    ) -> None:
        from jupyter_mltrack.tracking import fluent

        run_id = active.info.run_id
        params, metrics = self._captured(analysis)
        tags = [RunTag(DURATION_TAG, f"{duration:.3f}"), self._packages_tag()]
        if error is not None:
            tags += [
                RunTag(ERROR_TYPE_TAG, type(error).__name__),
                RunTag(ERROR_MESSAGE_TAG, str(error)[:MAX_TAG_VALUE_LENGTH]),
            ]
        now = int(time.time() * 1000)
        try:
            client.log_batch(
                run_id, metrics=[Metric(k, v, now, 0) for k, v in metrics.items()], tags=tags
            )
        except MlflowException as err:  # never lose the cell's result over a capture problem
            self.notes.append(f"capture not stored: {err.message}")
        try:
            client.log_batch(run_id, params=[Param(k, v) for k, v in params.items()])
        except MlflowException:  # the cell logged one of these names itself, with another value
            for key, value in params.items():
                try:
                    client.log_param(run_id, key, value)
                except MlflowException:
                    self.notes.append(f"{key}: param already logged with another value")
        n_inputs = 0
        try:
            n_inputs = frame_inputs.log(client, run_id, self.inputs)
        except Exception as err:  # never lose the cell's result over a capture problem
            self.notes.append(f"inputs not stored: {getattr(err, 'message', err)}")
        for name, png in images:
            client.log_bytes(run_id, png, name)
        if self.args.log_model and error is None:
            self._log_model(active)
        if error is None:
            status = RunStatus.FINISHED
        elif isinstance(error, KeyboardInterrupt):
            status = RunStatus.KILLED
        else:
            status = RunStatus.FAILED
        if fluent.active_run() is active:
            fluent.end_run(status)
        else:  # the cell ended its own run (mlflow.end_run()) or left children open
            while fluent.active_run() is not None and active in fluent._state.stack:
                fluent.end_run(status)
            if client.get_run(run_id).info.status == RunStatus.RUNNING:
                system_metrics.run_ending(run_id)
                client.set_terminated(run_id, status)
        if self.options.summary:
            self._show_summary(
                client,
                active.info,
                run_id,
                len(params),
                len(metrics),
                len(images),
                duration,
                status,
                n_inputs,
            )

    def _packages_tag(self) -> RunTag:
        """``mltrack.packages`` again after the cell: it may have imported packages itself."""
        from jupyter_mltrack.tracking import context

        try:
            context.note_imports(hidden_state.cell_names(self.transformed).imports)
        except (SyntaxError, ValueError):
            pass
        return RunTag(context.PACKAGES_TAG, context.packages_tag())

    def _log_model(self, active: Any) -> None:
        """``--log-model VAR [--register NAME]``: log the model held in VAR into the cell's run."""
        from jupyter_mltrack.tracking import fluent

        var = self.args.log_model
        if var not in self.shell.user_ns:
            self.notes.append(f"--log-model {var}: no variable named {var!r}; no model logged")
            return
        if fluent.active_run() is not active:
            self.notes.append("--log-model: the cell ended its own run; no model logged")
            return
        model = self.shell.user_ns[var]
        try:
            info = log_any_model(model, self.args.register)
        except MlflowException as err:
            self.notes.append(f"--log-model {var}: {err.message}")
            return
        note = f"model {var} logged as {info.model_uri}"
        if info.registered_model_version is not None:
            note += f", registered as {self.args.register} v{info.registered_model_version}"
        self.notes.append(note)

    def _captured(
        self, analysis: capture.CellAnalysis | None
    ) -> tuple[dict[str, str], dict[str, float]]:
        ns = self.shell.user_ns
        params: dict[str, str] = {}
        metrics: dict[str, float] = {}
        if analysis is not None and self.options.capture_params:
            for name in analysis.params:
                if name in ns:
                    params[name] = capture.param_text(ns[name])
        for name in self.extra_params:
            if name in ns:
                params[name] = capture.param_text(ns[name])
            else:
                self._warn(
                    f"--params {name}: no variable named {name!r} after the cell; not logged."
                )
        candidates = (
            list(analysis.metric_names) if analysis and self.options.capture_metrics else []
        )
        for name in candidates + [n for n in self.extra_metrics if n not in candidates]:
            if name in params or name not in ns:
                if name in self.extra_metrics and name not in ns:
                    self._warn(
                        f"--metrics {name}: no variable named {name!r} after the cell; not logged."
                    )
                continue
            value = ns[name]
            if capture.is_real_scalar(value):
                metrics[name] = float(value)
            elif name in self.extra_metrics or _looks_numeric(value):
                self.notes.append(f"{name} skipped: {type(value).__name__}, not a real scalar")
        return params, metrics

    def _warn(self, message: str) -> None:
        import warnings

        warnings.warn(message, UserWarning, stacklevel=2)

    def _show_summary(
        self,
        client: Any,
        active_info: Any,
        run_id: str,
        n_params: int,
        n_metrics: int,
        n_figures: int,
        duration: float,
        status: str,
        n_inputs: int = 0,
    ) -> None:
        from IPython.display import display

        info = active_info
        experiment = _experiment_name(client, info.experiment_id)
        display(
            RunSummary(
                run_id=run_id,
                run_name=info.run_name or "",
                experiment=experiment,
                status=status,
                n_params=n_params,
                n_metrics=n_metrics,
                n_figures=n_figures,
                duration=duration,
                notes=list(self.notes),
                hidden_state=self.hidden.short() if self.hidden else [],
                n_inputs=n_inputs,
            )
        )


_experiment_names: dict[tuple[str, str], str] = {}


def _experiment_name(client: Any, experiment_id: str) -> str:
    """Experiment names for the summary line, looked up once per kernel."""
    key = (client.tracking_uri, experiment_id)
    if key not in _experiment_names:
        _experiment_names[key] = client.get_experiment(experiment_id).name
    return _experiment_names[key]


def log_any_model(model: Any, register: str | None) -> Any:
    """Log a scikit-learn estimator or a pyfunc PythonModel as ``model`` in the active run."""
    from jupyter_mltrack import pyfunc

    if isinstance(model, pyfunc.PythonModel):
        return pyfunc.log_model(name="model", python_model=model, registered_model_name=register)
    if _is_sklearn_estimator(model):
        from jupyter_mltrack import sklearn

        return sklearn.log_model(model, name="model", registered_model_name=register)
    raise MlflowException(
        f"a {type(model).__name__} is not a model this version can log; --log-model takes "
        "scikit-learn estimators and pyfunc PythonModel instances."
    )


def _is_sklearn_estimator(model: Any) -> bool:
    import sys

    base = sys.modules.get("sklearn.base")
    return base is not None and isinstance(model, base.BaseEstimator)


class _Result:
    """Stands in for IPython's ExecutionResult when the magic is called outside run_cell."""

    error_in_exec: BaseException | None = None


def _looks_numeric(value: Any) -> bool:
    """Strings and arrays (numpy, pandas Series, tensors) deserve a note when skipped."""
    return isinstance(value, str) or (hasattr(value, "dtype") and hasattr(value, "shape"))


def _kernel_id() -> str | None:
    try:
        from ipykernel import get_connection_file

        name = os.path.basename(get_connection_file())
    except Exception:  # not in a kernel (plain IPython, tests)
        return None
    return name.removeprefix("kernel-").removesuffix(".json") or None


def _notebook_path(shell: Any) -> str | None:
    ns = shell.user_ns
    return (
        ns.get("__vsc_ipynb_file__") or ns.get("__session__") or os.environ.get("JPY_SESSION_NAME")
    )
