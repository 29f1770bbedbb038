"""Dataset inputs (``log_input``): datasets from pandas and numpy, their digests, storage on
SQLite and PostgreSQL, ``run.inputs`` on get/search, and the upgrade of a revision-0003 store."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import numpy as np
import pandas as pd
import pytest
from test_logged_models import _store_at_revision

from jupyter_mltrack import data
from jupyter_mltrack.data import dataset as dataset_module
from jupyter_mltrack.entities import Dataset, DatasetInput, InputTag
from jupyter_mltrack.exceptions import InvalidParameterValue, MlflowException

CONTEXT = "mlflow.data.context"


def _frame() -> pd.DataFrame:
    return pd.DataFrame(
        {"x": [1.0, 2.5, -3.0], "n": [1, 2, 3], "s": ["a", "b", "c"], "y": [0, 1, 0]}
    )


def test_log_input_and_get_run(mlflow):
    train = data.from_pandas(_frame(), source="data/train.csv", targets="y", name="train")
    with mlflow.start_run() as run:
        mlflow.log_input(train, context="training", tags={"split": "a"})
    (item,) = mlflow.get_run(run.info.run_id).inputs.dataset_inputs
    assert isinstance(item, DatasetInput)
    assert (item.dataset.name, item.dataset.digest) == ("train", train.digest)
    assert item.dataset.source_type == "local"
    assert json.loads(item.dataset.source) == {"uri": "data/train.csv"}
    assert json.loads(item.dataset.profile) == {"num_rows": 3, "num_elements": 12}
    columns = json.loads(item.dataset.schema)["mlflow_colspec"]
    assert [(c["name"], c["type"]) for c in columns] == [
        ("x", "double"),
        ("n", "long"),
        ("s", "string"),
        ("y", "long"),
    ]
    assert sorted(item.tags, key=lambda t: t.key) == [
        InputTag(CONTEXT, "training"),
        InputTag("split", "a"),
    ]
    assert item.dataset == train._to_mlflow_entity()


def test_search_runs_returns_inputs_and_runs_without_inputs_have_none(client):
    exp = client.create_experiment("search")
    with_input = client.create_run(exp)
    without = client.create_run(exp)
    entity = data.from_pandas(_frame(), name="d")._to_mlflow_entity()
    client.log_inputs(with_input.info.run_id, [DatasetInput(entity)])
    found = {r.info.run_id: r.inputs.dataset_inputs for r in client.search_runs([exp])}
    assert [i.dataset.name for i in found[with_input.info.run_id]] == ["d"]
    assert found[without.info.run_id] == []
    assert client.get_run(without.info.run_id).inputs.dataset_inputs == []


def test_same_dataset_in_two_runs_is_stored_once_and_tags_merge(client):
    from sqlalchemy import func, select

    from jupyter_mltrack.store.schema import datasets, input_tags, run_inputs

    exp = client.create_experiment("shared")
    entity = data.from_pandas(_frame(), name="train")._to_mlflow_entity()
    runs = [client.create_run(exp).info.run_id for _ in range(2)]
    for run_id in runs:
        client.log_inputs(run_id, [DatasetInput(entity, [InputTag(CONTEXT, "training")])])
    # logging again to the same run: one input, the tags merged (a new value wins)
    again = [InputTag(CONTEXT, "eval"), InputTag("fold", "2")]
    client.log_inputs(runs[0], [DatasetInput(entity, again)])
    with client.store.engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(datasets)).scalar() == 1
        assert conn.execute(select(func.count()).select_from(run_inputs)).scalar() == 2
        assert conn.execute(select(func.count()).select_from(input_tags)).scalar() == 3
    (first,) = client.get_run(runs[0]).inputs.dataset_inputs
    assert {t.key: t.value for t in first.tags} == {CONTEXT: "eval", "fold": "2"}
    (second,) = client.get_run(runs[1]).inputs.dataset_inputs
    assert second.tags == [InputTag(CONTEXT, "training")]
    # the same name and digest in another experiment is another dataset
    other = client.create_run(client.create_experiment("other")).info.run_id
    client.log_inputs(other, [DatasetInput(entity)])
    with client.store.engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(datasets)).scalar() == 2


def test_gc_removes_the_inputs_of_removed_runs(client):
    from sqlalchemy import func, select

    from jupyter_mltrack.store.schema import input_tags, run_inputs

    exp = client.create_experiment("gc")
    run_id = client.create_run(exp).info.run_id
    entity = data.from_pandas(_frame())._to_mlflow_entity()
    client.log_inputs(run_id, [DatasetInput(entity, [InputTag(CONTEXT, "training")])])
    client.delete_run(run_id)
    client.store.gc()
    with client.store.engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(run_inputs)).scalar() == 0
        assert conn.execute(select(func.count()).select_from(input_tags)).scalar() == 0


_DIGESTS_IN_A_SUBPROCESS = """
import json
import numpy as np
import pandas as pd
from jupyter_mltrack import data

