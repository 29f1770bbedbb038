"""Cached virtual environments, shared by model serving (``models serve --env-manager
virtualenv``) and projects (``mltrack run --env-manager virtualenv``).

An environment is built with ``python -m venv`` and pip from a list of requirement lines, and
cached under a hash of those lines, the Python version and what it is for (``kind``), so the
same requirements give the same folder and a second use starts no process at all.

jupyter-mltrack is not on PyPI: every environment gets a wheel of the running package, packed
from its installed files (``package_wheel``). That needs no build backend and no network, works
for editable and regular installs alike, and the same wheel goes into Docker build contexts. An
environment whose copy of the package is out of date (the source changed) gets the new wheel
reinstalled, without rebuilding the rest.

Cache layout (``MLTRACK_ENV_CACHE``, default ``~/.cache/jupyter_mltrack/envs``)::

    <cache>/<key>/            one venv per (requirements, python version, kind)
    <cache>/<key>/.mltrack-env.json   what it was built from; written last: a venv without
                                      it is incomplete and rebuilt
    <cache>/wheels/           wheels of this package, by content hash
"""

from __future__ import annotations

import base64
import contextlib
import csv
import fcntl
import hashlib
import importlib.metadata
import io
import json
import os
import re
import shutil
import subprocess
import sys
import time
import zipfile
from collections.abc import Iterator, Sequence
from pathlib import Path

from jupyter_mltrack.exceptions import MlflowException
from jupyter_mltrack.models.requirements import SELF

DIST = SELF
PACKAGE = "jupyter_mltrack"
MARKER = ".mltrack-env.json"
_PIP_FLAGS = ["--disable-pip-version-check", "--no-input"]
_FAILED_REQ = re.compile(
    r"(?:No matching distribution found for|Could not find a version that satisfies the "
    r"requirement)\s+(\S+)"
)


class EnvironmentBuildError(MlflowException):
    """A virtual environment could not be built (bad requirement, no network...)."""


def cache_dir() -> Path:
    """Where environments are cached: ``MLTRACK_ENV_CACHE`` or ``~/.cache/jupyter_mltrack/envs``."""
    given = os.environ.get("MLTRACK_ENV_CACHE")
    base = Path(given) if given else Path.home() / ".cache" / "jupyter_mltrack" / "envs"
    return base.expanduser().resolve()


# -- a wheel of this package -------------------------------------------------------------------
def _package_files() -> list[tuple[str, Path]]:
    """(archive name, file) for every file of the installed package, caches left out."""
    root = Path(__file__).resolve().parent
    files = []
    for path in sorted(root.rglob("*")):
        if path.is_dir() or "__pycache__" in path.parts or path.suffix in (".pyc", ".pyo"):
            continue
        files.append((f"{PACKAGE}/{path.relative_to(root).as_posix()}", path))
    return files


def _source_pyproject() -> Path | None:
    """The pyproject.toml of the source tree the package runs from (editable installs)."""
    candidate = Path(__file__).resolve().parents[1] / "pyproject.toml"
    if candidate.is_file() and re.search(
        rf'^name\s*=\s*"{DIST}"', candidate.read_text(encoding="utf-8"), re.M
    ):
        return candidate
    return None


def _metadata() -> str:
    """Core metadata for the wheel: from the source tree's pyproject.toml when there is one
    (an editable install's recorded metadata goes stale as extras are added), else the
    installed distribution's METADATA."""
    pyproject = _source_pyproject()
    if pyproject is not None and sys.version_info >= (3, 11):
        import tomllib

        project = tomllib.loads(pyproject.read_text(encoding="utf-8"))["project"]
        lines = [
            "Metadata-Version: 2.1",
            f"Name: {project['name']}",
            f"Version: {project['version']}",
        ]
        if project.get("description"):
            lines.append(f"Summary: {project['description']}")
        if project.get("requires-python"):
            lines.append(f"Requires-Python: {project['requires-python']}")
        lines += [f"Requires-Dist: {dep}" for dep in project.get("dependencies", [])]
        for extra, deps in sorted(project.get("optional-dependencies", {}).items()):
            lines.append(f"Provides-Extra: {extra}")
            lines += [f"Requires-Dist: {_with_extra(dep, extra)}" for dep in deps]
        return "\n".join(lines) + "\n"
    return importlib.metadata.distribution(DIST).read_text("METADATA") or ""


def _with_extra(requirement: str, extra: str) -> str:
    """``dep; marker`` -> ``dep; (marker) and extra == "x"`` (core metadata's form)."""
    spec, _, marker = requirement.partition(";")
    condition = f'extra == "{extra}"'
    if marker.strip():
        condition = f"({marker.strip()}) and {condition}"
    return f"{spec.strip()}; {condition}"


