"""RunsTable driven from Python on real stores (SQLite and PostgreSQL): every control, and
what it did to the widgets and to the store."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

import jupyter_mltrack as mlflow_pkg
from jupyter_mltrack.entities import Metric, Param, RunStatus
from jupyter_mltrack.exceptions import ResourceDoesNotExist
from jupyter_mltrack.widgets._format import format_duration, format_time
from jupyter_mltrack.widgets.runs_table import RunsTable, order_by_for

T0 = 1_700_000_000_000  # 2023-11-14 22:13:20 UTC
STATUSES = [RunStatus.FINISHED, RunStatus.FAILED, RunStatus.KILLED, RunStatus.RUNNING]


class Echo(mlflow_pkg.pyfunc.PythonModel):
    """The smallest real pyfunc model, for the register form."""

    def predict(self, context, model_input):
        return model_input


def make_runs(client, experiment: str, n: int, *, params: int = 2, metrics: int = 2) -> list[str]:
    """``n`` runs one second apart (``run-000`` oldest), statuses cycling; returns their ids."""
    experiment_id = client.create_experiment(experiment)
    ids = []
    for i in range(n):
        run = client.create_run(experiment_id, start_time=T0 + i * 1000, run_name=f"run-{i:03d}")
        run_id = run.info.run_id
        client.log_batch(
            run_id,
            metrics=[Metric(f"m{j}", (i * 7 + j) % 13 / 10, T0, 0) for j in range(metrics)],
            params=[Param(f"p{j}", str((i + j) % 5)) for j in range(params)],
        )
        status = STATUSES[i % 4]
        if status != RunStatus.RUNNING:
            client.set_terminated(run_id, status, end_time=T0 + i * 1000 + 2500)
        ids.append(run_id)
    return ids


def shown_ids(table: RunsTable) -> list[str]:
    return table.grid.row_ids()


def test_cell_formats() -> None:
    assert format_time(T0) == "2023-11-14 22:13:20"
    assert format_time(None) == ""
    assert format_duration(T0, T0 + 2500) == "2.5 s"
    assert format_duration(T0, T0 + 245_000) == "4 min 05 s"
    assert format_duration(T0, T0 + 7_380_000) == "2 h 03 min"
    assert format_duration(T0, None) == ""
    assert order_by_for("metrics.f1", True) == ["metrics.`f1` DESC"]
    assert order_by_for("params.my `key`", False) == ["params.`my ``key``` ASC"]
    assert order_by_for("attributes.run_name", False) == ["attributes.run_name ASC"]


def test_first_page_rows_and_repr(client) -> None:
    ids = make_runs(client, "churn", 12)
    table = RunsTable(experiment_names="churn", client=client, background=False)
    assert repr(table) == "RunsTable: 12 runs in 'churn' (page 1 of 1)"
    assert table.last_error is None
    assert shown_ids(table) == list(reversed(ids))  # newest first, as the store orders
    assert [c["key"] for c in table.grid.columns] == [
        "attributes.status",
        "attributes.run_name",
        "attributes.start_time",
        "duration",
        "params.p0",
        "params.p1",
        "metrics.m0",
        "metrics.m1",
    ]
    oldest = table.grid.rows[-1]
    assert oldest["cells"] == {
        "attributes.status": "✓ FINISHED",
        "attributes.run_name": "run-000",
        "attributes.start_time": "2023-11-14 22:13:20",
        "duration": "2.5 s",
        "params.p0": "0",
        "params.p1": "1",
        "metrics.m0": 0.0,
        "metrics.m1": 0.1,
    }
    assert oldest["links"] == ["attributes.run_name"]
    by_id = {r["id"]: r for r in table.grid.rows}
    assert by_id[ids[1]]["cells"]["attributes.status"] == "✗ FAILED"
    assert by_id[ids[1]]["classes"] == {"attributes.status": "mltrack-failed"}
    assert by_id[ids[2]]["cells"]["attributes.status"] == "■ KILLED"
    assert by_id[ids[3]]["cells"]["attributes.status"] == "▶ RUNNING"
    assert by_id[ids[3]]["cells"]["duration"] == ""
    assert table.page_label.value == "Page 1 of 1 · runs 1-12 of 12"
    assert table.prev_button.disabled and table.next_button.disabled
    assert table.grid.sort_key == "attributes.start_time" and table.grid.sort_desc


def test_active_experiment_and_unknown_names(mlflow, store_uri) -> None:
    mlflow.set_experiment("active-exp")
    with mlflow.start_run(run_name="only"):
        mlflow.log_metric("acc", 0.5)
    client = mlflow.MlflowClient(store_uri)
    table = RunsTable(client=client, background=False)
    assert repr(table) == "RunsTable: 1 run in 'active-exp' (page 1 of 1)"
    assert table.grid.rows[0]["cells"]["metrics.acc"] == 0.5
    by_id = RunsTable(experiment_ids=[table.experiment_ids[0]], client=client, background=False)
    assert shown_ids(by_id) == shown_ids(table)
    with pytest.raises(ResourceDoesNotExist, match="No experiment named 'nope'"):
        RunsTable(experiment_names=["nope"], client=client, background=False)


def test_filter_good_bad_good(client) -> None:
    make_runs(client, "churn", 20)
    experiment_id = client.get_experiment_by_name("churn").experiment_id
    table = RunsTable("churn", client=client)  # background: drive, then wait
    table.filter_box.value = "metrics.m0 >= 0.6 AND params.p0 != '3'"
    table.wait()
    expected = client.search_runs([experiment_id], "metrics.m0 >= 0.6 AND params.p0 != '3'")
    assert shown_ids(table) == [r.info.run_id for r in expected] and 0 < len(expected) < 20
    assert table.filter_string == "metrics.m0 >= 0.6 AND params.p0 != '3'"
    assert table.last_error is None and table.error_box.layout.display == "none"
    before = list(table.grid.rows)

    table.filter_box.value = "metrics.m0 >> 1"
    table.wait()
    assert table.grid.rows == before  # the table stays as it was
    assert "position" in table.last_error
    assert "position" in table.error_box.value and table.error_box.layout.display is None
    assert table.filter_string == "metrics.m0 >= 0.6 AND params.p0 != '3'"

    table.filter_box.value = "attributes.run_name LIKE 'run-01%'"
    table.apply_filter()  # the same as pressing Enter
    table.wait()
    assert [r["cells"]["attributes.run_name"] for r in table.grid.rows] == [
        f"run-{i:03d}" for i in range(19, 9, -1)
    ]
    assert table.last_error is None and table.error_box.layout.display == "none"


def test_bad_filter_at_start_is_shown_not_raised(client) -> None:
    make_runs(client, "churn", 3)
    table = RunsTable("churn", filter_string="params.p0 = ", client=client, background=False)
    assert table.grid.rows == [] and "position" in table.last_error
    assert table.page_label.value == "Page 1 of 1 · no runs"


def test_sort_by_header(client) -> None:
    make_runs(client, "churn", 30)
    run = client.create_run(client.get_experiment_by_name("churn").experiment_id, run_name="bare")
    client.log_param(run.info.run_id, "my key", "z")
    table = RunsTable("churn", client=client, background=False, page_size=10)
    table.grid.sort_by("metrics.m0")
    values = [r["cells"]["metrics.m0"] for r in table.grid.rows]
    assert (table.grid.sort_key, table.grid.sort_desc) == ("metrics.m0", True)
    assert table.order_by == ["metrics.`m0` DESC"]
    assert values == sorted(((i * 7) % 13 / 10 for i in range(30)), reverse=True)[:10]
    table.next_button.click()
    table.grid.sort_by("metrics.m0")  # a second click flips, back to page 1
    assert table.page == 1 and not table.grid.sort_desc
    assert [r["cells"]["metrics.m0"] for r in table.grid.rows][:4] == [0.0, 0.0, 0.0, 0.1]
    assert run.info.run_id not in shown_ids(table)  # lacking the metric: last either way

    table.grid.sort_by("attributes.run_name", desc=False)
    names = [r["cells"]["attributes.run_name"] for r in table.grid.rows]
    assert names == sorted(names) and names[0] == "bare"

    table.grid.sort_by("params.my key")  # a key that needs quoting in order_by
    assert table.last_error is None and shown_ids(table)[0] == run.info.run_id

    before = list(table.grid.rows)
    table.grid.sort_by("duration")  # not sortable in the store
    assert "cannot be sorted" in table.last_error and table.grid.rows == before
    assert table.grid.sort_key == "params.my key"  # the header shows the real order again


def test_paging(client) -> None:
    ids = make_runs(client, "big", 120, params=1, metrics=1)
    table = RunsTable("big", client=client, background=False, page_size=50)
    assert repr(table) == "RunsTable: 50+ runs in 'big' (page 1 of 2+)"
    assert table.page_label.value == "Page 1 of 2+ · runs 1-50 of 50+"
    assert table.prev_button.disabled and not table.next_button.disabled
    pages = [shown_ids(table)]
    table.next_button.click()
    pages.append(shown_ids(table))
    assert table.page_label.value == "Page 2 of 3+ · runs 51-100 of 100+"
    table.next_button.click()
    pages.append(shown_ids(table))
    assert table.page_label.value == "Page 3 of 3 · runs 101-120 of 120"
    assert repr(table) == "RunsTable: 120 runs in 'big' (page 3 of 3)"
    assert table.next_button.disabled and not table.prev_button.disabled
    assert [len(p) for p in pages] == [50, 50, 20]
    assert [i for p in pages for i in p] == list(reversed(ids))
    table.prev_button.click()
    assert shown_ids(table) == pages[1]
    assert table.page_label.value == "Page 2 of 3 · runs 51-100 of 120"  # the total is known now
    table.prev_button.click()
    assert shown_ids(table) == pages[0] and table.prev_button.disabled
    table.prev_button.click()  # nothing before the first page
    assert table.page == 1 and table.last_error is None


def test_column_picker(client) -> None:
    make_runs(client, "wide", 5, params=8, metrics=8)
    table = RunsTable("wide", client=client, background=False)
    picker = table.column_picker
    assert len(picker.options) == 16
    assert picker.value == tuple(f"params.p{j}" for j in range(6)) + tuple(
        f"metrics.m{j}" for j in range(6)
    )
    assert len(table.grid.columns) == 4 + 12
    experiment_id = table.experiment_ids[0]
    before = len(client.search_runs([experiment_id]))
    picker.value = ("params.p7", "metrics.m7")
    assert [c["key"] for c in table.grid.columns][4:] == ["params.p7", "metrics.m7"]
    assert table.grid.rows[0]["cells"]["params.p7"] is not None
    assert "params.p0" not in table.grid.rows[0]["cells"]
    # a run with new keys: offered in the picker, but the user's choice stays
    run = client.create_run(experiment_id, run_name="new-keys")
    client.log_param(run.info.run_id, "extra", "1")
    table.refresh_button.click()
    assert len(client.search_runs([experiment_id])) == before + 1
    assert "params.extra" in [v for _, v in picker.options]
    assert picker.value == ("params.p7", "metrics.m7")


def test_selection_enables_buttons(client) -> None:
    ids = make_runs(client, "churn", 3)
    table = RunsTable("churn", client=client, background=False)
    buttons = [table.compare_button, table.show_button, table.register_button, table.recall_button]
    assert [b.disabled for b in buttons] == [True, True, True, True]
    table.grid.select([ids[0]])
    assert [b.disabled for b in buttons] == [True, False, False, False]
    table.grid.selected = [ids[0], ids[1]]  # as the page sends it
    assert [b.disabled for b in buttons] == [False, True, True, True]
    table.grid.select([])
    assert [b.disabled for b in buttons] == [True, True, True, True]
    table.show()  # called from Python anyway: a clear error, not a traceback
    assert table.last_error == "Select exactly one run to show."


def test_refresh_picks_up_new_runs_and_keeps_selection(client) -> None:
    ids = make_runs(client, "churn", 4)
    table = RunsTable("churn", client=client, background=False)
    table.grid.select([ids[1], ids[2]])
    new = client.create_run(table.experiment_ids[0], run_name="late", start_time=T0 + 99_000)
    client.log_metric(new.info.run_id, "m0", 0.99)
    assert new.info.run_id not in shown_ids(table)
    table.refresh_button.click()
    assert shown_ids(table)[0] == new.info.run_id
    assert table.grid.rows[0]["cells"]["metrics.m0"] == 0.99
    assert table.grid.selected == [ids[1], ids[2]]
    assert repr(table) == "RunsTable: 5 runs in 'churn' (page 1 of 1)"
    client.delete_run(ids[1])
    table.refresh()
    assert table.grid.selected == [ids[2]] and ids[1] not in shown_ids(table)


def test_register_model(mlflow, store_uri) -> None:
    mlflow.set_experiment("models")
    with mlflow.start_run(run_name="with-model") as with_model:
        mlflow.pyfunc.log_model(name="model", python_model=Echo(), pip_requirements=[])
    with mlflow.start_run(run_name="no-model") as no_model:
        mlflow.log_metric("acc", 0.1)
    client = mlflow.MlflowClient(store_uri)
    table = RunsTable("models", client=client, background=False)

    table.grid.select([no_model.info.run_id])
    table.register_button.click()
    assert "has no logged model" in table.last_error
    assert table.detail_area.children == ()

    table.grid.select([with_model.info.run_id])
    table.register_button.click()
    assert table.last_error is None
    assert table.register_name in table.detail_area.children
    assert table.register_path.options == ("model",)
    table.register_confirm_button.click()  # no name yet
    assert "Enter a model name" in table.last_error
    table.register_name.value = "bad/name"
    table.register_confirm_button.click()
    assert "Invalid model name 'bad/name'" in table.last_error
    with pytest.raises(ResourceDoesNotExist):
        client.get_registered_model("bad/name")

    table.register_name.value = "churn-model"
    table.register_confirm_button.click()
    assert table.last_error is None
    stored = client.get_model_version("churn-model", 1)
    assert stored.run_id == with_model.info.run_id
    assert table.registered_version.version == stored.version
    assert "version 1" in table.register_result.value
    table.register_confirm_button.click()
    assert client.get_model_version("churn-model", 2).run_id == with_model.info.run_id


def test_recall_source_from_tags(client) -> None:
    ids = make_runs(client, "cells", 2)
    client.set_tag(ids[0], "mltrack.cell.source", "lr = 0.1\nscore = lr * 2\n")
    client.set_tag(ids[0], "mltrack.cell.magic", "%%track base --tag a=b")
    table = RunsTable("cells", client=client, background=False)
    table.grid.select([ids[0]])
    table.recall_button.click()
    assert table.last_error is None
    assert table.recall_text.value == "%%track base --tag a=b\nlr = 0.1\nscore = lr * 2"
    assert table.recall_text.disabled and table.recall_text in table.detail_area.children
    table.grid.select([ids[1]])
    table.recall_button.click()
    assert "was not recorded by %%track" in table.last_error


def test_recall_a_tracked_cell(ip, monkeypatch: pytest.MonkeyPatch) -> None:
    ip.run_cell("%%track base --tag team=x\nlr = 0.1\nscore = lr * 2")
    ip.rl_next_input = None
    table = RunsTable(background=False)  # the shell's store and experiment
    assert repr(table) == "RunsTable: 1 run in 'Default' (page 1 of 1)"
    table.grid.select(table.grid.row_ids())
    table.recall_button.click()
    expected = "%%track base --tag team=x\nlr = 0.1\nscore = lr * 2"
    assert table.recall_text.value == expected
    assert ip.rl_next_input == expected  # a terminal IPython: the next prompt holds the cell

    # In a kernel the payload would come back with the user's next execution and insert the
    # cell after whichever cell that is: there the read-only text is the only answer.
    ip.rl_next_input = None
    ip.payload_manager.clear_payload()
    monkeypatch.setattr(ip, "kernel", object(), raising=False)
    table.recall_button.click()
    assert table.last_error is None and table.recall_text.value == expected
    assert table.recall_text in table.detail_area.children
    assert ip.rl_next_input is None and ip.payload_manager.read_payload() == []


def test_first_render_of_10k_runs(tmp_path: Path) -> None:
    """The constructor returns with the first page shown in at most 300 ms (SQLite)."""
    store = str(tmp_path / "store")
    writer = mlflow_pkg.MlflowClient(store)
    experiment_id = writer.create_experiment("big")
    for i in range(10_000):
        run = writer.create_run(experiment_id, start_time=T0 + i, run_name=f"r{i}")
        writer.log_batch(
            run.info.run_id,
            metrics=[Metric("f1", i / 1e4, T0, 0), Metric("loss", 1 - i / 1e4, T0, 0)],
            params=[Param("lr", str(i % 7)), Param("depth", str(i % 5))],
        )
    writer.flush()
    client = mlflow_pkg.MlflowClient(store)
    start = time.perf_counter()
    table = RunsTable(experiment_names=["big"], client=client, background=False)
    seconds = time.perf_counter() - start
    assert table.last_error is None and len(table.grid.rows) == 50
    assert table.grid.rows[0]["cells"]["attributes.run_name"] == "r9999"
    assert seconds <= 0.3, f"first render took {seconds * 1000:.0f} ms"


def test_compare_and_show_open_panels(client) -> None:
    ids = make_runs(client, "churn", 3)
    table = RunsTable("churn", client=client, background=False)
    table.grid.select(ids[:2])
    table.compare_button.click()
    assert table.last_error is None
    assert "RunComparison" in [type(c).__name__ for c in table.detail_area.children]

    table.grid.select([ids[2]])
    table.show_button.click()
    assert table.last_error is None
    kinds = [type(c).__name__ for c in table.detail_area.children]
    assert "RunDetail" in kinds and "RunComparison" not in kinds

    table.grid.click(ids[0], "attributes.run_name")  # the run name link opens it too
    detail = [c for c in table.detail_area.children if type(c).__name__ == "RunDetail"]
    assert detail and "run-000" in table.detail_area.children[0].value


def test_header_click_is_one_query_in_background(client) -> None:
    make_runs(client, "churn", 5)
    table = RunsTable("churn", client=client)
    queries: list[list[str]] = []
    search = client.search_runs

    def counting(*args, **kwargs):
        queries.append(kwargs["order_by"])
        return search(*args, **kwargs)

    client.search_runs = counting
    table.grid.sort_by("attributes.start_time")  # sorted column: flips to ascending
    table.wait()
    assert queries == [["attributes.start_time ASC"]]
    assert table.grid.rows[0]["cells"]["attributes.run_name"] == "run-000"
    table.column_picker.value = ("metrics.m1",)
    table.wait()
    assert [c["key"] for c in table.grid.columns][4:] == ["metrics.m1"] and len(queries) == 1
