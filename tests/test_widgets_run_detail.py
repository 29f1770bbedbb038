"""RunDetail on real stores: params, metrics with sparklines, tags, artifact previews, source."""

from __future__ import annotations

import ipywidgets as w
import pytest

from jupyter_mltrack import MlflowClient
from jupyter_mltrack.entities import Metric, Param, RunTag
from jupyter_mltrack.exceptions import ResourceDoesNotExist
from jupyter_mltrack.widgets import run_detail
from jupyter_mltrack.widgets.run_detail import (
    TEXT_LIMIT,
    RunDetail,
    highlight_python,
    human_size,
    tag_order,
)

PNG = b"\x89PNG\r\n\x1a\n"
T0 = 1_700_000_000_000
SOURCE = "lr = 0.1\nfor epoch in range(3):\n    loss = 1 / (epoch + 1)\n"


@pytest.fixture
def run_id(client):
    from matplotlib.figure import Figure

    experiment = client.create_experiment("detail")
    run_id = client.create_run(experiment, run_name="detailed").info.run_id
    client.log_batch(
        run_id,
        metrics=[Metric("loss", 1 / (s + 1), T0 + s, s) for s in range(200)]
        + [Metric("accuracy", 0.9, T0, 0)],
        params=[Param("lr", "0.1"), Param("optimizer", "adam")],
        tags=[
            RunTag("team", "vision"),
            RunTag("mlflow.source.type", "NOTEBOOK"),
            RunTag("mltrack.cell.source", SOURCE),
            RunTag("mltrack.cell.magic", "%%track detailed"),
            RunTag("notes", "x" * 1000),
        ],
    )
    figure = Figure()
    figure.add_subplot().plot([1, 2, 3])
    client.log_figure(run_id, figure, "figures/loss.png")
    client.log_dict(run_id, {"layers": [64, 32], "dropout": 0.1}, "config.json")
    client.log_text(run_id, "hello\nworld\n", "notes/readme.txt")
    client.log_text(run_id, "line of log text\n" * 20_000, "logs/big.log")  # 340 KB
    client.log_bytes(run_id, bytes(range(256)) * 4, "blob")
    client.log_bytes(run_id, b"\x80\x04weights", "model/model.pkl")
    client.log_text(run_id, "flavors:\n  python_function: {}\n", "model/MLmodel")
    client.set_terminated(run_id)
    return run_id


def _opened(panel, path):
    panel.open_artifact(path)
    panel.wait()
    assert panel.last_error is None
    return panel.preview.children


def test_params_metrics_and_tags_tabs(client, run_id):
    panel = RunDetail(run_id, client=client)
    panel.wait()
    assert panel.last_error is None
    assert repr(panel) == "RunDetail: run 'detailed' (FINISHED), 2 params, 2 metrics"
    titles = [panel.tabs.get_title(i) for i in range(6)]
    tags = [r["id"] for r in panel.tags_grid.rows]
    assert titles == [
        "Params (2)",
        "Metrics (2)",
        "Inputs (0)",
        f"Tags ({len(tags)})",
        "Artifacts",
        "Cell source",
    ]
    assert [r["cells"] for r in panel.params_grid.rows] == [
        {"name": "lr", "value": "0.1"},
        {"name": "optimizer", "value": "adam"},
    ]
    metrics = panel.metrics_grid.value
    loss_row = metrics[metrics.index('data-metric="loss"') :]
    assert "<svg" in loss_row.split("</tr>")[0] and "0 to 199" in loss_row
    accuracy_row = metrics[metrics.index('data-metric="accuracy"') :].split("</tr>")[0]
    assert "single value" in accuracy_row and "<svg" not in accuracy_row
    assert tags[:3] == ["notes", "team", "mltrack.cell.magic"]  # user tags, then system ones
    assert "mlflow.source.type" in tags and "mltrack.cell.source" not in tags
    assert all(t.startswith("mlflow.") for t in tags[3:])
    notes = panel.tags_grid.rows[0]["cells"]["value"]
    assert len(notes) == 300 and notes.endswith("…")
    assert panel.tags_grid.rows[-1]["classes"] == {"name": "mltrack-muted"}


