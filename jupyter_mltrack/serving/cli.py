"""``mltrack models ...``: the click group for serving models (MLflow's option names).

It only parses and calls the library; importing it costs nothing but click.
"""

from __future__ import annotations

import importlib.util

import click

from jupyter_mltrack.serving import DEFAULT_MAX_BODY_BYTES as _DEFAULT_MAX_BODY

_ENV_MANAGERS = ("local", "virtualenv", "conda")


@click.group("models")
def models() -> None:
    """Serve models and score data with them."""


@models.command("serve")
@click.option(
    "-m",
    "--model-uri",
    required=True,
    metavar="URI",
    help="models:/Name/Stage, models:/Name@alias, models:/Name/3, runs:/<run_id>/model or a path.",
)
@click.option("-p", "--port", default=5000, show_default=True, type=click.IntRange(0, 65535))
@click.option(
    "-h",
    "--host",
    default="127.0.0.1",
    show_default=True,
    help="Address to bind; 0.0.0.0 makes the server reachable from other machines.",
)
@click.option("-w", "--workers", default=1, show_default=True, type=click.IntRange(1, 64))
@click.option(
    "--env-manager",
    type=click.Choice(_ENV_MANAGERS),
    default="local",
    show_default=True,
    help="local: this Python environment; virtualenv: one built from the model's requirements.",
)
@click.option(
    "--watch",
    is_flag=True,
    help="Follow the registry: reload when the served stage or alias moves to another version.",
)
@click.option(
    "--poll-interval",
    default=1.0,
    show_default=True,
    type=click.FloatRange(0.05),
    help="Seconds between registry checks with --watch.",
)
@click.option(
    "--max-body-bytes",
    default=_DEFAULT_MAX_BODY,
    show_default=True,
    type=click.IntRange(1),
    help="Larger request bodies are answered with 413.",
)
@click.pass_context
def serve(
    ctx: click.Context,
    model_uri: str,
    port: int,
    host: str,
    workers: int,
    env_manager: str,
    watch: bool,
    poll_interval: float,
    max_body_bytes: int,
) -> None:
    """Serve a model over HTTP: POST /invocations, GET /ping /health /version /metadata."""
    tracking_uri = (ctx.obj or {}).get("tracking_uri")
    options = {
        "model_uri": model_uri,
        "host": host,
        "port": port,
        "workers": workers,
        "watch": watch,
        "max_body_bytes": max_body_bytes,
        "poll_interval": poll_interval,
        "tracking_uri": tracking_uri,
    }
    if env_manager == "conda":
        raise click.ClickException(
            "--env-manager conda is not supported here; use --env-manager virtualenv (a venv "
            "built from the model's requirements.txt) or local (this environment)."
        )
    if env_manager == "virtualenv":
        ctx.exit(_serve_in_virtualenv(options) or 0)
    from jupyter_mltrack.serving import require_server_packages

    require_server_packages()
    from jupyter_mltrack.serving.server import run_server

    run_server(**options)


def _serve_in_virtualenv(options: dict[str, object]) -> int | None:
    """Run the server from the model's own environment; its exit code."""
    if importlib.util.find_spec("jupyter_mltrack.serving.envs") is None:
        raise click.ClickException(
            "--env-manager virtualenv is not available in this version of jupyter_mltrack "
            "(jupyter_mltrack.serving.envs is missing); use --env-manager local."
        )
    from jupyter_mltrack.serving import envs

    runner = getattr(envs, "serve_in_virtualenv", None)
    if runner is None:
        raise click.ClickException(
            "--env-manager virtualenv is not available in this version of jupyter_mltrack "
            "(jupyter_mltrack.serving.envs has no serve_in_virtualenv); use --env-manager local."
        )
    return runner(**options)


# -- batch scoring, environments, containers (serving/batch.py, envs.py, docker.py) -------------


def _tracking_uri() -> str | None:
    """``mltrack --tracking-uri``, made the store that ``models:/`` and ``runs:/`` URIs
    resolve against."""
    uri = (click.get_current_context().obj or {}).get("tracking_uri")
    if uri:
        from jupyter_mltrack.tracking.fluent import set_tracking_uri

        set_tracking_uri(uri)
    return uri


