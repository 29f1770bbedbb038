"""RunComparison on real stores: tables, curves, scatter, parallel plot, figures, cell diff."""

from __future__ import annotations

import math

import ipywidgets as w
import pytest

from jupyter_mltrack import MlflowClient
from jupyter_mltrack.entities import Metric, Param
from jupyter_mltrack.exceptions import InvalidParameterValue, ResourceDoesNotExist
from jupyter_mltrack.widgets.comparison import RunComparison, best_runs, lower_is_better
from jupyter_mltrack.widgets.plots import diff_html, ema

PNG = b"\x89PNG\r\n\x1a\n"
T0 = 1_700_000_000_000


def _run(client, experiment, name, params, final=None, history=None):
    run_id = client.create_run(experiment, run_name=name).info.run_id
    client.log_batch(run_id, params=[Param(k, v) for k, v in params.items()])
    metrics = [Metric(k, v, T0, 0) for k, v in (final or {}).items()]
    for key, values in (history or {}).items():
        metrics += [Metric(key, v, T0 + 1000 * i, i) for i, v in enumerate(values)]
    if metrics:
        client.log_batch(run_id, metrics=metrics)
    client.set_terminated(run_id)
    return run_id


@pytest.fixture
def three(client):
    experiment = client.create_experiment("compare")
    ids = [
        _run(
            client,
            experiment,
            f"run-{i}",
            {"lr": str(lr), "epochs": "10", "optimizer": opt},
            {"accuracy": acc},
            {"loss": [1 / (s + 1) + 0.1 * i for s in range(50)]},
        )
        for i, (lr, opt, acc) in enumerate(
            [(0.1, "adam", 0.8), (0.01, "sgd", 0.9), (0.5, "adam", 0.7)]
        )
    ]
    return client, ids


def _png(value) -> bool:
    return bytes(value).startswith(PNG)


def _row(grid, row_id):
    [row] = [r for r in grid.rows if r["id"] == row_id]
    return row


def test_params_that_differ_are_marked(three):
    client, ids = three
    panel = RunComparison(ids, client=client, background=False)
    lr, epochs = _row(panel.params_grid, "lr"), _row(panel.params_grid, "epochs")
    assert [lr["cells"][i] for i in ids] == ["0.1", "0.01", "0.5"]
    assert all("mltrack-differs" in lr["classes"][i] for i in ids)
    assert not any("mltrack-differs" in epochs["classes"].get(i, "") for i in ids)
    assert [c["label"] for c in panel.params_grid.columns] == ["param", "run-0", "run-1", "run-2"]
    panel.params_only_differing.value = True
    assert {r["id"] for r in panel.params_grid.rows} == {"lr", "optimizer"}
    assert repr(panel) == "RunComparison: 3 runs, 3 params (2 differ), 2 metrics"
    assert panel.last_error is None


def test_best_metric_marked_lower_for_losses_higher_otherwise(three):
    client, ids = three
    panel = RunComparison(ids, client=client, background=False)
    loss, acc = _row(panel.metrics_grid, "loss"), _row(panel.metrics_grid, "accuracy")
    assert loss["cells"]["best"] == "lower" and acc["cells"]["best"] == "higher"
    assert [i for i in ids if loss["classes"].get(i) == "mltrack-best"] == [ids[0]]
    assert [i for i in ids if acc["classes"].get(i) == "mltrack-best"] == [ids[1]]
    # flip with the controls ...
    panel.best_metric.value = "accuracy"
    assert panel.best_direction.value == "higher"
    panel.best_direction.value = "lower"
    acc = _row(panel.metrics_grid, "accuracy")
    assert [i for i in ids if acc["classes"].get(i) == "mltrack-best"] == [ids[2]]
    # ... or by clicking the "best" cell
    panel.metrics_grid.click("loss", "best")
    loss = _row(panel.metrics_grid, "loss")
    assert loss["cells"]["best"] == "higher" and panel.best_metric.value == "loss"
    assert [i for i in ids if loss["classes"].get(i) == "mltrack-best"] == [ids[2]]


def test_curves_redraw_when_each_control_changes(three):
    client, ids = three
    panel = RunComparison(ids, client=client)  # background: drive, then wait
    panel.wait()
    assert panel.metric_picker.value == "loss"  # the step metric, not the single value
    assert _png(panel.curves.value) and panel.curves.layout.display is None
    assert "run-0" in panel.curves_legend.value and panel.build_seconds > 0
    seen = [bytes(panel.curves.value)]
    for control, value in [
        (panel.log_scale, True),
        (panel.smoothing, 0.8),
        (panel.x_axis, "time"),
        (panel.metric_picker, "accuracy"),
    ]:
        control.value = value
        panel.wait()
        assert panel.last_error is None
        seen.append(bytes(panel.curves.value))
    assert len(set(seen[:4])) == 4  # log scale, smoothing and time axis each changed the image
    # accuracy has one value per run: explained, not drawn
    assert panel.curves.layout.display == "none"
    assert "single value per run" in panel.curves_note.value


