"""Checks on names and values, with errors that say what is wrong and how to fix it.

The hot path (a metric key logged a million times) pays for a key check once: valid keys are
remembered in a set.
"""

from __future__ import annotations

import math
import numbers
import posixpath
import re
from collections.abc import Iterable, Mapping
from typing import Any

from jupyter_mltrack.exceptions import InvalidParameterValue

MAX_KEY_LENGTH = 250
MAX_PARAM_VALUE_LENGTH = 6000
MAX_TAG_VALUE_LENGTH = 8000
MAX_EXPERIMENT_NAME_LENGTH = 500
MAX_RUN_NAME_LENGTH = 250
ALLOWED_CHARACTERS = "letters, digits, underscores (_), dashes (-), periods (.), spaces ( ), colons (:) and slashes (/)"

_KEY_RE = re.compile(r"^[\w\-. /:]+$")
valid_keys: set[str] = set()  # names already checked (the hot path looks here first)


def validate_key(key: object, what: str) -> str:
    """Return ``key`` if it is a valid param/metric/tag name, else raise a clear error."""
    if key in valid_keys:
        return key  # type: ignore[return-value]
    if not isinstance(key, str):
        raise InvalidParameterValue(
            f"{what} name must be a string, got {type(key).__name__}: {key!r}."
        )
    if not key:
        raise InvalidParameterValue(f"{what} name must not be empty.")
    if len(key) > MAX_KEY_LENGTH:
        raise InvalidParameterValue(
            f"{what} name {key[:40]!r}... is {len(key)} characters long; the limit is {MAX_KEY_LENGTH}."
        )
    if not _KEY_RE.match(key):
        bad = sorted({c for c in key if not _KEY_RE.match(c)})
        raise InvalidParameterValue(
            f"Invalid {what.lower()} name {key!r}: it contains {''.join(bad)!r}. "
            f"Names may only contain {ALLOWED_CHARACTERS}."
        )
    norm = posixpath.normpath(key)
    if norm != key or norm == "." or norm.startswith("..") or norm.startswith("/"):
        raise InvalidParameterValue(
            f"Invalid {what.lower()} name {key!r}: it must be a plain relative path "
            "(no leading '/', no '.' or '..' segments, no '//')."
        )
    valid_keys.add(key)
    return key


def metric_value(key: str, value: object) -> float:
    """Convert a metric value as MLflow does: numbers, bools (1.0/0.0) and numeric strings."""
    if type(value) is float:
        return value  # type: ignore[return-value]
    if isinstance(value, bool):
        return 1.0 if value else 0.0
    if isinstance(value, numbers.Real):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            pass
    else:
        try:  # numpy 0-d arrays, torch scalars ... anything with a real __float__
            if getattr(value, "ndim", 0) == 0 and hasattr(value, "__float__"):
                return float(value)  # type: ignore[arg-type]
        except (TypeError, ValueError):
            pass
    raise InvalidParameterValue(
        f"Invalid value {value!r} for metric {key!r}: a metric value must be a number "
        "(int, float, numpy scalar, bool or a numeric string)."
    )


def param_value(key: str, value: object) -> str:
    """Params are stored as ``str(value)``, as MLflow does."""
    text = value if isinstance(value, str) else str(value)
    if len(text) > MAX_PARAM_VALUE_LENGTH:
        raise InvalidParameterValue(
            f"Param {key!r} has a value of {len(text)} characters; the limit is "
            f"{MAX_PARAM_VALUE_LENGTH}. Log long values as an artifact (log_text / log_dict)."
        )
    return text


def tag_value(key: str, value: object) -> str:
    text = value if isinstance(value, str) else str(value)
    if len(text) > MAX_TAG_VALUE_LENGTH:
        raise InvalidParameterValue(
            f"Tag {key!r} has a value of {len(text)} characters; the limit is {MAX_TAG_VALUE_LENGTH}."
        )
    return text


_NUMBER_RE = re.compile(r"^\s*[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?\s*$")