def _entry_points() -> str:
    pyproject = _source_pyproject()
    if pyproject is not None and sys.version_info >= (3, 11):
        import tomllib

        scripts = tomllib.loads(pyproject.read_text(encoding="utf-8"))["project"].get("scripts", {})
        return "[console_scripts]\n" + "".join(f"{k} = {v}\n" for k, v in scripts.items())
    return importlib.metadata.distribution(DIST).read_text("entry_points.txt") or ""


def package_version() -> str:
    from jupyter_mltrack import __version__

    return __version__


def package_wheel(dest: str | os.PathLike[str] | None = None) -> Path:
    """A wheel of the running jupyter_mltrack, packed from its files; built once per content.

    Parameters
    ----------
    dest
        Folder to copy the wheel into (default: only the cache under ``cache_dir()/wheels``).

    Returns
    -------
    Path
        The wheel file (named as pip expects: ``jupyter_mltrack-<version>-py3-none-any.whl``).
    """
    files = _package_files()
    metadata, entry_points = _metadata(), _entry_points()
    digest = hashlib.sha256(metadata.encode() + entry_points.encode())
    contents = []
    for name, path in files:
        data = path.read_bytes()
        digest.update(name.encode() + b"\0" + data)
        contents.append((name, data))
    name = f"{PACKAGE}-{package_version()}-py3-none-any.whl"
    cached = cache_dir() / "wheels" / digest.hexdigest()[:16] / name
    if not cached.is_file():
        cached.parent.mkdir(parents=True, exist_ok=True)
        info = f"{PACKAGE}-{package_version()}.dist-info"
        contents += [
            (f"{info}/METADATA", metadata.encode()),
            (
                f"{info}/WHEEL",
                b"Wheel-Version: 1.0\nGenerator: jupyter_mltrack\n"
                b"Root-Is-Purelib: true\nTag: py3-none-any\n",
            ),
            (f"{info}/entry_points.txt", entry_points.encode()),
        ]
        tmp = cached.with_suffix(f".tmp{os.getpid()}")
        _write_wheel(tmp, contents, f"{info}/RECORD")
        os.replace(tmp, cached)
    if dest is None:
        return cached
    target = Path(dest) / name
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(cached, target)
    return target


def _write_wheel(path: Path, contents: list[tuple[str, bytes]], record_name: str) -> None:
    record = io.StringIO()
    writer = csv.writer(record, lineterminator="\n")
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in contents:
            # a fixed timestamp: the same files give the same wheel
            zf.writestr(zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0)), data)
            sha = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
            writer.writerow([name, f"sha256={sha}", len(data)])
        writer.writerow([record_name, "", ""])
        zf.writestr(
            zipfile.ZipInfo(record_name, date_time=(1980, 1, 1, 0, 0, 0)), record.getvalue()
        )


# -- building and caching ----------------------------------------------------------------------
def find_python(wanted: str | None, who: str = "The model was saved with") -> tuple[str, str]:
    """(python executable, its major.minor): ``wanted`` (``"3.11"``) when found on PATH, else
    ours, with a warning that starts with ``who``."""
    ours = "{}.{}".format(*sys.version_info[:2])
    base = getattr(sys, "_base_executable", None) or sys.executable
    if wanted and wanted != ours:
        found = shutil.which(f"python{wanted}")
        if found:
            return found, wanted
        import warnings

        warnings.warn(
            f"{who} Python {wanted}; no python{wanted} on PATH, so its environment uses "
            f"Python {ours}.",
            UserWarning,
            stacklevel=3,
        )
    return base, ours


def env_key(requirements: Sequence[str], python: str, kind: str = "") -> str:
    """The cache key of an environment: a hash of its requirements, Python version and, when
    given, what it is for (a project env and a model env with the same requirements differ:
    only the model's gets the serving extra)."""
    text = "\n".join(sorted(r.strip() for r in requirements)) + f"\npython=={python}\n"
    if kind:
        text += f"kind={kind}\n"
    return hashlib.sha256(text.encode()).hexdigest()[:20]


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    """One builder per environment at a time (two processes starting together share the work)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def venv_python(env: Path) -> Path:
    """The interpreter of the virtual environment at ``env``."""
    return env / ("Scripts/python.exe" if os.name == "nt" else "bin/python")


def venv_bin(env: Path) -> Path:
    """The folder of the environment's scripts (what ``activate`` puts first on PATH)."""
    return venv_python(env).parent


