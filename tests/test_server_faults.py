"""Faults under load: ``mltrack server --workers 2`` on a real PostgreSQL, 8 client processes.

Every client is a real process running our client (``set_tracking_uri("http://...")``, buffered
``log_metric``, ``end_run``) against a real server started here. Checked afterwards through the
server: every point is there exactly once (steps 0..n-1, no duplicate), every run FINISHED.

- 8 clients x 10,000 points, into 8 runs and into one shared run (distinct keys), spread over
  the server's two worker processes (which share nothing but the database);
- the server SIGKILLed (its whole process group) mid-load and started again on the same port:
  the clients retry through the outage;
- PostgreSQL stopped mid-load and started again on the same port and data: meanwhile the server
  answers 503 TEMPORARILY_UNAVAILABLE (MLflow's JSON error body, never a 500), then recovers.

Run as a script, this module is one client process (``python test_server_faults.py URL ...``).
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PG_SCRIPT = str(ROOT / "scripts" / "pg_throwaway.sh")
API = "/api/2.0/mlflow"
CLIENTS = 8
# Clients retry often and long enough to outlast a restart of a few seconds:
# sleeps 0, 0.2, 0.4 ... 12.8 s (about 25 s in all before the eighth retry).
CLIENT_ENV = {"MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "0.1", "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "15"}


# -- one client process ------------------------------------------------------------------------
def _client_main(url: str, run_id: str, key: str, points: int, chunk: int) -> None:
    """Log ``points`` points of ``key`` to ``run_id`` through the buffered writer, flushing every
    ``chunk`` points and printing the count flushed so far; wait for "go" on stdin first."""
    import jupyter_mltrack as mlflow

    mlflow.set_tracking_uri(url)
    with mlflow.start_run(run_id=run_id):  # resumes the run; ends it FINISHED
        print("ready", flush=True)
        sys.stdin.readline()
        for step in range(points):
            mlflow.log_metric(key, float(step), step=step)
            if (step + 1) % chunk == 0:
                mlflow.flush()  # waits, retrying, while the server or its database is down
                print(step + 1, flush=True)
    print("done", flush=True)


# -- the test side ---------------------------------------------------------------------------
def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLTRACK_", "MLFLOW_"))}
    return {**env, **extra}


class Server:
    """``mltrack server --workers 2`` in its own process group, its log in a file."""

    def __init__(self, store: str, root: Path, port: int | None = None) -> None:
        self.store, self.root = store, root
        self.port = port or _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.procs: list[subprocess.Popen[bytes]] = []
        self.logs: list[Path] = []

    def start(self, timeout: float = 60) -> None:
        import httpx

        log = self.root / f"server-{len(self.procs)}.log"
        self.logs.append(log)
        cmd = [sys.executable, "-m", "jupyter_mltrack.cli", "server", "--backend-store-uri"]
        cmd += [self.store, "--host", "127.0.0.1", "--port", str(self.port), "--workers", "2"]
        with log.open("wb") as out:
            proc = subprocess.Popen(
                cmd, env=_env(), cwd=self.root, stdout=out, stderr=out, start_new_session=True
            )
        self.procs.append(proc)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise AssertionError(f"server exited: {log.read_text()}")
            try:
                if httpx.get(self.url + "/health", timeout=1).text == "OK":
                    return
            except httpx.HTTPError:
                time.sleep(0.05)
        raise AssertionError(f"server did not start in {timeout} s: {log.read_text()}")

    def kill(self, sig: int = signal.SIGKILL) -> None:
        """Signal the process group of the current server (supervisor and workers)."""
        proc = self.procs[-1]
        if proc.poll() is None:
            try:
                os.killpg(proc.pid, sig)
            except ProcessLookupError:
                pass
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()

    def errors(self) -> list[str]:
        """Lines of the logs reporting a 500 (an unexpected error) or worse."""
        return [
            line
            for log in self.logs
            for line in log.read_text(errors="replace").splitlines()
            if " ERROR " in line or " CRITICAL " in line
        ]

    def busy_warnings(self) -> int:
        return sum(log.read_text(errors="replace").count("Database busy") for log in self.logs)


class Clients:
    """Client processes started together ("go" on their stdin); their progress is tracked."""

    def __init__(self, url: str, jobs: list[tuple[str, str]], points: int, chunk: int) -> None:
        self.points = points
        self.progress = [0] * len(jobs)
        self.output: list[list[str]] = [[] for _ in jobs]
        env = _env(**CLIENT_ENV)
        here = str(Path(__file__).resolve())
        self.procs = [
            subprocess.Popen(
                [sys.executable, here, url, run_id, key, str(points), str(chunk)],
                env=env,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
                start_new_session=True,
            )
            for run_id, key in jobs
        ]
        ready = [threading.Event() for _ in jobs]
        self.readers = [
            threading.Thread(target=self._read, args=(i, ready[i]), daemon=True)
            for i in range(len(jobs))
        ]
        for reader in self.readers:
            reader.start()
        for i, event in enumerate(ready):
            assert event.wait(60), f"client {i} did not start: {self.output[i]}"
        for proc in self.procs:  # all at once: the load is really concurrent
            assert proc.stdin is not None
            proc.stdin.write("go\n")
            proc.stdin.flush()

    def _read(self, i: int, ready: threading.Event) -> None:
        stdout = self.procs[i].stdout
        assert stdout is not None
        for line in stdout:
            line = line.strip()
            self.output[i].append(line)
            if line == "ready":
                ready.set()
            elif line.isdigit():
                self.progress[i] = int(line)

    def total(self) -> int:
        return sum(self.progress)

    def wait_for(self, fraction: float, timeout: float = 60) -> list[int]:
        """Block until ``fraction`` of all points were flushed; the progress then."""
        deadline = time.monotonic() + timeout
        while self.total() < fraction * self.points * len(self.procs):
            assert time.monotonic() < deadline, f"no progress: {self.progress}"
            assert all(p.poll() is None for p in self.procs), self.output
            time.sleep(0.005)
        return list(self.progress)

    def finish(self, timeout: float = 90) -> None:
        """Wait for every client; each must exit 0 after flushing everything."""
        deadline = time.monotonic() + timeout
        for i, proc in enumerate(self.procs):
            try:
                proc.wait(timeout=max(1.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                proc.kill()
                raise AssertionError(f"client {i} hung: {self.output[i][-5:]}") from None
            self.readers[i].join(5)
            assert proc.returncode == 0, (i, "\n".join(self.output[i]))
            assert self.output[i][-1] == "done" and self.progress[i] == self.points

    def kill(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()


def _pg(action: str, pgroot: str) -> str:
    done = subprocess.run(
        [PG_SCRIPT, action], env={**os.environ, "PGROOT": pgroot}, capture_output=True, text=True
    )
    assert done.returncode == 0, f"pg_throwaway.sh {action}: {done.stderr}"
    return done.stdout.strip()


def _new_runs(url: str, name: str, count: int) -> list[str]:
    from jupyter_mltrack import MlflowClient

    client = MlflowClient(url)
    experiment_id = client.create_experiment(name)
    return [client.create_run(experiment_id).info.run_id for _ in range(count)]


def _check_every_point_once(url: str, jobs: list[tuple[str, str]], points: int) -> None:
    """Read back through the server: steps 0..points-1 once each, values intact, FINISHED."""
    from jupyter_mltrack import MlflowClient

    client = MlflowClient(url)
    for run_id, key in jobs:
        history = client.get_metric_history(run_id, key)
        steps = [m.step for m in history]
        assert len(history) == points, (run_id, key, len(history))
        assert steps == list(range(points)), (run_id, key, "lost or duplicated steps")
        assert all(m.value == float(m.step) for m in history)
    for run_id in {run_id for run_id, _ in jobs}:
        run = client.get_run(run_id)
        assert run.info.status == "FINISHED"
        assert {k for r, k in jobs if r == run_id} <= set(run.data.metrics)


# -- fixtures --------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def shared_server(pg_server: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """One server for the module's no-fault tests, on a fresh database of the session's PG."""
    import uuid

    import sqlalchemy as sa

    name = f"faults_{uuid.uuid4().hex[:12]}"
    admin = sa.create_engine(pg_server, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.exec_driver_sql(f"CREATE DATABASE {name}")
    server = Server(f"{pg_server.rsplit('/', 1)[0]}/{name}", tmp_path_factory.mktemp("srv"))
    try:
        server.start()
        yield server
    finally:
        server.kill(signal.SIGTERM)
        with admin.connect() as conn:
            conn.exec_driver_sql(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        admin.dispose()


@pytest.fixture
def own_pg() -> Iterator[tuple[str, str]]:
    """A PostgreSQL server of this test alone (it gets stopped): ``(url, PGROOT)``."""
    pgroot = tempfile.mkdtemp(prefix="mltrack-pgf-", dir="/tmp")  # reachable by postgres
    try:
        started = subprocess.run(
            [PG_SCRIPT, "start"],
            env={**os.environ, "PGROOT": pgroot},
            capture_output=True,
            text=True,
        )
        if started.returncode != 0:
            pytest.fail(f"Could not start PostgreSQL: {started.stderr.strip()}")
        yield started.stdout.strip().splitlines()[-1], pgroot
    finally:
        subprocess.run(
            [PG_SCRIPT, "stop"], env={**os.environ, "PGROOT": pgroot}, capture_output=True
        )


# -- the tests -------------------------------------------------------------------------------
@pytest.mark.parametrize("layout", ["own-runs", "one-shared-run"])
def test_eight_clients_lose_and_duplicate_nothing(shared_server: Server, layout: str) -> None:
    """8 processes x 10,000 points at once through 2 server workers: all there, once."""
    points = 10_000
    run_ids = _new_runs(shared_server.url, layout, CLIENTS if layout == "own-runs" else 1)
    if layout == "own-runs":
        jobs = [(run_id, "loss") for run_id in run_ids]
    else:
        jobs = [(run_ids[0], f"loss_{i}") for i in range(CLIENTS)]
    clients = Clients(shared_server.url, jobs, points, chunk=2_500)
    try:
        clients.finish()
    finally:
        clients.kill()
    _check_every_point_once(shared_server.url, jobs, points)
    assert shared_server.errors() == []
    assert shared_server.busy_warnings() == 0  # no call needed a retry


def test_server_killed_and_restarted_mid_load(own_pg: tuple[str, str], tmp_path: Path) -> None:
    """SIGKILL the server (supervisor and both workers) at a quarter of the load and start it
    again on the same port: the clients wait through the outage and every point lands once."""
    points = 3_000
    server = Server(own_pg[0], tmp_path)
    server.start()
    try:
        run_ids = _new_runs(server.url, "killed", CLIENTS)
        jobs = [(run_id, "loss") for run_id in run_ids]
        clients = Clients(server.url, jobs, points, chunk=50)
        try:
            at_kill = clients.wait_for(0.25)
            server.kill()
            time.sleep(1.0)  # clients find nobody listening for a while
            server.start()
            clients.finish()
        finally:
            clients.kill()
        assert sum(p < points for p in at_kill) >= CLIENTS // 2  # killed mid-load
        assert server.procs[0].returncode == -signal.SIGKILL
        _check_every_point_once(server.url, jobs, points)
        assert server.errors() == []
    finally:
        server.kill(signal.SIGTERM)


def test_postgres_restarted_mid_load(own_pg: tuple[str, str], tmp_path: Path) -> None:
    """Stop PostgreSQL at a quarter of the load, start it again (same port and data) a few
    seconds later: meanwhile the server answers 503 with MLflow's error body (clients retry),
    afterwards it serves again on new connections and every point lands once."""
    import httpx

    points = 3_000
    url, pgroot = own_pg
    server = Server(url, tmp_path)
    server.start()
    try:
        run_ids = _new_runs(server.url, "pg-restart", CLIENTS)
        jobs = [(run_id, "loss") for run_id in run_ids]
        clients = Clients(server.url, jobs, points, chunk=50)
        try:
            at_stop = clients.wait_for(0.25)
            _pg("down", pgroot)
            answers = []
            with httpx.Client(base_url=server.url, timeout=30) as http:
                for _ in range(3):  # new connections each time: both workers answer
                    answers.append(http.get(f"{API}/runs/get", params={"run_id": run_ids[0]}))
                    answers.append(
                        http.post(
                            f"{API}/runs/log-batch",
                            json={"run_id": run_ids[0], "metrics": [], "params": [], "tags": []},
                            headers={"Connection": "close"},
                        )
                    )
            time.sleep(2.0)
            during = clients.total()
            _pg("up", pgroot)
            clients.finish()
        finally:
            clients.kill()
        assert sum(p < points for p in at_stop) >= CLIENTS // 2  # stopped mid-load
        assert during < len(jobs) * points  # nobody finished while the database was down
        for answer in answers:
            assert answer.status_code == 503, answer.text
            body = answer.json()
            assert body["error_code"] == "TEMPORARILY_UNAVAILABLE", body
            assert "Traceback" not in body["message"] and "psycopg" not in body["message"]
        _check_every_point_once(server.url, jobs, points)
        assert server.errors() == []  # every database failure was a 503, none a 500
        assert server.busy_warnings() > 0
    finally:
        server.kill(signal.SIGTERM)


def test_connection_lost_before_pool_reset_is_a_warning(
    own_pg: tuple[str, str], caplog: pytest.LogCaptureFixture
) -> None:
    """A pooled connection whose database went away fails its ROLLBACK on checkin: the pool
    discards it, and the log says so as a warning (SQLAlchemy's own ERROR with a traceback
    made every PostgreSQL restart look like a server fault)."""
    from jupyter_mltrack.store.engine import make_engine

    url, pgroot = own_pg
    engine = make_engine(url)
    raw = engine.raw_connection()
    raw.cursor().execute("SELECT 1")  # a transaction is open on the connection
    _pg("down", pgroot)
    try:
        with caplog.at_level(logging.DEBUG, logger="sqlalchemy.pool"):
            raw.close()  # checkin: the pool's ROLLBACK fails
        records = [r for r in caplog.records if r.name.startswith("sqlalchemy.pool")]
        loud = [r for r in records if r.levelno >= logging.WARNING]
        assert [r.levelname for r in loud] == ["WARNING"]
        assert "Database connection lost" in loud[0].getMessage()
        assert loud[0].exc_info is None  # one line, no traceback
    finally:
        _pg("up", pgroot)
    with engine.connect() as conn:  # the next checkout opens a fresh connection
        assert conn.exec_driver_sql("SELECT 1").scalar() == 1
    engine.dispose()


if __name__ == "__main__":
    _client_main(sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5]))
