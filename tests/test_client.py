"""The Client (alias MlflowClient) with explicit ids, on SQLite and PostgreSQL."""

from __future__ import annotations

import math
import time

import pytest

from jupyter_mltrack.entities import Metric, Param, RunTag, ViewType
from jupyter_mltrack.exceptions import MlflowException


def _error(excinfo: pytest.ExceptionInfo, code: str, *words: str) -> None:
    err = excinfo.value
    assert isinstance(err, MlflowException)
    assert err.error_code == code, (err.error_code, str(err))
    for word in words:
        assert word in str(err), (word, str(err))


def _now() -> int:
    return int(time.time() * 1000)


def test_import_paths():
    import jupyter_mltrack
    from jupyter_mltrack.exceptions import MlflowException, MLTrackError
    from jupyter_mltrack.tracking import Client, MlflowClient

    assert MlflowClient is Client
    assert jupyter_mltrack.MlflowClient is Client
    assert jupyter_mltrack.Client is Client
    assert jupyter_mltrack.MlflowException is MlflowException
    assert MLTrackError is MlflowException
    assert jupyter_mltrack.tracking.MlflowClient is Client


# -- experiments -----------------------------------------------------------------------------
def test_default_experiment_exists_and_cannot_be_deleted(client):
    default = client.get_experiment("0")
    assert default.name == "Default"
    assert default.lifecycle_stage == "active"
    assert client.get_experiment_by_name("Default").experiment_id == "0"
    with pytest.raises(MlflowException) as err:
        client.delete_experiment("0")
    _error(err, "INVALID_PARAMETER_VALUE", "default experiment")
    assert client.get_experiment("0").lifecycle_stage == "active"


def test_create_get_and_get_by_name(client):
    exp_id = client.create_experiment("churn", tags={"team": "ds"})
    exp = client.get_experiment(exp_id)
    assert exp.experiment_id == exp_id
    assert exp.name == "churn"
    assert exp.tags == {"team": "ds"}
    assert exp.lifecycle_stage == "active"
    assert exp.artifact_location.endswith(f"/{exp_id}")
    assert exp.creation_time is not None
    assert client.get_experiment_by_name("churn").experiment_id == exp_id
    assert client.get_experiment_by_name("no-such-experiment") is None

    with pytest.raises(MlflowException) as err:
        client.create_experiment("churn")
    _error(err, "RESOURCE_ALREADY_EXISTS", "churn")
    with pytest.raises(MlflowException) as err:
        client.get_experiment("987654")
    _error(err, "RESOURCE_DOES_NOT_EXIST", "987654")


def test_experiment_tags_and_rename(client):
    exp_id = client.create_experiment("before")
    client.set_experiment_tag(exp_id, "owner", "ana")
    client.set_experiment_tag(exp_id, "owner", "bob")
    client.set_experiment_tag(exp_id, "project", "x")
    assert client.get_experiment(exp_id).tags == {"owner": "bob", "project": "x"}
    client.delete_experiment_tag(exp_id, "project")
    assert client.get_experiment(exp_id).tags == {"owner": "bob"}
    with pytest.raises(MlflowException) as err:
        client.delete_experiment_tag(exp_id, "project")
    _error(err, "RESOURCE_DOES_NOT_EXIST", "project")

    client.rename_experiment(exp_id, "after")
    assert client.get_experiment(exp_id).name == "after"
    assert client.get_experiment_by_name("before") is None
    client.create_experiment("taken")
    with pytest.raises(MlflowException) as err:
        client.rename_experiment(exp_id, "taken")
    _error(err, "RESOURCE_ALREADY_EXISTS", "taken")
    assert client.get_experiment(exp_id).name == "after"


