"""Benchmark 6: overhead of ``%%track`` on a cell, and of the equivalent explicit MLflow code.

Two parts, each timing a cell with and without tracking, interleaved, medians compared:

- ``%%track`` (ours only): a real IPython ``InteractiveShell`` (history off, matplotlib Agg),
  ``%load_ext jupyter_mltrack``, ``%mltrack store <fresh folder>``; ``shell.run_cell`` of a
  trivial cell (``x = 1; y = x + 1``: one param, one metric) and of a cell drawing one small
  figure, each with and without ``%%track``, with the summary line off and on (the default).
  The figure is closed in an untimed cell after each run. PNG encoding alone is timed the way
  ``%%track`` saves a figure (``savefig(BytesIO(), format="png", bbox_inches="tight")``), so
  overhead beyond PNG encoding = (tracked - untracked) - PNG encoding.
- Explicit API (both libraries, plain Python: ``exec`` of the same compiled cell text, since
  MLflow's venv has no IPython): the cell followed by ``with mlflow.start_run():
  mlflow.log_params(...); mlflow.log_metrics(...)`` (and ``mlflow.log_figure(fig,
  "figure.png")`` for the figure cell) versus the cell alone. ``log_figure`` calls a plain
  ``savefig`` on both libraries, so its PNG baseline is a plain ``savefig``.

What a cell displays (the summary line, the last expression's repr) goes to /dev/null while
timing, on both sides of each comparison.
"""

from __future__ import annotations

import contextlib
import io
import os
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from _common import base_parser, emit, interleaved, lib_version, load, store_uri, workdir

TRIVIAL = "x = 1\ny = x + 1\n"
FIGURE = "fig, ax = plt.subplots()\nax.plot([1, 2, 3])\n"
EXPLICIT_RUN = """\
with mlflow.start_run():
    mlflow.log_params({"x": 1})
    mlflow.log_metrics({"y": 2})
"""
EXPLICIT_FIGURE = '    mlflow.log_figure(fig, "figure.png")\n'
SETUP_MATPLOTLIB = "import matplotlib\nmatplotlib.use('Agg')\nimport matplotlib.pyplot as plt\n"
CLOSE = "plt.close('all')"
WARMUP = 5


def sizes(lib: str, quick: bool) -> dict[str, int]:
    """Timed repetitions per variant (MLflow's explicit runs cost tens of ms each)."""
    if lib == "mltrack":
        return {"magic": 20 if quick else 200, "explicit": 20 if quick else 200}
    return {"magic": 0, "explicit": 10 if quick else 100}


def overheads(samples: dict[str, list[float]], plain: str, png: str | None = None, **tracked: str):
    """Medians of every variant, and each tracked variant's overhead over ``plain``.

    ``tracked`` maps an output name to a variant; with ``png``, also the overhead beyond the
    PNG encoding timed in variant ``png``.
    """
    med = {name: statistics.median(values) for name, values in samples.items()}
    out: dict[str, Any] = {"median_s": med, "n": len(samples[plain])}
    for name, variant in tracked.items():
        extra = med[variant] - med[plain]
        out[name] = {"overhead_s": extra}
        if png is not None:
            out[name]["beyond_png_s"] = extra - med[png]
    return out


# -- %%track in a real IPython shell ---------------------------------------------------------
def make_shell() -> Any:
    """A plain IPython shell as a kernel would run it, minus the history database."""
    from IPython.core.interactiveshell import InteractiveShell
    from traitlets.config import Config

    config = Config()
    config.HistoryManager.enabled = False
    return InteractiveShell.instance(config=config)


def run_cell(shell: Any, cell: str) -> float:
    """Seconds ``shell.run_cell(cell)`` takes; a failing cell stops the benchmark."""
    t0 = time.perf_counter()
    result = shell.run_cell(cell)
    elapsed = time.perf_counter() - t0
    if not result.success:
        raise RuntimeError(
            f"cell failed: {cell!r}: {result.error_before_exec or result.error_in_exec}"
        )
    return elapsed


def set_summary(shell: Any, on: bool) -> None:
    shell.run_line_magic("config", f"MLTrack.summary = {on}")


def png_seconds(fig: Any, **kwargs: Any) -> float:
    t0 = time.perf_counter()
    fig.savefig(io.BytesIO(), format="png", **kwargs)
    return time.perf_counter() - t0


