"""The magics: ``%%track`` runs a cell as a run; ``%mltrack`` manages and shows runs.

This module only parses arguments and hands over to ``cellrun`` and ``commands``.
"""

from __future__ import annotations

from typing import Any

from IPython.core.error import UsageError
from IPython.core.magic import Magics, cell_magic, line_magic, magics_class
from IPython.core.magic_arguments import argument, magic_arguments, parse_argstring

from jupyter_mltrack.notebook.config import MLTrack


@magics_class
class MLTrackMagics(Magics):
    """``%%track`` and ``%mltrack``."""

    def __init__(self, shell: Any, options: MLTrack) -> None:
        super().__init__(shell)
        self.options = options
        self.cell_id: str | None = None

    def remember_cell(self, info: Any) -> None:
        """pre_run_cell hook: the frontend's cell id (JupyterLab / Notebook 7 send it)."""
        self.cell_id = getattr(info, "cell_id", None)

    @magic_arguments()
    @argument("run_name", nargs="?", help="Name of the run (generated when omitted).")
    @argument("--experiment", "-e", metavar="NAME", help="Experiment of this run (created if new).")
    @argument("--params", metavar="A,B", help="More variables to log as params (any value).")
    @argument("--metrics", metavar="X,Y", help="More variables to log as metrics.")
    @argument("--no-figures", action="store_true", help="Do not save the cell's figures.")
    @argument("--log-model", metavar="VAR", help="Log the model held in variable VAR.")
    @argument("--register", metavar="NAME", help="With --log-model: register it as NAME.")
    @argument("--tag", action="append", default=[], metavar="KEY=VALUE", help="A tag (repeatable).")
    @argument("--nested", action="store_true", help="Run as a child of the active run.")
    @argument(
        "--no-inputs", action="store_true", help="Do not record the data the cell reads as inputs."
    )
    @argument(
        "--system-metrics",
        action="store_true",
        help="Log CPU, memory, disk, network (and GPU) use while the cell runs.",
    )
    @cell_magic
    def track(self, line: str, cell: str) -> None:
        """Run the cell as a tracked run: params, metrics, figures and source captured.

        Params are top-level assignments of literals (``lr = 1e-3``); metrics are top-level
        names holding a real scalar after the cell (``accuracy = score(...)``); figures are the
        matplotlib figures the cell creates or draws; inputs are the DataFrames, Series and
        numpy arrays the cell reads (a digest, not a copy). MLflow calls inside the cell log
        into its run, and ``with mlflow.start_run():`` opens a child run. System metrics are
        logged with ``--system-metrics`` or after ``mlflow.enable_system_metrics_logging()``.
        """
        from jupyter_mltrack.notebook.cellrun import TrackedCell

        try:
            args = parse_argstring(self.track, line)
        except UsageError as err:
            raise UsageError(f"{err}\n{self.track.parser.format_usage()}") from None
        TrackedCell(self.shell, self.options, args, line, cell, self.cell_id).run()

    @line_magic
    def mltrack(self, line: str) -> Any:
        """Manage tracking from the notebook.

        %mltrack experiment [NAME]         show or set the active experiment
        %mltrack store [URI]               show or set the store (folder, sqlite:///, postgresql://)
        %mltrack runs [FILTER]             runs of the active experiment (search grammar)
        %mltrack show RUN                  one run: params, metrics, tags, artifacts, source
        %mltrack compare RUN RUN ... | --last N    runs side by side
        %mltrack registry [NAME]           registered models and versions
        %mltrack recall RUN [--set k=v ...]        put a tracked cell back in the next cell
        %mltrack serve URI [--port P] [--watch] | --stop   serve a model from the kernel
        %mltrack reproduce RUN [--tolerance T]     re-run a run and compare params and metrics

        In a notebook, runs / show / compare / registry open interactive panels
        (jupyter_mltrack.widgets); add --text for a plain table (what a terminal gets).
        """
        from jupyter_mltrack.notebook.commands import run_command

        return run_command(self.shell, self.options, line)
