"""``mltrack export`` / ``mltrack import``: our store -> a real ``mlflow server`` -> a fresh store,
nothing lost; interrupted transfers resumed without duplicates; our own server as the other
end; bad inputs refused with nothing written."""

from __future__ import annotations

import math
import uuid
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from jupyter_mltrack.cli import main
from jupyter_mltrack.entities import DatasetInput, InputTag, Metric, Param, Run, RunTag
from jupyter_mltrack.store import forget_stores
from jupyter_mltrack.tracking.client import Client
from jupyter_mltrack.transfer import TransferError
from jupyter_mltrack.transfer.copy import Reporter, Transfer, list_runs, list_versions
from jupyter_mltrack.transfer.state import TransferState
from jupyter_mltrack.transfer.verify import verify
from tests import servers
from tests.test_rest_client import _free_port

T0 = 1_700_000_000_000
mlflow_server = servers.mlflow_server  # fixtures shared with other modules
mltrack_server = servers.mltrack_server


@pytest.fixture(autouse=True)
def _cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Default state files go under the test's folder, never the user's ~/.cache."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    yield
    forget_stores()


def _cli(*args: str) -> Result:
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


def _dataset_inputs(e: int) -> list[DatasetInput]:
    """A DataFrame with a file source and a numpy array from code, as ``log_input`` makes them."""
    import numpy as np
    import pandas as pd

    from jupyter_mltrack import data

    frame = pd.DataFrame({"x": [1.0, 2.0 + e, 3.0], "label": ["a", "b", "c"]})
    train = data.from_pandas(frame, source="data/train.csv", targets="label", name="train")
    test = data.from_numpy(np.arange(6.0 + e).reshape(-1, 1), name="X_test")
    return [
        DatasetInput(
            train._to_mlflow_entity(),
            [InputTag("mlflow.data.context", "training"), InputTag("fold", str(e))],
        ),
        DatasetInput(test._to_mlflow_entity(), [InputTag("mlflow.data.context", "eval")]),
    ]


def _fill(uri: str, tag: str) -> dict[str, Any]:
    """Two experiments (nested runs, long histories, NaN, dataset inputs, artifacts) and a
    registered model with three versions in stages and two aliases. Names end in ``tag``
    (servers are shared)."""
    client = Client(uri)
    names = [f"vision-{tag}", f"nlp-{tag}"]
    model = f"clf-{tag}"
    runs: list[str] = []
    for e, name in enumerate(names):
        exp = client.create_experiment(name, tags={"team": "ml", "mlflow.note.content": "notes"})
        parent = client.create_run(exp, start_time=T0 + e, run_name=f"parent-{e}")
        pid = parent.info.run_id
        client.log_batch(
            pid,
            params=[Param("lr", "0.01"), Param("depth", str(3 + e))],
            tags=[RunTag("stage", "search"), RunTag("mlflow.source.name", "train.py")],
            synchronous=True,
        )
        loss = [Metric("loss", 1.0 / (s + 1), T0 + 10 * s, s) for s in range(2600)]
        loss.append(Metric("loss", 0.5, T0 + 5, 3))  # two points on one step
        client.log_batch(pid, metrics=loss, synchronous=True)
        client.log_metric(pid, "odd", float("nan"), timestamp=T0, step=0, synchronous=True)
        client.log_metric(pid, "odd", -1.5, timestamp=T0 + 1, step=1, synchronous=True)
        client.log_inputs(pid, _dataset_inputs(e))
        client.log_text(pid, f"hello {e}", "notes/readme.txt")
        client.log_bytes(pid, bytes(range(256)) * 40, "bin/blob.dat")
        client.log_text(pid, "flavor: none\n", "model/MLmodel")
        client.log_text(pid, "", "model/empty.txt")
        client.set_terminated(pid, "FINISHED", end_time=T0 + 60_000)
        runs.append(pid)
        for c in range(2):
            child = client.create_run(
                exp,
                start_time=T0 + 100 + c,
                run_name=f"child-{e}-{c}",
                tags={"mlflow.parentRunId": pid},
            )
            cid = child.info.run_id
            client.log_batch(
                cid,
                metrics=[Metric("acc", 0.1 * k, T0 + k, k) for k in range(50)],
                params=[Param("fold", str(c))],
                synchronous=True,
            )
            if c == 0:
                client.log_inputs(cid, _dataset_inputs(e)[:1])  # the parent's data again
            client.set_terminated(cid, "FAILED" if c else "FINISHED", end_time=T0 + 200 + c)
            runs.append(cid)
    client.create_run(client.get_experiment_by_name(names[1]).experiment_id, T0 + 999, None, "live")
    client.create_registered_model(model, tags={"owner": "me"}, description="a classifier")
    for i, run_id in enumerate(runs[:3]):
        artifact_uri = client.get_run(run_id).info.artifact_uri
        source = f"runs:/{run_id}/model" if i == 1 else f"{artifact_uri}/model"
        client.create_model_version(
            model, source, run_id=run_id, tags={"i": str(i)}, description=f"v{i}"
        )
    client.transition_model_version_stage(model, 2, "Production")
    client.transition_model_version_stage(model, 3, "Staging")
    client.set_registered_model_alias(model, "champion", 2)
    client.set_registered_model_alias(model, "challenger", 3)
    return {"experiments": names, "model": model}


