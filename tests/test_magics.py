"""%%track and %mltrack in a real IPython shell, asserting on what landed in the store."""

from __future__ import annotations

import jupyter_mltrack as mlflow


def runs(filter_string: str = "", experiment: str | None = None):
    client = mlflow.MlflowClient()
    ids = [e.experiment_id for e in client.search_experiments()]
    if experiment:
        ids = [client.get_experiment_by_name(experiment).experiment_id]
    return client.search_runs(ids, filter_string, order_by=["attributes.start_time ASC"])


TRAIN_CELL = """%%track rf-baseline --tag team=churn --tag owner=ana
n_estimators = 100
max_depth = 5
name = "rf"
import numpy as np
accuracy = np.float64(0.875)
recall = float(accuracy) - 0.125
preds = np.array([1, 0, 1])
label = str(n_estimators)
flag = bool(1)
accuracy
"""


def test_track_captures_params_metrics_tags_and_source(ip, capsys):
    ip.run_line_magic("mltrack", "experiment customer-churn")
    result = ip.run_cell(TRAIN_CELL)
    assert result.success
    assert result.result == 0.875  # the last expression is still displayed/returned
    assert ip.user_ns["n_estimators"] == 100  # variables land in the user's namespace
    [run] = runs(experiment="customer-churn")
    assert run.info.run_name == "rf-baseline"
    assert run.info.status == "FINISHED"
    assert run.data.params == {"n_estimators": "100", "max_depth": "5", "name": "rf"}
    assert run.data.metrics == {"accuracy": 0.875, "recall": 0.75}
    tags = run.data.tags
    assert tags["team"] == "churn" and tags["owner"] == "ana"
    assert tags["mltrack.cell.source"] == TRAIN_CELL.split("\n", 1)[1]
    assert tags["mltrack.cell.magic"].startswith("%%track rf-baseline")
    assert tags["mltrack.cell"].startswith("fp-")  # no frontend cell id in a plain shell
    assert float(tags["mltrack.cell.duration_s"]) >= 0
    out = capsys.readouterr().out
    assert "mltrack run 'rf-baseline' (finished) in experiment 'customer-churn'" in out
    assert "3 params, 2 metrics, 0 figures" in out
    assert "preds skipped: ndarray" in out and "label skipped: str" in out


def test_every_execution_is_a_new_run_linked_to_its_cell(ip):
    ip.run_cell("%%track\nlr = 0.1\nscore = lr * 2")
    ip.run_cell("%%track\nlr = 0.5\nscore = lr * 2")
    ip.run_cell("%%track\nlr = 0.5\nscore = lr * 3")  # different code: a different cell
    found = runs()
    assert len(found) == 3
    links = [r.data.tags["mltrack.cell"] for r in found]
    assert links[0] == links[1] != links[2]
    same_cell = runs(f"tags.`mltrack.cell` = '{links[0]}'")
    assert sorted(r.data.params["lr"] for r in same_cell) == ["0.1", "0.5"]


def test_failure_ends_run_failed_and_cell_fails(ip, capsys):
    result = ip.run_cell("%%track broken\nx = 1\nraise ValueError('bad data')\ny = 2")
    assert not result.success
    assert isinstance(result.error_in_exec, ValueError)
    [run] = runs()
    assert run.info.status == "FAILED"
    assert run.data.tags["mltrack.error.type"] == "ValueError"
    assert run.data.tags["mltrack.error.message"] == "bad data"
    assert run.data.params == {"x": "1"}  # what was captured before the error is kept
    out = capsys.readouterr().out
    assert out.count("ValueError: bad data") == 1  # the traceback is shown once
    assert "cellrun.py" not in out and "run_ast_nodes" not in out  # without our frames


def test_keyboard_interrupt_ends_run_killed_and_still_interrupts(ip):
    result = ip.run_cell("%%track\nraise KeyboardInterrupt")
    assert isinstance(result.error_in_exec, KeyboardInterrupt)
    assert runs()[0].info.status == "KILLED"


def test_syntax_error_is_reported_and_not_recorded(ip):
    result = ip.run_cell("%%track\nx = (")
    assert not result.success
    assert runs() == []


def test_api_calls_inside_the_cell_log_into_its_run(ip):
    cell = """%%track curves
import jupyter_mltrack as mlflow
for step in range(5):
    mlflow.log_metric("loss", 1 / (step + 1), step=step)
mlflow.log_param("optimizer", "adam")
with mlflow.start_run(run_name="child") as child:
    mlflow.log_metric("inner", 1.0)
"""
    assert ip.run_cell(cell).success
    parent, child = runs()
    assert parent.info.run_name == "curves"
    client = mlflow.MlflowClient()
    assert [m.step for m in client.get_metric_history(parent.info.run_id, "loss")] == [0, 1, 2, 3, 4]
    assert parent.data.params["optimizer"] == "adam"
    assert child.info.run_name == "child"
    assert child.data.tags["mlflow.parentRunId"] == parent.info.run_id
    assert mlflow.active_run() is None


