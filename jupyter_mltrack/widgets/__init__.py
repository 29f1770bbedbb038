"""Widget panels (ipywidgets 8): runs table, run comparison, run detail, registry.

Every panel is an ``ipywidgets.VBox``; display it (or return it from a cell) to show it. Every
control is a public attribute, so a panel can be driven from Python exactly as from the page:
``table.filter_box.value = "metrics.f1 > 0.8"; table.compare_button.click()``.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "RunsTable": "jupyter_mltrack.widgets.runs_table",
    "RunComparison": "jupyter_mltrack.widgets.comparison",
    "RunDetail": "jupyter_mltrack.widgets.run_detail",
    "RegistryPanel": "jupyter_mltrack.widgets.registry_panel",
    "DataGrid": "jupyter_mltrack.widgets.grid",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'jupyter_mltrack.widgets' has no attribute {name!r}")
