"""The real ``mlflow`` client (benchmarks/.venv-mlflow, mlflow==3.17.2) against ``mltrack server``.

The seed guide's tracking, comparing and registry snippets run unchanged with
``MLFLOW_TRACKING_URI=http://127.0.0.1:PORT``; their results are printed as JSON and checked
here. ``log_model`` + ``load_model("models:/...")`` also needs the artifact proxy and the
logged-model routes, mounted when their modules are installed.
"""

from __future__ import annotations

import json
import subprocess
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from test_server_routes import TOKEN, Server, server_env, start_server

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    root = tmp_path_factory.mktemp("mlflow-client")
    srv = start_server(str(root / "store"), cwd=root, artifacts=root / "artifacts")
    yield srv
    srv.stop()


def run_mlflow(
    python: Path, server: Server, code: str, tmp_path: Path, **env: str
) -> dict[str, Any]:
    """Run ``code`` with MLflow's client against ``server``; it prints one JSON line last."""
    script = tmp_path / "script.py"
    script.write_text(textwrap.dedent(code))
    done = subprocess.run(
        [str(python), str(script)],
        env=server_env(
            MLFLOW_TRACKING_URI=server.url,
            MLFLOW_HTTP_REQUEST_MAX_RETRIES="0",  # an unexpected 5xx fails at once
            GIT_PYTHON_REFRESH="quiet",
            **env,
        ),
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-4000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


TRACKING = """
import json
import mlflow

# the seed's "Basic Tracking" and "Logging Training Curves", minus the model and figure
mlflow.set_experiment("customer-churn-prediction")
with mlflow.start_run(run_name="rf-baseline") as run:
    params = {"n_estimators": 100, "max_depth": 5, "min_samples_split": 10}
    mlflow.log_params(params)
    mlflow.log_metric("accuracy", 0.91)
    mlflow.log_metric("f1_score", 0.89)
    for epoch in range(5):
        mlflow.log_metrics({"train_loss": 1 / (epoch + 1), "val_loss": 2 / (epoch + 1)}, step=epoch)
    mlflow.set_tags({"team": "churn", "data": "q1"})
    with mlflow.start_run(run_name="fold-1", nested=True) as child:
        mlflow.log_param("fold", 1)
        mlflow.log_metric("f1_score", 0.80)
    active = mlflow.active_run().info.run_id

with mlflow.start_run(run_name="rf-small"):
    mlflow.log_params({"n_estimators": 20, "max_depth": 3, "min_samples_split": 10})
    mlflow.log_metric("f1_score", 0.86)
with mlflow.start_run(run_name="rf-large"):
    mlflow.log_params({"n_estimators": 300, "max_depth": 8, "min_samples_split": 10})
    mlflow.log_metric("f1_score", 0.87)

got = mlflow.get_run(run.info.run_id)
child_run = mlflow.get_run(child.info.run_id)
print(json.dumps({
    "run_id": run.info.run_id,
    "active": active,
    "status": got.info.status,
    "name": got.info.run_name,
    "params": got.data.params,
    "metrics": got.data.metrics,
    "tags": {k: v for k, v in got.data.tags.items() if not k.startswith("mlflow.")},
    "parent": child_run.data.tags.get("mlflow.parentRunId"),
    "artifact_uri": got.info.artifact_uri,
}))
"""

COMPARING = """
import json
import mlflow

client = mlflow.MlflowClient()
experiment = client.get_experiment_by_name("customer-churn-prediction")

# the seed's "Comparing Runs" snippet, unchanged
runs = client.search_runs(
    experiment_ids=[experiment.experiment_id],
    filter_string="metrics.f1_score > 0.85 AND params.n_estimators > 50",
    order_by=["metrics.f1_score DESC"],
    max_results=10
)
best_run = runs[0]
history = client.get_metric_history(best_run.info.run_id, "train_loss")
frame = mlflow.search_runs([experiment.experiment_id], order_by=["metrics.f1_score DESC"])
print(json.dumps({
    "names": [r.info.run_name for r in runs],
    "best_f1": best_run.data.metrics["f1_score"],
    "history": [[m.step, m.value] for m in history],
    "frame_rows": len(frame),
    "frame_columns": sorted(c for c in frame.columns if c.startswith(("params.", "metrics."))),
    "frame_first": frame.iloc[0]["tags.mlflow.runName"],
}))
"""

REGISTRY = """
import json
import warnings
import mlflow
from mlflow import MlflowClient
from mlflow.exceptions import MlflowException

warnings.simplefilter("ignore")
client = MlflowClient()
experiment = client.get_experiment_by_name("customer-churn-prediction")
best_run = client.search_runs([experiment.experiment_id], order_by=["metrics.f1_score DESC"])[0]

client.create_registered_model("ChurnPredictor")
registered = client.create_model_version(
    "ChurnPredictor", source=f"runs:/{best_run.info.run_id}/model", run_id=best_run.info.run_id
)
second = client.create_model_version(
    "ChurnPredictor", source=f"runs:/{best_run.info.run_id}/model", run_id=best_run.info.run_id
)
# the seed's "Register and Promote a Model", from create onwards
client.update_model_version(
    name="ChurnPredictor",
    version=registered.version,
    description="RandomForest trained on Q1 2026 data. F1=0.891"
)
client.set_model_version_tag("ChurnPredictor", registered.version,
                             "validated_by", "data-science-team")
client.transition_model_version_stage(
    name="ChurnPredictor", version=registered.version, stage="Staging",
    archive_existing_versions=False
)
client.transition_model_version_stage(
    name="ChurnPredictor", version=registered.version, stage="Production",
    archive_existing_versions=True
)
client.transition_model_version_stage("ChurnPredictor", second.version, "Production",
                                      archive_existing_versions=True)
client.set_registered_model_alias("ChurnPredictor", "champion", registered.version)
mv = client.get_model_version("ChurnPredictor", registered.version)
latest = client.get_latest_versions("ChurnPredictor", stages=["Production"])
by_alias = client.get_model_version_by_alias("ChurnPredictor", "champion")
model = client.get_registered_model("ChurnPredictor")
found = client.search_model_versions("name='ChurnPredictor'")
models = client.search_registered_models(filter_string="name LIKE 'Churn%'")
client.delete_registered_model_alias("ChurnPredictor", "champion")
errors = {}
try:
    client.get_run("0" * 32)
except MlflowException as exc:
    errors["missing_run"] = exc.error_code
try:
    with mlflow.start_run(run_id=best_run.info.run_id):
        mlflow.log_param("n_estimators", 1)
except MlflowException as exc:
    errors["param_change"] = exc.error_code
try:
    client.create_registered_model("ChurnPredictor")
except MlflowException as exc:
    errors["duplicate_model"] = exc.error_code
print(json.dumps({
    "version": mv.version,
    "stage": mv.current_stage,
    "description": mv.description,
    "tags": mv.tags,
    "latest": [[v.version, v.current_stage] for v in latest],
    "alias": by_alias.version,
    "aliases": model.aliases,
    "found": sorted(v.version for v in found),
    "models": [m.name for m in models],
    "download": client.get_model_version_download_uri("ChurnPredictor", registered.version),
    "aliases_after": client.get_registered_model("ChurnPredictor").aliases,
    "errors": errors,
}))
"""


def test_seed_tracking_comparing_and_registry(
    mlflow_python: Path, server: Server, tmp_path: Path
) -> None:
    tracked = run_mlflow(mlflow_python, server, TRACKING, tmp_path)
    assert tracked["active"] == tracked["run_id"]
    assert tracked["status"] == "FINISHED" and tracked["name"] == "rf-baseline"
    assert tracked["params"] == {"n_estimators": "100", "max_depth": "5", "min_samples_split": "10"}
    assert tracked["metrics"] == {
        "accuracy": 0.91,
        "f1_score": 0.89,
        "train_loss": 0.2,
        "val_loss": 0.4,
    }
    assert tracked["tags"] == {"team": "churn", "data": "q1"}
    assert tracked["parent"] == tracked["run_id"]
    assert tracked["artifact_uri"].startswith("mlflow-artifacts:/")

    compared = run_mlflow(mlflow_python, server, COMPARING, tmp_path)
    # numeric comparison of params: 100 and 300 pass "> 50", 20 does not
    assert compared["names"] == ["rf-baseline", "rf-large"]
    assert compared["best_f1"] == 0.89
    assert compared["history"] == [[i, 1 / (i + 1)] for i in range(5)]
    assert compared["frame_rows"] == 4 and compared["frame_first"] == "rf-baseline"
    assert "params.n_estimators" in compared["frame_columns"]
    assert "metrics.f1_score" in compared["frame_columns"]

    reg = run_mlflow(mlflow_python, server, REGISTRY, tmp_path)
    assert reg["version"] == "1" and reg["stage"] == "Archived"  # archived by version 2
    assert reg["description"].startswith("RandomForest")
    assert reg["tags"] == {"validated_by": "data-science-team"}
    assert reg["latest"] == [["2", "Production"]]
    assert reg["alias"] == "1" and reg["aliases"] == {"champion": "1"}
    assert reg["found"] == ["1", "2"] and reg["models"] == ["ChurnPredictor"]
    assert reg["download"] == f"{tracked['artifact_uri']}/model"
    assert reg["aliases_after"] == {}
    assert reg["errors"] == {
        "missing_run": "RESOURCE_DOES_NOT_EXIST",
        "param_change": "INVALID_PARAMETER_VALUE",
        "duplicate_model": "RESOURCE_ALREADY_EXISTS",
    }

    # what MLflow's client wrote is what our own Client reads from the same store
    trail = server.call(
        "GET", "/api/2.0/mltrack/registered-models/audit-trail", name="ChurnPredictor"
    )
    assert [e["action"] for e in trail["entries"]][:2] == ["register", "register"]


def test_token_auth_with_mlflow_client(mlflow_python: Path, tmp_path: Path) -> None:
    srv = start_server(
        str(tmp_path / "store"),
        "--auth",
        "token",
        env=server_env(MLTRACK_SERVER_TOKEN=TOKEN),
        cwd=tmp_path,
    )
    code = """
    import json
    import mlflow
    mlflow.set_experiment("with-token")
    with mlflow.start_run() as run:
        mlflow.log_metric("m", 1.0)
    print(json.dumps({"m": mlflow.get_run(run.info.run_id).data.metrics["m"]}))
    """
    try:
        assert run_mlflow(mlflow_python, srv, code, tmp_path, MLFLOW_TRACKING_TOKEN=TOKEN) == {
            "m": 1.0
        }
        refused = """
        import json
        import mlflow
        from mlflow.exceptions import MlflowException
        try:
            mlflow.set_experiment("no-token")
        except MlflowException as exc:
            print(json.dumps({"code": exc.error_code}))
        """
        out = run_mlflow(mlflow_python, srv, refused, tmp_path, MLFLOW_TRACKING_TOKEN="wrong")
        assert out == {"code": "UNAUTHENTICATED"}
    finally:
        srv.stop()


LOG_MODEL = """
import json
import mlflow
import mlflow.sklearn
import numpy as np
from sklearn.linear_model import LogisticRegression

X = np.array([[0.0, 1.0], [1.0, 0.0], [0.2, 0.9], [0.9, 0.1]])
y = np.array([0, 1, 0, 1])
mlflow.set_experiment("models-through-the-proxy")
with mlflow.start_run() as run:
    model = LogisticRegression().fit(X, y)
    signature = mlflow.models.infer_signature(X, model.predict(X))
    mlflow.sklearn.log_model(model, name="model", signature=signature)
    mlflow.log_text("hello", "notes/readme.txt")
registered = mlflow.register_model(f"runs:/{run.info.run_id}/model", "ProxyModel")
client = mlflow.MlflowClient()
client.transition_model_version_stage("ProxyModel", registered.version, "Production")
client.set_registered_model_alias("ProxyModel", "champion", registered.version)
loaded = mlflow.sklearn.load_model("models:/ProxyModel/Production")
by_alias = mlflow.pyfunc.load_model("models:/ProxyModel@champion")
text = mlflow.artifacts.load_text(f"runs:/{run.info.run_id}/notes/readme.txt")
print(json.dumps({
    "pred": loaded.predict(X).tolist(),
    "pred_alias": by_alias.predict(X).tolist(),
    "text": text,
    "listed": sorted(f.path for f in client.list_artifacts(run.info.run_id)),
}))
"""


def test_log_model_and_load_through_the_server(
    mlflow_python: Path, server: Server, tmp_path: Path
) -> None:
    out = run_mlflow(mlflow_python, server, LOG_MODEL, tmp_path)
    assert out["pred"] == [0, 1, 0, 1] and out["pred_alias"] == [0, 1, 0, 1]
    assert out["text"] == "hello"
    assert "notes" in out["listed"]


DATASETS = """
import json
import mlflow
import pandas as pd

mlflow.set_experiment("datasets-through-the-server")
df = pd.DataFrame({"x": [1.0, 2.0, 3.0], "y": [0, 1, 0]})
dataset = mlflow.data.from_pandas(df, name="train", targets="y")
with mlflow.start_run() as run:
    mlflow.log_input(dataset, context="training")
    mlflow.log_input(mlflow.data.from_pandas(df.head(2), name="holdout"), context="eval")
got = mlflow.get_run(run.info.run_id).inputs.dataset_inputs
found = mlflow.search_runs(output_format="list", experiment_names=["datasets-through-the-server"])
print(json.dumps({
    "run_id": run.info.run_id,
    "digest": dataset.digest,
    "inputs": sorted(
        [i.dataset.name, i.dataset.digest, i.dataset.source_type, {t.key: t.value for t in i.tags}]
        for i in got
    ),
    "schema": json.loads(next(i for i in got if i.dataset.name == "train").dataset.schema),
    "searched": sorted(i.dataset.name for i in found[0].inputs.dataset_inputs),
}))
"""


def test_log_input_with_mlflow_client(mlflow_python: Path, server: Server, tmp_path: Path) -> None:
    out = run_mlflow(mlflow_python, server, DATASETS, tmp_path)
    train = ["train", out["digest"], "code", {"mlflow.data.context": "training"}]
    assert out["inputs"][1] == train
    assert out["inputs"][0][0] == "holdout" and out["inputs"][0][3]["mlflow.data.context"] == "eval"
    assert "mlflow_colspec" in out["schema"]
    assert out["searched"] == ["holdout", "train"]

    # our own client over REST reads MLflow's datasets and logs its own through the server
    import numpy as np

    import jupyter_mltrack as ours

    client = ours.MlflowClient(server.url)
    read = client.get_run(out["run_id"]).inputs.dataset_inputs
    assert sorted(i.dataset.name for i in read) == ["holdout", "train"]
    run = client.create_run(client.get_run(out["run_id"]).info.experiment_id)
    frame = ours.data.from_numpy(np.arange(6).reshape(3, 2), name="arr")
    entity = frame._to_mlflow_entity()
    tag = ours.entities.InputTag("mlflow.data.context", "training")
    client.log_inputs(run.info.run_id, [ours.entities.DatasetInput(entity, [tag])])
    (logged,) = client.get_run(run.info.run_id).inputs.dataset_inputs
    assert logged.dataset == entity and logged.tags == [tag]
