"""Benchmark 9: notebook panels, a runs table over 10,000 runs and a comparison of 20 curves.

MLflow has no notebook panels, so its side is the same job done the way an MLflow user does it
in a notebook:

1. Runs table over one experiment of 10,000 runs (2 params, 2 metrics, a tag each: the data of
   ``bench_search``). Ours: wall time of ``RunsTable(experiment_names=[...], client=client,
   background=False)`` (query and rows set in its grid, Python side). MLflow: the data of one
   page of a table, ``MlflowClient.search_runs([exp_id], max_results=50,
   order_by=["attributes.start_time DESC"])`` turned into one dict per row. For reference,
   MLflow's ``mlflow.search_runs`` DataFrame of every run (what users usually display).
2. Comparison of 20 runs x 100,000 steps of ``loss``. Ours: ``RunComparison(run_ids,
   client=client, background=False)``, its ``build_seconds`` (query, downsampling in the
   store, plot) and the constructor's wall time. MLflow: ``get_metric_history`` of every run,
   then one matplotlib line per run on an Agg ``Figure`` printed to PNG bytes; fetch alone and
   fetch + plot. The same fetch + plot code also runs on ours (reference).

Populating, in one store with two experiments: ours through its public client (one
``create_run`` + ``log_batch`` per table run; the curves in ``log_batch`` chunks of 10,000
points). MLflow: the table as ``bench_search`` does it (first 50 runs through its API, the rest
by bulk SQL into its own tables); the curve runs are created through its API and the first one
is logged with ``log_batch`` (1000 points per call, its cap); when that rate would take more
than ``API_BUDGET_S`` for every curve, the other curves' ``metrics`` and ``latest_metrics``
rows are bulk-inserted with SQL, and one of them is read back through MLflow's client.

Each part is timed in a fresh process: the first call is the cold figure, the median of the
following ones the warm figure; every result is checked (row counts, curve lengths, no error
shown by a panel).
"""

from __future__ import annotations

import gc
import io
import json
import math
import random
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from _common import (
    SEED,
    base_parser,
    client_class,
    emit,
    entity_classes,
    lib_version,
    load,
    parse_result,
    store_uri,
    summary,
    workdir,
)
from bench_search import API_SAMPLE, dataset, populate_api, populate_mlflow_sql

TABLE_EXPERIMENT = "bench-panels"
CURVES_EXPERIMENT = "bench-panels-curves"
KEY = "loss"
PAGE = 50  # rows of one table page (RunsTable's default page_size)
ORDER_BY = ["attributes.start_time DESC"]
OURS_CHUNK = 10_000  # points per log_batch call for ours
MLFLOW_CHUNK = 1000  # MLflow rejects more than 1000 metrics in one log_batch
API_BUDGET_S = 120.0  # MLflow's log_batch for every curve beyond this: bulk SQL instead
SLOW_S = 20.0  # a cold call slower than this is repeated once only


def sizes(quick: bool) -> dict[str, int]:
    if quick:
        return {"table_runs": 1_000, "curve_runs": 5, "steps": 10_000}
    return {"table_runs": 10_000, "curve_runs": 20, "steps": 100_000}


def curve(i: int, steps: int) -> list[float]:
    """Loss of curve ``i``: a seeded noisy exponential decay towards a floor."""
    rng = random.Random(SEED + 1 + i)
    start, floor = 1.5 + rng.random(), 0.05 + 0.2 * rng.random()
    tau = steps * (0.05 + 0.2 * rng.random())
    gauss = rng.gauss
    return [floor + (start - floor) * math.exp(-s / tau) + 0.02 * gauss(0.0, 1.0) for s in range(steps)]  # fmt: skip


# --- timing ----------------------------------------------------------------------------------


def cold_warm(
    fn: Callable[[], dict[str, float]], warm_n: int, budget_s: float
) -> dict[str, dict[str, Any]]:
    """Time ``fn`` (which returns its own timed parts, in seconds) cold once, then warm.

    Warm calls: ``warm_n``, or fewer when ``budget_s`` is spent (at least one); a single one
    when the cold call took over ``SLOW_S``. A collection runs before each call, untimed.
    """
    gc.collect()
    cold = fn()
    runs: list[dict[str, float]] = []
    limit = 1 if max(cold.values()) > SLOW_S else warm_n
    start = time.perf_counter()
    while not runs or (len(runs) < limit and time.perf_counter() - start < budget_s):
        gc.collect()
        runs.append(fn())
    return {part: {"cold_s": cold[part], "warm": summary([r[part] for r in runs])} for part in cold}


