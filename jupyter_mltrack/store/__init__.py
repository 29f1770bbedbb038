"""Stores chosen by tracking URI: embedded folder (default), SQLite file, PostgreSQL.

``get_store(uri)`` returns one shared store per resolved URI in a process, so every client of
that store shares its run cache and metric writer.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from pathlib import Path
from urllib.parse import unquote, urlparse

from jupyter_mltrack.exceptions import InvalidParameterValue, StoreError
from jupyter_mltrack.store.base import Store
from jupyter_mltrack.store.rest.hosted import hosted_uri_error

STORE_FOLDER_NAME = "mltrack"
DB_FILE_NAME = "mltrack.db"
_SQLITE_HEADER = b"SQLite format 3\x00"
_WAL_FORMAT = 2  # header byte 18: 1 = rollback journal, 2 = WAL

_factories: dict[str, Callable[[str], Store]] = {}
_stores: dict[str, Store] = {}
_lock = threading.Lock()


def register_store(scheme: str, factory: Callable[[str], Store]) -> None:
    """Make tracking URIs with ``scheme`` open stores built by ``factory(uri)``."""
    _factories[scheme] = factory


def default_store_folder(start: str | os.PathLike[str] | None = None) -> Path:
    """``mltrack/`` at the root of the enclosing git repository, else in the working directory."""
    here = Path(start or os.getcwd()).resolve()
    for folder in (here, *here.parents):
        if (folder / ".git").exists():
            return folder / STORE_FOLDER_NAME
    return here / STORE_FOLDER_NAME


def default_tracking_uri() -> str:
    return str(default_store_folder())


def canonical_uri(uri: str) -> str:
    """A stable form of ``uri``: an absolute path for folders, the URL otherwise."""
    scheme = _scheme(uri)
    if scheme in ("", "file"):
        path = unquote(urlparse(uri).path) if scheme == "file" else uri
        return str(Path(path).expanduser().resolve())
    if scheme == "sqlite" and ":///" in uri and not uri.endswith(":memory:"):
        return "sqlite:///" + str(Path(uri.split(":///", 1)[1]).expanduser().resolve())
    return uri


def _scheme(uri: str) -> str:
    scheme = urlparse(uri).scheme
    return "" if len(scheme) <= 1 else scheme.split("+")[0]


def get_store(uri: str) -> Store:
    """The (shared) store for a tracking URI."""
    hosted = hosted_uri_error(uri)  # before canonical_uri makes "databricks" a folder path
    if hosted is not None:
        raise hosted
    key = canonical_uri(uri)
    store = _stores.get(key)
    if store is not None:
        return store
    with _lock:
        store = _stores.get(key)
        if store is None:
            store = _open(key)
            _stores[key] = store
        return store


def _open(uri: str) -> Store:
    scheme = _scheme(uri)
    factory = _factories.get(scheme)
    if factory is None:
        known = ", ".join(sorted(s or "<folder path>" for s in _factories))
        raise InvalidParameterValue(
            f"Unsupported tracking URI {uri!r} (scheme {scheme!r}). Supported: {known}."
        )
    return factory(uri)


def forget_stores() -> None:
    """Close and forget every opened store (tests, or after deleting a store folder)."""
    with _lock:
        for store in _stores.values():
            engine = getattr(store, "engine", None)
            if engine is not None:
                engine.dispose()
        _stores.clear()


def _open_folder(path: str) -> Store:
    folder = Path(path)
    if folder.is_file():
        return _open_sqlite_file(folder, folder.parent / "artifacts")
    if folder.is_dir() and any(folder.glob("*/meta.yaml")) and not (folder / DB_FILE_NAME).exists():
        raise StoreError(
            f"{folder} looks like an MLflow file store (mlruns), not a jupyter_mltrack store; "
            "it was left untouched. Use another folder."
        )
    try:
        (folder / "artifacts").mkdir(parents=True, exist_ok=True)
        ignore = folder / ".gitignore"
        if not ignore.exists():
            ignore.write_text("# jupyter_mltrack store: never commit it\n*\n")
    except OSError as err:
        raise StoreError(
            f"Cannot create the store folder {folder}: {err.strerror}. Choose a writable "
            "location with set_tracking_uri(...) or MLTRACK_TRACKING_URI."
        ) from None
    return _open_sqlite_file(folder / DB_FILE_NAME, folder / "artifacts")


def _open_sqlite_file(db_path: Path, artifact_dir: Path) -> Store:
    from jupyter_mltrack.store.artifacts import path_to_uri
    from jupyter_mltrack.store.sql import SqlStore

    if db_path.exists():
        try:
            with open(db_path, "rb") as fh:
                header = fh.read(100)
        except OSError as err:
            raise StoreError(f"Cannot read the store database {db_path}: {err.strerror}.") from None
        if header and header[:16] != _SQLITE_HEADER:
            raise StoreError(
                f"{db_path} is not a SQLite database, so it cannot be a jupyter_mltrack store; "
                "it was left untouched. Point the tracking URI at a folder or a .db file."
            )
        if len(header) == 100 and header[18] != _WAL_FORMAT:
            # Not in WAL mode, so not created by us: our engine would switch it to WAL (a
            # header rewrite), hence a read-only look first to refuse a foreign file intact.
            from jupyter_mltrack.store.migrate import check_sqlite_file

            check_sqlite_file(db_path)
    elif not db_path.parent.is_dir():
        raise StoreError(f"Cannot create {db_path}: the folder {db_path.parent} does not exist.")
    return SqlStore(f"sqlite:///{db_path}", path_to_uri(artifact_dir))


def _open_sqlite_url(uri: str) -> Store:
    path = uri.split(":///", 1)[1] if ":///" in uri else ""
    if not path or path == ":memory:":
        raise InvalidParameterValue(
            f"{uri!r}: an in-memory SQLite store cannot be shared; give a file path, e.g. "
            "sqlite:///runs.db"
        )
    db = Path(path).expanduser().resolve()
    return _open_sqlite_file(db, db.parent / "artifacts")


def _open_server_db(uri: str) -> Store:
    from jupyter_mltrack.store.artifacts import path_to_uri
    from jupyter_mltrack.store.sql import SqlStore

    root = os.environ.get("MLTRACK_ARTIFACT_ROOT") or path_to_uri(
        default_store_folder() / "artifacts"
    )
    if "://" not in root:
        root = path_to_uri(root)
    return SqlStore(uri, root)


def _open_server(uri: str) -> Store:
    from jupyter_mltrack.store.rest.store import RestStore

    return RestStore(uri)


register_store("", _open_folder)
register_store("file", _open_folder)
register_store("sqlite", _open_sqlite_url)
register_store("postgresql", _open_server_db)
register_store("http", _open_server)
register_store("https", _open_server)
