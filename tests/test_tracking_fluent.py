"""The fluent API (``import jupyter_mltrack as mlflow``) on SQLite and PostgreSQL."""

from __future__ import annotations

import re

import pytest

from jupyter_mltrack.exceptions import MlflowException

NAME_RE = re.compile(r"^[a-z]+-[a-z]+-\d{3}$")


def test_set_experiment_creates_then_reuses(mlflow):
    first = mlflow.set_experiment("churn")
    again = mlflow.set_experiment("churn")
    assert first.experiment_id == again.experiment_id != "0"
    assert first.name == "churn"
    assert mlflow.get_experiment_by_name("churn").experiment_id == first.experiment_id
    with mlflow.start_run() as run:
        pass
    assert run.info.experiment_id == first.experiment_id
    by_id = mlflow.set_experiment(experiment_id=first.experiment_id)
    assert by_id.name == "churn"


def test_runs_go_to_default_experiment_without_set_experiment(mlflow):
    with mlflow.start_run() as run:
        pass
    assert run.info.experiment_id == "0"
    assert mlflow.get_experiment("0").name == "Default"


def test_start_run_context_manager_finishes_run(mlflow):
    with mlflow.start_run() as run:
        assert mlflow.active_run().info.run_id == run.info.run_id
        assert mlflow.get_run(run.info.run_id).info.status == "RUNNING"
        mlflow.log_param("alpha", 0.5)
    assert mlflow.active_run() is None
    got = mlflow.get_run(run.info.run_id)
    assert got.info.status == "FINISHED"
    assert got.info.end_time is not None
    assert got.info.end_time >= got.info.start_time
    assert got.data.params == {"alpha": "0.5"}


def test_nested_runs_record_parent(mlflow):
    with mlflow.start_run(run_name="parent") as parent:
        with mlflow.start_run(run_name="child", nested=True) as child:
            assert mlflow.active_run().info.run_id == child.info.run_id
        assert mlflow.active_run().info.run_id == parent.info.run_id
    child_run = mlflow.get_run(child.info.run_id)
    assert child_run.data.tags["mlflow.parentRunId"] == parent.info.run_id
    assert "mlflow.parentRunId" not in mlflow.get_run(parent.info.run_id).data.tags
    assert mlflow.get_parent_run(child.info.run_id).info.run_id == parent.info.run_id
    assert child_run.info.status == "FINISHED"


def test_second_run_without_nested_is_refused(mlflow):
    with mlflow.start_run() as run:
        with pytest.raises(MlflowException) as err:
            mlflow.start_run()
        assert err.value.error_code == "INVALID_STATE"
        assert run.info.run_id in str(err.value)
        assert "nested=True" in str(err.value)
        # the refused call changed nothing: the first run is still the active one
        assert mlflow.active_run().info.run_id == run.info.run_id
    assert len(mlflow.search_runs(output_format="list")) == 1


def test_exception_inside_run_marks_failed_and_propagates(mlflow):
    with pytest.raises(ZeroDivisionError), mlflow.start_run() as run:
        mlflow.log_metric("before", 1.0)
        1 / 0  # noqa: B018
    assert mlflow.active_run() is None
    got = mlflow.get_run(run.info.run_id)
    assert got.info.status == "FAILED"
    assert got.data.metrics == {"before": 1.0}


def test_keyboard_interrupt_marks_killed(mlflow):
    with pytest.raises(KeyboardInterrupt), mlflow.start_run() as run:
        raise KeyboardInterrupt
    assert mlflow.get_run(run.info.run_id).info.status == "KILLED"
    assert mlflow.active_run() is None


def test_generated_run_names_are_readable(mlflow):
    seen = set()
    for _ in range(5):
        with mlflow.start_run() as run:
            pass
        got = mlflow.get_run(run.info.run_id)
        assert NAME_RE.match(got.info.run_name), got.info.run_name
        assert got.data.tags["mlflow.runName"] == got.info.run_name
        seen.add(got.info.run_name)
    assert len(seen) > 1


def test_run_name_sets_run_name_tag(mlflow):
    with mlflow.start_run(run_name="rf-baseline") as run:
        assert run.info.run_name == "rf-baseline"
    got = mlflow.get_run(run.info.run_id)
    assert got.info.run_name == "rf-baseline"
    assert got.data.tags["mlflow.runName"] == "rf-baseline"


def test_resume_run_by_id(mlflow):
    with mlflow.start_run(run_name="resumable") as run:
        mlflow.log_metric("loss", 0.9, step=0)
    run_id = run.info.run_id
    with mlflow.start_run(run_id=run_id) as resumed:
        assert resumed.info.run_id == run_id
        assert mlflow.get_run(run_id).info.status == "RUNNING"
        mlflow.log_metric("loss", 0.5, step=1)
    got = mlflow.get_run(run_id)
    assert got.info.status == "FINISHED"
    assert got.info.run_name == "resumable"
    assert [m.value for m in mlflow.MlflowClient().get_metric_history(run_id, "loss")] == [0.9, 0.5]
    assert got.data.metrics == {"loss": 0.5}
    assert len(mlflow.search_runs(output_format="list")) == 1


