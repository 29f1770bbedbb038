"""MLflow's model registry endpoints: registered models, model versions, stages, aliases, tags.

Versions travel as strings (MLflow's JSON) and are parsed by the registry; a version's
``source`` is stored as a real location and shown as ``mlflow-artifacts:/...`` when proxied.
"""

from __future__ import annotations

import posixpath
import re
from typing import Any

from jupyter_mltrack.store.rest import protocol
from jupyter_mltrack.tracking_server.context import Params, ServerContext
from jupyter_mltrack.tracking_server.routes_tracking import Handler, page


# -- registered models ------------------------------------------------------------------------
def create_registered_model(ctx: ServerContext, p: Params) -> dict[str, Any]:
    rm = ctx.client.create_registered_model(
        p.required("name"),
        protocol.tags_from_json(p.get("tags")) or None,
        p.text("description"),
    )
    return {"registered_model": ctx.registered_model_json(rm)}


def get_registered_model(ctx: ServerContext, p: Params) -> dict[str, Any]:
    rm = ctx.client.get_registered_model(p.required("name"))
    return {"registered_model": ctx.registered_model_json(rm)}


# MLflow 3's client appends this to every registered-model search to hide prompts. In MLflow a
# tag "!=" also matches models without the tag; in our grammar it does not (SQL semantics), so
# the clause would hide every model. This store holds no prompts: the clause is dropped.
# (Search change asked for: MLflow's "!=" semantics for registry tags.)
_HIDE_PROMPTS = re.compile(
    r"(^|\s+AND\s+)tags?\.(`mlflow\.prompt\.is_prompt`|mlflow\.prompt\.is_prompt)\s*!=\s*"
    r"'true'\s*$",
    re.IGNORECASE,
)


def search_registered_models(ctx: ServerContext, p: Params) -> dict[str, Any]:
    text = _HIDE_PROMPTS.sub("", p.text("filter") or "").strip()
    found = ctx.client.search_registered_models(
        filter_string=text or None,
        max_results=p.integer("max_results", 100),
        order_by=p.strings("order_by") or None,
        page_token=p.text("page_token") or None,
    )
    return page("registered_models", [ctx.registered_model_json(m) for m in found], found.token)


def rename_registered_model(ctx: ServerContext, p: Params) -> dict[str, Any]:
    rm = ctx.client.rename_registered_model(p.required("name"), p.required("new_name"))
    return {"registered_model": ctx.registered_model_json(rm)}


def update_registered_model(ctx: ServerContext, p: Params) -> dict[str, Any]:
    rm = ctx.client.update_registered_model(p.required("name"), p.text("description"))
    return {"registered_model": ctx.registered_model_json(rm)}


def delete_registered_model(ctx: ServerContext, p: Params) -> dict[str, Any]:
    ctx.client.delete_registered_model(p.required("name"))
    return {}


def get_latest_versions(ctx: ServerContext, p: Params) -> dict[str, Any]:
    versions = ctx.client.get_latest_versions(p.required("name"), p.strings("stages") or None)
    return page("model_versions", [ctx.model_version_json(v) for v in versions], None)


def set_registered_model_tag(ctx: ServerContext, p: Params) -> dict[str, Any]:
    ctx.client.set_registered_model_tag(p.required("name"), p.required("key"), _value(p))
    return {}


def delete_registered_model_tag(ctx: ServerContext, p: Params) -> dict[str, Any]:
    ctx.client.delete_registered_model_tag(p.required("name"), p.required("key"))
    return {}


def set_registered_model_alias(ctx: ServerContext, p: Params) -> dict[str, Any]:
    ctx.client.set_registered_model_alias(
        p.required("name"), p.required("alias"), p.required("version")
    )
    return {}


def delete_registered_model_alias(ctx: ServerContext, p: Params) -> dict[str, Any]:
    ctx.client.delete_registered_model_alias(p.required("name"), p.required("alias"))
    return {}


def get_model_version_by_alias(ctx: ServerContext, p: Params) -> dict[str, Any]:
    mv = ctx.client.get_model_version_by_alias(p.required("name"), p.required("alias"))
    return {"model_version": ctx.model_version_json(mv)}


