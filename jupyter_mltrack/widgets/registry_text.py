"""What the RegistryPanel says about registry changes: the confirmation lines (what an action
will change), the gate and its verdict, the outcome of an action, and the rows of its tables.

Plain functions of entities, without widgets, so each sentence is tested on its own.
"""

from __future__ import annotations

import html
from collections.abc import Mapping, Sequence
from typing import Any

from jupyter_mltrack.entities import AuditEntry, ModelVersion, RegisteredModel, Stage
from jupyter_mltrack.exceptions import ResourceDoesNotExist
from jupyter_mltrack.registry import ValidationGate
from jupyter_mltrack.widgets._format import format_time

HELD_STAGES = (Stage.PRODUCTION, Stage.STAGING)  # stages a version "holds" (roll back, repr)


# -- versions, stages and aliases -------------------------------------------------------------
def find_version(versions: Sequence[ModelVersion], name: str, number: int) -> ModelVersion:
    """Version ``number`` of ``versions``; ResourceDoesNotExist if someone else removed it."""
    for mv in versions:
        if mv.version == number:
            return mv
    listed = ", ".join(str(v.version) for v in sorted(versions, key=lambda v: v.version))
    raise ResourceDoesNotExist(
        f"Model {name!r} has no version {number} any more (versions: {listed or 'none'}); "
        "it was changed by someone else."
    )


def stage_holders(versions: Sequence[ModelVersion], stage: str) -> list[int]:
    """The versions in ``stage``, in order."""
    return sorted(v.version for v in versions if v.current_stage == stage)


def alias_holder(versions: Sequence[ModelVersion], alias: str) -> int | None:
    """The version ``alias`` points to (None: no version)."""
    return next((v.version for v in versions if alias in v.aliases), None)


def rollback_targets(versions: Sequence[ModelVersion], trail: Sequence[AuditEntry]) -> list[str]:
    """What can be rolled back: held stages, then ``@alias`` for every alias in use or in the
    audit trail."""
    stages = [
        s for s in HELD_STAGES if stage_holders(versions, s) or any(e.target == s for e in trail)
    ]
    aliases = {a for v in versions for a in v.aliases}
    aliases |= {e.target for e in trail if e.target and e.target not in Stage.ALL}
    return stages + [f"@{a}" for a in sorted(aliases)]


# -- confirmation lines -----------------------------------------------------------------------
def quoted(text: str | None, limit: int = 60) -> str:
    """``text`` on one line in quotes, cut at ``limit`` characters; "(empty)" for none."""
    if not text:
        return "(empty)"
    one_line = " ".join(text.split())
    if len(one_line) > limit:
        one_line = one_line[: limit - 1] + "…"
    return f"“{one_line}”"


def comment_line(comment: str | None) -> list[str]:
    """The confirmation line of an audit-trail comment (none without one)."""
    return [f"comment: {quoted(comment)}"] if comment else []


def promotion_changes(
    versions: Sequence[ModelVersion], name: str, number: int, stage: str, archive: bool
) -> list[str]:
    """What promoting ``number`` to ``stage`` changes, one line per version."""
    target = find_version(versions, name, number)
    if target.current_stage == stage:
        lines = [f"v{number}: already in {stage} (no stage change; the promotion is recorded)"]
    else:
        lines = [f"v{number}: {target.current_stage} → {stage}"]
    for other in stage_holders(versions, stage):
        if other == number:
            continue
        if archive:
            lines.append(f"v{other}: {stage} → Archived (archive existing)")
        else:
            lines.append(f"v{other}: stays in {stage} (archive existing is off)")
    return lines


def archive_changes(mv: ModelVersion) -> list[str]:
    """What archiving ``mv`` changes (its aliases stay)."""
    lines = [f"v{mv.version}: {mv.current_stage} → Archived"]
    if mv.aliases:
        lines.append(f"aliases stay on v{mv.version}: {', '.join(mv.aliases)}")
    return lines


def rollback_changes(
    versions: Sequence[ModelVersion],
    previous: ModelVersion,
    stage: str | None = None,
    alias: str | None = None,
) -> list[str]:
    """What giving ``stage`` (or ``alias``) back to ``previous`` changes."""
    if stage is not None:
        return [f"v{previous.version}: {previous.current_stage} → {stage}"] + [
            f"v{n}: {stage} → Archived (rolled back)" for n in stage_holders(versions, stage)
        ]
    holder = alias_holder(versions, alias or "")
    was = f"v{holder}" if holder is not None else "(none)"
    return [f"alias {alias!r}: {was} → v{previous.version}"]


# -- validation gates -------------------------------------------------------------------------
def _gate_field(gate: Any, key: str) -> Any:
    return gate.get(key) if isinstance(gate, Mapping) else getattr(gate, key, None)


def describe_gate(validate: Any) -> str:
    """One sentence on the check a promotion will run (``validate`` as given to ``promote``)."""
    if validate is None:
        return "No validation gate configured: the version is promoted without a check."
    if callable(validate) and not isinstance(validate, (Mapping, ValidationGate)):
        name = getattr(validate, "__name__", type(validate).__name__)
        return f"Validation gate: {name}(model) must pass."
    metric = _gate_field(validate, "metric")
    metric_name = metric if isinstance(metric, str) else getattr(metric, "__name__", "metric")
    data = _gate_field(validate, "data")
    rows = f" on {len(data)} rows" if hasattr(data, "__len__") else ""
    greater = _gate_field(validate, "greater_is_better")
    need = {True: "≥", False: "≤"}.get(greater, "must clear")
    return f"Validation gate: {metric_name}{rows} {need} {_gate_field(validate, 'threshold')}."


