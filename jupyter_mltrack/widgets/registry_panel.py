"""RegistryPanel: registered models, their versions and audit trail, and the registry's actions
(promote, alias, archive, roll back, describe), each behind a confirmation that says what will
change before anything does.

The panel only talks to the Client. What each action would change is worked out from the
store's current state when the button is clicked, shown in ``confirm_box``, and worked out
again on Confirm: if the registry moved in between, nothing is done and the new picture is shown.
"""

from __future__ import annotations

import functools
import html
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import ipywidgets as w

from jupyter_mltrack.entities import AuditEntry, ModelVersion, RegisteredModel, Stage
from jupyter_mltrack.exceptions import (
    InvalidParameterValue,
    InvalidState,
    PromotionRefused,
    ResourceDoesNotExist,
)
from jupyter_mltrack.validation import validate_alias
from jupyter_mltrack.widgets._panel import Panel, action, describe_error, logger
from jupyter_mltrack.widgets.grid import DataGrid
from jupyter_mltrack.widgets.registry_text import (
    AUDIT_COLUMNS,
    HELD_STAGES,
    MODEL_COLUMNS,
    VERSION_COLUMNS,
    alias_holder,
    archive_changes,
    audit_rows,
    comment_line,
    describe_gate,
    describe_validation,
    find_version,
    model_info_html,
    model_row,
    promoted_html,
    promotion_changes,
    quoted,
    refused_html,
    rollback_changes,
    rollback_targets,
    stage_holders,
    version_row,
)

_NEEDS_VERSION = ("promote", "set_alias", "archive")


# -- the panel --------------------------------------------------------------------------------
@dataclass
class _Plan:
    """A proposed action: what it will change (shown), and how to do it."""

    title: str
    changes: list[str]
    run: Callable[[], str]  # performs the action; returns the outcome as HTML
    gate: str | None = None

    def shown(self) -> tuple[str, list[str], str | None]:
        return self.title, self.changes, self.gate


@dataclass
class _Pending:
    kind: str
    params: dict[str, Any]
    plan: _Plan


def _refresh_on_missing(method: Callable[..., Any]) -> Callable[..., Any]:
    """Something the user picked vanished under them: say so, drop the confirmation, reload."""

    @functools.wraps(method)
    def wrapper(self: RegistryPanel, *args: Any, **kwargs: Any) -> Any:
        try:
            return method(self, *args, **kwargs)
        except ResourceDoesNotExist as err:
            self._set_pending(None)
            try:
                self._reload()
            except Exception:
                logger.debug("registry panel reload failed", exc_info=True)
            self.show_error(f"{err.message} The panel has been refreshed.")
            return None

    return wrapper