def _runs_by_name(client: Client, experiment: str) -> dict[str, Run]:
    exp = client.get_experiment_by_name(experiment)
    assert exp is not None, experiment
    found = {r.info.run_name: r for r in list_runs(client, exp.experiment_id)}
    assert len(found) == len(list_runs(client, exp.experiment_id)), "duplicated run names"
    return found


def _history(client: Client, run: Run, key: str) -> list[tuple[int, int, float]]:
    points = client.get_metric_history(run.info.run_id, key)
    return sorted((m.step, m.timestamp, m.value) for m in points)


def _inputs(run: Run) -> list[tuple[Any, ...]]:
    """Everything stored of a run's dataset inputs, in a comparable order."""
    return sorted(
        (
            i.dataset.name,
            i.dataset.digest,
            i.dataset.source_type,
            i.dataset.source,
            i.dataset.schema,
            i.dataset.profile,
            tuple(sorted((t.key, t.value) for t in i.tags)),
        )
        for i in run.inputs.dataset_inputs
    )


def _same_values(a: list[tuple[int, int, float]], b: list[tuple[int, int, float]]) -> bool:
    return len(a) == len(b) and all(
        x[:2] == y[:2] and (x[2] == y[2] or (math.isnan(x[2]) and math.isnan(y[2])))
        for x, y in zip(a, b)
    )


def _artifacts(client: Client, run: Run) -> dict[str, bytes]:
    out: dict[str, bytes] = {}
    stack: list[str | None] = [None]
    while stack:
        for info in client.list_artifacts(run.info.run_id, stack.pop()):
            if info.is_dir:
                stack.append(info.path)
            else:
                out[info.path] = client.read_artifact(run.info.run_id, info.path)
    return out


