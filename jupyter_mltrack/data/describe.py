"""A logged dataset input in words: what the run panel and ``%mltrack show`` display.

Works on stored entities (``run.inputs.dataset_inputs``), whoever logged them (this package,
MLflow, an autologger): fields that do not parse are shown as stored, never an error.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

CONTEXT_TAG = "mlflow.data.context"
MAX_COLUMNS = 50  # more are counted, not listed


@dataclass
class InputDescription:
    """One dataset input of a run, ready to show."""

    name: str
    digest: str
    context: str
    source_type: str
    source: str  # a path, URL, URI or notebook; the stored JSON when none of those
    rows: int | None = None
    elements: int | None = None
    columns: list[str] = field(default_factory=list)  # "name: type", at most MAX_COLUMNS
    n_columns: int = 0
    tags: dict[str, str] = field(default_factory=dict)  # input tags besides the context

    def columns_text(self) -> str:
        more = self.n_columns - len(self.columns)
        return ", ".join(self.columns) + (f", … ({more} more)" if more > 0 else "")

    def one_line(self) -> str:
        """``digest 1a2b… · training · local data/train.csv · 150 rows · x: double, y: long``."""
        parts = [f"digest {self.digest}"]
        if self.context:
            parts.append(self.context)
        parts.append(f"{self.source_type} {self.source}".strip())
        if self.rows is not None:
            parts.append(f"{self.rows:,} rows")
        if self.columns:
            parts.append(self.columns_text())
        parts += [f"{k}={v}" for k, v in sorted(self.tags.items())]
        return " · ".join(parts)


def describe_input(item: Any) -> InputDescription:
    """An ``InputDescription`` of a ``DatasetInput`` entity."""
    dataset = item.dataset
    tags = {t.key: t.value for t in item.tags}
    context = tags.pop(CONTEXT_TAG, "")
    profile = _json(dataset.profile)
    columns = schema_columns(dataset.schema)
    return InputDescription(
        name=dataset.name,
        digest=dataset.digest,
        context=context,
        source_type=dataset.source_type or "",
        source=source_text(dataset.source),
        rows=_int(profile.get("num_rows")) if isinstance(profile, dict) else None,
        elements=_int(profile.get("num_elements")) if isinstance(profile, dict) else None,
        columns=columns[:MAX_COLUMNS],
        n_columns=len(columns),
        tags=tags,
    )


def source_text(source: str | None) -> str:
    """Where the data came from, from a source's JSON (``uri``, ``url``, a code source's
    notebook or script, else the JSON itself)."""
    found = _json(source)
    if not isinstance(found, dict):
        return source or ""
    for key in ("uri", "url", "path", "table_name"):
        if isinstance(found.get(key), str):
            return found[key]
    code = found.get("tags")
    if isinstance(code, dict) and code.get("mlflow.source.name"):
        return str(code["mlflow.source.name"])
    return "" if found in ({}, {"tags": {}}) else json.dumps(found, sort_keys=True)[:200]


def schema_columns(schema: str | None) -> list[str]:
    """``["x: double", ...]`` from MLflow's column schema, or ``["features: float64 [-1, 4]"]``
    from a tensor schema (numpy datasets); empty when there is none."""
    found = _json(schema)
    if not isinstance(found, dict):
        return []
    colspec = found.get("mlflow_colspec")
    if isinstance(colspec, list):
        return [
            f"{c.get('name', '?')}: {c.get('type', '?')}" for c in colspec if isinstance(c, dict)
        ]
    tensors = found.get("mlflow_tensorspec")
    out = []
    if isinstance(tensors, dict):
        for part in ("features", "targets"):
            specs = _json(tensors.get(part))
            for spec in specs if isinstance(specs, list) else []:
                if not isinstance(spec, dict):
                    continue
                tensor = spec.get("tensor-spec") or {}
                label = f"{part}.{spec['name']}" if spec.get("name") else part
                out.append(f"{label}: {tensor.get('dtype', '?')} {tensor.get('shape', '')}".strip())
    return out


def _json(text: Any) -> Any:
    if not isinstance(text, str) or not text:
        return None
    try:
        return json.loads(text)
    except ValueError:
        return None


def _int(value: Any) -> int | None:
    return int(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None
