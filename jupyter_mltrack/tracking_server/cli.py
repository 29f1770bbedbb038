"""``mltrack server``: parse the options, then run the tracking server (nothing else here)."""

from __future__ import annotations

import os

import click

from jupyter_mltrack.tracking_server.auth import MODES, PASSWORD_ENV, TOKEN_ENV, USERNAME_ENV


@click.command("server")
@click.option(
    "--backend-store-uri",
    help="Store to serve: a folder, sqlite:///file.db or a PostgreSQL URL "
    "(default: mltrack --tracking-uri / MLTRACK_TRACKING_URI, else the embedded store).",
)
@click.option(
    "--artifacts-destination",
    help="Where new experiments keep artifacts: a folder or s3://bucket/prefix "
    "(default: the store's artifact folder).",
)
@click.option(
    "--serve-artifacts/--no-serve-artifacts",
    default=True,
    show_default=True,
    help="Clients upload and download artifacts through this server (mlflow-artifacts:/ URIs).",
)
@click.option("--host", "-h", default="127.0.0.1", show_default=True, help="Address to bind.")
@click.option("--port", "-p", default=5000, show_default=True, type=click.IntRange(0, 65535))
@click.option("--workers", "-w", default=1, show_default=True, type=click.IntRange(1, 64))
@click.option(
    "--auth",
    "auth_mode",
    type=click.Choice(MODES),
    default="none",
    show_default=True,
    help=f"token: clients send 'Authorization: Bearer $MLTRACK_SERVER_TOKEN' ({TOKEN_ENV}); "
    f"basic: HTTP basic auth against {USERNAME_ENV} / {PASSWORD_ENV}. Secrets are read from "
    "the environment only.",
)
@click.option(
    "--allow-insecure",
    is_flag=True,
    help="Serve without authentication on a non-loopback address (only behind a proxy that "
    "authenticates).",
)
@click.option(
    "--max-body-mb",
    default=64,
    show_default=True,
    type=click.IntRange(1, 4096),
    help="Largest JSON request body accepted (413 above).",
)
@click.pass_context
def server(
    ctx: click.Context,
    backend_store_uri: str | None,
    artifacts_destination: str | None,
    serve_artifacts: bool,
    host: str,
    port: int,
    workers: int,
    auth_mode: str,
    allow_insecure: bool,
    max_body_mb: int,
) -> None:
    """Run a tracking server speaking MLflow's REST API (MLFLOW_TRACKING_URI=http://HOST:PORT)."""
    from jupyter_mltrack.serving import require_server_packages
    from jupyter_mltrack.tracking_server.app import run_server

    require_server_packages()
    uri = backend_store_uri or (ctx.obj or {}).get("tracking_uri")
    if artifacts_destination:
        # A PostgreSQL store takes its artifact root from here when it is opened, so the
        # Default experiment it creates lives there too (worker processes inherit it).
        os.environ["MLTRACK_ARTIFACT_ROOT"] = artifacts_destination
    run_server(
        uri,
        artifacts_destination=artifacts_destination,
        serve_artifacts=serve_artifacts,
        host=host,
        port=port,
        workers=workers,
        auth_mode=auth_mode,
        allow_insecure=allow_insecure,
        max_body_bytes=max_body_mb * 1024 * 1024,
    )
