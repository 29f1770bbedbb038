"""Matplotlib figures a cell creates or draws on, saved as PNG bytes.

Never imports matplotlib: a cell that does not use it costs nothing. Figures shown with
``plt.show()`` inside the cell (the inline backend closes them) are caught just before.
"""

from __future__ import annotations

import io
import sys
from typing import Any


class FigureCapture:
    """Snapshot before the cell, collect new or re-drawn figures after it."""

    def __init__(self) -> None:
        self._before: set[int] = set()
        self._images: dict[int, tuple[str, bytes]] = {}
        self._pyplot: Any = None
        self._original_show: Any = None

    def start(self) -> None:
        self._before = {num for num, figure in _open_figures() if not figure.stale}
        self._patch_show()

    def _patch_show(self) -> None:
        plt = sys.modules.get("matplotlib.pyplot")
        if plt is None or self._pyplot is not None:
            return
        self._pyplot, self._original_show = plt, plt.show
        capture = self

        def show(*args: Any, **kwargs: Any) -> Any:
            capture.collect()
            return capture._original_show(*args, **kwargs)

        plt.show = show

    def collect(self) -> None:
        """Render every new or stale open figure (called at show() and at the end)."""
        for num, figure in _open_figures():
            if num in self._before and not figure.stale:
                continue
            if not figure.axes:
                continue
            buffer = io.BytesIO()
            figure.savefig(buffer, format="png", bbox_inches="tight")
            label = figure.get_label() or f"figure_{num}"
            self._images[num] = (label, buffer.getvalue())

    def stop(self) -> list[tuple[str, bytes]]:
        """Collect what is left, restore ``plt.show`` and return ``(name, png)`` pairs."""
        self._patch_show()  # matplotlib may have been imported by the cell itself
        self.collect()
        if self._pyplot is not None:
            self._pyplot.show = self._original_show
            self._pyplot = None
        return [(_safe_name(label, num), png) for num, (label, png) in sorted(self._images.items())]


def _open_figures() -> list[tuple[int, Any]]:
    """(number, figure) of pyplot's open figures, without changing the current figure."""
    if "matplotlib.pyplot" not in sys.modules:
        return []
    from matplotlib._pylab_helpers import Gcf

    return [(manager.num, manager.canvas.figure) for manager in Gcf.get_all_fig_managers()]


def _safe_name(label: str, num: int) -> str:
    cleaned = "".join(c if c.isalnum() or c in "-_" else "_" for c in label).strip("_")
    return f"figures/{cleaned or f'figure_{num}'}.png"
