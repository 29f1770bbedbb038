"""Run every benchmark on jupyter_mltrack and on MLflow in one go and compare.

Usage (from the repository root; any Python 3.10+ runs this driver, it needs only the stdlib)::

    python3 benchmarks/run_all.py                 # everything, writes benchmarks/results.md
    python3 benchmarks/run_all.py --quick         # scaled-down smoke run (results.md untouched)
    python3 benchmarks/run_all.py --only search   # one benchmark (comma-separated list)
    python3 benchmarks/run_all.py --from-json benchmarks/.work/results.json  # re-render

Ours runs under the project venv (``.venv/bin/python``), MLflow under
``benchmarks/.venv-mlflow`` which ``setup_mlflow_venv.sh`` creates on first use. Each workload
runs as its own process per library, one after the other (never both at once), and prints a
JSON result; libraries' own output goes to ``benchmarks/.work/logs/``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from _common import BENCH_DIR, WORK_ROOT, parse_result, quiet_env

REPO = BENCH_DIR.parent
OURS_PYTHON = REPO / ".venv" / "bin" / "python"
MLFLOW_PYTHON = BENCH_DIR / ".venv-mlflow" / "bin" / "python"
LOG_DIR = WORK_ROOT / "logs"
RESULTS_MD = BENCH_DIR / "results.md"
BENCHMARKS = {
    "import": "bench_import.py",
    "run": "bench_run.py",
    "metrics": "bench_metrics.py",
    "search": "bench_search.py",
    "concurrent": "bench_concurrent.py",
    "track": "bench_track.py",
    "models": "bench_models.py",
    "serve": "bench_serve.py",
    "panels": "bench_panels.py",
    "server": "bench_server.py",
    "autolog": "bench_autolog.py",
}
# Workloads whose MLflow side needs torch and pytorch-lightning in its venv (setup_mlflow_venv.sh
# installs them only when asked, so the test suite's call of the script stays fast).
NEEDS_TORCH = {"autolog"}
# Workloads that measure both sides in one process (under our venv; it starts MLflow's side from
# its own venv) and return {"mltrack": {...}, "mlflow": {...}, shared keys...}.
PAIRED = {"server"}
TIMEOUT_S = 1800

Result = dict[str, Any]


def get(result: Result | None, path: str) -> Any:
    """``get(r, "warm.median")`` -> r["warm"]["median"], or None where anything is missing."""
    value: Any = result
    for part in path.split("."):
        if not isinstance(value, dict) or part not in value:
            return None
        value = value[part]
    return value


@dataclass
class Row:
    """One line of the table: how to read each side's figure and judge it."""

    bench: str
    label: str | Callable[[Result | None, Result | None], str]
    ours: str | Callable[[Result | None], str] | None
    theirs: str | Callable[[Result | None], str] | None
    unit: str = "s"  # s: seconds, lower is better; B: bytes; MB: mebibytes; n: count;
    # %: percent, lower is better; /s: rate, higher is better
    target: str = ""
    check: Callable[[float | None, float | None], bool | None] | None = None
    ratio: bool = True

    def values(self, ours: Result | None, theirs: Result | None) -> tuple[Any, Any]:
        def read(path: Any, result: Result | None) -> Any:
            if callable(path):
                path = path(result)
            return get(result, path) if path else None

        return read(self.ours, ours), read(self.theirs, theirs)

    def errored(self, side: str, result: Result | None) -> bool:
        """A dict on the way to this side's figure holds an ``error`` (a failed part)."""
        path = self.ours if side == "ours" else self.theirs
        if callable(path):
            path = path(result)
        value: Any = result
        for part in (path or "").split(".") if path else []:
            if not isinstance(value, dict):
                return False
            if "error" in value:
                return True
            value = value.get(part)
        return isinstance(value, dict) and "error" in value

    def ratio_of(self, a: Any, b: Any) -> float | None:
        if not self.ratio or not isinstance(a, int | float) or not isinstance(b, int | float):
            return None
        if self.unit == "/s":
            return a / b if b else None
        # A time (or an overhead) of zero or less: within the noise, no ratio to speak of.
        return b / a if a > 0 and b > 0 else None


def fmt(value: Any, unit: str) -> str:
    """Human figure: seconds scaled to s/ms/µs, bytes, counts, rates."""
    if value is None:
        return "—"
    if not isinstance(value, int | float):
        return str(value)
    if unit == "s":
        if value >= 1:
            return f"{value:.3g} s" if value < 100 else f"{value:,.0f} s"
        if abs(value) >= 1e-3:  # a difference of medians can come out negative
            return f"{value * 1e3:.3g} ms"
        return f"{value * 1e6:.3g} µs"
    if unit == "B":
        return f"{value:,.1f} B"
    if unit == "MB":
        return f"{value:,.0f} MB"
    if unit == "/s":
        return f"{value:,.0f}/s" if value >= 100 else f"{value:.3g}/s"
    if unit == "%":
        return f"{value:,.0f}%" if abs(value) >= 100 else f"{value:.2g}%"
    return f"{value:,}"


def fmt_ratio(ratio: float | None) -> str:
    if ratio is None:
        return "—"
    return f"{ratio:,.0f}x" if ratio >= 100 else f"{ratio:.3g}x"


def _size(n: Any) -> str:
    if not isinstance(n, int):
        return "?"
    return f"{n // 1000}k" if n % 1000 == 0 and n < 1_000_000 else f"{n:,}"


def _points(key: str) -> Callable[[Result | None, Result | None], str]:
    def label(ours: Result | None, theirs: Result | None) -> str:
        a, b = get(ours, f"{key}.points"), get(theirs, f"{key}.points")
        if a == b:
            return _size(a)
        return f"ours {_size(a)}, MLflow {_size(b)}"

    return label


def _search_label(which: int, text: str) -> Callable[[Result | None, Result | None], str]:
    def label(ours: Result | None, theirs: Result | None) -> str:
        sizes = get(ours, "sizes") or get(theirs, "sizes") or [10_000, 100_000]
        return text.format(n=_size(sizes[which]))

    return label


def _search_path(which: int, leaf: str) -> Callable[[Result], str]:
    return lambda r: f"n{(get(r, 'sizes') or [10_000, 100_000])[which]}.{leaf}"


def at_most(limit: float) -> Callable[[Any, Any], bool | None]:
    return lambda a, _b: None if a is None else a <= limit


def ratio_at_least(k: float) -> Callable[[Any, Any], bool | None]:
    return lambda a, b: None if a is None or b is None else (b / a if a else 0) >= k


def overhead_at_most_fraction(k: float) -> Callable[[Any, Any], bool | None]:
    """Our overhead ``a`` at most 1/k of MLflow's ``b``; an overhead of ours measured at or
    below zero (within the noise) meets it when MLflow's is above zero."""

    def check(a: Any, b: Any) -> bool | None:
        if a is None or b is None or b <= 0:
            return None
        return a <= 0 or b / a >= k

    return check


def rows() -> list[Row]:
    """The table, in order. Ratios say how many times better ours is (>1: ours wins)."""
    return (
        core_rows()
        + track_rows()
        + models_rows()
        + serve_rows()
        + panels_rows()
        + server_rows()
        + autolog_rows()
    )


