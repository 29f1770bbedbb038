"""Opening a store: where the default lives, which URI wins, and which files are refused
(each refusal a clear StoreError, the file left byte-identical)."""

from __future__ import annotations

import hashlib
import sqlite3
import subprocess
import threading
import uuid
import warnings
from pathlib import Path

import pytest

from jupyter_mltrack.exceptions import MlflowException, StoreError
from jupyter_mltrack.store import forget_stores, get_store


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _tree(folder: Path) -> dict[str, str]:
    """Every file under ``folder`` with its content hash (to prove nothing changed)."""
    return {
        str(p.relative_to(folder)): _digest(p) for p in sorted(folder.rglob("*")) if p.is_file()
    }


def _git(*args: str, cwd: Path) -> str:
    return subprocess.run(
        ["git", "-c", "user.name=Test", "-c", "user.email=test@example.com", *args],
        cwd=cwd,
        check=True,
        capture_output=True,
        text=True,
    ).stdout


def _refused(uri: str, *words: str) -> StoreError:
    import jupyter_mltrack as mlflow

    mlflow.set_tracking_uri(uri)
    with pytest.raises(StoreError) as info:
        mlflow.start_run()
    err = info.value
    assert isinstance(err, MlflowException)
    assert err.error_code == "INVALID_STATE"
    for word in words:
        assert word in str(err), (word, str(err))
    assert mlflow.active_run() is None
    return err


# -- the default store folder ----------------------------------------------------------------------
def test_default_store_at_git_root(tmp_path, monkeypatch):
    import jupyter_mltrack as mlflow

    repo = tmp_path / "project"
    sub = repo / "notebooks" / "deep"
    sub.mkdir(parents=True)
    _git("init", "-q", cwd=repo)
    (repo / "README.md").write_text("project\n")
    _git("add", "README.md", cwd=repo)
    _git("commit", "-q", "-m", "init", cwd=repo)
    monkeypatch.chdir(sub)

    assert Path(mlflow.get_tracking_uri()) == (repo / "mltrack").resolve()
    with mlflow.start_run() as run:
        mlflow.log_metric("m", 1.0)
    store = repo / "mltrack"
    assert (store / "mltrack.db").is_file()
    assert (store / "artifacts").is_dir()
    assert "*" in (store / ".gitignore").read_text().splitlines()
    assert not (sub / "mltrack").exists()
    assert not (repo / "notebooks" / "mltrack").exists()
    # the store is never picked up by git
    assert _git("status", "--porcelain", "--untracked-files=all", cwd=repo) == ""
    # a notebook in another sub-folder of the project shares the same store
    other = repo / "scripts"
    other.mkdir()
    monkeypatch.chdir(other)
    from jupyter_mltrack.tracking.fluent import reset_state

    reset_state()
    assert mlflow.get_run(run.info.run_id).data.metrics == {"m": 1.0}


def test_default_store_in_working_directory_without_git(tmp_path):
    import jupyter_mltrack as mlflow

    cwd = Path.cwd()
    assert not any((p / ".git").exists() for p in (cwd, *cwd.parents))
    with mlflow.start_run():
        pass
    assert (cwd / "mltrack" / "mltrack.db").is_file()
    assert (cwd / "mltrack" / ".gitignore").read_text().splitlines()[-1] == "*"


# -- SQLite settings and schema ---------------------------------------------------------------------
def test_sqlite_pragmas(tmp_path):
    store = get_store(str(tmp_path / "s"))
    with store.engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
        assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() >= 5000
    # WAL mode is persistent: an independent connection sees it too
    raw = sqlite3.connect(tmp_path / "s" / "mltrack.db")
    try:
        assert raw.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    finally:
        raw.close()


def test_foreign_keys_are_enforced(tmp_path):
    import sqlalchemy as sa

    store = get_store(str(tmp_path / "s"))
    with pytest.raises(sa.exc.IntegrityError), store.engine.begin() as conn:
        conn.exec_driver_sql("INSERT INTO params (run_id, key, value) VALUES (424242, 'k', 'v')")


