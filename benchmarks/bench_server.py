"""Benchmark 10: the team tracking server (``mltrack server``) vs ``mlflow server``.

Both servers run side by side on one throwaway PostgreSQL server (``scripts/pg_throwaway.sh``
with its own ``PGROOT``), each on its own database, with the same number of workers and a local
``--artifacts-destination`` (artifacts go through each server's proxy):

    ours:   .venv/bin/mltrack server --backend-store-uri postgresql+psycopg://.../bench_ours
                --host 127.0.0.1 --port P --workers 2 --artifacts-destination DIR
    MLflow: .venv-mlflow/bin/mlflow server --backend-store-uri postgresql+psycopg2://.../bench_mlflow
                --host 127.0.0.1 --port P --workers 2 --artifacts-destination DIR

This process (run under the project venv) starts PostgreSQL and both servers, fills each
server's database with the search data, then runs the client workload twice in a fresh
process: once with the real ``mlflow`` client (MLflow's venv) and once with ours (the project
venv). Each client process drives both servers with the same code, alternating between them
(``interleaved``), so drift on the shared machine spreads over both:

1. logging: ``start_run(experiment_id=...)`` + ``log_params`` (5) + ``log_metrics`` (3) +
   ``set_tag`` + end of run, per run (fluent API), after warm-up runs; every run read back;
2. metric throughput: ``MlflowClient.log_batch(..., synchronous=True)`` of 1,000 points per
   call into one run (ours would otherwise queue the points and return before sending them);
   points/s over the timed calls; the history is read back and counted;
3. search: ``search_runs([exp], "metrics.f1 > 0.85 AND tags.model_type = 'random_forest'",
   order_by=["metrics.f1 DESC"], max_results=10)`` over 10,000 runs: the first call (cold) and
   the median of the following ones; every answer is checked against the expected top 10;
4. artifacts: ``log_artifact`` of a 50 MB random file to a new run, then ``download_artifacts``
   of it to a fresh folder (bytes and SHA-256 checked).

The search data: our database through our ``Client`` pointed at PostgreSQL directly
(``create_run`` + ``log_batch`` per run); MLflow's by bulk SQL into its own schema (its API is too
slow for 10k runs), as ``bench_search`` does for SQLite; both experiments are created through
the servers, and both databases are ANALYZEd afterwards. Memory: VmRSS (and PSS) of each
server's process tree after both clients are done. Servers are stopped by PID, PostgreSQL by
``pg_throwaway.sh stop``. Server output goes to ``benchmarks/.work/logs/server-<lib>.log``.
"""

from __future__ import annotations

import argparse
import hashlib
import http.client
import json
import os
import shutil
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from _common import (
    BENCH_DIR,
    LIBS,
    WORK_ROOT,
    client_class,
    emit,
    entity_classes,
    interleaved,
    lib_version,
    load,
    parse_result,
    quiet_env,
    summary,
    workdir,
)
from bench_search import TAG_VALUES, dataset, populate_api
from bench_serve import Server, free_port, tree_memory

HOST = "127.0.0.1"
WORKERS = 2
REPO = BENCH_DIR.parent
PG_SCRIPT = REPO / "scripts" / "pg_throwaway.sh"
OURS_BIN = REPO / ".venv" / "bin"
MLFLOW_PYTHON = BENCH_DIR / ".venv-mlflow" / "bin" / "python"
LOG_DIR = WORK_ROOT / "logs"
STARTUP_TIMEOUT_S = 120.0
SEARCH_FILTER = "metrics.f1 > 0.85 AND tags.model_type = 'random_forest'"
ORDER_BY = ["metrics.f1 DESC"]
BATCH = 1000  # points per log_batch call (MLflow's limit per request)
CLIENT_KEYS = {"mlflow": "mlflow_client", "mltrack": "our_client"}


def sizes(quick: bool) -> dict[str, int]:
    if quick:
        return {
            "runs": 30,
            "run_warmup": 5,
            "batch_calls": 5,
            "batch_warmup": 1,
            "search_runs": 1_000,
            "searches": 5,
            "artifact_mb": 10,
            "artifact_reps": 1,
        }
    return {"runs": 200, "run_warmup": 10, "batch_calls": 30, "batch_warmup": 2,
            "search_runs": 10_000, "searches": 20, "artifact_mb": 50, "artifact_reps": 3}  # fmt: skip


# --- the client workload (one fresh process per client library) ----------------------------