def core_rows() -> list[Row]:
    """Import, run, step metrics, search, concurrency."""
    return [
        Row("import", "import time, fresh process (warm: median)", "warm.median", "warm.median",
            target="≤0.15 s and ≥10x",
            check=lambda a, b: None if a is None or b is None else a <= 0.15 and b / a >= 10),
        Row("import", "import time, first process (cold)", "cold_s", "cold_s"),
        Row("import", "import + first access to start_run, log_metric, MlflowClient (median)",
            "with_api.median", "with_api.median"),
        Row("run", "run with 5 params, 3 metrics, 1 tag (warm: mean)", "warm.mean", "warm.mean",
            target="≥20x", check=ratio_at_least(20)),
        Row("run", "first run on a fresh store, set_experiment included (cold)", "cold_s",
            "cold_s"),
        Row("metrics", lambda o, t: f"log_metric per point, sync, incl. end_run "
            f"({_points('sync')(o, t)} points)", "sync.per_point_s", "sync.per_point_s",
            target="≥100x", check=ratio_at_least(100)),
        Row("metrics", lambda o, _t: f"log_metric: {_size(get(o, 'sync.points'))} points in one "
            "run, total incl. end_run", "sync.total_s", None, target="≤5 s (1M)",
            check=at_most(5.0), ratio=False),
        Row("metrics", "log_metric: first call in the run (cold)", "sync.first_call_s",
            "sync.first_call_s"),
        Row("metrics", lambda o, t: f"log_metric synchronous=False per point, incl. flush "
            f"({_points('async')(o, t)} points; reference)", "async.per_point_s",
            "async.per_point_s"),
        Row("metrics", lambda o, t: f"log_batch, 1000 points per call, per point "
            f"({_points('batch')(o, t)} points; reference)", "batch.per_point_s",
            "batch.per_point_s"),
        Row("metrics", lambda o, t: f"get_metric_history per point "
            f"({_points('history_batch')(o, t)}-point run, warm)", "history_batch.per_point_s",
            "history_batch.per_point_s"),
        Row("metrics", lambda o, t: f"get_metric_history of the sync run "
            f"({_points('history_sync')(o, t)} points, warm, whole call)",
            "history_sync.warm.median", "history_sync.warm.median", ratio=False),
        Row("metrics", "get_metric_history of the sync run, first call (cold)",
            "history_sync.cold_s", "history_sync.cold_s", ratio=False),
        Row("metrics", "bytes on disk per point: whole store incl. WAL after the sync run",
            "sync.bytes_per_point", "sync.bytes_per_point", unit="B", target="≤50",
            check=at_most(50.0), ratio=False),
        Row("metrics", "bytes on disk per point, net of the empty store: log_batch run (same points)",
            "batch.net_bytes_per_point", "batch.net_bytes_per_point", unit="B"),
        Row("search", _search_label(0, "search_runs top 10 of {n} (warm; ours: f1 AND params, "
            "MLflow: f1 only)"), _search_path(0, "search_full.warm.median"),
            _search_path(0, "search_f1.warm.median"), target="≥50x",
            check=ratio_at_least(50)),
        Row("search", _search_label(0, "search_runs top 10 of {n}, same filter f1 > 0.85 on "
            "both (warm)"), _search_path(0, "search_f1.warm.median"),
            _search_path(0, "search_f1.warm.median")),
        Row("search", _search_label(0, "search_runs top 10 of {n}, first call in a fresh "
            "process (cold)"), _search_path(0, "search_full.cold_s"),
            _search_path(0, "search_f1.cold_s")),
        Row("search", _search_label(1, "search_runs top 10 of {n} (warm; ours: f1 AND params, "
            "MLflow: f1 only)"), _search_path(1, "search_full.warm.median"),
            _search_path(1, "search_f1.warm.median"), target="≤10 ms (100k)",
            check=at_most(0.010)),
        Row("search", _search_label(1, "search_runs top 10 of {n}, same filter f1 > 0.85 on "
            "both (warm)"), _search_path(1, "search_f1.warm.median"),
            _search_path(1, "search_f1.warm.median")),
        Row("search", _search_label(0, "search_runs → pandas DataFrame of all {n} runs (warm)"),
            _search_path(0, "dataframe.warm.median"), _search_path(0, "dataframe.warm.median"),
            target="≥20x", check=ratio_at_least(20)),
        Row("search", _search_label(0, "search_runs → DataFrame of all {n} runs, first call "
            "(cold)"), _search_path(0, "dataframe.cold_s"), _search_path(0, "dataframe.cold_s")),
        Row("search", _search_label(1, "populating, per run, up to {n} (ours: client API; "
            "MLflow: bulk SQL)"), _search_path(1, "populate_per_run_s"),
            _search_path(1, "populate_per_run_s"), ratio=False),
        Row("concurrent", lambda o, t: f"8 processes logging to one store: points/s "
            f"({get(o or t, 'runs_per_worker')} runs x {get(o or t, 'steps')} steps x 2 "
            "metrics each)", "points_per_s", "points_per_s", unit="/s"),
        Row("concurrent", "8 processes: runs/s", "runs_per_s", "runs_per_s", unit="/s"),
        Row("concurrent", "8 processes: failed calls", "errors", "errors", unit="n",
            target="0 (ours)", check=lambda a, _b: None if a is None else a == 0, ratio=False),
        Row("concurrent", "8 processes: points logged without error but not stored",
            "lost_points", "lost_points", unit="n", target="0 (ours)",
            check=lambda a, _b: None if a is None else a == 0, ratio=False),
    ]  # fmt: skip


def track_rows() -> list[Row]:
    """``%%track`` overhead (issue 3): ours in IPython; explicit start_run code on both."""
    magic, explicit = "magic.{}.summary_{}.{}", "explicit.{}.explicit.{}"
    return [
        Row("track", "%%track overhead, trivial cell, summary line on (default; median; "
            "MLflow: explicit start_run + log_params + log_metrics)",
            magic.format("trivial", "on", "overhead_s"),
            explicit.format("trivial", "overhead_s"), target="≤5 ms", check=at_most(0.005)),
        Row("track", "%%track overhead, trivial cell, summary line off (median)",
            magic.format("trivial", "off", "overhead_s"), None, target="≤5 ms",
            check=at_most(0.005), ratio=False),
        Row("track", "explicit API overhead, trivial cell: start_run + log_params + log_metrics "
            "(same code on both, median)", explicit.format("trivial", "overhead_s"),
            explicit.format("trivial", "overhead_s")),
        Row("track", "%%track overhead beyond PNG encoding, one figure, summary on (median; "
            "MLflow: explicit code + log_figure)", magic.format("figure", "on", "beyond_png_s"),
            explicit.format("figure", "beyond_png_s"), target="≤20 ms", check=at_most(0.020)),
        Row("track", "%%track overhead beyond PNG encoding, one figure, summary off (median)",
            magic.format("figure", "off", "beyond_png_s"), None, target="≤20 ms",
            check=at_most(0.020), ratio=False),
        Row("track", "%%track overhead, one figure, PNG encoding included, summary on (median; "
            "MLflow: explicit code + log_figure)", magic.format("figure", "on", "overhead_s"),
            explicit.format("figure", "overhead_s")),
        Row("track", "explicit API overhead beyond PNG encoding, one figure: + log_figure "
            "(same code on both, median)", explicit.format("figure", "beyond_png_s"),
            explicit.format("figure", "beyond_png_s")),
        Row("track", "PNG encoding alone, savefig(bbox_inches='tight') as %%track does (median)",
            "magic.figure.median_s.png_tight", "explicit.figure.median_s.png_tight", ratio=False),
        Row("track", "PNG encoding alone, plain savefig as log_figure does (median)",
            "explicit.figure.median_s.png_plain", "explicit.figure.median_s.png_plain",
            ratio=False),
        Row("track", "first %%track cell in a fresh shell (cold)", "magic.first_tracked_cell_s",
            None, ratio=False),
        Row("track", "explicit API: first run on a fresh store (cold)", "explicit.first_run_s",
            "explicit.first_run_s"),
    ]  # fmt: skip


def models_rows() -> list[Row]:
    """log_model, register, two transitions, load by stage, predict (issue 4)."""
    steps = [
        ("infer_signature", "infer_signature(X, preds)"),
        ("log_model", "sklearn.log_model (RandomForest, signature, input example)"),
        ("run_open_close", "start_run + end_run around log_model"),
        ("register_model", "register_model"),
        ("to_staging", "transition to Staging"),
        ("to_production", "transition to Production, archive_existing_versions"),
        ("load_model", "pyfunc.load_model('models:/BenchModel/Production')"),
        ("predict", "predict, 100 rows"),
    ]
    return [
        Row("models", lambda o, t: "log_model + register + 2 transitions + load by stage + "
            f"predict: total (warm: median of ours {get(o, 'warm.total.n')}, MLflow "
            f"{get(t, 'warm.total.n')})", "warm.total.median", "warm.total.median",
            target="≥10x", check=ratio_at_least(10)),
        *[Row("models", f"· {label} (warm: median)", f"warm.{step}.median",
              f"warm.{step}.median") for step, label in steps],
        Row("models", "total, first iteration in a fresh process on a fresh store (cold; "
            "imports apart)", "cold.total", "cold.total"),
        Row("models", "· sklearn.log_model, first call (cold)", "cold.log_model",
            "cold.log_model"),
        Row("models", "imports: library, sklearn and pyfunc flavors, infer_signature "
            "(first call)", "import_s", "import_s"),
        Row("models", "ours with serialization_format='skops': total (warm: median; reference)",
            "skops.total.median", None, ratio=False),
        Row("models", "· skops: sklearn.log_model (warm: median)", "skops.log_model.median",
            None, ratio=False),
        Row("models", "· skops: pyfunc.load_model by stage (warm: median)",
            "skops.load_model.median", None, ratio=False),
    ]  # fmt: skip


