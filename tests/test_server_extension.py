"""The Jupyter server extension: every /mltrack/api/ route against a real SQLite store."""

from __future__ import annotations

import json
import statistics
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest
from tornado.httpclient import HTTPClientError

pytest_plugins = ["pytest_jupyter.jupyter_server"]

API = ("mltrack", "api")


@pytest.fixture
def jp_server_config() -> dict[str, Any]:
    return {"ServerApp": {"jpserver_extensions": {"jupyter_mltrack.server": True}}}


@pytest.fixture
def store(jp_root_dir: Path) -> dict[str, Any]:
    """The default store of the Jupyter root folder, with runs, curves, artifacts, a model."""
    import numpy as np
    from sklearn.linear_model import LogisticRegression

    import jupyter_mltrack as mlflow
    from jupyter_mltrack import sklearn as mlsk

    folder = jp_root_dir / "mltrack"  # the root is no git repository: mltrack/ in it
    mlflow.set_tracking_uri(str(folder))
    exp_id = mlflow.set_experiment("demo").experiment_id
    runs = []
    for i in range(5):
        with mlflow.start_run(run_name=f"r{i}") as run:
            mlflow.log_param("lr", [0.1, 0.01, 0.05, 0.2, 0.001][i])
            mlflow.log_metric("f1", 0.5 + i / 10)
            for step in range(0, 1000):
                mlflow.log_metric("val/loss", 1 / (step + 1) + i, step=step)
            runs.append(run.info.run_id)
    x = np.array([[0.0], [1.0], [2.0], [3.0]])
    y = np.array([0, 0, 1, 1])
    with mlflow.start_run(run_name="model-run") as run:
        mlsk.log_model(LogisticRegression().fit(x, y), "model")
        mlflow.log_metric("accuracy", 0.8)
        mlflow.log_text("hello", "notes/readme.txt")
        mlflow.log_dict({"a": 1}, "config.json")
        mlflow.log_image(np.zeros((4, 4, 3), dtype=np.uint8), "plots/blank.png")
        model_run = run.info.run_id
    mlflow.register_model(f"runs:/{model_run}/model", "clf")
    mlflow.register_model(f"runs:/{model_run}/model", "clf")
    mlflow.set_tracking_uri(None)
    return {"folder": folder, "exp_id": exp_id, "runs": runs, "model_run": model_run}


async def call(jp_fetch: Any, *parts: str, method: str = "GET", body: Any = None, **params: Any):
    kwargs: dict[str, Any] = {"method": method, "params": params}
    if body is not None:
        kwargs["body"] = json.dumps(body)
    elif method in ("POST",):
        kwargs["body"] = "{}"
    if method == "DELETE":
        kwargs["allow_nonstandard_methods"] = True
    response = await jp_fetch(*API, *parts, **kwargs)
    assert response.headers["Content-Type"].startswith("application/json")
    return json.loads(response.body)


async def error(
    jp_fetch: Any, status: int, *parts: str, method: str = "GET", body: Any = None, **params: Any
) -> dict[str, Any]:
    with pytest.raises(HTTPClientError) as info:
        await call(jp_fetch, *parts, method=method, body=body, **params)
    assert info.value.code == status, info.value.response.body
    data = json.loads(info.value.response.body)
    assert set(data) >= {"error_code", "message"} and "traceback" not in data
    return data


# -- store, experiments, runs -----------------------------------------------------------------
async def test_store_defaults_to_the_root_folder_store(jp_fetch, store) -> None:
    data = await call(jp_fetch, "store")
    assert data["tracking_uri"] == str(store["folder"])
    assert data["ok"] is True and data["error"] is None
    experiments = await call(jp_fetch, "experiments")
    assert "demo" in [e["name"] for e in experiments["experiments"]]