def test_delete_and_restore_experiment(client):
    exp_id = client.create_experiment("doomed")
    run = client.create_run(exp_id)
    client.delete_experiment(exp_id)
    assert client.get_experiment(exp_id).lifecycle_stage == "deleted"
    assert client.get_run(run.info.run_id).info.lifecycle_stage == "deleted"
    names = [e.name for e in client.search_experiments()]
    assert "doomed" not in names
    deleted = client.search_experiments(view_type=ViewType.DELETED_ONLY)
    assert [e.name for e in deleted] == ["doomed"]
    # the name stays taken while the experiment is only deleted
    with pytest.raises(MlflowException) as err:
        client.create_experiment("doomed")
    _error(err, "RESOURCE_ALREADY_EXISTS", "restore")
    with pytest.raises(MlflowException) as err:
        client.create_run(exp_id)
    _error(err, "INVALID_STATE", "deleted")

    client.restore_experiment(exp_id)
    assert client.get_experiment(exp_id).lifecycle_stage == "active"
    assert client.get_run(run.info.run_id).info.lifecycle_stage == "active"
    assert "doomed" in [e.name for e in client.search_experiments()]


def test_search_experiments_filter_and_paging(client):
    ids = [client.create_experiment(f"exp-{i}") for i in range(5)]
    client.create_experiment("other")
    client.set_experiment_tag(ids[2], "kind", "special")

    found = client.search_experiments(filter_string="name LIKE 'exp-%'")
    assert sorted(e.experiment_id for e in found) == sorted(ids)
    assert [e.name for e in client.search_experiments(filter_string="name = 'other'")] == ["other"]
    tagged = client.search_experiments(filter_string="tags.kind = 'special'")
    assert [e.experiment_id for e in tagged] == [ids[2]]

    pages, token = [], None
    while True:
        page = client.search_experiments(
            max_results=2, filter_string="name LIKE 'exp-%'", page_token=token
        )
        assert len(page) <= 2
        pages.append([e.experiment_id for e in page])
        token = page.token
        if token is None:
            break
    assert [len(p) for p in pages] == [2, 2, 1]
    assert sorted(i for p in pages for i in p) == sorted(ids)

    by_name = client.search_experiments(filter_string="name LIKE 'exp-%'", order_by=["name DESC"])
    assert [e.name for e in by_name] == [f"exp-{i}" for i in reversed(range(5))]
    all_ids = {e.experiment_id for e in client.search_experiments()}
    assert "0" in all_ids


# -- runs --------------------------------------------------------------------------------------
def test_create_and_get_run(client):
    exp_id = client.create_experiment("runs")
    start = _now() - 5000
    run = client.create_run(exp_id, start_time=start, tags={"k": "v"}, run_name="first")
    info = run.info
    assert len(info.run_id) == 32
    assert info.run_uuid == info.run_id
    assert info.experiment_id == exp_id
    assert info.status == "RUNNING"
    assert info.start_time == start
    assert info.end_time is None
    assert info.lifecycle_stage == "active"
    assert info.run_name == "first"
    assert info.artifact_uri.endswith(f"{info.run_id}/artifacts")
    assert info.user_id

    got = client.get_run(info.run_id)
    assert got.info.run_id == info.run_id
    assert got.info.start_time == start
    assert got.data.tags["k"] == "v"
    assert got.data.tags["mlflow.runName"] == "first"
    assert got.data.params == {}
    assert got.data.metrics == {}
    with pytest.raises(MlflowException) as err:
        client.create_run("424242")
    _error(err, "RESOURCE_DOES_NOT_EXIST", "424242")


def test_set_terminated_and_update_run(client):
    run_id = client.create_run("0").info.run_id
    client.update_run(run_id, name="renamed")
    got = client.get_run(run_id)
    assert got.info.run_name == "renamed"
    assert got.data.tags["mlflow.runName"] == "renamed"

    client.set_terminated(run_id)
    got = client.get_run(run_id)
    assert got.info.status == "FINISHED"
    assert got.info.end_time >= got.info.start_time

    other = client.create_run("0").info.run_id
    client.set_terminated(other, status="FAILED", end_time=1_700_000_000_000)
    got = client.get_run(other)
    assert (got.info.status, got.info.end_time) == ("FAILED", 1_700_000_000_000)
    client.update_run(other, status="KILLED")
    assert client.get_run(other).info.status == "KILLED"

    with pytest.raises(MlflowException) as err:
        client.set_terminated(other, status="DONE")
    _error(err, "INVALID_PARAMETER_VALUE", "DONE", "FINISHED")
    assert client.get_run(other).info.status == "KILLED"