def serve_rows() -> list[Row]:
    """``models serve`` of a LogisticRegression and a RandomForest (issue 5)."""

    def n_seq(o: Result | None, t: Result | None) -> str:
        return f"{get(o or t, 'sizes.sequential') or 1000:,}"

    def conc(o: Result | None, t: Result | None) -> str:
        return f"{get(o or t, 'sizes.concurrent_s') or 5:g} s"

    out: list[Row] = []
    for key, name in (("logreg", "LogisticRegression"), ("forest", "RandomForest")):
        lr = key == "logreg"
        out += [
            Row("serve", f"{name}: server startup, Popen to first 200 on /ping",
                f"{key}.startup_s", f"{key}.startup_s", target="≥4x",
                check=ratio_at_least(4)),
            Row("serve", lambda o, t, name=name: f"{name}: latency p50, {n_seq(o, t)} sequential "
                "one-row requests (keep-alive)", f"{key}.sequential.p50",
                f"{key}.sequential.p50", target="≤¼ of MLflow's" if lr else "",
                check=ratio_at_least(4) if lr else None),
            Row("serve", lambda o, t, name=name: f"{name}: latency p99, {n_seq(o, t)} sequential",
                f"{key}.sequential.p99", f"{key}.sequential.p99"),
            Row("serve", f"{name}: the model's own one-row predict, in-process (median; "
                "reference)", f"{key}.predict.median", f"{key}.predict.median", ratio=False),
            Row("serve", f"{name}: sequential p50 minus the model's own predict (server "
                "overhead)", f"{key}.p50_minus_predict_s", f"{key}.p50_minus_predict_s",
                target="" if lr else "≤1 ms", check=None if lr else at_most(0.001),
                ratio=False),
            Row("serve", lambda o, t, name=name: f"{name}: throughput, {CONC} keep-alive clients "
                f"for {conc(o, t)}", f"{key}.concurrent.requests_per_s",
                f"{key}.concurrent.requests_per_s", unit="/s", target="≥3x" if lr else "",
                check=(lambda a, b: None if a is None or b is None else a >= 3 * b)
                if lr else None),
            Row("serve", f"{name}: latency p50 at concurrency {CONC} (reference)",
                f"{key}.concurrent.latency.p50", f"{key}.concurrent.latency.p50"),
            Row("serve", f"{name}: server memory, VmRSS of the process tree after the load",
                f"{key}.rss_mb", f"{key}.rss_mb", unit="MB", target="≤½ of MLflow's",
                check=ratio_at_least(2)),
            Row("serve", f"{name}: failed requests (warm-up, sequential, concurrent)",
                f"{key}.errors", f"{key}.errors", unit="n", target="0 (ours)",
                check=lambda a, _b: None if a is None else a == 0, ratio=False),
        ]  # fmt: skip
    return out


def _panels_label(text: str) -> Callable[[Result | None, Result | None], str]:
    """``text`` with {n} (table runs), {runs} and {steps} (curves) from either side's sizes."""

    def label(ours: Result | None, theirs: Result | None) -> str:
        size = get(ours, "sizes") or get(theirs, "sizes") or {}
        return text.format(
            n=_size(size.get("table_runs")),
            runs=size.get("curve_runs", "?"),
            steps=_size(size.get("steps")),
        )

    return label


def panels_rows() -> list[Row]:
    """Widget panels: runs table and run comparison; MLflow does the same job by hand."""
    return [
        Row("panels", _panels_label("runs table over {n} runs: first render, Python side (warm "
            "median; ours: RunsTable(...) constructor, first page of 50 in its grid; MLflow: "
            "search_runs of the 50 newest → row dicts)"),
            "table.table.warm.median", "table.table.warm.median", target="≤0.3 s",
            check=at_most(0.3)),
        Row("panels", "· runs table, first one in a fresh process (cold)",
            "table.table.cold_s", "table.table.cold_s", target="≤0.3 s", check=at_most(0.3)),
        Row("panels", _panels_label("· MLflow's usual notebook view: mlflow.search_runs → "
            "DataFrame of all {n} runs (warm; reference)"), None,
            "table.dataframe.warm.median", ratio=False),
        Row("panels", _panels_label("comparison of {runs} runs x {steps} steps: build the "
            "curves (warm median; ours: RunComparison.build_seconds, min/max buckets in SQL + "
            "plot; MLflow: get_metric_history of each run + matplotlib PNG)"),
            "curves.panel.build.warm.median", "curves.fetch_plot.total.warm.median",
            target="≤1 s", check=at_most(1.0)),
        Row("panels", "· build the curves, first one in a fresh process (cold)",
            "curves.panel.build.cold_s", "curves.fetch_plot.total.cold_s"),
        Row("panels", "· ours: whole RunComparison constructor, every tab drawn (warm) vs "
            "MLflow's fetch + plot", "curves.panel.constructor.warm.median",
            "curves.fetch_plot.total.warm.median"),
        Row("panels", "· every full history: get_metric_history of each run (same code on "
            "both, warm; MLflow's fetch alone)", "curves.fetch_plot.fetch.warm.median",
            "curves.fetch_plot.fetch.warm.median"),
        Row("panels", "· full histories fetched + plotted with matplotlib (same code on both, "
            "warm; reference)", "curves.fetch_plot.total.warm.median",
            "curves.fetch_plot.total.warm.median"),
    ]  # fmt: skip


