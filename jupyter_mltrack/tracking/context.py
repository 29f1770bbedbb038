"""Run context captured at start: user, source, git commit, Python, platform, ML packages.

Everything is cached per process so a run pays microseconds: the git commit is read from
``.git/HEAD`` (re-read only when its files change), the dirty flag is computed once in a
background thread and attached when the run ends.
"""

from __future__ import annotations

import os
import platform
import subprocess
import sys
import threading
import time
from pathlib import Path

from jupyter_mltrack.identity import current_user

USER_TAG = "mlflow.user"
SOURCE_NAME_TAG = "mlflow.source.name"
SOURCE_TYPE_TAG = "mlflow.source.type"
GIT_COMMIT_TAG = "mlflow.source.git.commit"
GIT_BRANCH_TAG = "mlflow.source.git.branch"
GIT_REPO_TAG = "mlflow.source.git.repoURL"
PARENT_RUN_TAG = "mlflow.parentRunId"
RUN_NAME_TAG = "mlflow.runName"
NOTE_TAG = "mlflow.note.content"
GIT_DIRTY_TAG = "mltrack.git.dirty"
PYTHON_TAG = "mltrack.python"
PLATFORM_TAG = "mltrack.platform"
PACKAGES_TAG = "mltrack.packages"

# ML packages whose versions are worth recording when they are already imported.
_WATCHED_PACKAGES = (
    "numpy",
    "pandas",
    "scipy",
    "sklearn",
    "torch",
    "lightning",
    "pytorch_lightning",
    "tensorflow",
    "keras",
    "xgboost",
    "lightgbm",
    "catboost",
    "statsmodels",
    "transformers",
    "matplotlib",
    "jupyter_mltrack",
)

_static: dict[str, str] | None = None
_git_cache: dict[str, tuple[tuple[int, ...], dict[str, str]]] = {}
_dirty: dict[str, str] = {}
_dirty_threads: dict[str, threading.Thread] = {}
_packages_cache: tuple[int, str] = (-1, "")
_source_override: dict[str, str] = {}


def set_source(name: str, source_type: str = "NOTEBOOK") -> None:
    """Let the notebook layer say where runs come from (the notebook path)."""
    _source_override.update({SOURCE_NAME_TAG: name, SOURCE_TYPE_TAG: source_type})


def _static_tags() -> dict[str, str]:
    global _static
    if _static is None:
        user = current_user()
        main = sys.modules.get("__main__")
        source = getattr(main, "__file__", None) or (
            sys.argv[0] if sys.argv and sys.argv[0] else "<console>"
        )
        _static = {
            USER_TAG: user,
            SOURCE_NAME_TAG: source,
            SOURCE_TYPE_TAG: "LOCAL",
            PYTHON_TAG: platform.python_version(),
            PLATFORM_TAG: platform.platform(terse=True),
        }
    return _static


_git_dirs: dict[str, Path | None] = {}


def find_git_dir(start: str | None = None) -> Path | None:
    """The ``.git`` folder of the repository enclosing ``start`` (cwd), if any (cached)."""
    key = start or os.getcwd()
    if key not in _git_dirs:
        _git_dirs[key] = _find_git_dir(key)
    return _git_dirs[key]


def _find_git_dir(start: str) -> Path | None:
    here = Path(start).resolve()
    for folder in (here, *here.parents):
        candidate = folder / ".git"
        if candidate.is_dir():
            return candidate
        if candidate.is_file():  # worktree / submodule: "gitdir: <path>"
            text = candidate.read_text().strip()
            if text.startswith("gitdir:"):
                return (folder / text.split(":", 1)[1].strip()).resolve()
    return None


def _mtime(path: Path) -> int:
    try:
        return path.stat().st_mtime_ns
    except OSError:
        return 0