def test_figures_created_or_drawn_are_saved(ip):
    ip.run_cell("import matplotlib\nmatplotlib.use('Agg')\nimport matplotlib.pyplot as plt\nold = plt.figure('old'); old.add_subplot().plot([1, 2])\nold.canvas.draw()")
    cell = """%%track figs
fig, ax = plt.subplots(num="importance")
ax.barh(["a", "b"], [1, 2])
fig2 = plt.figure("shown")
fig2.add_subplot().plot([3, 1])
plt.show()
"""
    assert ip.run_cell(cell).success
    [run] = runs()
    client = mlflow.MlflowClient()
    names = sorted(a.path for a in client.list_artifacts(run.info.run_id, "figures"))
    assert names == ["figures/importance.png", "figures/shown.png"]  # "old" was not touched
    local = client.download_artifacts(run.info.run_id, "figures/importance.png")
    with open(local, "rb") as fh:
        assert fh.read(8) == b"\x89PNG\r\n\x1a\n"
    ip.run_cell("%%track --no-figures\nf = plt.figure('skipped'); f.add_subplot().plot([1])")
    assert client.list_artifacts(runs()[-1].info.run_id, "figures") == []


def test_extra_params_and_metrics_flags(ip):
    ip.run_cell("import numpy as np\nsettings = {'k': np.int64(3)}\nscore = 0.9")
    result = ip.run_cell("%%track --params settings,missing --metrics score\nlocal = 1")
    assert result.success
    [run] = runs()
    assert run.data.params["settings"] == "{'k': np.int64(3)}"
    assert run.data.metrics == {"score": 0.9}
    assert "missing" not in run.data.params


def test_missing_params_variable_warns(ip, recwarn):
    ip.run_cell("%%track --params nowhere\nx = 1")
    assert any("nowhere" in str(w.message) for w in recwarn)
    assert runs()[0].info.status == "FINISHED"


def test_bad_options_show_usage_and_do_not_run(ip, capsys):
    result = ip.run_cell("%%track --bogus\nran = True")
    assert not result.success
    err = capsys.readouterr()
    assert "unrecognized arguments: --bogus" in err.err
    assert "[--experiment NAME]" in err.err  # the usage is printed
    assert "ran" not in ip.user_ns
    result = ip.run_cell("%%track --tag novalue\nran = True")
    assert "KEY=VALUE" in str(result.error_in_exec)
    assert "ran" not in ip.user_ns
    assert runs() == []