def server_rows() -> list[Row]:
    """``mltrack server`` vs ``mlflow server`` on PostgreSQL, driven by both clients (issue 8)."""

    def runs(o: Result | None, t: Result | None) -> str:
        return f"{get(o or t, 'sizes.runs') or 200}"

    def search_n(o: Result | None, t: Result | None) -> str:
        return _size(get(o or t, "sizes.search_runs") or 10_000)

    def mb(o: Result | None, t: Result | None) -> str:
        return f"{get(o or t, 'sizes.artifact_mb') or 50} MB"

    out: list[Row] = []
    for key, who in (("mlflow_client", "mlflow client"), ("our_client", "our client")):
        real = key == "mlflow_client"
        out += [
            Row("server", lambda o, t, who=who: f"{who}: per-run logging, start_run + 5 params + "
                f"3 metrics + 1 tag + end (mean of {runs(o, t)})", f"{key}.logging.mean",
                f"{key}.logging.mean", target="≥5x", check=ratio_at_least(5)),
            Row("server", f"{who}: per-run logging (median)", f"{key}.logging.median",
                f"{key}.logging.median", target="≥5x", check=ratio_at_least(5)),
            Row("server", f"{who}: metric throughput, log_batch of 1000 points per call "
                "(synchronous)", f"{key}.batch.points_per_s", f"{key}.batch.points_per_s",
                unit="/s"),
            Row("server", lambda o, t, who=who: f"{who}: search_runs top 10 of {search_n(o, t)}, "
                "filter + order_by (warm median)", f"{key}.search.warm.median",
                f"{key}.search.warm.median", target="≥5x", check=ratio_at_least(5)),
            Row("server", f"{who}: search_runs, first call (cold)", f"{key}.search.cold_s",
                f"{key}.search.cold_s"),
            Row("server", lambda o, t, who=who: f"{who}: log_artifact of {mb(o, t)} through the "
                "server's proxy (median)", f"{key}.artifacts.upload.median",
                f"{key}.artifacts.upload.median"),
            Row("server", lambda o, t, who=who: f"{who}: download_artifacts of {mb(o, t)} "
                "(median)", f"{key}.artifacts.download.median",
                f"{key}.artifacts.download.median"),
        ] if real else [
            Row("server", lambda o, t, who=who: f"{who}: per-run logging, same code (mean of "
                f"{runs(o, t)})", f"{key}.logging.mean", f"{key}.logging.mean",
                target="≥5x", check=ratio_at_least(5)),
            Row("server", f"{who}: per-run logging (median)", f"{key}.logging.median",
                f"{key}.logging.median", target="≥5x", check=ratio_at_least(5)),
            Row("server", f"{who}: metric throughput, log_batch (synchronous)",
                f"{key}.batch.points_per_s", f"{key}.batch.points_per_s", unit="/s"),
            Row("server", lambda o, t, who=who: f"{who}: search_runs top 10 of {search_n(o, t)} "
                "(warm median)", f"{key}.search.warm.median", f"{key}.search.warm.median",
                target="≥5x", check=ratio_at_least(5)),
            Row("server", lambda o, t, who=who: f"{who}: log_artifact of {mb(o, t)} (median)",
                f"{key}.artifacts.upload.median", f"{key}.artifacts.upload.median"),
            Row("server", lambda o, t, who=who: f"{who}: download_artifacts of {mb(o, t)} "
                "(median)", f"{key}.artifacts.download.median",
                f"{key}.artifacts.download.median"),
        ]  # fmt: skip
    out += [
        Row("server", "server startup, Popen to first 200 on /health (reference)", "startup_s",
            "startup_s"),
        Row("server", "server memory, VmRSS of the process tree after both clients (reference)",
            "rss_mb", "rss_mb", unit="MB"),
        Row("server", lambda o, t: "populating the search data, per run (ours: our Client on "
            "PostgreSQL directly; MLflow: bulk SQL)", "populate.per_run_s",
            "populate.per_run_s", ratio=False),
    ]  # fmt: skip
    return out


def _steps(text: str) -> Callable[[Result | None, Result | None], str]:
    """``text`` with {steps} (optimizer steps per training) from either side's sizes."""

    def label(ours: Result | None, theirs: Result | None) -> str:
        return text.format(steps=f"{get(ours or theirs, 'sizes.steps') or 1000:,}")

    return label


def autolog_rows() -> list[Row]:
    """Overhead of tracking a PyTorch training: Lightning autolog and a plain loop."""
    five, tenth = "≤5% of the loop", "≤1/10 of MLflow's"
    return [
        Row("autolog", _steps("PyTorch Lightning Trainer.fit, {steps} steps, no tracking "
            "(median)"), "lightning.median_s.plain", "lightning.median_s.plain", ratio=False),
        Row("autolog", "· with mlflow.pytorch.autolog() at its defaults (median)",
            "lightning.median_s.autolog", "lightning.median_s.autolog"),
        Row("autolog", "· autolog overhead, % of the loop", "lightning.autolog.overhead_pct",
            "lightning.autolog.overhead_pct", unit="%", target=five, check=at_most(5.0)),
        Row("autolog", "· autolog overhead, seconds (difference of medians)",
            "lightning.autolog.overhead_s", "lightning.autolog.overhead_s", target=tenth,
            check=overhead_at_most_fraction(10)),
        Row("autolog", "· reference: autolog(log_models=False, checkpoint=False) overhead, % "
            "of the loop", "lightning.metrics_only.overhead_pct",
            "lightning.metrics_only.overhead_pct", unit="%"),
        Row("autolog", "· reference: autolog(log_models=False, checkpoint=False) overhead, "
            "seconds", "lightning.metrics_only.overhead_s", "lightning.metrics_only.overhead_s"),
        Row("autolog", _steps("plain PyTorch loop, {steps} steps, no tracking (median)"),
            "loop.median_s.plain", "loop.median_s.plain", ratio=False),
        Row("autolog", "· tracked (ours: track_training + run.log per step; MLflow: start_run "
            "+ log_metric per step; median)", "loop.median_s.tracked", "loop.median_s.tracked"),
        Row("autolog", "· tracking overhead, % of the loop", "loop.tracked.overhead_pct",
            "loop.tracked.overhead_pct", unit="%", target=five, check=at_most(5.0)),
        Row("autolog", "· tracking overhead, seconds (difference of medians)",
            "loop.tracked.overhead_s", "loop.tracked.overhead_s", target=tenth,
            check=overhead_at_most_fraction(10)),
        Row("autolog", "· like for like, metrics only: ours track_training(log_models=False) "
            "vs MLflow log_metric per step: overhead, seconds", "loop.reference.overhead_s",
            "loop.tracked.overhead_s"),
        Row("autolog", "· like for like, model logged at the end: ours track_training vs "
            "MLflow log_metric per step + pytorch.log_model: overhead, seconds",
            "loop.tracked.overhead_s", "loop.reference.overhead_s"),
    ]  # fmt: skip


CONC = 8


def run_workload(
    bench: str, lib: str, python: Path, quick: bool, extra: tuple[str, ...] = ()
) -> Result:
    """Run one workload under one interpreter; its result, or {"error": ...}."""
    cmd = [str(python), str(BENCH_DIR / BENCHMARKS[bench]), "--lib", lib, *extra]
    cmd += ["--quick"] if quick else []
    log = LOG_DIR / f"{bench}-{lib}.log"
    print(f"[{bench}] {lib}: {shlex.join(cmd)}", file=sys.stderr, flush=True)
    t0 = time.perf_counter()
    try:
        proc = subprocess.run(
            cmd, capture_output=True, text=True, env=quiet_env(), cwd=REPO, timeout=TIMEOUT_S
        )
    except subprocess.TimeoutExpired as exc:
        log.write_text(f"$ {shlex.join(cmd)}\ntimed out after {TIMEOUT_S} s\n{exc.stderr or ''}")
        return {"error": f"timed out after {TIMEOUT_S} s", "command": shlex.join(cmd)}
    elapsed = time.perf_counter() - t0
    log.write_text(f"$ {shlex.join(cmd)}\n--- stdout\n{proc.stdout}\n--- stderr\n{proc.stderr}")
    result = parse_result(proc.stdout)
    if proc.returncode or result is None:
        tail = "\n".join(proc.stderr.strip().splitlines()[-25:])
        print(f"[{bench}] {lib}: FAILED (exit {proc.returncode}), see {log}", file=sys.stderr)
        return {"error": f"exit {proc.returncode}", "command": shlex.join(cmd), "stderr": tail}
    print(f"[{bench}] {lib}: done in {elapsed:.1f} s", file=sys.stderr, flush=True)
    result["elapsed_s"] = elapsed
    return result


def table(results: dict[str, dict[str, Result]], benches: list[str]) -> list[list[str]]:
    """The comparison table as rows of cells (header first)."""
    ver = versions(results)
    out = [
        [
            "benchmark",
            f"ours {ver['mltrack']}",
            f"MLflow {ver['mlflow']}",
            "ratio",
            "target",
            "met?",
        ]
    ]
    for row in rows():
        if row.bench not in benches:
            continue
        ours, theirs = results[row.bench].get("mltrack"), results[row.bench].get("mlflow")
        ours_ok = ours if ours and "error" not in ours else None
        theirs_ok = theirs if theirs and "error" not in theirs else None
        a, b = row.values(ours_ok, theirs_ok)
        label = row.label(ours_ok, theirs_ok) if callable(row.label) else row.label
        verdict = row.check(a, b) if row.check else None
        met = "" if row.check is None else {True: "yes", False: "NO", None: "n/a"}[verdict]
        cells = [fmt(a, row.unit), fmt(b, row.unit)]
        if ours and ("error" in ours or (a is None and row.errored("ours", ours))):
            cells[0] = "error"
        if theirs and ("error" in theirs or (b is None and row.errored("theirs", theirs))):
            cells[1] = "error"
        out.append([label, *cells, fmt_ratio(row.ratio_of(a, b)), row.target, met])
    return out


