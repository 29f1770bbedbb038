"""Reload on promotion: a served ``models:/Name/Stage`` or ``models:/Name@alias`` follows the
registry. A thread polls which version the stage or alias points at; when it moves, the new
version is loaded beside the old one and swapped in (see ``ModelSlot``), so no request fails.
A version that fails to load is logged and skipped; the old model keeps serving.
"""

from __future__ import annotations

import logging
import re
import threading
from typing import Any

from jupyter_mltrack.exceptions import InvalidParameterValue, MlflowException

logger = logging.getLogger("jupyter_mltrack.serving")

_ALIAS = re.compile(r"^models:/(?P<name>[^/@]+)@(?P<alias>[^/]+)/?$")
_STAGE = re.compile(r"^models:/(?P<name>[^/@]+)/(?P<ref>[^/]+)/?$")


def watch_target(model_uri: str) -> tuple[str, str | None, str | None]:
    """(name, stage, alias) that ``model_uri`` follows; an error for URIs that cannot move."""
    match = _ALIAS.match(model_uri)
    if match:
        return match.group("name"), None, match.group("alias")
    match = _STAGE.match(model_uri)
    if match and not match.group("ref").isdigit() and match.group("ref").lower() != "latest":
        return match.group("name"), match.group("ref"), None
    raise InvalidParameterValue(
        f"--watch follows a stage or an alias: use models:/<name>/<stage> or "
        f"models:/<name>@<alias>, not {model_uri!r}."
    )


class RegistryWatcher:
    """Polls the registry every ``interval`` seconds and swaps the slot's model on a move."""

    def __init__(
        self,
        model_uri: str,
        slot: Any,
        interval: float = 1.0,
        tracking_uri: str | None = None,
    ) -> None:
        self.name, self.stage, self.alias = watch_target(model_uri)
        self.model_uri = model_uri
        self.slot = slot
        self.interval = interval
        self.tracking_uri = tracking_uri
        self._failed_version: int | None = None
        self._missing_logged = False
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._client: Any = None

    def start(self) -> None:
        if self._thread is not None:
            return
        self._stop.clear()
        self._thread = threading.Thread(
            target=self._loop, name=f"mltrack-watch-{self.name}", daemon=True
        )
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self.check()
            except Exception:  # the watcher must outlive any one bad poll
                logger.exception("Checking the registry for %s failed", self.model_uri)

    def current_version(self) -> int | None:
        """The version the stage or alias points at now (None when it points nowhere)."""
        if self._client is None:
            from jupyter_mltrack.tracking.client import Client

            self._client = Client(self.tracking_uri)
        try:
            if self.alias is not None:
                mv = self._client.get_model_version_by_alias(self.name, self.alias)
            else:
                mv = self._client.get_model_version_by_stage(self.name, self.stage)
        except MlflowException as exc:
            if not self._missing_logged:
                logger.warning(
                    "%s resolves to no version now (%s); still serving %s.",
                    self.model_uri,
                    exc.message,
                    self.slot.current.describe(),
                )
                self._missing_logged = True
            return None
        self._missing_logged = False
        return int(mv.version)

    def check(self) -> bool:
        """Poll once; load and swap in a new version if the stage or alias moved. True if it did."""
        version = self.current_version()
        if version is None or version == self.slot.current.version:
            return False
        if version == self._failed_version:
            return False  # already tried; wait for the registry to move again
        from jupyter_mltrack.models.uri import ResolvedModel
        from jupyter_mltrack.serving.app import ServedModel

        try:
            from jupyter_mltrack.models.uri import resolve_model_uri
            from jupyter_mltrack.pyfunc import load_model

            resolved = resolve_model_uri(f"models:/{self.name}/{version}", self._client)
            model = load_model(resolved.local_path)
            served = ServedModel(
                model,
                self.model_uri,
                ResolvedModel(
                    resolved.local_path,
                    run_id=resolved.run_id,
                    name=self.name,
                    version=version,
                    stage=self.stage,
                    alias=self.alias,
                ),
            )
            served.warm_up()
        except Exception as exc:
            self._failed_version = version
            message = (
                exc.message if isinstance(exc, MlflowException) else f"{type(exc).__name__}: {exc}"
            )
            self.slot.last_reload_error = f"v{version}: {message}"
            logger.error(
                "%s moved to v%s, which failed to load (%s); still serving %s.",
                self.model_uri,
                version,
                message,
                self.slot.current.describe(),
            )
            return False
        old = self.slot.swap(served)
        self._failed_version = None
        logger.info(
            "%s moved: now serving %s (was v%s).", self.model_uri, served.describe(), old.version
        )
        return True
