"""Run context captured at start: user, source, git commit, Python, platform, packages.

Everything is cached per process so a run pays microseconds: the git commit is read from
``.git/HEAD`` (re-read only when its files change), the dirty flag is computed in a
background thread, and the versions of the packages the run's code imported are looked up
once per module (``mltrack.packages``, JSON ``{distribution: version}``).
"""

from __future__ import annotations

import ast
import importlib.metadata
import json
import os
import platform
import subprocess
import sys
import threading
import time
from collections.abc import Iterable
from pathlib import Path

from jupyter_mltrack.identity import current_user
from jupyter_mltrack.validation import MAX_TAG_VALUE_LENGTH

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

# ML packages recorded when nothing says what the run's code imported (a REPL, python -c).
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


def source_tags() -> dict[str, str]:
    """Where code runs from: ``mlflow.source.name`` and ``mlflow.source.type``."""
    static = _static_tags()
    found = {k: static[k] for k in (SOURCE_NAME_TAG, SOURCE_TYPE_TAG)}
    return {**found, **_source_override}


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


# -- packages the run's code imported --------------------------------------------------------
_code_imports: set[str] = set()  # top-level modules imported by executed notebook cells
_main_imports_cache: dict[str, frozenset[str]] = {}
_dists: dict[str, tuple[str, str] | None] = {}  # module -> (distribution, version)
_index: dict[str, list[str]] | None = None  # importlib.metadata.packages_distributions()
_index_misses: set[str] = set()
_index_lock = threading.Lock()
_packages_tag_cache: tuple[tuple[int, int], str] | None = None


def note_imports(modules: Iterable[str]) -> None:
    """The notebook layer reports the top-level modules each executed cell imports."""
    _code_imports.update(modules)


def _main_imports() -> frozenset[str]:
    """Top-level modules imported by the ``__main__`` script (parsed once per process)."""
    main = sys.modules.get("__main__")
    path = getattr(main, "__file__", None)
    if not path:
        return frozenset()
    cached = _main_imports_cache.get(path)
    if cached is not None:
        return cached
    found: set[str] = set()
    tree = None
    if str(path).endswith(".py") and not _in_ipython():  # a kernel's __main__ is its launcher
        try:
            tree = ast.parse(Path(path).read_text(encoding="utf-8"))
        except (OSError, SyntaxError, ValueError):
            pass
    for node in ast.walk(tree) if tree is not None else ():
        if isinstance(node, ast.Import):
            found.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.add(node.module.split(".")[0])
    _main_imports_cache[path] = frozenset(found)
    return _main_imports_cache[path]


def _in_ipython() -> bool:
    ipython = sys.modules.get("IPython")
    get = getattr(ipython, "get_ipython", None)
    return get is not None and get() is not None


def _installed(path: str | None) -> bool:
    return bool(path) and ("site-packages" in path or "dist-packages" in path)  # type: ignore[operator]


def _build_index(module: str | None = None) -> None:
    """Build the module -> distributions map; again only for a module it does not know yet."""
    global _index
    with _index_lock:  # a prefetch in progress is waited for, not repeated
        if _index is None or (
            module is not None and module not in _index and module not in _index_misses
        ):
            _index = importlib.metadata.packages_distributions()
            if module is not None and module not in _index:
                _index_misses.add(module)


def prefetch_package_index() -> None:
    """Map modules to distributions in the background (about 0.5 s once per process)."""
    if _index is None and not _index_lock.locked():
        threading.Thread(target=_build_index, name="mltrack-packages", daemon=True).start()


def _distribution_of(module: str) -> tuple[str, str] | None:
    """(distribution name, version) providing top-level ``module``, None for local code."""
    if module in _dists:
        return _dists[module]
    found = None
    try:
        dist = importlib.metadata.distribution(module)  # numpy, pandas, torch, ...
        found = (dist.metadata["Name"] or module, dist.version)
    except (importlib.metadata.PackageNotFoundError, ValueError):
        loaded = sys.modules.get(module)
        if _installed(getattr(loaded, "__file__", None)):  # sklearn -> scikit-learn, yaml...
            _build_index(module)  # first use, or a package installed since: refresh
            names = (_index or {}).get(module) or []
            if names:
                try:
                    dist = importlib.metadata.distribution(names[0])
                    found = (dist.metadata["Name"] or names[0], dist.version)
                except importlib.metadata.PackageNotFoundError:
                    found = None
    _dists[module] = found
    return found


def imported_packages() -> dict[str, str]:
    """``{distribution: version}`` of the installed packages the run's code has imported.

    "Imported by the run's code": top-level modules named in the ``import`` statements of
    the executed notebook cells (reported by the notebook layer) or of the ``__main__``
    script, that are loaded now. Dependencies pulled in by those packages are not listed;
    neither are standard-library modules, local modules, or packages imported dynamically
    (``importlib.import_module``). With no such source (a REPL, ``python -c``), the known
    ML packages that are loaded. ``jupyter-mltrack`` itself is always listed.
    """
    wanted = _code_imports | _main_imports()
    if not wanted:
        wanted = set(_WATCHED_PACKAGES)
    modules = sys.modules
    found: dict[str, str] = {}
    for module in sorted(wanted | {"jupyter_mltrack"}):
        if module not in modules or module in sys.stdlib_module_names:
            continue
        dist = _distribution_of(module)
        if dist is not None:
            found[dist[0]] = dist[1]
    return found


def packages_tag() -> str:
    """``imported_packages()`` as the JSON of the ``mltrack.packages`` tag (cached)."""
    global _packages_tag_cache
    key = (len(sys.modules), len(_code_imports))  # a new import changes one of them
    if _packages_tag_cache is not None and _packages_tag_cache[0] == key:
        return _packages_tag_cache[1]
    packages = imported_packages()
    text = json.dumps(dict(sorted(packages.items())))
    while len(text) > MAX_TAG_VALUE_LENGTH and packages:
        packages.popitem()
        text = json.dumps(dict(sorted(packages.items())))
    _packages_tag_cache = (key, text)
    return text


def run_context_tags() -> dict[str, str]:
    """All tags captured when a run starts."""
    tags = dict(_static_tags())
    tags.update(_source_override)
    tags.update(git_tags())
    tags.update(git_dirty_tag())
    tags[PACKAGES_TAG] = packages_tag()
    start_dirty_check()
    return tags
