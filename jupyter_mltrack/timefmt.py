"""Times as every surface shows them (CLI, magics, panels): UTC, to the second."""

from __future__ import annotations

from datetime import datetime, timezone


def format_time(ms: int | None, missing: str = "") -> str:
    """Milliseconds since the epoch as ``YYYY-MM-DD HH:MM:SS`` in UTC; ``missing`` for none."""
    if not ms:
        return missing
    return datetime.fromtimestamp(ms / 1000, tz=timezone.utc).strftime("%Y-%m-%d %H:%M:%S")
