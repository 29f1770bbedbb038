"""The batched metric writer: buffered writes, read-your-writes, flush on end_run/exit."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from jupyter_mltrack.entities import Param
from jupyter_mltrack.exceptions import InvalidParameterValue
from jupyter_mltrack.tracking.writer import writer_for

LONG_WINDOW_S = 600.0  # the background thread stays asleep: only flushes write


def _history_rows(store_uri: str, run_id: str) -> int:
    """Metric history rows of a run, counted through a connection of our own."""
    if store_uri.startswith("postgresql"):
        import sqlalchemy as sa

        engine = sa.create_engine(store_uri)
        try:
            with engine.connect() as conn:
                return conn.execute(
                    sa.text(
                        "SELECT count(*) FROM metrics m JOIN runs r ON r.id = m.run_id "
                        "WHERE r.run_uuid = :rid"
                    ),
                    {"rid": run_id},
                ).scalar()
        finally:
            engine.dispose()
    raw = sqlite3.connect(Path(store_uri) / "mltrack.db")
    try:
        return raw.execute(
            "SELECT count(*) FROM metrics m JOIN runs r ON r.id = m.run_id WHERE r.run_uuid = ?",
            (run_id,),
        ).fetchone()[0]
    finally:
        raw.close()


@pytest.fixture
def slow_writer(client):
    """The client's real writer, with a window long enough that only flushes write."""
    writer = writer_for(client.store)
    writer.window_s = LONG_WINDOW_S
    return writer


def test_metrics_are_buffered_but_reads_see_them(client, store_uri, slow_writer):
    run_id = client.create_run("0").info.run_id
    for step in range(10):
        client.log_metric(run_id, "loss", 1.0 / (step + 1), step=step)
    assert slow_writer.pending() == 10
    assert _history_rows(store_uri, run_id) == 0  # not written yet: buffered

    # every read through the client sees the points at once
    assert client.get_run(run_id).data.metrics == {"loss": 0.1}
    assert _history_rows(store_uri, run_id) == 10
    client.log_metric(run_id, "loss", 0.05, step=10)
    assert len(client.get_metric_history(run_id, "loss")) == 11
    client.log_metric(run_id, "acc", 0.9)
    found = client.search_runs("0", "metrics.acc > 0.5")
    assert [r.info.run_id for r in found] == [run_id]
    client.log_metric(run_id, "f1", 0.7)
    import jupyter_mltrack as mlflow

    mlflow.set_tracking_uri(client.tracking_uri)
    frame = mlflow.search_runs(experiment_ids=["0"])
    assert frame.loc[0, "metrics.f1"] == 0.7
    assert slow_writer.pending() == 0


def test_explicit_flush(client, store_uri, slow_writer):
    run_id = client.create_run("0").info.run_id
    client.log_metric(run_id, "m", 1.0)
    client.log_metric(run_id, "m", 2.0, step=1)
    assert _history_rows(store_uri, run_id) == 0
    client.flush()
    assert _history_rows(store_uri, run_id) == 2

    import jupyter_mltrack as mlflow

    client.log_metric(run_id, "m", 3.0, step=2)
    mlflow.flush()  # the module-level flush covers every store's writer
    assert _history_rows(store_uri, run_id) == 3


def test_synchronous_writes_immediately(client, store_uri, slow_writer):
    run_id = client.create_run("0").info.run_id
    client.log_metric(run_id, "buffered", 1.0)
    client.log_metric(run_id, "now", 2.0, synchronous=True)
    # the synchronous point is on disk, and so is everything logged before it (order kept)
    assert _history_rows(store_uri, run_id) == 2
    assert slow_writer.pending() == 0


def test_end_run_flushes(mlflow, store_uri):
    client = mlflow.MlflowClient()
    writer_for(client.store).window_s = LONG_WINDOW_S
    with mlflow.start_run() as run:
        for step in range(50):
            mlflow.log_metric("loss", float(step), step=step)
        assert _history_rows(store_uri, run.info.run_id) == 0
    assert _history_rows(store_uri, run.info.run_id) == 50


def test_background_thread_writes_without_reads(client, store_uri):
    import time

    writer = writer_for(client.store)
    writer.window_s = 0.05
    run_id = client.create_run("0").info.run_id
    for step in range(20):
        client.log_metric(run_id, "m", float(step), step=step)
    deadline = time.monotonic() + 10
    while _history_rows(store_uri, run_id) < 20 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert _history_rows(store_uri, run_id) == 20


