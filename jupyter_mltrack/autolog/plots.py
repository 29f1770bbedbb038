"""Plots autologging saves with a run (feature importances, coefficients), drawn on a standalone
``matplotlib.figure.Figure`` with the Agg renderer: pyplot's state, its current figure and the
user's open figures are never touched, and nothing is displayed."""

from __future__ import annotations

import io
from collections.abc import Sequence
from typing import Any

MAX_FEATURES = 20  # more bars than this are unreadable; the strongest are kept
MAX_FEATURES_GROUPED = 10  # the same with one bar per class for each feature
MAX_SERIES = 5  # more classes than this are summarized as the mean |value|


def bar_chart_png(
    names: Sequence[str],
    values: Any,
    title: str,
    xlabel: str,
    series: Sequence[str] | None = None,
    series_title: str = "class",
    series_plural: str = "classes",
) -> bytes:
    """A horizontal bar chart as PNG bytes, strongest features on top.

    Parameters
    ----------
    names
        One name per feature.
    values
        Shape ``(n_features,)``, or ``(n_series, n_features)`` for one group of bars per
        series (e.g. a multiclass model's coefficients per class).
    title, xlabel
        Chart title and value-axis label.
    series
        Labels of the series (legend), when ``values`` is 2-D.
    series_title, series_plural
        What a series is (legend title), and its plural for the summary of many series.
    """
    import numpy as np
    from matplotlib.figure import Figure

    data = np.atleast_2d(np.asarray(values, dtype=float))
    if data.shape[0] > MAX_SERIES:
        xlabel = f"mean |{xlabel}| over {data.shape[0]} {series_plural}"
        data = np.abs(data).mean(axis=0, keepdims=True)
        series = None
    n_series = data.shape[0]
    strength = np.nan_to_num(np.abs(data)).max(axis=0)
    limit = MAX_FEATURES if n_series == 1 else MAX_FEATURES_GROUPED
    order = np.argsort(-strength, kind="stable")[:limit]
    shown = len(order)
    if shown < len(names):
        xlabel = f"{xlabel} (top {shown} of {len(names)} features)"
    labels = [_short(str(names[i])) for i in order]
    width = 7.0
    height = max(2.5, 1.2 + shown * (0.25 + 0.1 * (n_series - 1)))
    figure = Figure(figsize=(width, height), dpi=100)
    # margins from the label lengths: tight_layout would cost a whole extra draw
    left = min(0.5, max(0.1, (0.3 + 0.075 * max(len(t) for t in labels)) / width))
    figure.subplots_adjust(left=left, right=0.97, bottom=0.65 / height, top=1 - 0.45 / height)
    axes = figure.add_subplot()
    bar_height = 0.8 / n_series
    positions = np.arange(shown)
    for row in range(n_series):
        offset = (row - (n_series - 1) / 2) * bar_height
        label = series[row] if series is not None and n_series > 1 else None
        axes.barh(positions + offset, data[row, order], height=bar_height, label=label)
    axes.set_yticks(positions, labels=labels)
    axes.set_ylim(shown - 0.5, -0.5)  # strongest on top
    if (data < 0).any():
        axes.axvline(0.0, color="0.3", linewidth=0.8)
    axes.set_title(title)
    axes.set_xlabel(xlabel)
    if n_series > 1 and series is not None:
        axes.legend(title=series_title, fontsize="small")
    buffer = io.BytesIO()
    # light compression: a third of the encoding time, the same pixels (charts are small)
    figure.savefig(buffer, format="png", pil_kwargs={"compress_level": 1})
    return buffer.getvalue()


def _short(label: str, limit: int = 40) -> str:
    return label if len(label) <= limit else label[: limit - 1] + "\u2026"


def feature_importance_png(names: Sequence[str], values: Any, importance_type: str) -> bytes | None:
    """The feature importance chart of a boosted model (MLflow's
    ``feature_importance_{type}.png``), or None when there is nothing to draw.

    Parameters
    ----------
    names
        One name per feature.
    values
        Shape ``(n_features,)``, or ``(n_classes, n_features)`` for per-class importances
        (XGBoost's linear booster on a multiclass objective).
    importance_type
        The kind of importance (``weight``, ``gain``, ``split``...), shown in the title.
    """
    import numpy as np

    data = np.asarray(values, dtype=float)
    if not len(names) or data.size == 0:
        return None
    series = None
    if data.ndim == 2 and data.shape[0] > 1:
        series = [f"class {i}" for i in range(data.shape[0])]
    return bar_chart_png(
        names,
        data,
        title=f"Feature importance ({importance_type})",
        xlabel=f"importance ({importance_type})",
        series=series,
    )