# -- model versions ---------------------------------------------------------------------------
def create_model_version(ctx: ServerContext, p: Params) -> dict[str, Any]:
    mv = ctx.client.create_model_version(
        p.required("name"),
        ctx.internal(p.required("source")),
        run_id=p.text("run_id") or None,
        tags=protocol.tags_from_json(p.get("tags")) or None,
        run_link=p.text("run_link") or None,
        description=p.text("description"),
    )
    return {"model_version": ctx.model_version_json(mv)}


def get_model_version(ctx: ServerContext, p: Params) -> dict[str, Any]:
    mv = ctx.client.get_model_version(p.required("name"), p.required("version"))
    return {"model_version": ctx.model_version_json(mv)}


def search_model_versions(ctx: ServerContext, p: Params) -> dict[str, Any]:
    found = ctx.client.search_model_versions(
        filter_string=p.text("filter") or None,
        max_results=p.integer("max_results", 10_000),
        order_by=p.strings("order_by") or None,
        page_token=p.text("page_token") or None,
    )
    return page("model_versions", [ctx.model_version_json(v) for v in found], found.token)


def update_model_version(ctx: ServerContext, p: Params) -> dict[str, Any]:
    mv = ctx.client.update_model_version(
        p.required("name"), p.required("version"), p.text("description")
    )
    return {"model_version": ctx.model_version_json(mv)}


def delete_model_version(ctx: ServerContext, p: Params) -> dict[str, Any]:
    ctx.client.delete_model_version(p.required("name"), p.required("version"))
    return {}


def transition_model_version_stage(ctx: ServerContext, p: Params) -> dict[str, Any]:
    mv = ctx.client.transition_model_version_stage(
        p.required("name"),
        p.required("version"),
        p.required("stage"),
        archive_existing_versions=p.flag("archive_existing_versions"),
        comment=p.text("comment"),
    )
    return {"model_version": ctx.model_version_json(mv)}


def set_model_version_tag(ctx: ServerContext, p: Params) -> dict[str, Any]:
    ctx.client.set_model_version_tag(
        p.required("name"), p.required("version"), p.required("key"), _value(p)
    )
    return {}


def delete_model_version_tag(ctx: ServerContext, p: Params) -> dict[str, Any]:
    ctx.client.delete_model_version_tag(
        p.required("name"), p.required("version"), p.required("key")
    )
    return {}


def get_model_version_download_uri(ctx: ServerContext, p: Params) -> dict[str, Any]:
    """Where the version's files are: ``runs:/`` sources resolved to the run's artifacts,
    ``models:/<model_id>`` to the logged model's location when the server knows logged models."""
    mv = ctx.client.get_model_version(p.required("name"), p.required("version"))
    return {"artifact_uri": ctx.present(_download_uri(ctx, mv.source or ""))}


def _download_uri(ctx: ServerContext, source: str) -> str:
    if source.startswith("runs:/"):
        run_id, _, path = source[len("runs:/") :].lstrip("/").partition("/")
        root = ctx.client.get_run(run_id).info.artifact_uri or ""
        return posixpath.join(root, path) if path else root
    if source.startswith("models:/"):
        model_id = source[len("models:/") :].strip("/")
        get_logged = getattr(ctx.client, "get_logged_model", None)
        if get_logged is not None and "/" not in model_id and "@" not in model_id:
            location = getattr(get_logged(model_id), "artifact_location", None)
            if location:
                return str(location)
    return source


def _value(p: Params) -> str:
    value = p.get("value")
    return "" if value is None else str(value)


HANDLERS: dict[str, Handler] = {
    "create_registered_model": create_registered_model,
    "get_registered_model": get_registered_model,
    "search_registered_models": search_registered_models,
    "rename_registered_model": rename_registered_model,
    "update_registered_model": update_registered_model,
    "delete_registered_model": delete_registered_model,
    "get_latest_versions": get_latest_versions,
    "set_registered_model_tag": set_registered_model_tag,
    "delete_registered_model_tag": delete_registered_model_tag,
    "set_registered_model_alias": set_registered_model_alias,
    "delete_registered_model_alias": delete_registered_model_alias,
    "get_model_version_by_alias": get_model_version_by_alias,
    "create_model_version": create_model_version,
    "get_model_version": get_model_version,
    "search_model_versions": search_model_versions,
    "update_model_version": update_model_version,
    "delete_model_version": delete_model_version,
    "transition_model_version_stage": transition_model_version_stage,
    "set_model_version_tag": set_model_version_tag,
    "delete_model_version_tag": delete_model_version_tag,
    "get_model_version_download_uri": get_model_version_download_uri,
}
