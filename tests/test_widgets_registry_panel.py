"""RegistryPanel driven from Python on real registered sklearn models, both backends."""

from __future__ import annotations

import re

import pytest
from sklearn.datasets import load_iris
from sklearn.dummy import DummyClassifier
from sklearn.linear_model import LogisticRegression

from jupyter_mltrack.exceptions import ResourceDoesNotExist
from jupyter_mltrack.registry import ValidationGate
from jupyter_mltrack.widgets.registry_panel import RegistryPanel
from jupyter_mltrack.widgets.registry_text import (
    describe_gate,
    describe_validation,
    rollback_changes,
    rollback_targets,
)


@pytest.fixture
def iris():
    return load_iris(return_X_y=True, as_frame=True)


@pytest.fixture
def client(mlflow, iris):
    """Iris v1 = a good model, v2 = a constant predictor, v3 = another good model."""
    X, y = iris
    models = [
        LogisticRegression(max_iter=300).fit(X, y),
        DummyClassifier(strategy="most_frequent").fit(X, y),
        LogisticRegression(C=0.5, max_iter=300).fit(X, y),
    ]
    for model in models:
        with mlflow.start_run():
            mlflow.sklearn.log_model(model, name="model", registered_model_name="Iris")
    return mlflow.MlflowClient()


@pytest.fixture
def gate(iris):
    X, y = iris
    return ValidationGate(data=X, targets=y, metric="accuracy", threshold=0.9)


def _panel(client, name="Iris", **kwargs):
    return RegistryPanel(name, client=client, background=False, **kwargs)


def stages(client, name="Iris"):
    return {v.version: v.current_stage for v in client.search_model_versions(f"name = '{name}'")}


def shown(panel):
    return panel.confirm_box.layout.display != "none"


def cells(grid, key):
    return [r["cells"][key] for r in grid.rows]


def test_lists_models_versions_and_audit(client):
    client.create_registered_model("Other", description="not trained yet")
    panel = _panel(client)
    assert cells(panel.models_grid, "name") == ["Iris", "Other"]
    assert panel.models_grid.selected == ["Iris"]
    assert cells(panel.versions_grid, "version") == [3, 2, 1]
    assert cells(panel.versions_grid, "stage") == ["None"] * 3
    assert all(r["links"] == ["run"] for r in panel.versions_grid.rows)
    assert cells(panel.audit_grid, "action") == ["register"] * 3
    assert cells(panel.audit_grid, "version") == [3, 2, 1]  # newest first
    assert repr(panel) == "RegistryPanel: Iris, 3 versions"
    # nothing selected: version actions are off, the model's description is editable
    assert panel.selected_version is None
    assert panel.promote_production_button.disabled and panel.archive_button.disabled
    assert panel.set_alias_button.disabled and panel.rollback_button.disabled
    assert not panel.edit_description_button.disabled
    panel.select_version(2)
    assert panel.selected_version == 2
    assert not panel.promote_staging_button.disabled and not panel.archive_button.disabled
    # picking another model in the list shows it
    panel.models_grid.select(["Other"])
    assert panel.model_name == "Other" and panel.versions_grid.rows == []
    assert "not trained yet" in panel.model_info.value
    assert repr(panel) == "RegistryPanel: Other, 0 versions"
    assert panel.last_error is None


def test_promote_is_confirmed_first_and_archives_existing(client):
    panel = _panel(client)
    panel.select_version(1)
    panel.promote_production_button.click()
    assert shown(panel)
    assert "v1: None → Production" in panel.confirm_text.value
    assert "No validation gate configured" in panel.confirm_text.value
    assert stages(client) == {1: "None", 2: "None", 3: "None"}  # nothing before Confirm
    panel.confirm_button.click()
    assert not shown(panel)
    assert stages(client) == {1: "Production", 2: "None", 3: "None"}
    assert "v1 is now in Production" in panel.result_box.value
    assert cells(panel.versions_grid, "stage") == ["None", "None", "Production"]
    assert panel.audit_grid.rows[0]["cells"]["action"] == "promote"
    assert repr(panel) == "RegistryPanel: Iris, 3 versions (Production: v1)"

    # archive existing on (the default): the old holder is archived
    panel.select_version(3)
    panel.promote_production_button.click()
    text = panel.confirm_text.value
    assert "v3: None → Production" in text and "v1: Production → Archived" in text
    panel.confirm_button.click()
    assert stages(client) == {1: "Archived", 2: "None", 3: "Production"}
    assert client.get_model_version("Iris", 1).current_stage == "Archived"


