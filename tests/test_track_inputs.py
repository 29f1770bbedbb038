"""``%%track`` records the DataFrames and arrays a cell reads as the run's dataset inputs, in a
real IPython shell and a real store."""

from __future__ import annotations

import time

import numpy as np
import pandas as pd
import pytest

import jupyter_mltrack as mlflow
from jupyter_mltrack import data
from jupyter_mltrack.notebook import frame_inputs

CONTEXT = "mlflow.data.context"


def _runs():
    client = mlflow.MlflowClient()
    ids = [e.experiment_id for e in client.search_experiments()]
    return client.search_runs(ids, order_by=["attributes.start_time ASC"])


def _inputs(run) -> dict[str, tuple[str, dict[str, str]]]:
    """``{name: (digest, input tags)}`` of a run's dataset inputs."""
    return {
        i.dataset.name: (i.dataset.digest, {t.key: t.value for t in i.tags})
        for i in run.inputs.dataset_inputs
    }


@pytest.fixture
def frames(ip):
    ip.run_cell(
        "import numpy as np, pandas as pd\n"
        "df = pd.DataFrame({'x': [1.0, 2.0, 3.0, 4.0], 'y': [0, 1, 0, 1]})\n"
        "X_test = np.arange(8.0).reshape(4, 2)\n"
        "labels = df['y']\n"
        "scalar = np.float64(1.5)\n"
        "numbers = [1, 2, 3]"
    )
    return ip


def test_frames_and_arrays_the_cell_reads_are_inputs(frames, capsys):
    ns = frames.user_ns
    df, x_test, labels = ns["df"], ns["X_test"], ns["labels"]
    result = frames.run_cell(
        "%%track read\n"
        "rows = len(df)\n"
        "total = float(X_test.sum() + labels.sum() + scalar + sum(numbers))\n"
        "fresh = pd.DataFrame({'a': [1]})  # made here: not an input\n"
        "n_fresh = len(fresh)"
    )
    assert result.success
    [run] = _runs()
    found = _inputs(run)
    assert sorted(found) == ["X_test", "df", "labels"]  # no scalar, list or created frame
    assert found["df"] == (
        data.from_pandas(df).digest,
        {CONTEXT: "training", "mltrack.data.origin": "cell"},
    )
    assert found["X_test"][0] == data.from_numpy(x_test).digest
    assert found["X_test"][1][CONTEXT] == "eval"  # by its name
    assert found["labels"][0] == data.from_pandas(labels.to_frame()).digest
    stored = {i.dataset.name: i.dataset for i in run.inputs.dataset_inputs}["df"]
    assert '"num_rows": 4' in stored.profile and '"name": "x"' in stored.schema
    assert stored.source_type == "code"
    assert "3 inputs" in capsys.readouterr().out


def test_what_the_cell_read_not_what_it_made_of_it(frames):
    before = data.from_pandas(frames.user_ns["df"]).digest
    frames.run_cell("%%track\ndf['z'] = df['x'] * 2  # in place\ndf = df[df['y'] > 0]")
    [run] = _runs()
    assert _inputs(run)["df"][0] == before
    assert len(frames.user_ns["df"]) == 2  # the cell's own effects are untouched


def test_each_run_gets_the_frame_once(frames):
    frames.run_cell("alias = df")
    for _ in range(2):
        frames.run_cell("%%track\nn = len(df) + len(alias) + len(df)")
    runs = _runs()
    assert len(runs) == 2
    for run in runs:  # one object under two names, read three times: one input per run
        assert list(_inputs(run)) == ["alias"]
    assert _inputs(runs[0]) == _inputs(runs[1])


def test_data_the_cell_logs_itself_is_not_doubled(frames):
    frames.run_cell(
        "%%track\n"
        "import jupyter_mltrack as mlflow\n"
        "mlflow.log_input(mlflow.data.from_pandas(df, name='train'), context='training')\n"
        "n = len(X_test)"
    )
    [run] = _runs()
    assert sorted(_inputs(run)) == ["X_test", "train"]  # df is the same data as "train"


