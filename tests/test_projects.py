"""``mltrack run`` / ``jupyter_mltrack.projects.run``: MLproject folders and git repositories run
as tracked runs, with real processes, a real git and real virtual environments.

The virtualenv tests build one environment for the module in a cache folder of their own (its
requirements come from pip's cache or the index) and check that the next run reuses it.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

import jupyter_mltrack as mlflow
from jupyter_mltrack.entities import RunStatus, ViewType
from jupyter_mltrack.projects import ExecutionException, ProjectSpecError, run
from jupyter_mltrack.projects.spec import EntryPoint, Parameter, load_project, python_env
from jupyter_mltrack.tracking.client import Client

pytestmark = pytest.mark.timeout(600)

DATA = Path(__file__).resolve().parent / "data"
SAMPLE = DATA / "sample_project"
PLAIN = DATA / "plain_project"


@pytest.fixture
def store(tmp_path: Path) -> str:
    uri = str(tmp_path / "store")
    mlflow.set_tracking_uri(uri)
    return uri


def all_runs(uri: str) -> list:
    client = Client(uri)
    ids = [
        e.experiment_id
        for e in client.search_experiments(view_type=ViewType.ALL, max_results=50_000)
    ]
    return list(client.search_runs(ids, run_view_type=ViewType.ALL)) if ids else []


def cli(store: str, *args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "jupyter_mltrack.cli", "--tracking-uri", store, "run", *args],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=cwd,
    )


# -- local folders ---------------------------------------------------------------------------
def test_cli_runs_the_sample_locally_and_the_command_logs_into_the_run(store: str) -> None:
    done = cli(
        store,
        str(SAMPLE),
        *("-P", "alpha=0.2", "-P", "extra=7", "--env-manager", "local"),
        *("--experiment-name", "proj", "--run-name", "first"),
    )
    assert done.returncode == 0, done.stderr
    run_id = done.stdout.splitlines()[-1]
    runs = all_runs(store)
    assert [r.info.run_id for r in runs] == [run_id]  # start_run() in train.py attached
    result = Client(store).get_run(run_id)
    assert result.info.status == RunStatus.FINISHED and result.info.run_name == "first"
    assert Client(store).get_experiment(result.info.experiment_id).name == "proj"
    params = result.data.params
    assert params["alpha"] == "0.2" and params["epochs"] == "3" and params["label"] == "base run"
    assert params["data"] == str(SAMPLE / "data.csv")  # a relative default: the project's
    assert params["output"] == str(SAMPLE / "outputs")
    assert params["extra"] == "7"  # undeclared: passed through and logged
    assert params["rows"] == "4"  # logged by train.py
    history = Client(store).get_metric_history(run_id, "loss")
    assert [m.step for m in history] == [0, 1, 2]
    tags = result.data.tags
    assert tags["extra_args"] == "--extra 7"  # appended as --key value
    assert tags["label_seen"] == "base run"
    assert Path(tags["python_executable"]).parent == Path(sys.executable).parent
    assert tags["mlflow.source.type"] == "PROJECT"
    assert tags["mlflow.source.name"] == tags["mltrack.project.uri"] == str(SAMPLE)
    assert tags["mlflow.project.entryPoint"] == "main"
    assert tags["mlflow.project.env"] == "local"
    assert tags["mlflow.project.backend"] == "local"
    assert tags["mltrack.project.exit_code"] == "0"
    assert json.loads(tags["mltrack.project.params"]) == {
        "alpha": "0.2",
        "epochs": "3",
        "label": "base run",
        "data": str(SAMPLE / "data.csv"),
        "output": str(SAMPLE / "outputs"),
        "extra": "7",
    }
    assert "python train.py --alpha 0.2" in tags["mltrack.project.command"]


def test_python_api_returns_the_run_and_quotes_values(
    store: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    data = tmp_path / "mine.csv"
    data.write_text("x,y\n1,1\n")
    monkeypatch.chdir(tmp_path)  # a relative path given by the user: against the cwd
    label = 'it\'s a "test" $HOME; echo owned'
    result = run(
        str(SAMPLE),
        parameters={"alpha": 0.1, "epochs": 2, "label": label, "data": "mine.csv"},
        env_manager="local",
        quiet=True,
    )
    assert result.run_id == result.info.run_id and result.wait()
    assert result.get_status() == RunStatus.FINISHED
    assert result.data.params["alpha"] == "0.1" and result.data.params["rows"] == "1"
    assert result.data.params["data"] == str(data)
    assert result.data.tags["label_seen"] == label  # reached the command as one argument
    assert len(Client(store).get_metric_history(result.run_id, "loss")) == 2
    assert mlflow.active_run() is None  # the caller's run stack is untouched
    # sys.stdout is not fd 1 here (as in a notebook): the output is relayed to it
    assert f"run {result.run_id}: w=" in capsys.readouterr().out
    assert json.loads(result.data.tags["mltrack.project.user_params"]) == {
        "alpha": "0.1",
        "epochs": "2",
        "label": label,
        "data": str(data),
    }


@pytest.mark.parametrize(
    ("entry_point", "parameters", "env_manager", "expected"),
    [
        ("needs_name", {}, "local", r"required parameter\(s\) 'name'.*-P name=VALUE"),
        ("main", {"alpha": "fast"}, "local", r"'alpha'.*float.*'fast'"),
        ("main", {"epochs": "2.5"}, "local", r"'epochs'.*int.*'2\.5'"),
        ("nope", {}, "local", r"Unknown entry point 'nope'.*'main', 'needs_name'"),
        ("main", {"data": "missing.csv"}, "local", r"'data'.*path.*no file or folder"),
        ("main", {}, "conda", r"conda"),
    ],
)
def test_bad_input_is_refused_before_any_run(
    store: str, entry_point: str, parameters: dict, env_manager: str, expected: str
) -> None:
    with pytest.raises(ProjectSpecError, match=expected):
        run(
            str(SAMPLE),
            entry_point,
            parameters=parameters,
            env_manager=env_manager,
            experiment_name="never",
            quiet=True,
        )
    assert all_runs(store) == []
    assert Client(store).get_experiment_by_name("never") is None


def test_conda_is_refused_clearly_when_absent(store: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", "/nonexistent")  # no conda, whatever this machine has
    with pytest.raises(ProjectSpecError, match="needs conda, which is not installed"):
        run(str(SAMPLE), env_manager="conda", quiet=True)
    assert all_runs(store) == []


def test_cli_refuses_bad_parameters_with_the_name_and_creates_no_run(store: str) -> None:
    done = cli(store, str(SAMPLE), "-P", "alpha=abc", "--env-manager", "local")
    assert done.returncode != 0
    assert "'alpha'" in done.stderr and "float" in done.stderr
    assert "Traceback" not in done.stderr
    done = cli(store, str(SAMPLE), "-P", "alpha", "--env-manager", "local")
    assert done.returncode == 2 and "NAME=VALUE" in done.stderr
    assert all_runs(store) == []


def test_failing_command_fails_the_run_and_the_cli(store: str) -> None:
    done = cli(store, str(SAMPLE), "-e", "fail", "-P", "code=3", "--env-manager", "local")
    assert done.returncode == 3
    assert "failing" in done.stdout  # the command's output streams through
    assert "failed (exit code 3)" in done.stderr
    (failed,) = all_runs(store)
    assert failed.info.status == RunStatus.FAILED
    assert failed.data.tags["mltrack.project.exit_code"] == "3"
    with pytest.raises(ExecutionException, match="exit code 5") as caught:
        run(str(SAMPLE), "fail", parameters={"code": 5}, env_manager="local", quiet=True)
    assert caught.value.run.info.status == RunStatus.FAILED
    assert caught.value.run_id == caught.value.run.info.run_id


def test_plain_folder_runs_py_and_sh_entry_points(store: str) -> None:
    py = run(str(PLAIN), "main.py", parameters={"a": 1, "b": "x y"}, quiet=True)
    assert py.data.tags["args"] == "--a 1 --b x y"
    assert py.data.metrics["argc"] == 4.0
    assert py.data.params == {"a": "1", "b": "x y"}
    assert py.data.tags["mlflow.project.env"] == "local"  # no environment file: local
    sh = run(str(PLAIN), "report.sh", parameters={"who": "me"}, quiet=True)
    assert sh.data.tags["shell_args"] == "--who me" and sh.data.metrics["from_shell"] == 1.0
    default = run(str(PLAIN), quiet=True)  # `main` finds main.py when there is no MLproject
    assert default.data.tags["mlflow.project.entryPoint"] == "main"
    assert default.data.metrics["argc"] == 0.0
    with pytest.raises(ProjectSpecError, match=r"no MLproject file.*main\.py, report\.sh"):
        run(str(PLAIN), "train", quiet=True)
    assert len(all_runs(store)) == 3


def test_exported_run_is_resumed_by_start_run(store: str, monkeypatch: pytest.MonkeyPatch) -> None:
    created = Client(store).create_run("0")
    monkeypatch.setenv("MLFLOW_RUN_ID", created.info.run_id)
    with mlflow.start_run() as active:
        assert active.info.run_id == created.info.run_id
        mlflow.log_metric("m", 1.0)
    assert Client(store).get_run(created.info.run_id).data.metrics == {"m": 1.0}


def test_ctrl_c_kills_the_run(store: str, tmp_path: Path) -> None:
    proc = subprocess.Popen(
        [
            *(sys.executable, "-m", "jupyter_mltrack.cli", "--tracking-uri", store, "run"),
            *(str(SAMPLE), "-e", "sleep", "--env-manager", "local"),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,  # a process group of its own, as a terminal's foreground job
    )
    try:
        deadline = time.monotonic() + 60
        while not any("started" in r.data.metrics for r in all_runs(store)):
            assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()
            time.sleep(0.2)
        os.killpg(proc.pid, signal.SIGINT)
        _, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert proc.returncode == 130, err
    assert "KILLED" in err
    (killed,) = all_runs(store)
    assert killed.info.status == RunStatus.KILLED and killed.info.end_time


# -- git -------------------------------------------------------------------------------------
def git(repo: Path, *args: str) -> str:
    env = {
        **os.environ,
        "GIT_AUTHOR_NAME": "t",
        "GIT_AUTHOR_EMAIL": "t@example.com",
        "GIT_COMMITTER_NAME": "t",
        "GIT_COMMITTER_EMAIL": "t@example.com",
    }
    done = subprocess.run(
        ["git", *args], cwd=repo, env=env, capture_output=True, text=True, check=True
    )
    return done.stdout.strip()


@pytest.fixture
def repo(tmp_path: Path) -> dict[str, object]:
    """A git repository holding the sample in ``proj/``, two commits: the second changes the
    default alpha from 0.5 to 0.25."""
    root = tmp_path / "repo"
    shutil.copytree(SAMPLE, root / "proj")
    git(root, "init", "--quiet", "--initial-branch", "main")
    git(root, "add", ".")
    git(root, "commit", "--quiet", "-m", "first")
    first = git(root, "rev-parse", "HEAD")
    mlproject = root / "proj" / "MLproject"
    mlproject.write_text(mlproject.read_text().replace("default: 0.5", "default: 0.25"))
    git(root, "commit", "--quiet", "-am", "second")
    return {"root": root, "first": first, "second": git(root, "rev-parse", "HEAD")}


def test_local_repository_runs_in_place_with_its_commit(store: str, repo: dict) -> None:
    root = repo["root"]
    result = run(f"{root}#proj", env_manager="local", quiet=True)
    tags = result.data.tags
    assert tags["mlflow.source.git.commit"] == tags["mltrack.project.version"] == repo["second"]
    assert tags["mltrack.project.uri"] == f"{root}#proj"
    assert tags["mltrack.git.dirty"] == "false"
    assert result.data.params["alpha"] == "0.25"
    (root / "proj" / "train.py").write_text((root / "proj" / "train.py").read_text() + "\n")
    assert run(f"{root}#proj", env_manager="local", quiet=True).data.tags["mltrack.git.dirty"] == (
        "true"
    )


def test_file_uri_is_cloned_at_a_version_and_the_clone_removed(
    store: str, repo: dict, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import tempfile

    scratch = tmp_path / "scratch"
    scratch.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))
    uri = f"file://{repo['root']}#proj"
    latest = run(uri, env_manager="local", quiet=True)
    assert latest.data.tags["mlflow.source.git.commit"] == repo["second"]
    assert latest.data.tags["mlflow.source.name"] == uri
    assert latest.data.tags["mlflow.source.git.repoURL"] == f"file://{repo['root']}"
    assert latest.data.params["alpha"] == "0.25"
    assert latest.data.params["data"].startswith(str(scratch))  # ran in the clone
    old = run(uri, version=str(repo["first"]), env_manager="local", quiet=True)
    assert old.data.tags["mltrack.project.version"] == repo["first"]
    assert old.data.tags["mlflow.source.git.branch"] == repo["first"]
    assert old.data.params["alpha"] == "0.5"
    # a local repository with --version is cloned too
    local_old = run(f"{repo['root']}#proj", version="main~1", env_manager="local", quiet=True)
    assert local_old.data.tags["mltrack.project.version"] == repo["first"]
    assert list(scratch.iterdir()) == []  # every clone removed
    with pytest.raises(ProjectSpecError, match="No version 'nope'"):
        run(uri, version="nope", env_manager="local", quiet=True)
    with pytest.raises(ProjectSpecError, match="No subdirectory 'missing'"):
        run(f"file://{repo['root']}#missing", env_manager="local", quiet=True)
    with pytest.raises(ProjectSpecError, match="Could not clone"):
        run(f"file://{repo['root']}-nothing", env_manager="local", quiet=True)
    assert len(all_runs(store)) == 3


def test_cli_runs_a_git_uri(store: str, repo: dict) -> None:
    done = cli(store, f"file://{repo['root']}#proj", "-v", "main~1", "--env-manager", "local")
    assert done.returncode == 0, done.stderr
    tags = Client(store).get_run(done.stdout.splitlines()[-1]).data.tags
    assert tags["mlflow.source.git.commit"] == repo["first"]


# -- virtualenv ------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def env_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("project-envs")


def test_virtualenv_is_built_once_and_reused(
    store: str, env_cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from jupyter_mltrack import envcache

    monkeypatch.setenv("MLTRACK_ENV_CACHE", str(env_cache))
    started = time.perf_counter()
    cold = run(str(SAMPLE), parameters={"epochs": 1}, env_manager="virtualenv", quiet=True)
    cold_s = time.perf_counter() - started
    python = Path(cold.data.tags["python_executable"])
    assert python.is_relative_to(env_cache)  # the command ran in the project's venv
    env = python.parent.parent
    marker = json.loads((env / envcache.MARKER).read_text())
    assert marker["requirements"] == ["pyyaml>=6.0"]  # from python_env.yaml -> requirements.txt
    assert cold.data.tags["mlflow.project.env"] == "virtualenv"
    assert cold.data.params["rows"] == "4"

    def no_rebuild(*args: object, **kwargs: object) -> None:
        raise AssertionError("the environment was rebuilt")

    monkeypatch.setattr(envcache, "_build", no_rebuild)
    started = time.perf_counter()
    warm = run(str(SAMPLE), parameters={"epochs": 1}, env_manager="virtualenv", quiet=True)
    warm_s = time.perf_counter() - started
    print(f"\nproject venv: cold run {cold_s:.1f}s, warm run {warm_s:.1f}s")
    assert warm.data.tags["python_executable"] == str(python)
    assert warm.info.status == RunStatus.FINISHED


def test_cli_default_env_manager_follows_python_env(
    store: str, env_cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MLTRACK_ENV_CACHE", str(env_cache))
    done = cli(store, str(SAMPLE), "-P", "epochs=1")  # python_env declared -> virtualenv
    assert done.returncode == 0, done.stderr
    tags = Client(store).get_run(done.stdout.splitlines()[-1]).data.tags
    assert tags["mlflow.project.env"] == "virtualenv"
    assert Path(tags["python_executable"]).is_relative_to(env_cache)


# -- the MLproject format --------------------------------------------------------------------
def test_command_templates_quote_and_leave_shell_braces_alone() -> None:
    entry = EntryPoint(
        "main",
        "echo {a} ${HOME} {x,y} {{literal}} {b}",
        {"a": Parameter("a"), "b": Parameter("b", "float", "1")},
    )
    declared, extra = entry.compute_parameters({"a": "two words", "c": "3"}, Path("/"), Path("/"))
    assert entry.compute_command(declared, extra) == (
        "echo 'two words' ${HOME} {x,y} {literal} 1 --c 3"
    )
    with pytest.raises(ProjectSpecError, match=r"uses \{zz\}"):
        EntryPoint("main", "echo {zz}").compute_command({}, {})


def test_mlproject_forms_and_environment_files(tmp_path: Path) -> None:
    (tmp_path / "MLproject").write_text(
        "name: p\nconda_env: conda.yaml\nentry_points:\n  main:\n    parameters:\n"
        "      n: integer\n      lr: {type: number, default: 0.1}\n      s: {default: hi}\n"
        "    command: python x.py {n} {lr} {s}\n"
    )
    (tmp_path / "conda.yaml").write_text(
        "dependencies:\n  - python=3.10.4\n  - pip\n  - numpy\n  - pip:\n    - -r extra.txt\n"
        "    - requests==2.31.0\n"
    )
    (tmp_path / "extra.txt").write_text("# comment\nidna\n")
    project = load_project(tmp_path)
    params = project.entry_point("main").parameters
    assert (params["n"].type, params["n"].required) == ("int", True)
    assert (params["lr"].type, params["lr"].default) == ("float", "0.1")
    assert (params["s"].type, params["s"].default) == ("string", "hi")
    with pytest.warns(UserWarning, match="numpy"):
        env = python_env(project)
    assert env.python == "3.10" and env.dependencies == ["idna", "requests==2.31.0"]
    (tmp_path / "MLproject").write_text("entry_points:\n  main:\n    parameters: {x: bool}\n")
    with pytest.raises(ProjectSpecError, match="needs a command"):
        load_project(tmp_path)
    (tmp_path / "MLproject").write_text(
        "entry_points:\n  main:\n    parameters: {x: bool}\n    command: c\n"
    )
    with pytest.raises(ProjectSpecError, match=r"'x'.*type 'bool'.*string, float, int, path, uri"):
        load_project(tmp_path)


def test_unknown_experiment_and_unbuildable_env_create_no_run(
    store: str, tmp_path: Path, env_cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from jupyter_mltrack.envcache import EnvironmentBuildError
    from jupyter_mltrack.exceptions import MlflowException

    with pytest.raises(MlflowException, match="999"):
        run(str(PLAIN), "main.py", experiment_id="999", quiet=True)
    monkeypatch.setenv("MLTRACK_ENV_CACHE", str(env_cache))
    project = tmp_path / "broken"
    shutil.copytree(PLAIN, project)
    (project / "requirements.txt").write_text("numpy==0.0.1\n")
    with pytest.raises(EnvironmentBuildError, match=r"requirement 'numpy==0\.0\.1'"):
        run(str(project), env_manager="virtualenv", experiment_name="never", quiet=True)
    assert all_runs(store) == [] and Client(store).get_experiment_by_name("never") is None
