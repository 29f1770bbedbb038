"""Benchmark 7: log_model, register, two stage transitions, load by stage, predict.

One iteration, timed step by step and as a whole, on a RandomForestClassifier
(``n_estimators=100, random_state=0``) fitted on scikit-learn's breast cancer data (a
DataFrame), trained once before timing:

    signature = infer_signature(X, preds)
    with mlflow.start_run():
        info = mlflow.sklearn.log_model(model, name="model", signature=signature,
                                        input_example=X.head(3))
    mv = mlflow.register_model(info.model_uri, "BenchModel")
    client.transition_model_version_stage("BenchModel", mv.version, "Staging")
    client.transition_model_version_stage("BenchModel", mv.version, "Production",
                                          archive_existing_versions=True)
    loaded = mlflow.pyfunc.load_model("models:/BenchModel/Production")
    loaded.predict(X.head(100))

The first iteration of the process on a fresh store is the cold figure (the imports of the
library and its sklearn/pyfunc flavors are timed apart, before it); every later iteration
registers a new version and the warm figures are medians over them. Each iteration is checked:
the new version holds Production and its predictions equal the fitted model's. For reference,
ours also runs the iteration with ``serialization_format="skops"`` (into "BenchModelSkops").
Warnings raised during the cold iteration (MLflow's stage deprecations) are counted, not shown.
"""

from __future__ import annotations

import time
import warnings
from importlib import import_module
from typing import Any

from _common import (
    base_parser,
    client_class,
    emit,
    lib_version,
    load,
    sklearn_log_kwargs,
    store_uri,
    summary,
    workdir,
)

MODEL_NAME = "BenchModel"
STEPS = (
    "infer_signature",
    "log_model",
    "run_open_close",
    "register_model",
    "to_staging",
    "to_production",
    "load_model",
    "predict",
)


def sizes(lib: str, quick: bool) -> dict[str, int]:
    """Warm iterations per format (MLflow's log_model takes seconds)."""
    if lib == "mltrack":
        return {"default": 3 if quick else 20, "skops": 2 if quick else 10}
    return {"default": 1 if quick else 5, "skops": 0}


def train() -> tuple[Any, Any, Any]:
    """(X as a DataFrame, fitted RandomForest, its predictions on X)."""
    from sklearn.datasets import load_breast_cancer
    from sklearn.ensemble import RandomForestClassifier

    X, y = load_breast_cancer(return_X_y=True, as_frame=True)
    model = RandomForestClassifier(n_estimators=100, random_state=0).fit(X, y)
    return X, model, model.predict(X)


class Lib:
    """The loaded library's modules the iteration uses (same import paths on both)."""

    def __init__(self, lib: str) -> None:
        t0 = time.perf_counter()
        self.mlflow = load(lib)
        self.sklearn = import_module(f"{self.mlflow.__name__}.sklearn")
        self.pyfunc = import_module(f"{self.mlflow.__name__}.pyfunc")
        self.infer_signature = import_module(f"{self.mlflow.__name__}.models").infer_signature
        self.client_class = client_class(self.mlflow)
        self.import_s = time.perf_counter() - t0


def iteration(
    lib: Lib, client: Any, X: Any, model: Any, preds: Any, name: str, log_kwargs: dict[str, Any]
) -> dict[str, float]:
    """One pass of the workload; seconds per step and ``total`` (wall time of the pass)."""
    mlflow, steps = lib.mlflow, {}
    start = t0 = time.perf_counter()

    def lap(step: str) -> None:
        nonlocal t0
        now = time.perf_counter()
        steps[step] = now - t0
        t0 = now

    signature = lib.infer_signature(X, preds)
    lap("infer_signature")
    with mlflow.start_run():
        t_log = time.perf_counter()
        info = lib.sklearn.log_model(
            model, name="model", signature=signature, input_example=X.head(3), **log_kwargs
        )
        log_model_s = time.perf_counter() - t_log
    lap("run_open_close")
    steps["log_model"] = log_model_s
    steps["run_open_close"] -= log_model_s
    mv = mlflow.register_model(info.model_uri, name)
    lap("register_model")
    client.transition_model_version_stage(name, mv.version, "Staging")
    lap("to_staging")
    client.transition_model_version_stage(
        name, mv.version, "Production", archive_existing_versions=True
    )
    lap("to_production")
    loaded = lib.pyfunc.load_model(f"models:/{name}/Production")
    lap("load_model")
    out = loaded.predict(X.head(100))
    lap("predict")
    steps["total"] = time.perf_counter() - start
    with warnings.catch_warnings():  # the check's own calls are not the workload's warnings
        warnings.simplefilter("ignore")
        check(client, name, mv.version, out, preds[:100])
    return steps


def check(client: Any, name: str, version: Any, out: Any, expected: Any) -> None:
    """The version just promoted holds Production and predicts like the fitted model."""
    import numpy as np

    holders = [v.version for v in client.get_latest_versions(name, stages=["Production"])]
    if holders != [version]:
        raise RuntimeError(f"{name}: Production held by {holders}, expected [{version}]")
    if not np.array_equal(np.asarray(out).ravel(), np.asarray(expected).ravel()):
        raise RuntimeError(f"{name} v{version}: predictions differ from the fitted model's")


def warm(iterations: list[dict[str, float]]) -> dict[str, Any]:
    """Per step: summary over the warm iterations."""
    return {step: summary([it[step] for it in iterations]) for step in (*STEPS, "total")}


def main() -> None:
    args = base_parser(__doc__.splitlines()[0]).parse_args()
    n = sizes(args.lib, args.quick)
    X, model, preds = train()  # before timing; pandas and scikit-learn are imported here
    lib = Lib(args.lib)
    log_kwargs = sklearn_log_kwargs(args.lib)
    result: dict[str, Any] = {
        "lib": args.lib,
        "version": lib_version(args.lib),
        "import_s": lib.import_s,
        "log_model_kwargs": log_kwargs,
        "n_rows": len(X),
    }
    with workdir("models", args.lib, args.keep) as wd:
        lib.mlflow.set_tracking_uri(store_uri(args.lib, wd))
        client = lib.client_class()
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            result["cold"] = iteration(lib, client, X, model, preds, MODEL_NAME, log_kwargs)
        result["cold_warnings"] = warning_counts(caught)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            runs = [
                iteration(lib, client, X, model, preds, MODEL_NAME, log_kwargs)
                for _ in range(n["default"])
            ]
            result["warm"] = warm(runs)
            if n["skops"]:
                skops = {**log_kwargs, "serialization_format": "skops"}
                name = MODEL_NAME + "Skops"
                iteration(lib, client, X, model, preds, name, skops)  # its first pass: warm-up
                result["skops"] = warm(
                    [
                        iteration(lib, client, X, model, preds, name, skops)
                        for _ in range(n["skops"])
                    ]
                )
        versions = client.search_model_versions(f"name = '{MODEL_NAME}'")
        result["versions_registered"] = len(versions)
        result["versions_expected"] = 1 + n["default"]
    emit(result)


def warning_counts(caught: list[warnings.WarningMessage]) -> dict[str, int]:
    """``{"FutureWarning: <start of the message>": count}`` of the warnings raised."""
    counts: dict[str, int] = {}
    for w in caught:
        text = str(w.message).strip().splitlines()[0]
        if len(text) > 90:
            text = text[:90].rsplit(" ", 1)[0] + " …"
        key = f"{w.category.__name__}: {text}"
        counts[key] = counts.get(key, 0) + 1
    return counts


if __name__ == "__main__":
    main()