def test_long_histories_are_downsampled_and_quick(tmp_path):
    client = MlflowClient(str(tmp_path / "store"))
    experiment = client.create_experiment("long")
    ids = []
    for r in range(2):
        run_id = client.create_run(experiment, run_name=f"long-{r}").info.run_id
        for start in range(0, 100_000, 10_000):
            client.log_batch(
                run_id,
                metrics=[
                    Metric("loss", math.exp(-s / 30_000) + r * 0.1, T0 + s, s)
                    for s in range(start, start + 10_000)
                ],
            )
        client.log_batch(run_id, metrics=[Metric("loss", 50.0, T0, 100_000)])  # a late spike
        ids.append(run_id)
    client.flush()
    panel = RunComparison(ids, client=client, background=False)
    assert panel.last_error is None
    assert panel.build_seconds < 1.0
    assert _png(panel.curves.value)
    assert "min/max envelopes" in panel.curves_note.value
    panel.log_scale.value = True
    assert panel.build_seconds < 0.5  # cached series: a redraw only


def test_scatter_and_parallel_coordinates(three):
    client, ids = three
    panel = RunComparison(ids, client=client, background=False)
    assert panel.scatter_param.value == "lr" and panel.scatter_metric.value == "accuracy"
    first = bytes(panel.scatter.value)
    assert _png(first)
    panel.scatter_param.value = "optimizer"  # categorical axis
    assert _png(panel.scatter.value) and bytes(panel.scatter.value) != first
    panel.scatter_metric.value = "loss"
    assert panel.last_error is None
    parallel = bytes(panel.parallel.value)
    assert _png(parallel) and "differ" in panel.parallel_note.value
    panel.parallel_metrics.value = ("loss",)
    assert _png(panel.parallel.value) and bytes(panel.parallel.value) != parallel


def test_a_metric_or_param_missing_from_some_runs(client):
    experiment = client.create_experiment("partial")
    a = _run(client, experiment, "with", {"lr": "0.1"}, history={"loss": [3.0, 2.0, 1.0]})
    b = _run(client, experiment, "without", {"depth": "3"}, {"f1": 0.5})
    panel = RunComparison([a, b], client=client, background=False)
    assert panel.metric_picker.value == "loss"
    assert "Not logged by: without" in panel.curves_note.value
    row = _row(panel.metrics_grid, "loss")
    assert row["classes"][a] == "mltrack-best" and row["classes"][b] == "mltrack-muted"
    panel.scatter_param.value, panel.scatter_metric.value = "lr", "loss"
    assert "Left out" in panel.scatter_note.value and "without" in panel.scatter_note.value
    panel.select_metric("never-logged")
    assert "never-logged" in panel.last_error and panel.metric_picker.value == "loss"


def test_runs_without_step_metrics_figures_or_source_get_explanations(client):
    experiment = client.create_experiment("plain")
    ids = [_run(client, experiment, f"p{i}", {"x": str(i)}, {"score": i / 10}) for i in range(2)]
    panel = RunComparison(ids, client=client, background=False)
    assert panel.curves.layout.display == "none"
    assert "single value per run" in panel.curves_note.value
    [note] = panel.figures_box.children
    assert "None of these runs saved figures" in note.value
    assert "No cell source recorded for p0 and p1" in panel.source_diff.value


def test_bad_run_lists_are_refused(client):
    experiment = client.create_experiment("bad")
    run_id = _run(client, experiment, "only", {"a": "1"})
    with pytest.raises(InvalidParameterValue, match="at least two"):
        RunComparison([run_id], client=client)
    with pytest.raises(InvalidParameterValue, match="at least two"):
        RunComparison([run_id, run_id], client=client)
    with pytest.raises(ResourceDoesNotExist, match="0" * 32):
        RunComparison([run_id, "0" * 32], client=client)


def test_logged_figures_side_by_side(client):
    from matplotlib.figure import Figure

    experiment = client.create_experiment("figs")
    ids = [_run(client, experiment, f"fig-{i}", {"i": str(i)}) for i in range(2)]
    for i, run_id in enumerate(ids):
        figure = Figure()
        figure.add_subplot().plot([0, 1], [i, 1 - i])
        client.log_figure(run_id, figure, "figures/loss.png")
    client.log_figure(ids[0], figure, "figures/extra.png")
    panel = RunComparison(ids, client=client, background=False)
    [grid] = panel.figures_box.children
    assert isinstance(grid, w.GridBox)
    images = [c for c in grid.children if isinstance(c, w.Image)]
    assert len(images) == 3 and all(_png(i.value) for i in images)
    texts = [c.value for c in grid.children if isinstance(c, w.HTML)]
    assert any("fig-0" in t for t in texts) and any("fig-1" in t for t in texts)
    assert any("no extra.png" in t for t in texts)  # fig-1 has no such figure


