"""RunsTable: the runs of one or more experiments, one page at a time, in a DataGrid.

Every view is one ``Client.search_runs`` page (filter, SQL order, ``page_size`` rows), so an
experiment of any size opens as fast as one page. The Client has no count of matching runs, so
the total is exact only once the last page has been seen; before that it reads "50+".
"""

from __future__ import annotations

import html
from collections import Counter
from collections.abc import Sequence
from typing import Any

import ipywidgets as w

from jupyter_mltrack.entities import Run, RunStatus
from jupyter_mltrack.exceptions import InvalidParameterValue, ResourceDoesNotExist
from jupyter_mltrack.widgets._format import format_duration, format_time
from jupyter_mltrack.widgets._panel import Panel, action, describe_error
from jupyter_mltrack.widgets.grid import DataGrid

DEFAULT_ORDER = ("attributes.start_time", True)  # newest first, the store's own default
DEFAULT_COLUMNS_PER_KIND = 6
MODEL_SEARCH_DEPTH = 3  # how deep "Register model…" looks for an MLmodel file
STATUS_MARKS = {
    RunStatus.FINISHED: "✓",
    RunStatus.FAILED: "✗",
    RunStatus.KILLED: "■",
    RunStatus.RUNNING: "▶",
    RunStatus.SCHEDULED: "…",
}
STATUS_CLASSES = {RunStatus.FAILED: "mltrack-failed", RunStatus.KILLED: "mltrack-muted"}
FIXED_COLUMNS = [
    {"key": "attributes.status", "label": "status"},
    {"key": "attributes.run_name", "label": "run"},
    {"key": "attributes.start_time", "label": "started (UTC)"},
    {"key": "duration", "label": "duration", "sortable": False, "align": "right"},
]


# -- cells (no widgets) -------------------------------------------------------------------
def order_by_for(key: str, desc: bool) -> list[str]:
    """The ``order_by`` of a grid column key (``attributes.x``, ``params.k``, ``metrics.k``)."""
    kind, dot, name = key.partition(".")
    if not dot or kind not in ("attributes", "params", "metrics") or not name:
        raise InvalidParameterValue(f"The column {key!r} cannot be sorted.")
    field = name if kind == "attributes" else "`" + name.replace("`", "``") + "`"
    return [f"{kind}.{field} {'DESC' if desc else 'ASC'}"]


def run_row(run: Run, params: Sequence[str], metrics: Sequence[str]) -> dict[str, Any]:
    """One DataGrid row of ``run`` with the chosen param and metric columns."""
    info, data = run.info, run.data
    status = info.status
    cells: dict[str, Any] = {
        "attributes.status": f"{STATUS_MARKS.get(status, '?')} {status}",
        "attributes.run_name": info.run_name or info.run_id[:8],
        "attributes.start_time": format_time(info.start_time),
        "duration": format_duration(info.start_time, info.end_time),
    }
    cells.update({f"params.{k}": data.params.get(k) for k in params})
    cells.update({f"metrics.{k}": data.metrics.get(k) for k in metrics})
    classes = {"attributes.status": STATUS_CLASSES[status]} if status in STATUS_CLASSES else {}
    return {"id": info.run_id, "cells": cells, "classes": classes, "links": ["attributes.run_name"]}


def _most_common(counts: Counter) -> list[str]:
    return sorted(counts, key=lambda k: (-counts[k], k))


def model_paths(client: Any, run_id: str, depth: int = MODEL_SEARCH_DEPTH) -> list[str]:
    """Artifact folders of the run that hold a logged model (an ``MLmodel`` file)."""
    found: list[str] = []
    level = [None]  # the artifact root
    for _ in range(depth):
        below: list[str] = []
        for folder in level:
            entries = client.list_artifacts(run_id, folder)
            if folder and any(not e.is_dir and e.path.endswith("/MLmodel") for e in entries):
                found.append(folder)
                continue  # a model's own sub-folders are not models
            below += [e.path for e in entries if e.is_dir]
        level = below
    return sorted(found)