def magic_part(mlflow: Any, store: Path, n: int) -> dict[str, Any]:
    """``%%track`` versus the bare cell, in one IPython shell."""
    shell = make_shell()
    shell.run_line_magic("load_ext", "jupyter_mltrack")
    run_cell(shell, SETUP_MATPLOTLIB)
    with open(os.devnull, "w") as sink, contextlib.redirect_stdout(sink):
        shell.run_line_magic("mltrack", f"store {store}")
        first_s = run_cell(shell, "%%track\n" + TRIVIAL)  # cold: first tracked cell

        def trivial(tracked: bool, summary: bool = False) -> Callable[[], float]:
            def variant() -> float:
                if tracked:
                    set_summary(shell, summary)
                return run_cell(shell, ("%%track\n" if tracked else "") + TRIVIAL)

            return variant

        def figure(tracked: bool, summary: bool = False) -> Callable[[], float]:
            def variant() -> float:
                if tracked:
                    set_summary(shell, summary)
                seconds = run_cell(shell, ("%%track\n" if tracked else "") + FIGURE)
                run_cell(shell, CLOSE)
                return seconds

            return variant

        def png(**kwargs: Any) -> Callable[[], float]:
            def variant() -> float:
                run_cell(shell, FIGURE)
                seconds = png_seconds(shell.user_ns["fig"], **kwargs)
                run_cell(shell, CLOSE)
                return seconds

            return variant

        trivial_samples = interleaved(
            {
                "plain": trivial(False),
                "tracked": trivial(True),
                "tracked_summary": trivial(True, summary=True),
            },
            n,
            warmup=WARMUP,
        )
        figure_samples = interleaved(
            {
                "plain": figure(False),
                "tracked": figure(True),
                "tracked_summary": figure(True, summary=True),
                "png_tight": png(bbox_inches="tight"),
                "png_plain": png(),
            },
            n,
            warmup=WARMUP,
        )
    stored = len(mlflow.search_runs(max_results=10 * n + 100))  # the store %mltrack set
    return {
        "first_tracked_cell_s": first_s,
        "trivial": overheads(
            trivial_samples, "plain", summary_off="tracked", summary_on="tracked_summary"
        ),
        "figure": overheads(
            figure_samples,
            "plain",
            png="png_tight",
            summary_off="tracked",
            summary_on="tracked_summary",
        ),
        "runs_stored": stored,
        "runs_expected": 1 + 4 * (n + WARMUP),
    }


# -- explicit MLflow-style code, plain Python ------------------------------------------------
def explicit_part(mlflow: Any, n: int) -> dict[str, Any]:
    """``with mlflow.start_run(): log_params; log_metrics[; log_figure]`` versus the cell."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ns: dict[str, Any] = {"mlflow": mlflow, "plt": plt}
    code = {
        "trivial": compile(TRIVIAL, "<trivial>", "exec"),
        "trivial_run": compile(TRIVIAL + EXPLICIT_RUN, "<trivial_run>", "exec"),
        "figure": compile(FIGURE, "<figure>", "exec"),
        "figure_run": compile(FIGURE + EXPLICIT_RUN + EXPLICIT_FIGURE, "<figure_run>", "exec"),
    }

    def cell(name: str, close: bool = False) -> Callable[[], float]:
        def variant() -> float:
            t0 = time.perf_counter()
            exec(code[name], ns)
            seconds = time.perf_counter() - t0
            if close:
                plt.close("all")
            return seconds

        return variant

    def png(**kwargs: Any) -> Callable[[], float]:
        def variant() -> float:
            exec(code["figure"], ns)
            seconds = png_seconds(ns["fig"], **kwargs)
            plt.close("all")
            return seconds

        return variant

    t0 = time.perf_counter()
    exec(code["trivial_run"], ns)  # cold: first run on the fresh store
    first_s = time.perf_counter() - t0
    trivial_samples = interleaved(
        {"plain": cell("trivial"), "run": cell("trivial_run")}, n, warmup=WARMUP
    )
    figure_samples = interleaved(
        {
            "plain": cell("figure", close=True),
            "run": cell("figure_run", close=True),
            "png_plain": png(),
            "png_tight": png(bbox_inches="tight"),
        },
        n,
        warmup=WARMUP,
    )
    stored = len(mlflow.search_runs(max_results=10 * n + 100))
    return {
        "first_run_s": first_s,
        "trivial": overheads(trivial_samples, "plain", explicit="run"),
        "figure": overheads(figure_samples, "plain", png="png_plain", explicit="run"),
        "runs_stored": stored,
        "runs_expected": 1 + 2 * (n + WARMUP),
    }


def main() -> None:
    args = base_parser(__doc__.splitlines()[0]).parse_args()
    n = sizes(args.lib, args.quick)
    mlflow = load(args.lib)
    result: dict[str, Any] = {"lib": args.lib, "version": lib_version(args.lib)}
    with workdir("track", args.lib, args.keep) as wd:
        if n["magic"]:  # first, so its first tracked cell is the process's first run
            result["magic"] = magic_part(mlflow, wd / "mltrack-cells", n["magic"])
        mlflow.set_tracking_uri(store_uri(args.lib, wd))
        result["explicit"] = explicit_part(mlflow, n["explicit"])
    emit(result)


if __name__ == "__main__":
    main()