async def test_runs_filter_order_and_paging(jp_fetch, store) -> None:
    exp = store["exp_id"]
    first = await call(
        jp_fetch,
        "runs",
        experiment_ids=exp,
        filter="metrics.f1 > 0.55",
        order_by="metrics.f1 DESC",
        max_results=2,
    )
    assert len(first["runs"]) == 2 and first["next_page_token"]
    run = first["runs"][0]
    assert set(run) >= {"info", "data"} and run["info"]["run_name"] == "r4"
    f1 = [{m["key"]: m["value"] for m in r["data"]["metrics"]}["f1"] for r in first["runs"]]
    assert f1 == [0.9, 0.8]
    rest = await call(
        jp_fetch,
        "runs",
        experiment_ids=exp,
        filter="metrics.f1 > 0.55",
        order_by="metrics.f1 DESC",
        max_results=2,
        page_token=first["next_page_token"],
    )
    assert [r["info"]["run_name"] for r in rest["runs"]] == ["r2", "r1"]
    assert rest["next_page_token"] is None  # the last page says so
    # numeric comparison of params, and every active experiment when none is named
    numeric = await call(jp_fetch, "runs", filter="params.lr < 0.06")
    assert {r["info"]["run_name"] for r in numeric["runs"]} == {"r1", "r2", "r4"}


async def test_bad_filter_is_400_naming_the_position(jp_fetch, store) -> None:
    data = await error(jp_fetch, 400, "runs", filter="metrics.f1 >>> 2")
    assert data["error_code"] == "INVALID_PARAMETER_VALUE" and "position" in data["message"]
    await error(jp_fetch, 400, "runs", max_results="0")
    await error(jp_fetch, 400, "runs", page_token="not-a-token")


async def test_run_detail_and_unknown_run(jp_fetch, store) -> None:
    run_id = store["runs"][1]
    data = await call(jp_fetch, "runs", run_id)
    assert data["run"]["info"]["run_id"] == run_id
    assert data["metric_keys"] == ["f1", "val/loss"] and data["cell_source"] is None
    missing = await error(jp_fetch, 404, "runs", "0" * 32)
    assert missing["error_code"] == "RESOURCE_DOES_NOT_EXIST"


async def test_metric_history_downsampled_and_compared(jp_fetch, store) -> None:
    run_id = store["runs"][0]
    full = await call(jp_fetch, "runs", run_id, "metrics", "val/loss", max_points=5000)
    assert full["key"] == "val/loss" and len(full["x"]) == 1000 and not full["downsampled"]
    cut = await call(jp_fetch, "runs", run_id, "metrics", "val/loss", max_points=100)
    assert cut["downsampled"] and len(cut["x"]) <= 110 and max(cut["values"]) == 1.0
    by_time = await call(jp_fetch, "runs", run_id, "metrics", "f1", x_axis="timestamp")
    assert by_time["x"][0] > 1e12
    await error(jp_fetch, 404, "runs", run_id, "metrics", "nope")
    await error(jp_fetch, 404, "runs", "0" * 32, "metrics", "f1")
    await error(jp_fetch, 400, "runs", run_id, "metrics", "f1", x_axis="epoch")
    both = await call(
        jp_fetch,
        "metrics",
        run_ids=",".join([*store["runs"][:2], store["model_run"]]),
        key="val/loss",
        max_points=50,
    )
    assert set(both["series"]) == set(store["runs"][:2])  # the model run never logged it
    assert all(s["downsampled"] for s in both["series"].values())


async def test_artifacts_listed_and_fetched_with_their_type(jp_fetch, store) -> None:
    run_id = store["model_run"]
    root = await call(jp_fetch, "runs", run_id, "artifacts")
    listed = {f["path"]: f for f in root["files"]}
    assert listed["model"]["is_dir"] and listed["config.json"]["file_size"] > 0
    inside = await call(jp_fetch, "runs", run_id, "artifacts", path="model")
    assert "model/MLmodel" in [f["path"] for f in inside["files"]]

    async def fetch(path: str, **extra: Any):
        return await jp_fetch(*API, "runs", run_id, "artifact", params={"path": path, **extra})

    mlmodel = await fetch("model/MLmodel")
    assert mlmodel.headers["Content-Type"] == "text/plain; charset=utf-8"
    assert b"flavors" in mlmodel.body
    png = await fetch("plots/blank.png")
    assert png.headers["Content-Type"] == "image/png" and png.body[:4] == b"\x89PNG"
    config = await fetch("config.json")
    assert config.headers["Content-Type"] == "application/json"
    assert json.loads(config.body) == {"a": 1}
    head = await fetch("notes/readme.txt", max_bytes="2")
    assert head.body == b"he"
    for path in ("model", "nope.txt"):  # a folder, a missing file
        with pytest.raises(HTTPClientError) as info:
            await fetch(path)
        assert info.value.code == 404 and json.loads(info.value.response.body)["message"]
    with pytest.raises(HTTPClientError) as info:
        await fetch("../../etc/passwd")
    assert info.value.code == 400
    await error(jp_fetch, 404, "runs", "0" * 32, "artifacts")


