"""Benchmark 4: search_runs over stores of 10,000 and 100,000 runs.

Each run carries params ``n_estimators`` (10..500) and ``max_depth`` (1..20), metrics ``f1``
and ``accuracy`` (uniform 0..1) and a tag, drawn from one seeded generator, so both libraries
hold the same data. The store grows from the small size to the large one in one experiment.

Populating: ours through the public client (``create_run`` + one ``log_batch`` per run).
MLflow needs ~15 ms per run through its API (measured here on the first 50 runs; 25 min for
100k), so its store is created and migrated by MLflow itself, the experiment and the first 50
runs are created through its API, and the other runs are bulk-inserted with SQL into MLflow's own tables (``runs``, ``params``, ``metrics``,
``latest_metrics``, ``tags``) exactly as its API writes them; a sample run is then read back
through MLflow's client and every search result is checked against the expected answer.

Searching happens in a fresh process per store size: the first call is the cold figure
(store opening included), the median of the following calls the warm one (a first call over
20 s is not repeated: MLflow needs ~100 s per search at 100k runs). The filter is
``metrics.f1 > 0.85 AND params.n_estimators > 50`` ordered by ``metrics.f1 DESC``, 10 results.
MLflow compares params as strings only, so it is timed with ``metrics.f1 > 0.85`` alone; ours is
timed with both filters. At the small size a ``search_runs`` DataFrame of every run is timed too.
"""

from __future__ import annotations

import random
import sqlite3
import subprocess
import sys
import time
import uuid
from pathlib import Path

from _common import (
    SEED,
    base_parser,
    client_class,
    emit,
    entity_classes,
    lib_version,
    load,
    parse_result,
    run_inputs,
    store_uri,
    summary,
    workdir,
)

FULL_FILTER = "metrics.f1 > 0.85 AND params.n_estimators > 50"
F1_FILTER = "metrics.f1 > 0.85"
ORDER_BY = ["metrics.f1 DESC"]
EXPERIMENT = "bench-search"
TAG_VALUES = ("random_forest", "gradient_boosting", "extra_trees")
API_SAMPLE = 50  # MLflow: runs populated through its client before the bulk SQL


def dataset(n: int) -> list[tuple[dict[str, int], dict[str, float], str]]:
    """The first ``n`` runs of the seeded data: (params, metrics, model_type tag)."""
    rng = random.Random(SEED)
    out = []
    for _ in range(n):
        params, metrics = run_inputs(rng)
        out.append((params, metrics, rng.choice(TAG_VALUES)))
    return out


def expected_f1(data: list, filter_string: str) -> list[float]:
    """The f1 values search_runs must return, in order, for ``filter_string``."""
    need_params = "params.n_estimators" in filter_string
    hits = [
        m["f1"]
        for p, m, _ in data
        if m["f1"] > 0.85 and (not need_params or p["n_estimators"] > 50)
    ]
    return sorted(hits, reverse=True)[:10]


# --- populating ------------------------------------------------------------------------------


def populate_api(mlflow, client, exp_id: str, data: list) -> None:
    """Ours: the public client, one create_run and one log_batch per run."""
    Metric, Param, RunTag = entity_classes(mlflow)
    for i, (params, metrics, tag) in enumerate(data):
        ts = int(time.time() * 1000)
        run = client.create_run(exp_id, run_name=f"run-{i}")
        client.log_batch(
            run.info.run_id,
            metrics=[Metric(k, v, ts, 0) for k, v in metrics.items()],
            params=[Param(k, str(v)) for k, v in params.items()],
            tags=[RunTag("model_type", tag)],
        )
    # Both libraries have it: ours writes buffered rows now (another process searches next;
    # buffered writes reach other processes within 0.5 s), MLflow's is a no-op when sync.
    mlflow.flush_async_logging()


