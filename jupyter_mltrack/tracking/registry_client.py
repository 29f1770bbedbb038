"""Registry methods of the Client (MLflow's names) plus promote / rollback / audit trail."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from jupyter_mltrack.entities import AuditEntry, ModelVersion, PagedList, RegisteredModel
from jupyter_mltrack.store import get_store


class RegistryMethods:
    """Mixed into ``Client``: everything about registered models and their versions."""

    _registry_uri: str

    @property
    def registry(self) -> Any:
        """The registry store (the tracking store's database unless a registry URI was set)."""
        return get_store(self._registry_uri).registry  # type: ignore[attr-defined]

    # registered models
    def create_registered_model(
        self, name: str, tags: dict[str, Any] | None = None, description: str | None = None
    ) -> RegisteredModel:
        return self.registry.create_registered_model(name, tags, description)

    def get_registered_model(self, name: str) -> RegisteredModel:
        return self.registry.get_registered_model(name)

    def search_registered_models(
        self,
        filter_string: str | None = None,
        max_results: int = 100,
        order_by: Sequence[str] | None = None,
        page_token: str | None = None,
    ) -> PagedList[RegisteredModel]:
        return self.registry.search_registered_models(
            filter_string, max_results, order_by, page_token
        )

    def rename_registered_model(self, name: str, new_name: str) -> RegisteredModel:
        return self.registry.rename_registered_model(name, new_name)

    def update_registered_model(self, name: str, description: str | None = None) -> RegisteredModel:
        return self.registry.update_registered_model(name, description)

    def delete_registered_model(self, name: str) -> None:
        self.registry.delete_registered_model(name)

    def set_registered_model_tag(self, name: str, key: str, value: Any) -> None:
        self.registry.set_registered_model_tag(name, key, value)

    def delete_registered_model_tag(self, name: str, key: str) -> None:
        self.registry.delete_registered_model_tag(name, key)

    # versions
    def create_model_version(
        self,
        name: str,
        source: str,
        run_id: str | None = None,
        tags: dict[str, Any] | None = None,
        run_link: str | None = None,
        description: str | None = None,
        await_creation_for: int = 0,
    ) -> ModelVersion:
        return self.registry.create_model_version(name, source, run_id, tags, run_link, description)

    def get_model_version(self, name: str, version: str | int) -> ModelVersion:
        return self.registry.get_model_version(name, version)

    def update_model_version(
        self, name: str, version: str | int, description: str | None = None
    ) -> ModelVersion:
        return self.registry.update_model_version(name, version, description)

    def delete_model_version(self, name: str, version: str | int) -> None:
        self.registry.delete_model_version(name, version)

    def search_model_versions(
        self,
        filter_string: str | None = None,
        max_results: int = 10_000,
        order_by: Sequence[str] | None = None,
        page_token: str | None = None,
    ) -> PagedList[ModelVersion]:
        return self.registry.search_model_versions(filter_string, max_results, order_by, page_token)

    def set_model_version_tag(self, name: str, version: str | int, key: str, value: Any) -> None:
        self.registry.set_model_version_tag(name, version, key, value)

    def delete_model_version_tag(self, name: str, version: str | int, key: str) -> None:
        self.registry.delete_model_version_tag(name, version, key)

    def get_model_version_download_uri(self, name: str, version: str | int) -> str:
        return self.registry.get_model_version(name, version).source

    # stages and aliases
    def transition_model_version_stage(
        self,
        name: str,
        version: str | int,
        stage: str,
        archive_existing_versions: bool = False,
        comment: str | None = None,
    ) -> ModelVersion:
        """Move a version to None/Staging/Production/Archived (recorded in the audit trail)."""
        return self.registry.transition_model_version_stage(
            name, version, stage, archive_existing_versions, comment
        )

    def get_latest_versions(
        self, name: str, stages: Sequence[str] | None = None
    ) -> list[ModelVersion]:
        return self.registry.get_latest_versions(name, stages)

    def get_model_version_by_stage(self, name: str, stage: str) -> ModelVersion:
        """The newest version in ``stage`` (what ``models:/<name>/<stage>`` loads)."""
        return self.registry.get_model_version_by_stage(name, stage)

    def get_latest_model_version(self, name: str) -> ModelVersion:
        """The newest version (what ``models:/<name>/latest`` loads)."""
        return self.registry.get_latest_model_version(name)

    def set_registered_model_alias(self, name: str, alias: str, version: str | int) -> None:
        self.registry.set_registered_model_alias(name, alias, version)

    def delete_registered_model_alias(self, name: str, alias: str) -> None:
        self.registry.delete_registered_model_alias(name, alias)

    def get_model_version_by_alias(self, name: str, alias: str) -> ModelVersion:
        return self.registry.get_model_version_by_alias(name, alias)

    # our own: gated promotion, rollback, audit trail
    def promote(
        self,
        name: str,
        version: str | int,
        stage: str | None = None,
        alias: str | None = None,
        validate: Any = None,
        archive_existing_versions: bool = True,
        comment: str | None = None,
    ) -> ModelVersion:
        """Promote a version to a stage (default Production) or an alias, if it passes ``validate``.

        ``validate`` is a callable given the loaded model (returning a bool, a ``(bool, details)``
        pair or a dict with ``passed``) or a ``ValidationGate`` / dict with ``data``, ``targets``,
        ``metric`` and ``threshold``. A refused promotion raises ``PromotionRefused``, changes no
        stage or alias, and is recorded in the audit trail with its validation result.
        """
        from jupyter_mltrack.registry import promote

        return promote(
            self, name, version, stage, alias, validate, archive_existing_versions, comment
        )

    def rollback(
        self,
        name: str,
        stage: str | None = None,
        alias: str | None = None,
        comment: str | None = None,
    ) -> ModelVersion:
        """Give a stage or alias back to the version that held it before the current one."""
        return self.registry.rollback(name, stage, alias, comment)

    def rollback_candidate(
        self, name: str, stage: str | None = None, alias: str | None = None
    ) -> ModelVersion:
        """The version ``rollback`` would give the stage or alias back to; changes nothing."""
        return self.registry.rollback_candidate(name, stage, alias)

    def get_audit_trail(self, name: str) -> list[AuditEntry]:
        """Every transition, alias move, promotion (and refusal) and rollback, oldest first."""
        return self.registry.get_audit_trail(name)
