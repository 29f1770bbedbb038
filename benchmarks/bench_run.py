"""Benchmark 2: one run with 5 params, 3 metrics and 1 tag, start_run to end_run.

The cold figure is the first run of a fresh process on a fresh store (store creation
included); the warm figure is the mean over the following runs.
"""

from __future__ import annotations

import random
import time

from _common import SEED, base_parser, emit, lib_version, load, store_uri, summary, workdir


def one_run(mlflow, rng: random.Random) -> None:
    """The timed unit of work: what a training script logs for one model."""
    with mlflow.start_run():
        mlflow.log_params(
            {
                "n_estimators": rng.randint(10, 500),
                "max_depth": rng.randint(1, 20),
                "criterion": rng.choice(["gini", "entropy", "log_loss"]),
                "min_samples_leaf": rng.randint(1, 10),
                "bootstrap": rng.choice([True, False]),
            }
        )
        mlflow.log_metrics({"f1": rng.random(), "accuracy": rng.random(), "loss": rng.random()})
        mlflow.set_tag("model_type", "random_forest")


def main() -> None:
    args = base_parser(__doc__.splitlines()[0]).parse_args()
    quick = args.quick
    n_runs = {"mltrack": 300 if quick else 3000, "mlflow": 20 if quick else 200}[args.lib]
    mlflow = load(args.lib)
    rng = random.Random(SEED)
    with workdir("run", args.lib, args.keep) as wd:
        mlflow.set_tracking_uri(store_uri(args.lib, wd))
        t0 = time.perf_counter()
        mlflow.set_experiment("bench-run")
        one_run(mlflow, rng)
        cold = time.perf_counter() - t0
        samples = []
        for _ in range(n_runs):
            t0 = time.perf_counter()
            one_run(mlflow, rng)
            samples.append(time.perf_counter() - t0)
        stored = len(mlflow.search_runs(max_results=n_runs + 10))
    emit(
        {
            "lib": args.lib,
            "version": lib_version(args.lib),
            "cold_s": cold,
            "warm": summary(samples),
            "runs_stored": stored,
            "runs_expected": n_runs + 1,
        }
    )


if __name__ == "__main__":
    main()
