"""DataGrid: the Python side of the anywidget table (data, sorting, selection, link clicks)."""

from __future__ import annotations

import json
import math

import pytest

from jupyter_mltrack.widgets.grid import DataGrid, sort_rows

COLUMNS = [
    {"key": "name", "label": "Run", "sortable": True},
    {"key": "metrics.f1", "label": "f1", "align": "right", "title": "F1 score"},
    {"key": "note", "label": "note", "sortable": False},
]


def _rows() -> list[dict]:
    return [
        {"id": "a", "cells": {"name": "alpha", "metrics.f1": 0.5}, "links": ["name"]},
        {
            "id": "b",
            "cells": {"name": "Beta", "metrics.f1": 0.9},
            "classes": {"metrics.f1": "mltrack-best"},
        },
        {"id": "c", "cells": {"name": "gamma", "metrics.f1": None}},
        {"id": "d", "cells": {"name": "delta", "metrics.f1": 0.7}},
    ]


def test_front_end_is_package_data() -> None:
    grid = DataGrid()
    assert "export default" in grid._esm and "mltrack-grid-row" in grid._esm
    assert "--jp-layout-color1" in grid._css and ".mltrack-best" in grid._css
    assert set(DataGrid.class_own_traits(sync=True)) >= {
        "columns",
        "rows",
        "sort_key",
        "sort_desc",
        "selection_mode",
        "selected",
        "clicked",
        "empty_text",
    }


def test_set_data_normalises_and_sends_one_message() -> None:
    grid = DataGrid(rows=[{"id": "gone", "cells": {}}], columns=COLUMNS[:1])
    grid.select(["gone"])
    sent: list[dict] = []  # what would go to the page, as if a kernel were listening
    grid.comm.kernel = object()
    grid.comm.send = lambda data, buffers=None: sent.append(data)
    grid.set_data(COLUMNS, _rows())
    assert len(sent) == 1
    assert {"columns", "rows", "selected"} <= set(sent[0]["state"])
    assert sent[0]["state"]["selected"] == []
    assert grid.row_ids() == ["a", "b", "c", "d"]
    assert grid.columns[0] == {"key": "name", "label": "Run", "sortable": True}
    assert grid.columns[1]["align"] == "right" and grid.columns[1]["title"] == "F1 score"
    assert grid.columns[2]["sortable"] is False
    assert grid.rows[0]["links"] == ["name"] and grid.rows[0]["classes"] == {}
    assert grid.rows[1]["classes"] == {"metrics.f1": "mltrack-best"}


def test_cells_survive_json() -> None:
    import numpy as np
    grid = DataGrid(
        columns=[{"key": "x"}],
        rows=[
            {"id": 1, "cells": {"x": math.nan}},
            {"id": 2, "cells": {"x": -math.inf}},
            {"id": 3, "cells": {"x": np.float32(0.25)}},
            {"id": 4, "cells": {"x": np.int64(7)}},
            {"id": 5, "cells": {"x": True}},
        ],
    )
    values = [r["cells"]["x"] for r in grid.rows]
    assert values == ["NaN", "-inf", 0.25, 7, "True"]
    assert grid.row_ids() == ["1", "2", "3", "4", "5"]
    json.dumps(grid.rows, allow_nan=False)


def test_rows_and_columns_need_keys() -> None:
    grid = DataGrid()
    with pytest.raises(Exception, match="id"):
        grid.set_data(COLUMNS, [{"cells": {}}])
    with pytest.raises(Exception, match="key"):
        grid.set_data([{"label": "x"}], [])