def bench_logging(mlflow: Any, clients: dict, urls: dict, n: dict) -> dict[str, Any]:
    """Fluent start_run + 5 params + 3 metrics + 1 tag + end, alternating servers per run."""
    exps = {s: c.create_experiment(f"bench-logging-{mlflow.__name__}") for s, c in clients.items()}
    counter = iter(range(10**9))

    def one_run(server: str) -> float:
        i = next(counter)
        mlflow.set_tracking_uri(urls[server])  # outside the timing
        t0 = time.perf_counter()
        with mlflow.start_run(experiment_id=exps[server]):
            mlflow.log_params({f"p{k}": i * 10 + k for k in range(5)})
            mlflow.log_metrics({f"m{k}": i / (k + 1) for k in range(3)})
            mlflow.set_tag("model_type", TAG_VALUES[i % 3])
        return time.perf_counter() - t0

    samples = interleaved(
        {s: (lambda s=s: one_run(s)) for s in clients}, n["runs"], warmup=n["run_warmup"]
    )
    out = {}
    for server, client in clients.items():
        runs = client.search_runs([exps[server]], max_results=n["runs"] + n["run_warmup"] + 10)
        complete = sum(
            len(r.data.params) == 5
            and len(r.data.metrics) == 3
            and r.data.tags.get("model_type") in TAG_VALUES
            and r.info.status == "FINISHED"
            for r in runs
        )
        out[server] = {**summary(samples[server]), "runs_stored": len(runs), "complete": complete}
    return out


def bench_batch(mlflow: Any, clients: dict, n: dict) -> dict[str, Any]:
    """log_batch of BATCH points per call into one run per server, alternating servers."""
    Metric = entity_classes(mlflow)[0]
    runs = {s: c.create_run(c.create_experiment(f"bench-batch-{mlflow.__name__}")).info.run_id
            for s, c in clients.items()}  # fmt: skip
    steps = dict.fromkeys(clients, 0)

    def one_call(server: str) -> float:
        first, ts = steps[server], int(time.time() * 1000)
        batch = [Metric("loss", 1.0 / (first + j + 1), ts, first + j) for j in range(BATCH)]
        steps[server] += BATCH
        t0 = time.perf_counter()
        clients[server].log_batch(runs[server], metrics=batch, synchronous=True)
        return time.perf_counter() - t0

    samples = interleaved(
        {s: (lambda s=s: one_call(s)) for s in clients}, n["batch_calls"], warmup=n["batch_warmup"]
    )
    out = {}
    for server, client in clients.items():
        stored = len(client.get_metric_history(runs[server], "loss"))
        timed_points = BATCH * len(samples[server])
        out[server] = {
            "points_per_s": timed_points / sum(samples[server]),
            "per_call": summary(samples[server]),
            "points": timed_points,
            "stored": stored,
            "expected": steps[server],
        }
    return out


def expected_top(n_runs: int) -> list[float]:
    """The f1 values the search must return, in order."""
    hits = [m["f1"] for _, m, tag in dataset(n_runs) if m["f1"] > 0.85 and tag == "random_forest"]
    return sorted(hits, reverse=True)[:10]


def bench_search(clients: dict, exps: dict, n: dict) -> dict[str, Any]:
    """First search per server (cold), then the warm ones alternating servers."""
    want = expected_top(n["search_runs"])
    wrong: dict[str, int] = dict.fromkeys(clients, 0)

    def one_search(server: str) -> float:
        t0 = time.perf_counter()
        runs = clients[server].search_runs(
            [exps[server]], filter_string=SEARCH_FILTER, order_by=ORDER_BY, max_results=10
        )
        seconds = time.perf_counter() - t0
        wrong[server] += [r.data.metrics["f1"] for r in runs] != want
        return seconds

    cold = {s: one_search(s) for s in clients}
    samples = interleaved({s: (lambda s=s: one_search(s)) for s in clients}, n["searches"])
    return {
        s: {"cold_s": cold[s], "warm": summary(samples[s]), "wrong_answers": wrong[s]}
        for s in clients
    }


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        while chunk := fh.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def bench_artifacts(mlflow: Any, clients: dict, n: dict, wd: Path) -> dict[str, Any]:
    """log_artifact of a random file to a new run, then download_artifacts, per server."""
    blob = wd / "blob.bin"
    with blob.open("wb") as fh:
        for _ in range(n["artifact_mb"]):
            fh.write(os.urandom(1 << 20))
    digest, size = sha256(blob), blob.stat().st_size
    exps = {
        s: c.create_experiment(f"bench-artifacts-{mlflow.__name__}") for s, c in clients.items()
    }
    up: dict[str, list[float]] = {s: [] for s in clients}
    down: dict[str, list[float]] = {s: [] for s in clients}
    bad: dict[str, int] = dict.fromkeys(clients, 0)
    order = list(clients)
    for rep in range(n["artifact_reps"]):
        for server in order if rep % 2 == 0 else reversed(order):
            client = clients[server]
            run_id = client.create_run(exps[server]).info.run_id
            t0 = time.perf_counter()
            client.log_artifact(run_id, str(blob))
            up[server].append(time.perf_counter() - t0)
            dst = wd / f"download-{server}-{rep}"
            dst.mkdir()
            t0 = time.perf_counter()
            got = Path(client.download_artifacts(run_id, blob.name, dst_path=str(dst)))
            down[server].append(time.perf_counter() - t0)
            bad[server] += got.stat().st_size != size or sha256(got) != digest
            shutil.rmtree(dst)
    mb = size / 2**20
    return {
        s: {"bytes": size, "upload": summary(up[s]), "download": summary(down[s]),
            "upload_mb_per_s": mb / summary(up[s])["median"],
            "download_mb_per_s": mb / summary(down[s])["median"], "corrupted": bad[s]}
        for s in clients
    }  # fmt: skip