def test_delete_and_restore_run_and_view_types(client):
    exp_id = client.create_experiment("views")
    keep = client.create_run(exp_id).info.run_id
    gone = client.create_run(exp_id).info.run_id
    client.delete_run(gone)
    assert client.get_run(gone).info.lifecycle_stage == "deleted"

    def ids(view):
        return {r.info.run_id for r in client.search_runs([exp_id], run_view_type=view)}

    assert {r.info.run_id for r in client.search_runs([exp_id])} == {keep}
    assert ids(ViewType.ACTIVE_ONLY) == {keep}
    assert ids(ViewType.DELETED_ONLY) == {gone}
    assert ids(ViewType.ALL) == {keep, gone}

    client.restore_run(gone)
    assert client.get_run(gone).info.lifecycle_stage == "active"
    assert ids(ViewType.ACTIVE_ONLY) == {keep, gone}
    client.log_param(gone, "back", "yes")
    assert client.get_run(gone).data.params == {"back": "yes"}


def test_search_runs_paging_with_token(client):
    exp_id = client.create_experiment("paging")
    made = []
    for i in range(5):
        run_id = client.create_run(exp_id, start_time=1_000 + i).info.run_id
        client.log_metric(run_id, "score", i)
        made.append(run_id)
    seen, token = [], None
    while True:
        page = client.search_runs(
            exp_id, max_results=2, order_by=["metrics.score DESC"], page_token=token
        )
        seen.extend(r.info.run_id for r in page)
        token = page.token
        if token is None:
            break
    assert seen == list(reversed(made))
    page = client.search_runs([exp_id], max_results=5)
    assert page.token is None
    # default order: newest start_time first
    assert [r.info.run_id for r in page] == list(reversed(made))


# -- logging -------------------------------------------------------------------------------------
def test_log_param_metric_tag_and_delete_tag(client):
    run_id = client.create_run("0").info.run_id
    assert client.log_param(run_id, "lr", 0.01) == 0.01
    client.log_param(run_id, "lr", 0.01)  # the same value again is fine
    client.log_param(run_id, "layers", [64, 32])
    client.log_metric(run_id, "loss", 0.5, step=1)
    client.set_tag(run_id, "team", "a")
    client.set_tag(run_id, "team", "b")
    client.set_tag(run_id, "temp", 1)
    client.delete_tag(run_id, "temp")
    data = client.get_run(run_id).data
    assert data.params == {"lr": "0.01", "layers": "[64, 32]"}
    assert data.metrics == {"loss": 0.5}
    assert data.tags["team"] == "b"
    assert "temp" not in data.tags
    with pytest.raises(MlflowException) as err:
        client.delete_tag(run_id, "temp")
    _error(err, "RESOURCE_DOES_NOT_EXIST", "temp")


def test_log_batch_with_entities(client):
    run_id = client.create_run("0").info.run_id
    ts = _now()
    client.log_batch(
        run_id,
        metrics=[
            Metric("acc", 0.5, ts, 0),
            Metric("acc", 0.75, ts + 1, 1),
            Metric("loss", 2.0, ts, 0),
        ],
        params=[Param("n_estimators", "100"), Param("max_depth", 5)],
        tags=[RunTag("source", "batch")],
    )
    data = client.get_run(run_id).data
    assert data.metrics == {"acc": 0.75, "loss": 2.0}
    assert data.params == {"n_estimators": "100", "max_depth": "5"}
    assert data.tags["source"] == "batch"
    history = client.get_metric_history(run_id, "acc")
    assert [(m.key, m.value, m.timestamp, m.step) for m in history] == [
        ("acc", 0.5, ts, 0),
        ("acc", 0.75, ts + 1, 1),
    ]
    assert history[0] == Metric("acc", 0.5, ts, 0)


def test_log_batch_is_all_or_nothing(client):
    run_id = client.create_run("0").info.run_id
    client.log_param(run_id, "p", "1")
    with pytest.raises(MlflowException) as err:
        client.log_batch(
            run_id,
            metrics=[Metric("m", 1.0, _now(), 0)],
            params=[Param("q", "new"), Param("p", "2")],
            tags=[RunTag("t", "x")],
        )
    _error(err, "INVALID_PARAMETER_VALUE", "'p'")
    data = client.get_run(run_id).data
    assert data.params == {"p": "1"}
    assert data.metrics == {}
    assert "t" not in data.tags


