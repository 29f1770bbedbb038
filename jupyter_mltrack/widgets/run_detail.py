"""``RunDetail``: one run — params, metrics with sparklines, dataset inputs, tags, an artifact
browser with previews of images, JSON and text, and the cell source that made the run.

The metrics table is HTML rather than a ``DataGrid``: the grid shows text only, and each row
carries an inline SVG sparkline (a 64-point ``get_metric_series``, min/max-bucketed in the
store, so its min and max columns are exact even for long histories).
"""

from __future__ import annotations

import codecs
import html
import json
import os
import posixpath
from collections.abc import Sequence
from typing import Any

import ipywidgets as w

from jupyter_mltrack.entities import FileInfo
from jupyter_mltrack.widgets import plots
from jupyter_mltrack.widgets._format import format_duration
from jupyter_mltrack.widgets._panel import Panel
from jupyter_mltrack.widgets.grid import DataGrid

SPARK_POINTS = 64
TEXT_LIMIT = 200 * 1024  # text previews read and show at most this much
IMAGE_LIMIT = 20 * 1024 * 1024  # larger images are not read
TAG_VALUE_LIMIT = 300
HIDDEN_TAGS = frozenset({"mltrack.cell.source"})  # long; shown under "Cell source"
SYSTEM_PREFIXES = ("mlflow.", "mltrack.")
IMAGE_FORMATS = {".png": "png", ".jpg": "jpeg", ".jpeg": "jpeg", ".gif": "gif", ".webp": "webp"}
_BINARY_NAMES = (
    ".pkl .pickle .joblib .skops .npy .npz .pt .pth .h5 .hdf5 .onnx .parquet .feather .arrow "
    ".zip .gz .tgz .bz2 .xz .zst .tar .whl .so .dll .bin .pb .tflite .ckpt .safetensors .db "
    ".sqlite .pdf"
)
BINARY_EXTENSIONS = frozenset(_BINARY_NAMES.split())
TAB_TITLES = ("Params", "Metrics", "Inputs", "Tags", "Artifacts", "Cell source")
COLUMNS_TEXT_LIMIT = 200  # the schema cell of an input
INPUT_COLUMNS = [
    {"key": "name", "label": "dataset"},
    {"key": "digest", "label": "digest"},
    {"key": "context", "label": "context"},
    {"key": "source", "label": "source"},
    {"key": "rows", "label": "rows", "align": "right"},
    {"key": "schema", "label": "columns"},
    {"key": "tags", "label": "tags"},
]
_INDENT = "\u00a0\u00a0\u00a0"  # option labels collapse ordinary spaces


def human_size(size: int | None) -> str:
    """``1536`` -> ``"1.5 KB"``."""
    if size is None:
        return ""
    value = float(size)
    for unit in ("bytes", "KB", "MB", "GB"):
        if value < 1024 or unit == "GB":
            return f"{int(value)} bytes" if unit == "bytes" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{size} bytes"


def tag_order(tags: dict[str, str]) -> list[str]:
    """Tag keys to show: user tags first, then ``mltrack.*`` and ``mlflow.*`` ones; the cell
    source tag is left out (it has its own tab)."""
    keys = [k for k in tags if k not in HIDDEN_TAGS]
    return sorted(keys, key=lambda k: (k.startswith(SYSTEM_PREFIXES), k.startswith("mlflow."), k))


def input_rows(inputs: Sequence[Any]) -> list[dict[str, Any]]:
    """DataGrid rows of a run's dataset inputs (``run.inputs.dataset_inputs``)."""
    from jupyter_mltrack.data.describe import describe_input

    rows = []
    for item in inputs:
        d = describe_input(item)
        schema = d.columns_text()
        if len(schema) > COLUMNS_TEXT_LIMIT:
            schema = schema[: COLUMNS_TEXT_LIMIT - 1] + "…"
        cells = {
            "name": d.name,
            "digest": d.digest,
            "context": d.context,
            "source": f"{d.source_type}: {d.source}" if d.source else d.source_type,
            "rows": d.rows,
            "schema": schema,
            "tags": ", ".join(f"{k}={v}" for k, v in sorted(d.tags.items())),
        }
        rows.append({"id": f"{d.name}@{d.digest}", "cells": cells})
    return rows


def highlight_python(source: str) -> str:
    """``source`` as HTML, coloured with pygments when it is installed (light and dark
    JupyterLab themes each get their own palette), else plain."""
    try:
        from pygments import highlight
        from pygments.formatters import HtmlFormatter
        from pygments.lexers import PythonLexer
    except ImportError:
        return f'<pre class="mltrack-src">{html.escape(source)}</pre>'
    light = _scoped(HtmlFormatter(style="default", nobackground=True), [".mltrack-src"])
    dark = _scoped(HtmlFormatter(style="monokai", nobackground=True), _DARK)
    body = highlight(source, PythonLexer(), HtmlFormatter(cssclass="mltrack-src"))
    return f"<style>{light}\n{dark}</style>{body}"


