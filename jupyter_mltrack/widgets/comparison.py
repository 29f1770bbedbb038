"""``RunComparison``: several runs side by side — params, metrics, curves, a scatter, parallel
coordinates, their figures and a diff of their cell sources.

Everything slow (metric histories, plots, artifacts) runs as a panel action, off the kernel's
message loop. Each control redraws only what depends on it: the smoothing slider and the log
scale redraw the curves from cached series; the metric and the x axis fetch a series (once per
metric and axis) with ``Client.get_metric_series``, which cuts long histories to about
``CURVE_POINTS`` min/max points inside the database.
"""

from __future__ import annotations

import html
import os
import re
import time
from collections.abc import Callable, Sequence
from typing import Any

import ipywidgets as w

from jupyter_mltrack.exceptions import InvalidParameterValue
from jupyter_mltrack.widgets import plots
from jupyter_mltrack.widgets._panel import Panel
from jupyter_mltrack.widgets.grid import DataGrid

CURVE_POINTS = 1000  # about one point per pixel of the curves image
PARALLEL_MAX_AXES = 12
IMAGE_FORMATS = {".png": "png", ".jpg": "jpeg", ".jpeg": "jpeg", ".gif": "gif"}
FIGURE_LIMIT = 20 * 1024 * 1024  # larger figures are not read
TAB_TITLES = ("Params & metrics", "Curves", "Scatter", "Parallel", "Figures", "Cell diff")

# Name parts of metrics where lower is better; every other metric is "higher is better".
_LOWER_NAMES = (
    "loss error errors err mae mse rmse msle rmsle mape smape wape nll logloss perplexity ppl "
    "wer cer ter regret cost hinge brier deviance xent crossentropy fpr fnr eer latency"
)
_LOWER_WORDS = frozenset(_LOWER_NAMES.split())


def lower_is_better(key: str) -> bool:
    """The default best direction of a metric, from its name.

    Lower is better when a word of the name (split at ``_ - . /``, spaces and camelCase) is a
    loss or an error (``loss``, ``error``, ``mae``, ``mse``, ``rmse``, ``mape``, ``nll``,
    ``perplexity``, ``wer``, ...) or ends in ``loss``/``error`` (``val_loss``, ``logloss``);
    a ``neg`` word turns it back (scikit-learn's ``neg_mean_squared_error``). Higher is better
    otherwise (accuracy, f1, auc, r2, ...).
    """
    spaced = re.sub(r"([a-z0-9])([A-Z])", r"\1 \2", key).lower()
    words = [p for p in re.split(r"[^a-z0-9]+", spaced) if p]
    lower = any(p in _LOWER_WORDS or p.endswith(("loss", "error")) for p in words)
    return lower and "neg" not in words


def best_runs(values: dict[str, float | None], lower: bool) -> set[str]:
    """Ids of the runs holding the best value (ties share it); runs without a value never win."""
    present = {k: v for k, v in values.items() if v is not None and v == v}
    if not present:
        return set()
    target = min(present.values()) if lower else max(present.values())
    return {k for k, v in present.items() if v == target}