def test_log_metric_points_queues_tuples_all_or_nothing(client, store_uri):
    from jupyter_mltrack.tracking.client import Client

    run_id = client.create_run("0").info.run_id  # this client created it: written behind
    points = [("loss", 0.5, 1000, 1), ("loss", float("nan"), 2000, 2), ("acc", 1, 3000, 2)]
    client.log_metric_points(run_id, points)
    history = [(m.step, m.timestamp, m.value) for m in client.get_metric_history(run_id, "loss")]
    assert history[0] == (1, 1000, 0.5) and history[1][:2] == (2, 2000)
    assert math.isnan(history[1][2])
    assert client.get_run(run_id).data.metrics["acc"] == 1.0
    for bad, words in (
        ([("ok", 1.0, 1, 1), ("bad key!", 1.0, 1, 1)], ["bad key!"]),
        ([("ok", 1.0, 1, 1), ("v", "high", 1, 1)], ["'v'"]),
        ([("ok", 1.0, 1, 1), ("s", 1.0, 1, "two")], ["step"]),
    ):
        with pytest.raises(MlflowException) as err:
            client.log_metric_points(run_id, bad)
        _error(err, "INVALID_PARAMETER_VALUE", *words)
    assert client.get_metric_history(run_id, "ok") == []  # nothing of a refused batch
    other = Client(store_uri)  # a run this client did not create: written at once
    other.log_metric_points(run_id, [("other", 2.0, 4000, 7)])
    assert [(m.step, m.value) for m in client.get_metric_history(run_id, "other")] == [(7, 2.0)]


def test_metric_history_order_and_latest_by_step(client):
    run_id = client.create_run("0").info.run_id
    client.log_metric(run_id, "loss", 0.3, timestamp=3000, step=5)
    client.log_metric(run_id, "loss", 0.9, timestamp=4000, step=2)  # later but lower step
    client.log_metric(run_id, "loss", 0.7, timestamp=1000, step=3)
    client.log_metric(run_id, "loss", 0.1, timestamp=2000, step=5)
    history = client.get_metric_history(run_id, "loss")
    assert [(m.step, m.timestamp, m.value) for m in history] == [
        (2, 4000, 0.9),
        (3, 1000, 0.7),
        (5, 2000, 0.1),
        (5, 3000, 0.3),
    ]
    # latest = highest step, then latest timestamp (MLflow's rule)
    assert client.get_run(run_id).data.metrics == {"loss": 0.3}
    assert client.get_metric_history(run_id, "missing") == []


def test_nan_and_infinities_round_trip(client):
    run_id = client.create_run("0").info.run_id
    client.log_metric(run_id, "nan", float("nan"), step=0)
    client.log_metric(run_id, "pinf", float("inf"), step=0)
    client.log_metric(run_id, "ninf", float("-inf"), step=0)
    client.log_metric(run_id, "mixed", 1.0, step=0)
    client.log_metric(run_id, "mixed", float("nan"), step=1)
    client.log_metric(run_id, "mixed", float("inf"), step=2)
    client.log_metric(run_id, "mixed", float("-inf"), step=3)
    metrics = client.get_run(run_id).data.metrics
    assert math.isnan(metrics["nan"])
    assert metrics["pinf"] == math.inf
    assert metrics["ninf"] == -math.inf
    assert metrics["mixed"] == -math.inf
    values = [m.value for m in client.get_metric_history(run_id, "mixed")]
    assert values[0] == 1.0
    assert math.isnan(values[1])
    assert values[2:] == [math.inf, -math.inf]
    # a run whose latest value is NaN stays findable, and NaN is never > anything
    client.log_metric(run_id, "mixed", float("nan"), step=4)
    assert math.isnan(client.get_run(run_id).data.metrics["mixed"])
    assert client.search_runs("0", "metrics.mixed > -1000000") == []
    assert [r.info.run_id for r in client.search_runs("0", "metrics.pinf > 1e308")] == [run_id]