def render_text(cells: list[list[str]]) -> str:
    widths = [max(len(r[i]) for r in cells) for i in range(len(cells[0]))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) for r in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def render_markdown(cells: list[list[str]]) -> str:
    lines = ["| " + " | ".join(r) + " |" for r in cells]
    lines.insert(1, "|" + "|".join(["---"] + ["---:"] * 3 + ["---"] * 2) + "|")
    return "\n".join(lines)


def caveats(results: dict[str, dict[str, Result]], quick: bool) -> list[str]:
    """Notes that the figures need to be read right."""
    notes = [
        "Ratio: how many times better ours is (MLflow time / our time; for rates, ours / MLflow).",
        "MLflow runs on its SQLite backend (`sqlite:///<tmp>/mlflow.db`); ours on its embedded "
        "store (a fresh folder given to `set_tracking_uri`). Same workload code on both: "
        "`import jupyter_mltrack as mlflow` vs `import mlflow`.",
    ]
    if quick:
        notes.insert(0, "**--quick run: scaled-down sizes, the targets apply to the full run.**")
    if "metrics" in results:
        n_sync = get(results["metrics"].get("mlflow"), "sync.points") or 0
        notes.append(
            "Step metrics: MLflow's sync `log_metric` costs milliseconds per call, so it logs "
            "fewer points than ours; per-point figures are compared. Its bytes per point after "
            f"its {n_sync:,}-point sync run are dominated by its empty schema (~0.9 MB); the log_batch "
            "row (same points on both, net of the empty store) compares storage fairly. The "
            "whole-call history rows read different point counts (no ratio)."
        )
    if "search" in results:
        notes.append(
            "search_runs: MLflow rejects numeric comparison on params (`params.n_estimators > "
            "50`), so MLflow is timed with `metrics.f1 > 0.85` alone; ours is timed with the full "
            "filter and with the same f1-only filter. Every result is checked against the "
            "expected top 10."
        )
        api = get(results["search"].get("mlflow"), "api_populate_per_run_s")
        ours_method = get(results["search"].get("mltrack"), "populate_method")
        extrapolated = f"; {api * 1e3:.0f} ms per run measured on its first 50" if api else ""
        notes.append(
            f"Populating the search stores: ours: {ours_method or 'public client API'}. "
            "MLflow: store, migrations, experiment and the first 50 runs through its API, the "
            f"rest by bulk SQL into its own schema (its API is too slow for 100k runs{extrapolated}"
            f"{f', ~{api * 1e5 / 60:.0f} min for 100k' if api else ''}). "
            "A bulk-inserted run is read back through MLflow's client as a check."
        )
    mlflow_search = results.get("search", {}).get("mlflow") or {}
    single = [
        f"{_size(get(mlflow_search, key + '.n_runs'))} runs ({what})"
        for key in mlflow_search
        if key.startswith("n")
        for leaf, what in (("search_f1", "top 10"), ("dataframe", "DataFrame"))
        if get(mlflow_search, f"{key}.{leaf}.warm_is_cold_call")
    ]
    if single:
        notes.append(
            "MLflow's search took over 20 s per call at "
            + ", ".join(single)
            + ": timed once (that first call stands for both its cold and warm figures)."
        )
    conc = results.get("concurrent", {})
    walls = {lib: get(conc.get(lib), "wall_s") for lib in ("mltrack", "mlflow")}
    if all(walls.values()):
        notes.append(
            f"8 processes: the same {get(conc.get('mlflow'), 'expected_points'):,} points on both "
            f"sides took {walls['mltrack']:.2f} s (ours) and {walls['mlflow']:.1f} s (MLflow) "
            "from the common start signal to the last worker's end (imports excluded); "
            "stored points are counted by reading every run back."
        )
    kinds = get(conc.get("mlflow"), "error_kinds")
    if kinds:
        notes.append(f"MLflow errors under 8 concurrent processes: {json.dumps(kinds)}")
    kinds = get(conc.get("mltrack"), "error_kinds")
    if kinds:
        notes.append(f"Our errors under 8 concurrent processes: {json.dumps(kinds)}")
    notes += track_notes(results.get("track", {})) + models_notes(results.get("models", {}))
    notes += serve_notes(results.get("serve", {})) + panels_notes(results.get("panels", {}))
    notes += server_notes(results.get("server", {})) + autolog_notes(results.get("autolog", {}))
    for bench, per_lib in results.items():
        for lib, result in per_lib.items():
            if "error" in result and "command" not in result:  # a side of a PAIRED run
                notes.append(f"{bench} / {lib} failed: {result['error']}")
            elif "error" in result:
                notes.append(
                    f"{bench} / {lib} failed ({result['error']}): `{result['command']}`; "
                    f"log in benchmarks/.work/logs/{bench}-{lib}.log"
                )
    return notes


def track_notes(per_lib: dict[str, Result]) -> list[str]:
    """How the %%track figures were taken."""
    if not per_lib:
        return []
    ours, theirs = per_lib.get("mltrack") or {}, per_lib.get("mlflow") or {}
    notes = [
        f"%%track: a real IPython InteractiveShell (history off, matplotlib Agg) times "
        f"`shell.run_cell` of each cell with and without `%%track`, interleaved "
        f"({get(ours, 'magic.trivial.n')} times each); overhead = difference of the medians; "
        "beyond PNG encoding = minus the median of `savefig(BytesIO(), format='png', "
        "bbox_inches='tight')` on the same figure (what %%track does). The figure cell is "
        "`fig, ax = plt.subplots(); ax.plot([1, 2, 3])`, closed in an untimed cell after each "
        "run. The summary line and cell output go to /dev/null (a kernel sends them to the "
        "frontend instead).",
        "Explicit API rows and MLflow's column: the same cell text run as plain Python "
        "(`exec` of the compiled cell; MLflow's venv has no IPython) with and without `with "
        "mlflow.start_run(): mlflow.log_params({'x': 1}); mlflow.log_metrics({'y': 2})` "
        "(+ `mlflow.log_figure(fig, 'figure.png')` for the figure cell), interleaved "
        f"(ours {get(ours, 'explicit.trivial.n')}, MLflow {get(theirs, 'explicit.trivial.n')} "
        "times each); log_figure saves with a plain `savefig`, so its PNG baseline is the "
        "plain-savefig row. The first %%track row compares our magic with MLflow's explicit "
        "code, as the issue asks; the explicit rows compare like for like.",
    ]
    for lib, result in (("ours", ours), ("MLflow", theirs)):
        for part, what in (("explicit", "explicit"), ("magic", "%%track")):
            stored = get(result, f"{part}.runs_stored")
            expected = get(result, f"{part}.runs_expected")
            if stored is not None and stored != expected:
                notes.append(f"track / {lib}: {stored} {what} runs stored, {expected} expected.")
    return notes


def models_notes(per_lib: dict[str, Result]) -> list[str]:
    """How the model/registry figures were taken, and what each library warned about."""
    if not per_lib:
        return []
    ours, theirs = per_lib.get("mltrack") or {}, per_lib.get("mlflow") or {}
    fmt_kwargs = get(theirs, "log_model_kwargs")
    notes = [
        "Models: RandomForestClassifier(n_estimators=100, random_state=0) fitted on "
        f"load_breast_cancer ({get(ours or theirs, 'n_rows')} rows, a DataFrame) before timing; "
        "every iteration is a new run and a new version of BenchModel, checked afterwards "
        "(the new version holds Production, its predictions equal the fitted model's). Total = "
        "wall time of the iteration (the steps plus run bookkeeping). Cold = the process's "
        "first iteration on a fresh store; library and flavor imports are timed apart before it "
        "(pandas and scikit-learn were already imported for training).",
        "Serialization: ours logs with its default (cloudpickle); MLflow 3.17.2 defaults to "
        "skops and refuses a plain RandomForest without `skops_trusted_types`, so it is given "
        f"`{fmt_kwargs or {}}` (same format as ours; it then logs a warning about pickle). "
        "The skops rows are ours with `serialization_format='skops'` (no trusted types "
        "needed), into a separate model BenchModelSkops.",
    ]
    warned = {lib: get(r, "cold_warnings") for lib, r in (("ours", ours), ("MLflow", theirs))}
    said = "; ".join(
        f"{lib}: " + (", ".join(f"{n}x {k}" for k, n in w.items()) if w else "none")
        for lib, w in warned.items()
        if w is not None
    )
    if said:
        notes.append(f"Warnings raised during the cold iteration (kept out of the table): {said}.")
    for lib, result in (("ours", ours), ("MLflow", theirs)):
        stored, expected = get(result, "versions_registered"), get(result, "versions_expected")
        if stored is not None and stored != expected:
            notes.append(f"models / {lib}: {stored} versions registered, {expected} expected.")
    return notes


