"""The model registry on the SQL store: models, versions, stages, aliases, audit trail.

Every change that moves a stage or an alias takes the model's row lock first (BEGIN IMMEDIATE
on SQLite, SELECT ... FOR UPDATE on PostgreSQL), so concurrent promotions serialize and leave
exactly one holder when they archive the others.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from typing import Any

from sqlalchemy import delete, exc, func, select, update
from sqlalchemy.engine import Connection

from jupyter_mltrack import search, validation
from jupyter_mltrack.entities import AuditEntry, ModelVersion, PagedList, RegisteredModel, Stage
from jupyter_mltrack.exceptions import (
    InvalidParameterValue,
    ResourceAlreadyExists,
    ResourceDoesNotExist,
)
from jupyter_mltrack.store.schema import (
    model_version_tags,
    model_versions,
    registered_model_aliases,
    registered_model_tags,
    registered_models,
    registry_audit,
)
from jupyter_mltrack.validation import validate_alias, validate_model_name


def _now_ms() -> int:
    return int(time.time() * 1000)




def parse_version(version: object) -> int:
    try:
        number = int(str(version))
    except ValueError:
        number = 0
    if number < 1:
        raise InvalidParameterValue(
            f"Invalid model version {version!r}: versions are integers from 1."
        )
    return number


class SqlRegistry:
    """Registry operations over a SqlStore's engine (same database, same transactions)."""

    def __init__(self, store: Any) -> None:
        self.store = store

    # -- helpers --------------------------------------------------------------------------
    def _model_row(self, conn: Connection, name: str, lock: bool = False) -> Any:
        query = select(registered_models).where(registered_models.c.name == name)
        if lock:
            query = query.with_for_update()
        row = conn.execute(query).first()
        if row is None:
            known = [r.name for r in conn.execute(select(registered_models.c.name).limit(20))]
            hint = (
                f" Registered models: {', '.join(known)}."
                if known
                else " No model is registered yet."
            )
            raise ResourceDoesNotExist(f"Registered model {name!r} not found.{hint}")
        return row

    def _version_row(self, conn: Connection, model: Any, version: object) -> Any:
        number = parse_version(version)
        row = conn.execute(
            select(model_versions).where(
                model_versions.c.model_id == model.model_id, model_versions.c.version == number
            )
        ).first()
        if row is None:
            existing = [
                str(v)
                for (v,) in conn.execute(
                    select(model_versions.c.version)
                    .where(model_versions.c.model_id == model.model_id)
                    .order_by(model_versions.c.version)
                )
            ]
            listed = ", ".join(existing) or "none"
            raise ResourceDoesNotExist(
                f"Model {model.name!r} has no version {number} (versions: {listed})."
            )
        return row

    def _audit(
        self,
        conn: Connection,
        model: Any,
        version: int | None,
        action: str,
        target: str | None,
        from_value: str | None,
        to_value: str | None,
        comment: str | None = None,
        details: dict[str, Any] | None = None,
        user_id: str | None = None,
    ) -> None:
        conn.execute(
            registry_audit.insert().values(
                model_id=model.model_id,
                name=model.name,
                version=version,
                action=action,
                target=target,
                from_value=from_value,
                to_value=to_value,
                user_id=user_id or _user(),
                timestamp=_now_ms(),
                comment=comment,
                details=json.dumps(details, default=str) if details is not None else None,
            )
        )

    def _versions(self, conn: Connection, rows: Sequence[Any]) -> list[ModelVersion]:
        if not rows:
            return []
        ids = [r.id for r in rows]
        tag_map: dict[int, dict[str, str]] = {i: {} for i in ids}
        for t in conn.execute(
            select(model_version_tags).where(model_version_tags.c.version_id.in_(ids))
        ):
            tag_map[t.version_id][t.key] = t.value
        alias_map: dict[int, list[str]] = {i: [] for i in ids}
        for a in conn.execute(
            select(registered_model_aliases).where(registered_model_aliases.c.version_id.in_(ids))
        ):
            alias_map[a.version_id].append(a.alias)
        return [
            ModelVersion(
                name=r.name,
                version=r.version,
                creation_timestamp=r.creation_timestamp,
                last_updated_timestamp=r.last_updated_timestamp,
                description=r.description,
                user_id=r.user_id,
                current_stage=r.current_stage,
                source=r.source,
                run_id=r.run_id,
                status=r.status,
                status_message=r.status_message,
                tags=tag_map[r.id],
                run_link=r.run_link,
                aliases=sorted(alias_map[r.id]),
            )
            for r in rows
        ]

    def _models(self, conn: Connection, rows: Sequence[Any]) -> list[RegisteredModel]:
        if not rows:
            return []
        ids = [r.model_id for r in rows]
        tag_map: dict[int, dict[str, str]] = {i: {} for i in ids}
        for t in conn.execute(
            select(registered_model_tags).where(registered_model_tags.c.model_id.in_(ids))
        ):
            tag_map[t.model_id][t.key] = t.value
        alias_map: dict[int, dict[str, int]] = {i: {} for i in ids}
        for model_id, alias, version in conn.execute(
            select(
                registered_model_aliases.c.model_id,
                registered_model_aliases.c.alias,
                model_versions.c.version,
            )
            .join(model_versions, model_versions.c.id == registered_model_aliases.c.version_id)
            .where(registered_model_aliases.c.model_id.in_(ids))
        ):
            alias_map[model_id][alias] = version
        latest: dict[int, list[Any]] = {i: [] for i in ids}
        newest = (
            select(
                model_versions.c.model_id,
                model_versions.c.current_stage,
                func.max(model_versions.c.version).label("v"),
            )
            .where(model_versions.c.model_id.in_(ids))
            .group_by(model_versions.c.model_id, model_versions.c.current_stage)
            .subquery()
        )
        version_rows = conn.execute(
            select(model_versions).join(
                newest,
                (newest.c.model_id == model_versions.c.model_id)
                & (newest.c.v == model_versions.c.version),
            )
        ).all()
        for mv_row, mv in zip(version_rows, self._versions(conn, version_rows)):
            latest[mv_row.model_id].append(mv)
        return [
            RegisteredModel(
                name=r.name,
                creation_timestamp=r.creation_timestamp,
                last_updated_timestamp=r.last_updated_timestamp,
                description=r.description,
                latest_versions=sorted(latest[r.model_id], key=lambda v: v.version),
                tags=tag_map[r.model_id],
                aliases=alias_map[r.model_id],
            )
            for r in rows
        ]

    # -- registered models ----------------------------------------------------------------
    def create_registered_model(
        self, name: str, tags: dict[str, Any] | None = None, description: str | None = None
    ) -> RegisteredModel:
        validate_model_name(name)
        now = _now_ms()
        try:
            with self.store._write() as conn:
                result = conn.execute(
                    registered_models.insert().values(
                        name=name,
                        description=description,
                        creation_timestamp=now,
                        last_updated_timestamp=now,
                    )
                )
                model_id = result.inserted_primary_key[0]
                for key, value in (tags or {}).items():
                    validation.validate_key(key, "Tag")
                    conn.execute(
                        registered_model_tags.insert().values(
                            model_id=model_id, key=key, value=validation.tag_value(key, value)
                        )
                    )
        except exc.IntegrityError:
            raise ResourceAlreadyExists(f"Registered model {name!r} already exists.") from None
        return self.get_registered_model(name)

    def get_registered_model(self, name: str) -> RegisteredModel:
        with self.store._read() as conn:
            return self._models(conn, [self._model_row(conn, name)])[0]

    def search_registered_models(
        self,
        filter_string: str | None = None,
        max_results: int = 100,
        order_by: Sequence[str] | None = None,
        page_token: str | None = None,
    ) -> PagedList[RegisteredModel]:
        return self.store.paged(
            lambda limit, offset: search.compile_registered_models_search(
                filter_string, order_by, limit, offset
            ),
            self._models,
            max_results,
            page_token,
        )

    def rename_registered_model(self, name: str, new_name: str) -> RegisteredModel:
        validate_model_name(new_name)
        try:
            with self.store._write() as conn:
                model = self._model_row(conn, name, lock=True)
                now = _now_ms()
                conn.execute(
                    update(registered_models)
                    .where(registered_models.c.model_id == model.model_id)
                    .values(name=new_name, last_updated_timestamp=now)
                )
                conn.execute(
                    update(model_versions)
                    .where(model_versions.c.model_id == model.model_id)
                    .values(name=new_name)
                )
                self._audit(conn, model, None, "rename", None, name, new_name)
        except exc.IntegrityError:
            raise ResourceAlreadyExists(f"Registered model {new_name!r} already exists.") from None
        return self.get_registered_model(new_name)

    def update_registered_model(self, name: str, description: str | None) -> RegisteredModel:
        with self.store._write() as conn:
            model = self._model_row(conn, name)
            conn.execute(
                update(registered_models)
                .where(registered_models.c.model_id == model.model_id)
                .values(description=description, last_updated_timestamp=_now_ms())
            )
        return self.get_registered_model(name)

    def delete_registered_model(self, name: str) -> None:
        with self.store._write() as conn:
            model = self._model_row(conn, name, lock=True)
            conn.execute(
                delete(registered_models).where(registered_models.c.model_id == model.model_id)
            )

    def set_registered_model_tag(self, name: str, key: str, value: Any) -> None:
        validation.validate_key(key, "Tag")
        text = validation.tag_value(key, value)
        with self.store._write() as conn:
            model = self._model_row(conn, name)
            stmt = self.store._insert(registered_model_tags).values(
                model_id=model.model_id, key=key, value=text
            )
            conn.execute(
                stmt.on_conflict_do_update(index_elements=["model_id", "key"], set_={"value": text})
            )

    def delete_registered_model_tag(self, name: str, key: str) -> None:
        with self.store._write() as conn:
            model = self._model_row(conn, name)
            result = conn.execute(
                delete(registered_model_tags).where(
                    registered_model_tags.c.model_id == model.model_id,
                    registered_model_tags.c.key == key,
                )
            )
            if result.rowcount == 0:
                raise ResourceDoesNotExist(f"No tag {key!r} on registered model {name!r}.")

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
        now = _now_ms()
        with self.store._write() as conn:
            model = self._model_row(conn, name, lock=True)
            number = (
                conn.execute(
                    select(func.max(model_versions.c.version)).where(
                        model_versions.c.model_id == model.model_id
                    )
                ).scalar()
                or 0
            ) + 1
            result = conn.execute(
                model_versions.insert().values(
                    model_id=model.model_id,
                    name=model.name,
                    version=number,
                    creation_timestamp=now,
                    last_updated_timestamp=now,
                    description=description,
                    user_id=_user(),
                    current_stage=Stage.NONE,
                    source=source,
                    run_id=run_id,
                    run_link=run_link,
                    status="READY",
                )
            )
            version_id = result.inserted_primary_key[0]
            for key, value in (tags or {}).items():
                validation.validate_key(key, "Tag")
                conn.execute(
                    model_version_tags.insert().values(
                        version_id=version_id, key=key, value=validation.tag_value(key, value)
                    )
                )
            conn.execute(
                update(registered_models)
                .where(registered_models.c.model_id == model.model_id)
                .values(last_updated_timestamp=now)
            )
            self._audit(
                conn, model, number, "register", None, None, Stage.NONE, details={"source": source}
            )
        return self.get_model_version(name, number)

    def get_model_version(self, name: str, version: object) -> ModelVersion:
        with self.store._read() as conn:
            model = self._model_row(conn, name)
            return self._versions(conn, [self._version_row(conn, model, version)])[0]

    def update_model_version(
        self, name: str, version: object, description: str | None
    ) -> ModelVersion:
        with self.store._write() as conn:
            model = self._model_row(conn, name)
            row = self._version_row(conn, model, version)
            conn.execute(
                update(model_versions)
                .where(model_versions.c.id == row.id)
                .values(description=description, last_updated_timestamp=_now_ms())
            )
        return self.get_model_version(name, version)

    def delete_model_version(self, name: str, version: object) -> None:
        with self.store._write() as conn:
            model = self._model_row(conn, name, lock=True)
            row = self._version_row(conn, model, version)
            conn.execute(delete(model_versions).where(model_versions.c.id == row.id))
            self._audit(conn, model, row.version, "delete_version", None, row.current_stage, None)

    def search_model_versions(
        self,
        filter_string: str | None = None,
        max_results: int = 10_000,
        order_by: Sequence[str] | None = None,
        page_token: str | None = None,
    ) -> PagedList[ModelVersion]:
        return self.store.paged(
            lambda limit, offset: search.compile_model_versions_search(
                filter_string, order_by, limit, offset
            ),
            self._versions,
            max_results,
            page_token,
        )

    def set_model_version_tag(self, name: str, version: object, key: str, value: Any) -> None:
        validation.validate_key(key, "Tag")
        text = validation.tag_value(key, value)
        with self.store._write() as conn:
            row = self._version_row(conn, self._model_row(conn, name), version)
            stmt = self.store._insert(model_version_tags).values(
                version_id=row.id, key=key, value=text
            )
            conn.execute(
                stmt.on_conflict_do_update(
                    index_elements=["version_id", "key"], set_={"value": text}
                )
            )

    def delete_model_version_tag(self, name: str, version: object, key: str) -> None:
        with self.store._write() as conn:
            row = self._version_row(conn, self._model_row(conn, name), version)
            result = conn.execute(
                delete(model_version_tags).where(
                    model_version_tags.c.version_id == row.id, model_version_tags.c.key == key
                )
            )
            if result.rowcount == 0:
                raise ResourceDoesNotExist(f"No tag {key!r} on {name} version {row.version}.")

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
        """Move a version to ``stage``; optionally archive the others in that stage."""
        stage = Stage.canonical(stage)
        if archive_existing_versions and stage not in (Stage.STAGING, Stage.PRODUCTION):
            raise InvalidParameterValue(
                "archive_existing_versions=True only applies to the Staging and Production stages."
            )
        with self.store._write() as conn:
            model = self._model_row(conn, name, lock=True)
            self._transition(
                conn, model, version, stage, archive_existing_versions, comment, action, details
            )
        return self.get_model_version(name, version)

    def _transition(
        self,
        conn: Connection,
        model: Any,
        version: object,
        stage: str,
        archive_existing: bool,
        comment: str | None,
        action: str,
        details: dict[str, Any] | None,
    ) -> None:
        row = self._version_row(conn, model, version)
        now = _now_ms()
        if archive_existing:
            others = conn.execute(
                select(model_versions.c.id, model_versions.c.version).where(
                    model_versions.c.model_id == model.model_id,
                    model_versions.c.current_stage == stage,
                    model_versions.c.id != row.id,
                )
            ).all()
            for other in others:
                conn.execute(
                    update(model_versions)
                    .where(model_versions.c.id == other.id)
                    .values(current_stage=Stage.ARCHIVED, last_updated_timestamp=now)
                )
                self._audit(
                    conn, model, other.version, "archive", stage, stage, Stage.ARCHIVED, comment
                )
        conn.execute(
            update(model_versions)
            .where(model_versions.c.id == row.id)
            .values(current_stage=stage, last_updated_timestamp=now)
        )
        conn.execute(
            update(registered_models)
            .where(registered_models.c.model_id == model.model_id)
            .values(last_updated_timestamp=now)
        )
        self._audit(
            conn, model, row.version, action, stage, row.current_stage, stage, comment, details
        )

    def get_latest_versions(
        self, name: str, stages: Sequence[str] | None = None
    ) -> list[ModelVersion]:
        """The newest version in each stage (all stages when ``stages`` is empty)."""
        wanted = [Stage.canonical(s) for s in stages] if stages else list(Stage.ALL)
        model = self.get_registered_model(name)
        return [v for v in model.latest_versions if v.current_stage in wanted]

    def get_model_version_by_stage(self, name: str, stage: str) -> ModelVersion:
        canonical = Stage.canonical(stage)
        with self.store._read() as conn:
            model = self._model_row(conn, name)
            row = conn.execute(
                select(model_versions)
                .where(
                    model_versions.c.model_id == model.model_id,
                    model_versions.c.current_stage == canonical,
                )
                .order_by(model_versions.c.version.desc())
                .limit(1)
            ).first()
            if row is None:
                held = conn.execute(
                    select(model_versions.c.current_stage, model_versions.c.version)
                    .where(model_versions.c.model_id == model.model_id)
                    .order_by(model_versions.c.version)
                ).all()
                listed = ", ".join(f"v{v} {s}" for s, v in held) or "no versions"
                raise ResourceDoesNotExist(
                    f"No version of model {name!r} is in stage {canonical} (versions: {listed})."
                )
            return self._versions(conn, [row])[0]

    def get_latest_model_version(self, name: str) -> ModelVersion:
        with self.store._read() as conn:
            model = self._model_row(conn, name)
            row = conn.execute(
                select(model_versions)
                .where(model_versions.c.model_id == model.model_id)
                .order_by(model_versions.c.version.desc())
                .limit(1)
            ).first()
            if row is None:
                raise ResourceDoesNotExist(f"Registered model {name!r} has no versions yet.")
            return self._versions(conn, [row])[0]

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
        validate_alias(alias)
        with self.store._write() as conn:
            model = self._model_row(conn, name, lock=True)
            self._set_alias(conn, model, alias, version, comment, action, details)

    def _set_alias(
        self,
        conn: Connection,
        model: Any,
        alias: str,
        version: object,
        comment: str | None,
        action: str,
        details: dict[str, Any] | None,
    ) -> None:
        row = self._version_row(conn, model, version)
        previous = self._alias_version(conn, model, alias)
        if previous is None:
            conn.execute(
                registered_model_aliases.insert().values(
                    model_id=model.model_id, alias=alias, version_id=row.id
                )
            )
        else:
            conn.execute(
                update(registered_model_aliases)
                .where(
                    registered_model_aliases.c.model_id == model.model_id,
                    registered_model_aliases.c.alias == alias,
                )
                .values(version_id=row.id)
            )
        self._audit(
            conn,
            model,
            row.version,
            action,
            alias,
            None if previous is None else str(previous),
            str(row.version),
            comment,
            details,
        )

    def _alias_version(self, conn: Connection, model: Any, alias: str) -> int | None:
        return conn.execute(
            select(model_versions.c.version)
            .join(
                registered_model_aliases,
                registered_model_aliases.c.version_id == model_versions.c.id,
            )
            .where(
                registered_model_aliases.c.model_id == model.model_id,
                registered_model_aliases.c.alias == alias,
            )
        ).scalar()

    def delete_registered_model_alias(self, name: str, alias: str) -> None:
        with self.store._write() as conn:
            model = self._model_row(conn, name, lock=True)
            previous = self._alias_version(conn, model, alias)
            if previous is None:
                raise ResourceDoesNotExist(f"Model {name!r} has no alias {alias!r}.")
            conn.execute(
                delete(registered_model_aliases).where(
                    registered_model_aliases.c.model_id == model.model_id,
                    registered_model_aliases.c.alias == alias,
                )
            )
            self._audit(conn, model, previous, "delete_alias", alias, str(previous), None)

    def get_model_version_by_alias(self, name: str, alias: str) -> ModelVersion:
        with self.store._read() as conn:
            model = self._model_row(conn, name)
            row = conn.execute(
                select(model_versions)
                .join(
                    registered_model_aliases,
                    registered_model_aliases.c.version_id == model_versions.c.id,
                )
                .where(
                    registered_model_aliases.c.model_id == model.model_id,
                    registered_model_aliases.c.alias == alias,
                )
            ).first()
            if row is None:
                known = [
                    a
                    for (a,) in conn.execute(
                        select(registered_model_aliases.c.alias).where(
                            registered_model_aliases.c.model_id == model.model_id
                        )
                    )
                ]
                listed = ", ".join(sorted(known)) or "none"
                raise ResourceDoesNotExist(
                    f"Model {name!r} has no alias {alias!r} (aliases: {listed})."
                )
            return self._versions(conn, [row])[0]

    # -- audit and rollback ---------------------------------------------------------------
    def record(
        self,
        name: str,
        version: int | None,
        action: str,
        target: str | None,
        comment: str | None,
        details: dict[str, Any] | None,
    ) -> None:
        """Write an audit entry that changes nothing else (e.g. a refused promotion)."""
        with self.store._write() as conn:
            model = self._model_row(conn, name)
            self._audit(conn, model, version, action, target, None, None, comment, details)

    def get_audit_trail(self, name: str) -> list[AuditEntry]:
        with self.store._read() as conn:
            model = self._model_row(conn, name)
            rows = conn.execute(
                select(registry_audit)
                .where(registry_audit.c.model_id == model.model_id)
                .order_by(registry_audit.c.id)
            ).all()
        return [
            AuditEntry(
                name=r.name,
                version=r.version,
                action=r.action,
                target=r.target,
                from_value=r.from_value,
                to_value=r.to_value,
                user_id=r.user_id,
                timestamp=r.timestamp,
                comment=r.comment,
                details=json.loads(r.details) if r.details else None,
            )
            for r in rows
        ]

    def rollback(
        self,
        name: str,
        stage: str | None = None,
        alias: str | None = None,
        comment: str | None = None,
    ) -> ModelVersion:
        """Give ``stage`` (or ``alias``) back to the version that held it before the current one."""
        with self.store._write() as conn:
            model = self._model_row(conn, name, lock=True)
            target = Stage.canonical(stage) if stage is not None else alias
            previous, current = self._rollback_previous(conn, model, name, stage, alias)
            if stage is not None:
                self._transition(
                    conn,
                    model,
                    previous,
                    target,
                    True,
                    comment,
                    "rollback",
                    {"from_version": current},
                )
            else:
                self._set_alias(
                    conn, model, target, previous, comment, "rollback", {"from_version": current}
                )
        return self.get_model_version(name, previous)

    def rollback_candidate(
        self, name: str, stage: str | None = None, alias: str | None = None
    ) -> ModelVersion:
        """The version ``rollback(name, stage=..., alias=...)`` would restore; changes nothing."""
        with self.store._read() as conn:
            model = self._model_row(conn, name)
            previous, _ = self._rollback_previous(conn, model, name, stage, alias)
        return self.get_model_version(name, previous)

    def _rollback_previous(
        self, conn: Connection, model: Any, name: str, stage: str | None, alias: str | None
    ) -> tuple[int, int | None]:
        """(version to restore, current holder) of a stage or alias, from the audit trail."""
        if (stage is None) == (alias is None):
            raise InvalidParameterValue("rollback needs exactly one of stage= or alias=.")
        target = Stage.canonical(stage) if stage is not None else alias
        history = conn.execute(
            select(registry_audit.c.version, registry_audit.c.action, registry_audit.c.to_value)
            .where(
                registry_audit.c.model_id == model.model_id,
                registry_audit.c.target == target,
                registry_audit.c.action.in_(("transition", "promote", "rollback", "set_alias")),
            )
            .order_by(registry_audit.c.id)
        ).all()
        stack = _holders(history, stage is not None, target)
        current = self._current_holder(conn, model, stage, alias)
        existing = {
            v
            for (v,) in conn.execute(
                select(model_versions.c.version).where(model_versions.c.model_id == model.model_id)
            )
        }
        while stack and stack[-1] == current:
            stack.pop()
        previous = next((v for v in reversed(stack) if v in existing and v != current), None)
        if previous is None:
            raise ResourceDoesNotExist(
                f"No earlier holder of {_what(stage, alias)} for {name!r} to roll back to"
                + (f" (only version {current} has held it)." if current else ".")
            )
        return previous, current

    def _current_holder(
        self, conn: Connection, model: Any, stage: str | None, alias: str | None
    ) -> int | None:
        if alias is not None:
            return self._alias_version(conn, model, alias)
        return conn.execute(
            select(func.max(model_versions.c.version)).where(
                model_versions.c.model_id == model.model_id,
                model_versions.c.current_stage == Stage.canonical(stage),
            )
        ).scalar()


def _holders(history: Sequence[Any], is_stage: bool, target: str) -> list[int]:
    """Versions that held a stage/alias, oldest first, with rolled-back holders removed."""
    stack: list[int] = []
    for version, action, to_value in history:
        if version is None or (is_stage and to_value != target):
            continue
        if action == "rollback" and stack:
            stack.pop()  # the holder that was rolled back
        if not stack or stack[-1] != version:
            stack.append(int(version))
    return stack


def _what(stage: str | None, alias: str | None) -> str:
    return f"stage {Stage.canonical(stage)}" if stage is not None else f"alias {alias!r}"


def _user() -> str:
    from jupyter_mltrack.identity import current_user

    return current_user()
