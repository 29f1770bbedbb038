"""Routes for registered models, their versions, and the registry actions.

Actions that the sidebar offers on what it last showed carry what it saw
(``expected_stage``, ``expected_version``): when the version or alias has moved since (another
user, a notebook), the action is refused with 409 and changes nothing. The check and the write
run under one lock of this server; a write from another process landing between the two (a
window of milliseconds) is not caught, since the store has no compare-and-set for stages yet.
"""

from __future__ import annotations

import os
from typing import Any

import tornado.web

from jupyter_mltrack.entities import ModelVersion, Stage
from jupyter_mltrack.exceptions import InvalidParameterValue, ResourceAlreadyExists
from jupyter_mltrack.registry import promote_on_logged_metric
from jupyter_mltrack.server.base import Conflict, MLTrackHandler
from jupyter_mltrack.server.store_choice import StoreNotCreated
from jupyter_mltrack.store.rest import protocol
from jupyter_mltrack.tracking.client import Client

AUDIT_FIELDS = (
    "timestamp",
    "action",
    "version",
    "target",
    "from_value",
    "to_value",
    "user",
    "comment",
    "details",
)


class RegisteredModelsHandler(MLTrackHandler):
    @tornado.web.authenticated
    async def get(self) -> None:
        def work() -> dict[str, Any]:
            try:
                client = self.client()
            except StoreNotCreated:
                return {"registered_models": []}
            models: list[Any] = []
            token = None
            while True:
                page = client.search_registered_models(max_results=1000, page_token=token)
                models.extend(page)
                token = page.token
                if not token:
                    break
            return {"registered_models": [protocol.registered_model_to_json(m) for m in models]}

        await self.answer(work)


class RegisteredModelHandler(MLTrackHandler):
    """A model with every version and its audit trail (oldest first)."""

    @tornado.web.authenticated
    async def get(self, name: str) -> None:
        def work() -> dict[str, Any]:
            client = self.client()
            model = client.get_registered_model(name)
            escaped = name.replace("'", "''")
            versions = client.search_model_versions(f"name = '{escaped}'")
            return {
                "registered_model": protocol.registered_model_to_json(model),
                "versions": [protocol.model_version_to_json(v) for v in versions],
                "audit": [_audit_json(e) for e in client.get_audit_trail(name)],
            }

        await self.answer(work)


class VersionsHandler(MLTrackHandler):
    """``POST {"run_id", "artifact_path"}``: register a run's logged model (model created if new)."""

    @tornado.web.authenticated
    async def post(self, name: str) -> None:
        def work() -> dict[str, Any]:
            body = self.body()
            run_id = _text(body, "run_id", required=True)
            artifact_path = _text(body, "artifact_path", required=True)
            mv = register_run_model(self.client(), name, run_id, artifact_path)
            return {"model_version": protocol.model_version_to_json(mv)}

        await self.answer(work)


class StageHandler(MLTrackHandler):
    """``POST {"stage", "archive_existing_versions", "expected_stage", "comment"}``."""

    @tornado.web.authenticated
    async def post(self, name: str, version: str) -> None:
        def work() -> dict[str, Any]:
            body = self.body()
            stage = _text(body, "stage", required=True)
            archive = protocol.to_bool(
                body.get("archive_existing_versions"), "archive_existing_versions", False
            )
            client = self.client()
            with self.store_choice.write_lock:
                _expect_stage(client, name, version, body.get("expected_stage"))
                mv = client.transition_model_version_stage(
                    name, version, stage, archive, _text(body, "comment")
                )
            return {"model_version": protocol.model_version_to_json(mv)}

        await self.answer(work)


class AliasHandler(MLTrackHandler):
    """``POST {"version", "expected_version"}`` points an alias; ``DELETE`` removes it."""

    @tornado.web.authenticated
    async def post(self, name: str, alias: str) -> None:
        def work() -> dict[str, Any]:
            body = self.body()
            version = protocol.to_int(body.get("version"), "version")
            if version is None:
                raise InvalidParameterValue("Give the version the alias should point to.")
            client = self.client()
            with self.store_choice.write_lock:
                _expect_alias(client, name, alias, body.get("expected_version"))
                client.set_registered_model_alias(name, alias, version)
            return {}

        await self.answer(work)

    @tornado.web.authenticated
    async def delete(self, name: str, alias: str) -> None:
        def work() -> dict[str, Any]:
            expected = self.query("expected_version")
            if expected is None:
                expected = self.body().get("expected_version")
            client = self.client()
            with self.store_choice.write_lock:
                _expect_alias(client, name, alias, expected)
                client.delete_registered_model_alias(name, alias)
            return {}

        await self.answer(work)