frame = pd.DataFrame({"x": [1.0, 2.5, -3.0], "n": [1, 2, 3], "s": ["a", "b", "c"], "y": [0, 1, 0]})
print(json.dumps({
    "pandas": data.from_pandas(frame).digest,
    "numpy": data.from_numpy(np.arange(12.0).reshape(4, 3), targets=np.arange(4)).digest,
    "objects": data.from_numpy(np.array(["a", None, 3], dtype=object)).digest,
}))
"""


def test_digest_is_stable_across_processes():
    done = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(_DIGESTS_IN_A_SUBPROCESS)],
        capture_output=True,
        text=True,
        timeout=120,
        env={"PYTHONHASHSEED": "12345", "PATH": ""},
    )
    assert done.returncode == 0, done.stderr
    there = json.loads(done.stdout)
    assert there["pandas"] == data.from_pandas(_frame()).digest
    features = np.arange(12.0).reshape(4, 3)
    assert there["numpy"] == data.from_numpy(features, targets=np.arange(4)).digest
    assert there["objects"] == data.from_numpy(np.array(["a", None, 3], dtype=object)).digest
    assert len(there["pandas"]) == dataset_module.DIGEST_LENGTH


_DIGESTS_OF_EDITS = """
import json
import numpy as np
import pandas as pd
from jupyter_mltrack import data

def digests(frame, array):
    return [data.from_pandas(frame).digest, data.from_numpy(array).digest]