def populate_mlflow_sql(db_path: Path, exp_id: str, artifact_root: str, data: list, first: int):
    """MLflow: bulk SQL into its own schema.

    The rows are the ones ``MlflowClient.create_run(exp_id, run_name=...)`` followed by
    ``log_batch`` writes on MLflow 3.17 (checked by hand against its own output).
    """
    runs, tags, params, metrics, latest = [], [], [], [], []
    ts = int(time.time() * 1000)
    for i, (p, m, tag) in enumerate(data, start=first):
        run_id = uuid.uuid4().hex
        name = f"run-{i}"
        runs.append(
            (run_id, name, "UNKNOWN", "", "", "unknown", "RUNNING", ts, None, "", "active",
             f"{artifact_root}/{run_id}/artifacts", int(exp_id))
        )  # fmt: skip
        tags += [("mlflow.runName", name, run_id), ("model_type", tag, run_id)]
        params += [(k, str(v), run_id) for k, v in p.items()]
        metrics += [(k, v, ts, run_id, 0, 0) for k, v in m.items()]
        latest += [(k, v, ts, 0, 0, run_id) for k, v in m.items()]
    con = sqlite3.connect(db_path)
    with con:
        con.executemany(
            "INSERT INTO runs (run_uuid, name, source_type, source_name, entry_point_name,"
            " user_id, status, start_time, end_time, source_version, lifecycle_stage,"
            " artifact_uri, experiment_id) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)",
            runs,
        )
        con.executemany("INSERT INTO tags (key, value, run_uuid) VALUES (?,?,?)", tags)
        con.executemany("INSERT INTO params (key, value, run_uuid) VALUES (?,?,?)", params)
        con.executemany(
            "INSERT INTO metrics (key, value, timestamp, run_uuid, step, is_nan)"
            " VALUES (?,?,?,?,?,?)",
            metrics,
        )
        con.executemany(
            "INSERT INTO latest_metrics (key, value, timestamp, step, is_nan, run_uuid)"
            " VALUES (?,?,?,?,?,?)",
            latest,
        )
    con.close()
    return runs[0][0]


# --- searching (fresh process) ---------------------------------------------------------------


SLOW_S = 20.0  # a first call slower than this is not repeated (MLflow at 100k: ~100 s a call)


def measure(fn, min_n: int = 3, max_n: int = 30, budget_s: float = 4.0) -> tuple[dict, object]:
    """Time ``fn``: the first call (cold), then repeats (warm) within a time budget.

    Returns the figures and the first call's result. Repeats: at least ``min_n``, at most
    ``max_n`` or until ``budget_s`` is spent; none when the first call took over ``SLOW_S``,
    in which case the warm figure is that single call, flagged ``warm_is_cold_call``.
    """
    t0 = time.perf_counter()
    first = fn()
    cold = time.perf_counter() - t0
    if cold > SLOW_S:
        return {"cold_s": cold, "warm": summary([cold]), "warm_is_cold_call": True}, first
    samples: list[float] = []
    start = time.perf_counter()
    while len(samples) < min_n or (len(samples) < max_n and time.perf_counter() - start < budget_s):
        t0 = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - t0)
    return {"cold_s": cold, "warm": summary(samples)}, first


def search_phase(lib: str, uri: str, exp_id: str, n: int, dataframe: bool) -> dict:
    """Time the searches on a populated store; runs in its own process."""
    mlflow = load(lib)
    mlflow.set_tracking_uri(uri)
    client = client_class(mlflow)()
    data = dataset(n)
    out: dict = {"n_runs": n}
    filters = {"f1": F1_FILTER} if lib == "mlflow" else {"full": FULL_FILTER, "f1": F1_FILTER}
    for name, filter_string in filters.items():

        def search(filter_string: str = filter_string) -> list:
            return client.search_runs(
                [exp_id], filter_string=filter_string, order_by=ORDER_BY, max_results=10
            )

        figures, runs = measure(search)
        got = [r.data.metrics["f1"] for r in runs]
        want = expected_f1(data, filter_string)
        if got != want:
            raise AssertionError(f"{filter_string!r} returned f1 {got}, expected {want}")
        out[f"search_{name}"] = {"filter": filter_string, **figures}
    if dataframe:

        def frame():
            return mlflow.search_runs(experiment_ids=[exp_id], max_results=n + 1000)

        figures, df = measure(frame, min_n=2, max_n=10, budget_s=6.0)
        if len(df) != n:
            raise AssertionError(f"search_runs DataFrame has {len(df)} rows, expected {n}")
        out["dataframe"] = {"rows": n, "columns": len(df.columns), **figures}
    return out


