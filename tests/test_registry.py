"""The model registry on both backends: versions, stages, aliases, URIs, audit trail, rollback."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

from jupyter_mltrack.exceptions import InvalidParameterValue, MlflowException, ResourceDoesNotExist
from jupyter_mltrack.models.uri import resolve_model_uri


def log_model_dir(mlflow, name: str = "model") -> str:
    """A run whose artifacts hold a model directory (an MLmodel file and a payload)."""
    with mlflow.start_run() as run:
        mlflow.log_text("flavors: {}\n", f"{name}/MLmodel")
        mlflow.log_text("weights", f"{name}/weights.bin")
    return run.info.run_id


@pytest.fixture
def registered(mlflow):
    """Model 'Churn' with versions 1..3 registered from three runs."""
    run_ids = [log_model_dir(mlflow) for _ in range(3)]
    versions = [mlflow.register_model(f"runs:/{r}/model", "Churn") for r in run_ids]
    return mlflow.MlflowClient(), run_ids, versions


def test_register_model_creates_model_and_numbers_versions(registered):
    client, run_ids, versions = registered
    assert [v.version for v in versions] == [1, 2, 3]
    assert [v.run_id for v in versions] == run_ids
    assert all(v.current_stage == "None" and v.status == "READY" for v in versions)
    assert versions[0].source.startswith("file://") and versions[0].source.endswith(
        "/artifacts/model"
    )
    model = client.get_registered_model("Churn")
    assert model.name == "Churn"
    assert [v.version for v in model.latest_versions] == [3]  # newest per stage


def test_register_from_run_without_that_artifact(mlflow):
    run_id = log_model_dir(mlflow)
    with pytest.raises(ResourceDoesNotExist, match=r"has no artifact 'other'.*model"):
        mlflow.register_model(f"runs:/{run_id}/other", "X")
    with mlflow.start_run() as run:
        mlflow.log_text("just text", "notes/readme.txt")
    with pytest.raises(InvalidParameterValue, match="not a logged model"):
        mlflow.register_model(f"runs:/{run.info.run_id}/notes", "X")
    with pytest.raises(ResourceDoesNotExist):
        mlflow.MlflowClient().get_registered_model("X")  # nothing half-created


def test_model_crud_search_tags_rename(registered):
    client, run_ids, _ = registered
    client.create_registered_model("Fraud", tags={"team": "risk"}, description="first")
    with pytest.raises(MlflowException) as err:
        client.create_registered_model("Fraud")
    assert err.value.error_code == "RESOURCE_ALREADY_EXISTS"
    client.update_registered_model("Fraud", description="second")
    client.set_registered_model_tag("Fraud", "owner", "ana")
    fraud = client.get_registered_model("Fraud")
    assert fraud.description == "second" and fraud.tags == {"team": "risk", "owner": "ana"}
    client.delete_registered_model_tag("Fraud", "owner")
    assert [m.name for m in client.search_registered_models("name LIKE 'Fr%'")] == ["Fraud"]
    assert [m.name for m in client.search_registered_models("tags.team = 'risk'")] == ["Fraud"]
    page = client.search_registered_models(max_results=1)
    assert [m.name for m in page] == ["Churn"] and page.token
    assert [
        m.name for m in client.search_registered_models(max_results=1, page_token=page.token)
    ] == ["Fraud"]

    client.rename_registered_model("Churn", "ChurnPredictor")
    assert client.get_model_version("ChurnPredictor", 2).run_id == run_ids[1]
    assert resolve_model_uri("models:/ChurnPredictor/1").run_id == run_ids[0]
    with pytest.raises(ResourceDoesNotExist, match="ChurnPredictor"):
        client.get_registered_model("Churn")
    client.delete_registered_model("Fraud")
    assert [m.name for m in client.search_registered_models()] == ["ChurnPredictor"]


def test_versions_update_tags_search_delete(registered):
    client, run_ids, _ = registered
    client.update_model_version("Churn", "2", description="F1=0.891")
    client.set_model_version_tag("Churn", 2, "validated_by", "data-science-team")
    v2 = client.get_model_version("Churn", 2)
    assert v2.description == "F1=0.891" and v2.tags == {"validated_by": "data-science-team"}
    by_tag = client.search_model_versions("tags.validated_by = 'data-science-team'")
    assert [v.version for v in by_tag] == [2]
    by_run = client.search_model_versions(f"run_id = '{run_ids[0]}'")
    assert [(v.name, v.version) for v in by_run] == [("Churn", 1)]
    assert [v.version for v in client.search_model_versions("name = 'Churn'")] == [3, 2, 1]
    assert [
        v.version
        for v in client.search_model_versions(
            "name = 'Churn' AND version > 1", order_by=["version ASC"]
        )
    ] == [2, 3]
    client.delete_model_version_tag("Churn", 2, "validated_by")
    client.delete_model_version("Churn", 1)
    with pytest.raises(ResourceDoesNotExist, match=r"no version 1 \(versions: 2, 3\)"):
        client.get_model_version("Churn", 1)
    with pytest.raises(InvalidParameterValue, match="versions are integers"):
        client.get_model_version("Churn", "abc")


def test_stage_transitions_and_latest_versions(registered):
    client, _, _ = registered
    staged = client.transition_model_version_stage("Churn", 1, "staging")
    assert staged.current_stage == "Staging"  # case-insensitive, stored canonically
    client.transition_model_version_stage("Churn", 1, "Production", archive_existing_versions=True)
    client.transition_model_version_stage("Churn", 2, "Production", archive_existing_versions=False)
    assert {v.version for v in client.search_model_versions("current_stage = 'Production'")} == {
        1,
        2,
    }
    client.transition_model_version_stage("Churn", 3, "Production", archive_existing_versions=True)
    stages = {v.version: v.current_stage for v in client.search_model_versions("name = 'Churn'")}
    assert stages == {1: "Archived", 2: "Archived", 3: "Production"}
    latest = client.get_latest_versions("Churn", stages=["Production"])
    assert [(v.version, v.current_stage) for v in latest] == [(3, "Production")]
    assert {v.current_stage for v in client.get_latest_versions("Churn")} == {
        "Production",
        "Archived",
    }


def test_invalid_stage_lists_valid_ones(registered):
    client, _, _ = registered
    with pytest.raises(InvalidParameterValue, match="None, Staging, Production, Archived"):
        client.transition_model_version_stage("Churn", 1, "Prod")
    assert client.get_model_version("Churn", 1).current_stage == "None"
    with pytest.raises(InvalidParameterValue, match="only applies to the Staging and Production"):
        client.transition_model_version_stage(
            "Churn", 1, "Archived", archive_existing_versions=True
        )


def test_aliases(registered):
    client, _, _ = registered
    client.set_registered_model_alias("Churn", "champion", 2)
    assert client.get_model_version_by_alias("Churn", "champion").version == 2
    assert client.get_registered_model("Churn").aliases == {"champion": 2}
    assert client.get_model_version("Churn", 2).aliases == ["champion"]
    client.set_registered_model_alias("Churn", "champion", 3)  # moves
    assert client.get_model_version_by_alias("Churn", "champion").version == 3
    for bad in ("3", "v3", "V12", "latest", "with space", ""):
        with pytest.raises(InvalidParameterValue):
            client.set_registered_model_alias("Churn", bad, 1)
    with pytest.raises(ResourceDoesNotExist, match=r"no alias 'gold' \(aliases: champion\)"):
        client.get_model_version_by_alias("Churn", "gold")
    client.delete_registered_model_alias("Churn", "champion")
    with pytest.raises(ResourceDoesNotExist):
        client.delete_registered_model_alias("Churn", "champion")


def test_model_uris_resolve_and_unknowns_list_what_exists(registered):
    client, run_ids, _ = registered
    client.transition_model_version_stage("Churn", 2, "Production")
    client.set_registered_model_alias("Churn", "champion", 1)
    assert resolve_model_uri("models:/Churn/3").run_id == run_ids[2]
    assert resolve_model_uri("models:/Churn/Production").run_id == run_ids[1]
    assert resolve_model_uri("models:/Churn/production").version == 2
    assert resolve_model_uri("models:/Churn@champion").run_id == run_ids[0]
    assert resolve_model_uri("models:/Churn/latest").version == 3
    assert resolve_model_uri(f"runs:/{run_ids[0]}/model").local_path.endswith("/artifacts/model")
    with pytest.raises(ResourceDoesNotExist, match="Registered models: Churn"):
        resolve_model_uri("models:/Nope/1")
    with pytest.raises(ResourceDoesNotExist, match=r"versions: 1, 2, 3"):
        resolve_model_uri("models:/Churn/9")
    with pytest.raises(
        ResourceDoesNotExist,
        match=r"No version of model 'Churn' is in stage Staging \(versions: v1 None, v2 Production, v3 None\)",
    ):
        resolve_model_uri("models:/Churn/Staging")
    with pytest.raises(InvalidParameterValue, match="valid stages"):
        resolve_model_uri("models:/Churn/Prodution")
    with pytest.raises(ResourceDoesNotExist, match=r"aliases: champion"):
        resolve_model_uri("models:/Churn@gold")
    with pytest.raises(InvalidParameterValue, match="expected models:/<name>/<version>"):
        resolve_model_uri("models:/Churn")


def test_audit_trail_records_who_when_from_to(registered):
    client, _, _ = registered
    client.transition_model_version_stage("Churn", 1, "Staging", comment="looks good")
    client.transition_model_version_stage("Churn", 1, "Production", archive_existing_versions=True)
    client.transition_model_version_stage("Churn", 2, "Production", archive_existing_versions=True)
    client.set_registered_model_alias("Churn", "champion", 2)
    trail = client.get_audit_trail("Churn")
    moves = [
        (e.action, e.version, e.from_value, e.to_value) for e in trail if e.action != "register"
    ]
    assert moves == [
        ("transition", 1, "None", "Staging"),
        ("transition", 1, "Staging", "Production"),
        ("archive", 1, "Production", "Archived"),
        ("transition", 2, "None", "Production"),
        ("set_alias", 2, None, "2"),
    ]
    assert trail[3].comment == "looks good"
    assert all(e.user_id and e.timestamp > 0 for e in trail)
    assert [e.version for e in trail if e.action == "register"] == [1, 2, 3]


def test_rollback_stage_walks_back_through_holders(registered):
    client, _, _ = registered
    for version in (1, 2, 3):
        client.transition_model_version_stage(
            "Churn", version, "Production", archive_existing_versions=True
        )
    assert client.rollback("Churn", stage="Production").version == 2
    assert client.get_model_version("Churn", 3).current_stage == "Archived"
    assert client.get_model_version_by_stage("Churn", "Production").version == 2
    assert client.rollback("Churn", stage="Production", comment="again").version == 1
    assert [v.version for v in client.search_model_versions("current_stage = 'Production'")] == [1]
    with pytest.raises(ResourceDoesNotExist, match="No earlier holder"):
        client.rollback("Churn", stage="Production")
    actions = [e.action for e in client.get_audit_trail("Churn")]
    assert actions.count("rollback") == 2


def test_rollback_alias(registered):
    client, _, _ = registered
    client.set_registered_model_alias("Churn", "champion", 1)
    client.set_registered_model_alias("Churn", "champion", 3)
    assert client.rollback("Churn", alias="champion").version == 1
    assert client.get_model_version_by_alias("Churn", "champion").version == 1
    with pytest.raises(ResourceDoesNotExist):
        client.rollback("Churn", alias="champion")
    with pytest.raises(InvalidParameterValue, match="exactly one"):
        client.rollback("Churn")


def test_unknown_model_errors_are_clear(mlflow):
    client = mlflow.MlflowClient()
    with pytest.raises(ResourceDoesNotExist, match="No model is registered yet"):
        client.get_registered_model("Ghost")
    with pytest.raises(InvalidParameterValue, match="not allowed"):
        client.create_registered_model("a/b")


_PROMOTER = textwrap.dedent(
    """
    import sys, time
    import jupyter_mltrack as mlflow
    uri, version, start = sys.argv[1], sys.argv[2], float(sys.argv[3])
    client = mlflow.MlflowClient(uri)
    client.get_registered_model("Race")  # open the store before the start line
    while time.time() < start:
        pass
    client.transition_model_version_stage("Race", version, "Production", archive_existing_versions=True)
    """
)


def test_concurrent_promotions_leave_exactly_one_in_production(mlflow, store_uri):
    import time

    client = mlflow.MlflowClient()
    run_id = log_model_dir(mlflow)
    for _ in range(6):
        mlflow.register_model(f"runs:/{run_id}/model", "Race")
    for round_ in range(3):
        start = time.time() + 1.5
        versions = (2 * round_ + 1, 2 * round_ + 2)
        procs = [
            subprocess.Popen([sys.executable, "-c", _PROMOTER, store_uri, str(v), str(start)])
            for v in versions
        ]
        assert [p.wait(timeout=120) for p in procs] == [0, 0]
        in_production = client.search_model_versions(
            "name = 'Race' AND current_stage = 'Production'"
        )
        assert len(in_production) == 1, [v.version for v in in_production]
        assert in_production[0].version in versions