class PromoteHandler(MLTrackHandler):
    """``POST {"stage" | "alias", "archive_existing_versions", "gate", "comment", "expected_stage"}``.

    The gate (``{"metric", "threshold", "greater_is_better"}``) is checked against the metric
    the version's source run logged; a refusal answers 400 PROMOTION_REFUSED with its outcome.
    """

    @tornado.web.authenticated
    async def post(self, name: str, version: str) -> None:
        def work() -> dict[str, Any]:
            body = self.body()
            archive = protocol.to_bool(
                body.get("archive_existing_versions"), "archive_existing_versions", True
            )
            client = self.client()
            with self.store_choice.write_lock:
                _expect_stage(client, name, version, body.get("expected_stage"))
                mv, validation = promote_on_logged_metric(
                    client,
                    name,
                    version,
                    _text(body, "stage"),
                    _text(body, "alias"),
                    body.get("gate"),
                    archive,
                    _text(body, "comment"),
                )
            return {"model_version": protocol.model_version_to_json(mv), "validation": validation}

        await self.answer(work)


class RollbackHandler(MLTrackHandler):
    """``POST {"stage" | "alias", "comment"}``: the previous holder gets it back."""

    @tornado.web.authenticated
    async def post(self, name: str) -> None:
        def work() -> dict[str, Any]:
            body = self.body()
            mv = self.client().rollback(
                name, _text(body, "stage"), _text(body, "alias"), _text(body, "comment")
            )
            return {"model_version": protocol.model_version_to_json(mv)}

        await self.answer(work)


class RollbackCandidateHandler(MLTrackHandler):
    """``GET ?stage=`` or ``?alias=``: the version a rollback would restore (changes nothing)."""

    @tornado.web.authenticated
    async def get(self, name: str) -> None:
        def work() -> dict[str, Any]:
            mv = self.client().rollback_candidate(name, self.query("stage"), self.query("alias"))
            return {"model_version": protocol.model_version_to_json(mv)}

        await self.answer(work)


def register_run_model(client: Client, name: str, run_id: str, artifact_path: str) -> ModelVersion:
    """Register the model a run logged at ``artifact_path`` as a new version of ``name``."""
    from jupyter_mltrack.models.uri import resolve_model_uri
    from jupyter_mltrack.store.artifacts import path_to_uri

    client.get_run(run_id)  # an unknown run: 404 naming it
    resolved = resolve_model_uri(f"runs:/{run_id}/{artifact_path.strip('/')}", client)
    if not os.path.isfile(os.path.join(resolved.local_path, "MLmodel")):
        raise InvalidParameterValue(
            f"runs:/{run_id}/{artifact_path} is not a logged model (no MLmodel file in it)."
        )
    try:
        client.create_registered_model(name)
    except ResourceAlreadyExists:
        pass
    source = resolved.source or path_to_uri(resolved.local_path)
    return client.create_model_version(name, source, run_id=run_id)


def _expect_stage(client: Client, name: str, version: str, expected: Any) -> None:
    if expected is None:
        return
    wanted = Stage.canonical(str(expected))
    mv = client.get_model_version(name, version)
    if mv.current_stage != wanted:
        raise Conflict(
            f"v{mv.version} is now in {mv.current_stage} (moved by someone else); refresh"
        )


def _expect_alias(client: Client, name: str, alias: str, expected: Any) -> None:
    wanted = protocol.to_int(expected, "expected_version")
    if wanted is None:
        return
    current = client.get_registered_model(name).aliases.get(alias)
    if current is None:
        raise Conflict(f"alias {alias!r} no longer exists (removed by someone else); refresh")
    if int(current) != wanted:
        raise Conflict(f"alias {alias!r} now points to v{current} (moved by someone else); refresh")


def _text(body: dict[str, Any], field: str, required: bool = False) -> str | None:
    value = protocol.to_str(body.get(field), field)
    if required and not value:
        raise InvalidParameterValue(f"The request needs '{field}'.")
    return value or None


def _audit_json(entry: Any) -> dict[str, Any]:
    out: dict[str, Any] = dict.fromkeys(AUDIT_FIELDS)
    out.update(protocol.audit_entry_to_json(entry))
    out["user"] = entry.user_id
    return out