def test_points_logged_before_exit_survive_without_end_run(tmp_path):
    store = tmp_path / "store"
    script = textwrap.dedent(
        f"""
        import jupyter_mltrack as mlflow
        from jupyter_mltrack.tracking.writer import writer_for

        mlflow.set_tracking_uri({str(store)!r})
        run = mlflow.start_run()
        writer_for(mlflow.MlflowClient().store).window_s = 600  # only the exit flush writes
        for step in range(1000):
            mlflow.log_metric("loss", step / 1000, step=step)
        mlflow.log_metric("final", 1.0)
        print(run.info.run_id)
        # no end_run, no flush: the interpreter exits here
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120, cwd=tmp_path
    )
    assert done.returncode == 0, done.stderr
    assert "Warning" not in done.stderr, done.stderr
    run_id = done.stdout.strip().splitlines()[-1]
    assert _history_rows(str(store), run_id) == 1001

    from jupyter_mltrack import MlflowClient

    client = MlflowClient(str(store))
    history = client.get_metric_history(run_id, "loss")
    assert [m.step for m in history] == list(range(1000))
    assert client.get_run(run_id).data.metrics == {"loss": 0.999, "final": 1.0}


def test_hundred_thousand_points_land(mlflow, store_uri):
    count = 100_000
    with mlflow.start_run() as run:
        log_metric = mlflow.log_metric
        for step in range(count):
            log_metric("loss", step * 0.5, step=step)
    assert _history_rows(store_uri, run.info.run_id) == count
    history = mlflow.MlflowClient().get_metric_history(run.info.run_id, "loss")
    assert len(history) == count
    assert history[0].step == 0 and history[-1].step == count - 1
    assert history[-1].value == (count - 1) * 0.5
    assert mlflow.get_run(run.info.run_id).data.metrics == {"loss": (count - 1) * 0.5}


def _independent_store(store_uri: str):
    """A second store object with its own engine, as another process would have."""
    from jupyter_mltrack.store.sql import SqlStore

    if store_uri.startswith("postgresql"):
        return SqlStore(store_uri, Path.cwd().as_uri())
    return SqlStore(f"sqlite:///{store_uri}/mltrack.db", (Path(store_uri) / "artifacts").as_uri())


def test_points_of_a_run_removed_elsewhere_do_not_take_others_down(client, store_uri, slow_writer):
    """Another process deletes and garbage-collects a run while its points wait in our buffer:
    the flush reports it clearly and keeps every other run's points of the batch."""
    from jupyter_mltrack.exceptions import ResourceDoesNotExist

    kept = client.create_run("0").info.run_id
    doomed = client.create_run("0").info.run_id
    for step in range(5):
        client.log_metric(kept, "m", float(step), step=step)
        client.log_metric(doomed, "m", float(step), step=step)
    other = _independent_store(store_uri)
    try:
        other.delete_run(doomed)
        assert other.gc()[0] == [doomed]
    finally:
        other.engine.dispose()

    with pytest.raises(ResourceDoesNotExist) as err:
        client.flush()
    assert err.value.error_code == "RESOURCE_DOES_NOT_EXIST"
    assert "5 buffered write(s)" in str(err.value)
    assert "removed" in str(err.value)
    assert [m.value for m in client.get_metric_history(kept, "m")] == [0.0, 1.0, 2.0, 3.0, 4.0]
    assert _history_rows(store_uri, kept) == 5
    with pytest.raises(ResourceDoesNotExist):
        client.log_metric(doomed, "m", 9.0)
    client.log_metric(kept, "m", 5.0, step=5)
    client.flush()
    assert _history_rows(store_uri, kept) == 6


def _stored_params(store_uri: str, run_id: str) -> dict[str, str]:
    other = _independent_store(store_uri)
    try:
        return other.get_run(run_id).data.params
    finally:
        other.engine.dispose()


def test_params_and_tags_of_own_runs_are_written_behind(client, store_uri, slow_writer):
    run_id = client.create_run("0").info.run_id
    client.log_param(run_id, "lr", 0.1)
    client.set_tag(run_id, "team", "churn")
    assert _stored_params(store_uri, run_id) == {}  # not yet in the database...
    run = client.get_run(run_id)  # ...but this process reads its own writes
    assert run.data.params == {"lr": "0.1"} and run.data.tags["team"] == "churn"
    assert _stored_params(store_uri, run_id) == {"lr": "0.1"}


def test_param_conflict_on_own_run_is_refused_at_once(client, store_uri, slow_writer):
    run_id = client.create_run("0").info.run_id
    client.log_param(run_id, "lr", 0.1)
    client.log_param(run_id, "lr", "0.1")  # the same value again is fine
    with pytest.raises(
        InvalidParameterValue, match=r"Param 'lr' was already logged with value '0.1'"
    ):
        client.log_param(run_id, "lr", 0.2)
    with pytest.raises(InvalidParameterValue):
        client.log_batch(run_id, params=[Param("a", 1), Param("lr", 0.3)])
    client.set_terminated(run_id)
    assert _stored_params(store_uri, run_id) == {"lr": "0.1"}  # the batch was all or nothing


def test_param_conflict_with_another_process_surfaces_at_flush_and_keeps_the_rest(
    client, store_uri, slow_writer
):
    run_id = client.create_run("0").info.run_id
    other = _independent_store(store_uri)
    try:
        other.log_batch(run_id, params=[Param("lr", "0.5")])  # another process got there first
    finally:
        other.engine.dispose()
    client.log_param(run_id, "lr", 0.1)  # we cannot know yet: queued
    client.log_param(run_id, "depth", 3)
    client.log_metric(run_id, "loss", 0.25)
    with pytest.raises(InvalidParameterValue, match=r"already logged with value '0.5'"):
        client.flush()
    run = client.get_run(run_id)
    assert run.data.params == {"lr": "0.5", "depth": "3"}  # nothing stored was overwritten
    assert run.data.metrics == {"loss": 0.25}


def test_end_run_writes_the_queue_and_the_end_in_one_go(client, store_uri, slow_writer):
    run_id = client.create_run("0").info.run_id
    client.log_param(run_id, "lr", 0.1)
    client.log_metric(run_id, "loss", 0.5)
    info = client.set_terminated(run_id, "FINISHED")
    assert info.status == "FINISHED" and info.end_time
    assert slow_writer.pending() == 0
    assert _stored_params(store_uri, run_id) == {"lr": "0.1"}
    assert _history_rows(store_uri, run_id) == 1
    # a finished run still takes client logging (post-hoc evaluation), now synchronously
    client.log_param(run_id, "evaluated", True)
    assert _stored_params(store_uri, run_id) == {"lr": "0.1", "evaluated": "True"}
