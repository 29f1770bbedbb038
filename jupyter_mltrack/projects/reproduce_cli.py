"""``mltrack reproduce RUN_ID``: re-execute a run, print both side by side, exit 0 / 1 / 2."""

from __future__ import annotations

import sys

import click

from jupyter_mltrack.projects.reproduce import DEFAULT_TOLERANCE, ENV_MANAGERS


@click.command("reproduce")
@click.argument("run_id")
@click.option(
    "--tolerance",
    type=click.FloatRange(min=0),
    default=DEFAULT_TOLERANCE,
    show_default=True,
    help="A metric matches when |original - new| <= tolerance * max(1, |original|).",
)
@click.option(
    "--env-manager",
    type=click.Choice(ENV_MANAGERS),
    default="local",
    show_default=True,
    help="local: this environment; virtualenv: a cached venv pinned to the recorded packages.",
)
@click.option("--run-name", help="Name of the new run (generated when omitted).")
@click.pass_context
def reproduce_cmd(
    ctx: click.Context, run_id: str, tolerance: float, env_manager: str, run_name: str | None
) -> None:
    """Re-execute run RUN_ID (project, notebook or %%track cell) as a new run and compare.

    Exit code 0 when every metric of the original is reproduced within --tolerance, 1 when
    one is not (or the re-execution failed), 2 when the run cannot be reproduced.
    """
    from rich.console import Console

    from jupyter_mltrack.exceptions import MlflowException
    from jupyter_mltrack.projects.reproduce import reproduce

    tracking_uri = (ctx.obj or {}).get("tracking_uri")
    try:
        result = reproduce(run_id, tolerance, env_manager, run_name, tracking_uri)
    except MlflowException as err:  # NotReproducible, an environment that does not build...
        click.echo(f"Cannot reproduce run {run_id}: {err.message}", err=True)
        ctx.exit(2)
    console = Console(width=None if sys.stdout.isatty() else 250, highlight=False)
    console.print(result.rich_table())
    for note in result.notes:
        console.print(f"note: {note}")
    console.print(result.verdict(), style="bold green" if result.passed else "bold red")
    ctx.exit(result.exit_code)