class RunComparison(Panel):
    """Compare two or more runs.

    Parameters
    ----------
    run_ids : sequence of str (or Run)
        The runs, in display order (duplicates are dropped). Fewer than two distinct runs
        raise ``InvalidParameterValue``; an unknown id raises ``ResourceDoesNotExist`` — a
        comparison with a missing side would only mislead.
    client, tracking_uri, background
        See ``Panel``.

    Attributes
    ----------
    params_grid, metrics_grid : DataGrid
        A row per param / metric, a column per run; differing params ``mltrack-differs``.
    params_only_differing, best_metric, best_direction
        Table controls (Checkbox, Dropdown, ToggleButtons "lower"/"higher").
    metric_picker, x_axis, smoothing, log_scale, curves, curves_note
        The curves: Dropdown, ToggleButtons "step"/"time" (time since each run's first
        point), FloatSlider 0..0.99 (EMA), Checkbox, the Image, and an explanation line.
    scatter_param, scatter_metric, scatter
        Param (x) against the metric's latest value (y), one dot per run.
    parallel_metrics, parallel
        Parallel coordinates over the params that differ and the chosen metrics.
    figures_box
        The runs' ``figures/*`` images in a grid: a column per run, a row per file name.
    diff_left, diff_right, source_diff
        Two runs and the side-by-side diff of their ``%%track`` cell sources.
    tabs, build_seconds
        The Tab holding all of it; seconds the last curves build took (fetch + draw).

    Notes
    -----
    Best metric values are marked ``mltrack-best``: lower is better for names that look like
    losses or errors (``lower_is_better``), higher otherwise; flip one metric with
    ``best_metric`` + ``best_direction`` or by clicking its "best" cell. A run keeps one colour
    in the header, the curves, the scatter and the parallel plot.
    """

    def __init__(
        self,
        run_ids: Sequence[Any],
        client: Any = None,
        tracking_uri: str | None = None,
        background: bool = True,
        **kwargs: Any,
    ) -> None:
        super().__init__(client, tracking_uri, background, **kwargs)
        if isinstance(run_ids, str):
            run_ids = [run_ids]
        ids = list(dict.fromkeys(getattr(getattr(r, "info", None), "run_id", r) for r in run_ids))
        if len(ids) < 2:
            raise InvalidParameterValue(
                f"RunComparison needs at least two different runs, got {len(ids)}."
            )
        self.run_ids: list[str] = [str(i) for i in ids]
        self.directions: dict[str, str] = {}  # metric -> "lower" | "higher"
        self._read_runs()  # unknown id: raises here
        self.colors = plots.run_colors(self.run_ids)
        self.names = _labels(self.runs)
        self.build_seconds: float | None = None
        self._series_cache: dict[tuple[str, str], dict[str, Any]] = {}
        self._sources: dict[str, str | None] = {}
        self._generations: dict[str, int] = {}
        self._quiet = False  # set while the panel itself changes a control
        self._build_widgets()
        self._fill_params()
        self._fill_metrics()
        self._wire()
        self.children = [self.header, self.error_box, self.status, self.tabs]
        self.set_status("Loading curves, plots and figures…")
        self._load()

    # -- layout ---------------------------------------------------------------------------
    def _build_widgets(self) -> None:
        names = [(self.names[i], i) for i in self.run_ids]
        metric_options = self.metric_keys
        self.header = w.HTML(
            f"<b>Comparing {len(self.run_ids)} runs:</b> "
            + " ".join(
                f"{plots.swatch(self.colors[i])}{html.escape(self.names[i])}" for i in self.run_ids
            )
        )
        self.params_grid = DataGrid(selection_mode="none", empty_text="No params logged")
        self.params_only_differing = w.Checkbox(False, description="only params that differ")
        self.metrics_grid = DataGrid(selection_mode="none", empty_text="No metrics logged")
        self.best_metric = w.Dropdown(options=metric_options, description="best of")
        self.best_direction = w.ToggleButtons(options=["lower", "higher"])
        if self.metric_keys:
            self.best_direction.value = self.directions[self.best_metric.value]
        self.metric_picker = w.Dropdown(options=metric_options, description="metric")
        self.x_axis = w.ToggleButtons(options=["step", "time"], value="step")
        self.smoothing = w.FloatSlider(
            value=0.0, min=0.0, max=0.99, step=0.01, description="smoothing"
        )
        self.log_scale = w.Checkbox(False, description="log scale")
        self.curves = plots.image_widget()
        self.curves_note = w.HTML(plots.note_html("Loading…"))
        self.curves_legend = w.HTML()
        default_param = (self.differing_params or self.param_keys or [None])[0]
        self.scatter_param = w.Dropdown(
            options=self.param_keys, value=default_param, description="param"
        )
        self.scatter_metric = w.Dropdown(options=metric_options, description="metric")
        self.scatter = plots.image_widget(max_width="750px")
        self.scatter_note = w.HTML()
        self.parallel_metrics = w.SelectMultiple(
            options=metric_options,
            value=tuple(self.metric_keys[:6]),
            description="metrics",
            rows=min(max(len(metric_options), 2), 6),
        )
        self.parallel = plots.image_widget()
        self.parallel_note = w.HTML()
        self.parallel_legend = w.HTML(
            plots.legend_html([self.names[i] for i in self.run_ids], list(self.colors.values()))
        )
        self.figures_box = w.VBox([w.HTML(plots.note_html("Loading figures…"))])
        self.diff_left = w.Dropdown(options=names, value=self.run_ids[0], description="left")
        self.diff_right = w.Dropdown(options=names, value=self.run_ids[1], description="right")
        self.source_diff = w.HTML(plots.note_html("Loading cell sources…"))
        self.tabs = w.Tab(
            children=[
                w.VBox(
                    [
                        w.HTML("<b>Params</b>"),
                        self.params_only_differing,
                        self.params_grid,
                        w.HTML("<b>Metrics</b> (latest value; best marked)"),
                        w.HBox([self.best_metric, self.best_direction]),
                        self.metrics_grid,
                    ]
                ),
                w.VBox(
                    [
                        w.HBox([self.metric_picker, self.x_axis]),
                        w.HBox([self.smoothing, self.log_scale]),
                        self.curves_note,
                        self.curves_legend,
                        self.curves,
                    ]
                ),
                w.VBox(
                    [
                        w.HBox([self.scatter_param, self.scatter_metric]),
                        self.scatter_note,
                        self.scatter,
                    ]
                ),
                w.VBox(
                    [self.parallel_metrics, self.parallel_note, self.parallel_legend, self.parallel]
                ),
                self.figures_box,
                w.VBox([w.HBox([self.diff_left, self.diff_right]), self.source_diff]),
            ]
        )
        for index, title in enumerate(TAB_TITLES):
            self.tabs.set_title(index, title)

    def _wire(self) -> None:
        def on(controls: Sequence[w.Widget], handler: Callable[[], None]) -> None:
            for control in controls:
                control.observe(lambda _: None if self._quiet else handler(), names="value")

        on([self.params_only_differing], lambda: self.run_action(self._fill_params))
        on(
            [self.metric_picker, self.x_axis, self.smoothing, self.log_scale],
            lambda: self._request("curves", self._draw_curves),
        )
        on(
            [self.scatter_param, self.scatter_metric],
            lambda: self._request("scatter", self._draw_scatter),
        )
        on([self.parallel_metrics], lambda: self._request("parallel", self._draw_parallel))
        on([self.diff_left, self.diff_right], lambda: self._request("diff", self._draw_diff))
        self.best_metric.observe(self._best_metric_changed, names="value")
        self.best_direction.observe(self._best_direction_changed, names="value")
        self.metrics_grid.observe(self._metrics_clicked, names="clicked")

    def __repr__(self) -> str:
        return (
            f"RunComparison: {len(self.run_ids)} runs, {len(self.param_keys)} params "
            f"({len(self.differing_params)} differ), {len(self.metric_keys)} metrics"
        )

    # -- actions --------------------------------------------------------------------------
    def _request(self, name: str, draw: Callable[[], None]) -> None:
        """Queue ``draw``; a request superseded before it starts is skipped (slider drags)."""
        generation = self._generations[name] = self._generations.get(name, 0) + 1

        def latest_only() -> None:
            if self._generations[name] == generation:
                draw()

        self.run_action(latest_only)

    def _load(self) -> None:
        self.run_action(self._first_curves)
        for draw in (self._draw_scatter, self._draw_parallel, self._load_figures, self._draw_diff):
            self.run_action(draw)  # each one's failure is shown without stopping the others
        self.run_action(self.set_status, "")

    def _first_curves(self) -> None:
        plots.load_matplotlib()  # once per process; not part of the build time
        started = time.perf_counter()
        if "curves" not in self._generations:  # the user has not chosen yet
            self._pick_step_metric()
        self._draw_curves()
        self.build_seconds = time.perf_counter() - started

    def _read_runs(self) -> None:
        self.runs = [self.client.get_run(i) for i in self.run_ids]
        self.param_keys = sorted({k for r in self.runs for k in r.data.params})
        self.metric_keys = sorted({k for r in self.runs for k in r.data.metrics})
        self.differing_params = [
            k for k in self.param_keys if len({r.data.params.get(k) for r in self.runs}) > 1
        ]
        self.directions = {
            k: self.directions.get(k) or ("lower" if lower_is_better(k) else "higher")
            for k in self.metric_keys
        }

    def refresh(self) -> None:
        """Re-read the runs (values and keys logged since) and redraw everything."""
        self._read_runs()
        self._series_cache.clear()
        self._sources.clear()
        self._quiet = True
        try:
            for control in (self.metric_picker, self.best_metric, self.scatter_metric):
                _set_options(control, self.metric_keys)
            _set_options(self.scatter_param, self.param_keys)
            chosen = [k for k in self.parallel_metrics.value if k in self.metric_keys]
            self.parallel_metrics.options = self.metric_keys
            self.parallel_metrics.value = tuple(chosen)
        finally:
            self._quiet = False
        self._fill_params()
        self._fill_metrics()
        self._load()

    def select_metric(self, key: str) -> None:
        """Plot metric ``key`` (an error in the panel if no run here logged it)."""
        if key not in self.metric_keys:
            self.show_error(f"No run in this comparison logged a metric {key!r}.")
            return
        self.clear_error()
        self.metric_picker.value = key

    # -- params and metrics ---------------------------------------------------------------
    def _run_columns(self) -> list[dict[str, Any]]:
        return [{"key": i, "label": self.names[i], "title": i} for i in self.run_ids]

    def _fill_params(self) -> None:
        keys = self.differing_params if self.params_only_differing.value else self.param_keys
        rows = []
        for key in keys:
            differs = key in self.differing_params
            cells: dict[str, Any] = {"name": key}
            classes = {}
            for run_id, run in zip(self.run_ids, self.runs):
                value = run.data.params.get(key)
                cells[run_id] = "—" if value is None else value
                marks = ["mltrack-differs"] if differs else []
                if value is None:
                    marks.append("mltrack-muted")
                classes[run_id] = " ".join(marks)
            rows.append({"id": key, "cells": cells, "classes": classes})
        self.params_grid.empty_text = (
            "All runs have the same params" if self.param_keys else "No params logged"
        )
        self.params_grid.set_data([{"key": "name", "label": "param"}, *self._run_columns()], rows)

    def _fill_metrics(self) -> None:
        rows = []
        for key in self.metric_keys:
            values = {i: r.data.metrics.get(key) for i, r in zip(self.run_ids, self.runs)}
            direction = self.directions[key]
            best = best_runs(values, direction == "lower")
            cells: dict[str, Any] = {"name": key, "best": direction}
            classes = {}
            for run_id, value in values.items():
                cells[run_id] = "—" if value is None else value
                classes[run_id] = (
                    "mltrack-best" if run_id in best else "mltrack-muted" if value is None else ""
                )
            rows.append({"id": key, "cells": cells, "classes": classes, "links": ["best"]})
        columns = [
            {"key": "name", "label": "metric"},
            {"key": "best", "label": "best", "title": "Which way is better; click to flip"},
            *self._run_columns(),
        ]
        self.metrics_grid.set_data(columns, rows)

    def _best_metric_changed(self, change: dict) -> None:
        if change["new"] is not None:
            self.best_direction.value = self.directions[change["new"]]

    def _best_direction_changed(self, change: dict) -> None:
        key = self.best_metric.value
        if key is not None and self.directions.get(key) != change["new"]:
            self.directions[key] = change["new"]
            self.run_action(self._fill_metrics)

    def _metrics_clicked(self, change: dict) -> None:
        click = change["new"] or {}
        if click.get("column") == "best" and click.get("row") in self.directions:
            key = click["row"]
            flipped = "higher" if self.directions[key] == "lower" else "lower"
            self.best_metric.value = key
            self.best_direction.value = flipped

    # -- curves ---------------------------------------------------------------------------
    def _series(self, key: str, axis: str) -> dict[str, Any]:
        cache_key = (key, axis)
        if cache_key not in self._series_cache:
            self._series_cache[cache_key] = self.client.get_metric_series(
                self.run_ids,
                key,
                max_points=CURVE_POINTS,
                x_axis="step" if axis == "step" else "timestamp",
            )
        return self._series_cache[cache_key]

    def _pick_step_metric(self) -> None:
        """Start on a metric with a history (a loss if there is one), not a single value."""
        ordered = sorted(self.metric_keys, key=lambda k: not lower_is_better(k))
        for key in ordered:
            if any(len(s.x) > 1 for s in self._series(key, self.x_axis.value).values()):
                self._quiet = True  # the caller draws next
                try:
                    self.metric_picker.value = key
                finally:
                    self._quiet = False
                return

    def _draw_curves(self) -> None:
        key = self.metric_picker.value
        if key is None:
            self._curves_message("These runs logged no metrics, so there are no curves.")
            return
        started = time.perf_counter()
        axis = self.x_axis.value
        series = self._series(key, axis)
        present = [i for i in self.run_ids if i in series and series[i].x]
        if not present:
            self._curves_message(f"No run in this comparison logged {_quoted(key)} as a number.")
            return
        if not any(len(series[i].x) > 1 for i in present):
            self._curves_message(
                f"{_quoted(key)} has a single value per run (no history over steps), "
                "so there is no curve: see its values under “Params & metrics”. "
                "Metrics logged at several steps are drawn here."
            )
            return
        lines, unit, divisor = [], "", 1.0
        if axis == "time":
            span = max((series[i].x[-1] - series[i].x[0]) / 1000 for i in present)
            divisor, unit = plots.elapsed_unit(span)
        for run_id in present:
            s = series[run_id]
            x = s.x if axis == "step" else [(t - s.x[0]) / 1000 / divisor for t in s.x]
            lines.append(plots.Line(self.names[run_id], self.colors[run_id], x, s.values))
        xlabel = "step" if axis == "step" else f"time since the run's first point ({unit})"
        self.curves.value = plots.curves_png(
            lines, xlabel, key, self.smoothing.value, self.log_scale.value
        )
        self.curves.layout.display = None
        self.curves_legend.value = plots.legend_html(
            [self.names[i] for i in present], [self.colors[i] for i in present]
        )
        notes = []
        missing = [self.names[i] for i in self.run_ids if i not in present]
        if missing:
            notes.append(f"Not logged by: {html.escape(', '.join(missing))}.")
        if any(series[i].downsampled for i in present):
            notes.append(
                f"Long histories are drawn as min/max envelopes of about {CURVE_POINTS} points."
            )
        self.curves_note.value = plots.note_html(" ".join(notes)) if notes else ""
        self.build_seconds = time.perf_counter() - started

    def _curves_message(self, text: str) -> None:
        self.curves_note.value = plots.note_html(text)
        self.curves_legend.value = ""
        self.curves.layout.display = "none"

    # -- scatter and parallel coordinates -------------------------------------------------
    def _draw_scatter(self) -> None:
        param, metric = self.scatter_param.value, self.scatter_metric.value
        if param is None or metric is None:
            self.scatter_note.value = plots.note_html(
                "The scatter needs a param and a metric; these runs have "
                f"{len(self.param_keys)} param(s) and {len(self.metric_keys)} metric(s)."
            )
            self.scatter.layout.display = "none"
            return
        pairs = [
            (i, r.data.params.get(param), r.data.metrics.get(metric))
            for i, r in zip(self.run_ids, self.runs)
        ]
        shown = [(i, p, m) for i, p, m in pairs if p is not None and m is not None]
        left_out = [self.names[i] for i, p, m in pairs if p is None or m is None]
        if not shown:
            self.scatter_note.value = plots.note_html(
                f"No run has both {_quoted(param)} and {_quoted(metric)}."
            )
            self.scatter.layout.display = "none"
            return
        numeric = all(plots.as_number(p) is not None for _, p, _ in shown)
        categories = None if numeric else sorted({p for _, p, _ in shown})
        points = [
            plots.Point(
                self.names[i],
                self.colors[i],
                plots.as_number(p) if numeric else categories.index(p),  # type: ignore[union-attr,arg-type]
                m,
            )
            for i, p, m in shown
        ]
        self.scatter.value = plots.scatter_png(points, param, metric, categories)
        self.scatter.layout.display = None
        self.scatter_note.value = (
            plots.note_html(
                f"Left out (no {_quoted(param)} or {_quoted(metric)}): "
                f"{html.escape(', '.join(left_out))}."
            )
            if left_out
            else ""
        )

    def _draw_parallel(self) -> None:
        params = (self.differing_params or self.param_keys)[:PARALLEL_MAX_AXES]
        metrics = list(self.parallel_metrics.value)
        if not params and not metrics:
            self.parallel_note.value = plots.note_html(
                "Nothing to draw: these runs have no params, and no metric is selected."
            )
            self.parallel.layout.display = "none"
            return
        axes = [plots.ParallelAxis(k, [r.data.params.get(k) for r in self.runs]) for k in params]
        axes += [plots.ParallelAxis(k, [r.data.metrics.get(k) for r in self.runs]) for k in metrics]
        labels = [self.names[i] for i in self.run_ids]
        colors = [self.colors[i] for i in self.run_ids]
        self.parallel.value = plots.parallel_png(axes, labels, colors)
        self.parallel.layout.display = None
        hidden = len(self.differing_params or self.param_keys) - len(params)
        self.parallel_note.value = plots.note_html(
            "Each axis spans its own range (text values are evenly spaced); "
            + ("params that differ between the runs" if self.differing_params else "all params")
            + " and the selected metrics."
            + (f" {hidden} more params not shown." if hidden > 0 else "")
        )

    # -- figures --------------------------------------------------------------------------
    def _run_figures(self, run_id: str) -> dict[str, tuple[bytes, str] | None]:
        """The run's ``figures/*`` images by file name; None for one too large to show."""
        found: dict[str, tuple[bytes, str] | None] = {}
        for info in self.client.list_artifacts(run_id, "figures"):
            name = os.path.basename(info.path)
            fmt = IMAGE_FORMATS.get(os.path.splitext(name)[1].lower())
            if info.is_dir or fmt is None:
                continue
            if (info.file_size or 0) > FIGURE_LIMIT:  # the listed size: not read at all
                found[name] = None
                continue
            data = self.client.read_artifact(run_id, info.path, max_bytes=FIGURE_LIMIT + 1)
            found[name] = (data, fmt) if len(data) <= FIGURE_LIMIT else None  # it grew since
        return found

    def _load_figures(self) -> None:
        figures = {i: self._run_figures(i) for i in self.run_ids}
        names = sorted({n for found in figures.values() for n in found})
        if not names:
            self.figures_box.children = [
                w.HTML(
                    plots.note_html(
                        "None of these runs saved figures (artifacts figures/*.png). "
                        "<code>%%track</code> saves the matplotlib figures a cell draws; "
                        "<code>mlflow.log_figure(fig, 'figures/name.png')</code> saves one "
                        "explicitly."
                    )
                )
            ]
            return
        count = len(self.run_ids)
        cells: list[w.Widget] = [
            w.HTML(f"{plots.swatch(self.colors[i])}<b>{html.escape(self.names[i])}</b>")
            for i in self.run_ids
        ]
        for name in names:
            cells.append(
                w.HTML(
                    f"<code>{html.escape(name)}</code>",
                    # grid_area, not grid_column: ipywidgets clears grid-column when grid-area is unset
                    layout=w.Layout(grid_area=f"auto / 1 / auto / span {count}"),
                )
            )
            for run_id in self.run_ids:
                figure = figures[run_id].get(name)
                if figure is not None:
                    image = w.Image(
                        value=figure[0], format=figure[1], layout=w.Layout(width="100%")
                    )
                    image.add_class("mltrack-figure")
                    cells.append(image)
                elif name in figures[run_id]:
                    note = f"{html.escape(name)} is over {FIGURE_LIMIT:,} bytes: not shown"
                    cells.append(w.HTML(plots.note_html(note)))
                else:
                    cells.append(w.HTML(plots.note_html(f"no {html.escape(name)}")))
        self.figures_box.children = [
            w.GridBox(
                cells,
                layout=w.Layout(
                    grid_template_columns=f"repeat({count}, minmax(220px, 1fr))",
                    grid_gap="6px 12px",
                    overflow="auto",
                ),
            )
        ]

    # -- cell source diff -----------------------------------------------------------------
    def _source(self, run_id: str) -> str | None:
        if run_id not in self._sources:
            from jupyter_mltrack.notebook.commands import _cell_source

            run = self.runs[self.run_ids.index(run_id)]
            self._sources[run_id] = _cell_source(self.client, run)
        return self._sources[run_id]

    def _draw_diff(self) -> None:
        left, right = self.diff_left.value, self.diff_right.value
        if left == right:
            self.source_diff.value = plots.note_html(
                "Pick two different runs to compare their cells."
            )
            return
        sources = {i: self._source(i) for i in (left, right)}
        missing = [self.names[i] for i in (left, right) if sources[i] is None]
        if missing:
            self.source_diff.value = plots.note_html(
                f"No cell source recorded for {html.escape(' and '.join(missing))}: only runs "
                "made by a <code>%%track</code> cell keep their source."
            )
            return
        same = sources[left] == sources[right]
        table = plots.diff_html(sources[left], sources[right], self.names[left], self.names[right])  # type: ignore[arg-type]
        self.source_diff.value = (
            plots.note_html("The two cells are identical.") if same else ""
        ) + table


def _set_options(dropdown: w.Dropdown, options: list[str]) -> None:
    """New options, keeping the current choice when it is still offered."""
    value = dropdown.value
    dropdown.options = options
    if value in options:
        dropdown.value = value


def _quoted(key: str) -> str:
    return html.escape(repr(key))


def _labels(runs: Sequence[Any]) -> dict[str, str]:
    """Run names for legends and headers; a name shared by several runs gets its id prefix."""
    names = [r.info.run_name or r.info.run_id[:8] for r in runs]
    return {
        r.info.run_id: name if names.count(name) == 1 else f"{name} ({r.info.run_id[:6]})"
        for r, name in zip(runs, names)
    }
