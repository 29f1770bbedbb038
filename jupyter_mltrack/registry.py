"""Gated promotion: validate a registered model version before it gets a stage or an alias."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from jupyter_mltrack.entities import ModelVersion, Stage
from jupyter_mltrack.exceptions import InvalidParameterValue, PromotionRefused


@dataclass
class ValidationGate:
    """Promote only if ``metric(targets, model.predict(data))`` clears ``threshold``.

    ``metric`` is a scikit-learn metric name (``"accuracy_score"`` or ``"accuracy"``,
    ``"f1_score"``, ``"r2_score"``, ``"mean_absolute_error"``...) or a callable
    ``(y_true, y_pred) -> float``. Errors (mae, mse, ...) pass when the value is at most the
    threshold: set ``greater_is_better`` to say which way is good when the name does not.
    """

    data: Any
    targets: Any
    metric: str | Callable[[Any, Any], float]
    threshold: float
    greater_is_better: bool | None = None

    def run(self, model: Any) -> dict[str, Any]:
        metric_name, metric_fn, greater = _metric(self.metric, self.greater_is_better)
        value = float(metric_fn(self.targets, model.predict(self.data)))
        passed = not math.isnan(value) and (
            value >= self.threshold if greater else value <= self.threshold
        )
        return {
            "passed": passed,
            "metric": metric_name,
            "value": value,
            "threshold": self.threshold,
            "greater_is_better": greater,
        }


_LOWER_IS_BETTER = ("error", "loss", "mae", "mse", "rmse")


def _metric(metric: Any, greater: bool | None) -> tuple[str, Callable[[Any, Any], float], bool]:
    if callable(metric):
        name = getattr(metric, "__name__", "custom_metric")
        return name, metric, True if greater is None else greater
    if not isinstance(metric, str):
        raise InvalidParameterValue(f"metric must be a name or a callable, got {metric!r}.")
    import sklearn.metrics as sk

    aliases = {
        "mae": "mean_absolute_error",
        "mse": "mean_squared_error",
        "accuracy": "accuracy_score",
        "f1": "f1_score",
        "precision": "precision_score",
        "recall": "recall_score",
        "r2": "r2_score",
        "roc_auc": "roc_auc_score",
    }
    name = aliases.get(metric, metric)
    if name == "rmse":
        fn: Callable[[Any, Any], float] = lambda y, p: math.sqrt(sk.mean_squared_error(y, p))  # noqa: E731
    else:
        fn = getattr(sk, name, None) or getattr(sk, f"{name}_score", None)  # type: ignore[assignment]
        if fn is None or not callable(fn):
            raise InvalidParameterValue(
                f"Unknown metric {metric!r}: use a sklearn.metrics name (accuracy, f1, r2, mae, ...) "
                "or pass a callable (y_true, y_pred) -> float."
            )
    lower = any(word in name for word in _LOWER_IS_BETTER)
    return name, fn, (not lower) if greater is None else greater


def _run_validation(validate: Any, model: Any) -> dict[str, Any]:
    if isinstance(validate, Mapping):
        unknown = set(validate) - {"data", "targets", "metric", "threshold", "greater_is_better"}
        if unknown or not {"data", "targets", "metric", "threshold"} <= set(validate):
            raise InvalidParameterValue(
                "validate as a dict needs keys data, targets, metric, threshold "
                f"(optional greater_is_better); got {sorted(validate)}."
            )
        validate = ValidationGate(**validate)
    if isinstance(validate, ValidationGate):
        return validate.run(model)
    if not callable(validate):
        raise InvalidParameterValue(
            "validate must be a callable (model -> bool) or a ValidationGate / dict with data, "
            "targets, metric and threshold."
        )
    outcome = validate(model)
    if isinstance(outcome, tuple) and len(outcome) == 2:
        passed, details = outcome
        return {"passed": bool(passed), "details": details}
    if isinstance(outcome, Mapping):
        if "passed" not in outcome:
            raise InvalidParameterValue("A validation dict result needs a 'passed' key.")
        return {**outcome, "passed": bool(outcome["passed"])}
    return {"passed": bool(outcome)}


def promote(
    client: Any,
    name: str,
    version: str | int,
    stage: str | None,
    alias: str | None,
    validate: Any,
    archive_existing_versions: bool,
    comment: str | None,
) -> ModelVersion:
    """See ``Client.promote``."""
    if stage is not None and alias is not None:
        raise InvalidParameterValue("promote takes stage= or alias=, not both.")
    if alias is None:
        stage = Stage.canonical(stage or Stage.PRODUCTION)
    else:
        from jupyter_mltrack.validation import validate_alias

        validate_alias(alias)
    registry = client.registry
    mv = registry.get_model_version(name, version)  # unknown model/version fails before loading
    target = stage if alias is None else alias
    details: dict[str, Any] | None = None
    if validate is not None:
        from jupyter_mltrack.pyfunc import load_model

        try:
            model = load_model(f"models:/{name}/{mv.version}")
            details = _run_validation(validate, model)
        except InvalidParameterValue:
            raise
        except Exception as err:  # a crashing validator refuses the promotion
            details = {"passed": False, "error": f"{type(err).__name__}: {err}"}
        if not details["passed"]:
            registry.record(
                name, mv.version, "promote_refused", target, comment, {"validation": details}
            )
            raise PromotionRefused(
                f"Promotion of {name} version {mv.version} to {target} refused: {_explain(details)}. "
                "Nothing was changed.",
                details,
            )
    recorded = {"validation": details} if details is not None else None
    if alias is None:
        keep_others = archive_existing_versions and stage in (Stage.STAGING, Stage.PRODUCTION)
        return registry.transition_model_version_stage(
            name, mv.version, stage, keep_others, comment, action="promote", details=recorded
        )
    registry.set_registered_model_alias(
        name, alias, mv.version, comment, action="promote", details=recorded
    )
    return registry.get_model_version(name, mv.version)


def _explain(details: dict[str, Any]) -> str:
    if "error" in details:
        return f"the validation raised {details['error']}"
    if "metric" in details:
        sign = "<" if details.get("greater_is_better", True) else ">"
        return (
            f"{details['metric']} = {details['value']:.4g} {sign} threshold {details['threshold']}"
        )
    return "the validation returned False"


def promote_on_logged_metric(
    client: Any,
    name: str,
    version: str | int,
    stage: str | None,
    alias: str | None,
    gate: Any,
    archive_existing_versions: bool,
    comment: str | None,
) -> tuple[ModelVersion, dict[str, Any] | None]:
    """Promote like ``promote``, gated by the metric the version's source run logged.

    ``gate`` is ``{"metric", "threshold", "greater_is_better"}`` as plain data (what travels
    over HTTP), or None for no gate. Returns the promoted version and the gate's outcome; a
    refusal changes nothing, is recorded in the audit trail and raises ``PromotionRefused``.
    """
    if gate is None:
        mv = promote(client, name, version, stage, alias, None, archive_existing_versions, comment)
        return mv, None
    if stage is not None and alias is not None:
        raise InvalidParameterValue("promote takes stage or alias, not both.")
    target_stage = Stage.canonical(stage or Stage.PRODUCTION) if alias is None else None
    mv = client.get_model_version(name, version)
    details = logged_metric_gate(client, mv, gate)
    registry = client.registry
    target = alias if alias is not None else target_stage
    recorded = {"validation": details}
    if not details["passed"]:
        registry.record(name, mv.version, "promote_refused", target, comment, recorded)
        raise PromotionRefused(
            f"Promotion of {name} version {mv.version} to {target} refused: "
            f"{details['reason']}. Nothing was changed.",
            details,
        )
    if alias is None:
        keep = archive_existing_versions and target_stage in (Stage.STAGING, Stage.PRODUCTION)
        mv = registry.transition_model_version_stage(
            name, mv.version, target_stage, keep, comment, action="promote", details=recorded
        )
    else:
        registry.set_registered_model_alias(
            name, alias, mv.version, comment, action="promote", details=recorded
        )
        mv = client.get_model_version(name, mv.version)
    return mv, details


def logged_metric_gate(client: Any, mv: ModelVersion, gate: Any) -> dict[str, Any]:
    """The gate's outcome: the source run's logged ``metric`` against ``threshold``."""
    from jupyter_mltrack.store.rest import protocol

    if not isinstance(gate, Mapping) or not {"metric", "threshold"} <= set(gate):
        raise InvalidParameterValue(
            "gate must be an object with 'metric' and 'threshold' (and optionally "
            "'greater_is_better'), checked against the metric the version's run logged."
        )
    unknown = set(gate) - {"metric", "threshold", "greater_is_better"}
    if unknown:
        raise InvalidParameterValue(f"Unknown gate field(s): {', '.join(sorted(unknown))}.")
    metric = str(gate["metric"])
    threshold = protocol.to_float(gate["threshold"], "gate.threshold")
    greater = gate.get("greater_is_better")
    if greater is None:
        greater = not any(word in metric.lower() for word in _LOWER_IS_BETTER)
    greater = protocol.to_bool(greater, "gate.greater_is_better")
    details: dict[str, Any] = {
        "metric": metric,
        "threshold": threshold,
        "greater_is_better": greater,
        "run_id": mv.run_id,
    }
    if not mv.run_id:
        raise InvalidParameterValue(
            f"{mv.name} version {mv.version} has no source run, so a metric gate has nothing "
            "to check; promote it without a gate, or from Python with validate=."
        )
    value = client.get_run(mv.run_id).data.metrics.get(metric)
    if value is None:
        return {**details, "passed": False, "value": None, "reason": f"run never logged {metric!r}"}
    passed = not math.isnan(value) and (value >= threshold if greater else value <= threshold)
    sign = ">=" if greater else "<="
    reason = f"{metric} = {value:.6g}, needs {sign} {threshold:g}"
    return {**details, "passed": passed, "value": value, "reason": reason}