def client_phase(args: argparse.Namespace) -> None:
    """Drive every server in ``--urls`` with one client library; emit its figures."""
    mlflow = load(args.client)
    urls = json.loads(args.urls)
    exps = json.loads(args.search_exps)
    n = sizes(args.quick)
    clients = {s: client_class(mlflow)(tracking_uri=url) for s, url in urls.items()}
    out: dict[str, Any] = {"client": args.client, "version": lib_version(args.client)}
    parts = {
        "logging": lambda wd: bench_logging(mlflow, clients, urls, n),
        "batch": lambda wd: bench_batch(mlflow, clients, n),
        "search": lambda wd: bench_search(clients, exps, n),
        "artifacts": lambda wd: bench_artifacts(mlflow, clients, n, wd),
    }
    with workdir("server-client", args.client) as wd:
        for name, part in parts.items():
            t0 = time.perf_counter()
            try:
                out[name] = part(wd)
            except Exception as exc:  # one failed part must not hide the others
                out[name] = {"error": f"{type(exc).__name__}: {exc}"[:500]}
            print(f"[server] {args.client} client: {name} {time.perf_counter() - t0:.1f} s",
                  file=sys.stderr, flush=True)  # fmt: skip
    emit(out)


# --- PostgreSQL, servers, populating (the main process, project venv) -----------------------


def pg_start(root: Path) -> str:
    """Start the throwaway PostgreSQL in ``root``; its SQLAlchemy URL (psycopg)."""
    env = {**os.environ, "PGROOT": str(root)}
    proc = subprocess.run(["bash", str(PG_SCRIPT), "start"], env=env, capture_output=True,
                          text=True, check=True)  # fmt: skip
    return proc.stdout.strip().splitlines()[-1]


def pg_stop(root: Path) -> None:
    subprocess.run(["bash", str(PG_SCRIPT), "stop"], env={**os.environ, "PGROOT": str(root)},
                   capture_output=True, check=False)  # fmt: skip


def create_databases(url: str, names: list[str]) -> dict[str, str]:
    """``{name: plain postgresql:// URL}`` of new databases on the server of ``url``."""
    import psycopg

    parts = urlsplit(url.replace("+psycopg", ""))
    with psycopg.connect(parts._replace(path="/postgres").geturl(), autocommit=True) as con:
        for name in names:
            con.execute(f'CREATE DATABASE "{name}"')
    return {name: parts._replace(path=f"/{name}").geturl() for name in names}


def server_command(
    lib: str, db_url: str, port: int, artifacts: Path, mlflow_bin: Path
) -> list[str]:
    if lib == "mltrack":
        exe, store = OURS_BIN / "mltrack", db_url.replace("postgresql://", "postgresql+psycopg://")
    else:  # psycopg2-binary is installed by setup_mlflow_venv.sh
        exe, store = (
            mlflow_bin / "mlflow",
            db_url.replace("postgresql://", "postgresql+psycopg2://"),
        )
    return [str(exe), "server", "--backend-store-uri", store, "--host", HOST, "--port", str(port),
            "--workers", str(WORKERS), "--artifacts-destination", str(artifacts)]  # fmt: skip


def wait_health(server: Server, timeout: float) -> float:
    """Seconds from Popen to the first 200 on /health."""
    while time.perf_counter() < server.t0 + timeout:
        if server.proc.poll() is not None:
            raise RuntimeError(f"server exited with {server.proc.returncode} before /health")
        try:
            conn = http.client.HTTPConnection(HOST, server.port, timeout=1.0)
            conn.request("GET", "/health")
            status = conn.getresponse().status
            conn.close()
            if status == 200:
                return time.perf_counter() - server.t0
        except (OSError, http.client.HTTPException):
            pass
        time.sleep(0.05)
    raise RuntimeError(f"no 200 on /health within {timeout:.0f} s")


