"""Benchmark 8: serving a model over HTTP (``models serve``), startup, latency, throughput, memory.

Two models, both fitted on scikit-learn's breast cancer data (a DataFrame) before anything is
timed, logged with the library's own ``sklearn.log_model`` into its own fresh store and served
as ``runs:/<run_id>/model`` by the library's CLI in a subprocess on a free 127.0.0.1 port:

- ``logreg``: ``LogisticRegression(max_iter=10000)``: predict takes microseconds, so the
  server's own overhead dominates;
- ``forest``: ``RandomForestClassifier(n_estimators=100, random_state=0)``: predict dominates.

    ours:   <venv>/bin/mltrack models serve -m runs:/<id>/model -p PORT
    MLflow: <venv>/bin/mlflow models serve -m runs:/<id>/model -p PORT --env-manager local

(the tracking URI is given to the server through MLTRACK_TRACKING_URI / MLFLOW_TRACKING_URI,
and the venv's bin directory is put first on PATH as activating the venv would: MLflow's CLI
starts ``uvicorn`` from PATH).
Per model, one server at a time:

- startup: from ``Popen`` to the first 200 on ``GET /ping`` (polled every 20 ms), the median
  of three starts (the last server started stays up for the rest);
- sequential latency: 50 warm-up requests, then 1,000 one-row ``dataframe_records`` POSTs to
  ``/invocations`` on one keep-alive ``http.client`` connection, p50/p99/mean;
- throughput: 8 client threads, each with its own keep-alive connection, for 5 s;
- memory: VmRSS (and PSS) summed over the server's process tree from /proc, after the load;
- the model's own one-row ``predict`` in this process, timed right after each sequential
  request on the same row (so both see the same moment of the machine), for the RandomForest
  target.

Every response is checked (status 200, JSON ``predictions`` of length 1); errors are counted,
and so are predictions that differ from the fitted model's. Servers are stopped by PID
(SIGTERM to the tree, then SIGKILL after 10 s). A server that does not answer ``/ping`` within
30 s is stopped and started once more with 60 s; if that fails too, the model's entry is
``{"error": reason}`` and the workload goes on.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import threading
import time
import warnings
from importlib import import_module
from pathlib import Path
from typing import Any

from _common import (
    WORK_ROOT,
    base_parser,
    emit,
    lib_version,
    load,
    quiet_env,
    serve_command,
    sklearn_log_kwargs,
    store_uri,
    summary,
    tracking_env,
    workdir,
)

HOST = "127.0.0.1"
MODELS = ("logreg", "forest")
STARTUP_TIMEOUTS_S = (30.0, 60.0)  # first attempt, then one retry
REQUEST_TIMEOUT_S = 30.0
CONCURRENCY = 8
SEQUENTIAL_BUDGET_S = 300.0  # bound on the sequential loop whatever the server does
LOG_DIR = WORK_ROOT / "logs"


def sizes(quick: bool) -> dict[str, Any]:
    if quick:
        return {"warmup": 10, "sequential": 100, "concurrent_s": 1.0, "starts": 1}
    return {"warmup": 50, "sequential": 1000, "concurrent_s": 5.0, "starts": 3}


def train() -> tuple[Any, dict[str, Any]]:
    """(X as a DataFrame, {name: fitted model})."""
    from sklearn.datasets import load_breast_cancer
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.linear_model import LogisticRegression

    X, y = load_breast_cancer(return_X_y=True, as_frame=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        logreg = LogisticRegression(max_iter=10000).fit(X, y)
    forest = RandomForestClassifier(n_estimators=100, random_state=0).fit(X, y)
    return X, {"logreg": logreg, "forest": forest}


def log_models(lib: str, models: dict[str, Any], X: Any, uri: str) -> dict[str, str]:
    """Log each model with the library's own API; ``{name: "runs:/<id>/model"}``."""
    mlflow = load(lib)
    flavor = import_module(f"{mlflow.__name__}.sklearn")
    infer_signature = import_module(f"{mlflow.__name__}.models").infer_signature
    mlflow.set_tracking_uri(uri)
    uris = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for name, model in models.items():
            signature = infer_signature(X, model.predict(X))
            with mlflow.start_run(run_name=f"serve-{name}") as run:
                flavor.log_model(
                    model, name="model", signature=signature, **sklearn_log_kwargs(lib)
                )
            uris[name] = f"runs:/{run.info.run_id}/model"
    return uris