def test_dataset_inputs_tab(client, run_id):
    import numpy as np
    import pandas as pd

    from jupyter_mltrack import data
    from jupyter_mltrack.entities import Dataset, DatasetInput, InputTag

    wide = pd.DataFrame({f"c{i}": [float(i)] for i in range(60)})
    train = data.from_pandas(wide, source="s3://bucket/train.parquet", name="train")
    arrays = data.from_numpy(np.zeros((5, 3)), targets=np.arange(5), name="X_test")
    foreign = Dataset("from-elsewhere", "abc123", "delta", "not json", "{broken", None)
    client.log_inputs(
        run_id,
        [
            DatasetInput(
                train._to_mlflow_entity(),
                [InputTag("mlflow.data.context", "training"), InputTag("fold", "2")],
            ),
            DatasetInput(arrays._to_mlflow_entity(), [InputTag("mlflow.data.context", "eval")]),
            DatasetInput(foreign),  # logged by some other tool: shown as stored, no error
        ],
    )
    panel = RunDetail(run_id, client=client, background=False)
    assert panel.last_error is None
    assert panel.tabs.get_title(2) == "Inputs (3)"
    assert panel.tabs.children[2] is panel.inputs_grid
    assert repr(panel).endswith(", 3 inputs")
    rows = {r["id"]: r["cells"] for r in panel.inputs_grid.rows}
    assert rows[f"train@{train.digest}"] == {
        "name": "train",
        "digest": train.digest,
        "context": "training",
        "source": "s3: s3://bucket/train.parquet",
        "rows": 1,
        "schema": rows[f"train@{train.digest}"]["schema"],
        "tags": "fold=2",
    }
    schema = rows[f"train@{train.digest}"]["schema"]
    assert schema.startswith("c0: double, c1: double") and len(schema) <= 200
    assert schema.endswith("…")  # 60 columns: cut for the table
    x_test = rows[f"X_test@{arrays.digest}"]
    assert x_test["context"] == "eval" and x_test["rows"] == 5
    assert x_test["schema"] == "features: float64 [-1, 3], targets: int64 [-1]"
    assert x_test["source"].startswith("code")
    other = rows["from-elsewhere@abc123"]
    assert other["source"] == "delta: not json" and other["schema"] == ""
    assert other["rows"] is None and other["context"] == ""


def test_cell_source_is_highlighted(client, run_id):
    panel = RunDetail(run_id, client=client, background=False)
    view = panel.source_view.value
    assert "%%track detailed" in view
    assert 'class="mltrack-src"' in view and "<style>" in view
    assert "range" in view and "epoch" in view


def test_artifact_tree_opens_and_closes_folders(client, run_id):
    panel = RunDetail(run_id, client=client)
    panel.wait()
    paths = [value for _, value in panel.artifact_tree.options]
    assert paths == ["figures", "logs", "model", "notes", "blob", "config.json"]
    panel.artifact_tree.value = "notes"
    panel.wait()
    paths = [value for _, value in panel.artifact_tree.options]
    assert "notes/readme.txt" in paths and panel.artifact_tree.value is None
    label = dict((v, k) for k, v in panel.artifact_tree.options)["notes"]
    assert label.startswith("▾")
    panel.artifact_tree.value = "notes/readme.txt"
    panel.wait()
    title, text = panel.preview.children
    assert "notes/readme.txt" in title.value and "hello\nworld" in text.value
    panel.artifact_tree.value = "notes"  # again: closes it
    panel.wait()
    assert "notes/readme.txt" not in [v for _, v in panel.artifact_tree.options]


