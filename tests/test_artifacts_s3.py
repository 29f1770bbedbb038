"""Artifacts on a real S3-compatible server (OpenStack Swift + s3api, started once per session):
our Client with an experiment whose artifact location is ``s3://bucket/prefix``."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import numpy as np
import pytest

from jupyter_mltrack.exceptions import InvalidParameterValue, ResourceDoesNotExist
from tests.s3_fixtures import s3_bucket, s3_env, s3_server  # noqa: F401 - fixtures


@pytest.fixture
def s3_client(s3_bucket, tmp_path):  # noqa: F811
    from jupyter_mltrack import MlflowClient

    client = MlflowClient(str(tmp_path / "store"))
    exp = client.create_experiment("on-s3", artifact_location=f"s3://{s3_bucket}/team/exp")
    return client, exp, s3_bucket


def test_log_list_download_read(s3_client, tmp_path):
    client, exp, bucket = s3_client
    run = client.create_run(exp)
    run_id = run.info.run_id
    assert run.info.artifact_uri == f"s3://{bucket}/team/exp/{run_id}/artifacts"
    notes = tmp_path / "notes.txt"
    notes.write_text("hello s3")
    client.log_artifact(run_id, str(notes))
    client.log_artifact(run_id, str(notes), "docs")
    client.log_text(run_id, "text", "t/a.txt")
    client.log_dict(run_id, {"a": 1}, "t/d.json")
    folder = tmp_path / "folder"
    (folder / "deep").mkdir(parents=True)
    (folder / "deep" / "x.csv").write_text("1,2")
    client.log_artifacts(run_id, str(folder), "tree")
    assert [(f.path, f.is_dir) for f in client.list_artifacts(run_id)] == [
        ("docs", True),
        ("t", True),
        ("tree", True),
        ("notes.txt", False),
    ]
    assert [f.path for f in client.list_artifacts(run_id, "tree/deep")] == ["tree/deep/x.csv"]
    assert client.read_artifact(run_id, "notes.txt") == b"hello s3"
    assert client.read_artifact(run_id, "notes.txt", max_bytes=5) == b"hello"
    assert client.read_artifact(run_id, "t/d.json").startswith(b"{")
    local = client.download_artifacts(run_id, "tree", str(tmp_path / "dl"))
    assert Path(local, "deep", "x.csv").read_text() == "1,2"
    assert Path(client.download_artifacts(run_id, "docs/notes.txt")).read_text() == "hello s3"
    with pytest.raises(ResourceDoesNotExist):
        client.read_artifact(run_id, "nope.txt")
    with pytest.raises(ResourceDoesNotExist):
        client.download_artifacts(run_id, "nope")
    with pytest.raises(InvalidParameterValue):
        client.log_text(run_id, "x", "../escape.txt")


def test_12_mib_file_goes_up_in_parts(s3_client, tmp_path):
    from jupyter_mltrack.store.artifacts_s3 import _client

    client, exp, bucket = s3_client
    run_id = client.create_run(exp).info.run_id
    big = tmp_path / "big.bin"
    big.write_bytes(os.urandom(12 * 1024 * 1024))
    client.log_artifact(run_id, str(big), "data")
    head = _client().head_object(Bucket=bucket, Key=f"team/exp/{run_id}/artifacts/data/big.bin")
    assert head["ContentLength"] == 12 * 1024 * 1024
    assert "-" in head["ETag"]  # a multipart upload's ETag
    back = client.download_artifacts(run_id, "data/big.bin", str(tmp_path / "back"))
    assert (
        hashlib.sha256(Path(back).read_bytes()).digest()
        == hashlib.sha256(big.read_bytes()).digest()
    )


def test_figures_and_images(s3_client):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    client, exp, _ = s3_client
    run_id = client.create_run(exp).info.run_id
    fig, ax = plt.subplots()
    ax.plot([1, 2, 3])
    client.log_figure(run_id, fig, "plots/line.png")
    plt.close(fig)
    client.log_image(run_id, np.zeros((4, 4, 3), dtype=np.uint8), "img/black.png")
    assert client.read_artifact(run_id, "plots/line.png", 8) == b"\x89PNG\r\n\x1a\n"
    assert [f.path for f in client.list_artifacts(run_id, "img")] == ["img/black.png"]


def test_log_model_and_load_model_from_s3(s3_client, tmp_path):
    from sklearn.linear_model import LogisticRegression

    import jupyter_mltrack as mlflow

    client, exp, bucket = s3_client
    mlflow.set_tracking_uri(client.tracking_uri)
    mlflow.set_experiment(experiment_id=exp)
    X = np.array([[0.0, 1.0], [1.0, 0.0], [0.0, 0.9], [0.9, 0.1]])
    y = np.array([0, 1, 0, 1])
    model = LogisticRegression().fit(X, y)
    with mlflow.start_run() as run:
        info = mlflow.sklearn.log_model(model, name="model", registered_model_name="on-s3")
    assert info.model_uri == f"runs:/{run.info.run_id}/model"
    names = [f.path for f in client.list_artifacts(run.info.run_id, "model")]
    assert "model/MLmodel" in names
    loaded = mlflow.sklearn.load_model(f"runs:/{run.info.run_id}/model")
    assert list(loaded.predict(X)) == list(y)
    version = client.get_model_version("on-s3", "1")
    assert version.source == f"s3://{bucket}/team/exp/{run.info.run_id}/artifacts/model"
    pyfunc = mlflow.pyfunc.load_model("models:/on-s3/1")
    assert list(pyfunc.predict(X)) == list(y)
    # Logging again at the same path replaces the model on S3 too.
    with mlflow.start_run(run_id=run.info.run_id), pytest.warns(UserWarning, match="replaced"):
        mlflow.sklearn.log_model(model, name="model")


def test_server_with_s3_destination(s3_bucket, s3_env, tmp_path):  # noqa: F811
    """The tracking server's artifact proxy in front of S3: uploads land in the bucket."""
    import requests

    from jupyter_mltrack.store.artifacts_s3 import _client
    from tests.test_artifact_proxy import API, start_server

    env = {
        k: os.environ[k]
        for k in ("MLFLOW_S3_ENDPOINT_URL", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY")
        if k in os.environ
    }
    proc, port = start_server(
        f"sqlite:///{tmp_path / 's.db'}", f"s3://{s3_bucket}/root", tmp_path / "log", env
    )
    try:
        url = f"http://127.0.0.1:{port}{API}"
        assert requests.put(f"{url}/1/r/artifacts/a.txt", data=b"via proxy").ok
        body = _client().get_object(Bucket=s3_bucket, Key="root/1/r/artifacts/a.txt")["Body"]
        assert body.read() == b"via proxy"
        assert requests.get(f"{url}/1/r/artifacts/a.txt").content == b"via proxy"
        assert requests.get(url, params={"path": "1/r/artifacts"}).json() == {
            "files": [{"path": "a.txt", "is_dir": False, "file_size": 9}]
        }
        missing = requests.get(f"{url}/1/r/artifacts/none")
        assert missing.status_code == 404
        assert requests.delete(f"{url}/1/r").ok
        assert requests.get(url, params={"path": "1/r/artifacts"}).json() == {}
    finally:
        proc.terminate()
        proc.wait(timeout=20)
