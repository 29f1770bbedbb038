"""The journal that makes a transfer resumable: source ids -> destination ids, and what is done.

A small SQLite file (one row per experiment, run and registered model), written after every
step, so an interrupted ``mltrack import``/``export`` run again with the same source and
destination skips what was finished and redoes only what was not.

Policy for a half-copied run (created in the destination, never marked done): the partial
destination run is deleted (soft, like ``delete_run``) and the run is copied again from the
start. Appending only what is missing would need a point-by-point comparison of histories;
starting over is simpler and cannot duplicate points. A half-copied registered model (created
by this transfer, not marked done) is deleted from the destination and copied again.
"""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
from pathlib import Path
from typing import Any

from jupyter_mltrack.transfer import TransferError

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS items (
    kind TEXT NOT NULL,          -- experiment | run | model
    src TEXT NOT NULL,           -- source id (model: name)
    dst TEXT,                    -- destination id; NULL until created
    done INTEGER NOT NULL DEFAULT 0,
    extra TEXT,                  -- JSON: per-kind details
    PRIMARY KEY (kind, src)
);
"""


def default_state_path(source: str, destination: str) -> Path:
    """``$XDG_CACHE_HOME/jupyter_mltrack/transfers/<hash of source and destination>.db``."""
    digest = hashlib.sha256(f"{source}\n{destination}".encode()).hexdigest()[:20]
    cache = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(cache) / "jupyter_mltrack" / "transfers" / f"{digest}.db"


class TransferState:
    """Source -> destination mapping of one transfer, kept in a SQLite journal file."""

    def __init__(self, path: str | os.PathLike[str], source: str, destination: str) -> None:
        self.path = Path(path)
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(self.path, isolation_level=None)
            self._db.executescript(_SCHEMA)
        except (OSError, sqlite3.Error) as err:
            raise TransferError(f"Cannot open the transfer state file {self.path}: {err}") from None
        self._check_endpoints(source, destination)

    def _check_endpoints(self, source: str, destination: str) -> None:
        known = dict(self._db.execute("SELECT key, value FROM meta").fetchall())
        if not known:
            self._db.executemany(
                "INSERT INTO meta VALUES (?, ?)",
                [("source", source), ("destination", destination), ("version", "1")],
            )
            return
        if (known.get("source"), known.get("destination")) != (source, destination):
            raise TransferError(
                f"The state file {self.path} belongs to the transfer {known.get('source')} -> "
                f"{known.get('destination')}, not {source} -> {destination}. Pass another "
                "--state-file (or delete this one to start over)."
            )

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> TransferState:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- generic rows -----------------------------------------------------------------------
    def get(self, kind: str, src: str) -> tuple[str | None, bool, dict[str, Any]] | None:
        """``(dst, done, extra)`` of one item, or None when the journal has never seen it."""
        row = self._db.execute(
            "SELECT dst, done, extra FROM items WHERE kind = ? AND src = ?", (kind, src)
        ).fetchone()
        if row is None:
            return None
        return row[0], bool(row[1]), json.loads(row[2] or "{}")

    def put(
        self,
        kind: str,
        src: str,
        dst: str | None,
        done: bool = False,
        extra: dict[str, Any] | None = None,
    ) -> None:
        self._db.execute(
            "INSERT OR REPLACE INTO items (kind, src, dst, done, extra) VALUES (?, ?, ?, ?, ?)",
            (kind, src, dst, int(done), json.dumps(extra or {})),
        )

    def forget(self, kind: str, src: str) -> None:
        self._db.execute("DELETE FROM items WHERE kind = ? AND src = ?", (kind, src))

    def mapping(self, kind: str) -> dict[str, str]:
        """Source id -> destination id of every item of ``kind`` that has one."""
        rows = self._db.execute(
            "SELECT src, dst FROM items WHERE kind = ? AND dst IS NOT NULL", (kind,)
        )
        return dict(rows.fetchall())

    def dst_of(self, kind: str, src: str) -> str | None:
        """The destination id of one item, if it has one."""
        item = self.get(kind, src)
        return item[0] if item else None

    def done(self, kind: str) -> set[str]:
        rows = self._db.execute("SELECT src FROM items WHERE kind = ? AND done = 1", (kind,))
        return {r[0] for r in rows.fetchall()}

    # -- typed helpers ----------------------------------------------------------------------
    def experiment(self, src_id: str) -> tuple[str, int] | None:
        """Destination id of a source experiment and how many active runs it held before."""
        item = self.get("experiment", src_id)
        if item is None or item[0] is None:
            return None
        return item[0], int(item[2].get("preexisting_runs", 0))

    def set_experiment(self, src_id: str, dst_id: str, preexisting_runs: int) -> None:
        self.put("experiment", src_id, dst_id, True, {"preexisting_runs": preexisting_runs})

    def run_started(self, src_id: str, dst_id: str | None) -> None:
        self.put("run", src_id, dst_id, False)

    def run_done(self, src_id: str, dst_id: str) -> None:
        self.put("run", src_id, dst_id, True)

    def model_versions(self, name: str) -> dict[str, str]:
        item = self.get("model", name)
        return dict(item[2].get("versions", {})) if item else {}
