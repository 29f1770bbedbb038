"""Benchmark 3: step metrics, one ``log_metric(key, value, step=i)`` call per point.

Phases:

1. sync: one run, N points of ``f1`` through ``mlflow.log_metric`` (end_run included, so
   whatever is buffered is persisted inside the timing). Bytes on disk per point are taken
   right after it (whole store incl. WAL, divided by N; also net of the empty store).
2. async (reference): the same loop with ``synchronous=False`` plus the final flush.
3. history: ``MlflowClient().get_metric_history(run_id, "f1")`` on the sync run; first call
   (cold) and median of the next ones (warm).
4. batch (reference), in a fresh store: ``MlflowClient.log_batch`` with up to 1000 points per
   call (MLflow's per-request cap), the same number of points on both libraries; bytes on disk
   per point net of the empty store; then its history read back as in 3.
"""

from __future__ import annotations

import inspect
import random
import time

from _common import (
    SEED,
    base_parser,
    client_class,
    emit,
    entity_classes,
    lib_version,
    load,
    store_bytes,
    store_uri,
    summary,
    workdir,
)

BATCH = 1000  # MLflow rejects more than 1000 metrics in one log_batch


def sizes(lib: str, quick: bool) -> dict[str, int]:
    """Points per phase. MLflow's sync loop is ~1000x slower, so it logs fewer points."""
    if lib == "mltrack":
        return {"sync": 100_000 if quick else 1_000_000, "async": 20_000 if quick else 200_000}
    return {"sync": 300 if quick else 2_000, "async": 300 if quick else 2_000}


def log_loop(mlflow, values: list[float], **kwargs) -> dict:
    """One run logging ``values`` as steps of ``f1``, start_run to end_run (flush included)."""
    t0 = time.perf_counter()
    run = mlflow.start_run()
    log_metric = mlflow.log_metric
    t1 = time.perf_counter()
    log_metric("f1", values[0], step=0, **kwargs)
    first = time.perf_counter() - t1
    for step in range(1, len(values)):
        log_metric("f1", values[step], step=step, **kwargs)
    t2 = time.perf_counter()
    if kwargs.get("synchronous") is False and hasattr(mlflow, "flush_async_logging"):
        mlflow.flush_async_logging()
    mlflow.end_run()
    total = time.perf_counter() - t0
    return {
        "run_id": run.info.run_id,
        "points": len(values),
        "total_s": total,
        "per_point_s": total / len(values),
        "first_call_s": first,
        "calls_s": t2 - t1,
        "end_s": time.perf_counter() - t2,
    }


def history(client, run_id: str, expected: int, repeats: int) -> dict:
    """Cold and warm ``get_metric_history`` timings; checks the point count."""
    samples = []
    for _ in range(repeats + 1):
        t0 = time.perf_counter()
        points = client.get_metric_history(run_id, "f1")
        samples.append(time.perf_counter() - t0)
        if len(points) != expected:
            raise AssertionError(f"history has {len(points)} points, expected {expected}")
    return {"points": expected, "cold_s": samples[0], "warm": summary(samples[1:])}


def main() -> None:
    args = base_parser(__doc__.splitlines()[0]).parse_args()
    lib = args.lib
    n = sizes(lib, args.quick)
    n_batch = 10_000 if args.quick else 100_000
    mlflow = load(lib)
    Metric, _, _ = entity_classes(mlflow)
    rng = random.Random(SEED)
    values = [rng.random() for _ in range(max(n["sync"], n_batch))]
    result: dict = {"lib": lib, "version": lib_version(args.lib)}

    with workdir("metrics", lib, args.keep) as wd:
        mlflow.set_tracking_uri(store_uri(lib, wd))
        mlflow.set_experiment("bench-metrics")
        empty = store_bytes(lib, wd)
        client = client_class(mlflow)()

        # 1. sync loop
        result["sync"] = log_loop(mlflow, values[: n["sync"]])
        sync_id = result["sync"].pop("run_id")
        size = store_bytes(lib, wd)
        result["sync"].update(
            store_bytes=size,
            empty_store_bytes=empty,
            bytes_per_point=size / n["sync"],
            net_bytes_per_point=(size - empty) / n["sync"],
        )

        # 2. async loop (MLflow's synchronous=False); skipped where the argument is unknown
        if "synchronous" in inspect.signature(mlflow.log_metric).parameters:
            result["async"] = log_loop(mlflow, values[: n["async"]], synchronous=False)
            del result["async"]["run_id"]
        else:
            result["async"] = {"skipped": "log_metric has no synchronous argument"}

        # 3. reading the sync run's history back
        repeats = 2 if n["sync"] >= 500_000 else 4
        result["history_sync"] = history(client, sync_id, n["sync"], repeats)

        # 4. log_batch, BATCH points per call, in a store of its own so its size is its own
        batch_dir = wd / "batch"
        batch_dir.mkdir()
        mlflow.set_tracking_uri(store_uri(lib, batch_dir))
        exp_id = mlflow.set_experiment("bench-metrics-batch").experiment_id
        client = client_class(mlflow)()
        empty = store_bytes(lib, batch_dir)
        t0 = time.perf_counter()
        batch_id = client.create_run(exp_id).info.run_id
        ts = int(time.time() * 1000)
        for start in range(0, n_batch, BATCH):
            chunk = [
                Metric("f1", values[i], ts, i) for i in range(start, min(start + BATCH, n_batch))
            ]
            client.log_batch(batch_id, metrics=chunk)
        client.set_terminated(batch_id)
        total = time.perf_counter() - t0
        size = store_bytes(lib, batch_dir)
        result["batch"] = {
            "points": n_batch,
            "total_s": total,
            "per_point_s": total / n_batch,
            "store_bytes": size,
            "empty_store_bytes": empty,
            "bytes_per_point": size / n_batch,
            "net_bytes_per_point": (size - empty) / n_batch,
        }
        result["history_batch"] = history(client, batch_id, n_batch, 3)
        for key in ("history_sync", "history_batch"):
            h = result[key]
            h["per_point_s"] = h["warm"]["median"] / h["points"]
    emit(result)


if __name__ == "__main__":
    main()