_DARK = ('body[data-jp-theme-light="false"] .mltrack-src', "body.vscode-dark .mltrack-src")


def _scoped(formatter: Any, selectors: Sequence[str]) -> str:
    """The formatter's token rules under ``selectors`` (it also emits page-wide rules for
    ``pre`` and line numbers, which are dropped)."""
    rules = []
    for line in formatter.get_style_defs(".mltrack-src").splitlines():
        if line.startswith(".mltrack-src "):
            head, _, body = line.partition("{")
            token = head[len(".mltrack-src") :].rstrip()
            rules.append(", ".join(s + token for s in selectors) + " {" + body)
    return "\n".join(rules)


def _pre(text: str) -> str:
    return (
        '<pre class="mltrack-preview-text" style="max-height: 32em; overflow: auto; '
        f'white-space: pre-wrap; margin: 0">{html.escape(text, quote=False)}</pre>'
    )


class RunDetail(Panel):
    """Everything about one run.

    Parameters
    ----------
    run_id : str (or Run)
        The run; an unknown id raises ``ResourceDoesNotExist`` from the constructor.
    client, tracking_uri, background
        See ``Panel``.

    Attributes
    ----------
    params_grid, tags_grid : DataGrid
        Params; tags with user tags first and ``mltrack.*``/``mlflow.*`` ones after (muted).
    inputs_grid : DataGrid
        Dataset inputs: name, digest, context, source type and location, rows, schema columns
        and the other input tags.
    metrics_grid : HTML
        Latest value, step range, min, max and a sparkline per metric.
    artifact_tree, preview
        A Select of artifact paths and a VBox showing the chosen file.
    source_view : HTML
        The ``%%track`` cell source, highlighted.
    tabs
        The Tab holding all of it.

    Notes
    -----
    ``artifact_tree`` is a ``Select`` of artifact paths: choosing a folder opens or closes it
    (its children are listed on demand), choosing a file previews it in ``preview``;
    ``open_artifact(path)`` does the same from code, opening the folders on the way.
    """

    def __init__(
        self,
        run_id: Any,
        client: Any = None,
        tracking_uri: str | None = None,
        background: bool = True,
        **kwargs: Any,
    ) -> None:
        super().__init__(client, tracking_uri, background, **kwargs)
        self.run_id = str(getattr(getattr(run_id, "info", None), "run_id", run_id))
        self.run = self.client.get_run(self.run_id)  # unknown id: ResourceDoesNotExist
        self._listings: dict[str, list[FileInfo]] = {}
        self._infos: dict[str, FileInfo] = {}
        self._expanded: set[str] = set()
        self._quiet = False
        data = self.run.data
        self.header = w.HTML(self._header_html())
        self.params_grid = DataGrid(selection_mode="none", empty_text="No params logged")
        self.params_grid.set_data(
            [{"key": "name", "label": "param"}, {"key": "value", "label": "value"}],
            [{"id": k, "cells": {"name": k, "value": v}} for k, v in sorted(data.params.items())],
        )
        self.metrics_grid = w.HTML(self._metrics_html({}, loaded=False))
        self.inputs_grid = DataGrid(selection_mode="none", empty_text="No dataset inputs")
        self.inputs_grid.set_data(INPUT_COLUMNS, input_rows(self.run.inputs.dataset_inputs))
        self.tags_grid = DataGrid(selection_mode="none", empty_text="No tags")
        self.tags_grid.set_data(
            [{"key": "name", "label": "tag"}, {"key": "value", "label": "value"}],
            [self._tag_row(k, data.tags[k]) for k in tag_order(data.tags)],
        )
        self.artifact_tree = w.Select(options=[], rows=14, layout=w.Layout(width="34%"))
        self.preview = w.VBox(
            [w.HTML(plots.note_html("Choose an artifact to preview it."))],
            layout=w.Layout(width="66%", overflow="auto"),
        )
        self.source_view = w.HTML(plots.note_html("Loading…"))
        self.tabs = w.Tab(
            children=[
                self.params_grid,
                self.metrics_grid,
                self.inputs_grid,
                self.tags_grid,
                w.HBox([self.artifact_tree, self.preview]),
                self.source_view,
            ]
        )
        counts = (
            len(data.params),
            len(data.metrics),
            len(self.inputs_grid.rows),
            len(self.tags_grid.rows),
            None,
            None,
        )
        for index, (title, count) in enumerate(zip(TAB_TITLES, counts)):
            self.tabs.set_title(index, title if count is None else f"{title} ({count})")
        self.artifact_tree.observe(self._tree_changed, names="value")
        self.children = [self.header, self.error_box, self.status, self.tabs]
        self.set_status("Loading sparklines and artifacts…")
        for load in (self._load_artifacts, self._load_source, self._load_sparklines):
            self.run_action(load)
        self.run_action(self.set_status, "")

    def __repr__(self) -> str:
        data = self.run.data
        inputs = len(self.run.inputs.dataset_inputs)
        return (
            f"RunDetail: run {self.run.info.run_name!r} ({self.run.info.status}), "
            f"{len(data.params)} params, {len(data.metrics)} metrics"
            + (f", {inputs} inputs" if inputs else "")
        )

    # -- header, tags, metrics ------------------------------------------------------------
    def _header_html(self) -> str:
        info = self.run.info
        parts = [f"<b>{html.escape(info.run_name or info.run_id)}</b>", html.escape(info.status)]
        duration = format_duration(info.start_time, info.end_time)
        if duration:
            parts.append(duration)
        parts.append(f'<code style="color:#8c8c8c">{html.escape(info.run_id)}</code>')
        return " · ".join(parts)

    @staticmethod
    def _tag_row(key: str, value: str) -> dict[str, Any]:
        shown = value if len(value) <= TAG_VALUE_LIMIT else value[: TAG_VALUE_LIMIT - 1] + "…"
        system = "mltrack-muted" if key.startswith(SYSTEM_PREFIXES) else ""
        return {"id": key, "cells": {"name": key, "value": shown}, "classes": {"name": system}}

    def _metrics_html(self, series: dict[str, Any], loaded: bool = True) -> str:
        """The metrics table; ``series`` (key -> MetricSeries) fills steps, min, max, trend
        (shown as "…" until ``loaded``)."""
        metrics = self.run.data.metrics
        if not metrics:
            return plots.note_html("This run logged no metrics.")
        head = "".join(
            f"<th>{h}</th>" for h in ("metric", "latest", "steps", "min", "max", "trend")
        )
        rows = []
        for key in sorted(metrics):
            s = series.get(key)
            if s is None or not s.x:
                steps = low = high = spark = "" if loaded else "…"
            else:
                steps = f"{int(s.x[0])}" if len(s.x) == 1 else f"{int(s.x[0])} to {int(s.x[-1])}"
                low, high = f"{min(s.values):.6g}", f"{max(s.values):.6g}"
                spark = plots.sparkline_svg(s.values) or "single value"
            rows.append(
                f'<tr data-metric="{html.escape(key)}"><td>{html.escape(key)}</td>'
                f'<td class="num">{metrics[key]:.6g}</td><td class="num">{steps}</td>'
                f'<td class="num">{low}</td><td class="num">{high}</td>'
                f'<td class="mltrack-trend">{spark}</td></tr>'
            )
        style = (
            "<style>table.mltrack-metrics{border-collapse:collapse;font-size:12px}"
            "table.mltrack-metrics th,table.mltrack-metrics td{padding:2px 10px;"
            "text-align:left;vertical-align:middle}table.mltrack-metrics td.num"
            "{text-align:right;font-variant-numeric:tabular-nums}"
            "table.mltrack-metrics th{color:#8c8c8c;font-weight:600}</style>"
        )
        return (
            f'{style}<table class="mltrack-metrics"><thead><tr>{head}</tr></thead>'
            f"<tbody>{''.join(rows)}</tbody></table>"
        )

    def _load_sparklines(self) -> None:
        series = {}
        for key in self.run.data.metrics:
            found = self.client.get_metric_series([self.run_id], key, max_points=SPARK_POINTS)
            if self.run_id in found:
                series[key] = found[self.run_id]
        self.metrics_grid.value = self._metrics_html(series)

    # -- cell source ----------------------------------------------------------------------
    def _load_source(self) -> None:
        from jupyter_mltrack.notebook.commands import _cell_source

        source = _cell_source(self.client, self.run)
        if source is None:
            self.source_view.value = plots.note_html(
                "No cell source: only runs made by a <code>%%track</code> cell keep the code "
                "that produced them."
            )
            return
        tags = self.run.data.tags
        about = []
        if tags.get("mltrack.cell.magic"):
            about.append(f"<code>{html.escape(tags['mltrack.cell.magic'])}</code>")
        if tags.get("mltrack.notebook.path"):
            about.append(f"in {html.escape(tags['mltrack.notebook.path'])}")
        if tags.get("mltrack.cell.execution_count"):
            about.append(f"execution [{html.escape(tags['mltrack.cell.execution_count'])}]")
        self.source_view.value = (
            plots.note_html(" ".join(about)) if about else ""
        ) + highlight_python(source)

    # -- artifacts ------------------------------------------------------------------------
    def _list(self, path: str) -> list[FileInfo]:
        if path not in self._listings:
            infos = self.client.list_artifacts(self.run_id, path or None)  # folders first
            self._listings[path] = infos
            self._infos.update((i.path, i) for i in infos)
        return self._listings[path]

    def _load_artifacts(self) -> None:
        self._listings.clear()
        if not self._list(""):
            self.preview.children = [w.HTML(plots.note_html("This run has no artifacts."))]
        self._show_tree()

    def _tree_options(self, path: str = "", depth: int = 0) -> list[tuple[str, str]]:
        options = []
        for info in self._list(path):
            name = posixpath.basename(info.path)
            if info.is_dir:
                arrow = "▾" if info.path in self._expanded else "▸"
                options.append((f"{_INDENT * depth}{arrow} {name}/", info.path))
                if info.path in self._expanded:
                    options += self._tree_options(info.path, depth + 1)
            else:
                label = f"{_INDENT * depth}\u00a0\u00a0{name} · {human_size(info.file_size)}"
                options.append((label, info.path))
        return options

    def _show_tree(self, value: str | None = None) -> None:
        self._quiet = True
        try:
            self.artifact_tree.options = self._tree_options()
            self.artifact_tree.value = value
        finally:
            self._quiet = False

    def _tree_changed(self, change: dict) -> None:
        if not self._quiet and change["new"] is not None:
            self.run_action(self._open, change["new"])

    def open_artifact(self, path: str) -> None:
        """Open the folders down to ``path`` and preview it (or toggle it, if a folder)."""

        def go() -> None:
            parts = path.strip("/").split("/")
            for i in range(1, len(parts)):
                folder = "/".join(parts[:i])
                self._list(posixpath.dirname(folder))
                self._expanded.add(folder)
            self._list(posixpath.dirname(path.strip("/")))
            self._open(path.strip("/"))

        self.run_action(go)

    def _open(self, path: str) -> None:
        info = self._infos.get(path)
        if info is None:
            self.show_error(f"No artifact {path!r} in run {self.run.info.run_name!r}.")
            return
        self.clear_error()
        if info.is_dir:
            self._expanded.symmetric_difference_update({path})
            count = len(self._list(path))
            # nothing stays selected, so choosing the folder again closes it
            self._show_tree(None)
            self.preview.children = [
                w.HTML(
                    plots.note_html(f"Folder <code>{html.escape(path)}</code>: {count} item(s).")
                )
            ]
            return
        self._show_tree(path)
        self.preview.children = self._preview(info)

    def _read(self, path: str, limit: int) -> bytes:
        return self.client.read_artifact(self.run_id, path, max_bytes=limit)

    def _preview(self, info: FileInfo) -> list[w.Widget]:
        """Widgets showing the file: an image, pretty JSON, text (capped) or its size."""
        path, size = info.path, info.file_size or 0
        ext = os.path.splitext(path)[1].lower()
        title = w.HTML(f"<code>{html.escape(path)}</code> · {human_size(size)}")
        if ext in IMAGE_FORMATS:
            # the listed size decides; the capped read also stops a file that grew since
            data = None if size > IMAGE_LIMIT else self._read(path, IMAGE_LIMIT + 1)
            if data is None or len(data) > IMAGE_LIMIT:
                note = f"image larger than {human_size(IMAGE_LIMIT)}: no preview."
                return [title, w.HTML(plots.note_html(note))]
            image = w.Image(
                value=data, format=IMAGE_FORMATS[ext], layout=w.Layout(max_width="100%")
            )
            return [title, image]
        if ext in BINARY_EXTENSIONS:
            return [title, w.HTML(plots.note_html(f"binary, {size:,} bytes: no preview."))]
        data = self._read(path, TEXT_LIMIT + 1)  # any size: only the start is read
        cut = len(data) > TEXT_LIMIT
        text = _as_text(data[:TEXT_LIMIT], final=not cut)
        if text is None:
            return [title, w.HTML(plots.note_html(f"binary, {size:,} bytes: no preview."))]
        if ext in (".json", ".ipynb") and not cut:
            try:
                pretty = json.dumps(json.loads(text), indent=2, ensure_ascii=False)
            except ValueError:
                pass
            else:
                return [title, w.HTML(_pre(pretty[:TEXT_LIMIT]))]
        widgets: list[w.Widget] = [title]
        if cut:
            widgets.append(
                w.HTML(
                    plots.note_html(
                        f"Showing the first {human_size(TEXT_LIMIT)} of {size:,} bytes."
                    )
                )
            )
        widgets.append(w.HTML(_pre(text)))
        return widgets


def _as_text(data: bytes, final: bool) -> str | None:
    """``data`` decoded as UTF-8, or None if it looks binary. ``final=False`` tolerates a
    character cut at the end (the preview stopped in the middle of it)."""
    if b"\x00" in data:
        return None
    try:
        return codecs.getincrementaldecoder("utf-8")().decode(data, final=final)
    except UnicodeDecodeError:
        return None