def numeric_shadow(text: str) -> float | None:
    """The number a param's text spells, if any (``'0.10'`` -> 0.1); NaN/inf words are not numbers."""
    if not _NUMBER_RE.match(text):
        return None
    number = float(text)
    return number if math.isfinite(number) else None


def int_value(value: object, what: str) -> int:
    """A step or timestamp: an integer (or an integral float)."""
    if isinstance(value, bool):
        raise InvalidParameterValue(f"{what} must be an integer, got a bool ({value!r}).")
    if isinstance(value, numbers.Integral):
        return int(value)
    if isinstance(value, float) and value.is_integer():
        return int(value)
    raise InvalidParameterValue(f"{what} must be an integer, got {value!r}.")


def validate_experiment_name(name: object) -> str:
    if not isinstance(name, str) or not name.strip():
        raise InvalidParameterValue(
            f"Invalid experiment name {name!r}: it must be a non-empty string."
        )
    if len(name) > MAX_EXPERIMENT_NAME_LENGTH:
        raise InvalidParameterValue(
            f"Experiment name is {len(name)} characters long; the limit is {MAX_EXPERIMENT_NAME_LENGTH}."
        )
    return name


def validate_run_name(name: object) -> str:
    if not isinstance(name, str) or not name.strip():
        raise InvalidParameterValue(f"Invalid run name {name!r}: it must be a non-empty string.")
    if len(name) > MAX_RUN_NAME_LENGTH:
        raise InvalidParameterValue(
            f"Run name is {len(name)} characters long; the limit is {MAX_RUN_NAME_LENGTH}."
        )
    return name


def new_params(run_id: str, params: Iterable[Any], logged: Mapping[str, str]) -> dict[str, str]:
    """Validated ``key -> str(value)`` of params not logged yet.

    A key already in ``logged`` (or repeated in ``params``) with another value is refused, as
    MLflow refuses changing a param; the same value again is simply skipped.
    """
    new: dict[str, str] = {}
    for param in params:
        key = validate_key(param.key, "Param")
        value = param_value(key, param.value)
        old = new.get(key, logged.get(key))
        if old is not None and old != value:
            raise InvalidParameterValue(
                f"Changing param values is not allowed. Param {key!r} was already logged with "
                f"value {old!r} for run {run_id!r}; attempted new value {value!r}. Log it under "
                "another name, or start a new run."
            )
        if old is None:
            new[key] = value
    return new


def metric_row(run_key: int, metric: Any) -> tuple[int, str, int, int, float, bool]:
    """A validated history row ``(run_key, key, step, timestamp, value, is_nan)`` (the metrics
    table's column order; NaN is stored as 0.0 with ``is_nan``) from a Metric entity."""
    key = validate_key(metric.key, "Metric")
    value = metric_value(key, metric.value)
    step = int_value(metric.step or 0, "Metric step")
    timestamp = int_value(metric.timestamp, "Metric timestamp")
    if value != value:
        return run_key, key, step, timestamp, 0.0, True
    return run_key, key, step, timestamp, value, False


def tag_row(run_key: int, tag: Any) -> tuple[int, str, str]:
    """A validated ``(run_key, key, value)`` row from a RunTag entity."""
    key = validate_key(tag.key, "Tag")
    return run_key, key, tag_value(key, tag.value)


# -- registry names ----------------------------------------------------------------------------
MAX_MODEL_NAME_LENGTH = 256
_ALIAS_RE = re.compile(r"^[\w\-]+$")
_VERSION_LIKE = re.compile(r"^v?\d+$", re.IGNORECASE)


def validate_model_name(name: object) -> str:
    if not isinstance(name, str) or not name.strip():
        raise InvalidParameterValue(f"Invalid model name {name!r}: it must be a non-empty string.")
    if len(name) > MAX_MODEL_NAME_LENGTH:
        raise InvalidParameterValue(
            f"Model name is longer than {MAX_MODEL_NAME_LENGTH} characters."
        )
    if "/" in name or "@" in name or ":" in name:
        raise InvalidParameterValue(
            f"Invalid model name {name!r}: '/', '@' and ':' are not allowed (they would make "
            "models:/ URIs ambiguous)."
        )
    return name


