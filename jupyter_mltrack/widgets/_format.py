"""How the panels write times and durations: UTC, like the CLI, so every panel agrees."""

from __future__ import annotations

from datetime import datetime, timezone


def format_time(ms: int | None) -> str:
    """Milliseconds since the epoch as ``YYYY-MM-DD HH:MM:SS`` in UTC; '' for no time."""
    if not ms:
        return ""
    return datetime.fromtimestamp(ms / 1000, tz=timezone.utc).strftime("%Y-%m-%d %H:%M:%S")


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
