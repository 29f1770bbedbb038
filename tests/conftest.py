"""Shared fixtures: real stores (an embedded SQLite folder and a real PostgreSQL server)."""

from __future__ import annotations

import os
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
# Keras 3 on PyTorch (installed for the tests) rather than TensorFlow (not installed)
os.environ.setdefault("KERAS_BACKEND", "torch")


@pytest.fixture(autouse=True)
def _isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Every test runs in its own working directory with a clean tracking state."""
    from jupyter_mltrack.tracking.fluent import reset_state

    for var in (
        "MLTRACK_TRACKING_URI",
        "MLFLOW_TRACKING_URI",
        "MLFLOW_EXPERIMENT_NAME",
        "MLFLOW_EXPERIMENT_ID",
    ):
        monkeypatch.delenv(var, raising=False)
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    reset_state()
    yield
    reset_state()


@pytest.fixture(scope="session")
def pg_server() -> Iterator[str]:
    """URL of a real PostgreSQL server: MLTRACK_TEST_PG_URL, else one started for this session."""
    given = os.environ.get("MLTRACK_TEST_PG_URL")
    if given:
        yield given
        return
    pgroot = tempfile.mkdtemp(prefix="mltrack-pg-", dir="/tmp")  # reachable by the postgres user
    env = {**os.environ, "PGROOT": pgroot}
    script = str(ROOT / "scripts" / "pg_throwaway.sh")
    started = subprocess.run([script, "start"], env=env, capture_output=True, text=True)
    if started.returncode != 0:
        pytest.fail(
            "Could not start PostgreSQL for the store tests: "
            f"{started.stderr.strip()}\nRun scripts/install-system-deps.sh (apt-get) first."
        )
    try:
        yield started.stdout.strip().splitlines()[-1]
    finally:
        subprocess.run([script, "stop"], env=env, capture_output=True)


@pytest.fixture
def pg_url(pg_server: str) -> Iterator[str]:
    """A fresh, empty PostgreSQL database for one test (dropped afterwards)."""
    import sqlalchemy as sa

    name = f"t_{uuid.uuid4().hex[:16]}"
    admin = sa.create_engine(pg_server, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.exec_driver_sql(f"CREATE DATABASE {name}")
    base = pg_server.rsplit("/", 1)[0]
    try:
        yield f"{base}/{name}"
    finally:
        from jupyter_mltrack.tracking.fluent import reset_state

        reset_state()
        with admin.connect() as conn:
            conn.exec_driver_sql(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        admin.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
def store_uri(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A tracking URI for each backend: an embedded store folder, and a PostgreSQL database."""
    if request.param == "sqlite":
        return str(tmp_path / "store")
    return request.getfixturevalue("pg_url")


@pytest.fixture(scope="session")
def mlflow_python() -> Path:
    """The venv with the pinned MLflow release the compatibility tests drive (created once by
    benchmarks/setup_mlflow_venv.sh and cached in benchmarks/.venv-mlflow)."""
    import subprocess

    root = Path(__file__).resolve().parent.parent
    done = subprocess.run(
        ["bash", str(root / "benchmarks" / "setup_mlflow_venv.sh")],
        capture_output=True,
        text=True,
        timeout=900,
    )
    if done.returncode != 0:
        pytest.fail(f"Could not set up the MLflow venv: {done.stderr[-2000:]}")
    return root / "benchmarks" / ".venv-mlflow" / "bin" / "python"


@pytest.fixture
def client(store_uri: str):
    """A Client on a fresh store of each backend."""
    from jupyter_mltrack import MlflowClient

    return MlflowClient(store_uri)


@pytest.fixture
def mlflow(store_uri: str):
    """The package used the way users do (``import jupyter_mltrack as mlflow``), on a fresh store."""
    import jupyter_mltrack as mlflow

    mlflow.set_tracking_uri(store_uri)
    return mlflow


@pytest.fixture(scope="session")
def _shell():
    """One real IPython InteractiveShell for the session (history off)."""
    from IPython.core.interactiveshell import InteractiveShell
    from traitlets.config import Config

    config = Config()
    config.HistoryManager.enabled = False
    shell = InteractiveShell.instance(config=config)
    shell.colors = "nocolor"
    return shell


@pytest.fixture
def ip(_shell, tmp_path: Path):
    """The shell with jupyter_mltrack loaded, a clean namespace and a store in tmp_path."""
    import jupyter_mltrack

    _shell.reset(new_session=False)
    _shell.config.pop("MLTrack", None)  # %config of an earlier test must not leak
    jupyter_mltrack.load_ipython_extension(_shell)
    _shell.run_line_magic("mltrack", f"store {tmp_path / 'store'}")
    yield _shell
    jupyter_mltrack.unload_ipython_extension(_shell)
    import matplotlib.pyplot as plt

    plt.close("all")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Run the browser tests last: Playwright's sync API keeps an asyncio loop on the main
    thread for the rest of the session, and asyncio-based fixtures (pytest-jupyter's server,
    anyio) cannot start their own loop after it."""
    browser_dir = Path(__file__).parent / "browser"
    in_browser = [item for item in items if browser_dir in Path(str(item.path)).parents]
    if in_browser:
        items[:] = [item for item in items if item not in in_browser] + in_browser