def _assert_same(a: Client, b: Client, data: dict[str, Any]) -> None:
    """Everything the transfer promises to keep is equal in ``a`` and ``b``."""
    for name in data["experiments"]:
        exp_a, exp_b = a.get_experiment_by_name(name), b.get_experiment_by_name(name)
        assert exp_b is not None
        assert {k: v for k, v in exp_a.tags.items() if not k.startswith("mlflow.")} == {
            k: v for k, v in exp_b.tags.items() if not k.startswith("mlflow.")
        }
        assert exp_b.tags.get("mlflow.note.content") == "notes"
        runs_a, runs_b = _runs_by_name(a, name), _runs_by_name(b, name)
        assert sorted(runs_a) == sorted(runs_b)
        for run_name, ra in runs_a.items():
            rb = runs_b[run_name]
            info_a, info_b = ra.info, rb.info
            assert (info_a.status, info_a.start_time, info_a.end_time, info_a.user_id) == (
                info_b.status,
                info_b.start_time,
                info_b.end_time,
                info_b.user_id,
            ), run_name
            assert ra.data.params == rb.data.params
            tags_a = dict(ra.data.tags)
            tags_b = dict(rb.data.tags)
            parent_a = tags_a.pop("mlflow.parentRunId", None)
            parent_b = tags_b.pop("mlflow.parentRunId", None)
            assert tags_a == tags_b, run_name
            if parent_a:  # remapped to the copied parent
                assert b.get_run(parent_b).info.run_name == a.get_run(parent_a).info.run_name
            assert _inputs(ra) == _inputs(rb), run_name
            first_child = run_name.startswith("child") and run_name.endswith("-0")
            expected = 2 if run_name.startswith("parent") else int(first_child)
            assert len(_inputs(ra)) == expected, run_name  # not a comparison of nothing
            assert _inputs(rb) == _inputs(b.get_run(rb.info.run_id)), run_name  # search = get
            assert set(ra.data.metrics) == set(rb.data.metrics)
            for key in ra.data.metrics:
                assert _same_values(_history(a, ra, key), _history(b, rb, key)), (run_name, key)
            assert _artifacts(a, ra) == _artifacts(b, rb), run_name
    model = data["model"]
    ma, mb = a.get_registered_model(model), b.get_registered_model(model)
    assert (mb.description, mb.tags, mb.aliases) == (ma.description, ma.tags, ma.aliases)
    va, vb = list_versions(a, model), list_versions(b, model)
    assert [(v.version, v.current_stage, v.description, v.tags) for v in va] == [
        (v.version, v.current_stage, v.description, v.tags) for v in vb
    ]
    for x, y in zip(va, vb):  # each version points at the copy of its run
        assert a.get_run(x.run_id).info.run_name == b.get_run(y.run_id).info.run_name
        assert y.source.endswith("/model")


def _export_import(src: str, server: str, back: str, names: list[str], tmp: Path) -> None:
    filters = [arg for n in names for arg in ("-e", n)]
    out = _cli("export", "--from", src, "--to", server, *filters)
    assert out.exit_code == 0, out.output
    assert "verification OK" in out.output
    assert "Copied 7 runs (0 already done, 0 redone), 5,406 metric points" in out.output
    assert "6 dataset inputs" in out.output
    out = _cli(
        "import", "--from", server, "--to", back, *filters, "--state-file", str(tmp / "i.db")
    )
    assert out.exit_code == 0, out.output
    assert "verification OK" in out.output


# -- (1) our store -> a real mlflow server -> a fresh store -----------------------------------
def test_round_trip_through_real_mlflow_server(mlflow_server: str, tmp_path: Path) -> None:
    src, back = str(tmp_path / "src"), str(tmp_path / "back")
    data = _fill(src, uuid.uuid4().hex[:8])
    _export_import(src, mlflow_server, back, data["experiments"], tmp_path)
    _assert_same(Client(src), Client(mlflow_server), data)
    _assert_same(Client(src), Client(back), data)
    # a second export finds everything done and copies nothing again
    filters = [arg for n in data["experiments"] for arg in ("-e", n)]
    again = _cli("export", "--from", src, "--to", mlflow_server, *filters)
    assert again.exit_code == 0, again.output
    assert "Copied 0 runs (7 already done, 0 redone)" in again.output


# -- (2) an interrupted transfer, resumed -----------------------------------------------------
class _Interrupt(Reporter):
    """Raises at the ``after``-th time a run reaches ``step``."""

    def __init__(self, step: str, after: int) -> None:
        self.step, self.after, self.seen = step, after, 0

    def run_step(self, run: Run, step: str) -> None:
        if step == self.step:
            self.seen += 1
            if self.seen == self.after:
                raise KeyboardInterrupt