def test_turned_off_by_flag_or_config(frames, capsys):
    frames.run_cell("%%track --no-inputs off\nn = len(df)")
    frames.run_line_magic("config", "MLTrack.capture_inputs = False")
    frames.run_cell("%%track configured-off\nn = len(df)")
    frames.run_line_magic("config", "MLTrack.capture_inputs = True")
    frames.run_cell("%%track on\nn = len(df)")
    assert [list(_inputs(r)) for r in _runs()] == [[], [], ["df"]]
    out = capsys.readouterr().out
    assert out.count("input") == 1 and "1 input," in out


def test_a_failing_cell_keeps_its_inputs(frames):
    result = frames.run_cell("%%track\nn = len(df)\nraise RuntimeError('bad')")
    assert not result.success
    [run] = _runs()
    assert run.info.status == "FAILED" and list(_inputs(run)) == ["df"]


def test_a_store_failure_is_a_note_and_the_cell_result_stands(frames, monkeypatch, capsys):
    from jupyter_mltrack.tracking import fluent

    client = fluent._client()

    def broken(run_id, datasets):
        raise OSError("database is locked")

    monkeypatch.setattr(client, "log_inputs", broken)
    result = frames.run_cell("%%track\nn = len(df)\nn")
    assert result.success and result.result == 4
    [run] = _runs()
    assert run.info.status == "FINISHED" and run.data.metrics == {"n": 4.0}
    assert "inputs not stored: database is locked" in capsys.readouterr().out


def test_bad_flag_is_a_usage_error(frames):
    from IPython.core.error import UsageError

    result = frames.run_cell("%%track --inputs\nn = len(df)")
    assert isinstance(result.error_in_exec, UsageError)
    message = str(result.error_in_exec)
    assert "unrecognized arguments: --inputs" in message and "[--no-inputs]" in message
    assert _runs() == []


def test_show_text_lists_the_inputs(frames):
    frames.run_cell("%%track shown\nn = len(df) + len(X_test)")
    table = repr(frames.run_line_magic("mltrack", "show shown --text"))
    digest = data.from_pandas(frames.user_ns["df"]).digest
    line = next(row for row in table.splitlines() if row.startswith("input df"))
    assert f"digest {digest} · training · code" in line
    assert "4 rows · x: double, y: long · mltrack.data.origin=cell" in line
    numpy_line = next(row for row in table.splitlines() if row.startswith("input X_test"))
    assert "eval" in numpy_line and "features: float64 [-1, 2]" in numpy_line


def test_context_from_the_variable_name():
    for name in ("X_test", "val_df", "dfEval", "holdout", "valid_X", "dev2"):
        assert frame_inputs.context_of(name) == "eval", name
    for name in ("df", "X_train", "latest", "interval", "devices"):
        assert frame_inputs.context_of(name) == "training", name


def test_ten_million_rows_cost_well_under_50_ms():
    """Digest, schema and profile of a 10-million-row frame: a bounded sample is hashed."""
    n = 10_000_000
    frame = pd.DataFrame({"x": np.arange(n, dtype=np.float64), "k": np.zeros(n, dtype=np.int8)})
    source = "total = df['x'].sum()"
    timings = []
    for _ in range(3):
        started = time.perf_counter()
        [found] = frame_inputs.collect(source, {"df": frame})
        timings.append(time.perf_counter() - started)
    assert min(timings) < 0.05, timings
    assert found.dataset_input.dataset.digest == data.from_pandas(frame).digest
    edited = frame.copy()
    edited.iloc[n - 1, 0] = -1.0  # the last row is always in the sample
    [changed] = frame_inputs.collect(source, {"df": edited})
    assert changed.digest != found.digest


def test_the_notebook_is_the_source(frames):
    import json

    frames.user_ns["__session__"] = "/work/churn.ipynb"  # what JupyterLab's kernel sets
    frames.run_cell("%%track\nn = len(df)")
    [run] = _runs()
    [item] = run.inputs.dataset_inputs
    assert item.dataset.source_type == "code"
    assert json.loads(item.dataset.source)["tags"] == {
        "mlflow.source.name": "/work/churn.ipynb",
        "mlflow.source.type": "NOTEBOOK",
    }