def test_promote_without_archiving_existing_and_to_staging(client):
    panel = _panel(client)
    panel.select_version(1)
    panel.promote_staging_button.click()
    assert "v1: None → Staging" in panel.confirm_text.value
    panel.confirm_button.click()
    panel.select_version(2)
    panel.archive_existing.value = False
    panel.promote_staging_button.click()
    assert "v1: stays in Staging (archive existing is off)" in panel.confirm_text.value
    # flipping the checkbox while the confirmation is open updates what it says
    panel.archive_existing.value = True
    assert "v1: Staging → Archived (archive existing)" in panel.confirm_text.value
    panel.archive_existing.value = False
    panel.confirm_button.click()
    assert stages(client) == {1: "Staging", 2: "Staging", 3: "None"}
    assert repr(panel) == "RegistryPanel: Iris, 3 versions (Staging: v1, v2)"


def test_cancel_changes_nothing(client):
    panel = _panel(client)
    panel.select_version(2)
    trail = len(client.get_audit_trail("Iris"))
    panel.promote_production_button.click()
    assert shown(panel)
    panel.cancel_button.click()
    assert not shown(panel) and panel.confirm_text.value == ""
    assert stages(client) == {1: "None", 2: "None", 3: "None"}
    assert len(client.get_audit_trail("Iris")) == trail
    panel.confirm_button.click()  # nothing pending any more
    assert "Nothing to confirm" in panel.last_error
    assert stages(client) == {1: "None", 2: "None", 3: "None"}


def test_validation_gate_passes_and_refuses(client, gate):
    panel = _panel(client, validate=gate)
    panel.select_version(1)
    panel.promote_production_button.click()
    assert "Validation gate: accuracy on 150 rows must clear 0.9" in panel.confirm_text.value
    panel.confirm_button.click()
    assert stages(client)[1] == "Production"
    assert "accuracy_score = 0.9" in panel.result_box.value
    assert "passed" in panel.result_box.value

    panel.select_version(2)  # the constant predictor
    panel.promote_production_button.click()
    assert "v1: Production → Archived" in panel.confirm_text.value
    panel.confirm_button.click()
    result = panel.result_box.value
    assert "refused" in result and "nothing was changed" in result
    assert "accuracy_score = 0.3333" in result and "threshold: ≥ 0.9" in result
    assert stages(client) == {1: "Production", 2: "None", 3: "None"}
    assert panel.last_error is None
    top = panel.audit_grid.rows[0]
    assert top["cells"]["action"] == "promote_refused" and top["cells"]["version"] == 2
    assert "accuracy_score = 0.3333" in top["cells"]["details"]
    assert top["classes"]["action"] == "mltrack-differs"
    refused = [e for e in client.get_audit_trail("Iris") if e.action == "promote_refused"]
    assert [(e.version, e.target) for e in refused] == [(2, "Production")]


def test_a_broken_gate_is_an_error_not_a_traceback(client):
    panel = _panel(client, validate={"data": [[1]], "metric": "accuracy"})
    panel.select_version(1)
    panel.promote_production_button.click()
    panel.confirm_button.click()
    assert "validate as a dict needs keys" in panel.last_error
    assert stages(client)[1] == "None"


