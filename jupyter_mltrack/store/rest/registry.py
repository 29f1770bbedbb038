"""``RestRegistry``: SqlRegistry's methods over a tracking server's model registry routes.

MLflow's protocol covers models, versions, stages, tags and aliases. Our audit trail and
rollback exist only on ``mltrack server`` (routes under ``/api/2.0/mltrack/``); against another
server they raise a clear "not supported by this server" error, while ``promote`` still works
(its validation gate runs in the client, the stage/alias move is the standard call).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from jupyter_mltrack import validation
from jupyter_mltrack.entities import AuditEntry, ModelVersion, PagedList, RegisteredModel, Stage
from jupyter_mltrack.exceptions import InvalidParameterValue, MlflowException, ResourceDoesNotExist
from jupyter_mltrack.store.registry import parse_version
from jupyter_mltrack.store.rest import protocol
from jupyter_mltrack.store.rest.http import HttpClient

_NOT_FOUND_CODES = ("ENDPOINT_NOT_FOUND",)


class NotSupportedByServer(MlflowException):
    """The tracking server lacks a jupyter_mltrack extension (audit trail, rollback)."""

    default_error_code = "NOT_IMPLEMENTED"


class RestRegistry:
    """The model registry of the tracking server behind ``http``."""

    def __init__(self, http: HttpClient) -> None:
        self.http = http
        self._extensions: bool | None = None  # whether the server has our /mltrack/ routes

    def _call(
        self, name: str, body: dict[str, Any] | None = None, repeatable: bool = True
    ) -> dict[str, Any]:
        """Call MLflow endpoint ``name`` (see ``protocol.ROUTES``)."""
        method, path = protocol.ROUTES[name]
        return self.http.call(method, protocol.API_PREFIX + path, body, repeatable=repeatable)

    def _extension(self, name: str, what: str, body: dict[str, Any]) -> dict[str, Any]:
        """Call our own endpoint ``name`` (``protocol.MLTRACK_ROUTES``); a server without it
        (a plain MLflow server) gets a clear ``NotSupportedByServer``."""
        if self._extensions is False:
            raise self._unsupported(what)
        method, path = protocol.MLTRACK_ROUTES[name]
        try:
            answer = self.http.call(method, path, body)
        except MlflowException as err:
            if err.error_code in _NOT_FOUND_CODES and _is_route_miss(err):
                self._extensions = False
                raise self._unsupported(what) from None
            raise
        self._extensions = True
        return answer

    def _unsupported(self, what: str) -> NotSupportedByServer:
        return NotSupportedByServer(
            f"{what} is not supported by this server ({self.http.display_url}): it is a "
            "jupyter_mltrack extension of the MLflow protocol, served by `mltrack server`. "
            "Stages, aliases and promote() work on any MLflow server."
        )

    # -- registered models ----------------------------------------------------------------
    def create_registered_model(
        self, name: str, tags: dict[str, Any] | None = None, description: str | None = None
    ) -> RegisteredModel:
        validation.validate_model_name(name)
        body: dict[str, Any] = {"name": name, "tags": _tags(tags)}
        if description is not None:
            body["description"] = description
        answer = self._call("create_registered_model", body, repeatable=False)
        return protocol.registered_model_from_json(answer["registered_model"])

    def get_registered_model(self, name: str) -> RegisteredModel:
        answer = self._call("get_registered_model", {"name": name})
        return protocol.registered_model_from_json(answer["registered_model"])

    def search_registered_models(
        self,
        filter_string: str | None = None,
        max_results: int = 100,
        order_by: Sequence[str] | None = None,
        page_token: str | None = None,
    ) -> PagedList[RegisteredModel]:
        answer = self._call(
            "search_registered_models",
            _search_query(filter_string, max_results, order_by, page_token),
        )
        found = [
            protocol.registered_model_from_json(m) for m in answer.get("registered_models", [])
        ]
        return PagedList(found, answer.get("next_page_token") or None)

    def rename_registered_model(self, name: str, new_name: str) -> RegisteredModel:
        validation.validate_model_name(new_name)
        body = {"name": name, "new_name": new_name}
        answer = self._call("rename_registered_model", body, repeatable=False)
        return protocol.registered_model_from_json(answer["registered_model"])

    def update_registered_model(self, name: str, description: str | None) -> RegisteredModel:
        body = {"name": name, "description": description or ""}
        answer = self._call("update_registered_model", body)
        return protocol.registered_model_from_json(answer["registered_model"])

    def delete_registered_model(self, name: str) -> None:
        self._call("delete_registered_model", {"name": name}, repeatable=False)

    def set_registered_model_tag(self, name: str, key: str, value: Any) -> None:
        validation.validate_key(key, "Tag")
        body = {"name": name, "key": key, "value": validation.tag_value(key, value)}
        self._call("set_registered_model_tag", body)

    def delete_registered_model_tag(self, name: str, key: str) -> None:
        self._call("delete_registered_model_tag", {"name": name, "key": key})

    # -- versions -------------------------------------------------------------------------
    def create_model_version(
        self,
        name: str,
        source: str,
        run_id: str | None = None,
        tags: dict[str, Any] | None = None,
        run_link: str | None = None,
        description: str | None = None,
    ) -> ModelVersion:
        body: dict[str, Any] = {"name": name, "source": source, "tags": _tags(tags)}
        for key, value in (
            ("run_id", run_id),
            ("run_link", run_link),
            ("description", description),
        ):
            if value is not None:
                body[key] = value
        answer = self._call("create_model_version", body, repeatable=False)
        return protocol.model_version_from_json(answer["model_version"])

    def get_model_version(self, name: str, version: object) -> ModelVersion:
        query = {"name": name, "version": str(parse_version(version))}
        answer = self._call("get_model_version", query)
        return protocol.model_version_from_json(answer["model_version"])

    def update_model_version(
        self, name: str, version: object, description: str | None
    ) -> ModelVersion:
        body = {
            "name": name,
            "version": str(parse_version(version)),
            "description": description or "",
        }
        answer = self._call("update_model_version", body)
        return protocol.model_version_from_json(answer["model_version"])

    def delete_model_version(self, name: str, version: object) -> None:
        body = {"name": name, "version": str(parse_version(version))}
        self._call("delete_model_version", body, repeatable=False)

    def search_model_versions(
        self,
        filter_string: str | None = None,
        max_results: int = 10_000,
        order_by: Sequence[str] | None = None,
        page_token: str | None = None,
    ) -> PagedList[ModelVersion]:
        answer = self._call(
            "search_model_versions",
            _search_query(filter_string, max_results, order_by, page_token),
        )
        found = [protocol.model_version_from_json(v) for v in answer.get("model_versions", [])]
        return PagedList(found, answer.get("next_page_token") or None)

    def set_model_version_tag(self, name: str, version: object, key: str, value: Any) -> None:
        validation.validate_key(key, "Tag")
        body = {
            "name": name,
            "version": str(parse_version(version)),
            "key": key,
            "value": validation.tag_value(key, value),
        }
        self._call("set_model_version_tag", body)

    def delete_model_version_tag(self, name: str, version: object, key: str) -> None:
        body = {"name": name, "version": str(parse_version(version)), "key": key}
        self._call("delete_model_version_tag", body)

    # -- stages ---------------------------------------------------------------------------
    def transition_model_version_stage(
        self,
        name: str,
        version: object,
        stage: str,
        archive_existing_versions: bool = False,
        comment: str | None = None,
        action: str = "transition",
        details: dict[str, Any] | None = None,
    ) -> ModelVersion:
        """Move a version to ``stage``; optionally archive the others in that stage.

        ``action``/``details`` (a promotion and its validation result) go to the audit trail
        of servers that keep one; elsewhere the plain transition is made.
        """
        stage = Stage.canonical(stage)
        if archive_existing_versions and stage not in (Stage.STAGING, Stage.PRODUCTION):
            raise InvalidParameterValue(
                "archive_existing_versions=True only applies to the Staging and Production stages."
            )
        body: dict[str, Any] = {
            "name": name,
            "version": str(parse_version(version)),
            "stage": stage,
            "archive_existing_versions": bool(archive_existing_versions),
        }
        if action == "promote":
            promoted = self._promote({**body, "comment": comment, "details": details})
            if promoted is not None:
                return promoted
        answer = self._call("transition_model_version_stage", body)
        return protocol.model_version_from_json(answer["model_version"])

    def get_latest_versions(
        self, name: str, stages: Sequence[str] | None = None
    ) -> list[ModelVersion]:
        """The newest version in each stage (all stages when ``stages`` is empty)."""
        wanted = [Stage.canonical(s) for s in stages] if stages else list(Stage.ALL)
        model = self.get_registered_model(name)
        return [v for v in model.latest_versions if v.current_stage in wanted]

    def get_model_version_by_stage(self, name: str, stage: str) -> ModelVersion:
        canonical = Stage.canonical(stage)
        found = self.get_latest_versions(name, [canonical])
        if not found:
            held = self.search_model_versions(f"name = '{_quote(name)}'")
            listed = (
                ", ".join(f"v{v.version} {v.current_stage}" for v in sorted(held, key=_number))
                or "no versions"
            )
            raise ResourceDoesNotExist(
                f"No version of model {name!r} is in stage {canonical} (versions: {listed})."
            )
        return max(found, key=_number)

    def get_latest_model_version(self, name: str) -> ModelVersion:
        # The newest version is the newest of its own stage, so it is among latest_versions.
        model = self.get_registered_model(name)
        if not model.latest_versions:
            raise ResourceDoesNotExist(f"Registered model {name!r} has no versions yet.")
        return max(model.latest_versions, key=_number)

    # -- aliases --------------------------------------------------------------------------
    def set_registered_model_alias(
        self,
        name: str,
        alias: str,
        version: object,
        comment: str | None = None,
        action: str = "set_alias",
        details: dict[str, Any] | None = None,
    ) -> None:
        validation.validate_alias(alias)
        body: dict[str, Any] = {
            "name": name,
            "alias": alias,
            "version": str(parse_version(version)),
        }
        if action == "promote":
            extended = {k: v for k, v in body.items() if k != "version"}
            promoted = self._promote(
                {**extended, "version": body["version"], "comment": comment, "details": details}
            )
            if promoted is not None:
                return
        self._call("set_registered_model_alias", body)

    def delete_registered_model_alias(self, name: str, alias: str) -> None:
        self._call("delete_registered_model_alias", {"name": name, "alias": alias})

    def get_model_version_by_alias(self, name: str, alias: str) -> ModelVersion:
        answer = self._call("get_model_version_by_alias", {"name": name, "alias": alias})
        return protocol.model_version_from_json(answer["model_version"])

    # -- audit and rollback (jupyter_mltrack extensions) ----------------------------------
    def _promote(self, body: dict[str, Any]) -> ModelVersion | None:
        """A promotion through our server (recorded as one in its audit trail), or None when
        the server lacks the route and the plain MLflow call must do."""
        try:
            answer = self._extension("promote", "Promotion with an audit trail", body)
        except NotSupportedByServer:
            return None
        return protocol.model_version_from_json(answer["model_version"])

    def record(
        self,
        name: str,
        version: int | None,
        action: str,
        target: str | None,
        comment: str | None,
        details: dict[str, Any] | None,
    ) -> None:
        """Audit entries are written by the server itself; nothing to send from here."""

    def get_audit_trail(self, name: str) -> list[AuditEntry]:
        answer = self._extension("get_audit_trail", "The audit trail", {"name": name})
        return [protocol.audit_entry_from_json(e) for e in answer.get("entries", [])]

    def rollback(
        self,
        name: str,
        stage: str | None = None,
        alias: str | None = None,
        comment: str | None = None,
    ) -> ModelVersion:
        body = _rollback_body(name, stage, alias)
        if comment:
            body["comment"] = comment
        answer = self._extension("rollback", "Rollback", body)
        return protocol.model_version_from_json(answer["model_version"])

    def rollback_candidate(
        self, name: str, stage: str | None = None, alias: str | None = None
    ) -> ModelVersion:
        answer = self._extension(
            "rollback_candidate", "Rollback", _rollback_body(name, stage, alias)
        )
        return protocol.model_version_from_json(answer["model_version"])


def _is_route_miss(err: MlflowException) -> bool:
    """A 404 for the route itself (not for a model the call named)."""
    return err.error_code == "ENDPOINT_NOT_FOUND"


def _rollback_body(name: str, stage: str | None, alias: str | None) -> dict[str, Any]:
    if (stage is None) == (alias is None):
        raise InvalidParameterValue("rollback needs exactly one of stage= or alias=.")
    if stage is not None:
        return {"name": name, "stage": Stage.canonical(stage)}
    return {"name": name, "alias": alias}


def _tags(tags: dict[str, Any] | None) -> list[dict[str, str]]:
    out = []
    for key, value in (tags or {}).items():
        validation.validate_key(key, "Tag")
        out.append({"key": key, "value": validation.tag_value(key, value)})
    return out


def _search_query(
    filter_string: str | None,
    max_results: int,
    order_by: Sequence[str] | None,
    page_token: str | None,
) -> dict[str, Any]:
    query: dict[str, Any] = {"max_results": max_results}
    if filter_string:
        query["filter"] = filter_string
    if order_by:
        query["order_by"] = list(order_by)
    if page_token:
        query["page_token"] = page_token
    return query


def _number(version: ModelVersion) -> int:
    return int(version.version)


def _quote(text: str) -> str:
    return text.replace("'", "\\'")
