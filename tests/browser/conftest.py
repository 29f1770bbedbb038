"""A real JupyterLab driven by Debian's Chromium through Playwright.

``lab`` starts ``jupyter lab`` from the project's venv once per session (per xdist worker) on a
free loopback port, with throwaway Jupyter dirs and a throwaway tracking store that its kernels
inherit through ``MLTRACK_TRACKING_URI``. The browser fixtures of pytest-playwright (``page``)
are pointed at ``/usr/bin/chromium``: Playwright never downloads a browser here.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import nbformat
import pytest

ROOT = Path(__file__).resolve().parents[2]
SCREENSHOTS = ROOT / "test-output" / "screenshots"
CHROMIUM = os.environ.get("MLTRACK_TEST_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",  # root in containers
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",  # small /dev/shm in containers
]
# the lab extensions the panels need; the server must find them in the venv's share/jupyter
LAB_EXTENSIONS = ("@jupyter-widgets/jupyterlab-manager", "anywidget")
# lab settings written into the throwaway settings dir
LAB_SETTINGS = {
    # no news/update toast over the notebook
    "@jupyterlab/apputils-extension/notification": {"fetchNews": "false", "checkForUpdates": False},
    # every cell attached to the DOM, so off-screen outputs can be found and checked
    "@jupyterlab/notebook-extension/tracker": {"windowingMode": "none"},
}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """With xdist, the browser tests share one worker (and so one JupyterLab)."""
    here = Path(__file__).parent
    for item in items:
        if here in Path(str(item.fspath)).parents:
            item.add_marker(pytest.mark.xdist_group("jupyterlab"))


_FAILED = pytest.StashKey[bool]()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo) -> Iterator:
    report = yield
    if report.when == "call":
        item.stash[_FAILED] = report.failed
    return report


@pytest.fixture(autouse=True)
def _report_failure(request: pytest.FixtureRequest, page: Any, lab: Lab) -> Iterator[None]:
    """A failed test leaves a screenshot of the page, and prints the browser's console errors
    and the end of the JupyterLab log (kernel tracebacks land there)."""
    errors: list[str] = []
    page.on("console", lambda msg: errors.append(msg.text) if msg.type == "error" else None)
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    yield
    if request.node.stash.get(_FAILED, False):
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=SCREENSHOTS / f"FAILED-{request.node.name}.png")
        print("browser console errors:", *errors[-20:], sep="\n  ")
        print("end of the JupyterLab log:", *lab.log.read_text().splitlines()[-40:], sep="\n  ")


@pytest.fixture(scope="session")
def base_url() -> None:
    """No base URL (pytest-playwright's own fixture warns under pytest 9)."""
    return None


@pytest.fixture(scope="session")
def browser_type_launch_args(browser_type_launch_args: dict) -> dict:
    if not Path(CHROMIUM).exists():
        pytest.fail(
            f"{CHROMIUM} is missing: run scripts/install-system-deps.sh (scripts/test.sh does)"
        )
    return {
        **browser_type_launch_args,
        "executable_path": CHROMIUM,
        "args": CHROMIUM_ARGS,
        "headless": True,
    }


@pytest.fixture(scope="session")
def browser_context_args(browser_context_args: dict) -> dict:
    return {**browser_context_args, "viewport": {"width": 1400, "height": 1000}}


@dataclass
class Lab:
    """A running JupyterLab: its URL and token, the folder it serves, the store its kernels use
    (a path for ``MlflowClient``), its log, and where the tests put screenshots."""

    url: str
    token: str
    root: Path
    store: Path
    log: Path
    screenshots: Path = SCREENSHOTS

    def add_notebook(self, source: Path) -> str:
        """Copy ``source`` into the served folder without its outputs; return its lab path."""
        nb = nbformat.read(source, as_version=4)
        for cell in nb.cells:
            if cell.cell_type == "code":
                cell.outputs = []
                cell.execution_count = None
        nb.metadata.pop("widgets", None)
        nbformat.write(nb, self.root / source.name)
        return source.name

    def notebook_url(self, name: str, workspace: str) -> str:
        """``name`` opened alone in a fresh lab workspace (no tabs restored from other tests)."""
        return f"{self.url}/lab/workspaces/{workspace}/tree/{name}?reset&token={self.token}"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _get(url: str) -> str:
    with urllib.request.urlopen(url, timeout=5) as response:
        return response.read().decode()


def _stop(proc: subprocess.Popen) -> None:
    """SIGTERM (a clean shutdown, kernels included), then SIGKILL of the whole process group."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            pass
    try:
        os.killpg(proc.pid, signal.SIGKILL)  # kernels left behind, or a hung shutdown
    except ProcessLookupError:
        pass
    proc.wait(timeout=10)


@pytest.fixture(scope="session")
def lab() -> Iterator[Lab]:
    """JupyterLab from the venv on 127.0.0.1, serving a temp folder; stopped at session end."""
    tmp = Path(tempfile.mkdtemp(prefix="mltrack-lab-"))
    root, home, store = tmp / "root", tmp / "home", tmp / "store"
    root.mkdir()
    for name, values in LAB_SETTINGS.items():
        path = home / "settings" / f"{name}.jupyterlab-settings"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(values))
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("MLFLOW_", "MLTRACK_", "JUPYTER", "IPYTHON"))
    }
    env.update(
        JUPYTER_CONFIG_DIR=str(home / "config"),
        JUPYTER_DATA_DIR=str(home / "data"),  # the venv's share/jupyter stays on the path
        JUPYTER_RUNTIME_DIR=str(home / "runtime"),
        JUPYTERLAB_SETTINGS_DIR=str(home / "settings"),
        JUPYTERLAB_WORKSPACES_DIR=str(home / "workspaces"),
        IPYTHONDIR=str(home / "ipython"),
        MLTRACK_TRACKING_URI=str(store),
        PYTHONUNBUFFERED="1",
    )
    port, token = _free_port(), "mltrack-browser-test"
    url = f"http://127.0.0.1:{port}"
    log_path = tmp / "lab.log"
    jupyter = Path(sys.executable).parent / "jupyter"
    with open(log_path, "w") as log:
        proc = subprocess.Popen(
            [
                str(jupyter),
                "lab",
                "--no-browser",
                "--ServerApp.ip=127.0.0.1",
                f"--ServerApp.port={port}",
                "--ServerApp.port_retries=0",
                f"--IdentityProvider.token={token}",
                f"--ServerApp.root_dir={root}",
                *(["--allow-root"] if os.geteuid() == 0 else []),
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=env,
            cwd=root,
            start_new_session=True,  # its own process group: server and kernels die together
        )
    try:
        deadline = time.monotonic() + 90
        while True:
            try:
                _get(f"{url}/api/status?token={token}")
                break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    pytest.fail(f"JupyterLab did not start:\n{log_path.read_text()}")
                time.sleep(0.25)
        page = _get(f"{url}/lab?token={token}")
        missing = [name for name in LAB_EXTENSIONS if f'"name": "{name}"' not in page]
        if missing:
            pytest.fail(
                f"JupyterLab runs without the lab extensions {missing}; is the venv's share/jupyter on its path?"
            )
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        for old in SCREENSHOTS.glob("FAILED-*.png"):
            old.unlink()
        yield Lab(url=url, token=token, root=root, store=store, log=log_path)
    finally:
        _stop(proc)
        shutil.rmtree(tmp, ignore_errors=True)
