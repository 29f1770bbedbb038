"""``mltrack run``: MLflow's ``mlflow run`` options; parsing only, the work is in runner.py."""

from __future__ import annotations

import sys

import click

from jupyter_mltrack.projects.runner import BACKENDS, ENV_MANAGERS


def _parameters(pairs: tuple[str, ...]) -> dict[str, str]:
    """``-P k=v`` pairs as a dict; a pair without ``=`` or a name given twice is refused."""
    parsed: dict[str, str] = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or not name:
            raise click.BadParameter(f"{pair!r} is not NAME=VALUE.", param_hint="-P")
        if name in parsed:
            raise click.BadParameter(f"{name!r} is given more than once.", param_hint="-P")
        parsed[name] = value
    return parsed


@click.command("run")
@click.argument("uri")
@click.option(
    "--entry-point",
    "-e",
    default="main",
    show_default=True,
    help="Entry point of the MLproject file, or a .py / .sh file of the project.",
)
@click.option(
    "--version", "-v", help="Git branch, tag or commit to run (git URIs and local repositories)."
)
@click.option(
    "--param-list",
    "-P",
    multiple=True,
    metavar="NAME=VALUE",
    help="A parameter (repeatable). Undeclared names are passed on as --NAME VALUE.",
)
@click.option("--experiment-name", help="Experiment of the run (created if new).")
@click.option("--experiment-id", help="Experiment id of the run.")
@click.option("--backend", "-b", type=click.Choice(BACKENDS), default="local", show_default=True)
@click.option(
    "--env-manager",
    type=click.Choice(ENV_MANAGERS),
    help="local: this Python; virtualenv: a cached venv from python_env.yaml / "
    "requirements.txt; conda. Default: what the project declares, else local.",
)
@click.option("--run-name", help="Name of the run.")
@click.pass_context
def run_cmd(
    ctx: click.Context,
    uri: str,
    entry_point: str,
    version: str | None,
    param_list: tuple[str, ...],
    experiment_name: str | None,
    experiment_id: str | None,
    backend: str,
    env_manager: str | None,
    run_name: str | None,
) -> None:
    """Run the project at URI (a folder or git URI, optionally #subdirectory) as a tracked run.

    The run gets the parameters, the git commit and tags to reproduce it; the command logs
    into it (start_run() attaches to it). Exits with the command's exit code when it fails.
    """
    from jupyter_mltrack.projects.runner import run
    from jupyter_mltrack.projects.spec import ExecutionException

    try:
        result = run(
            uri,
            entry_point=entry_point,
            version=version,
            parameters=_parameters(param_list),
            experiment_name=experiment_name,
            experiment_id=experiment_id,
            backend=backend,
            env_manager=env_manager,
            run_name=run_name,
            tracking_uri=(ctx.obj or {}).get("tracking_uri"),
        )
    except ExecutionException as err:
        click.echo(f"=== {err.message} ===", err=True)
        code = int(err.run.data.tags.get("mltrack.project.exit_code", "1")) if err.run else 1
        sys.exit(code if code > 0 else 1)
    except KeyboardInterrupt:
        click.echo("=== Interrupted: the run is marked KILLED ===", err=True)
        sys.exit(130)
    click.echo(result.info.run_id)
