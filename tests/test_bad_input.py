"""Bad input gets a clear MlflowException (class, MLflow error code, a message naming the
problem) and leaves what is stored intact. Store-level refusals are in test_store_open.py."""

from __future__ import annotations

from pathlib import Path

import pytest

from jupyter_mltrack.entities import Metric, Param
from jupyter_mltrack.exceptions import (
    FilterSyntaxError,
    InvalidParameterValue,
    InvalidState,
    MlflowException,
    ResourceDoesNotExist,
)

ALLOWED = "letters, digits, underscores (_), dashes (-), periods (.), spaces ( ), colons (:) and slashes (/)"


def _raises(call, cls: type[MlflowException], code: str, *words: str) -> MlflowException:
    with pytest.raises(cls) as info:
        call()
    err = info.value
    assert err.error_code == code, (err.error_code, str(err))
    for word in words:
        assert word in str(err), (word, str(err))
    return err


def _invalid(call, *words: str) -> MlflowException:
    return _raises(call, InvalidParameterValue, "INVALID_PARAMETER_VALUE", *words)


@pytest.fixture
def run_id(client) -> str:
    return client.create_run("0").info.run_id


# -- metric values -------------------------------------------------------------------------------
def test_non_numeric_metric_value(client, run_id):
    client.log_metric(run_id, "acc", 0.5, step=0)
    for value in ["abc", "", None, [1.0, 2.0], {"a": 1}, object(), "1,5"]:
        err = _invalid(
            lambda v=value: client.log_metric(run_id, "acc", v, step=1), "'acc'", "number"
        )
        assert repr(value)[:20] in str(err)
    assert client.get_run(run_id).data.metrics == {"acc": 0.5}
    assert [m.value for m in client.get_metric_history(run_id, "acc")] == [0.5]


def test_non_numeric_metric_value_fluent_and_batch(mlflow):
    import numpy as np

    with mlflow.start_run() as run:
        _invalid(lambda: mlflow.log_metric("loss", "high"), "'loss'", "'high'")
        _invalid(lambda: mlflow.log_metrics({"ok": 1.0, "bad": "x"}), "'bad'")
        _invalid(lambda: mlflow.log_metric("vec", np.array([1.0, 2.0])), "'vec'")
        client = mlflow.MlflowClient()
        _invalid(
            lambda: client.log_batch(
                run.info.run_id,
                metrics=[Metric("fine", 1.0, 0, 0), Metric("broken", "nope", 0, 0)],
                params=[Param("p", "1")],
            ),
            "'broken'",
        )
    got = mlflow.get_run(run.info.run_id)
    assert "loss" not in got.data.metrics
    assert "vec" not in got.data.metrics
    assert "fine" not in got.data.metrics  # the batch was refused as a whole
    assert got.data.params == {}


def test_bad_step_or_timestamp(client, run_id):
    for step, timestamp in [(1.5, None), ("one", None), (True, None), (0, "now"), (0, 1.5)]:
        err = _invalid(
            lambda s=step, t=timestamp: client.log_metric(run_id, "m", 1.0, timestamp=t, step=s),
            "integer",
        )
        assert ("step" in str(err)) or ("timestamp" in str(err))
    assert client.get_metric_history(run_id, "m") == []


# -- params -------------------------------------------------------------------------------------------
def test_param_logged_twice_with_another_value(client, run_id):
    client.log_param(run_id, "n_estimators", 100)
    client.log_param(run_id, "n_estimators", 100)  # same value again: fine
    client.log_param(run_id, "n_estimators", "100")  # same text: fine
    _invalid(
        lambda: client.log_param(run_id, "n_estimators", 200), "n_estimators", "'100'", "'200'"
    )
    _invalid(
        lambda: client.log_batch(run_id, params=[Param("n_estimators", "300")]), "n_estimators"
    )
    assert client.get_run(run_id).data.params == {"n_estimators": "100"}


def test_param_changed_through_fluent_api(mlflow):
    with mlflow.start_run() as run:
        mlflow.log_params({"lr": 0.1, "depth": 3})
        _invalid(lambda: mlflow.log_param("lr", 0.2), "'lr'", "'0.1'", "'0.2'")
        _invalid(lambda: mlflow.log_params({"depth": 3, "lr": 0.3, "new": 1}), "'lr'")
    assert mlflow.get_run(run.info.run_id).data.params == {"lr": "0.1", "depth": "3"}


def test_param_value_too_long(client, run_id):
    _invalid(lambda: client.log_param(run_id, "blob", "x" * 6001), "'blob'", "6001", "6000")
    client.log_param(run_id, "blob", "x" * 6000)
    assert len(client.get_run(run_id).data.params["blob"]) == 6000