def test_unwritable_store_fails_before_the_cell_runs(ip, tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    mlflow.set_tracking_uri(str(blocker / "store"))
    result = ip.run_cell("%%track\nran = True")
    assert not result.success
    assert "was not run" in str(result.error_in_exec)
    assert "ran" not in ip.user_ns


def test_active_run_from_earlier_cell_needs_nested(ip):
    ip.run_cell("import jupyter_mltrack as mlflow\nouter = mlflow.start_run(run_name='outer')")
    result = ip.run_cell("%%track\nran = True")
    assert "still active" in str(result.error_in_exec) and "ran" not in ip.user_ns
    assert ip.run_cell("%%track inner --nested\nran = True").success
    mlflow.end_run()
    outer, inner = runs()
    assert inner.data.tags["mlflow.parentRunId"] == outer.info.run_id


def test_experiment_option_and_config(ip):
    ip.run_cell("%%track -e other\nx = 1")
    ip.run_line_magic("config", "MLTrack.experiment = 'from-config'")
    ip.run_cell("%%track\nx = 2")
    assert [r.data.params["x"] for r in runs(experiment="other")] == ["1"]
    assert [r.data.params["x"] for r in runs(experiment="from-config")] == ["2"]


def test_config_switches_capture_off(ip, capsys):
    ip.run_line_magic("config", "MLTrack.capture_params = False")
    ip.run_line_magic("config", "MLTrack.summary = False")
    ip.run_cell("%%track\nx = 1\ny = x * 2")
    run = runs()[0]
    assert run.data.params == {} and run.data.metrics == {"y": 2.0}
    assert "mltrack run" not in capsys.readouterr().out


def test_config_tracking_uri_is_used_below_explicit_choices(ip, tmp_path):
    from jupyter_mltrack.tracking import config

    config.set_tracking_uri(None)
    ip.run_line_magic("config", f"MLTrack.tracking_uri = '{tmp_path / 'cfgstore'}'")
    assert mlflow.get_tracking_uri() == str(tmp_path / "cfgstore")
    ip.run_cell("%%track\nx = 1")
    assert (tmp_path / "cfgstore" / "mltrack.db").exists()


def test_recall_puts_cell_back_with_new_values(ip):
    ip.run_cell('%%track base --tag a=b\nlr = 0.1\nact = "relu"\nscore = lr')
    ip.run_line_magic("mltrack", "recall base --set lr=0.5 --set act=tanh")
    assert ip.rl_next_input == "%%track base --tag a=b\nlr = 0.5\nact = 'tanh'\nscore = lr"


def test_recall_bad_inputs(ip):
    ip.run_cell("%%track base\nlr = 0.1\nscore = lr")
    missing = ip.run_cell("%mltrack recall no-such-run")
    assert "No run 'no-such-run'" in str(missing.error_in_exec)
    unknown = ip.run_cell("%mltrack recall base --set momentum=0.9")
    assert "does not assign momentum" in str(unknown.error_in_exec)
    assert "lr" in str(unknown.error_in_exec)


def test_mltrack_commands(ip):
    ip.run_line_magic("mltrack", "experiment exp-a")
    ip.run_cell("%%track one\nlr = 0.1\nacc = lr + 0.5")
    ip.run_cell("%%track two\nlr = 0.2\nacc = lr + 0.5")
    table = ip.run_line_magic("mltrack", "runs metrics.acc > 0.65")
    assert [row[0] for row in table.rows] == ["two"]
    shown = repr(ip.run_line_magic("mltrack", "show one"))
    assert "param lr" in shown and "0.1" in shown and "artifact cell" in shown
    compared = repr(ip.run_line_magic("mltrack", "compare --last 2"))
    assert "param lr*" in compared and "metric acc*" in compared
    assert "mltrack-table" in ip.run_line_magic("mltrack", "compare one two")._repr_html_()
    bad = ip.run_cell("%mltrack runs metrics.acc >")
    assert "position" in str(bad.error_in_exec)
    assert "needs at least two runs" in str(ip.run_cell("%mltrack compare one").error_in_exec)
    assert ip.run_cell("%mltrack frobnicate").error_in_exec is not None


def test_mltrack_registry_lists_models_and_versions(ip):
    ip.run_cell("%%track\nx = 1")
    client = mlflow.MlflowClient()
    run_id = runs()[0].info.run_id
    client.log_text(run_id, "flavors: {}", "model/MLmodel")
    mlflow.register_model(f"runs:/{run_id}/model", "Churn")
    mlflow.register_model(f"runs:/{run_id}/model", "Churn")
    client.transition_model_version_stage("Churn", 2, "Production")
    client.set_registered_model_alias("Churn", "champion", 1)
    overview = ip.run_line_magic("mltrack", "registry")
    assert overview.rows == [["Churn", "v1 None, v2 Production", "champion=v1", ""]]
    detail = ip.run_line_magic("mltrack", "registry Churn")
    assert [row[:3] for row in detail.rows] == [["v2", "Production", ""], ["v1", "None", "champion"]]
    assert "transition v2 None→Production" in detail.title
    missing = ip.run_cell("%mltrack registry Nope")
    assert "Registered model 'Nope' not found" in str(missing.error_in_exec)


def test_log_model_and_register_from_a_tracked_cell(ip, capsys):
    ip.run_cell(
        "from sklearn.datasets import load_iris\n"
        "from sklearn.linear_model import LogisticRegression\n"
        "X, y = load_iris(return_X_y=True, as_frame=True)"
    )
    cell = "%%track iris --log-model clf --register IrisModel\nC = 0.5\nclf = LogisticRegression(C=C, max_iter=500).fit(X, y)\nscore = clf.score(X, y)"
    assert ip.run_cell(cell).success
    out = capsys.readouterr().out
    assert "model clf logged as runs:/" in out and "registered as IrisModel v1" in out
    [run] = runs()
    from jupyter_mltrack import pyfunc

    model = pyfunc.load_model("models:/IrisModel/1")
    assert model.predict(ip.user_ns["X"].head(3)).tolist() == ip.user_ns["clf"].predict(ip.user_ns["X"].head(3)).tolist()
    assert mlflow.MlflowClient().get_model_version("IrisModel", 1).run_id == run.info.run_id


def test_log_model_bad_inputs_never_fail_the_cell(ip, capsys):
    assert ip.run_cell("%%track --log-model missing\nx = 1").success
    assert ip.run_cell("%%track --log-model thing\nthing = object()").success
    out = capsys.readouterr().out
    assert "no variable named 'missing'" in out
    assert "not a model this version can log" in out
    assert [r.info.status for r in runs()] == ["FINISHED", "FINISHED"]
    result = ip.run_cell("%%track --register Name\nx = 1")
    assert "--register NAME needs --log-model" in str(result.error_in_exec)