# -- registry ---------------------------------------------------------------------------------
async def test_registered_models_and_detail(jp_fetch, store) -> None:
    models = await call(jp_fetch, "registered-models")
    assert [m["name"] for m in models["registered_models"]] == ["clf"]
    detail = await call(jp_fetch, "registered-models", "clf")
    assert detail["registered_model"]["name"] == "clf"
    assert sorted(v["version"] for v in detail["versions"]) == ["1", "2"]
    await error(jp_fetch, 404, "registered-models", "nope")


async def test_register_a_runs_model(jp_fetch, store) -> None:
    run_id = store["model_run"]
    body = {"run_id": run_id, "artifact_path": "model"}
    created = await call(
        jp_fetch, "registered-models", "fresh", "versions", method="POST", body=body
    )
    assert created["model_version"]["version"] == "1"
    assert created["model_version"]["run_id"] == run_id
    again = await call(jp_fetch, "registered-models", "fresh", "versions", method="POST", body=body)
    assert again["model_version"]["version"] == "2"
    await error(
        jp_fetch,
        400,
        "registered-models",
        "fresh",
        "versions",
        method="POST",
        body={"run_id": run_id, "artifact_path": "notes"},
    )
    await error(
        jp_fetch,
        404,
        "registered-models",
        "fresh",
        "versions",
        method="POST",
        body={"run_id": "0" * 32, "artifact_path": "model"},
    )
    await error(jp_fetch, 400, "registered-models", "fresh", "versions", method="POST", body={})


async def test_stage_transition_and_stale_stage_conflict(jp_fetch, store) -> None:
    url = ("registered-models", "clf", "versions", "1", "stage")
    moved = await call(
        jp_fetch, *url, method="POST", body={"stage": "Staging", "expected_stage": "None"}
    )
    assert moved["model_version"]["current_stage"] == "Staging"
    # a second view still believes v1 is in None: refused, nothing changed
    stale = await error(
        jp_fetch, 409, *url, method="POST", body={"stage": "Production", "expected_stage": "None"}
    )
    assert stale == {
        "error_code": "CONFLICT",
        "message": "v1 is now in Staging (moved by someone else); refresh",
    }
    detail = await call(jp_fetch, "registered-models", "clf")
    assert {v["version"]: v["current_stage"] for v in detail["versions"]}["1"] == "Staging"
    await error(jp_fetch, 400, *url, method="POST", body={"stage": "Heaven"})
    await error(
        jp_fetch,
        404,
        "registered-models",
        "clf",
        "versions",
        "9",
        "stage",
        method="POST",
        body={"stage": "Staging"},
    )


async def test_aliases_set_delete_and_conflicts(jp_fetch, store) -> None:
    url = ("registered-models", "clf", "aliases", "champion")
    assert await call(jp_fetch, *url, method="POST", body={"version": 1}) == {}
    assert (
        await call(jp_fetch, *url, method="POST", body={"version": 2, "expected_version": 1}) == {}
    )
    stale = await error(
        jp_fetch, 409, *url, method="POST", body={"version": 1, "expected_version": 1}
    )
    assert stale["message"] == "alias 'champion' now points to v2 (moved by someone else); refresh"
    await error(jp_fetch, 409, *url, method="DELETE", expected_version="1")
    assert await call(jp_fetch, *url, method="DELETE", expected_version="2") == {}
    gone = await error(
        jp_fetch, 409, *url, method="POST", body={"version": 1, "expected_version": 2}
    )
    assert "no longer exists" in gone["message"]
    await error(jp_fetch, 404, *url, method="DELETE")
    await error(
        jp_fetch,
        404,
        "registered-models",
        "clf",
        "aliases",
        "x",
        method="POST",
        body={"version": 7},
    )