def run_search_process(lib: str, uri: str, exp_id: str, n: int, dataframe: bool) -> dict:
    """Run ``search_phase`` in a fresh interpreter (cold figures mean a cold process)."""
    cmd = [sys.executable, __file__, "--lib", lib, "--phase", "search", "--uri", uri]
    cmd += ["--exp-id", exp_id, "--n", str(n)] + (["--dataframe"] if dataframe else [])
    proc = subprocess.run(cmd, capture_output=True, text=True)
    sys.stderr.write(proc.stderr)
    result = parse_result(proc.stdout)
    if proc.returncode or result is None:
        raise RuntimeError(f"search phase failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    return result


# --- main ------------------------------------------------------------------------------------


def main() -> None:
    parser = base_parser(__doc__.splitlines()[0])
    parser.add_argument("--phase", choices=["all", "search"], default="all")
    internal = "internal: set by the populating process for the search phase"
    parser.add_argument("--uri", help=internal)
    parser.add_argument("--exp-id", help=internal)
    parser.add_argument("--n", type=int, help=internal)
    parser.add_argument("--dataframe", action="store_true", help=internal)
    args = parser.parse_args()
    lib = args.lib
    if args.phase == "search":
        emit(search_phase(lib, args.uri, args.exp_id, args.n, args.dataframe))
        return

    sizes = (1_000, 5_000) if args.quick else (10_000, 100_000)
    data = dataset(sizes[-1])
    mlflow = load(lib)
    result: dict = {"lib": lib, "version": lib_version(args.lib), "sizes": list(sizes)}
    result["populate_method"] = (
        "public client, create_run + log_batch per run"
        if lib == "mltrack"
        else "bulk SQL into MLflow's own schema (store, migrations and experiment by MLflow)"
    )
    with workdir("search", lib, args.keep) as wd:
        uri = store_uri(lib, wd)
        mlflow.set_tracking_uri(uri)
        client = client_class(mlflow)()
        exp_id = client.create_experiment(EXPERIMENT)
        artifact_root = client.get_experiment(exp_id).artifact_location
        done = 0
        if lib == "mlflow":  # its API on a few runs: the figure that rules it out for 100k
            t0 = time.perf_counter()
            populate_api(mlflow, client, exp_id, data[:API_SAMPLE])
            result["api_populate_per_run_s"] = (time.perf_counter() - t0) / API_SAMPLE
            done = API_SAMPLE
        for size in sizes:
            t0 = time.perf_counter()
            if lib == "mltrack":
                populate_api(mlflow, client, exp_id, data[done:size])
            else:
                sample = populate_mlflow_sql(
                    wd / "mlflow.db", exp_id, artifact_root, data[done:size], done
                )
                run = client.get_run(sample)  # the rows must read back through MLflow's API
                p, m, tag = data[done]
                if (
                    run.data.params != {k: str(v) for k, v in p.items()}
                    or run.data.metrics != m
                    or run.data.tags.get("model_type") != tag
                ):
                    raise AssertionError(f"bulk-inserted run reads back wrong: {run.data}")
            populate_s = time.perf_counter() - t0
            out = run_search_process(lib, uri, exp_id, size, dataframe=size == sizes[0])
            out.update(
                populated_runs=size - done,
                populate_s=populate_s,
                populate_per_run_s=populate_s / (size - done),
            )
            result[f"n{size}"] = out
            done = size
    emit(result)


if __name__ == "__main__":
    main()