def git_tags(start: str | None = None) -> dict[str, str]:
    """Commit and branch of the enclosing repository, read from files (no subprocess)."""
    git_dir = find_git_dir(start)
    if git_dir is None:
        return {}
    head = git_dir / "HEAD"
    try:
        head_text = head.read_text().strip()
    except OSError:
        return {}
    ref = head_text[5:].strip() if head_text.startswith("ref:") else None
    stamp = (_mtime(head), _mtime(git_dir / ref) if ref else 0, _mtime(git_dir / "packed-refs"))
    cached = _git_cache.get(str(git_dir))
    if cached and cached[0] == stamp:
        return cached[1]
    tags: dict[str, str] = {}
    if ref is None:
        tags[GIT_COMMIT_TAG] = head_text
    else:
        tags[GIT_BRANCH_TAG] = ref.rsplit("refs/heads/", 1)[-1]
        commit = _read_ref(git_dir, ref)
        if commit:
            tags[GIT_COMMIT_TAG] = commit
    _git_cache[str(git_dir)] = (stamp, tags)
    return tags


def _read_ref(git_dir: Path, ref: str) -> str | None:
    try:
        return (git_dir / ref).read_text().strip()
    except OSError:
        pass
    try:
        for line in (git_dir / "packed-refs").read_text().splitlines():
            if line.endswith(" " + ref):
                return line.split(" ", 1)[0]
    except OSError:
        pass
    return None  # a fresh repository with no commit yet


DIRTY_RECHECK_S = 10.0
_dirty_checked_at: dict[str, float] = {}


def start_dirty_check(start: str | None = None) -> None:
    """Refresh the git dirty flag in a background thread, at most every DIRTY_RECHECK_S
    seconds per repository, so long-lived kernels see edits made since the last run."""
    git_dir = find_git_dir(start)
    if git_dir is None:
        return
    key = str(git_dir)
    running = _dirty_threads.get(key)
    if running is not None and running.is_alive():
        return
    now = time.monotonic()
    if now - _dirty_checked_at.get(key, -DIRTY_RECHECK_S) < DIRTY_RECHECK_S:
        return
    _dirty_checked_at[key] = now
    work_tree = git_dir.parent

    def check() -> None:
        try:
            out = subprocess.run(
                # --no-optional-locks: a background status must not take .git/index.lock,
                # or the user's own git commands fail while it runs.
                ["git", "--no-optional-locks", "status", "--porcelain", "--untracked-files=no"],
                cwd=work_tree,
                capture_output=True,
                text=True,
                timeout=30,
            )
            if out.returncode == 0:
                _dirty[str(git_dir)] = "true" if out.stdout.strip() else "false"
        except (OSError, subprocess.SubprocessError):
            pass

    thread = threading.Thread(target=check, name="mltrack-git-dirty", daemon=True)
    _dirty_threads[str(git_dir)] = thread
    thread.start()


def git_dirty_tag(start: str | None = None) -> dict[str, str]:
    """``{mltrack.git.dirty: true|false}`` once known, else empty (never blocks)."""
    git_dir = find_git_dir(start)
    value = _dirty.get(str(git_dir)) if git_dir else None
    return {GIT_DIRTY_TAG: value} if value else {}


def package_versions() -> str:
    """``name=version`` of the watched ML packages imported right now (cached on sys.modules)."""
    global _packages_cache
    size = len(sys.modules)
    if _packages_cache[0] == size:
        return _packages_cache[1]
    found = []
    for name in _WATCHED_PACKAGES:
        module = sys.modules.get(name)
        version = getattr(module, "__version__", None) if module else None
        if version:
            found.append(f"{name}={version}")
    _packages_cache = (size, ", ".join(found))
    return _packages_cache[1]


def run_context_tags() -> dict[str, str]:
    """All tags captured when a run starts."""
    tags = dict(_static_tags())
    tags.update(_source_override)
    tags.update(git_tags())
    tags.update(git_dirty_tag())
    packages = package_versions()
    if packages:
        tags[PACKAGES_TAG] = packages
    start_dirty_check()
    return tags