async def test_promote_with_gate_rollback_and_audit(jp_fetch, store) -> None:
    base = ("registered-models", "clf")
    refused = await error(
        jp_fetch,
        400,
        *base,
        "versions",
        "1",
        "promote",
        method="POST",
        body={"stage": "Production", "gate": {"metric": "accuracy", "threshold": 0.9}},
    )
    assert refused["error_code"] == "PROMOTION_REFUSED"
    assert refused["validation"]["passed"] is False and refused["validation"]["value"] == 0.8
    ok = await call(
        jp_fetch,
        *base,
        "versions",
        "1",
        "promote",
        method="POST",
        body={
            "stage": "Production",
            "gate": {"metric": "accuracy", "threshold": 0.75},
            "comment": "good enough",
            "expected_stage": "None",
        },
    )
    assert ok["model_version"]["current_stage"] == "Production" and ok["validation"]["passed"]
    plain = await call(
        jp_fetch, *base, "versions", "2", "promote", method="POST", body={"stage": "Production"}
    )
    assert plain["validation"] is None and plain["model_version"]["current_stage"] == "Production"
    await error(
        jp_fetch,
        409,
        *base,
        "versions",
        "2",
        "promote",
        method="POST",
        body={"stage": "Production", "expected_stage": "Staging"},
    )
    candidate = await call(jp_fetch, *base, "rollback-candidate", stage="Production")
    assert candidate["model_version"]["version"] == "1"
    back = await call(
        jp_fetch,
        *base,
        "rollback",
        method="POST",
        body={"stage": "Production", "comment": "v2 misbehaves"},
    )
    assert back["model_version"]["version"] == "1"
    assert back["model_version"]["current_stage"] == "Production"
    audit = (await call(jp_fetch, *base))["audit"]
    assert {"promote_refused", "promote", "rollback"} <= {e["action"] for e in audit}
    for entry in audit:
        assert set(entry) >= {
            "timestamp",
            "action",
            "version",
            "target",
            "from_value",
            "to_value",
            "user",
            "comment",
            "details",
        }
    await error(
        jp_fetch, 400, *base, "versions", "1", "promote", method="POST", body={"gate": {"x": 1}}
    )
    await error(jp_fetch, 404, "registered-models", "nope", "rollback-candidate", stage="Staging")


# -- authentication and XSRF ------------------------------------------------------------------
async def test_requests_without_the_token_are_refused(
    http_server_client, jp_base_url, store
) -> None:
    url = f"{jp_base_url}mltrack/api/runs"
    response = await http_server_client.fetch(url, raise_error=False)
    assert response.code == 403
    response = await http_server_client.fetch(
        f"{jp_base_url}mltrack/api/store", method="POST", body="{}", raise_error=False
    )
    assert response.code == 403


async def test_cookie_authenticated_writes_need_xsrf(
    http_server_client, jp_base_url, jp_auth_header, store
) -> None:
    """What protects writes: Jupyter checks XSRF on POST/DELETE authenticated by the login
    cookie (what a browser sends by itself); a request carrying the token is exempt, since
    a cross-site page cannot know the token."""
    url = f"{jp_base_url}mltrack/api/registered-models/clf/aliases/champion"
    body = json.dumps({"version": 1})
    # the token itself: accepted without any XSRF token
    response = await http_server_client.fetch(url, method="POST", body=body, headers=jp_auth_header)
    assert response.code == 200
    login_cookie = next(
        c.split(";")[0]
        for c in response.headers.get_list("Set-Cookie")
        if c.startswith("username-")
    )
    # the browser's cookie alone, as a cross-site form would send it: refused
    response = await http_server_client.fetch(
        url, method="POST", body=body, headers={"Cookie": login_cookie}, raise_error=False
    )
    assert response.code == 403 and b"_xsrf" in response.body
    response = await http_server_client.fetch(
        url + "?" + urlencode({"expected_version": 1}),
        method="DELETE",
        headers={"Cookie": login_cookie},
        raise_error=False,
        allow_nonstandard_methods=True,
    )
    assert response.code == 403
    # cookie plus the _xsrf cookie echoed in X-XSRFToken (what JupyterLab sends): accepted
    xsrf = "deadbeef"
    response = await http_server_client.fetch(
        url,
        method="POST",
        body=body,
        headers={"Cookie": f"{login_cookie}; _xsrf={xsrf}", "X-XSRFToken": xsrf},
    )
    assert response.code == 200
    # reads with the cookie need no XSRF token
    response = await http_server_client.fetch(
        f"{jp_base_url}mltrack/api/experiments", headers={"Cookie": login_cookie}
    )
    assert response.code == 200


