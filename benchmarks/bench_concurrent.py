"""Benchmark 5: 8 processes logging to one store at the same time.

The parent creates the store and the experiment, then starts the workers. Each worker imports
the library, opens the store and waits for a common start signal, so imports and store
opening stay out of the timing. Each then logs ``runs`` runs, each with 5 params and
``steps`` steps of ``f1`` and ``accuracy`` (one ``log_metric`` call per point). Every failed
call is counted (MLflow on SQLite may raise "database is locked"), never fatal. Throughput is
the points logged without error divided by the time from the start signal to the last
worker's end. Afterwards the parent reads every run back and counts what was stored.
"""

from __future__ import annotations

import collections
import json
import random
import subprocess
import sys
import time
from pathlib import Path

from _common import (
    SEED,
    base_parser,
    client_class,
    emit,
    lib_version,
    load,
    parse_result,
    run_inputs,
    store_uri,
    workdir,
)

EXPERIMENT = "bench-concurrent"
WORKERS = 8
WORKER_TIMEOUT_S = 900


def _short(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0][:160] if text else ''}"


def worker(lib: str, uri: str, index: int, runs: int, steps: int, go_file: Path) -> dict:
    """Log ``runs`` runs after the go signal; count errors instead of failing."""
    mlflow = load(lib)
    mlflow.set_tracking_uri(uri)
    mlflow.set_experiment(EXPERIMENT)
    rng = random.Random(SEED + index)
    errors: collections.Counter[str] = collections.Counter()
    ok_points = ok_runs = 0
    go_file.parent.joinpath(f"ready-{index}").touch()
    while not go_file.exists():
        time.sleep(0.001)
    start = time.time()
    for r in range(runs):
        params, _ = run_inputs(rng)
        params.update(worker=index, run=r, seed=rng.randint(0, 9999))
        try:
            mlflow.start_run(run_name=f"w{index}-r{r}")
        except Exception as exc:
            errors[_short(exc)] += 1
            continue
        try:
            mlflow.log_params(params)
        except Exception as exc:
            errors[_short(exc)] += 1
        for step in range(steps):
            for key in ("f1", "accuracy"):
                try:
                    mlflow.log_metric(key, rng.random(), step=step)
                    ok_points += 1
                except Exception as exc:
                    errors[_short(exc)] += 1
        for _ in range(3):  # a failed end_run would leave the run active for the next one
            try:
                mlflow.end_run()
                ok_runs += 1
                break
            except Exception as exc:
                errors[_short(exc)] += 1
    return {
        "worker": index,
        "start": start,
        "end": time.time(),
        "ok_points": ok_points,
        "ok_runs": ok_runs,
        "errors": sum(errors.values()),
        "error_kinds": dict(errors.most_common(5)),
    }


def stored(mlflow, client, runs_expected: int) -> dict:
    """Runs and metric points the store holds after the workers are done."""
    exp_id = mlflow.get_experiment_by_name(EXPERIMENT).experiment_id
    runs = client.search_runs([exp_id], max_results=max(1000, runs_expected * 2))
    points = sum(
        len(client.get_metric_history(run.info.run_id, key))
        for run in runs
        for key in ("f1", "accuracy")
    )
    finished = sum(run.info.status == "FINISHED" for run in runs)
    return {"runs": len(runs), "finished_runs": finished, "points": points}


def main() -> None:
    parser = base_parser(__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, help="runs per worker")
    parser.add_argument("--steps", type=int, help="steps per run (2 metrics each)")
    internal = "internal: set by the parent for a worker process"
    parser.add_argument("--worker", type=int, help=internal)
    parser.add_argument("--uri", help=internal)
    parser.add_argument("--go-file", type=Path, help=internal)
    args = parser.parse_args()
    runs = args.runs or (2 if args.quick else 5)
    steps = args.steps or (20 if args.quick else 50)
    if args.worker is not None:
        emit(worker(args.lib, args.uri, args.worker, runs, steps, args.go_file))
        return

    mlflow = load(args.lib)
    result: dict = {"lib": args.lib, "version": lib_version(args.lib), "workers": WORKERS}
    result.update(runs_per_worker=runs, steps=steps)
    with workdir("concurrent", args.lib, args.keep) as wd:
        uri = store_uri(args.lib, wd)
        mlflow.set_tracking_uri(uri)
        mlflow.set_experiment(EXPERIMENT)  # store and schema exist before the workers start
        go = wd / "go"
        base = [sys.executable, __file__, "--lib", args.lib, "--uri", uri, "--go-file", str(go)]
        base += ["--runs", str(runs), "--steps", str(steps)]
        procs = [
            subprocess.Popen(
                [*base, "--worker", str(i)],
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
            for i in range(WORKERS)
        ]
        deadline = time.time() + 300
        while len(list(wd.glob("ready-*"))) < WORKERS:
            if time.time() > deadline or any(p.poll() is not None for p in procs):
                break
            time.sleep(0.01)
        go.touch()
        reports, crashes = [], []
        for p in procs:
            try:
                out, err = p.communicate(timeout=WORKER_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                p.kill()
                out, err = p.communicate()
            report = parse_result(out)
            if report is None:
                crashes.append(f"exit {p.returncode}: {err.strip()[-2000:]}")
            else:
                reports.append(report)
            sys.stderr.write(err)
        expected_points = WORKERS * runs * steps * 2
        ok_points = sum(r["ok_points"] for r in reports)
        wall = (max(r["end"] for r in reports) - min(r["start"] for r in reports)) if reports else 0
        kinds: collections.Counter[str] = collections.Counter()
        for r in reports:
            kinds.update(r["error_kinds"])
        result.update(
            expected_points=expected_points,
            ok_points=ok_points,
            ok_runs=sum(r["ok_runs"] for r in reports),
            errors=sum(r["errors"] for r in reports) + len(crashes),
            error_kinds=dict(kinds.most_common(5)),
            crashed_workers=crashes,
            wall_s=wall,
            points_per_s=ok_points / wall if wall else 0.0,
            runs_per_s=sum(r["ok_runs"] for r in reports) / wall if wall else 0.0,
        )
        result["stored"] = stored(mlflow, client_class(mlflow)(), WORKERS * runs)
        result["lost_points"] = ok_points - result["stored"]["points"]
    emit(result)
    print(json.dumps(result["error_kinds"], indent=1), file=sys.stderr)


if __name__ == "__main__":
    main()
