"""Server fixtures shared between test modules: a real ``mlflow server`` and ``mltrack server``.

Import the fixtures into a test module (``from tests.servers import mlflow_server``). The
startup helpers are those of tests/test_rest_client.py and tests/test_server_routes.py.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator

import pytest

from tests.test_rest_client import (
    _free_port,
    _start_mlflow,
    _stop,
    _wait_for_health,
)
from tests.test_server_routes import Server, start_server


@pytest.fixture(scope="session")
def mlflow_server(tmp_path_factory: pytest.TempPathFactory, mlflow_python: object) -> Iterator[str]:
    """URL of a real ``mlflow server`` (MLflow from benchmarks/.venv-mlflow) on a free port."""
    root = tmp_path_factory.mktemp("mlflow-server")
    port = _free_port()
    proc = _start_mlflow(root, port)
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_for_health(url, proc, root / "server.log", 120)
        yield url
    finally:
        _stop(proc)


@pytest.fixture(scope="session", params=["sqlite", "postgresql"])
def mltrack_server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Server]:
    """Our own ``mltrack server`` with proxied artifacts, on a SQLite store then on a fresh
    PostgreSQL database (``pg_server`` from conftest.py)."""
    root = tmp_path_factory.mktemp(f"mltrack-server-{request.param}")
    drop: Callable[[], None] | None = None
    if request.param == "sqlite":
        store = str(root / "store")
    else:
        import sqlalchemy as sa

        pg = request.getfixturevalue("pg_server")
        name = f"transfer_{uuid.uuid4().hex[:12]}"
        admin = sa.create_engine(pg, isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            conn.exec_driver_sql(f"CREATE DATABASE {name}")
        store = f"{pg.rsplit('/', 1)[0]}/{name}"

        def drop() -> None:
            with admin.connect() as conn:
                conn.exec_driver_sql(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
            admin.dispose()

    server = start_server(store, cwd=root, artifacts=root / "artifacts")
    server.backend = request.param  # type: ignore[attr-defined]
    try:
        yield server
    finally:
        server.stop()
        if drop is not None:
            drop()