def test_set_and_delete_alias(client):
    panel = _panel(client)
    panel.select_version(3)
    assert panel.set_alias_button.disabled  # no alias typed yet
    panel.alias_box.value = "champion"
    panel.set_alias_button.click()
    assert "alias &#x27;champion&#x27;: (none) → v3" in panel.confirm_text.value
    assert client.get_registered_model("Iris").aliases == {}
    panel.confirm_button.click()
    assert client.get_model_version_by_alias("Iris", "champion").version == 3
    assert cells(panel.versions_grid, "aliases")[0] == "@champion"
    assert "@champion" in panel.rollback_target.options

    panel.select_version(1)
    panel.set_alias_button.click()
    assert "(none)" not in panel.confirm_text.value and "v3 → v1" in panel.confirm_text.value
    panel.confirm_button.click()
    assert client.get_model_version_by_alias("Iris", "champion").version == 1

    panel.delete_alias_button.click()
    assert "v1 → (deleted)" in panel.confirm_text.value
    panel.confirm_button.click()
    assert client.get_registered_model("Iris").aliases == {}
    assert panel.audit_grid.rows[0]["cells"]["action"] == "delete_alias"


@pytest.mark.parametrize(
    ("alias", "message"),
    [("bad alias!", "Invalid alias"), ("v2", "looks like a version"), ("latest", "reserved")],
)
def test_bad_alias_is_an_error_and_changes_nothing(client, alias, message):
    panel = _panel(client)
    panel.select_version(1)
    panel.alias_box.value = alias
    panel.set_alias_button.click()
    assert message in panel.last_error and "mltrack-error-text" in panel.error_box.value
    assert not shown(panel)
    assert client.get_registered_model("Iris").aliases == {}
    panel.alias_box.value = "nobody"
    panel.delete_alias_button.click()
    assert "has no alias 'nobody'" in panel.last_error


def test_archive(client):
    client.transition_model_version_stage("Iris", 2, "Staging")
    panel = _panel(client)
    panel.select_version(2)
    panel.archive_button.click()
    assert "v2: Staging → Archived" in panel.confirm_text.value
    assert stages(client)[2] == "Staging"
    panel.comment_box.value = "superseded"
    panel.archive_button.click()  # a new click replaces the confirmation
    assert "superseded" in panel.confirm_text.value
    panel.confirm_button.click()
    assert stages(client)[2] == "Archived"
    assert cells(panel.versions_grid, "stage")[1] == "Archived"
    top = panel.audit_grid.rows[0]["cells"]
    assert (top["action"], top["change"], top["comment"]) == (
        "transition",
        "Staging → Archived",
        "superseded",
    )
    panel.archive_button.click()
    assert panel.last_error == "v2 is already Archived."


def test_roll_back_a_stage_and_an_alias(client):
    client.transition_model_version_stage("Iris", 1, "Production")
    client.transition_model_version_stage("Iris", 3, "Production", archive_existing_versions=True)
    client.set_registered_model_alias("Iris", "champion", 1)
    client.set_registered_model_alias("Iris", "champion", 3)
    panel = _panel(client)
    assert panel.rollback_target.options == ("Production", "@champion")
    panel.rollback_target.value = "Production"
    panel.rollback_button.click()
    text = panel.confirm_text.value
    assert "v1: Archived → Production" in text and "v3: Production → Archived" in text
    assert stages(client) == {1: "Archived", 2: "None", 3: "Production"}
    panel.confirm_button.click()
    assert stages(client) == {1: "Production", 2: "None", 3: "Archived"}
    assert "v1 holds it" in panel.result_box.value

    panel.rollback_target.value = "@champion"
    panel.rollback_button.click()
    assert "alias &#x27;champion&#x27;: v3 → v1" in panel.confirm_text.value
    panel.confirm_button.click()
    assert client.get_model_version_by_alias("Iris", "champion").version == 1
    assert panel.audit_grid.rows[0]["cells"]["action"] == "rollback"


def test_roll_back_without_history_is_an_error(client):
    client.transition_model_version_stage("Iris", 2, "Production")
    panel = _panel(client)
    assert panel.rollback_target.options == ("Production",)
    panel.rollback_button.click()
    assert panel.last_error.startswith("No earlier holder of stage Production for 'Iris'")
    assert "refreshed" not in panel.last_error  # nothing vanished: the panel stays as it is
    assert not shown(panel)
    assert stages(client) == {1: "None", 2: "Production", 3: "None"}
    with pytest.raises(ResourceDoesNotExist) as refused:  # the Client says the same
        client.rollback("Iris", stage="Production")
    assert panel.last_error == refused.value.message