# --- the MLflow user's way -------------------------------------------------------------------


def row_dict(run: Any) -> dict[str, Any]:
    """One table row of a run, as a notebook user builds it from ``search_runs``: the cells
    our RunsTable shows (status, name, start in UTC, duration, params, metrics)."""
    info, data = run.info, run.data
    start, end = info.start_time, info.end_time
    started = (
        datetime.fromtimestamp(start / 1000, tz=timezone.utc).strftime("%Y-%m-%d %H:%M:%S")
        if start
        else ""
    )
    cells = {
        "status": info.status,
        "run": info.run_name or info.run_id[:8],
        "started": started,
        "duration": f"{(end - start) / 1000:.1f} s" if start and end else "",
        **{f"params.{k}": v for k, v in data.params.items()},
        **{f"metrics.{k}": v for k, v in data.metrics.items()},
    }
    return {"id": info.run_id, "cells": cells}


def plot_histories(histories: dict[str, list]) -> bytes:
    """One line per run on an Agg figure, printed to PNG bytes."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(8, 4.5), dpi=100)
    canvas = FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    for run_id, points in histories.items():
        ax.plot([m.step for m in points], [m.value for m in points], lw=0.8, label=run_id[:8])
    ax.set_xlabel("step")
    ax.set_ylabel(KEY)
    ax.legend(fontsize="small", loc="upper right")  # "best" is slow on 2M points
    buf = io.BytesIO()
    canvas.print_png(buf)
    return buf.getvalue()


def fetch_and_plot(client: Any, run_ids: list[str], steps: int) -> Callable[[], dict[str, float]]:
    """``get_metric_history`` of every run, then ``plot_histories``; both timed."""

    def once() -> dict[str, float]:
        t0 = time.perf_counter()
        histories = {rid: client.get_metric_history(rid, KEY) for rid in run_ids}
        t1 = time.perf_counter()
        png = plot_histories(histories)
        t2 = time.perf_counter()
        lengths = {len(h) for h in histories.values()}
        if lengths != {steps} or bytes(png[:4]) != b"\x89PNG":
            raise AssertionError(f"histories of {lengths} points (expected {steps}) or no PNG")
        return {"fetch": t1 - t0, "plot": t2 - t1, "total": t2 - t0}

    return once


# --- populating ------------------------------------------------------------------------------


def create_curve_runs(client: Any, exp_id: str, n: int) -> list[str]:
    return [client.create_run(exp_id, run_name=f"curve-{i}").info.run_id for i in range(n)]


def log_curve(client: Any, Metric: Any, run_id: str, values: list[float], chunk: int) -> None:
    """``log_batch`` of one curve in chunks of ``chunk`` points (timestamps ts0 + step ms)."""
    ts0 = int(time.time() * 1000)
    for lo in range(0, len(values), chunk):
        batch = [Metric(KEY, values[s], ts0 + s, s) for s in range(lo, min(lo + chunk, len(values)))]  # fmt: skip
        client.log_batch(run_id, metrics=batch)


def insert_curves_sql(db_path: Path, curves: dict[str, list[float]]) -> None:
    """MLflow: the ``metrics`` and ``latest_metrics`` rows its ``log_batch`` writes."""
    ts0 = int(time.time() * 1000)
    con = sqlite3.connect(db_path)
    with con:
        for run_id, values in curves.items():
            con.executemany(
                "INSERT INTO metrics (key, value, timestamp, run_uuid, step, is_nan)"
                " VALUES (?,?,?,?,?,?)",
                ((KEY, v, ts0 + s, run_id, s, 0) for s, v in enumerate(values)),
            )
            last = len(values) - 1
            con.execute(
                "INSERT INTO latest_metrics (key, value, timestamp, step, is_nan, run_uuid)"
                " VALUES (?,?,?,?,?,?)",
                (KEY, values[last], ts0 + last, last, 0, run_id),
            )
    con.close()


def check_curve(client: Any, run_id: str, values: list[float]) -> None:
    """The curve reads back whole through the library's own client."""
    history = client.get_metric_history(run_id, KEY)
    got = [m.value for m in sorted(history, key=lambda m: m.step)]
    latest = client.get_run(run_id).data.metrics.get(KEY)
    if got != values or latest != values[-1]:
        raise AssertionError(f"curve of {run_id} reads back wrong ({len(got)} points)")