def test_version_table_has_our_name(tmp_path):
    from jupyter_mltrack.store.schema import SCHEMA_REVISION

    get_store(str(tmp_path / "s"))
    raw = sqlite3.connect(tmp_path / "s" / "mltrack.db")
    try:
        tables = {r[0] for r in raw.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        rows = raw.execute("SELECT version_num FROM mltrack_schema_version").fetchall()
    finally:
        raw.close()
    assert "mltrack_schema_version" in tables
    assert "alembic_version" not in tables
    assert rows == [(SCHEMA_REVISION,)]
    assert {"experiments", "runs", "params", "metrics", "latest_metrics", "tags"} <= tables


def test_reopening_a_store_keeps_its_data(tmp_path):
    import jupyter_mltrack as mlflow

    mlflow.set_tracking_uri(str(tmp_path / "s"))
    mlflow.set_experiment("kept")
    with mlflow.start_run() as run:
        mlflow.log_param("p", 1)
    forget_stores()
    from jupyter_mltrack.tracking.fluent import reset_state

    reset_state()
    mlflow.set_tracking_uri(str(tmp_path / "s"))
    assert mlflow.get_run(run.info.run_id).data.params == {"p": "1"}
    assert mlflow.get_experiment_by_name("kept") is not None


def test_newer_schema_is_refused_and_left_untouched(tmp_path):
    import jupyter_mltrack as mlflow

    folder = tmp_path / "s"
    mlflow.set_tracking_uri(str(folder))
    with mlflow.start_run() as run:
        mlflow.log_metric("m", 1.0)
    from jupyter_mltrack.tracking.fluent import reset_state

    reset_state()
    db = folder / "mltrack.db"
    raw = sqlite3.connect(db)
    with raw:
        raw.execute("UPDATE mltrack_schema_version SET version_num = '9999'")
    raw.close()
    before = _tree(folder)

    err = _refused(str(folder), "newer", "9999", "left untouched")
    assert str(db) in str(err)
    assert _tree(folder) == before
    # the same file through a sqlite:/// URL
    _refused(f"sqlite:///{db}", "newer")
    assert _tree(folder) == before
    raw = sqlite3.connect(db)
    try:
        assert raw.execute("SELECT run_uuid FROM runs").fetchall() == [(run.info.run_id,)]
    finally:
        raw.close()


def _mlflow_database(path: Path) -> None:
    raw = sqlite3.connect(path)
    with raw:
        raw.execute("CREATE TABLE alembic_version (version_num VARCHAR(32) NOT NULL)")
        raw.execute("INSERT INTO alembic_version VALUES ('1b5f0d9ad7c1')")
        raw.execute("CREATE TABLE experiments (experiment_id INTEGER PRIMARY KEY, name TEXT)")
        raw.execute("CREATE TABLE runs (run_uuid VARCHAR(32) PRIMARY KEY, name TEXT)")
        raw.execute("CREATE TABLE latest_metrics (key TEXT, value FLOAT, run_uuid VARCHAR(32))")
        raw.execute("INSERT INTO experiments VALUES (0, 'Default')")
    raw.close()


def test_mlflow_database_is_recognised_and_refused(tmp_path):
    db = tmp_path / "mlflow.db"
    _mlflow_database(db)
    before = _tree(tmp_path)
    _refused(f"sqlite:///{db}", "MLflow tracking database", "1b5f0d9ad7c1", str(db))
    assert _tree(tmp_path) == before
    # given as a path (not a URL) it is refused the same way
    _refused(str(db), "MLflow tracking database")
    assert _tree(tmp_path) == before


def test_database_with_foreign_tables_is_refused(tmp_path):
    db = tmp_path / "shop.db"
    raw = sqlite3.connect(db)
    with raw:
        raw.execute("CREATE TABLE customers (id INTEGER PRIMARY KEY, name TEXT)")
        raw.execute("INSERT INTO customers VALUES (1, 'ada')")
    raw.close()
    before = _tree(tmp_path)
    _refused(f"sqlite:///{db}", "customers", "foreign")
    assert _tree(tmp_path) == before


def test_empty_sqlite_database_becomes_a_store(tmp_path):
    import jupyter_mltrack as mlflow

    db = tmp_path / "empty.db"
    raw = sqlite3.connect(db)  # a real SQLite file (rollback journal) without tables
    with raw:
        raw.execute("CREATE TABLE scratch (x INTEGER)")
        raw.execute("DROP TABLE scratch")
    raw.close()
    assert db.read_bytes()[:16] == b"SQLite format 3\x00"
    mlflow.set_tracking_uri(f"sqlite:///{db}")
    with mlflow.start_run() as run:
        mlflow.log_metric("m", 1.0)
    assert mlflow.get_run(run.info.run_id).data.metrics == {"m": 1.0}
    raw = sqlite3.connect(db)
    try:
        assert raw.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    finally:
        raw.close()


def test_text_file_as_store_is_refused(tmp_path):
    notes = tmp_path / "notes.txt"
    notes.write_text("not a database at all, just some notes\n" * 10)
    before = _tree(tmp_path)
    _refused(str(notes), "not a SQLite database", str(notes))
    _refused(f"sqlite:///{notes}", "not a SQLite database")
    assert _tree(tmp_path) == before


def test_store_under_a_regular_file_is_refused(tmp_path):
    blocker = tmp_path / "blocker"
    blocker.write_text("a file where a folder would have to be")
    before = _tree(tmp_path)
    _refused(str(blocker / "store"), "Cannot create the store folder", str(blocker / "store"))
    _refused(f"sqlite:///{blocker}/sub/runs.db", "does not exist")
    assert _tree(tmp_path) == before


def test_mlflow_file_store_folder_is_refused(tmp_path):
    mlruns = tmp_path / "mlruns"
    (mlruns / "0").mkdir(parents=True)
    (mlruns / "0" / "meta.yaml").write_text("experiment_id: '0'\nname: Default\n")
    before = _tree(tmp_path)
    _refused(str(mlruns), "MLflow file store", "untouched")
    assert _tree(tmp_path) == before
    assert sorted(p.name for p in mlruns.iterdir()) == ["0"]


def test_unsupported_scheme_is_a_clear_error(tmp_path):
    import jupyter_mltrack as mlflow

    mlflow.set_tracking_uri("ftp://localhost/runs")
    with pytest.raises(MlflowException) as info:
        mlflow.start_run()
    assert info.value.error_code == "INVALID_PARAMETER_VALUE"
    assert "'ftp'" in str(info.value)
    assert "Unsupported tracking URI" in str(info.value)


# -- tracking URI precedence -------------------------------------------------------------------------
def test_tracking_uri_precedence(tmp_path, monkeypatch):
    import jupyter_mltrack as mlflow

    explicit, ours, theirs = tmp_path / "explicit", tmp_path / "ours", tmp_path / "theirs"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", str(theirs))
    assert mlflow.get_tracking_uri() == str(theirs)
    monkeypatch.setenv("MLTRACK_TRACKING_URI", str(ours))
    assert mlflow.get_tracking_uri() == str(ours)
    mlflow.set_tracking_uri(explicit)
    assert mlflow.get_tracking_uri() == str(explicit)
    with mlflow.start_run():
        pass
    assert (explicit / "mltrack.db").exists()
    assert not ours.exists() and not theirs.exists()

    mlflow.set_tracking_uri(None)
    with mlflow.start_run():
        pass
    assert (ours / "mltrack.db").exists()
    assert not theirs.exists()

    monkeypatch.delenv("MLTRACK_TRACKING_URI")
    with mlflow.start_run():
        pass
    assert (theirs / "mltrack.db").exists()


def test_mlflow_sqlite_uri_is_honoured(tmp_path, monkeypatch):
    import jupyter_mltrack as mlflow

    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path}/mlflow-style.db")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with mlflow.start_run():
            pass
    assert (tmp_path / "mlflow-style.db").is_file()


