"""What the panels draw: metric curves, a param-vs-metric scatter, parallel coordinates (PNG),
and small HTML pieces — sparklines, colour legends, a side-by-side diff, notes.

Panels draw on a worker thread, so everything here uses a standalone
``matplotlib.figure.Figure`` with the Agg canvas and never pyplot (whose global state is not
thread-safe and belongs to the user). Figures come back as PNG bytes with a transparent
background and mid-grey axes and text, which stay readable on JupyterLab's light and dark
themes. A run keeps its colour in every plot of a panel: ``run_colors`` assigns them once.
"""

from __future__ import annotations

import difflib
import html
import io
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import ipywidgets as w

GREY = "#8c8c8c"  # axes, ticks and labels: enough contrast on white and on JupyterLab's dark
GRID_ALPHA = 0.25
DPI = 100

# Mid-tone colours that read on light and dark backgrounds; neighbours differ in hue.
PALETTE = (
    "#4c78a8",
    "#f58518",
    "#54a24b",
    "#e45756",
    "#b279a2",
    "#2fb5b0",
    "#d4a72c",
    "#ff7fa8",
    "#9d755d",
    "#6f8cff",
    "#8fbf3f",
    "#c44e9c",
    "#3d9bd6",
    "#e07b39",
    "#5cb88c",
    "#a05fd6",
    "#c9a227",
    "#d46a6a",
    "#4fb3c8",
    "#a8a84a",
)


def run_colors(run_ids: Sequence[str]) -> dict[str, str]:
    """A colour per run, by position (the palette repeats after 20 runs)."""
    return {run_id: PALETTE[i % len(PALETTE)] for i, run_id in enumerate(run_ids)}


@dataclass
class Line:
    """One run's curve: ``x`` and ``y`` of equal length."""

    label: str
    color: str
    x: Sequence[float]
    y: Sequence[float]


@dataclass
class Point:
    """One run in a scatter plot; ``x`` is a category index when the axis is categorical."""

    label: str
    color: str
    x: float
    y: float


@dataclass
class ParallelAxis:
    """One vertical axis of a parallel-coordinates plot: a value (or None) per line."""

    name: str
    values: Sequence[Any]


# -- pure helpers -------------------------------------------------------------------------------
def ema(values: Sequence[float], weight: float) -> list[float]:
    """Exponential moving average with bias correction (TensorBoard's smoothing).

    ``weight`` in [0, 1): 0 returns the values unchanged. The correction keeps the start of
    the curve at the data instead of pulling it towards 0.
    """
    if weight <= 0 or len(values) < 2:
        return [float(v) for v in values]
    weight = min(float(weight), 0.999)
    out = []
    last = 0.0
    correction = 1.0
    for value in values:
        last = last * weight + (1 - weight) * value
        correction *= weight
        out.append(last / (1 - correction))
    return out


def as_number(value: Any) -> float | None:
    """``value`` as a finite float, or None (params are stored as text)."""
    if value is None or isinstance(value, bool):
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def elapsed_unit(span_seconds: float) -> tuple[float, str]:
    """(divisor, unit) to show an elapsed time span in readable numbers."""
    if span_seconds >= 2 * 3600:
        return 3600.0, "h"
    if span_seconds >= 120:
        return 60.0, "min"
    return 1.0, "s"


def load_matplotlib() -> None:
    """Import matplotlib's figure and Agg canvas now (about 0.4 s once per process), so a
    timed plot measures drawing, not the import."""
    import matplotlib.backends.backend_agg
    import matplotlib.figure  # noqa: F401