def check_table_sample(client: Any, run_id: str, expected: tuple) -> None:
    params, metrics, tag = expected
    data = client.get_run(run_id).data
    if (
        data.params != {k: str(v) for k, v in params.items()}
        or data.metrics != metrics
        or data.tags.get("model_type") != tag
    ):
        raise AssertionError(f"bulk-inserted run reads back wrong: {data}")


def populate(lib: str, mlflow: Any, client: Any, wd: Path, size: dict[str, int]) -> dict:
    """Both experiments; returns what the timing processes need and how it was done."""
    Metric, _, _ = entity_classes(mlflow)
    out: dict[str, Any] = {}
    data = dataset(size["table_runs"])
    table_id = client.create_experiment(TABLE_EXPERIMENT)
    t0 = time.perf_counter()
    if lib == "mltrack":
        populate_api(mlflow, client, table_id, data)
        out["table_method"] = "public client, create_run + log_batch per run"
    else:
        populate_api(mlflow, client, table_id, data[:API_SAMPLE])
        root = client.get_experiment(table_id).artifact_location
        sample = populate_mlflow_sql(
            wd / "mlflow.db", table_id, root, data[API_SAMPLE:], API_SAMPLE
        )
        check_table_sample(client, sample, data[API_SAMPLE])
        out["table_method"] = f"first {API_SAMPLE} runs through its API, the rest by bulk SQL"
    out["table_populate_s"] = time.perf_counter() - t0

    curves_id = client.create_experiment(CURVES_EXPERIMENT)
    run_ids = create_curve_runs(client, curves_id, size["curve_runs"])
    t0 = time.perf_counter()
    values = curve(0, size["steps"])
    out["curve_values_s"] = time.perf_counter() - t0  # generating one curve, for scale
    chunk = OURS_CHUNK if lib == "mltrack" else MLFLOW_CHUNK
    t0 = time.perf_counter()
    log_curve(client, Metric, run_ids[0], values, chunk)
    first_s = time.perf_counter() - t0
    out["curve_api_first_run_s"] = first_s
    out["curve_api_estimate_s"] = first_s * size["curve_runs"]
    by_sql = lib == "mlflow" and out["curve_api_estimate_s"] > API_BUDGET_S
    t0 = time.perf_counter()
    if by_sql:
        insert_curves_sql(
            wd / "mlflow.db", {rid: curve(i, size["steps"]) for i, rid in enumerate(run_ids) if i}
        )
        check_curve(client, run_ids[1], curve(1, size["steps"]))
        out["curve_method"] = (
            f"run 0 by log_batch ({MLFLOW_CHUNK} points a call), the other "
            f"{len(run_ids) - 1} by bulk SQL into metrics and latest_metrics"
        )
    else:
        for i, rid in enumerate(run_ids[1:], start=1):
            log_curve(client, Metric, rid, curve(i, size["steps"]), chunk)
        out["curve_method"] = f"public client, log_batch in chunks of {chunk:,} points"
    for rid in run_ids:
        client.set_terminated(rid)
    mlflow.flush_async_logging()  # ours writes behind; the timing runs in another process
    check_curve(client, run_ids[0], values)
    out["curve_populate_s"] = first_s + time.perf_counter() - t0
    out["spec"] = {
        "table_exp_id": table_id,
        "table_runs": size["table_runs"],
        "curve_run_ids": run_ids,
        "steps": size["steps"],
    }
    return out


# --- timing phases (fresh process each) ------------------------------------------------------


def table_phase(lib: str, mlflow: Any, client: Any, spec: dict) -> dict:
    n = spec["table_runs"]
    out: dict[str, Any] = {"n_runs": n}
    if lib == "mltrack":
        t0 = time.perf_counter()
        from jupyter_mltrack.widgets.runs_table import RunsTable

        out["import_s"] = time.perf_counter() - t0

        def render() -> dict[str, float]:
            t0 = time.perf_counter()
            table = RunsTable(experiment_names=[TABLE_EXPERIMENT], client=client, background=False)
            seconds = time.perf_counter() - t0
            error, rows = table.last_error, len(table.grid.rows)
            table.close()
            if error or rows != min(n, PAGE):
                raise AssertionError(f"RunsTable shows {rows} rows and error {error!r}")
            return {"render": seconds}

        out["table"] = cold_warm(render, warm_n=7, budget_s=20.0)["render"]
    else:

        def page() -> dict[str, float]:
            t0 = time.perf_counter()
            runs = client.search_runs([spec["table_exp_id"]], max_results=PAGE, order_by=ORDER_BY)
            rows = [row_dict(r) for r in runs]
            seconds = time.perf_counter() - t0
            if len(rows) != PAGE:
                raise AssertionError(f"{len(rows)} rows, expected {PAGE}")
            return {"page": seconds}

        out["table"] = cold_warm(page, warm_n=7, budget_s=20.0)["page"]

        def frame() -> dict[str, float]:
            t0 = time.perf_counter()
            df = mlflow.search_runs(experiment_ids=[spec["table_exp_id"]], max_results=n + 1000)
            seconds = time.perf_counter() - t0
            if len(df) != n:
                raise AssertionError(f"DataFrame of {len(df)} rows, expected {n}")
            return {"frame": seconds}

        out["dataframe"] = cold_warm(frame, warm_n=3, budget_s=15.0)["frame"]
    return out