def rest(port: int, method: str, path: str, body: dict | None = None) -> dict[str, Any]:
    """One JSON call to MLflow's REST API (the same on both servers)."""
    conn = http.client.HTTPConnection(HOST, port, timeout=60)
    conn.request(method, path, json.dumps(body) if body else None,
                 {"Content-Type": "application/json"})  # fmt: skip
    resp = conn.getresponse()
    data = json.loads(resp.read() or b"{}")
    conn.close()
    if resp.status != 200:
        raise RuntimeError(f"{method} {path}: HTTP {resp.status} {data}")
    return data


def populate_mlflow_pg(db_url: str, exp_id: str, artifact_root: str, data: list) -> None:
    """MLflow: bulk SQL into its own schema, the rows its create_run + log_batch write."""
    import psycopg

    runs, tags, params, metrics, latest = [], [], [], [], []
    ts = int(time.time() * 1000)
    for i, (p, m, tag) in enumerate(data):
        run_id, name = uuid.uuid4().hex, f"run-{i}"
        runs.append(
            (run_id, name, "UNKNOWN", "", "", "unknown", "RUNNING", ts, None, "", "active",
             f"{artifact_root}/{run_id}/artifacts", int(exp_id))
        )  # fmt: skip
        tags += [("mlflow.runName", name, run_id), ("model_type", tag, run_id)]
        params += [(k, str(v), run_id) for k, v in p.items()]
        metrics += [(k, v, ts, run_id, 0, False) for k, v in m.items()]
        latest += [(k, v, ts, 0, False, run_id) for k, v in m.items()]
    with psycopg.connect(db_url) as con, con.cursor() as cur:
        cur.executemany(
            "INSERT INTO runs (run_uuid, name, source_type, source_name, entry_point_name,"
            " user_id, status, start_time, end_time, source_version, lifecycle_stage,"
            " artifact_uri, experiment_id) VALUES (%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s)",
            runs,
        )
        cur.executemany("INSERT INTO tags (key, value, run_uuid) VALUES (%s,%s,%s)", tags)
        cur.executemany("INSERT INTO params (key, value, run_uuid) VALUES (%s,%s,%s)", params)
        cur.executemany(
            "INSERT INTO metrics (key, value, timestamp, run_uuid, step, is_nan)"
            " VALUES (%s,%s,%s,%s,%s,%s)",
            metrics,
        )
        cur.executemany(
            "INSERT INTO latest_metrics (key, value, timestamp, step, is_nan, run_uuid)"
            " VALUES (%s,%s,%s,%s,%s,%s)",
            latest,
        )


def populate(lib: str, port: int, db_url: str, data: list) -> dict[str, Any]:
    """Create the search experiment through the server, then fill it; ``{exp_id, ...}``."""
    import psycopg

    exp_id = rest(port, "POST", "/api/2.0/mlflow/experiments/create", {"name": "bench-search"})[
        "experiment_id"
    ]
    t0 = time.perf_counter()
    if lib == "mltrack":
        mlflow = load("mltrack")
        client = client_class(mlflow)(tracking_uri=db_url.replace("://", "+psycopg://", 1))
        populate_api(mlflow, client, exp_id, data)
        method = "our Client on the PostgreSQL database directly, create_run + log_batch per run"
    else:
        exp = rest(port, "GET", f"/api/2.0/mlflow/experiments/get?experiment_id={exp_id}")
        populate_mlflow_pg(db_url, exp_id, exp["experiment"]["artifact_location"], data)
        method = "bulk SQL into MLflow's own schema (tables created by its server)"
    seconds = time.perf_counter() - t0
    with psycopg.connect(db_url, autocommit=True) as con:
        con.execute("ANALYZE")
    return {"exp_id": exp_id, "method": method, "runs": len(data), "seconds": seconds,
            "per_run_s": seconds / len(data)}  # fmt: skip


def run_client(client: str, python: Path, urls: dict, exps: dict, quick: bool) -> dict[str, Any]:
    """The client workload in a fresh process under ``python``; its result or ``{error}``."""
    cmd = [str(python), __file__, "--phase", "client", "--client", client,
           "--urls", json.dumps(urls), "--search-exps", json.dumps(exps)]  # fmt: skip
    cmd += ["--quick"] if quick else []
    env = quiet_env()
    env["PATH"] = os.pathsep.join([str(python.parent), env.get("PATH", "")])
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=BENCH_DIR)
    (LOG_DIR / f"server-client-{client}.log").write_text(
        proc.stdout + "\n--- stderr\n" + proc.stderr
    )
    result = parse_result(proc.stdout)
    if proc.returncode or result is None:
        return {"error": f"{client} client exit {proc.returncode}: {proc.stderr[-500:]}"}
    return result