def _active_runs(client: Client, names: list[str]) -> int:
    total = 0
    for name in names:
        exp = client.get_experiment_by_name(name)
        total += len(list_runs(client, exp.experiment_id)) if exp else 0
    return total


def test_resume_after_interruptions(mlflow_server: str, tmp_path: Path) -> None:
    src_uri = str(tmp_path / "src")
    data = _fill(src_uri, uuid.uuid4().hex[:8])
    names = data["experiments"]
    src, dst = Client(src_uri), Client(mlflow_server)
    journal = tmp_path / "journal.db"
    state = TransferState(journal, src_uri, mlflow_server)

    # 1. stopped in the middle of the 3rd run (params and metrics in, artifacts not)
    transfer = Transfer(src, dst, state, names, _Interrupt("data", 3))
    plan = transfer.plan()
    with pytest.raises(KeyboardInterrupt):
        transfer.run(plan)
    assert _active_runs(dst, names) == 3
    assert len(state.done("run")) == 2

    # 2. stopped right after creating the 5th run, before the journal learnt its id
    transfer = Transfer(src, dst, state, names, _Interrupt("created", 3))
    with pytest.raises(KeyboardInterrupt):
        transfer.run(plan)
    pending = [s for s, d in state.mapping("run").items() if s not in state.done("run")]
    assert len(pending) == 1
    state.run_started(pending[0], None)  # as if the process died before recording it

    # 3. stopped while copying the model: after its versions, before its aliases
    original = dst.set_registered_model_alias
    calls = []

    def failing(*args: Any) -> None:
        calls.append(args)
        raise KeyboardInterrupt

    dst.set_registered_model_alias = failing  # type: ignore[method-assign]
    with pytest.raises(KeyboardInterrupt):
        Transfer(src, dst, state, names).run(plan)
    assert calls
    dst.set_registered_model_alias = original  # type: ignore[method-assign]
    assert len(list_versions(dst, data["model"])) == 3
    state.close()

    # the same command again finishes the job: counts equal, nothing doubled
    filters = [arg for n in names for arg in ("-e", n)]
    out = _cli(
        "export", "--from", src_uri, "--to", mlflow_server, *filters, "--state-file", str(journal)
    )
    assert out.exit_code == 0, out.output
    assert "verification OK" in out.output
    assert _active_runs(dst, names) == 7
    assert len(list_versions(dst, data["model"])) == 3
    _assert_same(src, dst, data)


def test_killed_export_subprocess_resumes(mlflow_server: str, tmp_path: Path) -> None:
    """A real ``mltrack export`` process killed mid-way, then run again."""
    import os
    import signal
    import subprocess
    import sys
    import time

    src_uri = str(tmp_path / "src")
    data = _fill(src_uri, uuid.uuid4().hex[:8])
    names = data["experiments"]
    journal = tmp_path / "journal.db"
    forget_stores()  # the child process writes to the same folder store
    cmd = [sys.executable, "-m", "jupyter_mltrack.cli", "export", "--from", src_uri]
    cmd += ["--to", mlflow_server, "--state-file", str(journal)]
    cmd += [arg for n in names for arg in ("-e", n)]
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLTRACK_", "MLFLOW_"))}
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and proc.poll() is None:
        if journal.exists():
            with TransferState(journal, src_uri, mlflow_server) as state:
                if len(state.done("run")) >= 2:
                    break
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait(10)
    dst = Client(mlflow_server)
    assert _active_runs(dst, names) < 7  # it really was stopped mid-way
    again = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=120)
    assert again.returncode == 0, again.stdout + again.stderr
    assert "verification OK" in again.stdout
    assert _active_runs(dst, names) == 7
    _assert_same(Client(src_uri), dst, data)


