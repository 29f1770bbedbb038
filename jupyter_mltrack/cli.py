"""The ``mltrack`` command line: it parses arguments and calls the library, nothing more."""

from __future__ import annotations

import importlib
import json
import re
import sys
from typing import Any

import click

from jupyter_mltrack.entities import ViewType
from jupyter_mltrack.exceptions import MlflowException
from jupyter_mltrack.timefmt import format_time

_VIEWS = {"active": ViewType.ACTIVE_ONLY, "deleted": ViewType.DELETED_ONLY, "all": ViewType.ALL}


def _client(ctx: click.Context) -> Any:
    from jupyter_mltrack.tracking.client import Client

    return Client(ctx.obj.get("tracking_uri"))


def _time(ms: int | None) -> str:
    return format_time(ms, missing="-")


def _duration(start: int | None, end: int | None) -> str:
    if not start or not end:
        return "-"
    seconds = (end - start) / 1000
    return f"{seconds:.1f}s" if seconds < 60 else f"{seconds / 60:.1f}min"


def _print_table(title: str, columns: list[str], rows: list[list[str]]) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=title, title_justify="left")
    for name in columns:
        table.add_column(name, no_wrap=True)
    for row in rows:
        table.add_row(*row)
    # Piped output (files, CI logs) is not cut to 80 columns.
    Console(width=None if sys.stdout.isatty() else 250).print(table)


# Commands whose modules are imported only when used: `mltrack models serve` starts faster
# without the server, projects and transfer code (and what they import).
_LAZY_COMMANDS = {
    "models": "jupyter_mltrack.serving.cli:models",
    "server": "jupyter_mltrack.tracking_server.cli:server",
    "import": "jupyter_mltrack.transfer.cli:import_cmd",
    "export": "jupyter_mltrack.transfer.cli:export_cmd",
    "run": "jupyter_mltrack.projects.cli:run_cmd",
    "reproduce": "jupyter_mltrack.projects.reproduce_cli:reproduce_cmd",
}