def main_phase(args: argparse.Namespace) -> None:
    servers = args.lib.split(",") if args.lib != "both" else list(LIBS)
    n = sizes(args.quick)
    mlflow_python = Path(args.mlflow_python)
    LOG_DIR.mkdir(parents=True, exist_ok=True)
    result: dict[str, Any] = {"sizes": n, "workers": WORKERS, "servers": servers,
                              "search_filter": SEARCH_FILTER, "order_by": ORDER_BY}  # fmt: skip
    pg_root = Path(f"/tmp/mltrack-pg-bench-{os.getpid()}")  # not the tests' /tmp/mltrack-pg
    running: dict[str, Server] = {}
    with workdir("server", "both", args.keep) as wd:
        try:
            pg_url = pg_start(pg_root)
            dbs = create_databases(pg_url, [f"bench_{s}" for s in servers])
            env = quiet_env()
            env["PATH"] = os.pathsep.join([str(mlflow_python.parent), env.get("PATH", "")])
            for lib in servers:  # one at a time, so startup figures don't share the CPU
                port = free_port()
                cmd = server_command(lib, dbs[f"bench_{lib}"], port, wd / f"artifacts-{lib}",
                                     mlflow_python.parent)  # fmt: skip
                running[lib] = Server(cmd, env, port, LOG_DIR / f"server-{lib}.log")
                try:
                    result[lib] = {"startup_s": wait_health(running[lib], STARTUP_TIMEOUT_S)}
                except RuntimeError as exc:
                    result[lib] = {"error": f"server did not start: {exc}"}
                    running.pop(lib).stop()
                    continue
                result[lib]["memory_idle"] = tree_memory(running[lib].proc.pid)
                print(f"[server] {lib} up in {result[lib]['startup_s']:.1f} s", file=sys.stderr)
            data = dataset(n["search_runs"])
            for lib in running:
                result[lib]["populate"] = populate(
                    lib, running[lib].port, dbs[f"bench_{lib}"], data
                )
                print(f"[server] {lib} populated in {result[lib]['populate']['seconds']:.1f} s",
                      file=sys.stderr, flush=True)  # fmt: skip
            urls = {lib: f"http://{HOST}:{s.port}" for lib, s in running.items()}
            exps = {lib: result[lib]["populate"]["exp_id"] for lib in running}
            pythons = {"mlflow": mlflow_python, "mltrack": OURS_BIN / "python"}
            for client in ("mlflow", "mltrack"):
                out = run_client(client, pythons[client], urls, exps, args.quick)
                result[f"{CLIENT_KEYS[client]}_version"] = out.get("version")
                for lib in running:
                    result[lib][CLIENT_KEYS[client]] = (
                        {"error": out["error"]} if "error" in out
                        else {part: out[part].get(lib, out[part]) for part in
                              ("logging", "batch", "search", "artifacts")}
                    )  # fmt: skip
            for lib, server in running.items():
                result[lib]["memory"] = tree_memory(server.proc.pid)
                result[lib]["rss_mb"] = result[lib]["memory"]["rss_bytes"] / 2**20
                if server.proc.poll() is not None:
                    result[lib]["exited"] = server.proc.returncode
        finally:
            for server in running.values():
                server.stop()
            pg_stop(pg_root)
    if "mltrack" in result:
        result["mltrack"]["version"] = lib_version("mltrack")
    if "mlflow" in result:
        result["mlflow"]["version"] = result.get("mlflow_client_version") or "?"
    emit(result)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lib", default="both", help="servers: both, mltrack or mlflow")
    parser.add_argument("--quick", action="store_true", help="scaled-down smoke run")
    parser.add_argument("--keep", action="store_true", help="keep the work directory")
    parser.add_argument("--mlflow-python", default=str(MLFLOW_PYTHON))
    parser.add_argument("--phase", choices=["main", "client"], default="main")
    internal = "internal: set by the main process for a client process"
    parser.add_argument("--client", choices=LIBS, help=internal)
    parser.add_argument("--urls", help=internal)
    parser.add_argument("--search-exps", help=internal)
    args = parser.parse_args()
    if args.phase == "client":
        client_phase(args)
    else:
        main_phase(args)


if __name__ == "__main__":
    main()