class RunsTable(Panel):
    """The runs of an experiment as a sortable, filterable, paged table with run actions.

    Parameters
    ----------
    experiment_names, experiment_ids : str or list of str, optional
        What to show; neither means the active experiment.
    filter_string : str
        A search filter (``metrics.f1 > 0.8 AND params.model = 'rf'``).
    client, tracking_uri, background
        See ``Panel``.
    page_size : int
        Runs per page.
    """

    def __init__(
        self,
        experiment_names: str | Sequence[str] | None = None,
        experiment_ids: str | Sequence[str] | None = None,
        filter_string: str = "",
        client: Any = None,
        tracking_uri: str | None = None,
        background: bool = True,
        page_size: int = 50,
        **kwargs: Any,
    ) -> None:
        super().__init__(client=client, tracking_uri=tracking_uri, background=background, **kwargs)
        if not isinstance(page_size, int) or page_size < 1:
            raise InvalidParameterValue(f"page_size must be a positive integer, got {page_size!r}")
        self.page_size = page_size
        self.experiments = self._resolve_experiments(experiment_names, experiment_ids)
        self.experiment_ids = [e.experiment_id for e in self.experiments]
        # the query on show; it changes only when a new one succeeded
        self.filter_string = ""
        self.order_by = order_by_for(*DEFAULT_ORDER)
        self.page = 1
        self.runs: list[Run] = []
        self.total: int | None = None
        self._tokens: list[str | None] = [None]  # page token of page i+1
        self._keys: dict[str, Counter] = {"params": Counter(), "metrics": Counter()}
        self._columns_auto = True  # until the user picks columns, new keys may fill them
        self._updating_picker = False
        self.registered_version: Any = None
        self._build_controls(filter_string)
        try:  # the first page is loaded before the constructor returns, even in background
            self._load(1, filter_string=filter_string.strip(), reset=True)
        except Exception as err:
            self.show_error(describe_error(err))
            self.total = 0  # what the table shows: nothing
            self._render()

    # -- construction ---------------------------------------------------------------------
    def _resolve_experiments(
        self, names: str | Sequence[str] | None, ids: str | Sequence[str] | None
    ) -> list[Any]:
        found = []
        for name in [names] if isinstance(names, str) else list(names or ()):
            experiment = self.client.get_experiment_by_name(name)
            if experiment is None:
                raise ResourceDoesNotExist(
                    f"No experiment named {name!r}; create it with "
                    "jupyter_mltrack.set_experiment(name) or check the spelling."
                )
            found.append(experiment)
        for experiment_id in [ids] if isinstance(ids, (str, int)) else list(ids or ()):
            found.append(self.client.get_experiment(str(experiment_id)))
        if not found:
            from jupyter_mltrack.tracking.fluent import _experiment_id

            found.append(self.client.get_experiment(_experiment_id()))
        return found

    def _build_controls(self, filter_string: str) -> None:
        button = w.Layout(width="auto")
        self.filter_box = w.Text(
            value=filter_string,
            placeholder="Filter: metrics.f1 > 0.8 AND params.model = 'rf'   (Enter to apply)",
            continuous_update=False,
            layout=w.Layout(flex="1 1 auto", width="auto"),
        )
        self.refresh_button = w.Button(
            description="Refresh", icon="refresh", tooltip="Re-run the query", layout=button
        )
        self.column_picker = w.SelectMultiple(
            options=[], rows=8, description="", layout=w.Layout(width="auto", min_width="24em")
        )
        self.grid = DataGrid(sort_local=False, empty_text="No runs match")
        self.grid.sort_by(*DEFAULT_ORDER)
        self.prev_button = w.Button(
            description="Prev", icon="chevron-left", layout=button, disabled=True
        )
        self.next_button = w.Button(
            description="Next", icon="chevron-right", layout=button, disabled=True
        )
        self.page_label = w.Label()
        self.compare_button = w.Button(
            description="Compare selected", icon="columns", layout=button
        )
        self.show_button = w.Button(description="Show", icon="eye", layout=button)
        self.register_button = w.Button(description="Register model…", icon="tag", layout=button)
        self.recall_button = w.Button(description="Recall cell", icon="code", layout=button)
        self.detail_area = w.VBox()
        # the register form and the recalled source live in detail_area when opened
        self.register_name = w.Text(description="Model name", placeholder="e.g. churn-classifier")
        self.register_path = w.Dropdown(description="Model", options=[])
        self.register_confirm_button = w.Button(
            description="Register", button_style="primary", icon="check", layout=button
        )
        self.register_result = w.HTML()
        self.recall_text = w.Textarea(disabled=True, layout=w.Layout(width="100%", height="14em"))

        self.filter_box.observe(lambda _c: self.apply_filter(), names="value")
        self.refresh_button.on_click(self.refresh)
        self.column_picker.observe(self._on_columns, names="value")
        self.grid.observe(lambda _c: self._on_sort(), names=["sort_key", "sort_desc"])
        self.grid.observe(lambda _c: self._update_buttons(), names="selected")
        self.grid.observe(self._on_link, names="clicked")
        self.prev_button.on_click(self.prev_page)
        self.next_button.on_click(self.next_page)
        self.compare_button.on_click(self.compare)
        self.show_button.on_click(self.show)
        self.register_button.on_click(self.open_register_form)
        self.register_confirm_button.on_click(self.confirm_register)
        self.recall_button.on_click(self.recall)

        columns = w.Accordion(children=[self.column_picker], titles=("Columns",))
        columns.selected_index = None
        self.children = [
            w.HBox([self.filter_box, self.refresh_button]),
            self.error_box,
            columns,
            self.grid,
            w.HBox(
                [
                    self.prev_button,
                    self.page_label,
                    self.next_button,
                    w.HTML(layout=w.Layout(flex="1 1 auto")),
                    self.compare_button,
                    self.show_button,
                    self.register_button,
                    self.recall_button,
                ],
                layout=w.Layout(align_items="center"),
            ),
            self.status,
            self.detail_area,
        ]
        self._update_buttons()

    # -- queries --------------------------------------------------------------------------
    def _load(
        self,
        page: int,
        *,
        filter_string: str | None = None,
        order_by: list[str] | None = None,
        reset: bool = False,
        keep_total: bool = False,
    ) -> None:
        """Fetch ``page`` of the (possibly new) query; state changes only if it succeeds."""
        filter_string = self.filter_string if filter_string is None else filter_string
        order_by = self.order_by if order_by is None else order_by
        tokens = [None] if reset else self._tokens[:page]
        found = self.client.search_runs(
            self.experiment_ids,
            filter_string,
            max_results=self.page_size,
            order_by=order_by,
            page_token=tokens[page - 1],
        )
        if not found and page > 1:  # runs were deleted under us: the first page instead
            return self._load(1, filter_string=filter_string, order_by=order_by, reset=True)
        self.filter_string, self.order_by, self.page = filter_string, order_by, page
        self.runs = list(found)
        self._tokens = tokens + ([found.token] if found.token else [])
        if not found.token:
            self.total = (page - 1) * self.page_size + len(found)
        elif not (keep_total and self.total is not None and self.total > page * self.page_size):
            self.total = None
        self._render()
        return None

    def _wanted_order(self, key: str, desc: bool) -> list[str] | None:
        try:
            return order_by_for(key, desc)
        except InvalidParameterValue:
            return None

    def _on_sort(self) -> None:
        key, desc = self.grid.sort_key, self.grid.sort_desc
        if self._wanted_order(key, desc) != self.order_by:  # not our own revert
            self.run_action(self._sort, key, desc)

    def _sort(self, key: str, desc: bool) -> None:
        if self._wanted_order(key, desc) == self.order_by:
            return  # a header click changes two traits: the second finds the work done
        self.clear_error()
        try:
            self._load(1, order_by=order_by_for(key, desc), keep_total=True)
        except Exception:
            self._show_sort()  # the header shows the order the rows are in
            raise

    def _show_sort(self) -> None:
        field, _, direction = self.order_by[0].rpartition(" ")
        kind, _, name = field.partition(".")
        key = f"{kind}.{name.strip('`').replace('``', '`')}"
        self.grid.sort_by(key, desc=direction == "DESC")

    @action
    def apply_filter(self) -> None:
        """Run the filter in ``filter_box``; a bad one is shown and the rows stay as they were."""
        self.clear_error()
        self._load(1, filter_string=self.filter_box.value.strip(), reset=True)

    @action
    def refresh(self) -> None:
        """Re-run the current query (picks up runs logged since); the selection is kept."""
        self.clear_error()
        self._load(self.page)

    @action
    def next_page(self) -> None:
        self.clear_error()
        if len(self._tokens) > self.page:
            self._load(self.page + 1, keep_total=True)

    @action
    def prev_page(self) -> None:
        self.clear_error()
        if self.page > 1:
            self._load(self.page - 1, keep_total=True)

    # -- showing ----------------------------------------------------------------------------
    def _chosen(self) -> tuple[list[str], list[str]]:
        params = [v.partition(".")[2] for v in self.column_picker.value if v.startswith("params.")]
        metrics = [
            v.partition(".")[2] for v in self.column_picker.value if v.startswith("metrics.")
        ]
        return params, metrics

    def _update_picker(self) -> None:
        page = {kind: Counter() for kind in self._keys}
        for run in self.runs:
            page["params"].update(run.data.params.keys())
            page["metrics"].update(run.data.metrics.keys())
        chosen = list(self.column_picker.value)
        for kind, counts in page.items():
            self._keys[kind].update(counts)
            if self._columns_auto:
                have = [c for c in chosen if c.startswith(kind + ".")]
                room = DEFAULT_COLUMNS_PER_KIND - len(have)
                new = [f"{kind}.{k}" for k in _most_common(counts)]
                chosen += [c for c in new if c not in have][: max(room, 0)]
        options = [(f"param: {k}", f"params.{k}") for k in sorted(self._keys["params"])]
        options += [(f"metric: {k}", f"metrics.{k}") for k in sorted(self._keys["metrics"])]
        values = [v for _, v in options]
        self._updating_picker = True
        try:
            if values != [v for _, v in self.column_picker.options]:
                self.column_picker.options = options
            ordered = tuple(v for v in values if v in chosen)
            if ordered != self.column_picker.value:
                self.column_picker.value = ordered
        finally:
            self._updating_picker = False

    def _on_columns(self, change: Any) -> None:
        if self._updating_picker:
            return
        self._columns_auto = False
        self.run_action(self._render, False)  # after any query still running

    def _render(self, picker: bool = True) -> None:
        if picker:
            self._update_picker()
        params, metrics = self._chosen()
        columns = [dict(c) for c in FIXED_COLUMNS]
        columns += [{"key": f"params.{k}", "label": k, "title": f"param {k}"} for k in params]
        columns += [
            {"key": f"metrics.{k}", "label": k, "title": f"metric {k}", "align": "right"}
            for k in metrics
        ]
        self.grid.set_data(columns, [run_row(r, params, metrics) for r in self.runs])
        first = (self.page - 1) * self.page_size
        shown = (
            f"runs {first + 1}-{first + len(self.runs)} of {self._total_text()}"
            if self.runs
            else "no runs"
        )
        self.page_label.value = f"Page {self.page} of {self._pages_text()} · {shown}"
        self.prev_button.disabled = self.page <= 1
        self.next_button.disabled = len(self._tokens) <= self.page
        self._update_buttons()

    def _total_text(self) -> str:
        if self.total is not None:
            return str(self.total)
        return f"{(len(self._tokens) - 1) * self.page_size}+"

    def _pages_text(self) -> str:
        if self.total is not None:
            return str(max(1, -(-self.total // self.page_size)))
        return f"{len(self._tokens)}+"

    def _update_buttons(self) -> None:
        n = len(self.grid.selected)
        self.compare_button.disabled = n < 2
        for button in (self.show_button, self.register_button, self.recall_button):
            button.disabled = n != 1

    def __repr__(self) -> str:
        names = ", ".join(repr(e.name) for e in self.experiments)
        total = self._total_text()
        runs = "run" if total == "1" else "runs"
        return f"RunsTable: {total} {runs} in {names} (page {self.page} of {self._pages_text()})"

    # -- run actions ----------------------------------------------------------------------
    def _one_selected(self, what: str) -> str:
        if len(self.grid.selected) != 1:
            raise InvalidParameterValue(f"Select exactly one run to {what}.")
        return self.grid.selected[0]

    def _open(self, title: str, *widgets: w.Widget) -> None:
        for old in self.detail_area.children:
            if isinstance(old, Panel):
                old.close()
        heading = w.HTML(f"<b>{html.escape(title)}</b>")
        self.detail_area.children = [heading, *widgets]

    @action
    def compare(self) -> None:
        """Open a RunComparison of the selected runs in ``detail_area``."""
        self.clear_error()
        ids = list(self.grid.selected)
        if len(ids) < 2:
            raise InvalidParameterValue("Select at least two runs to compare.")
        from jupyter_mltrack.widgets.comparison import RunComparison

        panel = RunComparison(ids, client=self.client, background=self.background)
        self._open(f"Comparison of {len(ids)} runs", panel)

    @action
    def show(self, run_id: str | None = None) -> None:
        """Open a RunDetail of ``run_id`` (default: the selected run) in ``detail_area``."""
        self.clear_error()
        run_id = run_id or self._one_selected("show")
        from jupyter_mltrack.widgets.run_detail import RunDetail

        panel = RunDetail(run_id, client=self.client, background=self.background)
        self._open(f"Run {self._name_of(run_id)}", panel)

    def _on_link(self, change: Any) -> None:
        clicked = change["new"] or {}
        if clicked.get("column") == "attributes.run_name" and clicked.get("row"):
            self.show(clicked["row"])

    def _name_of(self, run_id: str) -> str:
        for run in self.runs:
            if run.info.run_id == run_id:
                return repr(run.info.run_name)
        return run_id

    @action
    def open_register_form(self) -> None:
        """Show the register form for the selected run (its logged models to choose from)."""
        self.clear_error()
        run_id = self._one_selected("register its model")
        paths = model_paths(self.client, run_id)
        if not paths:
            raise InvalidParameterValue(
                f"Run {self._name_of(run_id)} has no logged model (no MLmodel file in its "
                "artifacts); log one with jupyter_mltrack.sklearn.log_model or "
                "jupyter_mltrack.pyfunc.log_model first."
            )
        self._register_run_id = run_id
        self.register_path.options = paths
        self.register_path.value = paths[0]
        self.register_result.value = ""
        self._open(
            f"Register a model of run {self._name_of(run_id)}",
            self.register_name,
            self.register_path,
            self.register_confirm_button,
            self.register_result,
        )

    @action
    def confirm_register(self) -> None:
        """Register the chosen model folder under the name typed in the form."""
        self.clear_error()
        run_id = getattr(self, "_register_run_id", None)
        if run_id is None or not self.register_path.value:
            raise InvalidParameterValue("Open the form with 'Register model…' first.")
        name = self.register_name.value.strip()
        if not name:
            raise InvalidParameterValue("Enter a model name to register the model under.")
        uri = f"runs:/{run_id}/{self.register_path.value}"
        version = _register(self.client, uri, name)
        self.registered_version = version
        text = f"Registered {uri} as model {name!r}, version {version.version}."
        self.register_result.value = f"✓ {html.escape(text)}"
        self.set_status(text)

    @action
    def recall(self) -> None:
        """Show the selected run's ``%%track`` cell to copy (``recall_text``, read-only).

        In a terminal IPython the cell is also put at the next prompt (``set_next_input``). In
        a kernel (JupyterLab) it is not: from a widget callback the payload would ride on the
        reply to the user's next execution and insert the cell wherever that one runs.
        """
        self.clear_error()
        from jupyter_mltrack.notebook.commands import _cell_source

        run_id = self._one_selected("recall its cell")
        run = self.client.get_run(run_id)
        source = _cell_source(self.client, run)
        if source is None:
            raise InvalidParameterValue(
                f"Run {run.info.run_name!r} was not recorded by %%track with its source; "
                "nothing to recall."
            )
        magic = run.data.tags.get("mltrack.cell.magic", "%%track")
        text = f"{magic}\n{source.rstrip()}"
        self.recall_text.value = text
        from IPython import get_ipython

        shell = get_ipython()
        if shell is not None and getattr(shell, "kernel", None) is None:
            shell.set_next_input(text, replace=False)
        self._open(f"Cell of run {run.info.run_name!r} (copy it into a cell)", self.recall_text)
        self.set_status(f"Recalled the cell of run {run.info.run_name!r}.")


def _register(client: Any, model_uri: str, name: str) -> Any:
    """``register_model`` through ``client`` (the fluent one uses the global client)."""
    import os

    from jupyter_mltrack.exceptions import ResourceAlreadyExists
    from jupyter_mltrack.models.uri import resolve_model_uri
    from jupyter_mltrack.store.artifacts import path_to_uri

    resolved = resolve_model_uri(model_uri, client)
    if not os.path.isfile(os.path.join(resolved.local_path, "MLmodel")):
        raise InvalidParameterValue(f"{model_uri} is not a logged model (no MLmodel file in it).")
    try:
        client.create_registered_model(name)
    except ResourceAlreadyExists:
        pass
    return client.create_model_version(
        name, path_to_uri(resolved.local_path), run_id=resolved.run_id
    )
