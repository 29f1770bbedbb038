"""The ``mltrack`` command line against a real embedded store."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from jupyter_mltrack.cli import main


@pytest.fixture
def populated(store_uri, mlflow):
    """Three runs in experiment "churn", on each backend."""
    store = store_uri
    mlflow.set_experiment("churn")
    ids = []
    for n, f1 in ((10, 0.5), (100, 0.9), (200, 0.8)):
        with mlflow.start_run(run_name=f"rf-{n}") as run:
            mlflow.log_params({"n_estimators": n})
            mlflow.log_metric("f1", f1)
        ids.append(run.info.run_id)
    return store, ids


def run_cli(*args: str, input: str | None = None):
    return CliRunner().invoke(main, list(args), input=input, catch_exceptions=False)


def test_experiments_list(populated):
    store, _ = populated
    result = run_cli("--tracking-uri", store, "experiments", "list")
    assert result.exit_code == 0
    assert "churn" in result.output and "Default" in result.output


def test_runs_list_filter_order_and_limit(populated):
    store, ids = populated
    result = run_cli(
        "--tracking-uri", store, "runs", "list", "-e", "churn",
        "--filter", "params.n_estimators > 50", "--order-by", "metrics.f1 DESC", "--max-results", "1",
    )
    assert result.exit_code == 0, result.output
    assert ids[1] in result.output  # f1 0.9 is the best of the runs with n_estimators > 50
    assert ids[2] not in result.output and ids[0] not in result.output
    assert "more: raise --max-results" in result.output


def test_runs_list_uses_env_tracking_uri(populated, monkeypatch):
    store, ids = populated
    monkeypatch.setenv("MLTRACK_TRACKING_URI", store)
    result = run_cli("runs", "list")
    assert result.exit_code == 0
    assert all(run_id in result.output for run_id in ids)


def test_runs_list_bad_filter_is_a_clear_error(populated):
    store, _ = populated
    result = CliRunner().invoke(main, ["--tracking-uri", store, "runs", "list", "--filter", "metrics.f1 >"])
    assert result.exit_code == 1
    assert "position" in result.output
    assert "Traceback" not in result.output


def test_runs_list_unknown_experiment(populated):
    store, _ = populated
    result = CliRunner().invoke(main, ["--tracking-uri", store, "runs", "list", "-e", "nope"])
    assert result.exit_code == 1
    assert "No experiment named 'nope'" in result.output


def test_runs_show(populated):
    store, ids = populated
    result = run_cli("--tracking-uri", store, "runs", "show", ids[1])
    assert result.exit_code == 0
    assert "n_estimators = 100" in result.output and "f1 = 0.9" in result.output
    as_json = run_cli("--tracking-uri", store, "runs", "show", ids[1], "--json")
    assert f'"run_id": "{ids[1]}"' in as_json.output


def test_runs_show_unknown_run(populated):
    store, _ = populated
    result = CliRunner().invoke(main, ["--tracking-uri", store, "runs", "show", "0" * 32])
    assert result.exit_code == 1
    assert "not found" in result.output


def test_gc_asks_then_removes_runs_and_artifacts(populated, tmp_path):
    import os

    import jupyter_mltrack as mlflow

    store, ids = populated
    client = mlflow.MlflowClient(store)
    client.log_text(ids[0], "hello", "notes.txt")
    artifact_dir = client.get_run(ids[0]).info.artifact_uri.replace("file://", "")
    assert os.path.exists(os.path.join(artifact_dir, "notes.txt"))
    client.delete_run(ids[0])

    declined = run_cli("--tracking-uri", store, "gc", input="n\n")
    assert "Nothing removed" in declined.output
    assert client.get_run(ids[0]).info.lifecycle_stage == "deleted"

    accepted = run_cli("--tracking-uri", store, "gc", input="y\n")
    assert "Removed 1 run(s)" in accepted.output
    with pytest.raises(mlflow.MlflowException) as err:
        client.get_run(ids[0])
    assert err.value.error_code == "RESOURCE_DOES_NOT_EXIST"
    assert not os.path.exists(artifact_dir)
    assert client.get_run(ids[1]).info.status == "FINISHED"  # others untouched


def test_gc_removes_deleted_experiments(populated):
    import jupyter_mltrack as mlflow

    store, _ = populated
    client = mlflow.MlflowClient(store)
    exp = client.get_experiment_by_name("churn")
    client.delete_experiment(exp.experiment_id)
    result = run_cli("--tracking-uri", store, "gc", "--yes")
    assert "Removed 3 run(s) and 1 experiment(s)" in result.output
    assert client.get_experiment_by_name("churn") is None
    client.create_experiment("churn")  # the name is free again


def test_gc_older_than(populated):
    import jupyter_mltrack as mlflow

    store, ids = populated
    client = mlflow.MlflowClient(store)
    client.delete_run(ids[0])
    result = run_cli("--tracking-uri", store, "gc", "--yes", "--older-than", "1d")
    assert "Removed 0 run(s)" in result.output
    bad = CliRunner().invoke(main, ["--tracking-uri", store, "gc", "--older-than", "soon"])
    assert bad.exit_code == 2 and "30s, 15m, 12h or 7d" in bad.output


def test_gc_nothing_to_do(populated):
    store, _ = populated
    assert "Nothing to remove" in run_cli("--tracking-uri", store, "gc").output
