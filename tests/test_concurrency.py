"""Many writer processes on one store: no "database is locked", nothing lost."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import time
from pathlib import Path

WORKER = textwrap.dedent(
    """
    import json, sys, time
    from pathlib import Path

    uri, index, n_runs, n_points, experiment, sync = sys.argv[1:]
    index, n_runs, n_points, sync = int(index), int(n_runs), int(n_points), Path(sync)

    import jupyter_mltrack as mlflow

    mlflow.set_tracking_uri(uri)
    (sync / f"ready-{index}").touch()
    while not (sync / "go").exists():
        time.sleep(0.002)

    # every worker creates-or-gets the same new experiment at the same moment
    exp = mlflow.set_experiment(experiment)
    run_ids = []
    for r in range(n_runs):
        with mlflow.start_run(run_name=f"w{index}-r{r}") as run:
            mlflow.log_params({"worker": index, "run": r, "lr": 0.001 * (index + 1)})
            mlflow.set_tags({"worker": str(index), "kind": "concurrency"})
            for step in range(n_points):
                mlflow.log_metric("loss", 1.0 / (step + 1), step=step)
            mlflow.log_metric("final", index * 1000 + r)
            mlflow.set_tag("done", "yes")
        run_ids.append(run.info.run_id)
    print(json.dumps({"experiment_id": exp.experiment_id, "runs": run_ids}))
    """
)


def _run_workers(uri: str, tmp_path: Path, workers: int, runs: int, points: int) -> list[dict]:
    script = tmp_path / "worker.py"
    script.write_text(WORKER)
    sync = tmp_path / "sync"
    sync.mkdir()
    procs = [
        subprocess.Popen(
            [
                sys.executable,
                str(script),
                uri,
                str(i),
                str(runs),
                str(points),
                "shared-exp",
                str(sync),
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            cwd=tmp_path,
        )
        for i in range(workers)
    ]
    try:
        deadline = time.monotonic() + 60
        while len(list(sync.glob("ready-*"))) < workers:
            assert time.monotonic() < deadline, "workers did not start"
            assert all(p.poll() is None for p in procs), [p.communicate() for p in procs]
            time.sleep(0.01)
        (sync / "go").touch()
        outputs = [p.communicate(timeout=120) for p in procs]
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
    results = []
    for proc, (out, err) in zip(procs, outputs):
        assert "database is locked" not in err
        assert proc.returncode == 0, err
        assert "Traceback" not in err and "Warning" not in err, err
        results.append(json.loads(out.strip().splitlines()[-1]))
    return results


def _check_everything_landed(uri: str, results: list[dict], runs: int, points: int) -> None:
    from jupyter_mltrack import MlflowClient
    from jupyter_mltrack.entities import ViewType

    client = MlflowClient(uri)
    experiments = client.search_experiments(
        filter_string="name = 'shared-exp'", view_type=ViewType.ALL
    )
    assert len(experiments) == 1
    exp_id = experiments[0].experiment_id
    assert {r["experiment_id"] for r in results} == {exp_id}

    found = client.search_runs([exp_id], max_results=1000)
    workers = len(results)
    assert len(found) == workers * runs
    assert {r.info.run_id for r in found} == {rid for res in results for rid in res["runs"]}
    for run in found:
        worker, number = run.info.run_name[1:].split("-r")
        assert run.info.status == "FINISHED"
        assert run.data.params == {
            "worker": worker,
            "run": number,
            "lr": str(0.001 * (int(worker) + 1)),
        }
        assert run.data.tags["worker"] == worker
        assert run.data.tags["kind"] == "concurrency"
        assert run.data.tags["done"] == "yes"
        assert run.data.metrics == {"loss": 1.0 / points, "final": int(worker) * 1000 + int(number)}
    sample = found[0].info.run_id
    history = client.get_metric_history(sample, "loss")
    assert [m.step for m in history] == list(range(points))

    import sqlalchemy as sa

    engine = client.store.engine
    with engine.connect() as conn:
        total = conn.execute(sa.text("SELECT count(*) FROM metrics")).scalar()
        params = conn.execute(sa.text("SELECT count(*) FROM params")).scalar()
    assert total == workers * runs * (points + 1)
    assert params == workers * runs * 3


def test_eight_processes_on_one_embedded_store(tmp_path):
    uri = str(tmp_path / "store")  # not created yet: the workers open it together
    results = _run_workers(uri, tmp_path, workers=8, runs=2, points=2000)
    _check_everything_landed(uri, results, runs=2, points=2000)


def test_processes_on_one_postgresql_database(pg_url, tmp_path):
    results = _run_workers(pg_url, tmp_path, workers=4, runs=1, points=500)
    _check_everything_landed(pg_url, results, runs=1, points=500)
