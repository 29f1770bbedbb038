"""Which store the JupyterLab sidebar shows, by the kernel's rules.

A kernel resolves its store as: explicit ``set_tracking_uri`` / ``%mltrack store`` >
``MLTRACK_TRACKING_URI`` > ``%config MLTrack.tracking_uri`` > ``MLFLOW_TRACKING_URI`` (when
supported) > the default embedded folder (``mltrack/`` at the git root of its working folder,
else in it). The Jupyter server sees the same environment variables (kernels inherit them) but
neither the kernel's explicit choice nor its ``%config``; a kernel's working folder is its
notebook's folder. So here: the store picked in the sidebar > ``MLTRACK_TRACKING_URI`` >
``MLFLOW_TRACKING_URI`` (when supported) > the default folder for the notebook's folder (the
``notebook`` query argument, a path relative to the Jupyter root) or for the Jupyter root.
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlparse, urlunparse

from jupyter_mltrack.exceptions import InvalidParameterValue, MlflowException
from jupyter_mltrack.store import default_store_folder
from jupyter_mltrack.tracking import config
from jupyter_mltrack.tracking.client import Client

SIDEBAR = "sidebar"
DEFAULT = "default"


class StoreUnavailable(MlflowException):
    """The store in force cannot be opened; ``hint`` says how to fix it."""

    default_error_code = "STORE_UNAVAILABLE"

    def __init__(self, message: str, hint: str, tracking_uri: str) -> None:
        super().__init__(message)
        self.hint = hint
        self.tracking_uri = tracking_uri


class StoreNotCreated(MlflowException):
    """The default embedded store does not exist yet (no notebook has logged a run there)."""

    default_error_code = "RESOURCE_DOES_NOT_EXIST"


@dataclass(frozen=True)
class Resolved:
    """A tracking URI and where it came from (``sidebar``, an env var name, or ``default``)."""

    uri: str
    source: str


class StoreChoice:
    """The server's store selection: one per Jupyter server, shared by every request.

    Opened clients are kept per URI (stores are shared per process anyway); a store that
    failed to open is tried again on the next request, so fixing it needs no restart.
    """

    def __init__(self, root_dir: str | os.PathLike[str]) -> None:
        self.root_dir = Path(root_dir).expanduser().resolve()
        self.chosen: str | None = None
        self._clients: dict[str, Client] = {}
        self._lock = threading.Lock()
        #: Held around compare-and-act registry writes (stage/alias "expected" checks).
        self.write_lock = threading.Lock()

    # -- resolution ---------------------------------------------------------------------------
    def resolve(self, notebook: str | None = None) -> Resolved:
        if self.chosen:
            return Resolved(self.chosen, SIDEBAR)
        env = os.environ.get("MLTRACK_TRACKING_URI")
        if env:
            return Resolved(env, "MLTRACK_TRACKING_URI")
        mlflow_env = os.environ.get("MLFLOW_TRACKING_URI")
        if mlflow_env and _scheme(mlflow_env) in config.SUPPORTED_SCHEMES:
            return Resolved(mlflow_env, "MLFLOW_TRACKING_URI")
        return Resolved(str(default_store_folder(self._folder(notebook))), DEFAULT)

    def _folder(self, notebook: str | None) -> Path:
        """The folder a kernel for ``notebook`` would start in (the root when None)."""
        if not notebook:
            return self.root_dir
        folder = (self.root_dir / notebook.lstrip("/")).parent.resolve()
        if folder != self.root_dir and self.root_dir not in folder.parents:
            raise InvalidParameterValue(
                f"Notebook path {notebook!r} is outside the Jupyter root folder; give it "
                "relative to the root, as JupyterLab shows it."
            )
        return folder

    # -- opening ------------------------------------------------------------------------------
    def client(self, notebook: str | None = None) -> Client:
        """The Client for the store in force (raises ``StoreUnavailable`` / ``StoreNotCreated``)."""
        resolved = self.resolve(notebook)
        if resolved.source == DEFAULT and not Path(resolved.uri).exists():
            # Opening would create the folder: leave that to the first run a notebook logs.
            raise StoreNotCreated(
                f"No store yet at {resolved.uri}: the first run a notebook logs creates it."
            )
        return self._open(resolved)

    def _open(self, resolved: Resolved) -> Client:
        with self._lock:
            client = self._clients.get(resolved.uri)
        if client is not None:
            return client
        try:
            client = Client(resolved.uri)
        except Exception as err:
            raise StoreUnavailable(
                _describe(err), _hint(resolved, err), redact(resolved.uri)
            ) from err
        with self._lock:
            return self._clients.setdefault(resolved.uri, client)

    def status(self, notebook: str | None = None) -> dict[str, Any]:
        """What GET /store answers: the URI in force, whether it opens, and how to fix it."""
        resolved = self.resolve(notebook)
        out: dict[str, Any] = {
            "tracking_uri": redact(resolved.uri),
            "ok": True,
            "error": None,
            "hint": None,
            "source": resolved.source,
        }
        try:
            self.client(notebook)
        except StoreNotCreated as err:
            out["hint"] = err.message
        except StoreUnavailable as err:
            out.update(ok=False, error=err.message, hint=err.hint)
        return out

    def switch(self, uri: str | None) -> None:
        """Use ``uri`` from now on (None or "" goes back to the kernel's rules).

        The store is opened first; when it cannot be, the previous choice stays and the
        ``StoreUnavailable`` error says why.
        """
        text = (uri or "").strip()
        if not text:
            self.chosen = None
            return
        self._open(Resolved(text, SIDEBAR))
        self.chosen = text


def redact(uri: str) -> str:
    """``uri`` without a password (``postgresql://me:***@host/db``), safe to show."""
    parsed = urlparse(uri)
    if not parsed.password:
        return uri
    netloc = parsed.netloc.replace(f":{parsed.password}@", ":***@", 1)
    return urlunparse(parsed._replace(netloc=netloc))


def _scheme(uri: str) -> str:
    scheme = urlparse(uri).scheme
    return "" if len(scheme) <= 1 else scheme.split("+")[0]


def _describe(err: BaseException) -> str:
    if isinstance(err, MlflowException):
        return err.message
    # Driver errors (PostgreSQL unreachable, ...): their first line says what happened.
    text = str(err).strip().splitlines()[0] if str(err).strip() else ""
    return f"{type(err).__name__}: {text[:300]}" if text else type(err).__name__


def _hint(resolved: Resolved, err: BaseException) -> str:
    shown = redact(resolved.uri)
    if resolved.source == SIDEBAR:
        where = "Pick another store in the sidebar, or go back to the default one."
    elif resolved.source == DEFAULT:
        where = (
            f"This is the default store ({shown}, the mltrack/ folder at the git root of the "
            "Jupyter root folder). Make it readable and writable, pick another store in the "
            "sidebar, or start JupyterLab with MLTRACK_TRACKING_URI set."
        )
    else:
        where = (
            f"JupyterLab was started with {resolved.source}={shown}: fix or unset it and "
            "restart JupyterLab, or pick another store in the sidebar."
        )
    if "newer" in str(err).lower():
        where = (
            "The store was written by a newer jupyter-mltrack: upgrade it in the Jupyter "
            "server's environment (pip install -U jupyter-mltrack). " + where
        )
    return where