def test_unsupported_mlflow_tracking_uri_is_ignored_with_one_warning(tmp_path, monkeypatch):
    import jupyter_mltrack as mlflow

    remote = f"ftp://tracking-{uuid.uuid4().hex[:8]}.example/runs"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", remote)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        first = mlflow.get_tracking_uri()
        second = mlflow.get_tracking_uri()
        with mlflow.start_run():
            pass
    assert first == second == str(Path.cwd().resolve() / "mltrack")
    ours = [w for w in caught if remote in str(w.message)]
    assert len(ours) == 1
    assert "ignored" in str(ours[0].message)
    assert "MLTRACK_TRACKING_URI" in str(ours[0].message)
    assert (Path.cwd() / "mltrack" / "mltrack.db").exists()


def test_mlflow_tracking_uri_naming_a_server_is_honoured(monkeypatch):
    import jupyter_mltrack as mlflow

    monkeypatch.setenv("MLFLOW_TRACKING_URI", "https://tracking.example.com")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert mlflow.get_tracking_uri() == "https://tracking.example.com"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "databricks")
    with pytest.raises(MlflowException, match="MLFLOW_TRACKING_TOKEN"):
        mlflow.start_run()


def test_sqlite_url(tmp_path, monkeypatch):
    import jupyter_mltrack as mlflow

    mlflow.set_tracking_uri(f"sqlite:///{tmp_path}/runs.db")
    with mlflow.start_run() as run:
        mlflow.log_text("x", "a.txt")
    assert (tmp_path / "runs.db").is_file()
    assert run.info.artifact_uri.startswith((tmp_path / "artifacts").as_uri())
    assert (tmp_path / "artifacts").is_dir()

    # a relative sqlite path is relative to the working directory
    mlflow.set_tracking_uri("sqlite:///relative.db")
    with mlflow.start_run():
        pass
    assert (Path.cwd() / "relative.db").is_file()

    mlflow.set_tracking_uri("sqlite:///:memory:")
    with pytest.raises(MlflowException) as info:
        mlflow.start_run()
    assert info.value.error_code == "INVALID_PARAMETER_VALUE"
    assert "in-memory" in str(info.value)


