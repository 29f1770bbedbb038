"""The scoring server defers ``scipy.stats``: each check runs in a fresh interpreter (import state
is per process) with the deferral installed as the server installs it, and compares with what
the same code gives with scipy.stats imported normally."""

from __future__ import annotations

import json
import os
import pickle
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

from tests.test_serving import free_port, invoke, serve_cmd, start_server, stop_server

PRELUDE = """
import json, sys
from jupyter_mltrack.serving.deferred_imports import defer_heavy_imports, is_deferred
INSTALLED = defer_heavy_imports()
def deferred():
    return 'scipy.stats' in sys.modules and is_deferred(sys.modules['scipy.stats'])
out = {"installed": INSTALLED}
"""


def run(code: str, env: dict[str, str] | None = None, first: str = "") -> dict[str, Any]:
    """Run ``first``, the prelude and ``code`` in a fresh interpreter; ``code`` fills ``out``,
    printed as JSON."""
    script = first + PRELUDE + textwrap.dedent(code) + "\nprint(json.dumps(out, default=str))\n"
    proc = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, **(env or {})},
    )
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout.strip().splitlines()[-1])


def fitted_models(tmp_path: Path) -> tuple[Path, Any]:
    from sklearn.datasets import load_breast_cancer
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    X, y = load_breast_cancer(return_X_y=True, as_frame=True)
    models = {
        "forest": RandomForestClassifier(n_estimators=10, random_state=0).fit(X, y),
        "logreg": make_pipeline(StandardScaler(), LogisticRegression()).fit(X, y),
    }
    path = tmp_path / "models.pkl"
    path.write_bytes(pickle.dumps((models, X.head(20))))
    return path, {name: m.predict(X.head(20)).tolist() for name, m in models.items()}


def test_models_load_and_predict_without_importing_scipy_stats(tmp_path: Path) -> None:
    path, expected = fitted_models(tmp_path)
    out = run(
        f"""
        import pickle
        models, X = pickle.loads(open({str(path)!r}, "rb").read())
        out["predictions"] = {{name: m.predict(X).tolist() for name, m in models.items()}}
        out["deferred_after_predict"] = deferred()
        """
    )
    assert out["installed"] is True
    assert out["predictions"] == expected
    assert out["deferred_after_predict"] is True


def test_deferred_names_work_and_load_the_module_on_first_use() -> None:
    import numpy as np
    from scipy.stats import chi2, rankdata
    from sklearn.metrics import roc_auc_score

    y, score = [0, 1, 1, 0, 1, 0], [0.1, 0.8, 0.4, 0.35, 0.9, 0.5]
    out = run(
        """
        from sklearn.metrics import _ranking, roc_auc_score   # binds the deferred rankdata
        from sklearn.covariance import _robust_covariance as rc  # binds the deferred chi2
        out["before"] = deferred()
        out["auc"] = roc_auc_score([0, 1, 1, 0, 1, 0], [0.1, 0.8, 0.4, 0.35, 0.9, 0.5])
        out["ranks"] = _ranking.rankdata([0.5, 0.1, 0.3]).tolist()
        out["after"] = deferred()
        out["chi2_ppf"] = rc.chi2.ppf(0.975, df=3)
        out["chi2_isf"] = rc.chi2(3).isf(0.1)
        from scipy.stats import rankdata
        out["rankdata"] = rankdata([3, 1, 2]).tolist()
        """
    )
    assert out["before"] is True and out["after"] is False
    assert out["auc"] == pytest.approx(roc_auc_score(y, score))
    assert out["ranks"] == [3.0, 1.0, 2.0]
    assert out["chi2_ppf"] == pytest.approx(chi2.ppf(0.975, df=3))
    assert out["chi2_isf"] == pytest.approx(chi2(3).isf(0.1))
    assert out["rankdata"] == rankdata(np.array([3, 1, 2])).tolist()


def test_any_other_use_gives_the_real_objects_and_one_module() -> None:
    out = run(
        """
        import sklearn.ensemble, scipy, types
        from scipy.stats import norm                      # not deferred: the real module now
        out["norm_type"] = type(norm).__name__
        out["pdf"] = float(norm.pdf(0.0))
        import scipy.stats as st
        out["same_module"] = st is sys.modules["scipy.stats"] is scipy.stats
        out["plain_module"] = type(st) is types.ModuleType
        out["spec_loader"] = type(st.__spec__.loader).__name__
        out["has_all"] = "norm" in st.__all__
        out["mstats_same"] = st.mstats is sys.modules["scipy.stats.mstats"]
        """
    )
    assert out["norm_type"] == "norm_gen"
    assert out["pdf"] == pytest.approx(0.3989422804014327)
    assert out["same_module"] and out["plain_module"] and out["has_all"] and out["mstats_same"]
    assert out["spec_loader"] == "SourceFileLoader"