def test_edit_description_of_a_version_and_of_the_model(client):
    client.update_model_version("Iris", 2, description="constant baseline")
    panel = _panel(client)
    assert panel.description_box.value == ""  # the model's (none yet)
    panel.select_version(2)
    assert panel.description_box.value == "constant baseline"
    panel.description_box.value = "most-frequent baseline"
    panel.edit_description_button.click()
    assert "v2 description: “constant baseline” → “most-frequent baseline”" in (
        panel.confirm_text.value
    )
    assert client.get_model_version("Iris", 2).description == "constant baseline"
    panel.confirm_button.click()
    assert client.get_model_version("Iris", 2).description == "most-frequent baseline"
    assert cells(panel.versions_grid, "description")[1] == "most-frequent baseline"

    panel.select_version(None)  # no version: the model's description
    assert panel.description_box.value == ""
    panel.description_box.value = "Iris species classifier"
    panel.edit_description_button.click()
    assert "model Iris description: (empty) → “Iris species classifier”" in (
        panel.confirm_text.value
    )
    panel.confirm_button.click()
    assert client.get_registered_model("Iris").description == "Iris species classifier"
    assert "Iris species classifier" in panel.model_info.value
    assert cells(panel.models_grid, "description") == ["Iris species classifier"]
    panel.edit_description_button.click()
    assert "unchanged" in panel.last_error


@pytest.mark.parametrize("background", [False, True])
def test_unknown_model_name(client, background):
    panel = RegistryPanel("Nope", client=client, background=background)
    assert panel.last_error == "Registered model 'Nope' not found. Registered models: Iris."
    assert panel.model_name is None and panel.versions_grid.rows == []
    assert cells(panel.models_grid, "name") == ["Iris"]
    assert repr(panel) == "RegistryPanel: 1 registered model, none selected"
    panel.models_grid.select(["Iris"])
    panel.wait()
    assert panel.model_name == "Iris" and panel.last_error is None


def test_version_deleted_after_selection(client):
    panel = _panel(client)
    panel.select_version(2)
    client.delete_model_version("Iris", 2)  # someone else
    panel.archive_button.click()
    assert "no version 2" in panel.last_error and "refreshed" in panel.last_error
    assert cells(panel.versions_grid, "version") == [3, 1]
    assert panel.selected_version is None and panel.archive_button.disabled
    assert stages(client) == {1: "None", 3: "None"}


def test_registry_changed_between_confirmation_and_confirm(client):
    panel = _panel(client)
    panel.select_version(3)
    panel.promote_production_button.click()
    client.transition_model_version_stage("Iris", 1, "Production")  # someone else, meanwhile
    panel.confirm_button.click()
    assert "changed since this confirmation was shown" in panel.last_error
    assert stages(client) == {1: "Production", 2: "None", 3: "None"}
    assert shown(panel) and "v1: Production → Archived" in panel.confirm_text.value
    panel.confirm_button.click()  # the user has now seen it
    assert stages(client) == {1: "Archived", 2: "None", 3: "Production"}


def test_model_deleted_under_the_panel(client):
    panel = _panel(client)
    client.delete_registered_model("Iris")
    panel.refresh_button.click()
    assert "not found" in panel.last_error
    assert panel.model_name is None and panel.models_grid.rows == []


def test_roll_back_after_the_model_was_deleted_refreshes(client):
    client.transition_model_version_stage("Iris", 1, "Production")
    client.transition_model_version_stage("Iris", 2, "Production")
    panel = _panel(client)
    client.delete_registered_model("Iris")  # someone else
    panel.rollback_button.click()
    assert "not found" in panel.last_error and "refreshed" in panel.last_error
    assert panel.model_name is None and not shown(panel)


