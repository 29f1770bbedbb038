"""The notebook layer: ``%%track`` / ``%mltrack`` magics and the ``MLTrack`` options."""

from __future__ import annotations

from typing import Any


def load_ipython_extension(ipython: Any) -> None:
    """Register the magics and the ``MLTrack`` configurable on an IPython shell."""
    from jupyter_mltrack.notebook import hidden_state
    from jupyter_mltrack.notebook.config import MLTrack
    from jupyter_mltrack.notebook.magics import MLTrackMagics
    from jupyter_mltrack.tracking.context import prefetch_package_index

    if getattr(ipython, "_mltrack_magics", None) is not None:
        return  # %load_ext twice is harmless
    options = MLTrack(parent=ipython)
    magics = MLTrackMagics(ipython, options)
    ipython.register_magics(magics)
    ipython.configurables.append(options)
    ipython.events.register("pre_run_cell", magics.remember_cell)
    hidden_state.install(ipython)  # the execution log behind the hidden-state check
    prefetch_package_index()
    ipython._mltrack_magics = magics


def unload_ipython_extension(ipython: Any) -> None:
    magics = getattr(ipython, "_mltrack_magics", None)
    if magics is None:
        return
    ipython.events.unregister("pre_run_cell", magics.remember_cell)
    from jupyter_mltrack.notebook import hidden_state

    hidden_state.uninstall(ipython)
    if magics.options in ipython.configurables:
        ipython.configurables.remove(magics.options)
    ipython._mltrack_magics = None