# -- names --------------------------------------------------------------------------------------------
def _log_calls(client, run_id):
    return {
        "Metric": lambda key: client.log_metric(run_id, key, 1.0),
        "Param": lambda key: client.log_param(run_id, key, "v"),
        "Tag": lambda key: client.set_tag(run_id, key, "v"),
    }


def test_empty_names(client, run_id):
    for what, call in _log_calls(client, run_id).items():
        _invalid(lambda call=call: call(""), what, "empty")
    data = client.get_run(run_id).data
    assert data.metrics == {} and data.params == {}
    assert "" not in data.tags


def test_overlong_names(client, run_id):
    long_key = "k" * 251
    for what, call in _log_calls(client, run_id).items():
        _invalid(lambda call=call: call(long_key), what, "251", "250")
    ok_key = "k" * 250
    for call in _log_calls(client, run_id).values():
        call(ok_key)
    data = client.get_run(run_id).data
    assert list(data.metrics) == [ok_key]
    assert list(data.params) == [ok_key]
    assert long_key not in data.tags and ok_key in data.tags


def test_names_with_characters_outside_the_set(client, run_id):
    bad_keys = ["loss!", "a*b", "tab\tkey", "semi;colon", "quote'd", "new\nline", "a@b"]
    for key in bad_keys:
        for what, call in _log_calls(client, run_id).items():
            err = _invalid(lambda call=call, key=key: call(key), what.lower(), ALLOWED)
            assert repr(key) in str(err)
    data = client.get_run(run_id).data
    assert data.metrics == {} and data.params == {}
    assert not set(bad_keys) & set(data.tags)


def test_names_that_are_not_plain_relative_paths(client, run_id):
    for key in ["/abs", "../up", "a//b", "a/./b", "./x", "trailing/"]:
        _invalid(lambda key=key: client.log_metric(run_id, key, 1.0), repr(key), "relative path")
    assert client.get_run(run_id).data.metrics == {}


def test_non_string_name(client, run_id):
    _invalid(lambda: client.log_metric(run_id, 42, 1.0), "string", "42")


def test_bad_experiment_and_run_names(client):
    _invalid(lambda: client.create_experiment(""), "experiment name")
    _invalid(lambda: client.create_experiment("   "), "experiment name")
    _invalid(lambda: client.create_experiment("e" * 501), "501", "500")
    _invalid(lambda: client.create_run("0", run_name="r" * 251), "251", "250")
    names = [e.name for e in client.search_experiments()]
    assert names == ["Default"]
    assert client.search_runs("0") == []


# -- artifact paths ---------------------------------------------------------------------------------
def test_artifact_paths_escaping_the_run(client, run_id, tmp_path):
    source = tmp_path / "model.txt"
    source.write_text("weights")
    folder = tmp_path / "folder"
    folder.mkdir()
    (folder / "f.txt").write_text("f")
    client.log_text(run_id, "kept", "kept.txt")
    root = Path(client.get_run(run_id).info.artifact_uri.removeprefix("file://"))
    store_files = sorted(str(p) for p in root.parent.parent.parent.rglob("*"))

    for bad in ["../x", "a/../../x", "..", "/etc", str(tmp_path / "abs"), "~/x"]:
        _invalid(
            lambda b=bad: client.log_artifact(run_id, str(source), b), "artifact path", repr(bad)
        )
        _invalid(lambda b=bad: client.log_artifacts(run_id, str(folder), b), "artifact path")
        _invalid(lambda b=bad: client.log_text(run_id, "x", f"{b}/note.txt"), "artifact path")
        _invalid(lambda b=bad: client.log_dict(run_id, {"a": 1}, f"{b}/d.json"), "artifact path")
        _invalid(
            lambda b=bad: client.download_artifacts(run_id, b, str(tmp_path / "dl")),
            "artifact path",
        )
        _invalid(lambda b=bad: client.list_artifacts(run_id, b), "artifact path")

    assert [f.path for f in client.list_artifacts(run_id)] == ["kept.txt"]
    assert sorted(str(p) for p in root.parent.parent.parent.rglob("*")) == store_files
    assert not (tmp_path / "abs").exists()
    assert not (tmp_path / "dl").exists()