def startups(result: Result) -> str:
    """The startup samples of both models, for the notes."""
    parts = []
    for key, name in (("logreg", "LogisticRegression"), ("forest", "RandomForest")):
        samples = get(result, f"{key}.startup_samples_s") or []
        if samples:
            parts.append(f"{name} " + " / ".join(f"{s:.2f}" for s in samples) + " s")
    return ", ".join(parts) or "?"


def serve_notes(per_lib: dict[str, Result]) -> list[str]:
    """How the serving figures were taken, and anything that went wrong."""
    if not per_lib:
        return []
    ours, theirs = per_lib.get("mltrack") or {}, per_lib.get("mlflow") or {}
    sizes = get(ours, "sizes") or get(theirs, "sizes") or {}
    notes = [
        "Serving: LogisticRegression(max_iter=10000) and RandomForestClassifier(n_estimators=100, "
        f"random_state=0) fitted on load_breast_cancer ({get(ours or theirs, 'n_rows')} rows, a "
        "DataFrame), logged by each library's own `sklearn.log_model` (with a signature) into "
        "its own fresh store and served as `runs:/<id>/model` in a subprocess on a free "
        "127.0.0.1 port, one server at a time, default worker count on both (1): ours `mltrack "
        "models serve -m URI -p PORT`; MLflow `mlflow models serve -m URI -p PORT --env-manager "
        "local` (tracking URI in MLTRACK_TRACKING_URI / MLFLOW_TRACKING_URI; the venv's bin "
        "first on PATH, as MLflow's CLI starts `uvicorn` from PATH).",
        f"Requests: one-row `dataframe_records` POSTs to /invocations cycling over the data set; "
        f"{sizes.get('warmup', 50)} warm-up requests, then {sizes.get('sequential', 1000):,} "
        "sequential ones on one keep-alive http.client connection; throughput: "
        f"{CONC} Python threads, each with its own keep-alive connection, for "
        f"{sizes.get('concurrent_s', 5):g} s (no wrk installed). The load generator runs on "
        f"the same machine ({os.cpu_count()} cores) and its own Python cost is part of every "
        "figure, on both sides alike. Every response is checked (status 200, a `predictions` "
        "list of length 1) and its value compared with the fitted model's.",
        "Startup: from `Popen` of the CLI to the first 200 on GET /ping, polled every 20 ms; "
        + (
            f"the median of {sizes['starts']} starts per model and side"
            if sizes.get("starts", 1) > 1
            else "one start per model and side"
        )
        + f" (ours {startups(ours)}; MLflow {startups(theirs)}). "
        "Memory: VmRSS summed over the server's process tree (MLflow: its CLI process plus the "
        "uvicorn process it starts) from /proc after the load; the sum counts shared pages once "
        "per process, so PSS is given below. The model's own predict: the fitted estimator's "
        "`predict` on the same one-row DataFrame in the benchmark process right after each "
        "sequential request (median; both taken in the same moments), scikit-learn "
        f"{get(ours, 'sklearn') or '?'} (ours) / {get(theirs, 'sklearn') or '?'} (MLflow's venv).",
    ]
    pss = []
    for key, name in (("logreg", "LogisticRegression"), ("forest", "RandomForest")):
        parts = []
        for lib, result in (("ours", ours), ("MLflow", theirs)):
            value, procs = (
                get(result, f"{key}.memory.pss_bytes"),
                get(result, f"{key}.memory.processes"),
            )
            if value:
                parts.append(
                    f"{lib} {value / 2**20:,.0f} MB ({procs} process{'es' * (procs != 1)})"
                )
        if parts:
            pss.append(f"{name}: " + ", ".join(parts))
    if pss:
        notes.append("Serving memory as PSS after the load: " + "; ".join(pss) + ".")
    for lib, result in (("ours", ours), ("MLflow", theirs)):
        for key, name in (("logreg", "LogisticRegression"), ("forest", "RandomForest")):
            entry = get(result, key)
            if not isinstance(entry, dict):
                continue
            if "error" in entry:
                notes.append(
                    f"serve / {lib} / {name}: error, {entry['error']} (server logs in "
                    f"benchmarks/.work/logs/serve-*-{key}-server-*.log)."
                )
                continue
            if entry.get("failures"):
                notes.append(
                    f"serve / {lib} / {name}: served on attempt {entry['attempts']} "
                    f"after: {'; '.join(entry['failures'])}"
                )
            kinds = {**(get(entry, "sequential.error_kinds") or {})}
            for k, v in (get(entry, "concurrent.error_kinds") or {}).items():
                kinds[k] = kinds.get(k, 0) + v
            if kinds:
                notes.append(f"serve / {lib} / {name}: failed requests {json.dumps(kinds)}.")
            if entry.get("mismatched"):
                notes.append(
                    f"serve / {lib} / {name}: {entry['mismatched']} predictions differ "
                    "from the fitted model's."
                )
            if "exited_during_load" in entry:
                notes.append(
                    f"serve / {lib} / {name}: the server exited during the load "
                    f"(code {entry['exited_during_load']})."
                )
    return notes  # fmt: skip


def run_paired(bench: str, libs: list[str], pythons: dict[str, Path], quick: bool) -> dict:
    """A ``PAIRED`` workload: one process under our venv; its result split per side."""
    lib = "both" if len(libs) == 2 else libs[0]
    extra = ("--mlflow-python", str(pythons["mlflow"]))
    result = run_workload(bench, lib, pythons["mltrack"], quick, extra)
    if "error" in result:
        return {side: result for side in libs}
    shared = {k: v for k, v in result.items() if k not in ("mltrack", "mlflow")}
    return {side: {**shared, **(result.get(side) or {"error": "not measured"})} for side in libs}