def test_last_active_run(mlflow):
    assert mlflow.last_active_run() is None
    with mlflow.start_run() as run:
        mlflow.log_metric("m", 3.0)
        assert mlflow.last_active_run().info.run_id == run.info.run_id
    last = mlflow.last_active_run()
    assert last.info.run_id == run.info.run_id
    assert last.info.status == "FINISHED"
    assert last.data.metrics == {"m": 3.0}


def test_log_metric_without_active_run_starts_one(mlflow):
    assert mlflow.active_run() is None
    mlflow.log_metric("auto", 1.5)
    run = mlflow.active_run()
    assert run is not None
    mlflow.log_param("p", "x")  # goes to the same auto-started run
    mlflow.end_run()
    got = mlflow.get_run(run.info.run_id)
    assert got.data.metrics == {"auto": 1.5}
    assert got.data.params == {"p": "x"}
    assert got.info.status == "FINISHED"
    assert len(mlflow.search_runs(output_format="list")) == 1


def test_log_metrics_params_tags_and_steps(mlflow):
    with mlflow.start_run() as run:
        mlflow.log_params({"lr": 0.01, "layers": 3})
        mlflow.set_tags({"team": "a", "stage": "dev"})
        mlflow.set_tag("single", "yes")
        for step in range(3):
            mlflow.log_metrics({"loss": 1.0 / (step + 1), "acc": step / 3}, step=step)
        mlflow.delete_tag("stage")
    got = mlflow.get_run(run.info.run_id)
    assert got.data.params == {"lr": "0.01", "layers": "3"}
    assert got.data.tags["team"] == "a"
    assert got.data.tags["single"] == "yes"
    assert "stage" not in got.data.tags
    assert got.data.metrics == {"loss": pytest.approx(1 / 3), "acc": pytest.approx(2 / 3)}
    history = mlflow.MlflowClient().get_metric_history(run.info.run_id, "loss")
    assert [m.step for m in history] == [0, 1, 2]


def test_search_runs_dataframe_has_mlflow_columns(mlflow):
    import pandas as pd

    mlflow.set_experiment("frame")
    with mlflow.start_run(run_name="a") as a:
        mlflow.log_param("n_estimators", 100)
        mlflow.log_metric("f1", 0.9)
        mlflow.set_tag("kind", "forest")
    with mlflow.start_run(run_name="b") as b:
        mlflow.log_param("n_estimators", 10)
        mlflow.log_metric("f1", 0.7)
    frame = mlflow.search_runs()
    assert isinstance(frame, pd.DataFrame)
    fixed = ["run_id", "experiment_id", "status", "artifact_uri", "start_time", "end_time"]
    assert list(frame.columns[:6]) == fixed
    for column in ("metrics.f1", "params.n_estimators", "tags.kind", "tags.mlflow.runName"):
        assert column in frame.columns
    assert set(frame["run_id"]) == {a.info.run_id, b.info.run_id}
    assert set(frame["status"]) == {"FINISHED"}
    row_a = frame.set_index("run_id").loc[a.info.run_id]
    assert row_a["metrics.f1"] == 0.9
    assert row_a["params.n_estimators"] == "100"
    assert row_a["tags.kind"] == "forest"
    assert row_a["tags.mlflow.runName"] == "a"
    assert pd.isna(frame.set_index("run_id").loc[b.info.run_id, "tags.kind"])
    assert frame["metrics.f1"].dtype == "float64"
    assert pd.api.types.is_datetime64_any_dtype(frame["start_time"])
    assert pd.api.types.is_datetime64_any_dtype(frame["end_time"])
    # newest first, as in MLflow
    assert list(frame["run_id"]) == [b.info.run_id, a.info.run_id]

    best = mlflow.search_runs(filter_string="metrics.f1 > 0.8")
    assert list(best["run_id"]) == [a.info.run_id]
    ordered = mlflow.search_runs(order_by=["metrics.f1 DESC"], max_results=1)
    assert list(ordered["run_id"]) == [a.info.run_id]


def test_search_runs_list_and_experiment_names(mlflow):
    mlflow.set_experiment("one")
    with mlflow.start_run() as r1:
        mlflow.log_metric("x", 1)
    mlflow.set_experiment("two")
    with mlflow.start_run() as r2:
        mlflow.log_metric("x", 2)

    runs = mlflow.search_runs(experiment_names=["one"], output_format="list")
    assert [r.info.run_id for r in runs] == [r1.info.run_id]
    assert runs[0].data.metrics == {"x": 1.0}

    both = mlflow.search_runs(experiment_names=["one", "two"], output_format="list")
    assert {r.info.run_id for r in both} == {r1.info.run_id, r2.info.run_id}

    frame = mlflow.search_runs(experiment_names=["two"])
    assert list(frame["run_id"]) == [r2.info.run_id]
    # without experiment ids: the active experiment only
    assert [r.info.run_id for r in mlflow.search_runs(output_format="list")] == [r2.info.run_id]
    every = mlflow.search_runs(search_all_experiments=True, output_format="list")
    assert {r.info.run_id for r in every} == {r1.info.run_id, r2.info.run_id}

    with pytest.raises(MlflowException) as err:
        mlflow.search_runs(experiment_names=["nope"])
    assert err.value.error_code == "RESOURCE_DOES_NOT_EXIST"
    assert "nope" in str(err.value)
    with pytest.raises(MlflowException) as err:
        mlflow.search_runs(output_format="csv")
    assert err.value.error_code == "INVALID_PARAMETER_VALUE"
    assert "output_format" in str(err.value)