@models.command("predict")
@click.option("--model-uri", "-m", required=True, help="Model URI: runs:/, models:/ or a path.")
@click.option(
    "--input-path", "-i", required=True, help="CSV, JSON, JSON lines (.jsonl) or parquet file."
)
@click.option(
    "--output-path",
    "-o",
    required=True,
    help="Where to write predictions (.csv .json .jsonl .parquet).",
)
@click.option(
    "--content-type",
    "-t",
    type=click.Choice(["csv", "json", "jsonl", "parquet"], case_sensitive=False),
    help="Input format (default: from the input file's extension).",
)
@click.option(
    "--output-format",
    type=click.Choice(["csv", "json", "jsonl", "parquet"], case_sensitive=False),
    help="Output format (default: from the output file's extension).",
)
@click.option(
    "--chunk-size",
    type=click.IntRange(min=1),
    default=10_000,
    show_default=True,
    help="Rows scored at a time: memory holds about one chunk.",
)
@click.option(
    "--progress/--no-progress",
    default=None,
    help="Show a progress bar (default: for large inputs, when stderr is a terminal).",
)
@click.option(
    "--env-manager", type=click.Choice(["local", "virtualenv"]), default="local", show_default=True
)
def models_predict(
    model_uri: str,
    input_path: str,
    output_path: str,
    content_type: str | None,
    output_format: str | None,
    chunk_size: int,
    progress: bool | None,
    env_manager: str,
) -> None:
    """Score a file with a model, in chunks, writing predictions to OUTPUT."""
    tracking_uri = _tracking_uri()
    if env_manager == "virtualenv":
        from jupyter_mltrack.serving.envs import prepare_env, run_in_env

        args = ["models", "predict", "-m", model_uri, "-i", input_path, "-o", output_path]
        args += ["--chunk-size", str(chunk_size), "--env-manager", "local"]
        args += ["--content-type", content_type] if content_type else []
        args += ["--output-format", output_format] if output_format else []
        args += [] if progress is None else ["--progress" if progress else "--no-progress"]
        raise SystemExit(run_in_env(prepare_env(model_uri, quiet=False), args, tracking_uri))
    from jupyter_mltrack.serving.batch import predict_batch

    result = predict_batch(
        model_uri,
        input_path,
        output_path,
        content_type=content_type,
        output_format=output_format,
        chunk_size=chunk_size,
        progress=progress,
    )
    click.echo(
        f"Wrote {result.rows} prediction(s) ({', '.join(result.columns) or 'no columns'}) "
        f"to {result.output_path}",
        err=True,
    )


@models.command("prepare-env")
@click.option("--model-uri", "-m", required=True, help="Model URI: runs:/, models:/ or a path.")
@click.option("--env-manager", type=click.Choice(["virtualenv"]), default="virtualenv")
def models_prepare_env(model_uri: str, env_manager: str) -> None:
    """Build (or find in the cache) the model's virtual environment, and print its path."""
    from jupyter_mltrack.serving.envs import prepare_env

    _tracking_uri()
    click.echo(str(prepare_env(model_uri, quiet=False)))


@models.command("generate-dockerfile")
@click.option("--model-uri", "-m", required=True, help="Model URI: runs:/, models:/ or a path.")
@click.option(
    "--output-directory",
    "-d",
    default="mltrack-dockerfile",
    show_default=True,
    help="Folder for the build context (new or empty).",
)
def models_generate_dockerfile(model_uri: str, output_directory: str) -> None:
    """Write a Docker build context (Dockerfile, model, requirements) serving on port 8080."""
    from jupyter_mltrack.serving.docker import generate_build_context

    _tracking_uri()
    ctx = generate_build_context(model_uri, output_directory)
    click.echo(f"Build context written to {ctx}\nBuild it with: docker build -t NAME {ctx}")


@models.command("build-docker")
@click.option("--model-uri", "-m", required=True, help="Model URI: runs:/, models:/ or a path.")
@click.option("--name", "-n", required=True, help="Image name (tag), e.g. my-model:1.")
@click.option(
    "--output-directory",
    "-d",
    help="Keep the build context in this folder (default: a new temporary folder).",
)
def models_build_docker(model_uri: str, name: str, output_directory: str | None) -> None:
    """Build a Docker image serving the model on port 8080 (needs a Docker engine)."""
    from jupyter_mltrack.serving.docker import build_docker

    _tracking_uri()
    ctx = build_docker(model_uri, name, output_directory)
    click.echo(f"Built image {name} (context: {ctx}); run it with: docker run -p 8080:8080 {name}")