# -- (3) our store -> our own mltrack server ---------------------------------------------------
def test_export_to_our_server_and_back(mltrack_server: Any, tmp_path: Path) -> None:
    src, back = str(tmp_path / "src"), str(tmp_path / "back")
    data = _fill(src, uuid.uuid4().hex[:8])
    _export_import(src, mltrack_server.url, back, data["experiments"], tmp_path)
    _assert_same(Client(src), Client(mltrack_server.url), data)
    _assert_same(Client(src), Client(back), data)


def test_verify_reports_a_lost_point(tmp_path: Path) -> None:
    """Verification is not a formality: a copied run deleted in the destination is found."""
    src_uri, dst_uri = str(tmp_path / "src"), str(tmp_path / "dst")
    data = _fill(src_uri, "v")
    src, dst = Client(src_uri), Client(dst_uri)
    with TransferState(tmp_path / "j.db", src_uri, dst_uri) as state:
        transfer = Transfer(src, dst, state, data["experiments"])
        plan = transfer.plan()
        transfer.run(plan)
        assert verify(src, dst, plan, state).ok
        child = _runs_by_name(dst, data["experiments"][0])["child-0-0"]
        dst.delete_run(child.info.run_id)
        report = verify(src, dst, plan, state)
    assert not report.ok
    rows = {name: (a, b) for name, a, b in report.rows}
    assert rows["runs"] == (7, 6)
    assert any("deleted" in p for p in report.problems)


# -- (4) bad input ----------------------------------------------------------------------------
def _nothing_written(tmp_path: Path, *paths: Path) -> None:
    assert not (tmp_path / "cache").exists()
    for path in paths:
        assert not path.exists(), path


def test_bad_inputs(tmp_path: Path) -> None:
    src = str(tmp_path / "src")
    _fill(src, "b")
    forget_stores()
    dst = tmp_path / "dst"
    dead = f"http://127.0.0.1:{_free_port()}"
    cases = [
        (["export", "--from", src, "--to", "ftp://host/x"], "Unknown destination URI scheme"),
        (["import", "--from", "gopher://x", "--to", str(dst)], "Unknown source URI scheme"),
        (["import", "--from", dead, "--to", str(dst)], "Cannot open the source"),
        (["export", "--from", src, "--to", dead], "Cannot open the destination"),
        (["export", "--from", src, "--to", src + "/"], "the same store"),
        (["import", "--from", f"file://{src}", "--to", src], "the same store"),
        (["export", "--from", src, "--to", str(dst), "-e", "nope"], "No active experiment"),
        (["import", "--from", str(tmp_path / "absent"), "--to", str(dst)], "No jupyter_mltrack"),
    ]
    for args, message in cases:
        out = _cli(*args)
        assert out.exit_code != 0, (args, out.output)
        assert message in out.output, (args, out.output)
        assert "Traceback" not in out.output
        _nothing_written(tmp_path, dst, tmp_path / "absent")


def test_dry_run_writes_nothing(tmp_path: Path) -> None:
    src = str(tmp_path / "src")
    data = _fill(src, "d")
    dst = tmp_path / "dst"
    out = _cli("export", "--from", src, "--to", str(dst), "--dry-run")
    assert out.exit_code == 0, out.output
    assert "7 of 7 runs to copy" in out.output
    assert "1 registered models" in out.output
    _nothing_written(tmp_path, dst)
    filtered = _cli(
        "export", "--from", src, "--to", str(dst), "-e", data["experiments"][1], "--dry-run"
    )
    assert "4 of 4 runs to copy" in filtered.output


def test_state_file_of_another_transfer_is_refused(tmp_path: Path) -> None:
    src = str(tmp_path / "src")
    _fill(src, "s")
    journal = tmp_path / "j.db"
    TransferState(journal, "elsewhere", "somewhere").close()
    out = _cli("export", "--from", src, "--to", str(tmp_path / "dst"), "--state-file", str(journal))
    assert out.exit_code != 0
    assert "belongs to the transfer" in out.output
    with pytest.raises(TransferError):
        TransferState(journal, src, "x")
