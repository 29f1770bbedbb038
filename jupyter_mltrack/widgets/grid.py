"""DataGrid: a sortable, selectable HTML table as an anywidget (plain ES module, no build step).

The grid only shows what it is given. Python owns the data: ``set_data(columns, rows)``; the page
reports what the user did through synced traits (``sort_key``/``sort_desc`` after a header click,
``selected`` after a checkbox or row click, ``clicked`` after a click on a link cell), and the
methods ``sort_by``, ``select`` and ``click`` do exactly the same from Python.

With ``sort_local=True`` (the default) the grid keeps ``rows`` ordered by ``sort_key`` itself; a
panel that sorts on the server (the runs table pages through a query) sets it to ``False`` and
observes ``sort_key``/``sort_desc`` instead.
"""

from __future__ import annotations

import math
import pathlib
from collections.abc import Iterable, Sequence
from typing import Any

import anywidget
import traitlets as t

_STATIC = pathlib.Path(__file__).parent / "static"

SELECTION_MODES = ("none", "single", "multi")


def _clean_value(value: Any) -> str | int | float | None:
    """A cell value that survives JSON: numpy scalars unwrapped, NaN/inf spelled out."""
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, bool):
        return str(value)
    if hasattr(value, "item") and not isinstance(value, (int, float)):
        value = value.item()  # numpy scalar
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        if math.isnan(value):
            return "NaN"
        if math.isinf(value):
            return "inf" if value > 0 else "-inf"
        return value
    return str(value)


def _clean_row(row: dict[str, Any]) -> dict[str, Any]:
    if "id" not in row:
        raise t.TraitError(f"DataGrid row without an 'id': {row!r}")
    return {
        "id": str(row["id"]),
        "cells": {str(k): _clean_value(v) for k, v in (row.get("cells") or {}).items()},
        "classes": {str(k): str(v) for k, v in (row.get("classes") or {}).items() if v},
        "links": [str(k) for k in (row.get("links") or [])],
    }


def _clean_column(column: dict[str, Any]) -> dict[str, Any]:
    if "key" not in column:
        raise t.TraitError(f"DataGrid column without a 'key': {column!r}")
    key = str(column["key"])
    out = {
        "key": key,
        "label": str(column.get("label", key)),
        "sortable": bool(column.get("sortable", True)),
    }
    if column.get("align") in ("left", "right"):
        out["align"] = column["align"]
    if column.get("title"):
        out["title"] = str(column["title"])
    return out