def test_sort_by_flips_on_same_key() -> None:
    grid = DataGrid(columns=COLUMNS, rows=_rows())
    assert grid.sort_key == ""
    grid.sort_by("metrics.f1")
    assert (grid.sort_key, grid.sort_desc) == ("metrics.f1", True)
    assert grid.row_ids() == ["b", "d", "a", "c"]  # missing values last
    grid.sort_by("metrics.f1")
    assert (grid.sort_key, grid.sort_desc) == ("metrics.f1", False)
    assert grid.row_ids() == ["a", "d", "b", "c"]  # still last
    grid.sort_by("name")  # a new key starts descending
    assert (grid.sort_key, grid.sort_desc) == ("name", True)
    assert grid.row_ids() == ["c", "d", "b", "a"]  # case-insensitive
    grid.sort_by("name", desc=False)
    assert grid.row_ids() == ["a", "b", "d", "c"]
    grid.sort_by("name", desc=False)  # explicit direction does not flip
    assert grid.sort_desc is False


def test_sort_change_is_one_state_for_observers() -> None:
    grid = DataGrid(columns=COLUMNS, rows=_rows())
    grid.sort_by("name", desc=False)
    seen: list[tuple[str, bool]] = []
    grid.observe(lambda _c: seen.append((grid.sort_key, grid.sort_desc)), ["sort_key", "sort_desc"])
    grid.sort_by("metrics.f1")
    assert seen and all(s == ("metrics.f1", True) for s in seen)


def test_owner_sorted_rows_keep_their_order() -> None:
    grid = DataGrid(columns=COLUMNS, rows=_rows(), sort_local=False)
    grid.sort_by("metrics.f1")
    assert grid.row_ids() == ["a", "b", "c", "d"]
    grid.set_data(COLUMNS, list(reversed(_rows())))
    assert grid.row_ids() == ["d", "c", "b", "a"]


def test_new_data_is_sorted_by_the_current_key() -> None:
    grid = DataGrid(columns=COLUMNS, rows=_rows())
    grid.sort_by("metrics.f1", desc=False)
    grid.set_data(COLUMNS, list(reversed(_rows())))
    assert grid.row_ids() == ["a", "d", "b", "c"]


def test_sort_rows_mixed_types() -> None:
    rows = [{"id": str(i), "cells": {"k": v}} for i, v in enumerate(["b", 2, None, 10, "A"])]
    assert [r["id"] for r in sort_rows(rows, "k", desc=False)] == ["1", "3", "4", "0", "2"]
    assert [r["id"] for r in sort_rows(rows, "k", desc=True)] == ["0", "4", "3", "1", "2"]


def test_select_and_pruning_on_new_data() -> None:
    grid = DataGrid(columns=COLUMNS, rows=_rows())
    grid.select(["a", "c", "zzz", "a"])
    assert grid.selected == ["a", "c"]
    grid.selected = ["b", "d"]  # what the page sends
    assert grid.selected == ["b", "d"]
    grid.set_data(COLUMNS, [r for r in _rows() if r["id"] != "d"])
    assert grid.selected == ["b"]
    grid.set_data(COLUMNS, [])
    assert grid.selected == []


def test_single_and_none_selection_modes() -> None:
    grid = DataGrid(columns=COLUMNS, rows=_rows(), selection_mode="single")
    grid.select(["a", "b"])
    assert grid.selected == ["b"]
    grid.selection_mode = "none"
    assert grid.selected == []
    grid.select(["a"])
    assert grid.selected == []
    with pytest.raises(Exception, match="selection_mode"):
        grid.selection_mode = "some"


def test_click_counts_every_click() -> None:
    grid = DataGrid(columns=COLUMNS, rows=_rows())
    clicks: list[dict] = []
    grid.observe(lambda c: clicks.append(c["new"]), "clicked")
    grid.click("a", "name")
    grid.click("a", "name")  # the same cell twice is two events
    assert clicks == [
        {"row": "a", "column": "name", "n": 1},
        {"row": "a", "column": "name", "n": 2},
    ]
    with pytest.raises(ValueError, match="zzz"):
        grid.click("zzz", "name")


def test_empty_text() -> None:
    grid = DataGrid(empty_text="No runs match")
    assert grid.rows == [] and grid.empty_text == "No runs match"