def curves_phase(lib: str, mlflow: Any, client: Any, spec: dict) -> dict:
    run_ids, steps = spec["curve_run_ids"], spec["steps"]
    out: dict[str, Any] = {"runs": len(run_ids), "steps": steps, "points": len(run_ids) * steps}
    # matplotlib imported up front on both sides: the cold figures leave its import out
    t0 = time.perf_counter()
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.backends.backend_agg import FigureCanvasAgg  # noqa: F401
    from matplotlib.figure import Figure  # noqa: F401

    out["matplotlib_import_s"] = time.perf_counter() - t0
    if lib == "mltrack":
        t0 = time.perf_counter()
        from jupyter_mltrack.widgets.comparison import RunComparison

        out["import_s"] = time.perf_counter() - t0

        def build() -> dict[str, float]:
            t0 = time.perf_counter()
            panel = RunComparison(run_ids, client=client, background=False)
            seconds = time.perf_counter() - t0
            error = panel.last_error
            built = getattr(panel, "build_seconds", None)
            png = panel.curves.value
            panel.close()
            if error or bytes(png[:4]) != b"\x89PNG":
                raise AssertionError(f"RunComparison drew no curves; error {error!r}")
            if built is None:
                raise AssertionError("RunComparison has no build_seconds after construction")
            return {"build": built, "constructor": seconds}

        out["panel"] = cold_warm(build, warm_n=7, budget_s=30.0)
    budget = 15.0 if lib == "mltrack" else 30.0
    out["fetch_plot"] = cold_warm(fetch_and_plot(client, run_ids, steps), 3, budget)
    return out


PHASES = {"table": table_phase, "curves": curves_phase}


def run_phase(lib: str, phase: str, uri: str, spec_path: Path) -> dict:
    """Run a timing phase in a fresh interpreter (cold figures mean a cold process)."""
    cmd = [sys.executable, __file__, "--lib", lib, "--phase", phase, "--uri", uri]
    cmd += ["--spec", str(spec_path)]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    sys.stderr.write(proc.stderr)
    result = parse_result(proc.stdout)
    if proc.returncode or result is None:
        raise RuntimeError(f"{phase} phase failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    return result


# --- main ------------------------------------------------------------------------------------


def main() -> None:
    parser = base_parser(__doc__.splitlines()[0])
    parser.add_argument("--phase", choices=["all", *PHASES], default="all")
    internal = "internal: set by the populating process for a timing phase"
    parser.add_argument("--uri", help=internal)
    parser.add_argument("--spec", type=Path, help=internal)
    parser.add_argument("--only", choices=list(PHASES), help="time one part only")
    args = parser.parse_args()
    lib = args.lib
    mlflow = load(lib)
    if args.phase != "all":
        mlflow.set_tracking_uri(args.uri)
        client = client_class(mlflow)()
        spec = json.loads(args.spec.read_text())
        emit(PHASES[args.phase](lib, mlflow, client, spec))
        return

    size = sizes(args.quick)
    result: dict[str, Any] = {"lib": lib, "version": lib_version(lib), "sizes": size}
    with workdir("panels", lib, args.keep) as wd:
        uri = store_uri(lib, wd)
        mlflow.set_tracking_uri(uri)
        client = client_class(mlflow)()
        populated = populate(lib, mlflow, client, wd, size)
        spec_path = wd / "spec.json"
        spec_path.write_text(json.dumps(populated.pop("spec")))
        result["populate"] = populated
        for phase in [args.only] if args.only else list(PHASES):
            try:
                result[phase] = run_phase(lib, phase, uri, spec_path)
            except (RuntimeError, AssertionError) as err:
                last = [line for line in str(err).splitlines() if line.strip()][-1]
                result[phase] = {"error": last, "detail": str(err)[-2000:]}
    emit(result)


if __name__ == "__main__":
    main()