class _Group(click.Group):
    """Turns our errors into a one-line message and exit code 1 instead of a traceback, and
    imports the modules of the lazy commands only when one of them runs."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted([*super().list_commands(ctx), *_LAZY_COMMANDS])

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        target = _LAZY_COMMANDS.get(cmd_name)
        if target is None:
            return super().get_command(ctx, cmd_name)
        module, attribute = target.split(":")
        return getattr(importlib.import_module(module), attribute)

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except MlflowException as err:
            raise click.ClickException(err.message) from None


@click.group(cls=_Group)
@click.option(
    "--tracking-uri",
    envvar="MLTRACK_TRACKING_URI",
    help="Store to use: a folder, sqlite:///file.db or a PostgreSQL URL "
    "(default: the embedded store of this project).",
)
@click.version_option(package_name="jupyter-mltrack")
@click.pass_context
def main(ctx: click.Context, tracking_uri: str | None) -> None:
    """Track, compare and manage machine-learning runs (jupyter_mltrack)."""
    ctx.ensure_object(dict)
    ctx.obj["tracking_uri"] = tracking_uri


@main.group()
def experiments() -> None:
    """List experiments."""


@experiments.command("list")
@click.option("--view", type=click.Choice(sorted(_VIEWS)), default="active", show_default=True)
@click.pass_context
def experiments_list(ctx: click.Context, view: str) -> None:
    """List the experiments in the store."""
    client = _client(ctx)
    found, token = [], None
    while True:
        page = client.search_experiments(view_type=_VIEWS[view], page_token=token)
        found.extend(page)
        token = page.token
        if not token:
            break
    rows = [
        [e.experiment_id, e.name, e.lifecycle_stage, _time(e.creation_time), e.artifact_location]
        for e in found
    ]
    _print_table(
        f"Experiments in {client.tracking_uri}",
        ["id", "name", "stage", "created", "artifacts"],
        rows,
    )


@main.group()
def runs() -> None:
    """List, show and inspect runs."""


def _parse_metric_columns(runs_found: list[Any], limit: int = 4) -> tuple[list[str], list[str]]:
    params = sorted({k for r in runs_found for k in r.data.params})[:limit]
    metrics = sorted({k for r in runs_found for k in r.data.metrics})[:limit]
    return params, metrics


@runs.command("list")
@click.option("--experiment-name", "-e", help="Experiment name (default: all active experiments).")
@click.option("--experiment-id", help="Experiment id.")
@click.option(
    "--filter",
    "filter_string",
    default="",
    help='Search filter, e.g. "metrics.f1 > 0.8 AND params.lr = 0.1".',
)
@click.option("--order-by", multiple=True, help='Order, e.g. "metrics.f1 DESC" (repeatable).')
@click.option("--max-results", default=50, show_default=True, type=click.IntRange(1, 50_000))
@click.option("--view", type=click.Choice(sorted(_VIEWS)), default="active", show_default=True)
@click.pass_context
def runs_list(
    ctx: click.Context,
    experiment_name: str | None,
    experiment_id: str | None,
    filter_string: str,
    order_by: tuple[str, ...],
    max_results: int,
    view: str,
) -> None:
    """List runs matching a filter as a table."""
    client = _client(ctx)
    if experiment_name:
        experiment = client.get_experiment_by_name(experiment_name)
        if experiment is None:
            raise click.ClickException(
                f"No experiment named {experiment_name!r}; see `mltrack experiments list`."
            )
        ids = [experiment.experiment_id]
    elif experiment_id:
        ids = [client.get_experiment(experiment_id).experiment_id]
    else:
        ids = [e.experiment_id for e in client.search_experiments(max_results=50_000)]
    found = client.search_runs(
        ids, filter_string, _VIEWS[view], max_results, list(order_by) or None
    )
    params, metrics = _parse_metric_columns(found)
    columns = ["run_id", "name", "status", "start", "duration", *params, *metrics]
    rows = [
        [
            r.info.run_id,
            r.info.run_name or "",
            r.info.status,
            _time(r.info.start_time),
            _duration(r.info.start_time, r.info.end_time),
            *[r.data.params.get(p, "") for p in params],
            *[_fmt(r.data.metrics.get(m)) for m in metrics],
        ]
        for r in found
    ]
    more = " (more: raise --max-results)" if found.token else ""
    _print_table(f"{len(found)} run(s){more}", columns, rows)


def _fmt(value: float | None) -> str:
    return "" if value is None else f"{value:.4g}"


@runs.command("show")
@click.argument("run_id")
@click.option("--json", "as_json", is_flag=True, help="Print the run as JSON.")
@click.pass_context
def runs_show(ctx: click.Context, run_id: str, as_json: bool) -> None:
    """Show one run: info, params, metrics and tags."""
    run = _client(ctx).get_run(run_id)
    if as_json:
        click.echo(json.dumps(run.to_dictionary(), indent=2, default=str))
        return
    info = run.info
    click.echo(f"Run {info.run_id} ({info.run_name})")
    click.echo(
        f"  experiment: {info.experiment_id}   status: {info.status}   stage: {info.lifecycle_stage}"
    )
    click.echo(
        f"  started: {_time(info.start_time)}   ended: {_time(info.end_time)}   duration: {_duration(info.start_time, info.end_time)}"
    )
    click.echo(f"  artifacts: {info.artifact_uri}")
    for title, values in (
        ("params", run.data.params),
        ("metrics", run.data.metrics),
        ("tags", run.data.tags),
    ):
        click.echo(f"{title}:")
        for key in sorted(values):
            click.echo(f"  {key} = {values[key]}")


_AGE = re.compile(r"^(\d+)([smhd])$")


def _age_ms(text: str | None) -> int | None:
    if not text:
        return None
    match = _AGE.match(text.strip())
    if not match:
        raise click.BadParameter(
            "use a number and a unit: 30s, 15m, 12h or 7d.", param_hint="--older-than"
        )
    factor = {"s": 1, "m": 60, "h": 3600, "d": 86400}[match.group(2)]
    return int(match.group(1)) * factor * 1000


@main.command()
@click.option(
    "--older-than", help="Only remove what was deleted longer ago than this (30s, 15m, 12h, 7d)."
)
@click.option("--yes", "-y", is_flag=True, help="Do not ask for confirmation.")
@click.pass_context
def gc(ctx: click.Context, older_than: str | None, yes: bool) -> None:
    """Permanently remove deleted runs and experiments, with their artifacts."""
    age = _age_ms(older_than)
    client = _client(ctx)
    deleted_runs = client.search_runs(
        [
            e.experiment_id
            for e in client.search_experiments(view_type=ViewType.ALL, max_results=50_000)
        ],
        run_view_type=ViewType.DELETED_ONLY,
        max_results=50_000,
    )
    deleted_exps = client.search_experiments(view_type=ViewType.DELETED_ONLY, max_results=50_000)
    if not deleted_runs and not deleted_exps:
        click.echo("Nothing to remove: no deleted runs or experiments.")
        return
    click.echo(
        f"This permanently removes up to {len(deleted_runs)} deleted run(s) and "
        f"{len(deleted_exps)} deleted experiment(s) with their artifacts"
        + (f" (deleted more than {older_than} ago)" if older_than else "")
        + f" from {client.tracking_uri}."
    )
    if not yes and not click.confirm("Continue?", default=False):
        click.echo("Nothing removed.")
        return
    run_ids, exp_ids = client.store.gc(age)
    click.echo(f"Removed {len(run_ids)} run(s) and {len(exp_ids)} experiment(s).")


if __name__ == "__main__":
    main()
