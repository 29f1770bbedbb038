"""Run context captured as tags: git (real repositories), user, source, Python, packages."""

from __future__ import annotations

import getpass
import json
import platform
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from jupyter_mltrack.tracking.context import git_dirty_tag, run_context_tags


def _git(repo: Path, *args: str) -> str:
    done = subprocess.run(
        ["git", "-c", "user.name=Test", "-c", "user.email=test@example.com", *args],
        cwd=repo,
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, f"git {' '.join(args)}: {done.stderr}"
    return done.stdout.strip()


@pytest.fixture
def repo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A real git repository with one commit on branch ``trunk``; the cwd is inside it."""
    root = tmp_path / "repo"
    root.mkdir()
    _git(root, "-c", "init.defaultBranch=trunk", "init", "-q")
    (root / "train.py").write_text("print('train')\n")
    _git(root, "add", "train.py")
    _git(root, "commit", "-q", "-m", "first")
    work = root / "notebooks"
    work.mkdir()
    monkeypatch.chdir(work)
    return root


def _wait_for_dirty_flag(timeout: float = 20.0) -> dict[str, str]:
    """The dirty flag is computed once, in the background; wait until it is known."""
    deadline = time.monotonic() + timeout
    while not (flag := git_dirty_tag()) and time.monotonic() < deadline:
        time.sleep(0.01)
    return flag


def test_git_commit_and_branch(mlflow, repo):
    with mlflow.start_run() as run:
        pass
    tags = mlflow.get_run(run.info.run_id).data.tags
    assert tags["mlflow.source.git.commit"] == _git(repo, "rev-parse", "HEAD")
    assert tags["mlflow.source.git.branch"] == "trunk"

    # a new commit is seen by the next run of the same process
    (repo / "train.py").write_text("print('train v2')\n")
    _git(repo, "commit", "-q", "-am", "second")
    with mlflow.start_run() as second:
        pass
    tags = mlflow.get_run(second.info.run_id).data.tags
    assert tags["mlflow.source.git.commit"] == _git(repo, "rev-parse", "HEAD")
    assert (
        tags["mlflow.source.git.commit"]
        != mlflow.get_run(run.info.run_id).data.tags["mlflow.source.git.commit"]
    )


def test_git_commit_from_packed_refs_and_detached_head(repo):
    _git(repo, "checkout", "-q", "-b", "feature")
    _git(repo, "pack-refs", "--all")
    assert not (repo / ".git" / "refs" / "heads" / "feature").exists()
    tags = run_context_tags()
    assert tags["mlflow.source.git.commit"] == _git(repo, "rev-parse", "HEAD")
    assert tags["mlflow.source.git.branch"] == "feature"

    (repo / "more.txt").write_text("x")
    _git(repo, "add", "more.txt")
    _git(repo, "commit", "-q", "-m", "more")
    _git(repo, "checkout", "-q", "--detach", "HEAD~1")
    tags = run_context_tags()
    assert tags["mlflow.source.git.commit"] == _git(repo, "rev-parse", "HEAD")
    assert "mlflow.source.git.branch" not in tags


def test_git_dirty_true_after_modifying_a_tracked_file(repo, tmp_path):
    import jupyter_mltrack as mlflow

    mlflow.set_tracking_uri(tmp_path / "store")
    (repo / "train.py").write_text("print('changed, not committed')\n")
    with mlflow.start_run() as run:
        assert _wait_for_dirty_flag() == {"mltrack.git.dirty": "true"}
    assert mlflow.get_run(run.info.run_id).data.tags["mltrack.git.dirty"] == "true"


def test_git_dirty_false_when_clean(repo):
    import jupyter_mltrack as mlflow

    # the default store lands at the repository root; its .gitignore keeps the tree clean
    (repo / "untracked-notes.txt").write_text("untracked files do not make a tree dirty")
    with mlflow.start_run() as run:
        assert _wait_for_dirty_flag() == {"mltrack.git.dirty": "false"}
    assert (repo / "mltrack" / "mltrack.db").exists()
    tags = mlflow.get_run(run.info.run_id).data.tags
    assert tags["mltrack.git.dirty"] == "false"
    # later runs of the process get it at start, without waiting
    with mlflow.start_run() as later:
        assert mlflow.get_run(later.info.run_id).data.tags["mltrack.git.dirty"] == "false"


def test_no_git_tags_outside_a_repository(tmp_path):
    import jupyter_mltrack as mlflow

    cwd = Path.cwd()
    assert not any((p / ".git").exists() for p in (cwd, *cwd.parents))
    with mlflow.start_run() as run:
        pass
    tags = mlflow.get_run(run.info.run_id).data.tags
    assert not [k for k in tags if k.startswith("mlflow.source.git") or k == "mltrack.git.dirty"]


def test_python_platform_and_user(tmp_path):
    import jupyter_mltrack as mlflow

    mlflow.set_tracking_uri(tmp_path / "store")
    with mlflow.start_run() as run:
        pass
    tags = mlflow.get_run(run.info.run_id).data.tags
    assert tags["mltrack.python"] == platform.python_version()
    assert tags["mltrack.platform"] == platform.platform(terse=True)
    assert tags["mlflow.user"] == getpass.getuser()
    assert run.info.user_id == getpass.getuser()
    assert tags["mlflow.source.type"] == "LOCAL"
    assert json.loads(tags["mltrack.packages"])["jupyter-mltrack"] == mlflow.__version__


def test_source_name_and_packages_imported_at_that_moment(tmp_path):
    script = tmp_path / "train_model.py"
    script.write_text(
        textwrap.dedent(
            f"""
            import importlib
            import json
            import sys
            import jupyter_mltrack as mlflow

            mlflow.set_tracking_uri({str(tmp_path / "store")!r})
            with mlflow.start_run() as before:
                pass
            import numpy
            from sklearn.linear_model import LinearRegression
            importlib.import_module("yaml")  # loaded, but not by an import statement
            with mlflow.start_run() as after:
                pass
            print(json.dumps({{
                "before": mlflow.get_run(before.info.run_id).data.tags,
                "after": mlflow.get_run(after.info.run_id).data.tags,
                "numpy": numpy.__version__,
                "loaded": sorted(m for m in ("scipy", "sqlalchemy", "yaml") if m in sys.modules),
            }}))
            """
        )
    )
    done = subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, timeout=120, cwd=tmp_path
    )
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout.strip().splitlines()[-1])
    before, after = out["before"], out["after"]
    assert before["mlflow.source.name"] == str(script)
    assert before["mlflow.source.type"] == "LOCAL"
    assert before["mlflow.user"] == getpass.getuser()
    import sklearn

    packages_before = json.loads(before["mltrack.packages"])
    packages_after = json.loads(after["mltrack.packages"])
    assert "numpy" not in packages_before  # not imported yet when that run started
    assert packages_after["numpy"] == out["numpy"]
    assert (
        packages_after["scikit-learn"] == sklearn.__version__
    )  # module sklearn, dist scikit-learn
    assert packages_before["jupyter-mltrack"] == packages_after["jupyter-mltrack"]
    # loaded by the packages (scipy by sklearn, SQLAlchemy by the store) or dynamically
    # (yaml), never named in an import statement of the script: not listed
    assert out["loaded"] == ["scipy", "sqlalchemy", "yaml"]
    assert set(packages_after) == {"jupyter-mltrack", "numpy", "scikit-learn"}


def test_user_given_tags_win_over_captured_ones(mlflow):
    with mlflow.start_run(tags={"mlflow.source.name": "custom.py", "team": "x"}) as run:
        pass
    tags = mlflow.get_run(run.info.run_id).data.tags
    assert tags["mlflow.source.name"] == "custom.py"
    assert tags["team"] == "x"


def test_capture_is_cached(repo):
    run_context_tags()  # first call reads .git and starts the dirty check
    started = time.perf_counter()
    for _ in range(1000):
        tags = run_context_tags()
    per_call = (time.perf_counter() - started) / 1000
    assert per_call < 0.0005, f"{per_call * 1e6:.0f} µs per run start"
    assert tags["mlflow.source.git.commit"] == _git(repo, "rev-parse", "HEAD")