def server_notes(per_lib: dict[str, Result]) -> list[str]:
    """What drives each server row, and anything that went wrong."""
    if not per_lib:
        return []
    ours, theirs = per_lib.get("mltrack") or {}, per_lib.get("mlflow") or {}
    any_side = ours or theirs
    size = get(any_side, "sizes") or {}
    notes = [
        "Team server: the ours column is `mltrack server`, MLflow's is `mlflow server` "
        f"({get(any_side, 'workers')} workers each, `--artifacts-destination` a local folder, "
        "artifacts proxied), both running at once on one throwaway PostgreSQL server "
        "(`scripts/pg_throwaway.sh`, fsync off), one database each (ours through psycopg 3, "
        "MLflow's through psycopg2-binary). The same client process drives both servers, "
        "alternating between them call by call (interleaved rounds), once with the real "
        f"`mlflow` client ({get(any_side, 'mlflow_client_version') or '?'}, MLflow's venv) and "
        "once with ours (same code: `import jupyter_mltrack as mlflow`). A server idles while "
        "the other is being measured.",
        f"Logging: {size.get('runs', '?')} runs per server after {size.get('run_warmup', '?')} "
        "warm-up runs, each `with start_run(experiment_id=...)`: `log_params` (5), "
        "`log_metrics` (3), `set_tag`, end of run (fluent API; each client batches as it "
        "does by default: ours queues the writes of a run it created and sends them with the "
        "end of the run, MLflow's sends each call). Every run is read back (5 params, 3 "
        "metrics, the tag, FINISHED). Throughput: `MlflowClient.log_batch(run_id, "
        f"metrics=[1000 points], synchronous=True)`, {size.get('batch_calls', '?')} timed "
        "calls per server; points/s = timed points / time in those calls; the history is "
        "counted afterwards.",
        f"Search: {_size(size.get('search_runs'))} runs (2 params, 2 metrics, a tag each: the "
        "search benchmark's data) in an experiment created through each server; ours filled by "
        "our Client pointed at its PostgreSQL database directly, MLflow's by bulk SQL into its "
        "own schema (its REST API would take far too long); both databases ANALYZEd. "
        f"`search_runs([exp], \"{get(any_side, 'search_filter')}\", order_by=['metrics.f1 DESC'], "
        f"max_results=10)`: first call (cold), then the median of {size.get('searches', '?')}; "
        "every answer is checked against the expected top 10.",
        f"Artifacts: a {size.get('artifact_mb', '?')} MB random file, `log_artifact` to a new "
        "run then `download_artifacts` to a fresh folder (size and SHA-256 checked), "
        f"repetitions per server: {size.get('artifact_reps', '?')}. Memory: VmRSS summed over the "
        "server's process tree (MLflow: its CLI, uvicorn workers and job-runner processes) "
        "after both clients; startup: Popen to the first 200 on /health, one server at a time.",
        f"Noise: {os.cpu_count()} cores shared by PostgreSQL, both servers, the client and "
        "whatever else runs on the machine; the figures move by tens of percent between runs.",
    ]
    for side, result in (("ours", ours), ("MLflow", theirs)):
        idle, procs = get(result, "memory_idle.rss_bytes"), get(result, "memory.processes")
        pss = get(result, "memory.pss_bytes")
        if idle and pss:
            notes.append(
                f"server / {side}: {procs} processes, VmRSS {idle / 2**20:,.0f} MB idle after "
                f"startup, PSS {pss / 2**20:,.0f} MB after the load."
            )
        for key, who in (("mlflow_client", "mlflow client"), ("our_client", "our client")):
            part = get(result, key) or {}
            if "error" in part:
                notes.append(f"server / {side} / {who}: error, {part['error']}")
                continue
            for name, entry in part.items():
                if isinstance(entry, dict) and "error" in entry:
                    notes.append(f"server / {side} / {who} / {name}: {entry['error']}")
            wrong = get(part, "search.wrong_answers")
            if wrong:
                notes.append(f"server / {side} / {who}: {wrong} wrong search answers.")
            stored, want = get(part, "batch.stored"), get(part, "batch.expected")
            if stored is not None and stored != want:
                notes.append(f"server / {side} / {who}: {stored} points stored, {want} sent.")
            complete, total = get(part, "logging.complete"), get(part, "logging.runs_stored")
            if complete is not None and complete != total:
                notes.append(f"server / {side} / {who}: {total - complete} incomplete runs.")
            if get(part, "artifacts.corrupted"):
                notes.append(f"server / {side} / {who}: an artifact came back different.")
        if "exited" in result:
            notes.append(f"server / {side}: exited during the benchmark ({result['exited']}).")
    return notes


def panels_notes(per_lib: dict[str, Result]) -> list[str]:
    """What each side of the panel rows measures, and how the stores were filled."""
    if not per_lib:
        return []
    ours, theirs = per_lib.get("mltrack") or {}, per_lib.get("mlflow") or {}
    size = get(ours, "sizes") or get(theirs, "sizes") or {}
    runs, steps = size.get("curve_runs"), size.get("steps")
    notes = [
        "Panels: MLflow has no notebook panels, so its column is the same job done by hand the "
        "way an MLflow user does it in a notebook. Runs table: ours is the wall time of "
        "`RunsTable(experiment_names=[...], client=client, background=False)` (query, the first "
        "page of 50 rows set in its DataGrid, controls built; Python side, no browser); MLflow's "
        "is `MlflowClient.search_runs([exp_id], max_results=50, order_by=['attributes.start_time "
        "DESC'])` turned into one dict of cells per row (status, name, start time, duration, "
        "params, metrics) — the data of one table page, with nothing drawn. Its "
        "`mlflow.search_runs` DataFrame of every run is given for reference (ours: see the "
        "search rows). Runs: 2 params, 2 metrics and a tag each (the search benchmark's data).",
        f"Comparison: {runs} runs x {_size(steps)} steps of `loss`. Ours: `RunComparison(run_ids, "
        "client=client, background=False)`; `build_seconds` covers picking the metric, "
        "`Client.get_metric_series` (histories cut to about 1000 points per run by min/max "
        "buckets inside SQLite) and drawing the curves PNG; the constructor also fills the "
        "params/metrics grids and draws the scatter, parallel-coordinates and other tabs. "
        "MLflow: `get_metric_history(run_id, 'loss')` for every run (every point) and one "
        "matplotlib line per run on an Agg `Figure` + `FigureCanvasAgg`, `print_png` to bytes. "
        "The same fetch + plot code also runs on ours. Each part runs in a fresh process: cold "
        "= its first call, warm = median of up to 7 more (a cold call over 20 s is repeated "
        "once only). matplotlib (both sides) and our widget modules are imported before "
        f"timing (ours: RunsTable {fmt(get(ours, 'table.import_s'), 's')}, RunComparison "
        f"{fmt(get(ours, 'curves.import_s'), 's')}; matplotlib "
        f"{fmt(get(theirs, 'curves.matplotlib_import_s'), 's')}).",
    ]
    if get(theirs, "curves.fetch_plot.total.warm.n") == 1:
        notes.append(
            "MLflow's warm fetch + plot figures are a single call (its cold call took "
            f"{fmt(get(theirs, 'curves.fetch_plot.total.cold_s'), 's')})."
        )
    populate = []
    for lib, result in (("ours", ours), ("MLflow", theirs)):
        pop = get(result, "populate") or {}
        if not pop:
            continue
        text = (
            f"{lib}: table {pop.get('table_method')} ({pop.get('table_populate_s', 0):.1f} s); "
            f"curves {pop.get('curve_method')} ({pop.get('curve_populate_s', 0):.1f} s"
        )
        if lib == "MLflow" and pop.get("curve_api_first_run_s"):
            text += (
                f"; its log_batch took {pop['curve_api_first_run_s']:.1f} s for one curve, "
                f"~{pop['curve_api_estimate_s']:.0f} s for all"
            )
        populate.append(text + ")")
    if populate:
        notes.append(
            "Populating the panel stores (one store per library, two experiments): "
            + "; ".join(populate)
            + ". Bulk-inserted rows are read back through MLflow's own client as a check."
        )
    for lib, result in (("ours", ours), ("MLflow", theirs)):
        for phase in ("table", "curves"):
            error = get(result, f"{phase}.error")
            if error:
                notes.append(f"panels / {lib} / {phase} failed: {error}")
    return notes


