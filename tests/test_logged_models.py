"""Logged models (MLflow 3): store and Client methods on SQLite and PostgreSQL, run outputs, and
the upgrade of a revision-0002 store to 0003 keeping its data."""

from __future__ import annotations

import os

import pytest

from jupyter_mltrack.entities import LoggedModelOutput, LoggedModelStatus
from jupyter_mltrack.exceptions import (
    InvalidParameterValue,
    MlflowException,
    ResourceDoesNotExist,
)


def _experiment(client, name="lm"):
    return client.create_experiment(name)


def test_create_get_finalize(client):
    exp = _experiment(client)
    run = client.create_run(exp)
    model = client.create_logged_model(
        exp,
        name="model",
        source_run_id=run.info.run_id,
        tags={"mlflow.user": "ana"},
        params={"alpha": 0.5},
        model_type="sklearn",
    )
    assert model.model_id.startswith("m-")
    assert model.status == LoggedModelStatus.PENDING
    assert model.artifact_location.endswith(f"/{exp}/models/{model.model_id}/artifacts")
    assert model.model_uri == f"models:/{model.model_id}"
    assert model.tags == {"mlflow.user": "ana"} and model.params == {"alpha": "0.5"}
    ready = client.finalize_logged_model(model.model_id, "LOGGED_MODEL_READY")
    assert ready.status == "READY"
    assert ready.last_updated_timestamp >= model.creation_timestamp
    got = client.get_logged_model(model.model_id)
    assert (got.name, got.source_run_id, got.model_type) == ("model", run.info.run_id, "sklearn")
    with pytest.raises(InvalidParameterValue):
        client.finalize_logged_model(model.model_id, "DONE")


def test_generated_name_and_bad_input(client):
    exp = _experiment(client)
    assert client.create_logged_model(exp).name
    with pytest.raises(ResourceDoesNotExist):
        client.create_logged_model("9999")
    with pytest.raises(ResourceDoesNotExist):
        client.create_logged_model(exp, source_run_id="0" * 32)
    with pytest.raises(ResourceDoesNotExist, match="not found"):
        client.get_logged_model("m-" + "0" * 32)


def test_tags_and_params(client):
    exp = _experiment(client)
    model = client.create_logged_model(exp, name="m")
    client.set_logged_model_tags(model.model_id, {"a": "1", "b": 2})
    client.set_logged_model_tags(model.model_id, {"a": "changed"})
    client.delete_logged_model_tag(model.model_id, "b")
    with pytest.raises(ResourceDoesNotExist):
        client.delete_logged_model_tag(model.model_id, "b")
    client.log_model_params(model.model_id, {"lr": "0.1"})
    client.log_model_params(model.model_id, {"lr": "0.1", "depth": 3})  # same value: fine
    with pytest.raises(InvalidParameterValue, match="immutable"):
        client.log_model_params(model.model_id, {"lr": "0.2"})
    got = client.get_logged_model(model.model_id)
    assert got.tags == {"a": "changed"}
    assert got.params == {"lr": "0.1", "depth": "3"}


def test_search_filter_order_and_pages(client):
    exp = _experiment(client)
    other = _experiment(client, "other")
    run = client.create_run(exp)
    ids = []
    for i in range(5):
        m = client.create_logged_model(
            exp, name=f"m{i}", source_run_id=run.info.run_id, params={"i": str(i)}
        )
        ids.append(m.model_id)
    client.create_logged_model(other, name="elsewhere")
    client.finalize_logged_model(ids[1], "READY")
    found = client.search_logged_models([exp])
    assert len(found) == 5
    assert {m.name for m in client.search_logged_models([exp], "name = 'm3'")} == {"m3"}
    ready = client.search_logged_models([exp], "status = 'READY'")
    assert [m.model_id for m in ready] == [ids[1]]
    by_run = client.search_logged_models(
        [exp], f"name = 'm2' AND source_run_id = '{run.info.run_id}'"
    )
    assert [m.name for m in by_run] == ["m2"]
    assert [m.name for m in client.search_logged_models([exp], "params.i = '4'")] == ["m4"]
    ordered = client.search_logged_models(
        [exp], order_by=[{"field_name": "name", "ascending": False}]
    )
    assert [m.name for m in ordered] == ["m4", "m3", "m2", "m1", "m0"]
    page = client.search_logged_models([exp], max_results=2, order_by=["name ASC"])
    assert [m.name for m in page] == ["m0", "m1"] and page.token
    rest = client.search_logged_models(
        [exp], max_results=10, order_by=["name ASC"], page_token=page.token
    )
    assert [m.name for m in rest] == ["m2", "m3", "m4"] and rest.token is None
    with pytest.raises(InvalidParameterValue):
        client.search_logged_models([exp], "name = ")