def test_metric_value_conversions(client):
    import numpy as np

    run_id = client.create_run("0").info.run_id
    client.log_metric(run_id, "true", True)
    client.log_metric(run_id, "false", False)
    client.log_metric(run_id, "text", "0.25")
    client.log_metric(run_id, "int", 3)
    client.log_metric(run_id, "np_float32", np.float32(0.5))
    client.log_metric(run_id, "np_float64", np.float64(1.25))
    client.log_metric(run_id, "np_int64", np.int64(7))
    client.log_metric(run_id, "np_0d", np.array(2.5))
    client.log_metric(run_id, "np_step", 1.0, step=np.int64(4))
    metrics = client.get_run(run_id).data.metrics
    assert metrics == {
        "true": 1.0,
        "false": 0.0,
        "text": 0.25,
        "int": 3.0,
        "np_float32": 0.5,
        "np_float64": 1.25,
        "np_int64": 7.0,
        "np_0d": 2.5,
        "np_step": 1.0,
    }
    assert all(type(v) is float for v in metrics.values())
    assert client.get_metric_history(run_id, "np_step")[0].step == 4


def test_names_with_mlflow_characters_are_searchable(client):
    exp_id = client.create_experiment("odd names")
    run_id = client.create_run(exp_id).info.run_id
    other = client.create_run(exp_id).info.run_id
    client.log_metric(run_id, "val loss", 0.5)
    client.log_metric(run_id, "eval/acc:top-1.v2", 0.9)
    client.log_param(run_id, "opt.lr-init/x:y z", "0.1")
    client.set_tag(run_id, "data set/v:1", "train-a")
    client.log_metric(other, "val loss", -1.0)
    data = client.get_run(run_id).data
    assert data.metrics == {"val loss": 0.5, "eval/acc:top-1.v2": 0.9}
    assert data.params == {"opt.lr-init/x:y z": "0.1"}

    def found(flt):
        return [r.info.run_id for r in client.search_runs([exp_id], flt)]

    assert found("metrics.`val loss` > 0") == [run_id]
    assert found("metrics.`eval/acc:top-1.v2` >= 0.9") == [run_id]
    assert found("params.`opt.lr-init/x:y z` = 0.1") == [run_id]
    assert found("tags.`data set/v:1` = 'train-a'") == [run_id]
    ordered = client.search_runs([exp_id], order_by=["metrics.`val loss` ASC"])
    assert [r.info.run_id for r in ordered] == [other, run_id]


def test_numeric_param_search(client):
    exp_id = client.create_experiment("numeric params")
    runs = {}
    for name, lr, trees in (
        ("a", "0.10", "100"),
        ("b", "0.2", "50"),
        ("c", "1e-1", "7"),
        ("d", "fast", "x"),
    ):
        run_id = client.create_run(exp_id, run_name=name).info.run_id
        client.log_param(run_id, "lr", lr)
        client.log_param(run_id, "n_estimators", trees)
        runs[name] = run_id

    def names(flt):
        found = client.search_runs([exp_id], flt)
        return sorted(r.info.run_name for r in found)

    assert names("params.lr = 0.1") == ["a", "c"]
    assert names("params.lr = '0.10'") == ["a"]  # quoted: string comparison, as in MLflow
    assert names("params.n_estimators > 50") == ["a"]
    assert names("params.n_estimators >= 50") == ["a", "b"]
    assert names("params.n_estimators < 60") == ["b", "c"]  # '7' < 60 numerically; 'x' never
    assert names("params.lr = 'fast'") == ["d"]


def test_finished_run_still_accepts_client_logging(client):
    run_id = client.create_run("0").info.run_id
    client.set_terminated(run_id)
    client.log_metric(run_id, "post_hoc_auc", 0.8)
    client.log_param(run_id, "evaluated_on", "holdout")
    client.set_tag(run_id, "evaluated", "yes")
    got = client.get_run(run_id)
    assert got.info.status == "FINISHED"
    assert got.data.metrics == {"post_hoc_auc": 0.8}
    assert got.data.params == {"evaluated_on": "holdout"}
    assert got.data.tags["evaluated"] == "yes"


def test_two_clients_on_one_store_see_each_other(client):
    from jupyter_mltrack import MlflowClient

    other = MlflowClient(client.tracking_uri)
    run_id = client.create_run("0").info.run_id
    client.log_metric(run_id, "m", 1.0)
    assert other.get_run(run_id).data.metrics == {"m": 1.0}
