"""%%track in a real kernel: nbclient executing notebooks, and raw execute requests with a cell id."""

from __future__ import annotations

import os
import queue

import pytest
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError
from nbformat.v4 import new_code_cell, new_notebook

import jupyter_mltrack as mlflow


def run_notebook(tmp_path, sources, monkeypatch, allow_errors=False):
    store = tmp_path / "kstore"
    monkeypatch.setenv("MLTRACK_TRACKING_URI", str(store))
    monkeypatch.setenv("JPY_SESSION_NAME", str(tmp_path / "analysis.ipynb"))
    nb = new_notebook(cells=[new_code_cell(s) for s in sources])
    client = NotebookClient(nb, timeout=120, kernel_name="python3", allow_errors=allow_errors)
    client.execute(cwd=str(tmp_path))
    mlflow.set_tracking_uri(str(store))
    return nb


def test_notebook_cells_become_runs(tmp_path, monkeypatch):
    nb = run_notebook(
        tmp_path,
        [
            "%load_ext jupyter_mltrack\nimport matplotlib.pyplot as plt",
            "%mltrack experiment kernel-test",
            "%%track first\nlr = 0.1\nloss = lr * 3\nfig = plt.figure(); fig.add_subplot().plot([1, 2])\nloss",
            "%%track second\nlr = 0.2\nloss = lr * 3\nfig = plt.figure(); fig.add_subplot().plot([1, 2])\nloss",
        ],
        monkeypatch,
    )
    outputs = nb.cells[2].outputs
    assert any(o.get("data", {}).get("text/plain", "").startswith("0.3") for o in outputs)  # Out[]
    assert any("image/png" in o.get("data", {}) for o in outputs)  # the figure is still shown
    summary = [o for o in outputs if "mltrack run 'first'" in o.get("data", {}).get("text/plain", "")]
    assert summary and "text/html" in summary[0]["data"]
    found = mlflow.search_runs(experiment_names=["kernel-test"], order_by=["attributes.start_time ASC"])
    assert list(found["tags.mlflow.runName"]) == ["first", "second"]
    assert list(found["params.lr"]) == ["0.1", "0.2"]
    assert list(found["status"]) == ["FINISHED", "FINISHED"]
    first = mlflow.get_run(found.run_id[0])
    assert first.data.tags["mlflow.source.name"] == str(tmp_path / "analysis.ipynb")
    assert first.data.tags["mlflow.source.type"] == "NOTEBOOK"
    assert first.data.tags["mltrack.kernel.id"]
    assert first.data.tags["mltrack.cell.execution_count"] == "3"
    client = mlflow.MlflowClient()
    assert [a.path for a in client.list_artifacts(found.run_id[0], "figures")] == ["figures/figure_1.png"]
    # nbclient sends no cell id: runs of the same cell are linked by the source fingerprint
    assert first.data.tags["mltrack.cell"] == mlflow.get_run(found.run_id[1]).data.tags["mltrack.cell"]


def test_failing_cell_fails_the_notebook_and_the_run(tmp_path, monkeypatch):
    with pytest.raises(CellExecutionError) as err:
        run_notebook(
            tmp_path,
            ["%load_ext jupyter_mltrack", "%%track boom\nx = 1\nraise RuntimeError('no data')", "after = 1"],
            monkeypatch,
        )
    assert "RuntimeError" in str(err.value) and "no data" in str(err.value)
    [run] = mlflow.search_runs(search_all_experiments=True, output_format="list")
    assert run.info.status == "FAILED"
    assert run.data.tags["mltrack.error.message"] == "no data"


def test_run_all_stops_at_a_failed_tracked_cell(tmp_path, monkeypatch):
    nb = run_notebook(
        tmp_path,
        ["%load_ext jupyter_mltrack", "%%track boom\nraise RuntimeError('stop')", "after = 1"],
        monkeypatch,
        allow_errors=True,
    )
    errors = [o for o in nb.cells[1].outputs if o.output_type == "error"]
    assert errors and errors[0]["ename"] == "RuntimeError"
    traceback = "\n".join(errors[0]["traceback"])
    assert "cellrun" not in traceback and "run_ast_nodes" not in traceback


def test_frontend_cell_id_links_runs(tmp_path, monkeypatch):
    from jupyter_client.manager import start_new_kernel

    store = tmp_path / "kstore"
    monkeypatch.setenv("MLTRACK_TRACKING_URI", str(store))
    km, kc = start_new_kernel(kernel_name="python3", cwd=str(tmp_path))
    try:
        def execute(code: str, cell_id: str) -> dict:
            content = {"code": code, "silent": False, "store_history": True, "user_expressions": {},
                       "allow_stdin": False, "stop_on_error": True}
            msg = kc.session.msg("execute_request", content, metadata={"cellId": cell_id})
            kc.shell_channel.send(msg)
            while True:
                reply = kc.get_shell_msg(timeout=60)
                if reply["parent_header"].get("msg_id") == msg["header"]["msg_id"]:
                    return reply["content"]

        assert execute("%load_ext jupyter_mltrack", "c0")["status"] == "ok"
        assert execute("%%track\nlr = 0.1\nscore = lr * 2", "cell-abc")["status"] == "ok"
        assert execute("%%track\nlr = 0.3\nscore = lr * 5 + 1", "cell-abc")["status"] == "ok"
        failed = execute("%%track\nraise ValueError('x')", "cell-def")
        assert failed["status"] == "error" and failed["ename"] == "ValueError"
    finally:
        kc.stop_channels()
        km.shutdown_kernel(now=True)
        try:
            while True:
                kc.get_iopub_msg(timeout=0.01)
        except (queue.Empty, Exception):
            pass
    mlflow.set_tracking_uri(str(store))
    same_cell = mlflow.search_runs(filter_string="tags.`mltrack.cell` = 'cell-abc'")
    assert sorted(same_cell["params.lr"]) == ["0.1", "0.3"]
    assert set(same_cell["tags.mltrack.cell.id"]) == {"cell-abc"}
    other = mlflow.search_runs(filter_string="tags.`mltrack.cell.id` = 'cell-def'")
    assert list(other["status"]) == ["FAILED"]
    assert os.path.exists(store / "mltrack.db")


def test_extension_loads_from_kernel_configuration(tmp_path, monkeypatch):
    """``c.InteractiveShellApp.extensions = ["jupyter_mltrack"]`` (here on the command line)."""
    store = tmp_path / "kstore"
    monkeypatch.setenv("MLTRACK_TRACKING_URI", str(store))
    nb = new_notebook(cells=[new_code_cell("%%track configured\nlr = 0.1")])
    client = NotebookClient(
        nb,
        timeout=120,
        kernel_name="python3",
        extra_arguments=["--InteractiveShellApp.extensions=jupyter_mltrack"],
    )
    client.execute(cwd=str(tmp_path))
    mlflow.set_tracking_uri(str(store))
    [run] = mlflow.search_runs(output_format="list")
    assert run.info.run_name == "configured" and run.data.params == {"lr": "0.1"}