def test_symlink_out_of_the_artifact_folder(client, run_id, tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    client.log_text(run_id, "inside", "ok.txt")
    root = Path(client.get_run(run_id).info.artifact_uri.removeprefix("file://"))
    assert (root / "ok.txt").read_text() == "inside"
    (root / "escape").symlink_to(outside, target_is_directory=True)
    source = tmp_path / "payload.txt"
    source.write_text("payload")

    _invalid(lambda: client.log_text(run_id, "pwned", "escape/pwned.txt"), "symbolic link")
    _invalid(lambda: client.log_artifact(run_id, str(source), "escape"), "outside")
    _invalid(lambda: client.log_dict(run_id, {"a": 1}, "escape/sub/x.yaml"), "outside")
    _invalid(lambda: client.list_artifacts(run_id, "escape"), "outside")
    _invalid(lambda: client.download_artifacts(run_id, "escape", str(tmp_path / "dl")), "outside")
    assert list(outside.iterdir()) == []
    assert (root / "ok.txt").read_text() == "inside"


# -- deleted runs, unknown ids ----------------------------------------------------------------------
def test_logging_to_a_deleted_run(client, run_id, tmp_path):
    client.log_metric(run_id, "m", 1.0)
    client.log_param(run_id, "p", "1")
    client.set_tag(run_id, "t", "1")
    client.delete_run(run_id)
    source = tmp_path / "f.txt"
    source.write_text("x")
    calls = {
        "metric": lambda: client.log_metric(run_id, "m", 2.0, step=1),
        "sync metric": lambda: client.log_metric(run_id, "m", 2.0, step=1, synchronous=True),
        "param": lambda: client.log_param(run_id, "q", "2"),
        "tag": lambda: client.set_tag(run_id, "t", "2"),
        "delete tag": lambda: client.delete_tag(run_id, "t"),
        "batch": lambda: client.log_batch(run_id, metrics=[Metric("m", 3.0, 0, 2)]),
        "artifact": lambda: client.log_artifact(run_id, str(source)),
        "text": lambda: client.log_text(run_id, "x", "x.txt"),
    }
    for name, call in calls.items():
        err = _raises(call, InvalidState, "INVALID_STATE", run_id, "deleted")
        assert "restore" in str(err).lower(), name
    client.restore_run(run_id)
    data = client.get_run(run_id).data
    assert data.metrics == {"m": 1.0}
    assert data.params == {"p": "1"}
    assert data.tags["t"] == "1"
    assert len(client.get_metric_history(run_id, "m")) == 1
    assert client.list_artifacts(run_id) == []


def test_resuming_a_deleted_run(mlflow):
    with mlflow.start_run() as run:
        pass
    mlflow.delete_run(run.info.run_id)
    _raises(
        lambda: mlflow.start_run(run_id=run.info.run_id), InvalidState, "INVALID_STATE", "deleted"
    )
    assert mlflow.active_run() is None
    assert mlflow.get_run(run.info.run_id).info.status == "FINISHED"


def test_set_experiment_on_a_deleted_experiment(mlflow):
    exp = mlflow.set_experiment("gone")
    mlflow.delete_experiment(exp.experiment_id)
    _raises(lambda: mlflow.set_experiment("gone"), InvalidState, "INVALID_STATE", "gone", "deleted")
    _raises(
        lambda: mlflow.MlflowClient().delete_experiment(exp.experiment_id),
        InvalidState,
        "INVALID_STATE",
        "already deleted",
    )


def test_unknown_run_ids(client):
    missing = "0123456789abcdef0123456789abcdef"
    calls = [
        lambda: client.get_run(missing),
        lambda: client.log_metric(missing, "m", 1.0),
        lambda: client.log_param(missing, "p", 1),
        lambda: client.set_tag(missing, "t", 1),
        lambda: client.log_batch(missing, metrics=[Metric("m", 1.0, 0, 0)]),
        lambda: client.delete_run(missing),
        lambda: client.restore_run(missing),
        lambda: client.set_terminated(missing),
        lambda: client.update_run(missing, name="x"),
        lambda: client.get_metric_history(missing, "m"),
        lambda: client.log_text(missing, "x", "x.txt"),
        lambda: client.list_artifacts(missing),
    ]
    for call in calls:
        _raises(call, ResourceDoesNotExist, "RESOURCE_DOES_NOT_EXIST", missing)
    assert client.search_runs("0") == []


def test_unknown_experiment_ids(client):
    for bad in ("999999", "not-a-number"):
        calls = [
            lambda bad=bad: client.get_experiment(bad),
            lambda bad=bad: client.create_run(bad),
            lambda bad=bad: client.delete_experiment(bad),
            lambda bad=bad: client.restore_experiment(bad),
            lambda bad=bad: client.rename_experiment(bad, "new"),
            lambda bad=bad: client.set_experiment_tag(bad, "k", "v"),
        ]
        for call in calls:
            _raises(call, ResourceDoesNotExist, "RESOURCE_DOES_NOT_EXIST", bad)
    assert [e.name for e in client.search_experiments()] == ["Default"]


def test_unknown_ids_through_fluent_api(mlflow):
    _raises(
        lambda: mlflow.start_run(run_id="feedfacefeedfacefeedfacefeedface"),
        ResourceDoesNotExist,
        "RESOURCE_DOES_NOT_EXIST",
        "feedface",
    )
    _raises(
        lambda: mlflow.set_experiment(experiment_id="31337"),
        ResourceDoesNotExist,
        "RESOURCE_DOES_NOT_EXIST",
        "31337",
    )
    _raises(
        lambda: mlflow.start_run(experiment_id="31337"),
        ResourceDoesNotExist,
        "RESOURCE_DOES_NOT_EXIST",
        "31337",
    )
    assert mlflow.active_run() is None


# -- search arguments ----------------------------------------------------------------------------
MALFORMED_FILTERS = [
    ("metrics.f1 >> 0.5", 12, ["value"]),
    ("metrics.f1 > ", 13, ["value", "end"]),
    ("params.x = 'unterminated", 11, ["quote"]),
    ("foo.bar = 1", 0, ["foo.", "metrics."]),
    ("metrics.f1 > 0.5 OR params.a = 1", 17, ["OR"]),
    ("metrics.f1 > 0.5 AND", 20, ["AND"]),
    ("metrics.f1 > 'abc'", 13, ["number"]),
]


def test_malformed_filter_shows_position(client):
    client.create_run("0")
    for flt, position, words in MALFORMED_FILTERS:
        err = _raises(
            lambda f=flt: client.search_runs("0", f),
            FilterSyntaxError,
            "INVALID_PARAMETER_VALUE",
            *words,
        )
        assert err.position == position, flt
        assert f"position {position}" in str(err)
        assert flt.strip() in str(err)
        assert isinstance(err, InvalidParameterValue)


def test_malformed_filter_in_fluent_search_and_order_by(mlflow):
    with mlflow.start_run():
        pass
    _raises(
        lambda: mlflow.search_runs(filter_string="metrics.f1 >"),
        FilterSyntaxError,
        "INVALID_PARAMETER_VALUE",
        "position 12",
    )
    _raises(
        lambda: mlflow.search_runs(order_by=["metrics.f1 SIDEWAYS"]),
        FilterSyntaxError,
        "INVALID_PARAMETER_VALUE",
        "SIDEWAYS",
        "position 11",
    )


def test_max_results_out_of_range(client):
    for bad in [0, -1, 50_001, "10", True, 2.5]:
        _invalid(lambda b=bad: client.search_runs("0", max_results=b), "max_results", repr(bad))
        _invalid(lambda b=bad: client.search_experiments(max_results=b), "max_results")
    assert len(client.search_runs("0", max_results=50_000)) == 0


def test_bad_page_token(client):
    _invalid(lambda: client.search_runs("0", page_token="garbage!"), "page token")
    _invalid(lambda: client.search_experiments(page_token="e30="), "page token")


def test_bad_image_and_figure(client, run_id):
    import numpy as np

    _invalid(
        lambda: client.log_image(run_id, np.zeros((2, 2, 2), dtype=np.uint8), "i.png"), "shape"
    )
    _invalid(lambda: client.log_image(run_id, np.zeros((2,), dtype=np.uint8), "i.png"), "shape")
    _invalid(lambda: client.log_image(run_id, np.full((2, 2), 2.0), "i.png"), "[0, 1]")
    _invalid(lambda: client.log_image(run_id, np.zeros((2, 2), dtype=np.uint8)), "artifact_file")
    _invalid(lambda: client.log_figure(run_id, "not a figure", "f.png"), "figure", "str")
    assert client.list_artifacts(run_id) == []


def test_missing_local_artifact(client, run_id, tmp_path):
    missing = str(tmp_path / "nope.txt")
    _raises(
        lambda: client.log_artifact(run_id, missing),
        ResourceDoesNotExist,
        "RESOURCE_DOES_NOT_EXIST",
        "nope.txt",
    )
    _raises(
        lambda: client.download_artifacts(run_id, "nope.txt", str(tmp_path)),
        ResourceDoesNotExist,
        "RESOURCE_DOES_NOT_EXIST",
        "nope.txt",
    )


def test_a_refused_key_stays_refused(client, run_id):
    for _ in range(2):  # valid keys are cached; a refused one must not be
        _invalid(lambda: client.log_metric(run_id, "bad key!", 1.0), "bad key!")
    client.log_metric(run_id, "good key", 1.0)
    assert client.get_run(run_id).data.metrics == {"good key": 1.0}