# -- choosing the store -----------------------------------------------------------------------
async def test_switching_store_good_and_bad(jp_fetch, store, tmp_path) -> None:
    other = tmp_path / "other-store"
    switched = await call(jp_fetch, "store", method="POST", body={"tracking_uri": str(other)})
    assert switched["tracking_uri"] == str(other) and switched["ok"]
    assert (await call(jp_fetch, "registered-models"))["registered_models"] == []
    bad_file = tmp_path / "not-a-store.db"
    bad_file.write_text("plain text, not SQLite")
    refused = await error(
        jp_fetch, 400, "store", method="POST", body={"tracking_uri": f"sqlite:///{bad_file}"}
    )
    assert "not a SQLite database" in refused["message"] and refused["hint"]
    assert (await call(jp_fetch, "store"))["tracking_uri"] == str(other)  # the previous stays
    await error(jp_fetch, 400, "store", method="POST", body={"tracking_uri": 3})
    back = await call(jp_fetch, "store", method="POST", body={"tracking_uri": None})
    assert back["tracking_uri"] == str(store["folder"])


async def test_store_that_cannot_be_opened(jp_fetch, tmp_path, monkeypatch) -> None:
    broken = tmp_path / "broken.db"
    broken.write_text("garbage")
    monkeypatch.setenv("MLTRACK_TRACKING_URI", str(broken))
    status = await call(jp_fetch, "store")
    assert status["ok"] is False and "not a SQLite database" in status["error"]
    assert "MLTRACK_TRACKING_URI" in status["hint"]
    for parts in (("experiments",), ("runs",), ("registered-models",), ("runs", "x" * 32)):
        data = await error(jp_fetch, 503, *parts)
        assert data["error_code"] == "STORE_UNAVAILABLE" and data["hint"]


async def test_no_store_yet_is_empty_not_created(jp_fetch, jp_root_dir) -> None:
    status = await call(jp_fetch, "store")
    assert status["ok"] and "first run" in status["hint"]
    assert (await call(jp_fetch, "experiments")) == {"experiments": []}
    assert (await call(jp_fetch, "runs")) == {"runs": [], "next_page_token": None}
    assert not (jp_root_dir / "mltrack").exists()


async def test_notebook_folder_picks_its_default_store(jp_fetch, jp_root_dir, store) -> None:
    sub = jp_root_dir / "project"
    sub.mkdir()
    status = await call(jp_fetch, "store", notebook="project/train.ipynb")
    assert status["tracking_uri"] == str(sub / "mltrack")
    (sub / ".git").mkdir()  # a repository root: its mltrack/ wins, as in a kernel
    deeper = await call(jp_fetch, "store", notebook="project/a/b/nb.ipynb")
    assert deeper["tracking_uri"] == str(sub / "mltrack")
    await error(jp_fetch, 400, "store", notebook="../outside.ipynb")


# -- performance ------------------------------------------------------------------------------
async def test_runs_page_of_10k_runs_within_50ms(jp_fetch, jp_root_dir) -> None:
    from jupyter_mltrack.entities import Metric, Param, RunTag
    from jupyter_mltrack.tracking.client import Client

    client = Client(str(jp_root_dir / "mltrack"))
    exp = client.create_experiment("big")
    for i in range(10_000):
        run = client.create_run(exp, run_name=f"run-{i}")
        client.log_batch(
            run.info.run_id,
            metrics=[Metric("f1", (i * 7919 % 1000) / 1000, 0, 0), Metric("loss", i / 1e4, 0, 0)],
            params=[Param("lr", str(0.001 * (i % 10))), Param("depth", str(i % 7))],
            tags=[RunTag("kind", "a" if i % 2 else "b")],
        )
    client.flush()
    timings = []
    token = None
    for _ in range(6):
        params = {"experiment_ids": exp, "order_by": "metrics.f1 DESC", "max_results": 50}
        if token:
            params["page_token"] = token
        response = await jp_fetch(*API, "runs", params=params)
        page = json.loads(response.body)
        assert len(page["runs"]) == 50
        token = page["next_page_token"]
        timings.append(float(response.headers["Server-Timing"].split("dur=")[1]))
    assert statistics.median(timings[1:]) < 50, timings


async def test_unexpected_errors_are_generic_500s(jp_fetch, store, monkeypatch) -> None:
    from jupyter_mltrack.tracking.client import Client

    def broken(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("secret detail password=hunter2")

    monkeypatch.setattr(Client, "search_experiments", broken)
    data = await error(jp_fetch, 500, "experiments")
    assert data["error_code"] == "INTERNAL_ERROR" and "hunter2" not in json.dumps(data)