def test_one_store_object_per_location(tmp_path, monkeypatch):
    folder = tmp_path / "s"
    monkeypatch.chdir(tmp_path)
    assert get_store(str(folder)) is get_store("s")
    assert get_store(str(folder)) is get_store(f"file://{folder}")
    assert get_store(f"sqlite:///{tmp_path}/x.db") is get_store("sqlite:///x.db")


# -- concurrent first opens ---------------------------------------------------------------------------
def _open_concurrently(db_url: str, artifact_root: str, count: int = 2) -> list:
    from jupyter_mltrack.store.sql import SqlStore

    barrier = threading.Barrier(count)
    results: list = [None] * count

    def open_one(i: int) -> None:
        barrier.wait()
        try:
            results[i] = SqlStore(db_url, artifact_root)
        except BaseException as err:
            results[i] = err

    threads = [threading.Thread(target=open_one, args=(i,)) for i in range(count)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    return results


def _check_fresh_stores(stores: list) -> None:
    errors = [s for s in stores if isinstance(s, BaseException)]
    assert errors == []
    one, two = stores
    exp_id = one.create_experiment("shared")
    assert two.get_experiment_by_name("shared").experiment_id == exp_id
    assert [e.name for e in two.search_experiments(max_results=10)].count("Default") == 1
    for store in stores:
        store.engine.dispose()


def test_two_fresh_stores_on_one_sqlite_file(tmp_path):
    stores = _open_concurrently(f"sqlite:///{tmp_path}/fresh.db", (tmp_path / "a").as_uri(), 2)
    _check_fresh_stores(stores)


def test_two_fresh_stores_on_one_postgresql_database(pg_url, tmp_path):
    stores = _open_concurrently(pg_url, (tmp_path / "a").as_uri(), 2)
    _check_fresh_stores(stores)
    import sqlalchemy as sa

    engine = sa.create_engine(pg_url)
    with engine.connect() as conn:
        assert conn.exec_driver_sql("SELECT count(*) FROM mltrack_schema_version").scalar() == 1
    engine.dispose()


# -- PostgreSQL refusals ----------------------------------------------------------------------------
def test_newer_schema_on_postgresql_is_refused(pg_url):
    import sqlalchemy as sa

    import jupyter_mltrack as mlflow

    mlflow.set_tracking_uri(pg_url)
    with mlflow.start_run() as run:
        mlflow.log_param("p", 1)
    from jupyter_mltrack.tracking.fluent import reset_state

    reset_state()
    engine = sa.create_engine(pg_url)
    with engine.begin() as conn:
        conn.exec_driver_sql("UPDATE mltrack_schema_version SET version_num = '9999'")
    err = _refused(pg_url, "newer", "9999")
    assert "postgres@" in str(err) or "postgresql" in str(err)
    with engine.connect() as conn:
        assert (
            conn.exec_driver_sql("SELECT version_num FROM mltrack_schema_version").scalar()
            == "9999"
        )
        assert conn.exec_driver_sql("SELECT run_uuid FROM runs").scalar() == run.info.run_id
        assert conn.exec_driver_sql("SELECT value FROM params").scalar() == "1"
    engine.dispose()


def test_mlflow_database_on_postgresql_is_refused(pg_url):
    import sqlalchemy as sa

    engine = sa.create_engine(pg_url)
    with engine.begin() as conn:
        conn.exec_driver_sql("CREATE TABLE alembic_version (version_num VARCHAR(32) NOT NULL)")
        conn.exec_driver_sql("INSERT INTO alembic_version VALUES ('4465047574b1')")
        for table in ("experiments", "runs", "latest_metrics"):
            conn.exec_driver_sql(f"CREATE TABLE {table} (id INTEGER)")
    _refused(pg_url, "MLflow tracking database", "4465047574b1")
    with engine.connect() as conn:
        tables = set(sa.inspect(conn).get_table_names())
    engine.dispose()
    assert tables == {"alembic_version", "experiments", "runs", "latest_metrics"}


def _store_at_revision_0001(url: str) -> None:
    """A database as the first release left it: revision 0001 only, with one experiment."""
    import os

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
            script.get_revision("0001").module.upgrade()
            context.stamp(script, "0001")
        conn.execute(
            sa.text(
                "INSERT INTO experiments (experiment_id, name, artifact_location, lifecycle_stage,"
                " creation_time, last_update_time) VALUES (7, 'old', 'file:///x/7', 'active', 1, 1)"
            )
        )
    engine.dispose()


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_store_of_an_older_schema_is_upgraded_in_place(backend, tmp_path, request):
    import sqlalchemy as sa

    import jupyter_mltrack as mlflow
    from jupyter_mltrack.store.schema import SCHEMA_REVISION, VERSION_TABLE

    if backend == "sqlite":
        url = f"sqlite:///{tmp_path / 'old.db'}"
        uri = url
    else:
        url = uri = request.getfixturevalue("pg_url")
    _store_at_revision_0001(url)
    client = mlflow.MlflowClient(uri)
    assert client.get_experiment("7").name == "old"  # data kept
    client.create_registered_model("NewInRevision0002")  # the new tables exist
    engine = sa.create_engine(url)
    with engine.connect() as conn:
        assert (
            conn.execute(sa.text(f"SELECT version_num FROM {VERSION_TABLE}")).scalar()
            == SCHEMA_REVISION
        )
    engine.dispose()