def test_delete_is_soft(client):
    exp = _experiment(client)
    model = client.create_logged_model(exp, name="gone")
    client.delete_logged_model(model.model_id)
    with pytest.raises(ResourceDoesNotExist):
        client.get_logged_model(model.model_id)
    assert client.search_logged_models([exp]) == []
    kept = client.store.logged_models.get_logged_model(model.model_id, allow_deleted=True)
    assert kept.lifecycle_stage == "deleted"


def test_run_outputs(client):
    exp = _experiment(client)
    run = client.create_run(exp)
    a = client.create_logged_model(exp, name="a", source_run_id=run.info.run_id)
    b = client.create_logged_model(exp, name="b", source_run_id=run.info.run_id)
    client.log_outputs(run.info.run_id, [LoggedModelOutput(a.model_id, 0)])
    client.log_outputs(run.info.run_id, [LoggedModelOutput(a.model_id, 0)])  # repeat: harmless
    client.log_outputs(run.info.run_id, [LoggedModelOutput(b.model_id, 3)])
    outputs = client.store.logged_models.run_outputs(run.info.run_id)
    assert outputs == [LoggedModelOutput(a.model_id, 0), LoggedModelOutput(b.model_id, 3)]
    with pytest.raises(ResourceDoesNotExist):
        client.log_outputs(run.info.run_id, [LoggedModelOutput("m-" + "1" * 32, 0)])


def test_logged_model_artifacts_and_load(client, tmp_path):
    """Files under the model's own location; ``models:/<model_id>`` and ``runs:/<run>/<name>``
    (MLflow 3's layout: the model is not in the run's artifacts) both load it."""
    from sklearn.dummy import DummyClassifier

    import jupyter_mltrack.sklearn as mlsk
    from jupyter_mltrack.models.uri import resolve_model_uri

    exp = _experiment(client)
    run = client.create_run(exp)
    model = client.create_logged_model(exp, name="clf", source_run_id=run.info.run_id)
    folder = tmp_path / "saved"
    mlsk.save_model(DummyClassifier().fit([[0], [1]], [0, 1]), str(folder))
    client.log_model_artifacts(model.model_id, str(folder))
    by_id = resolve_model_uri(f"models:/{model.model_id}", client)
    assert os.path.isfile(os.path.join(by_id.local_path, "MLmodel"))
    by_run = resolve_model_uri(f"runs:/{run.info.run_id}/clf", client)
    assert by_run.source == model.artifact_location


def test_store_without_logged_models_is_a_clear_error(client, monkeypatch):
    monkeypatch.setattr(type(client.store), "logged_models", None, raising=False)
    with pytest.raises(MlflowException, match="does not keep logged models"):
        client.search_logged_models(["0"])


def _store_at_revision(url: str, revision: str) -> None:
    import sqlalchemy as sa
    from alembic.config import Config
    from alembic.operations import Operations
    from alembic.runtime.migration import MigrationContext
    from alembic.script import ScriptDirectory

    import jupyter_mltrack.store.migrate as migrate
    from jupyter_mltrack.store.schema import VERSION_TABLE

    config = Config()
    config.set_main_option(
        "script_location", os.path.join(os.path.dirname(migrate.__file__), "migrations")
    )
    script = ScriptDirectory.from_config(config)
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        context = MigrationContext.configure(conn, opts={"version_table": VERSION_TABLE})
        with Operations.context(context):
            for step in reversed(list(script.iterate_revisions(revision, "base"))):
                step.module.upgrade()
                context.stamp(script, step.revision)
        conn.execute(
            sa.text(
                "INSERT INTO experiments (experiment_id, name, artifact_location, lifecycle_stage,"
                " creation_time, last_update_time) VALUES (7, 'old', 'file:///x/7', 'active', 1, 1)"
            )
        )
        conn.execute(
            sa.text(
                "INSERT INTO registered_models (name, creation_timestamp, last_updated_timestamp)"
                " VALUES ('kept', 1, 1)"
            )
        )
    engine.dispose()


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_store_at_revision_0002_is_upgraded_in_place(backend, tmp_path, request):
    import sqlalchemy as sa

    import jupyter_mltrack as mlflow
    from jupyter_mltrack.store.schema import SCHEMA_REVISION, VERSION_TABLE

    assert SCHEMA_REVISION >= "0003"
    if backend == "sqlite":
        url = uri = f"sqlite:///{tmp_path / 'old.db'}"
    else:
        url = uri = request.getfixturevalue("pg_url")
    _store_at_revision(url, "0002")
    client = mlflow.MlflowClient(uri)
    assert client.get_experiment("7").name == "old"  # data kept
    assert client.get_registered_model("kept").name == "kept"
    model = client.create_logged_model("7", name="new")  # the new tables exist
    assert model.artifact_location == f"file:///x/7/models/{model.model_id}/artifacts"
    engine = sa.create_engine(url)
    with engine.connect() as conn:
        version = conn.execute(sa.text(f"SELECT version_num FROM {VERSION_TABLE}")).scalar()
    engine.dispose()
    assert version == SCHEMA_REVISION