def test_importing_a_submodule_first_loads_the_package_once() -> None:
    """A pickled distribution imports ``scipy.stats._continuous_distns`` directly; the package
    runs first and the submodule is not run a second time."""
    from scipy.stats import loguniform
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import RandomizedSearchCV

    search = RandomizedSearchCV(
        LogisticRegression(), {"C": loguniform(1e-3, 1e3)}, n_iter=2, cv=2, random_state=0
    )
    blob = pickle.dumps(search).hex()
    out = run(
        f"""
        import pickle, sklearn.linear_model
        out["before"] = deferred()
        search = pickle.loads(bytes.fromhex({blob!r}))
        import scipy.stats, scipy.stats._continuous_distns as cd
        dist = search.param_distributions["C"]
        out["after"] = deferred()
        out["one_class"] = type(dist.dist) is cd.reciprocal_gen
        out["same_sub"] = cd is sys.modules["scipy.stats._continuous_distns"]
        out["no_copy"] = scipy.stats.loguniform is cd.loguniform  # the submodule ran once
        out["sub_spec"] = type(cd.__spec__.loader).__name__
        out["mstats_spec"] = type(__import__("scipy.stats.mstats").stats.mstats.__spec__.loader).__name__
        out["rvs"] = len(dist.rvs(size=3, random_state=0))
        """
    )
    assert out["before"] is True and out["after"] is False
    assert out["one_class"] and out["same_sub"] and out["no_copy"]
    assert out["sub_spec"] == "SourceFileLoader"
    assert out["mstats_spec"] == "SourceFileLoader"
    assert out["rvs"] == 3


def test_star_import_and_dir_load_the_module() -> None:
    out = run(
        """
        import sklearn.ensemble
        import scipy.stats
        names = dir(scipy.stats)
        out["dir_has_norm"] = "norm" in names
        out["after_dir"] = deferred()
        ns = {}
        exec("from scipy.stats import *", ns)
        out["star"] = "ttest_ind" in ns
        """
    )
    assert out["dir_has_norm"] and out["star"]
    assert out["after_dir"] is False


def test_threads_calling_a_deferred_function_at_once() -> None:
    out = run(
        """
        import threading
        from scipy.stats import rankdata
        results, errors = [], []
        def call():
            try:
                results.append(rankdata([2, 3, 1]).tolist())
            except Exception as exc:
                errors.append(repr(exc))
        threads = [threading.Thread(target=call) for _ in range(8)]
        for t in threads: t.start()
        for t in threads: t.join()
        out["results"], out["errors"] = results, errors
        """
    )
    assert out["errors"] == []
    assert out["results"] == [[2.0, 3.0, 1.0]] * 8


@pytest.mark.parametrize("switch", ["0", "off"])
def test_the_switch_turns_it_off(switch: str) -> None:
    out = run(
        "import sklearn.ensemble\nout['deferred'] = deferred()",
        env={"MLTRACK_SERVE_DEFER_IMPORTS": switch},
    )
    assert out == {"installed": False, "deferred": False}


def test_nothing_changes_when_scipy_stats_is_already_imported() -> None:
    out = run('out["deferred"] = deferred()', first="import scipy.stats\n")
    assert out == {"installed": False, "deferred": False}


def _maps(pid: int) -> str:
    return Path(f"/proc/{pid}/maps").read_text()


@pytest.mark.skipif(not Path("/proc/self/maps").exists(), reason="needs Linux /proc")
@pytest.mark.parametrize("switch", [None, "0"])
def test_the_server_process_never_loads_scipy_stats_for_a_forest(
    tmp_path: Path, switch: str | None
) -> None:
    """Looked at from outside: scipy.stats' compiled ``_stats`` library is mapped into the server
    only when the deferral is off; the answers are the model's either way."""
    from sklearn.datasets import load_breast_cancer
    from sklearn.ensemble import RandomForestClassifier

    import jupyter_mltrack as mlflow

    X, y = load_breast_cancer(return_X_y=True, as_frame=True)
    model = RandomForestClassifier(n_estimators=5, random_state=0).fit(X, y)
    store = str(tmp_path / "store")
    mlflow.set_tracking_uri(store)
    with mlflow.start_run() as run_:
        mlflow.sklearn.log_model(model, name="model", input_example=X.head(2))
    mlflow.set_tracking_uri(None)
    env = {**os.environ, "MLTRACK_TRACKING_URI": store}
    if switch is not None:
        env["MLTRACK_SERVE_DEFER_IMPORTS"] = switch
    port = free_port()
    proc = start_server(serve_cmd(f"runs:/{run_.info.run_id}/model", port), port, env)
    try:
        body = {"dataframe_records": X.head(10).to_dict(orient="records")}
        status, answer = invoke(port, body)
        assert status == 200
        assert answer["predictions"] == model.predict(X.head(10)).tolist()
        stats_mapped = "scipy/stats/_stats" in _maps(proc.pid)
        assert stats_mapped is (switch is not None)
    finally:
        stop_server(proc)


def test_a_model_that_uses_scipy_stats_is_served_right(tmp_path: Path) -> None:
    import pandas as pd
    from scipy.stats import norm

    import jupyter_mltrack as mlflow

    store = str(tmp_path / "store")
    mlflow.set_tracking_uri(store)
    with mlflow.start_run() as run_:  # a lambda travels by value; its predict calls scipy.stats
        mlflow.pyfunc.log_model(
            name="model",
            python_model=lambda df: __import__("scipy.stats").stats.norm.cdf(df["x"]).tolist(),
        )
    mlflow.set_tracking_uri(None)
    port = free_port()
    env = {**os.environ, "MLTRACK_TRACKING_URI": store}
    proc = start_server(serve_cmd(f"runs:/{run_.info.run_id}/model", port), port, env)
    try:
        rows = pd.DataFrame({"x": [-1.0, 0.0, 2.5]})
        status, answer = invoke(port, {"dataframe_split": rows.to_dict(orient="split")})
        assert status == 200, answer
        assert answer["predictions"] == pytest.approx(norm.cdf(rows["x"]).tolist())
        assert "scipy/stats/_stats" in _maps(proc.pid)  # loaded by the first request
    finally:
        stop_server(proc)