def test_oversized_figure_is_not_read(client, monkeypatch):
    from matplotlib.figure import Figure

    from jupyter_mltrack.widgets import comparison

    experiment = client.create_experiment("big-figs")
    ids = [_run(client, experiment, f"big-{i}", {"i": str(i)}) for i in range(2)]
    figure = Figure()
    figure.add_subplot().plot([0, 1])
    client.log_figure(ids[0], figure, "figures/loss.png")
    size = client.list_artifacts(ids[0], "figures")[0].file_size
    client.log_bytes(ids[1], PNG + bytes(size), "figures/loss.png")  # over the limit below
    monkeypatch.setattr(comparison, "FIGURE_LIMIT", size)
    read = []
    real = client.read_artifact

    def spy(run_id, path, max_bytes=None):
        read.append((run_id, path))
        return real(run_id, path, max_bytes)

    monkeypatch.setattr(client, "read_artifact", spy)
    panel = RunComparison(ids, client=client, background=False)
    [grid] = panel.figures_box.children
    images = [c for c in grid.children if isinstance(c, w.Image)]
    assert len(images) == 1 and _png(images[0].value)
    assert any("loss.png is over" in c.value for c in grid.children if isinstance(c, w.HTML))
    figure_reads = [r for r in read if r[1].startswith("figures/")]  # the cell diff reads sources
    assert figure_reads == [(ids[0], "figures/loss.png")]


def test_tracked_cells_figures_and_source_diff(ip):
    ip.run_cell("import matplotlib\nmatplotlib.use('Agg')\nimport matplotlib.pyplot as plt")
    for lr in ("0.1", "0.5"):
        cell = (
            f"%%track lr-{lr}\nlr = {lr}\nepochs = 3\n"
            "fig, ax = plt.subplots(num='curve')\nax.plot([1, 2, 3], [lr, 2 * lr, 3 * lr])\n"
            "score = lr * 2\n"
        )
        assert ip.run_cell(cell).success
        ip.run_cell("plt.close('all')")
    client = MlflowClient()
    experiment_ids = [e.experiment_id for e in client.search_experiments()]
    runs = client.search_runs(experiment_ids, order_by=["attributes.start_time ASC"])
    ids = [r.info.run_id for r in runs]
    panel = RunComparison(ids, client=client)
    panel.wait()
    assert panel.last_error is None
    [grid] = panel.figures_box.children
    images = [c for c in grid.children if isinstance(c, w.Image)]
    assert len(images) == 2 and all(_png(i.value) for i in images)
    diff = panel.source_diff.value
    assert '<td class="mltrack-diff-del">lr = 0.1</td>' in diff
    assert '<td class="mltrack-diff-add">lr = 0.5</td>' in diff
    assert '<td class="mltrack-diff-eq">epochs = 3</td>' in diff
    panel.diff_right.value = ids[0]
    panel.wait()
    assert "Pick two different runs" in panel.source_diff.value


def test_refresh_sees_new_values(three):
    client, ids = three
    panel = RunComparison(ids, client=client, background=False)
    panel.best_metric.value = "accuracy"
    panel.best_direction.value = "lower"  # a user's choice survives the refresh
    client.log_batch(ids[2], metrics=[Metric("accuracy", 0.5, T0, 1), Metric("f1", 0.3, T0, 0)])
    panel.refresh()
    acc = _row(panel.metrics_grid, "accuracy")
    assert acc["cells"][ids[2]] == 0.5 and acc["classes"][ids[2]] == "mltrack-best"
    assert "f1" in panel.metric_picker.options and panel.metric_picker.value == "loss"
    assert panel.scatter_param.value == "lr" and panel.last_error is None


# -- helpers without widgets --------------------------------------------------------------------
@pytest.mark.parametrize(
    ("key", "lower"),
    [
        ("loss", True),
        ("val_loss", True),
        ("train/logloss", True),
        ("valLoss", True),
        ("mean_absolute_error", True),
        ("rmse", True),
        ("test-mae", True),
        ("neg_mean_squared_error", False),
        ("accuracy", False),
        ("f1", False),
        ("roc_auc", False),
        ("r2", False),
        ("lossless_ratio", False),
    ],
)
def test_lower_is_better(key, lower):
    assert lower_is_better(key) is lower


def test_best_runs_share_ties_and_skip_missing():
    assert best_runs({"a": 1.0, "b": 1.0, "c": 2.0}, lower=True) == {"a", "b"}
    assert best_runs({"a": 1.0, "b": None, "c": 2.0}, lower=False) == {"c"}
    assert best_runs({"a": None}, lower=True) == set()


def test_diff_html_pairs_changed_lines():
    table = diff_html("a = 1\nb = 2\n", "a = 1\nb = 3\nc = 4\n", "left", "right")
    assert '<td class="mltrack-diff-eq">a = 1</td>' in table
    assert '<td class="mltrack-diff-del">b = 2</td>' in table
    assert '<td class="mltrack-diff-add">b = 3</td>' in table
    assert '<td class="mltrack-diff-add">c = 4</td>' in table
    assert "&lt;" in diff_html("x<1", "x<2", "l", "r")  # escaped


def test_ema_starts_at_the_data():
    assert ema([1.0, 1.0, 1.0], 0.9) == pytest.approx([1.0, 1.0, 1.0])
    smoothed = ema([0.0, 10.0], 0.5)
    assert smoothed[0] == 0.0 and 0 < smoothed[1] < 10
    assert ema([3.0, 4.0], 0.0) == [3.0, 4.0]