def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


def children_of() -> dict[int, list[int]]:
    """``{ppid: [pid, ...]}`` of every process in /proc."""
    tree: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        tree.setdefault(ppid, []).append(int(entry))
    return tree


def process_tree(pid: int) -> list[int]:
    """``pid`` and all its descendants."""
    tree, out, todo = children_of(), [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        todo.extend(tree.get(p, []))
    return out


def tree_memory(pid: int) -> dict[str, Any]:
    """VmRSS and PSS (bytes) summed over the process tree of ``pid``."""
    rss = pss = 0
    pids = process_tree(pid)
    for p in pids:
        with contextlib.suppress(OSError):
            for line in Path(f"/proc/{p}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    rss += int(line.split()[1]) * 1024
        with contextlib.suppress(OSError):
            for line in Path(f"/proc/{p}/smaps_rollup").read_text().splitlines():
                if line.startswith("Pss:"):
                    pss += int(line.split()[1]) * 1024
    return {"rss_bytes": rss, "pss_bytes": pss or None, "processes": len(pids)}


class Server:
    """One ``models serve`` subprocess; stopped by PID (its whole tree)."""

    def __init__(self, cmd: list[str], env: dict[str, str], port: int, log: Path) -> None:
        self.port, self.log = port, log
        self.log_fh = log.open("w")
        self.log_fh.write(f"$ {' '.join(cmd)}\n")
        self.log_fh.flush()
        self.t0 = time.perf_counter()
        self.proc = subprocess.Popen(
            cmd, env=env, stdout=self.log_fh, stderr=subprocess.STDOUT, start_new_session=True
        )

    def wait_ready(self, timeout: float) -> float:
        """Seconds from Popen to the first 200 on /ping; raises RuntimeError otherwise."""
        deadline = self.t0 + timeout
        while time.perf_counter() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited with {self.proc.returncode} before /ping")
            try:
                conn = http.client.HTTPConnection(HOST, self.port, timeout=1.0)
                conn.request("GET", "/ping")
                status = conn.getresponse().status
                conn.close()
                if status == 200:
                    return time.perf_counter() - self.t0
            except (OSError, http.client.HTTPException):
                pass
            time.sleep(0.02)
        raise RuntimeError(f"no 200 on /ping within {timeout:.0f} s")

    def stop(self) -> None:
        """SIGTERM to every process of the tree, SIGKILL to what is left after 10 s."""
        pids = process_tree(self.proc.pid) if self.proc.poll() is None else []
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            pass
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and any(Path(f"/proc/{p}").exists() for p in pids[1:]):
            time.sleep(0.1)
        for pid in pids:
            if Path(f"/proc/{pid}").exists():
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(timeout=5)
        self.log_fh.close()


class Client:
    """One keep-alive connection; ``call`` returns (seconds, ok, matches)."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.conn = http.client.HTTPConnection(HOST, port, timeout=REQUEST_TIMEOUT_S)

    def call(self, body: bytes, expected: Any) -> tuple[float, str | None, bool]:
        t0 = time.perf_counter()
        try:
            self.conn.request("POST", "/invocations", body, {"Content-Type": "application/json"})
            resp = self.conn.getresponse()
            data = resp.read()
        except (OSError, http.client.HTTPException) as exc:
            elapsed = time.perf_counter() - t0
            self.conn.close()  # reconnects on the next request
            self.conn = http.client.HTTPConnection(HOST, self.port, timeout=REQUEST_TIMEOUT_S)
            return elapsed, type(exc).__name__, False
        elapsed = time.perf_counter() - t0
        if resp.status != 200:
            return elapsed, f"HTTP {resp.status}", False
        try:
            preds = json.loads(data)["predictions"]
        except (ValueError, KeyError, TypeError):
            return elapsed, "bad JSON", False
        if not isinstance(preds, list) or len(preds) != 1:
            return elapsed, "wrong prediction length", False
        return elapsed, None, preds[0] == expected

    def close(self) -> None:
        self.conn.close()


def percentiles(samples: list[float]) -> dict[str, Any]:
    if not samples:
        return {"n": 0}
    ordered = sorted(samples)
    p99 = (
        statistics.quantiles(ordered, n=100, method="inclusive")[98]
        if len(ordered) > 1
        else ordered[0]
    )
    return {
        "p50": statistics.median(ordered),
        "p99": p99,
        "mean": statistics.fmean(ordered),
        "max": ordered[-1],
        "n": len(ordered),
    }


def count_error(kinds: dict[str, int], error: str | None) -> None:
    if error:
        kinds[error] = kinds.get(error, 0) + 1


def sequential(
    port: int,
    bodies: list[tuple[bytes, Any]],
    n: int,
    warmup: int,
    model: Any,
    rows: list[Any],
) -> dict[str, Any]:
    """``n`` requests one after another; after each, the fitted ``model`` predicts the same row
    here (its own predict time, taken in the same moments as the requests)."""
    client, kinds, samples, mismatched, own = Client(port), {}, [], 0, []
    for i in range(warmup):
        body, expected = bodies[i % len(bodies)]
        _, error, _ = client.call(body, expected)
        count_error(kinds, error)
        model.predict(rows[i % len(rows)])
    start = time.perf_counter()
    for i in range(n):
        if time.perf_counter() - start > SEQUENTIAL_BUDGET_S:
            break
        body, expected = bodies[i % len(bodies)]
        seconds, error, match = client.call(body, expected)
        count_error(kinds, error)
        if error is None:
            samples.append(seconds)
            mismatched += not match
        t0 = time.perf_counter()
        model.predict(rows[i % len(rows)])
        own.append(time.perf_counter() - t0)
    client.close()
    errors = sum(kinds.values())
    return {
        "own_predict": summary(own),
        **percentiles(samples),
        "requested": n,
        "warmup": warmup,
        "errors": errors,
        "error_kinds": kinds,
        "mismatched": mismatched,
    }


def concurrent(port: int, bodies: list[tuple[bytes, Any]], seconds: float) -> dict[str, Any]:
    """``CONCURRENCY`` threads, each with its own keep-alive connection, for ``seconds``."""
    lock = threading.Lock()
    samples: list[float] = []
    kinds: dict[str, int] = {}
    mismatched = [0]
    start_gate = threading.Barrier(CONCURRENCY + 1)
    deadline = [0.0]

    def worker(offset: int) -> None:
        client, mine, my_kinds, my_mismatch = Client(port), [], {}, 0
        start_gate.wait()
        i = offset
        while time.perf_counter() < deadline[0]:
            body, expected = bodies[i % len(bodies)]
            i += CONCURRENCY
            elapsed, error, match = client.call(body, expected)
            count_error(my_kinds, error)
            if error is None:
                mine.append(elapsed)
                my_mismatch += not match
        client.close()
        with lock:
            samples.extend(mine)
            mismatched[0] += my_mismatch
            for k, v in my_kinds.items():
                kinds[k] = kinds.get(k, 0) + v

    threads = [threading.Thread(target=worker, args=(k,)) for k in range(CONCURRENCY)]
    for t in threads:
        t.start()
    deadline[0] = time.perf_counter() + seconds
    t0 = time.perf_counter()
    start_gate.wait()
    for t in threads:
        t.join(timeout=seconds + REQUEST_TIMEOUT_S + 10)
    wall = time.perf_counter() - t0  # includes the requests in flight at the deadline
    errors = sum(kinds.values())
    return {
        "requests_per_s": len(samples) / wall,
        "ok": len(samples),
        "errors": errors,
        "error_kinds": kinds,
        "mismatched": mismatched[0],
        "wall_s": wall,
        "concurrency": CONCURRENCY,
        "latency": percentiles(samples),
    }


def start_server(
    lib: str, name: str, model_uri: str, env: dict[str, str], label: str
) -> tuple[Server | None, float | None, list[str]]:
    """Start one server; (server, seconds to the first /ping, failures). Retried once with a
    longer startup timeout; (None, None, failures) when both attempts fail."""
    failures = []
    for attempt, timeout in enumerate(STARTUP_TIMEOUTS_S, start=1):
        port = free_port()
        log = LOG_DIR / f"serve-{lib}-{name}-server-{label}-{attempt}.log"
        cmd = serve_command(lib, Path(sys.executable).parent, model_uri, port)
        server = Server(cmd, env, port, log)
        try:
            return server, server.wait_ready(timeout), failures
        except BaseException as exc:
            server.stop()
            if not isinstance(exc, RuntimeError):
                raise
            tail = " | ".join(log.read_text().strip().splitlines()[-3:])[-300:]
            failures.append(f"start {label} attempt {attempt}: {exc} (log tail: {tail})")
            print(f"[serve] {lib} {name}: {failures[-1]}", file=sys.stderr, flush=True)
    return None, None, failures


def bench_model(
    lib: str,
    name: str,
    model_uri: str,
    env: dict[str, str],
    bodies: list[Any],
    n: dict[str, Any],
    model: Any,
    rows: list[Any],
) -> dict[str, Any]:
    """Start the server ``n["starts"]`` times (startup: the median); measure the last one."""
    failures: list[str] = []
    startups: list[float] = []
    server = None
    for k in range(n["starts"]):
        server, seconds, failed = start_server(lib, name, model_uri, env, str(k + 1))
        failures += failed
        if server is None:
            return {"error": "server did not start: " + "; ".join(failures), "failures": failures}
        startups.append(seconds)
        if k < n["starts"] - 1:
            server.stop()
    assert server is not None
    try:
        out: dict[str, Any] = {
            "startup_s": statistics.median(startups),
            "startup_samples_s": startups,
        }
        out["memory_idle"] = tree_memory(server.proc.pid)
        out["sequential"] = sequential(
            server.port, bodies, n["sequential"], n["warmup"], model, rows
        )
        out["predict"] = out["sequential"].pop("own_predict")
        out["concurrent"] = concurrent(server.port, bodies, n["concurrent_s"])
        out["memory"] = tree_memory(server.proc.pid)
        out["rss_mb"] = out["memory"]["rss_bytes"] / 2**20
        out["errors"] = out["sequential"]["errors"] + out["concurrent"]["errors"]
        out["mismatched"] = out["sequential"]["mismatched"] + out["concurrent"]["mismatched"]
        if failures:
            out["failures"] = failures
        if server.proc.poll() is not None:
            out["exited_during_load"] = server.proc.returncode
    finally:
        server.stop()
    return out


def main() -> None:
    args = base_parser(__doc__.splitlines()[0]).parse_args()
    n = sizes(args.quick)
    X, models = train()  # before timing; pandas and scikit-learn are imported here
    import sklearn

    result: dict[str, Any] = {
        "lib": args.lib,
        "version": lib_version(args.lib),
        "sklearn": sklearn.__version__,
        "sizes": n,
        "n_rows": len(X),
    }
    # One-row request bodies cycling over the data set, with the fitted model's prediction.
    records = X.to_dict(orient="records")
    one_row = [X.iloc[[i]] for i in range(len(X))]
    LOG_DIR.mkdir(parents=True, exist_ok=True)
    with workdir("serve", args.lib, args.keep) as wd:
        uri = store_uri(args.lib, wd)
        t0 = time.perf_counter()
        uris = log_models(args.lib, models, X, uri)
        result["log_models_s"] = time.perf_counter() - t0
        result["model_uris"] = uris
        env = quiet_env()
        env[tracking_env(args.lib)] = uri
        # As in an activated venv: MLflow's CLI runs `uvicorn` from PATH.
        bin_dir = str(Path(sys.executable).parent)
        env["PATH"] = os.pathsep.join([bin_dir, env.get("PATH", "")])
        for name in MODELS:
            model = models[name]
            preds = model.predict(X).tolist()
            bodies = [
                (json.dumps({"dataframe_records": [rec]}).encode(), pred)
                for rec, pred in zip(records, preds, strict=True)
            ]
            entry = bench_model(args.lib, name, uris[name], env, bodies, n, model, one_row)
            if "sequential" in entry and "p50" in entry["sequential"]:
                entry["p50_minus_predict_s"] = (
                    entry["sequential"]["p50"] - entry["predict"]["median"]
                )
            result[name] = entry
            print(f"[serve] {args.lib} {name}: {json.dumps(entry)[:300]}", file=sys.stderr)
    emit(result)


if __name__ == "__main__":
    main()
