"""How the panels write times and durations: UTC, like the CLI, so every panel agrees."""

from __future__ import annotations

from jupyter_mltrack.timefmt import format_time

__all__ = ["format_duration", "format_time"]


def format_duration(start_ms: int | None, end_ms: int | None) -> str:
    """A short duration: ``12.3 s``, ``4 min 05 s``, ``2 h 03 min``; '' while running."""
    if not start_ms or not end_ms or end_ms < start_ms:
        return ""
    seconds = (end_ms - start_ms) / 1000
    if seconds < 60:
        return f"{seconds:.1f} s"
    whole = int(seconds)
    if whole < 3600:
        return f"{whole // 60} min {whole % 60:02d} s"
    return f"{whole // 3600} h {whole % 3600 // 60:02d} min"