# -- figures ------------------------------------------------------------------------------------
def new_figure(width: float, height: float) -> tuple[Any, Any]:
    """A transparent (figure, axes) pair on an Agg canvas, styled for both themes."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(width, height), dpi=DPI)
    FigureCanvasAgg(figure)
    figure.patch.set_alpha(0)
    axes = figure.add_subplot()
    style_axes(axes)
    return figure, axes


def style_axes(axes: Any) -> None:
    """Mid-grey spines, ticks, labels and grid on a transparent background."""
    axes.set_facecolor("none")
    for side, spine in axes.spines.items():
        spine.set_color(GREY)
        spine.set_visible(side in ("left", "bottom"))
    axes.tick_params(colors=GREY, labelcolor=GREY, labelsize=8)
    axes.xaxis.label.set_color(GREY)
    axes.yaxis.label.set_color(GREY)
    axes.title.set_color(GREY)
    axes.grid(True, color=GREY, alpha=GRID_ALPHA, linewidth=0.6)


def figure_png(figure: Any) -> bytes:
    """Render ``figure`` to PNG bytes (transparent background)."""
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=DPI, transparent=True)
    return buffer.getvalue()


def curves_png(
    lines: Sequence[Line],
    xlabel: str,
    ylabel: str,
    smoothing: float = 0.0,
    log_scale: bool = False,
    size: tuple[float, float] = (9.0, 4.2),
) -> bytes:
    """Overlaid curves as PNG bytes.

    With ``smoothing`` > 0 each raw curve is drawn faint and its EMA (see ``ema``) on top. On a
    log scale values <= 0 are left out (masked) rather than failing.
    """
    figure, axes = new_figure(*size)
    for line in lines:
        few = len(line.x) <= 30
        marker = "o" if few else None
        if smoothing > 0 and len(line.y) > 1:
            axes.plot(line.x, line.y, color=line.color, alpha=0.25, linewidth=0.8)
            axes.plot(
                line.x,
                ema(line.y, smoothing),
                color=line.color,
                linewidth=1.4,
                marker=marker,
                markersize=3,
                label=line.label,
            )
        else:
            axes.plot(
                line.x,
                line.y,
                color=line.color,
                linewidth=1.2,
                marker=marker,
                markersize=3,
                label=line.label,
            )
    if log_scale:
        axes.set_yscale("log", nonpositive="mask")
    axes.set_xlabel(xlabel, fontsize=9)
    axes.set_ylabel(ylabel, fontsize=9)
    figure.subplots_adjust(left=0.08, right=0.98, top=0.96, bottom=0.13)
    return figure_png(figure)


def scatter_png(
    points: Sequence[Point],
    xlabel: str,
    ylabel: str,
    categories: Sequence[str] | None = None,
    size: tuple[float, float] = (7.5, 4.5),
) -> bytes:
    """One dot per run, labelled with the run name; ``categories`` names the x ticks when the
    x axis is categorical (``Point.x`` is then an index into it)."""
    figure, axes = new_figure(*size)
    for point in points:
        axes.scatter([point.x], [point.y], color=point.color, s=36, zorder=3, label=point.label)
        axes.annotate(
            _short(point.label, 18),
            (point.x, point.y),
            xytext=(4, 4),
            textcoords="offset points",
            fontsize=7,
            color=GREY,
        )
    if categories is not None:
        axes.set_xticks(range(len(categories)))
        rotate = sum(len(c) for c in categories) > 60
        axes.set_xticklabels(
            [_short(c, 16) for c in categories],
            rotation=30 if rotate else 0,
            ha="right" if rotate else "center",
        )
        axes.set_xlim(-0.5, len(categories) - 0.5)
    else:
        axes.margins(x=0.08)
    axes.set_xlabel(xlabel, fontsize=9)
    axes.set_ylabel(ylabel, fontsize=9)
    rotated = categories is not None and sum(len(c) for c in categories) > 60
    figure.subplots_adjust(left=0.11, right=0.97, top=0.95, bottom=0.22 if rotated else 0.13)
    return figure_png(figure)


def _axis_positions(values: Sequence[Any]) -> tuple[list[float], list[tuple[float, str]]]:
    """Each value at a height in [0, 1] (NaN if missing), and the (height, text) ticks."""
    present = [v for v in values if v is not None and v != ""]
    numbers = [as_number(v) for v in present]
    if present and all(n is not None for n in numbers):
        lo, hi = min(numbers), max(numbers)  # type: ignore[type-var]
        span = hi - lo  # type: ignore[operator]

        def place(v: Any) -> float:
            if v is None or v == "":
                return math.nan
            return 0.5 if span == 0 else (float(v) - lo) / span  # type: ignore[operator]

        ticks = [(0.5, _fmt(lo))] if span == 0 else [(0.0, _fmt(lo)), (1.0, _fmt(hi))]
        return [place(v) for v in values], ticks
    categories = sorted({str(v) for v in present})
    n = len(categories)
    where = {c: (0.5 if n == 1 else i / (n - 1)) for i, c in enumerate(categories)}
    positions = [math.nan if v is None or v == "" else where[str(v)] for v in values]
    shown = categories if n <= 10 else [categories[0], categories[-1]]
    return positions, [(where[c], _short(c, 14)) for c in shown]


def parallel_png(
    axes_spec: Sequence[ParallelAxis],
    labels: Sequence[str],
    colors: Sequence[str],
    size: tuple[float, float] = (9.0, 4.5),
) -> bytes:
    """Parallel coordinates: one vertical axis per ``axes_spec`` entry, each normalised to its
    own range (numbers) or to evenly spaced ticks (text), and one line per run."""
    figure, axes = new_figure(*size)
    axes.grid(False)
    for spine in axes.spines.values():
        spine.set_visible(False)
    axes.set_yticks([])
    count = len(axes_spec)
    placed = [_axis_positions(spec.values) for spec in axes_spec]
    for i, (_, ticks) in enumerate(placed):
        axes.axvline(i, color=GREY, linewidth=1.0, alpha=0.8)
        for height, text in ticks:
            axes.annotate(
                text,
                (i, height),
                xytext=(-4, 0),
                ha="right",
                textcoords="offset points",
                fontsize=7,
                color=GREY,
                va="center",
            )
    xs = list(range(count))
    for row, (label, color) in enumerate(zip(labels, colors)):
        ys = [positions[row] for positions, _ in placed]
        axes.plot(
            xs, ys, color=color, linewidth=1.6, marker="o", markersize=3, label=label, alpha=0.9
        )
    axes.set_xticks(xs)
    axes.set_xticklabels(
        [_short(spec.name, 18) for spec in axes_spec],
        fontsize=8,
        rotation=20 if count > 5 else 0,
        ha="right" if count > 5 else "center",
    )
    axes.set_xlim(-0.45, max(count - 1, 0) + 0.15)
    axes.set_ylim(-0.06, 1.06)
    figure.subplots_adjust(left=0.02, right=0.98, top=0.95, bottom=0.2 if count > 5 else 0.1)
    return figure_png(figure)


# -- widgets and SVG ----------------------------------------------------------------------------
def image_widget(png: bytes = b"", max_width: str = "900px") -> w.Image:
    """An ``ipywidgets.Image`` for PNG bytes that shrinks with the notebook's width."""
    return w.Image(value=png, format="png", layout=w.Layout(width="100%", max_width=max_width))