def test_seed_tracking_and_comparing_snippets(mlflow, capsys, tmp_path):
    import matplotlib

    matplotlib.use("Agg")
    from sklearn.datasets import load_breast_cancer

    data = load_breast_cancer(as_frame=True)
    X, y = data.data, data.target

    # --- seed/mlflow-guide.txt, "Basic Tracking" (set_tracking_uri and the model lines omitted:
    # the store comes from the fixture and models are a later issue) ---
    # fmt: off
    from sklearn.ensemble import RandomForestClassifier  # noqa: I001
    from sklearn.metrics import accuracy_score, f1_score
    from sklearn.model_selection import train_test_split
    import pandas as pd

    mlflow.set_experiment("customer-churn-prediction")

    X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=0.2)

    with mlflow.start_run(run_name="rf-baseline"):
        # Log hyperparameters
        params = {"n_estimators": 100, "max_depth": 5, "min_samples_split": 10}
        mlflow.log_params(params)

        # Train
        model = RandomForestClassifier(**params, random_state=42)
        model.fit(X_train, y_train)

        # Log metrics
        preds = model.predict(X_test)
        mlflow.log_metric("accuracy", accuracy_score(y_test, preds))
        mlflow.log_metric("f1_score", f1_score(y_test, preds, average="weighted"))

        # Log artifacts (plots, feature importance, confusion matrix)
        import matplotlib.pyplot as plt
        fig, ax = plt.subplots()
        pd.Series(model.feature_importances_, index=X.columns).sort_values().plot.barh(ax=ax)
        plt.tight_layout()
        mlflow.log_figure(fig, "feature_importance.png")

        print(f"Run ID: {mlflow.active_run().info.run_id}")
    # fmt: on
    # --- end of the seed's block ---
    plt.close(fig)

    baseline = mlflow.last_active_run()
    assert baseline.info.run_name == "rf-baseline"
    assert baseline.data.params == {
        "n_estimators": "100",
        "max_depth": "5",
        "min_samples_split": "10",
    }
    f1 = baseline.data.metrics["f1_score"]
    assert 0.85 < f1 <= 1.0
    assert 0.0 < baseline.data.metrics["accuracy"] <= 1.0
    figure_path = mlflow.MlflowClient().download_artifacts(
        baseline.info.run_id, "feature_importance.png", str(tmp_path / "dl")
    )
    with open(figure_path, "rb") as fh:
        assert fh.read(8) == b"\x89PNG\r\n\x1a\n"

    # two more runs: one the param filter must drop although its f1 is best, one that stays
    with mlflow.start_run(run_name="small"):
        mlflow.log_params({"n_estimators": 20})
        mlflow.log_metric("f1_score", 0.99)
    with mlflow.start_run(run_name="big"):
        mlflow.log_params({"n_estimators": 200})
        mlflow.log_metric("f1_score", 0.86)
    with mlflow.start_run(run_name="weak"):
        mlflow.log_params({"n_estimators": 300})
        mlflow.log_metric("f1_score", 0.5)
    capsys.readouterr()

    # --- seed/mlflow-guide.txt, "Comparing Runs" (import line omitted) ---
    # fmt: off
    client = mlflow.MlflowClient()
    experiment = client.get_experiment_by_name("customer-churn-prediction")

    # Query runs: filter, sort, get top performers
    runs = client.search_runs(
        experiment_ids=[experiment.experiment_id],
        filter_string="metrics.f1_score > 0.85 AND params.n_estimators > 50",
        order_by=["metrics.f1_score DESC"],
        max_results=10
    )

    for run in runs:
        print(f"Run: {run.info.run_id[:8]}  "
              f"F1: {run.data.metrics['f1_score']:.4f}  "
              f"Params: {run.data.params}")

    # Get the best run
    best_run = runs[0]
    print(f"Best run: {best_run.info.run_id}")
    print(f"Best F1:  {best_run.data.metrics['f1_score']:.4f}")
    # fmt: on
    # --- end of the seed's block ---

    assert [r.info.run_name for r in runs] == ["rf-baseline", "big"]
    out = capsys.readouterr().out
    assert f"Best run: {baseline.info.run_id}" in out
    assert f"Best F1:  {f1:.4f}" in out
    assert out.count("Run: ") == 2
