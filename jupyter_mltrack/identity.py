"""Who is acting: the user name recorded on runs and registry decisions (cached per process)."""

from __future__ import annotations

import getpass
import os
from functools import lru_cache


@lru_cache(maxsize=1)
def current_user() -> str:
    """The login name (``MLTRACK_USER`` overrides it), ``unknown`` when there is none."""
    override = os.environ.get("MLTRACK_USER")
    if override:
        return override
    try:
        return getpass.getuser()
    except Exception:  # containers without a passwd entry
        return "unknown"