def describe_validation(result: Mapping[str, Any] | None) -> str:
    """A gate's result in one line: metric, value, threshold and the verdict."""
    if not result:
        return ""
    verdict = "passed" if result.get("passed") else "refused"
    if "error" in result:
        return f"validation {verdict}: it raised {result['error']}"
    if "metric" in result:
        sign = "≥" if result.get("greater_is_better", True) else "≤"
        value = result.get("value")
        shown = f"{value:.4g}" if isinstance(value, (int, float)) else str(value)
        return (
            f"{result['metric']} = {shown} (threshold: {sign} {result.get('threshold')}): {verdict}"
        )
    if "details" in result:
        return f"validation {verdict}: {result['details']}"
    return f"validation {verdict}"


def refused_html(name: str, version: int, stage: str, result: Mapping[str, Any] | None) -> str:
    """The outcome of a promotion the gate refused (nothing changed)."""
    return (
        '<div class="mltrack-refused" style="color: var(--jp-error-color1, #d32f2f)">'
        f"✗ Promotion of {html.escape(name)} v{version} to {stage} refused by the validation "
        f"gate; nothing was changed.<br>{html.escape(describe_validation(result))}</div>"
    )


def promoted_html(name: str, version: int, stage: str, gate: str) -> str:
    """The outcome of a promotion; ``gate`` says what the gate found."""
    return (
        '<div class="mltrack-promoted" style="color: var(--jp-success-color1, #388e3c)">'
        f"✓ {html.escape(name)} v{version} is now in {stage}.<br>{html.escape(gate)}</div>"
    )


# -- tables -----------------------------------------------------------------------------------
MODEL_COLUMNS = [
    {"key": "name", "label": "model"},
    {"key": "latest", "label": "latest versions", "title": "Newest version in each stage"},
    {"key": "aliases", "label": "aliases"},
    {"key": "description", "label": "description"},
]
VERSION_COLUMNS = [
    {"key": "version", "label": "version", "align": "right"},
    {"key": "stage", "label": "stage"},
    {"key": "aliases", "label": "aliases"},
    {"key": "run", "label": "source run", "title": "Click to open the run"},
    {"key": "created", "label": "created (UTC)"},
    {"key": "description", "label": "description"},
    {"key": "tags", "label": "tags"},
]
AUDIT_COLUMNS = [
    {"key": "when", "label": "when (UTC)"},
    {"key": "action", "label": "action"},
    {"key": "version", "label": "version", "align": "right"},
    {"key": "target", "label": "stage / alias"},
    {"key": "change", "label": "change"},
    {"key": "user", "label": "by"},
    {"key": "comment", "label": "comment"},
    {"key": "details", "label": "validation / details"},
]
_STAGE_CLASS = {Stage.PRODUCTION: "mltrack-best", Stage.ARCHIVED: "mltrack-muted"}


def _aliases_text(model: RegisteredModel) -> str:
    return ", ".join(f"@{a} → v{n}" for a, n in sorted(model.aliases.items()))


def model_row(model: RegisteredModel) -> dict[str, Any]:
    """The ``MODEL_COLUMNS`` row of a registered model."""
    return {
        "id": model.name,
        "cells": {
            "name": model.name,
            "latest": " · ".join(f"v{v.version} {v.current_stage}" for v in model.latest_versions),
            "aliases": _aliases_text(model),
            "description": model.description or "",
        },
    }


def version_row(mv: ModelVersion) -> dict[str, Any]:
    """The ``VERSION_COLUMNS`` row of a model version; its source run is a link."""
    return {
        "id": str(mv.version),
        "cells": {
            "version": mv.version,
            "stage": mv.current_stage,
            "aliases": ", ".join(f"@{a}" for a in mv.aliases),
            "run": mv.run_id[:8] if mv.run_id else None,
            "created": format_time(mv.creation_timestamp),
            "description": mv.description or "",
            "tags": ", ".join(f"{k}={v}" for k, v in sorted(mv.tags.items())),
        },
        "classes": {"stage": _STAGE_CLASS.get(mv.current_stage, "")},
        "links": ["run"] if mv.run_id else [],
    }


def audit_details(details: Mapping[str, Any] | None) -> str:
    """An audit entry's details in a few words: a gate's verdict, or the version rolled back."""
    if not details:
        return ""
    if details.get("validation"):
        return describe_validation(details["validation"])
    if details.get("from_version") is not None:
        return f"from v{details['from_version']}"
    return ""


def audit_rows(trail: Sequence[AuditEntry]) -> list[dict[str, Any]]:
    """The ``AUDIT_COLUMNS`` rows of an audit trail, newest first; refusals stand out."""
    rows = []
    for i in range(len(trail) - 1, -1, -1):
        e = trail[i]
        change = (
            f"{e.from_value or '-'} → {e.to_value or '-'}" if e.from_value or e.to_value else ""
        )
        rows.append(
            {
                "id": f"a{i}",
                "cells": {
                    "when": format_time(e.timestamp),
                    "action": e.action,
                    "version": e.version,
                    "target": e.target or "",
                    "change": change,
                    "user": e.user_id or "",
                    "comment": e.comment or "",
                    "details": audit_details(e.details),
                },
                "classes": {"action": "mltrack-differs" if e.action == "promote_refused" else ""},
            }
        )
    return rows


def model_info_html(model: RegisteredModel | None) -> str:
    """One line on the selected model: name, description, aliases and tags."""
    if model is None:
        return ""
    parts = [f"<b>{html.escape(model.name)}</b>"]
    if model.description:
        parts.append(html.escape(model.description))
    if model.aliases:
        parts.append("aliases: " + html.escape(_aliases_text(model)))
    if model.tags:
        parts.append(
            "tags: " + html.escape(", ".join(f"{k}={v}" for k, v in sorted(model.tags.items())))
        )
    return " · ".join(parts)