def autolog_notes(per_lib: dict[str, Result]) -> list[str]:
    """How the PyTorch tracking overheads were taken, and the read-back checks."""
    if not per_lib:
        return []
    ours, theirs = per_lib.get("mltrack") or {}, per_lib.get("mlflow") or {}
    size = get(ours or theirs, "sizes") or {}

    def rounds(part: str) -> str:
        return f"ours {get(ours, f'{part}.n') or '?'}, MLflow {get(theirs, f'{part}.n') or '?'}"

    warmup = (
        "after a one-epoch warm-up round of each"
        if size.get("warmup_epochs")
        else "with no warm-up round"
    )
    notes = [
        f"PyTorch tracking overhead: a 2-layer MLP (32 -> 64 -> 1, MSE, SGD) on random data, "
        f"{size.get('steps', '?'):,} optimizer steps ({size.get('epochs', '?')} epochs of 100 "
        f"batches of {size.get('batch', '?')}; 10 validation batches per epoch for Lightning), "
        f"torch {get(ours or theirs, 'torch')}, PyTorch Lightning "
        f"{get(ours or theirs, 'lightning_version')}, one intra-op thread on both sides. Each training "
        "builds a fresh model (and Trainer) untimed; the variants alternate round by round "
        f"(interleaved) {warmup}, and overhead = median with "
        "tracking - median without, in the same process. Rounds: Lightning "
        f"{rounds('lightning')}; plain loop {rounds('loop')} (MLflow's tracked trainings take "
        "tens of seconds each: fewer rounds; its overheads dwarf the noise).",
        "Lightning: `Trainer(max_epochs, accelerator='cpu', logger=False, "
        "enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False)` "
        "(`log_every_n_steps` default), the module logging `train_loss` per step and "
        "`val_loss` per epoch; tracked = `mlflow.pytorch.autolog()` with its defaults on each "
        "library (a run per fit, epoch metrics, params, checkpoints on `val_loss`, the model "
        "logged at the end), toggled with `autolog(disable=True)` between fits, untimed.",
        "Plain loop: a DataLoader over a TensorDataset; forward, loss, zero_grad, backward, "
        "step. Ours: `with mlflow.pytorch.track_training(model, optimizer) as run:` and "
        "`run.log(loss=loss)` per step (defaults: params, learning rates per step, the "
        "model with its signature at the end; no train_data given). MLflow has no autologging of a "
        "plain loop, so its column is what an MLflow user writes: `with mlflow.start_run():` "
        "and `mlflow.log_metric('loss', loss.item(), step=step)` per step (synchronous, its "
        "default); its reference adds `mlflow.pytorch.log_model(model, name='model', "
        "signature=..., serialization_format='pickle')` at the end (as its Lightning autolog "
        "logs the model; its default pt2 format needs an input example). Ours logs more than "
        "MLflow's main variant (the model, params, learning rates): the like-for-like rows "
        "compare equal work.",
        f"Noise: the overheads are differences of medians of whole trainings on a shared "
        f"{os.cpu_count()}-core machine; a few percent either way is within the noise (a "
        "negative overhead means below it: no ratio given).",
    ]
    for field, intro in (
        (
            "paired",
            "The same overheads as the median of the per-round differences (a round's "
            "trainings run back to back, so load that comes and goes cancels better): ",
        ),
        (
            "best",
            "The same overheads as the difference of the fastest training of each variant "
            "(noise only ever adds time, so the best of the rounds is the least disturbed "
            "figure): ",
        ),
    ):
        parts = []
        for key, what in (
            ("lightning.autolog", "Lightning autolog"),
            ("lightning.metrics_only", "Lightning metrics only"),
            ("loop.tracked", "plain loop"),
            ("loop.reference", "plain loop reference"),
        ):
            sides = [
                f"{lib} {fmt(get(r, f'{key}.{field}_s'), 's')} "
                f"({fmt(get(r, f'{key}.{field}_pct'), '%')})"
                for lib, r in (("ours", ours), ("MLflow", theirs))
                if get(r, f"{key}.{field}_pct") is not None
            ]
            if sides:
                parts.append(f"{what}: {', '.join(sides)}")
        if parts:
            notes.append(intro + "; ".join(parts) + ".")
    if any(get(r, "sizes.warmup_epochs") == 0 for r in (ours, theirs) if r):
        notes.append(
            "autolog --quick: 300 steps, one round, no warm-up: first-call costs "
            "(imports, first run) are part of the overheads."
        )
    for lib, result in (("ours", ours), ("MLflow", theirs)):
        for part in ("lightning", "loop"):
            for name, check in (get(result, f"{part}.check") or {}).items():
                if isinstance(check, dict) and not check.get("ok"):
                    notes.append(
                        f"autolog / {lib} / {part} / {name}: read-back check failed: "
                        f"{json.dumps(check)}"
                    )
    return notes


def machine() -> str:
    cpu = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{os.cpu_count()} cores ({cpu}), {platform.system()} {platform.release()}"


def versions(results: dict[str, dict[str, Result]]) -> dict[str, str]:
    found = {"mltrack": "?", "mlflow": "?"}
    for per_lib in results.values():
        for lib, result in per_lib.items():
            if result.get("version"):
                found[lib] = result["version"]
    return found


def report(results: dict[str, dict[str, Result]], meta: dict[str, Any], output: Path | None):
    """Print the table and notes; write the markdown page to ``output`` when given."""
    cells = table(results, list(results))
    notes = caveats(results, meta["quick"])
    print()
    print(render_text(cells))
    print()
    for note in notes:
        print(f"- {note}")
    if output is None:
        return
    ver = versions(results)
    pythons = sorted(
        {r["python"] for per_lib in results.values() for r in per_lib.values() if "python" in r}
    )
    text = "\n".join(
        [
            "# Benchmarks: jupyter_mltrack vs MLflow",
            "",
            f"jupyter-mltrack {ver['mltrack']} vs MLflow {ver['mlflow']} (SQLite backend"
            f"{'; server rows: PostgreSQL' if 'server' in results else ''}), "
            f"measured side by side in one run on {meta['started'][:10]} "
            f"({meta['total_s'] / 60:.1f} min), {meta['machine']}, "
            f"Python {', '.join(pythons) or '?'}.",
            "",
            f"Command: `{meta['command']}` (creates `benchmarks/.venv-mlflow` with MLflow on "
            "first use).",
            "",
            render_markdown(cells),
            "",
            *[f"- {note}" for note in notes],
            "",
        ]
    )
    output.write_text(text)
    print(f"\nwrote {output}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", help=f"comma-separated subset of: {', '.join(BENCHMARKS)}")
    parser.add_argument("--quick", action="store_true", help="scaled-down smoke run")
    parser.add_argument("--lib", choices=["both", "mltrack", "mlflow"], default="both")
    parser.add_argument("--ours-python", type=Path, default=OURS_PYTHON)
    parser.add_argument("--mlflow-python", type=Path, default=MLFLOW_PYTHON)
    parser.add_argument("--skip-setup", action="store_true", help="don't check the MLflow venv")
    parser.add_argument(
        "--output", type=Path, help="markdown file (default: benchmarks/results.md, not --quick)"
    )
    parser.add_argument(
        "--from-json", type=Path, help="re-render a saved run (benchmarks/.work/results.json)"
    )
    args = parser.parse_args()
    if args.from_json:
        saved = json.loads(args.from_json.read_text())
        meta = saved["meta"]
        report(saved["results"], meta, args.output or (None if meta["quick"] else RESULTS_MD))
        return
    benches = args.only.split(",") if args.only else list(BENCHMARKS)
    unknown = set(benches) - set(BENCHMARKS)
    if unknown:
        parser.error(f"unknown benchmark(s): {', '.join(sorted(unknown))}")
    libs = ["mltrack", "mlflow"] if args.lib == "both" else [args.lib]
    if "mlflow" in libs and not args.skip_setup:
        torch = ["--torch"] if NEEDS_TORCH & set(benches) else []
        subprocess.run(["bash", str(BENCH_DIR / "setup_mlflow_venv.sh"), *torch], check=True)
    pythons = {"mltrack": args.ours_python, "mlflow": args.mlflow_python}
    LOG_DIR.mkdir(parents=True, exist_ok=True)
    if "mltrack" in libs:
        # Byte-compile the package as installing a wheel does (MLflow's venv got that from pip):
        # the editable install would otherwise compile every module on each start when
        # PYTHONDONTWRITEBYTECODE is set.
        subprocess.run(
            [str(args.ours_python), "-m", "compileall", "-q", str(REPO / "jupyter_mltrack")],
            check=True,
        )

    started = datetime.now(timezone.utc)
    t0 = time.perf_counter()
    results: dict[str, dict[str, Result]] = {}
    for bench in benches:
        if bench in PAIRED:
            results[bench] = run_paired(bench, libs, pythons, args.quick)
            continue
        results[bench] = {lib: run_workload(bench, lib, pythons[lib], args.quick) for lib in libs}
    meta = {
        "started": started.isoformat(),
        "total_s": time.perf_counter() - t0,
        "quick": args.quick,
        "machine": machine(),
        "command": shlex.join(["python3", "benchmarks/run_all.py", *sys.argv[1:]]),
    }
    # A run written elsewhere keeps its raw figures next to it (results.json stays the full run's).
    raw = (
        args.output.with_suffix(".json")
        if args.output and args.output.resolve() != RESULTS_MD.resolve()
        else WORK_ROOT / "results.json"
    )
    raw.write_text(json.dumps({"meta": meta, "results": results}, indent=1, default=str))
    report(results, meta, args.output or (None if args.quick else RESULTS_MD))
    print(f"raw figures: {raw}")


if __name__ == "__main__":
    main()