def test_background_actions_and_wait(client):
    panel = RegistryPanel("Iris", client=client)
    assert repr(panel) == "RegistryPanel: Iris, 3 versions"  # loaded before it is shown
    assert len(panel.versions_grid.rows) == 3
    panel.select_version(1)
    panel.promote_staging_button.click()
    panel.wait()
    panel.confirm_button.click()
    panel.wait()
    assert stages(client)[1] == "Staging"
    assert repr(panel) == "RegistryPanel: Iris, 3 versions (Staging: v1)"
    panel.close()


def test_source_run_link_opens_run_detail(client):
    from jupyter_mltrack.widgets.run_detail import RunDetail

    panel = _panel(client)
    run_id = client.get_model_version("Iris", 2).run_id
    panel.versions_grid.click("2", "run")
    [detail] = panel.detail_area.children
    assert isinstance(detail, RunDetail) and detail.run_id == run_id


# -- plain functions --------------------------------------------------------------------------
def test_rollback_preview_agrees_with_the_registry(client):
    """The version the confirmation names is the one ``Client.rollback`` then restores."""
    moves = [(1, "Production"), (2, "Production"), (3, "Production"), (1, "Staging")]
    for version, stage in moves:
        client.transition_model_version_stage(
            "Iris", version, stage, archive_existing_versions=True
        )
    for alias_version in (2, 3, 1):
        client.set_registered_model_alias("Iris", "champion", alias_version)
    panel = _panel(client)
    restored = []
    for _ in range(2):
        for target in ("Production", "@champion"):
            panel.rollback_target.value = target
            panel.rollback_button.click()
            assert panel.last_error is None
            line = re.search(r"<li>(.*?)</li>", panel.confirm_text.value).group(1)
            promised = int(re.findall(r"v(\d+)", line)[-1 if target.startswith("@") else 0])
            panel.confirm_button.click()
            if target.startswith("@"):
                holder = client.get_model_version_by_alias("Iris", "champion").version
            else:
                holder = max(v for v, s in stages(client).items() if s == target)
            assert holder == promised and f"v{promised} holds it" in panel.result_box.value
            restored.append(promised)
    assert restored == [2, 3, 1, 2]


def test_rollback_text(client):
    client.transition_model_version_stage("Iris", 1, "Production")
    client.transition_model_version_stage("Iris", 2, "Production", archive_existing_versions=True)
    client.set_registered_model_alias("Iris", "champion", 2)
    versions = client.search_model_versions("name = 'Iris'")
    v1 = client.get_model_version("Iris", 1)
    assert rollback_changes(versions, v1, stage="Production") == [
        "v1: Archived → Production",
        "v2: Production → Archived (rolled back)",
    ]
    assert rollback_changes(versions, v1, alias="champion") == ["alias 'champion': v2 → v1"]
    trail = client.get_audit_trail("Iris")
    assert rollback_targets(versions, trail) == ["Production", "@champion"]


def test_describe_gate_and_validation(gate):
    assert describe_gate(None).startswith("No validation gate configured")
    assert describe_gate(gate) == "Validation gate: accuracy on 150 rows must clear 0.9."
    assert (
        describe_gate(
            {
                "data": [1, 2],
                "targets": [1, 2],
                "metric": "mae",
                "threshold": 1,
                "greater_is_better": False,
            }
        )
        == "Validation gate: mae on 2 rows ≤ 1."
    )

    def no_drift(model):
        return True

    assert describe_gate(no_drift) == "Validation gate: no_drift(model) must pass."
    assert (
        describe_validation(
            {
                "passed": False,
                "metric": "f1_score",
                "value": 0.5,
                "threshold": 0.9,
                "greater_is_better": True,
            }
        )
        == "f1_score = 0.5 (threshold: ≥ 0.9): refused"
    )
    assert describe_validation({"passed": False, "error": "ValueError: boom"}) == (
        "validation refused: it raised ValueError: boom"
    )
    assert describe_validation({"passed": True}) == "validation passed"