def _sort_key(value: Any) -> tuple:
    """Numbers before text, text without case; ``None`` is handled by the caller (always last)."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return (0, value, "")
    return (1, 0, str(value).casefold())


def sort_rows(rows: Sequence[dict[str, Any]], key: str, desc: bool) -> list[dict[str, Any]]:
    """``rows`` ordered by the cell ``key``; rows without a value stay last either way."""
    present = [r for r in rows if r["cells"].get(key) is not None]
    missing = [r for r in rows if r["cells"].get(key) is None]
    present.sort(key=lambda r: _sort_key(r["cells"][key]), reverse=desc)
    return present + missing


class DataGrid(anywidget.AnyWidget):
    """A table of rows with sortable headers, row selection and clickable link cells.

    Parameters
    ----------
    columns : list of dict
        ``{"key", "label", "sortable", "align", "title"}``; only ``key`` is required.
    rows : list of dict
        ``{"id", "cells": {key: value}, "classes": {key: css class}, "links": [key, ...]}``.
    """

    _esm = _STATIC / "grid.js"
    _css = _STATIC / "grid.css"

    columns = t.List(t.Dict(), help="Column specs, in display order.").tag(sync=True)
    rows = t.List(t.Dict(), help="Row specs, in display order.").tag(sync=True)
    sort_key = t.Unicode("", help="Key of the sorted column ('' = unsorted).").tag(sync=True)
    sort_desc = t.Bool(True, help="Sort direction of sort_key.").tag(sync=True)
    sort_local = t.Bool(True, help="Order rows by sort_key here (False: the owner sorts).").tag(
        sync=True
    )
    selection_mode = t.Unicode("multi", help="'none', 'single' or 'multi'.").tag(sync=True)
    selected = t.List(t.Unicode(), help="Ids of the selected rows.").tag(sync=True)
    clicked = t.Dict(help="Last click on a link cell: {'row', 'column', 'n'}.").tag(sync=True)
    empty_text = t.Unicode("No rows", help="Shown when there are no rows.").tag(sync=True)

    def __init__(
        self,
        columns: Sequence[dict[str, Any]] = (),
        rows: Sequence[dict[str, Any]] = (),
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if columns or rows:
            self.set_data(columns, rows)

    # -- validation -----------------------------------------------------------------------
    @t.validate("columns")
    def _valid_columns(self, proposal: Any) -> list[dict[str, Any]]:
        return [_clean_column(c) for c in proposal["value"]]

    @t.validate("rows")
    def _valid_rows(self, proposal: Any) -> list[dict[str, Any]]:
        rows = [_clean_row(r) for r in proposal["value"]]
        if self.sort_local and self.sort_key:
            rows = sort_rows(rows, self.sort_key, self.sort_desc)
        return rows

    @t.validate("selection_mode")
    def _valid_mode(self, proposal: Any) -> str:
        if proposal["value"] not in SELECTION_MODES:
            raise t.TraitError(f"selection_mode must be one of {SELECTION_MODES}")
        return proposal["value"]

    @t.validate("selected")
    def _valid_selected(self, proposal: Any) -> list[str]:
        ids = list(dict.fromkeys(proposal["value"]))  # unique, in order
        if self.selection_mode == "none":
            return []
        if self.selection_mode == "single":
            return ids[-1:]
        return ids

    @t.observe("rows")
    def _prune_selection(self, change: Any) -> None:
        present = self.row_ids()
        kept = [i for i in self.selected if i in present]
        if kept != self.selected:
            self.selected = kept

    @t.observe("selection_mode")
    def _mode_changed(self, change: Any) -> None:
        self.selected = list(self.selected)  # re-validated for the new mode

    @t.observe("sort_key", "sort_desc", "sort_local")
    def _resort(self, change: Any) -> None:
        if self.sort_local and self.sort_key:
            self.rows = list(self.rows)  # the validator orders them

    # -- API --------------------------------------------------------------------------------
    def row_ids(self) -> list[str]:
        """Ids of the rows, in display order."""
        return [r["id"] for r in self.rows]

    def set_data(self, columns: Sequence[dict[str, Any]], rows: Sequence[dict[str, Any]]) -> None:
        """Replace columns and rows in one message; selected ids no longer present are dropped."""
        with self.hold_sync():
            self.columns = list(columns)
            self.rows = list(rows)

    def sort_by(self, key: str, desc: bool | None = None) -> None:
        """What a header click does: ``desc=None`` flips if ``key`` is already sorted, else
        sorts descending."""
        if desc is None:
            desc = not self.sort_desc if key == self.sort_key else True
        with self.hold_sync(), self.hold_trait_notifications():
            self.sort_key = key
            self.sort_desc = bool(desc)

    def select(self, ids: Iterable[str]) -> None:
        """Select the rows ``ids`` (unknown ids ignored; the selection mode applies)."""
        present = set(self.row_ids())
        self.selected = [str(i) for i in ids if str(i) in present]

    def click(self, row_id: str, column: str) -> None:
        """What a click on the link cell ``(row_id, column)`` does."""
        if str(row_id) not in self.row_ids():
            raise ValueError(f"No row {row_id!r} in the grid")
        n = int(self.clicked.get("n", 0)) + 1
        self.clicked = {"row": str(row_id), "column": str(column), "n": n}