def _pip(python: Path, args: list[str], what: str) -> None:
    cmd = [str(python), "-m", "pip", "install", *_PIP_FLAGS, *args]
    done = subprocess.run(cmd, capture_output=True, text=True)
    if done.returncode != 0:
        output = (done.stderr or "") + (done.stdout or "")
        failed = _FAILED_REQ.search(output)
        culprit = f"the requirement {failed.group(1)!r} cannot be installed" if failed else ""
        tail = "\n".join(output.strip().splitlines()[-15:])
        raise EnvironmentBuildError(
            f"Could not install {what}"
            + (f": {culprit}" if culprit else "")
            + f" (pip exited with {done.returncode}).\n{tail}"
        )


def _say(quiet: bool, message: str) -> None:
    if not quiet:
        print(message, file=sys.stderr, flush=True)


def ensure_env(
    requirements: Sequence[str],
    base_python: str,
    python_version: str,
    *,
    extra: str | None = None,
    kind: str = "",
    build_requirements: Sequence[str] = (),
    what: str = "the model",
    quiet: bool = True,
) -> Path:
    """The cached environment for ``requirements``, built on first use.

    Parameters
    ----------
    requirements
        pip requirement lines (without jupyter-mltrack: it comes as a wheel).
    base_python, python_version
        The interpreter that creates the venv and its ``major.minor`` (see ``find_python``).
    extra
        An extra of jupyter-mltrack to install with it (``"serve"`` for model servers).
    kind
        What the environment is for; part of the cache key when given.
    build_requirements
        Installed before ``requirements`` (a project's ``build_dependencies``).
    what
        Named in messages and errors ("the model", "the project").
    quiet
        When False, say on stderr what is being built.

    Returns
    -------
    Path
        The environment's folder; its interpreter is ``venv_python(env)``.
    """
    reqs = list(requirements)
    build = list(build_requirements)
    key_reqs = reqs + [f"build: {b}" for b in build]
    root = cache_dir()
    env = root / env_key(key_reqs, python_version, kind)
    wheel = package_wheel()
    target = f"{wheel}[{extra}]" if extra else str(wheel)
    label = f"{DIST} with its '{extra}' extra" if extra else DIST
    with _locked(root / f"{env.name}.lock"):
        marker = env / MARKER
        state = json.loads(marker.read_text()) if marker.is_file() else None
        if state is None:
            _build(env, base_python, reqs, build, wheel, extra, what, quiet)
        elif state.get("wheel") != wheel.parent.name:
            # the package changed since the env was built: swap in the new wheel only
            _say(quiet, f"Updating {DIST} in {env}")
            python = venv_python(env)
            _pip(python, ["--no-deps", "--force-reinstall", str(wheel)], DIST)
            # then only what its new version needs and the env lacks (a new dependency)
            _pip(python, [target], label)
            state["wheel"] = wheel.parent.name
            marker.write_text(json.dumps(state, indent=1))
    return env


def _build(
    env: Path,
    base_python: str,
    reqs: list[str],
    build: list[str],
    wheel: Path,
    extra: str | None,
    what: str,
    quiet: bool,
) -> None:
    # Built at its final path (venv scripts hold their absolute path); the marker written
    # last is what makes it complete: a half-built env (crash, Ctrl-C) is rebuilt next time.
    started = time.monotonic()
    shutil.rmtree(env, ignore_errors=True)
    _say(quiet, f"Building the environment of {what} in {env} ({len(reqs)} requirement(s))")
    try:
        made = subprocess.run([base_python, "-m", "venv", str(env)], capture_output=True, text=True)
        if made.returncode != 0:
            raise EnvironmentBuildError(
                f"python -m venv failed: {made.stderr.strip() or made.stdout.strip()} "
                "(on Debian/Ubuntu: apt-get install python3-venv)."
            )
        python = venv_python(env)
        if build:
            _pip(python, build, f"the build dependencies of {what}")
        if reqs:
            req_file = env / "env-requirements.txt"
            req_file.write_text("\n".join(reqs) + "\n")
            _pip(python, ["-r", str(req_file)], f"the requirements of {what}")
        if extra:
            _pip(python, [f"{wheel}[{extra}]"], f"{DIST} with its '{extra}' extra")
        else:
            _pip(python, [str(wheel)], DIST)
        marker = {
            "requirements": reqs,
            "build_requirements": build,
            "python": base_python,
            "wheel": wheel.parent.name,
            "built": time.strftime("%Y-%m-%dT%H:%M:%S"),
            "seconds": round(time.monotonic() - started, 1),
        }
        (env / MARKER).write_text(json.dumps(marker, indent=1))
    except BaseException:
        shutil.rmtree(env, ignore_errors=True)
        raise
    _say(quiet, f"Environment ready in {time.monotonic() - started:.1f}s")
