"""Promotion with a validation gate and rollback, on real scikit-learn models, both backends."""

from __future__ import annotations

import pytest
from sklearn.datasets import load_iris
from sklearn.dummy import DummyClassifier
from sklearn.linear_model import LogisticRegression

from jupyter_mltrack.exceptions import InvalidParameterValue, PromotionRefused, ResourceDoesNotExist
from jupyter_mltrack.registry import ValidationGate


@pytest.fixture
def iris():
    return load_iris(return_X_y=True, as_frame=True)


@pytest.fixture
def versions(mlflow, iris):
    """Iris v1 = a good model, v2 = a constant predictor, v3 = another good model."""
    X, y = iris
    models = [
        LogisticRegression(max_iter=500).fit(X, y),
        DummyClassifier(strategy="most_frequent").fit(X, y),
        LogisticRegression(C=0.5, max_iter=500).fit(X, y),
    ]
    for model in models:
        with mlflow.start_run():
            mlflow.sklearn.log_model(model, name="model", registered_model_name="Iris")
    return mlflow.MlflowClient()


def test_gate_passes_and_promotion_is_audited(versions, iris):
    X, y = iris
    gate = ValidationGate(data=X, targets=y, metric="accuracy", threshold=0.9)
    mv = versions.promote("Iris", 1, validate=gate, comment="passes the gate")
    assert mv.current_stage == "Production"
    [entry] = [e for e in versions.get_audit_trail("Iris") if e.action == "promote"]
    assert (
        entry.version == 1 and entry.to_value == "Production" and entry.comment == "passes the gate"
    )
    validation = entry.details["validation"]
    assert validation["passed"] is True and validation["metric"] == "accuracy_score"
    assert validation["value"] > 0.9 and validation["threshold"] == 0.9


def test_refused_promotion_changes_nothing_and_is_recorded(versions, iris):
    X, y = iris
    gate = {"data": X, "targets": y, "metric": "accuracy", "threshold": 0.9}
    versions.promote("Iris", 1, validate=gate)
    with pytest.raises(
        PromotionRefused,
        match=r"Iris version 2 to Production refused: accuracy_score = 0.3333 < threshold 0.9",
    ) as err:
        versions.promote("Iris", 2, validate=gate)
    assert err.value.error_code == "INVALID_STATE"
    assert err.value.result["value"] == pytest.approx(1 / 3)
    stages = {v.version: v.current_stage for v in versions.search_model_versions("name = 'Iris'")}
    assert stages == {1: "Production", 2: "None", 3: "None"}
    refused = [e for e in versions.get_audit_trail("Iris") if e.action == "promote_refused"]
    assert [(e.version, e.target, e.details["validation"]["passed"]) for e in refused] == [
        (2, "Production", False)
    ]


def test_callable_gates_and_alias_promotion(versions, iris):
    X, _ = iris
    mv = versions.promote(
        "Iris", 3, alias="champion", validate=lambda model: len(model.predict(X.head(5))) == 5
    )
    assert mv.aliases == ["champion"]
    assert versions.get_model_version_by_alias("Iris", "champion").version == 3
    with pytest.raises(PromotionRefused, match="the validation returned False"):
        versions.promote(
            "Iris", 2, alias="champion", validate=lambda model: (False, {"reason": "drift"})
        )
    assert versions.get_model_version_by_alias("Iris", "champion").version == 3

    def crashing(model):
        raise RuntimeError("feature store down")

    with pytest.raises(PromotionRefused, match="RuntimeError: feature store down"):
        versions.promote("Iris", 1, stage="Staging", validate=crashing)
    assert versions.get_model_version("Iris", 1).current_stage == "None"


def test_lower_is_better_metrics_and_custom_metric(versions, iris):
    X, y = iris
    versions.promote(
        "Iris", 1, stage="Staging", validate=ValidationGate(X, y, "mae", threshold=0.2)
    )
    with pytest.raises(PromotionRefused, match=r"mean_absolute_error = .* > threshold 0.2"):
        versions.promote(
            "Iris", 2, stage="Staging", validate=ValidationGate(X, y, "mae", threshold=0.2)
        )

    def exact(y_true, y_pred):
        return float((y_true == y_pred).mean())

    versions.promote(
        "Iris", 3, stage="Staging", validate=ValidationGate(X, y, exact, threshold=0.9)
    )
    assert versions.get_model_version_by_stage("Iris", "Staging").version == 3


def test_promote_bad_inputs(versions, iris):
    X, y = iris
    with pytest.raises(InvalidParameterValue, match="not both"):
        versions.promote("Iris", 1, stage="Production", alias="champion")
    with pytest.raises(InvalidParameterValue, match="valid stages"):
        versions.promote("Iris", 1, stage="Prod")
    with pytest.raises(InvalidParameterValue, match="looks like a version number"):
        versions.promote("Iris", 1, alias="v2")
    with pytest.raises(ResourceDoesNotExist, match=r"no version 9 \(versions: 1, 2, 3\)"):
        versions.promote("Iris", 9, validate=lambda m: True)
    with pytest.raises(InvalidParameterValue, match="Unknown metric 'acuracy'"):
        versions.promote("Iris", 1, validate=ValidationGate(X, y, "acuracy", 0.5))
    with pytest.raises(InvalidParameterValue, match="needs keys data, targets, metric, threshold"):
        versions.promote("Iris", 1, validate={"data": X, "metric": "accuracy"})
    with pytest.raises(InvalidParameterValue, match="must be a callable"):
        versions.promote("Iris", 1, validate=0.9)
    assert all(v.current_stage == "None" for v in versions.search_model_versions("name = 'Iris'"))


def test_promote_archives_then_rollback_restores(versions):
    versions.promote("Iris", 1)
    versions.promote("Iris", 3)
    assert versions.get_model_version("Iris", 1).current_stage == "Archived"
    restored = versions.rollback("Iris", stage="Production", comment="v3 misbehaves")
    assert restored.version == 1
    stages = {v.version: v.current_stage for v in versions.search_model_versions("name = 'Iris'")}
    assert stages == {1: "Production", 2: "None", 3: "Archived"}
    last = versions.get_audit_trail("Iris")[-1]
    assert (last.action, last.version, last.comment) == ("rollback", 1, "v3 misbehaves")


def test_rollback_candidate_previews_without_changing(versions):
    with pytest.raises(ResourceDoesNotExist, match="No earlier holder"):
        versions.rollback_candidate("Iris", stage="Production")
    versions.promote("Iris", 1)
    versions.promote("Iris", 3)
    trail_before = len(versions.get_audit_trail("Iris"))
    assert versions.rollback_candidate("Iris", stage="Production").version == 1
    assert versions.get_model_version("Iris", 3).current_stage == "Production"
    assert len(versions.get_audit_trail("Iris")) == trail_before
    assert versions.rollback("Iris", stage="Production").version == 1
    with pytest.raises(InvalidParameterValue, match="exactly one"):
        versions.rollback_candidate("Iris")