def legend_html(labels: Sequence[str], colors: Sequence[str]) -> str:
    """The runs' colours as an HTML legend (cheaper than a matplotlib legend, and wraps)."""
    items = "".join(
        f'<span style="white-space:nowrap;margin-right:12px">{swatch(c)}{html.escape(t)}</span>'
        for t, c in zip(labels, colors)
    )
    return f'<div class="mltrack-legend" style="line-height:1.6">{items}</div>'


def swatch(color: str) -> str:
    """A small square of ``color`` (HTML)."""
    return (
        '<span style="display:inline-block;width:10px;height:10px;border-radius:2px;'
        f'margin-right:4px;background:{html.escape(color)}"></span>'
    )


def sparkline_svg(
    values: Sequence[float], width: int = 120, height: int = 26, color: str = PALETTE[0]
) -> str:
    """A tiny inline SVG polyline of ``values`` (empty string for fewer than two)."""
    finite = [v for v in values if v is not None and math.isfinite(v)]
    if len(finite) < 2:
        return ""
    lo, hi = min(finite), max(finite)
    span = (hi - lo) or 1.0
    step = (width - 2) / (len(finite) - 1)
    points = " ".join(
        f"{1 + i * step:.1f},{height - 2 - (v - lo) / span * (height - 4):.1f}"
        for i, v in enumerate(finite)
    )
    return (
        f'<svg class="mltrack-sparkline" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" role="img" aria-label="trend">'
        f'<polyline fill="none" stroke="{html.escape(color)}" stroke-width="1.4" '
        f'points="{points}"/></svg>'
    )


def diff_html(left: str, right: str, left_label: str, right_label: str) -> str:
    """A side-by-side line diff as an HTML table: removed lines red, added lines green."""
    a, b = left.splitlines(), right.splitlines()
    rows = []
    for tag, i1, i2, j1, j2 in difflib.SequenceMatcher(None, a, b, autojunk=False).get_opcodes():
        n = max(i2 - i1, j2 - j1)
        for k in range(n):
            li, rj = i1 + k, j1 + k
            lcls = "eq" if tag == "equal" else "del"
            rcls = "eq" if tag == "equal" else "add"
            rows.append(
                _diff_side(a[li] if li < i2 else None, li + 1, lcls)
                + _diff_side(b[rj] if rj < j2 else None, rj + 1, rcls)
            )
    head = (
        f'<tr><th colspan="2">{html.escape(left_label)}</th>'
        f'<th colspan="2">{html.escape(right_label)}</th></tr>'
    )
    body = "".join(f"<tr>{r}</tr>" for r in rows)
    return f'{_DIFF_STYLE}<table class="mltrack-diff">{head}{body}</table>'


def _diff_side(line: str | None, number: int, kind: str) -> str:
    if line is None:
        return '<td class="mltrack-diff-num"></td><td class="mltrack-diff-none"></td>'
    return (
        f'<td class="mltrack-diff-num">{number}</td>'
        f'<td class="mltrack-diff-{kind}">{html.escape(line) or "&nbsp;"}</td>'
    )


_DIFF_STYLE = """<style>
table.mltrack-diff { border-collapse: collapse; font-family: var(--jp-code-font-family, monospace);
  font-size: 12px; width: 100%; table-layout: fixed; }
table.mltrack-diff th { text-align: left; padding: 2px 6px; color: #8c8c8c; font-weight: 600; }
table.mltrack-diff td { padding: 0 6px; white-space: pre-wrap; vertical-align: top;
  word-break: break-all; }
table.mltrack-diff td.mltrack-diff-num { width: 3em; text-align: right; color: #8c8c8c;
  user-select: none; }
table.mltrack-diff td.mltrack-diff-del { background: rgba(229, 83, 75, 0.22); }
table.mltrack-diff td.mltrack-diff-add { background: rgba(46, 160, 67, 0.24); }
table.mltrack-diff td.mltrack-diff-none { background: rgba(140, 140, 140, 0.08); }
</style>"""


def note_html(text: str) -> str:
    """A grey explanatory line (HTML; ``text`` is inserted as is)."""
    return f'<div class="mltrack-note" style="color: #8c8c8c; padding: 6px 0">{text}</div>'


def _fmt(value: float) -> str:
    return f"{value:.4g}"


def _short(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"