n = 1_200_000  # over FULL_HASH_ROWS: the sampled digest
big = pd.DataFrame({"v": np.arange(n, dtype=np.float64), "s": np.arange(n) % 7})
big["s"] = big["s"].astype(str)
array = np.arange(n * 2, dtype=np.int32).reshape(n, 2)
small = pd.DataFrame({"x": [1.0, 2.5, -3.0], "s": ["a", "b", "c"]})
out = {"same": digests(big, array) + [data.from_pandas(small).digest]}
big.loc[n - 1, "v"] = -1.0  # the last row is always in the sample
array[0, 1] = 7  # so is the first
small.loc[1, "s"] = "B"
out["edited"] = digests(big, array) + [data.from_pandas(small).digest]
print(json.dumps(out))
"""


def test_digests_agree_between_two_processes_and_see_one_changed_value():
    """Two fresh interpreters (different hash seeds) build the same data: same digests; each
    then changes one value per dataset: every digest changes, identically in both."""
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", textwrap.dedent(_DIGESTS_OF_EDITS)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env={"PYTHONHASHSEED": seed, "PATH": ""},
        )
        for seed in ("1", "2")
    ]
    results = []
    for proc in procs:
        out, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err
        results.append(json.loads(out))
    first, second = results
    assert first == second
    assert all(a != b for a, b in zip(first["same"], first["edited"]))
    assert len(set(first["same"] + first["edited"])) == 6


def test_digest_changes_with_any_value_name_or_type():
    base = data.from_pandas(_frame()).digest
    assert data.from_pandas(_frame().copy()).digest == base  # content, not identity
    changed = _frame()
    changed.loc[2, "x"] = -3.0000001
    renamed = _frame().rename(columns={"s": "t"})
    retyped = _frame().astype({"n": "int32"})
    reindexed = _frame().set_axis([5, 6, 7])
    reordered = _frame()[["n", "x", "s", "y"]]
    digests = [data.from_pandas(f).digest for f in (changed, renamed, retyped, reindexed)]
    digests.append(data.from_pandas(reordered).digest)
    assert len({base, *digests}) == 6
    # a medium frame: one value of a million is seen
    big = pd.DataFrame({"v": np.arange(1_000_000, dtype=np.float64)})
    edited = big.copy()
    edited.loc[654_321, "v"] = -1.0
    assert data.from_pandas(big).digest != data.from_pandas(edited).digest
    features = np.arange(12.0).reshape(4, 3)
    other = features.copy()
    other[3, 2] = 0.5
    assert data.from_numpy(features).digest != data.from_numpy(other).digest
    assert data.from_numpy(features).digest != data.from_numpy(features.reshape(3, 4)).digest
    assert data.from_numpy(features).digest != data.from_numpy(features.astype("float32")).digest


def test_large_data_hashes_a_deterministic_sample(monkeypatch):
    monkeypatch.setattr(dataset_module, "FULL_HASH_ROWS", 100)
    monkeypatch.setattr(dataset_module, "SAMPLE_ROWS", 10)
    frame = pd.DataFrame({"v": np.arange(1000)})
    assert data.from_pandas(frame).digest == data.from_pandas(frame.copy()).digest
    last = frame.copy()
    last.loc[999, "v"] = -1  # the first and last rows are always in the sample
    assert data.from_pandas(last).digest != data.from_pandas(frame).digest
    assert data.from_pandas(frame.head(999)).digest != data.from_pandas(frame).digest
    array = np.arange(1000)
    assert data.from_numpy(array).digest != data.from_numpy(array[:999]).digest


def test_from_numpy(mlflow):
    features = {"a": np.zeros((4, 2)), "b": np.ones(4, dtype=np.int32)}
    ds = data.from_numpy(features, targets=np.arange(4), name="arrays", digest="given")
    assert (ds.name, ds.digest) == ("arrays", "given")
    assert ds.profile == {"num_rows": 4, "num_elements": 8 + 4 + 4}
    spec = json.loads(ds.schema["mlflow_tensorspec"]["features"])
    assert [(s["name"], s["tensor-spec"]["shape"]) for s in spec] == [("a", [-1, 2]), ("b", [-1])]
    unnamed = data.from_numpy(np.zeros((3, 2)))
    assert unnamed.name == "dataset" and unnamed.source.source_type == "code"
    with mlflow.start_run() as run:
        mlflow.log_input(ds, context="eval")
    (item,) = mlflow.get_run(run.info.run_id).inputs.dataset_inputs
    assert item.dataset.digest == "given" and item.tags == [InputTag(CONTEXT, "eval")]
    with pytest.raises(InvalidParameterValue, match="as many rows"):
        data.from_numpy(np.zeros((3, 2)), targets=np.zeros(4))
    with pytest.raises(InvalidParameterValue, match="from_pandas"):
        data.from_numpy(pd.DataFrame({"a": [1]}))


def test_sources():
    assert data.from_pandas(_frame(), source="https://x.org/d.csv").source.to_dict() == {
        "url": "https://x.org/d.csv"
    }
    s3 = data.from_pandas(_frame(), source="s3://bucket/d.parquet").source
    assert (s3.source_type, s3.to_dict()) == ("s3", {"uri": "s3://bucket/d.parquet"})
    own = data.HTTPDatasetSource("http://h/d")
    assert data.from_pandas(_frame(), source=own).source is own
    code = data.from_pandas(_frame()).source
    assert code.source_type == "code" and "mlflow.source.name" in code.to_dict()["tags"]
    assert set(data.from_pandas(_frame()).to_dict()) == {
        "name",
        "digest",
        "source",
        "source_type",
        "schema",
        "profile",
    }


def test_bad_inputs_are_clear_errors(mlflow, client):
    frame = _frame()
    with mlflow.start_run() as run:
        with pytest.raises(InvalidParameterValue, match="from_pandas"):
            mlflow.log_input(frame)
        with pytest.raises(InvalidParameterValue, match="context must be a string"):
            mlflow.log_input(data.from_pandas(frame), context=1)
        with pytest.raises(InvalidParameterValue, match="tags must be a dict"):
            mlflow.log_input(data.from_pandas(frame), tags=["a"])
    run_id = run.info.run_id
    with pytest.raises(InvalidParameterValue, match="DatasetInput"):
        client.log_inputs(run_id, [data.from_pandas(frame)])
    with pytest.raises(InvalidParameterValue, match="list of DatasetInput"):
        client.log_inputs(run_id, DatasetInput(data.from_pandas(frame)._to_mlflow_entity()))
    long_name = Dataset("n" * 501, "d", "code", "{}")
    with pytest.raises(InvalidParameterValue, match="limit is 500"):
        client.log_inputs(run_id, [DatasetInput(long_name)])
    with pytest.raises(InvalidParameterValue, match="non-empty string"):
        client.log_inputs(run_id, [DatasetInput(Dataset("n", "", "code", "{}"))])
    with pytest.raises(InvalidParameterValue, match="string value"):
        client.log_inputs(
            run_id, [DatasetInput(Dataset("n", "d", "code", "{}"), [InputTag("k", 1)])]
        )
    with pytest.raises(InvalidParameterValue, match="targets column"):
        data.from_pandas(frame, targets="missing")
    with pytest.raises(InvalidParameterValue, match="DataFrame"):
        data.from_pandas(np.zeros(3))
    with pytest.raises(InvalidParameterValue, match="name must be a non-empty string"):
        data.from_pandas(frame, name="")
    assert client.get_run(run_id).inputs.dataset_inputs == []  # nothing half-written
    client.delete_run(run_id)
    with pytest.raises(MlflowException):
        client.log_inputs(run_id, [DatasetInput(Dataset("n", "d", "code", "{}"))])


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_store_at_revision_0003_is_upgraded_in_place(backend, tmp_path, request):
    import sqlalchemy as sa

    import jupyter_mltrack as mlflow
    from jupyter_mltrack.store.schema import SCHEMA_REVISION, VERSION_TABLE

    if backend == "sqlite":
        url = f"sqlite:///{tmp_path / 'old.db'}"
    else:
        url = request.getfixturevalue("pg_url")
    _store_at_revision(url, "0003")
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        conn.execute(
            sa.text(
                "INSERT INTO runs (run_uuid, experiment_id, name, user_id, status, start_time,"
                " lifecycle_stage, artifact_uri) VALUES ('" + "a" * 32 + "', 7, 'old-run', 'u',"
                " 'FINISHED', 1, 'active', 'file:///x/7/a/artifacts')"
            )
        )
    engine.dispose()
    client = mlflow.MlflowClient(url)
    old = client.get_run("a" * 32)  # data kept
    assert old.info.run_name == "old-run" and old.inputs.dataset_inputs == []
    assert client.get_registered_model("kept").name == "kept"
    entity = data.from_pandas(_frame(), name="train")._to_mlflow_entity()
    client.log_inputs("a" * 32, [DatasetInput(entity, [InputTag(CONTEXT, "training")])])
    assert client.get_run("a" * 32).inputs.dataset_inputs[0].dataset == entity
    engine = sa.create_engine(url)
    with engine.connect() as conn:
        version = conn.execute(sa.text(f"SELECT version_num FROM {VERSION_TABLE}")).scalar()
    engine.dispose()
    assert version == SCHEMA_REVISION == "0004"