def test_previews_of_each_kind(client, run_id):
    panel = RunDetail(run_id, client=client)
    panel.wait()
    _, image = _opened(panel, "figures/loss.png")
    assert isinstance(image, w.Image) and bytes(image.value).startswith(PNG)
    _, pretty = _opened(panel, "config.json")
    assert '"layers": [\n    64,' in pretty.value
    _, note = _opened(panel, "blob")
    assert "binary, 1,024 bytes" in note.value
    _, note = _opened(panel, "model/model.pkl")
    assert "binary, 9 bytes" in note.value
    _, mlmodel = _opened(panel, "model/MLmodel")
    assert "python_function" in mlmodel.value
    _, cut, text = _opened(panel, "logs/big.log")
    assert "Showing the first 200.0 KB of 340,000 bytes" in cut.value
    assert len(text.value) < TEXT_LIMIT + 500
    assert "logs/big.log" in [v for _, v in panel.artifact_tree.options]
    panel.open_artifact("nope.txt")
    panel.wait()
    assert "nope.txt" in panel.last_error


def test_previews_read_in_place_and_only_what_they_show(client, run_id, monkeypatch):
    """No copies (read_artifact, not download_artifacts); text reads stop at the cap; an image
    over the limit is not read at all."""
    reads = []
    read = client.read_artifact

    def spy(run, path, max_bytes=None):
        reads.append((path, max_bytes))
        return read(run, path, max_bytes)

    def no_copies(*args, **kwargs):
        raise AssertionError("a preview copied an artifact")

    monkeypatch.setattr(client, "read_artifact", spy)
    monkeypatch.setattr(client, "download_artifacts", no_copies)
    panel = RunDetail(run_id, client=client)
    panel.wait()
    reads.clear()  # building the panel read the cell source; previews are what is checked
    _opened(panel, "logs/big.log")
    assert reads == [("logs/big.log", TEXT_LIMIT + 1)]
    monkeypatch.setattr(run_detail, "IMAGE_LIMIT", 100)  # figures/loss.png is a few KB
    _, note = _opened(panel, "figures/loss.png")
    assert "image larger than 100 bytes: no preview" in note.value
    assert len(reads) == 1


def test_empty_run_explains_itself(client):
    experiment = client.create_experiment("empty")
    run_id = client.create_run(experiment, run_name="bare").info.run_id
    panel = RunDetail(run_id, client=client, background=False)
    assert panel.artifact_tree.options == ()
    assert "no artifacts" in panel.preview.children[0].value
    assert "No cell source" in panel.source_view.value
    assert "logged no metrics" in panel.metrics_grid.value
    assert panel.params_grid.rows == [] and panel.params_grid.empty_text == "No params logged"
    assert panel.inputs_grid.rows == [] and panel.inputs_grid.empty_text == "No dataset inputs"


def test_tracked_cell_run(ip):
    assert ip.run_cell("%%track tracked\nalpha = 0.5\nscore = alpha * 2").success
    client = MlflowClient()
    experiment_ids = [e.experiment_id for e in client.search_experiments()]
    [run] = client.search_runs(experiment_ids)
    panel = RunDetail(run, client=client, background=False)
    assert panel.last_error is None
    assert "alpha" in panel.source_view.value
    assert "mltrack.cell.source" not in [r["id"] for r in panel.tags_grid.rows]
    assert repr(panel) == "RunDetail: run 'tracked' (FINISHED), 1 params, 1 metrics"


def test_unknown_run(client):
    with pytest.raises(ResourceDoesNotExist, match="f" * 32):
        RunDetail("f" * 32, client=client)


def test_header_duration(client):
    experiment = client.create_experiment("timed")
    run_id = client.create_run(experiment, start_time=T0, run_name="timed").info.run_id
    client.set_terminated(run_id, end_time=T0 + 245_000)
    panel = RunDetail(run_id, client=client, background=False)
    assert "4 min 05 s" in panel.header.value  # the runs table's format


def test_helpers():
    assert human_size(0) == "0 bytes" and human_size(1536) == "1.5 KB"
    assert human_size(5 * 1024 * 1024) == "5.0 MB"
    tags = {"mlflow.user": "a", "b": "1", "mltrack.cell.source": "x", "mltrack.cell": "c", "a": "2"}
    assert tag_order(tags) == ["a", "b", "mltrack.cell", "mlflow.user"]
    assert "&lt;" in highlight_python("x < 1")