def validate_alias(alias: object) -> str:
    if not isinstance(alias, str) or not _ALIAS_RE.match(alias):
        raise InvalidParameterValue(
            f"Invalid alias {alias!r}: use letters, digits, '_' and '-' (e.g. 'champion')."
        )
    if _VERSION_LIKE.match(alias):
        raise InvalidParameterValue(
            f"Invalid alias {alias!r}: it looks like a version number, so models:/<name>@{alias} "
            "would be ambiguous. Pick a word such as 'champion' or 'candidate'."
        )
    if alias.lower() == "latest":
        raise InvalidParameterValue(
            "'latest' is reserved (models:/<name>/latest); pick another alias."
        )
    return alias


# -- dataset inputs ---------------------------------------------------------------------------
_DATASET_LIMITS = {"name": 500, "digest": 36, "source_type": 64}
MAX_INPUT_TAG_KEY_LENGTH = 255
MAX_INPUT_TAG_VALUE_LENGTH = 500


def dataset_inputs(items: object) -> list[Any]:
    """Check ``DatasetInput`` objects for ``log_inputs``; return them as a list."""
    from jupyter_mltrack.entities import Dataset, DatasetInput, InputTag

    if items is None:
        return []
    single = isinstance(items, (str, bytes, Mapping, DatasetInput))  # entities iterate too
    if single or not isinstance(items, Iterable):
        raise InvalidParameterValue(
            f"datasets must be a list of DatasetInput objects, got {type(items).__name__}."
        )
    checked = list(items)
    for item in checked:
        if not isinstance(item, DatasetInput):
            raise InvalidParameterValue(
                "datasets must hold DatasetInput objects (jupyter_mltrack.entities.DatasetInput"
                f"), got {type(item).__name__}; mlflow.log_input(dataset) builds one for you."
            )
        dataset = item.dataset
        if not isinstance(dataset, Dataset):
            raise InvalidParameterValue(
                f"DatasetInput.dataset must be a jupyter_mltrack.entities.Dataset, got "
                f"{type(dataset).__name__}."
            )
        for field, limit in _DATASET_LIMITS.items():
            value = getattr(dataset, field)
            if not isinstance(value, str) or not value:
                raise InvalidParameterValue(
                    f"A dataset's {field} must be a non-empty string, got {value!r}."
                )
            if len(value) > limit:
                raise InvalidParameterValue(
                    f"A dataset's {field} is {len(value)} characters long; the limit is {limit}."
                )
        for field in ("source", "schema", "profile"):
            value = getattr(dataset, field)
            if not isinstance(value, str) and not (value is None and field != "source"):
                raise InvalidParameterValue(
                    f"A dataset's {field} must be a (JSON) string, got {type(value).__name__}."
                )
        for tag in item.tags:
            if not isinstance(tag, InputTag):
                raise InvalidParameterValue(
                    f"Dataset input tags must be InputTag objects, got {type(tag).__name__}."
                )
            if not isinstance(tag.key, str) or not tag.key:
                raise InvalidParameterValue(
                    f"An input tag's key must be a non-empty string, got {tag.key!r}."
                )
            if len(tag.key) > MAX_INPUT_TAG_KEY_LENGTH:
                raise InvalidParameterValue(
                    f"Input tag key {tag.key[:40]!r}... is longer than "
                    f"{MAX_INPUT_TAG_KEY_LENGTH} characters."
                )
            if not isinstance(tag.value, str):
                raise InvalidParameterValue(
                    f"Input tag {tag.key!r} must have a string value, got {tag.value!r}."
                )
            if len(tag.value) > MAX_INPUT_TAG_VALUE_LENGTH:
                raise InvalidParameterValue(
                    f"Input tag {tag.key!r} has a value of {len(tag.value)} characters; the "
                    f"limit is {MAX_INPUT_TAG_VALUE_LENGTH}."
                )
    return checked
