"""``mltrack import`` and ``mltrack export``: parse, then call ``jupyter_mltrack.transfer``."""

from __future__ import annotations

import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import click

from jupyter_mltrack.entities import Run


class _BarReporter:
    """One rich progress bar over runs, with the metric points written so far."""

    def __init__(self, console: Any) -> None:
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
        )

        self.console = console
        self.progress = Progress(
            TextColumn("[bold]runs"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[points]:,} metric points"),
            TimeElapsedColumn(),
            console=console,
            transient=True,
            disable=not console.is_terminal,
        )
        self.task: Any = None
        self.total_points = 0

    def start(self, runs: int) -> None:
        self.progress.start()
        self.task = self.progress.add_task("runs", total=runs, points=0)

    def run_step(self, run: Run, step: str) -> None:
        if step in ("done", "skipped"):
            self.progress.advance(self.task)

    def points(self, count: int) -> None:
        self.total_points += count
        self.progress.update(self.task, points=self.total_points)

    def warn(self, text: str) -> None:
        self.console.print(f"[yellow]warning:[/] {text}", highlight=False)

    def stop(self) -> None:
        self.progress.stop()


def _current_store(ctx: click.Context) -> str:
    from jupyter_mltrack.tracking import config

    root = ctx.find_root().obj or {}
    return root.get("tracking_uri") or config.get_tracking_uri()


def _print_report(console: Any, report: Any) -> None:
    from rich.table import Table

    table = Table(title="Verification", title_justify="left")
    for name in ("", "source", "destination", ""):
        table.add_column(name, justify="right" if name else "left")
    for what, a, b in report.rows:
        table.add_row(what, f"{a:,}", f"{b:,}", "ok" if a == b else "[red]DIFFERS[/]")
    console.print(table)
    for problem in report.problems:
        console.print(f"[red]mismatch:[/] {problem}", highlight=False)


def _print_plan(console: Any, transfer: Any, plan: Any) -> None:
    done = transfer.state.done("run") if transfer.state else set()
    todo = [r for r in plan.runs if r.info.run_id not in done]
    new_experiments = [
        e.name
        for e in plan.experiments
        if transfer.dst is None or transfer.dst.get_experiment_by_name(e.name) is None
    ]
    console.print(
        f"Dry run: {len(plan.experiments)} experiments ({len(new_experiments)} new in the "
        f"destination), {len(todo)} of {len(plan.runs)} runs to copy, "
        f"{len(plan.models)} registered models. Nothing was written.",
        highlight=False,
    )


def run_transfer(
    ctx: click.Context,
    source: str,
    destination: str,
    experiments: Sequence[str],
    state_file: str | None,
    dry_run: bool,
) -> None:
    """Shared body of ``import`` and ``export``."""
    from rich.console import Console

    from jupyter_mltrack.store import canonical_uri
    from jupyter_mltrack.transfer.copy import (
        Transfer,
        destination_exists,
        open_source,
        open_store,
    )
    from jupyter_mltrack.transfer.state import TransferState, default_state_path
    from jupyter_mltrack.transfer.verify import verify

    out = Console(width=None if sys.stdout.isatty() else 200)
    err = Console(stderr=True)
    started = time.monotonic()
    src = open_source(source, destination)
    # a filter matching nothing fails here, before the destination is even opened
    plan = Transfer(src, None, None, experiments).plan()
    src_key, dst_key = canonical_uri(source), canonical_uri(destination)
    path = Path(state_file) if state_file else default_state_path(src_key, dst_key)
    if dry_run:
        dst = open_store(destination, "destination") if destination_exists(destination) else None
        state = TransferState(path, src_key, dst_key) if path.exists() else None
        _print_plan(out, Transfer(src, dst, state, experiments), plan)
        return
    dst = open_store(destination, "destination")
    reporter = _BarReporter(err)
    with TransferState(path, src_key, dst_key) as state:
        transfer = Transfer(src, dst, state, experiments, reporter)
        try:
            summary = transfer.run(plan)
        except KeyboardInterrupt:
            reporter.stop()
            err.print(f"Interrupted. Run the same command again to resume (state: {path}).")
            ctx.exit(130)
        finally:
            reporter.stop()
        report = verify(src, dst, plan, state)
    seconds = time.monotonic() - started
    line = (
        f"Copied {summary.runs_copied} runs ({summary.runs_skipped} already done, "
        f"{summary.runs_redone} redone), {summary.points:,} metric points, "
        f"{summary.inputs} dataset inputs, "
        f"{summary.artifact_files} artifact files, {summary.models_copied} registered models "
        f"({summary.versions_copied} versions) from {source} to {destination} in "
        f"{seconds:.1f} s; verification {'OK' if report.ok else 'FAILED'}."
    )
    if out.is_terminal or not report.ok:
        _print_report(out, report)
    out.print(line, highlight=False, soft_wrap=True)
    if not report.ok:
        ctx.exit(1)


_EXPERIMENT = click.option(
    "--experiment",
    "-e",
    "experiments",
    multiple=True,
    help="Copy only this experiment (repeatable; default: every active experiment).",
)
_STATE = click.option(
    "--state-file",
    type=click.Path(dir_okay=False),
    help="Journal that makes the transfer resumable "
    "(default: ~/.cache/jupyter_mltrack/transfers/<hash>.db).",
)
_DRY = click.option("--dry-run", is_flag=True, help="Show what would be copied; write nothing.")


@click.command("import")
@click.option("--from", "source", required=True, help="Where to copy from: a server or a store.")
@click.option("--to", "destination", help="Where to copy to (default: the current store).")
@_EXPERIMENT
@_STATE
@_DRY
@click.pass_context
def import_cmd(
    ctx: click.Context,
    source: str,
    destination: str | None,
    experiments: tuple[str, ...],
    state_file: str | None,
    dry_run: bool,
) -> None:
    """Copy experiments, runs and registered models from another store or MLflow server.

    Resumable: run the same command again after an interruption. Counts are compared at the
    end; the exit code is 1 when they differ.
    """
    run_transfer(ctx, source, destination or _current_store(ctx), experiments, state_file, dry_run)


@click.command("export")
@click.option("--to", "destination", required=True, help="Where to copy to: a server or a store.")
@click.option("--from", "source", help="Where to copy from (default: the current store).")
@_EXPERIMENT
@_STATE
@_DRY
@click.pass_context
def export_cmd(
    ctx: click.Context,
    destination: str,
    source: str | None,
    experiments: tuple[str, ...],
    state_file: str | None,
    dry_run: bool,
) -> None:
    """Copy experiments, runs and registered models to another store or MLflow server.

    Resumable: run the same command again after an interruption. Counts are compared at the
    end; the exit code is 1 when they differ.
    """
    run_transfer(ctx, source or _current_store(ctx), destination, experiments, state_file, dry_run)