class RegistryPanel(Panel):
    """Registered models, their versions and audit trail, with the registry's actions.

    Parameters
    ----------
    name : str, optional
        The model to select first (an unknown name is shown as an error, not raised).
    validate : ValidationGate, dict or callable, optional
        Handed to ``Client.promote(..., validate=validate)`` by both promote buttons; a refused
        promotion shows the gate's result and changes nothing. Without it promotions still go
        through ``promote``, unchecked (the confirmation says so). "Set alias" moves an alias
        directly, without the gate.
    client, tracking_uri, background
        See ``Panel``.

    Every action (promote, set/delete alias, archive, roll back, edit description) first shows
    in ``confirm_box`` what will change and only acts on ``confirm_button``. "Edit description"
    edits the selected version's description, or the model's when no version is selected.
    ``comment_box`` (optional) is recorded in the audit trail by promote, archive and roll back.
    """

    def __init__(
        self,
        name: str | None = None,
        validate: Any = None,
        client: Any = None,
        tracking_uri: str | None = None,
        background: bool = True,
        **kwargs: Any,
    ) -> None:
        super().__init__(client=client, tracking_uri=tracking_uri, background=background, **kwargs)
        self.add_class("mltrack-registry-panel")
        self.validate = validate
        self.model_name: str | None = None
        self._models: list[RegisteredModel] = []
        self._versions: list[ModelVersion] = []
        self._trail: list[AuditEntry] = []
        self._pending: _Pending | None = None
        self._syncing = False
        self._described: tuple[str | None, int | None] | None = None
        self._build()
        self.model_name = name
        try:  # loaded before the constructor returns, even in background: a stable repr
            self._reload()
        except Exception as err:
            self.show_error(describe_error(err))

    # -- layout -------------------------------------------------------------------------------
    def _build(self) -> None:
        self.models_grid = DataGrid(
            MODEL_COLUMNS, selection_mode="single", empty_text="No registered models yet."
        )
        self.model_info = w.HTML()
        self.versions_grid = DataGrid(
            VERSION_COLUMNS,
            selection_mode="single",
            sort_key="version",
            sort_desc=True,
            empty_text="Select a model to see its versions.",
        )
        self.audit_grid = DataGrid(
            AUDIT_COLUMNS, selection_mode="none", empty_text="No registry decisions yet."
        )
        button = functools.partial(w.Button, layout=w.Layout(width="auto"))
        self.refresh_button = button(description="Refresh", icon="refresh")
        self.promote_staging_button = button(description="Promote to Staging")
        self.promote_production_button = button(description="Promote to Production")
        self.archive_existing = w.Checkbox(
            value=True,
            description="archive existing",
            indent=False,
            tooltip="Archive the versions already in the target stage",
            layout=w.Layout(width="auto"),
        )
        self.archive_button = button(description="Archive")
        self.alias_box = w.Text(placeholder="alias, e.g. champion", layout=w.Layout(width="14em"))
        self.set_alias_button = button(description="Set alias")
        self.delete_alias_button = button(description="Delete alias")
        self.rollback_target = w.Dropdown(options=[], value=None, layout=w.Layout(width="14em"))
        self.rollback_button = button(description="Roll back")
        self.comment_box = w.Text(
            placeholder="comment for the audit trail (optional)", layout=w.Layout(width="24em")
        )
        self.description_box = w.Textarea(layout=w.Layout(width="36em", height="4em"))
        self.edit_description_button = button(description="Edit description")
        self.confirm_text = w.HTML()
        self.confirm_button = button(description="Confirm", button_style="warning", icon="check")
        self.cancel_button = button(description="Cancel")
        self.confirm_box = w.VBox(
            [self.confirm_text, w.HBox([self.confirm_button, self.cancel_button])],
            layout=w.Layout(display="none", border="1px solid var(--jp-warn-color1, #f57c00)"),
        )
        self.confirm_box.add_class("mltrack-confirm")
        self.result_box = w.HTML()
        self.result_box.add_class("mltrack-result")
        self.detail_area = w.VBox()

        self.children = [
            w.HBox([self.refresh_button, self.status]),
            self.error_box,
            self.models_grid,
            self.model_info,
            self.versions_grid,
            w.HBox(
                [
                    self.promote_staging_button,
                    self.promote_production_button,
                    self.archive_existing,
                    self.archive_button,
                ]
            ),
            w.HBox([self.alias_box, self.set_alias_button, self.delete_alias_button]),
            w.HBox([self.rollback_target, self.rollback_button, self.comment_box]),
            w.HBox([self.description_box, self.edit_description_button]),
            self.confirm_box,
            self.result_box,
            w.HTML("<b>Audit trail</b> (newest first)"),
            self.audit_grid,
            self.detail_area,
        ]

        self.models_grid.observe(self._on_model_pick, names="selected")
        self.versions_grid.observe(self._on_version_pick, names="selected")
        self.versions_grid.observe(self._on_version_link, names="clicked")
        self.alias_box.observe(self._sync_buttons, names="value")
        self.rollback_target.observe(self._sync_buttons, names="value")
        self.archive_existing.observe(self._on_archive_toggle, names="value")
        self.refresh_button.on_click(self.refresh)
        self.promote_staging_button.on_click(lambda _: self._ask_promote(Stage.STAGING))
        self.promote_production_button.on_click(lambda _: self._ask_promote(Stage.PRODUCTION))
        self.set_alias_button.on_click(
            lambda _: self._ask("set_alias", version=self.selected_version, alias=self._alias())
        )
        self.delete_alias_button.on_click(lambda _: self._ask("delete_alias", alias=self._alias()))
        self.archive_button.on_click(lambda _: self._ask("archive", version=self.selected_version))
        self.rollback_button.on_click(
            lambda _: self._ask("rollback", target=self.rollback_target.value)
        )
        self.edit_description_button.on_click(
            lambda _: self._ask(
                "describe", version=self.selected_version, text=self.description_box.value
            )
        )
        self.confirm_button.on_click(self.confirm)
        self.cancel_button.on_click(self.cancel)
        self._sync_buttons()

    # -- public API -----------------------------------------------------------------------------
    @property
    def selected_version(self) -> int | None:
        """The version selected in ``versions_grid`` (None when none is)."""
        ids = self.versions_grid.selected
        return int(ids[0]) if ids and self.model_name is not None else None

    @action
    def select_model(self, name: str | None) -> None:
        """Show ``name`` (None: no model); an unknown name is an error in ``error_box``."""
        self.clear_error()
        self._set_pending(None)
        if name != self.model_name:
            self.result_box.value = ""
        self.model_name = name
        self._reload()

    def select_version(self, version: int | str | None) -> None:
        """Select a version in ``versions_grid`` (what a row click does)."""
        self.versions_grid.select([] if version is None else [str(version)])

    @action
    @_refresh_on_missing
    def refresh(self) -> None:
        """Reload models, versions and the audit trail from the store."""
        self.clear_error()
        self._reload()

    @action
    @_refresh_on_missing
    def confirm(self) -> None:
        """Do the pending action, unless the registry changed since it was shown."""
        pending = self._pending
        if pending is None:
            raise InvalidState("Nothing to confirm: pick an action first.")
        self.clear_error()
        fresh = self._plan(pending.kind, **pending.params)
        if fresh.shown() != pending.plan.shown():
            self._set_pending(_Pending(pending.kind, pending.params, fresh))
            self._reload()
            raise InvalidState(
                "The registry changed since this confirmation was shown; nothing was done. "
                "Check what will change now and Confirm again."
            )
        self._set_pending(None)
        self.set_status(f"{fresh.title}…")
        try:
            outcome = fresh.run()
        finally:
            self._reload()
        self.result_box.value = outcome
        self.set_status(f"Done: {fresh.title}")

    @action
    def cancel(self) -> None:
        """Drop the pending action; nothing changes."""
        if self._pending is not None:
            self.set_status(f"Cancelled: {self._pending.plan.title}")
        self._set_pending(None)

    @action
    def open_run(self, run_id: str) -> None:
        """Show the run's detail in ``detail_area`` (what a click on a source run does)."""
        self.clear_error()
        from jupyter_mltrack.widgets.run_detail import RunDetail

        for old in self.detail_area.children:
            old.close()
        self.detail_area.children = (
            RunDetail(run_id, client=self.client, background=self.background),
        )

    def __repr__(self) -> str:
        if self.model_name is None:
            count = len(self._models)
            return f"RegistryPanel: {count} registered model{'s' * (count != 1)}, none selected"
        count = len(self._versions)
        text = f"RegistryPanel: {self.model_name}, {count} version{'s' * (count != 1)}"
        held = [
            f"{stage}: " + ", ".join(f"v{n}" for n in stage_holders(self._versions, stage))
            for stage in HELD_STAGES
            if stage_holders(self._versions, stage)
        ]
        return f"{text} ({'; '.join(held)})" if held else text

    # -- loading --------------------------------------------------------------------------------
    def _reload(self) -> None:
        models: list[RegisteredModel] = []
        token = None
        while True:
            page = self.client.search_registered_models(max_results=1000, page_token=token)
            models.extend(page)
            token = page.token
            if not token:
                break
        name = self.model_name
        model, versions, trail = None, [], []
        if name is not None:
            try:
                model = self.client.get_registered_model(name)
                versions = self._fetch_versions(name)
                trail = self.client.get_audit_trail(name)
            except ResourceDoesNotExist:  # unknown, or deleted/renamed by someone else
                self.model_name = None
                self._show(models, None, [], [])
                raise
        self._show(models, model, versions, trail)

    def _show(
        self,
        models: list[RegisteredModel],
        model: RegisteredModel | None,
        versions: list[ModelVersion],
        trail: list[AuditEntry],
    ) -> None:
        name = model.name if model is not None else None
        self._models, self._versions, self._trail = models, versions, trail
        self._syncing = True
        try:
            self.models_grid.set_data(MODEL_COLUMNS, [model_row(m) for m in models])
            self.models_grid.select([name] if name is not None else [])
            keep = self.versions_grid.selected
            self.versions_grid.set_data(VERSION_COLUMNS, [version_row(v) for v in versions])
            self.versions_grid.select(keep)
            self.versions_grid.empty_text = (
                "No versions yet." if name else "Select a model to see its versions."
            )
            self.audit_grid.set_data(AUDIT_COLUMNS, audit_rows(trail))
        finally:
            self._syncing = False
        self.model_info.value = model_info_html(model)
        self._sync_rollback_targets()
        self._sync_description()
        self._sync_buttons()
        self.set_status(
            f"{name}: {len(versions)} version(s)" if name else f"{len(models)} registered model(s)"
        )

    def _fetch_versions(self, name: str) -> list[ModelVersion]:
        escaped = name.replace("'", "''")
        return list(self.client.search_model_versions(f"name = '{escaped}'"))

    def _sync_rollback_targets(self) -> None:
        options = rollback_targets(self._versions, self._trail)
        keep = self.rollback_target.value
        self.rollback_target.options = options
        self.rollback_target.value = keep if keep in options else (options[0] if options else None)

    def _sync_description(self, force: bool = False) -> None:
        """Fill ``description_box`` when the selection changes (not while the user types)."""
        key = (self.model_name, self.selected_version)
        if key == self._described and not force:
            return
        self._described = key
        if key[1] is not None:
            mv = next((v for v in self._versions if v.version == key[1]), None)
            self.description_box.value = (mv.description or "") if mv else ""
            self.description_box.placeholder = f"Description of v{key[1]}"
        elif self.model_name is not None:
            model = next((m for m in self._models if m.name == self.model_name), None)
            self.description_box.value = (model.description or "") if model else ""
            self.description_box.placeholder = f"Description of the model {self.model_name}"
        else:
            self.description_box.value = ""
            self.description_box.placeholder = "Select a model"

    def _sync_buttons(self, _change: Any = None) -> None:
        has_model = self.model_name is not None
        has_version = self.selected_version is not None
        alias = bool(self.alias_box.value.strip())
        for button in (
            self.promote_staging_button,
            self.promote_production_button,
            self.archive_button,
        ):
            button.disabled = not has_version
        self.set_alias_button.disabled = not (has_version and alias)
        self.delete_alias_button.disabled = not (has_model and alias)
        self.rollback_button.disabled = not (has_model and self.rollback_target.value)
        self.edit_description_button.disabled = not has_model
        self.edit_description_button.tooltip = (
            f"Edit the description of v{self.selected_version}"
            if has_version
            else "Edit the model's description (select a version to edit its own)"
        )

    # -- reacting to the page -------------------------------------------------------------------
    def _on_model_pick(self, change: Any) -> None:
        if self._syncing:
            return
        picked = change["new"][0] if change["new"] else None
        if picked != self.model_name:
            self.select_model(picked)

    def _on_version_pick(self, change: Any) -> None:
        if self._syncing:
            return
        self._set_pending(None)  # a confirmation about another version would mislead
        self._sync_description()
        self._sync_buttons()

    def _on_version_link(self, change: Any) -> None:
        click = change["new"] or {}
        if click.get("column") != "run":
            return
        mv = next((v for v in self._versions if str(v.version) == click.get("row")), None)
        if mv is not None and mv.run_id:
            self.open_run(mv.run_id)

    def _on_archive_toggle(self, change: Any) -> None:
        pending = self._pending
        if pending is not None and pending.kind == "promote":
            self._ask("promote", **{**pending.params, "archive": change["new"]})

    # -- proposing and doing actions ------------------------------------------------------------
    def _alias(self) -> str:
        return self.alias_box.value.strip()

    def _ask_promote(self, stage: str) -> None:
        self._ask(
            "promote",
            version=self.selected_version,
            stage=stage,
            archive=self.archive_existing.value,
            comment=self.comment_box.value.strip() or None,
        )

    def _ask(self, kind: str, **params: Any) -> None:
        """Capture what the user chose now; work out and show the changes on the worker."""
        if kind in ("archive", "rollback"):
            params["comment"] = self.comment_box.value.strip() or None
        self.run_action(self._propose, kind, params)

    @_refresh_on_missing
    def _propose(self, kind: str, params: dict[str, Any]) -> None:
        self.clear_error()
        self.result_box.value = ""
        self._set_pending(None)
        self._set_pending(_Pending(kind, params, self._plan(kind, **params)))

    def _set_pending(self, pending: _Pending | None) -> None:
        self._pending = pending
        if pending is None:
            self.confirm_text.value = ""
            self.confirm_box.layout.display = "none"
            return
        plan = pending.plan
        items = "".join(f"<li>{html.escape(line)}</li>" for line in plan.changes)
        gate = f"<div>{html.escape(plan.gate)}</div>" if plan.gate else ""
        self.confirm_text.value = (
            f"<div><b>{html.escape(plan.title)}?</b> What will change:</div><ul>{items}</ul>{gate}"
        )
        self.confirm_box.layout.display = None

    def _plan(self, kind: str, **params: Any) -> _Plan:
        name = self.model_name
        if name is None:
            raise InvalidParameterValue("Select a registered model first.")
        if kind in _NEEDS_VERSION and params.get("version") is None:
            raise InvalidParameterValue("Select a version first.")
        planner = getattr(self, f"_plan_{kind}")
        return planner(name, **params)

    def _plan_promote(
        self, name: str, version: int, stage: str, archive: bool, comment: str | None
    ) -> _Plan:
        changes = promotion_changes(self._fetch_versions(name), name, version, stage, archive)

        def run() -> str:
            try:
                self.client.promote(
                    name,
                    version,
                    stage=stage,
                    validate=self.validate,
                    archive_existing_versions=archive,
                    comment=comment,
                )
            except PromotionRefused as refused:
                return refused_html(name, version, stage, refused.result)
            gate = "no validation gate configured"
            if self.validate is not None:
                entry = next(
                    (
                        e
                        for e in reversed(self.client.get_audit_trail(name))
                        if e.action == "promote" and e.version == version
                    ),
                    None,
                )
                details = (entry.details or {}) if entry is not None else {}
                gate = describe_validation(details.get("validation"))
            return promoted_html(name, version, stage, gate)

        title = f"Promote {name} v{version} to {stage}"
        return _Plan(title, changes + comment_line(comment), run, describe_gate(self.validate))

    def _plan_set_alias(self, name: str, version: int, alias: str) -> _Plan:
        if not alias:
            raise InvalidParameterValue("Type an alias first (e.g. champion).")
        validate_alias(alias)  # the Client's own check, before anything is shown
        versions = self._fetch_versions(name)
        find_version(versions, name, version)
        holder = alias_holder(versions, alias)
        if holder == version:
            raise InvalidParameterValue(f"Alias {alias!r} already points to v{version}.")
        was = f"v{holder}" if holder is not None else "(none)"

        def run() -> str:
            self.client.set_registered_model_alias(name, alias, version)
            return f"✓ {html.escape(name)}@{html.escape(alias)} now points to v{version}."

        return _Plan(
            f"Set alias {alias!r} on v{version}", [f"alias {alias!r}: {was} → v{version}"], run
        )

    def _plan_delete_alias(self, name: str, alias: str) -> _Plan:
        if not alias:
            raise InvalidParameterValue("Type the alias to delete.")
        versions = self._fetch_versions(name)
        holder = alias_holder(versions, alias)
        if holder is None:
            known = ", ".join(sorted({a for v in versions for a in v.aliases})) or "none"
            raise InvalidParameterValue(
                f"Model {name!r} has no alias {alias!r} (aliases: {known})."
            )

        def run() -> str:
            self.client.delete_registered_model_alias(name, alias)
            return f"✓ Alias {html.escape(alias)!r} deleted (it pointed to v{holder})."

        return _Plan(f"Delete alias {alias!r}", [f"alias {alias!r}: v{holder} → (deleted)"], run)

    def _plan_archive(self, name: str, version: int, comment: str | None) -> _Plan:
        mv = find_version(self._fetch_versions(name), name, version)
        if mv.current_stage == Stage.ARCHIVED:
            raise InvalidParameterValue(f"v{version} is already Archived.")

        def run() -> str:
            self.client.transition_model_version_stage(
                name, version, Stage.ARCHIVED, comment=comment
            )
            return f"✓ {html.escape(name)} v{version} archived."

        changes = archive_changes(mv) + comment_line(comment)
        return _Plan(f"Archive {name} v{version}", changes, run)

    def _plan_rollback(self, name: str, target: str | None, comment: str | None) -> _Plan:
        if not target:
            raise InvalidParameterValue("Pick the stage or alias to roll back.")
        stage, alias = (None, target[1:]) if target.startswith("@") else (target, None)
        self.client.get_registered_model(name)  # gone: ResourceDoesNotExist, the panel refreshes
        try:  # the version Client.rollback would restore, by the registry's own rule
            previous = self.client.rollback_candidate(name, stage=stage, alias=alias)
        except ResourceDoesNotExist as err:  # no earlier holder: nothing vanished, no refresh
            raise InvalidParameterValue(err.message) from None
        versions = self._fetch_versions(name)
        changes = rollback_changes(versions, previous, stage, alias) + comment_line(comment)
        what = f"stage {stage}" if stage else f"alias {alias!r}"

        def run() -> str:
            mv = self.client.rollback(name, stage=stage, alias=alias, comment=comment)
            return (
                f"✓ Rolled back {html.escape(what)} of {html.escape(name)}: v{mv.version} holds it."
            )

        return _Plan(f"Roll back {what} of {name}", changes, run)

    def _plan_describe(self, name: str, version: int | None, text: str) -> _Plan:
        if version is not None:
            old = find_version(self._fetch_versions(name), name, version).description
            subject = f"v{version}"
        else:
            old = self.client.get_registered_model(name).description
            subject = f"model {name}"
        if (old or "") == text:
            raise InvalidParameterValue(f"The description of {subject} is unchanged.")

        def run() -> str:
            if version is not None:
                self.client.update_model_version(name, version, description=text)
            else:
                self.client.update_registered_model(name, description=text)
            self._described = None  # show the stored text after the reload
            return f"✓ Description of {html.escape(subject)} updated."

        changes = [f"{subject} description: {quoted(old)} → {quoted(text)}"]
        return _Plan(f"Edit the description of {subject}", changes, run)
