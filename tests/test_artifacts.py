"""Artifacts: files, folders, text, dicts, figures and images, listed and downloaded back."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from jupyter_mltrack.exceptions import InvalidParameterValue


def _local(uri: str) -> Path:
    assert uri.startswith("file://"), uri
    return Path(uri.removeprefix("file://"))


def _listing(client, run_id, path=None):
    return [(f.path, f.is_dir, f.file_size) for f in client.list_artifacts(run_id, path)]


def test_log_artifact_file_and_artifact_path(mlflow, tmp_path):
    source = tmp_path / "weights.bin"
    source.write_bytes(b"\x00\x01\x02binary")
    with mlflow.start_run() as run:
        mlflow.log_artifact(str(source))
        mlflow.log_artifact(source, artifact_path="models/v1")
    client = mlflow.MlflowClient()
    run_id = run.info.run_id
    assert _listing(client, run_id) == [("models", True, None), ("weights.bin", False, 9)]
    assert _listing(client, run_id, "models") == [("models/v1", True, None)]
    assert _listing(client, run_id, "models/v1") == [("models/v1/weights.bin", False, 9)]
    root = _local(run.info.artifact_uri)
    assert (root / "models" / "v1" / "weights.bin").read_bytes() == b"\x00\x01\x02binary"
    # the source is copied, not moved
    assert source.exists()


def test_log_artifacts_folder(mlflow, tmp_path):
    folder = tmp_path / "report"
    (folder / "plots").mkdir(parents=True)
    (folder / "summary.md").write_text("# summary")
    (folder / "plots" / "a.txt").write_text("a")
    with mlflow.start_run() as run:
        mlflow.log_artifacts(str(folder))
        mlflow.log_artifacts(str(folder), artifact_path="copy")
    client = mlflow.MlflowClient()
    assert _listing(client, run.info.run_id) == [
        ("copy", True, None),
        ("plots", True, None),
        ("summary.md", False, 9),
    ]
    assert _listing(client, run.info.run_id, "copy/plots") == [("copy/plots/a.txt", False, 1)]


def test_client_log_artifact_of_a_folder_keeps_its_name(client, tmp_path):
    folder = tmp_path / "bundle"
    folder.mkdir()
    (folder / "x.txt").write_text("x")
    run_id = client.create_run("0").info.run_id
    client.log_artifact(run_id, str(folder))
    client.log_artifact(run_id, str(folder), "nested")
    assert _listing(client, run_id, "bundle") == [("bundle/x.txt", False, 1)]
    assert _listing(client, run_id, "nested/bundle") == [("nested/bundle/x.txt", False, 1)]


def test_log_text_and_overwrite(mlflow):
    with mlflow.start_run() as run:
        mlflow.log_text("first", "notes/readme.txt")
        mlflow.log_text("héllo wörld", "notes/readme.txt")
    root = _local(run.info.artifact_uri)
    assert (root / "notes" / "readme.txt").read_text(encoding="utf-8") == "héllo wörld"
    # no temporary files are left next to it
    assert [p.name for p in (root / "notes").iterdir()] == ["readme.txt"]


def test_log_dict_json_and_yaml(mlflow):
    import yaml

    config = {"model": "rf", "params": {"n_estimators": 100, "depth": [3, 5]}, "ok": True}
    with mlflow.start_run() as run:
        mlflow.log_dict(config, "config.json")
        mlflow.log_dict(config, "conf/config.yaml")
        mlflow.log_dict(config, "conf/config.yml")
    root = _local(run.info.artifact_uri)
    assert json.loads((root / "config.json").read_text()) == config
    yaml_text = (root / "conf" / "config.yaml").read_text()
    assert not yaml_text.lstrip().startswith("{")  # block-style YAML, not JSON
    assert yaml.safe_load(yaml_text) == config
    assert yaml.safe_load((root / "conf" / "config.yml").read_text()) == config


def test_log_figure_matplotlib(mlflow):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots()
    ax.plot([0, 1, 2], [2, 1, 3])
    try:
        with mlflow.start_run() as run:
            mlflow.log_figure(fig, "plots/curve.png")
            mlflow.log_figure(fig, "plots/curve.svg")
            mlflow.log_figure(fig, "plots/small.png", save_kwargs={"dpi": 10})
    finally:
        plt.close(fig)
    root = _local(run.info.artifact_uri)
    png = (root / "plots" / "curve.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    assert b"<svg" in (root / "plots" / "curve.svg").read_bytes()
    assert len((root / "plots" / "small.png").read_bytes()) < len(png)


def test_log_image_uint8_float_and_key(mlflow):
    import numpy as np
    from PIL import Image

    rgb = np.zeros((4, 6, 3), dtype=np.uint8)
    rgb[:, :, 0] = 255
    gray = np.linspace(0.0, 1.0, 12).reshape(3, 4)
    rgba = np.ones((2, 2, 4), dtype=np.float32)
    with mlflow.start_run() as run:
        mlflow.log_image(rgb, "images/red.png")
        mlflow.log_image(gray, "images/gray.png")
        mlflow.log_image(rgba, "images/rgba.png")
        mlflow.log_image(rgb, key="samples", step=3)
    root = _local(run.info.artifact_uri)
    red = np.asarray(Image.open(root / "images" / "red.png"))
    assert red.shape == (4, 6, 3)
    assert (red[:, :, 0] == 255).all() and (red[:, :, 1:] == 0).all()
    back = np.asarray(Image.open(root / "images" / "gray.png"))
    assert back.shape == (3, 4)
    assert back[0, 0] == 0 and back[-1, -1] == 255
    assert np.asarray(Image.open(root / "images" / "rgba.png")).shape == (2, 2, 4)
    keyed = list((root / "images" / "samples").iterdir())
    assert len(keyed) == 1 and keyed[0].name.startswith("step_3_")


def test_log_image_bad_shape(mlflow):
    import numpy as np

    with mlflow.start_run() as run:
        with pytest.raises(InvalidParameterValue) as err:
            mlflow.log_image(np.zeros((3, 3, 5), dtype=np.uint8), "bad.png")
        assert err.value.error_code == "INVALID_PARAMETER_VALUE"
        assert "(3, 3, 5)" in str(err.value)
        with pytest.raises(InvalidParameterValue):
            mlflow.log_image(np.zeros((2, 2, 2, 2)), "bad4d.png")
    assert mlflow.MlflowClient().list_artifacts(run.info.run_id) == []


def test_download_artifacts_file_and_folder(mlflow, tmp_path):
    with mlflow.start_run() as run:
        mlflow.log_text("a", "out/a.txt")
        mlflow.log_text("b", "out/sub/b.txt")
    client = mlflow.MlflowClient()
    dst = tmp_path / "dst"
    path = client.download_artifacts(run.info.run_id, "out/a.txt", str(dst))
    assert Path(path) == dst / "a.txt"
    assert Path(path).read_text() == "a"

    folder = Path(client.download_artifacts(run.info.run_id, "out", str(dst)))
    assert folder == dst / "out"
    assert (folder / "a.txt").read_text() == "a"
    assert (folder / "sub" / "b.txt").read_text() == "b"

    everything = Path(client.download_artifacts(run.info.run_id, ""))
    assert (everything / "out" / "sub" / "b.txt").read_text() == "b"
    # the run's own files are untouched by downloads
    assert (_local(run.info.artifact_uri) / "out" / "a.txt").read_text() == "a"


def test_get_artifact_uri(mlflow):
    with mlflow.start_run() as run:
        uri = mlflow.get_artifact_uri()
        assert uri == run.info.artifact_uri
        assert uri.startswith("file://")
        assert uri.endswith(f"/{run.info.run_id}/artifacts")
        assert mlflow.get_artifact_uri("plots/a.png") == f"{uri}/plots/a.png"
        mlflow.log_text("x", "plots/a.png")
        assert _local(mlflow.get_artifact_uri("plots/a.png")).read_text() == "x"


def test_artifacts_of_runs_are_separate(mlflow):
    with mlflow.start_run() as one:
        mlflow.log_text("1", "same.txt")
    with mlflow.start_run() as two:
        mlflow.log_text("2", "same.txt")
    assert (_local(one.info.artifact_uri) / "same.txt").read_text() == "1"
    assert (_local(two.info.artifact_uri) / "same.txt").read_text() == "2"
    assert one.info.artifact_uri != two.info.artifact_uri


def test_list_artifacts_of_missing_path_is_empty(client):
    run_id = client.create_run("0").info.run_id
    assert client.list_artifacts(run_id) == []
    assert client.list_artifacts(run_id, "nothing/here") == []


def test_read_artifact_whole_and_capped_and_errors(mlflow):
    from jupyter_mltrack.exceptions import ResourceDoesNotExist

    with mlflow.start_run() as run:
        mlflow.log_text("hello artifacts", "notes/readme.txt")
    client = mlflow.MlflowClient()
    run_id = run.info.run_id
    assert client.read_artifact(run_id, "notes/readme.txt") == b"hello artifacts"
    assert client.read_artifact(run_id, "notes/readme.txt", max_bytes=5) == b"hello"
    with pytest.raises(ResourceDoesNotExist, match="is a folder"):
        client.read_artifact(run_id, "notes")
    with pytest.raises(ResourceDoesNotExist, match="not found"):
        client.read_artifact(run_id, "notes/missing.txt")
    with pytest.raises(InvalidParameterValue, match="max_bytes"):
        client.read_artifact(run_id, "notes/readme.txt", max_bytes=-1)
    with pytest.raises(InvalidParameterValue):
        client.read_artifact(run_id, "../../etc/passwd")


def test_listing_puts_folders_first(mlflow):
    with mlflow.start_run() as run:
        mlflow.log_text("a", "a.txt")
        mlflow.log_text("z", "z_dir/inner.txt")
    names = [(f.path, f.is_dir) for f in mlflow.MlflowClient().list_artifacts(run.info.run_id)]
    assert names == [("z_dir", True), ("a.txt", False)]
