"""``--env-manager virtualenv``: a virtual environment built from a model's ``requirements.txt``
(with ``python -m venv`` and pip), cached by a hash of those requirements and the Python
version, and commands (``models serve``, ``models predict``) run inside it.

jupyter-mltrack is not on PyPI: the model's ``jupyter-mltrack==...`` requirement is satisfied
by a wheel of the running package, packed from its installed files (``package_wheel``). That
needs no build backend and no network, works for editable and regular installs alike, and the
same wheel goes into Docker build contexts. A venv whose copy of the package is out of date
(the source changed) gets the new wheel reinstalled, without rebuilding the rest.

Cache layout (``MLTRACK_ENV_CACHE``, default ``~/.cache/jupyter_mltrack/envs``)::

    <cache>/<key>/            one venv per (requirements, python version)
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
from jupyter_mltrack.models.requirements import SELF, requirement_name

DIST = SELF
PACKAGE = "jupyter_mltrack"
SERVE_EXTRA = "serve"
MARKER = ".mltrack-env.json"
_PIP_FLAGS = ["--disable-pip-version-check", "--no-input"]
_FAILED_REQ = re.compile(
    r"(?:No matching distribution found for|Could not find a version that satisfies the "
    r"requirement)\s+(\S+)"
)


class EnvironmentBuildError(MlflowException):
    """A model's virtual environment could not be built (bad requirement, no network...)."""


def cache_dir() -> Path:
    """Where environments are cached: ``MLTRACK_ENV_CACHE`` or ``~/.cache/jupyter_mltrack/envs``."""
    given = os.environ.get("MLTRACK_ENV_CACHE")
    base = Path(given) if given else Path.home() / ".cache" / "jupyter_mltrack" / "envs"
    return base.expanduser().resolve()


# -- a wheel of this package -------------------------------------------------------------------
def _package_files() -> list[tuple[str, Path]]:
    """(archive name, file) for every file of the installed package, caches left out."""
    root = Path(__file__).resolve().parent.parent
    files = []
    for path in sorted(root.rglob("*")):
        if path.is_dir() or "__pycache__" in path.parts or path.suffix in (".pyc", ".pyo"):
            continue
        files.append((f"{PACKAGE}/{path.relative_to(root).as_posix()}", path))
    return files


def _source_pyproject() -> Path | None:
    """The pyproject.toml of the source tree the package runs from (editable installs)."""
    candidate = Path(__file__).resolve().parents[2] / "pyproject.toml"
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


# -- the model's requirements ------------------------------------------------------------------
def model_requirements(model_path: str) -> list[str]:
    """The model's requirement lines without the one for jupyter-mltrack (it comes as a wheel)."""
    from jupyter_mltrack.models.requirements import read_requirements_file

    return [r for r in read_requirements_file(model_path) if requirement_name(r) != DIST]


def model_python(model_path: str) -> str | None:
    """The ``major.minor`` Python version the model was saved with, if recorded."""
    from jupyter_mltrack.models.model import read_model

    meta = read_model(model_path)
    version = getattr(meta, "python_version", None) or meta.flavors.get("python_function", {}).get(
        "python_version"
    )
    match = re.match(r"^(\d+)\.(\d+)", str(version or ""))
    return f"{match.group(1)}.{match.group(2)}" if match else None


def _interpreter(wanted: str | None) -> tuple[str, str]:
    """(python executable, its major.minor): the model's version when found on PATH, else ours."""
    ours = "{}.{}".format(*sys.version_info[:2])
    base = getattr(sys, "_base_executable", None) or sys.executable
    if wanted and wanted != ours:
        found = shutil.which(f"python{wanted}")
        if found:
            return found, wanted
        import warnings

        warnings.warn(
            f"The model was saved with Python {wanted}; no python{wanted} on PATH, so its "
            f"environment uses Python {ours}.",
            UserWarning,
            stacklevel=3,
        )
    return base, ours


def env_key(requirements: Sequence[str], python: str) -> str:
    """The cache key of an environment: a hash of its requirements and Python version."""
    text = "\n".join(sorted(r.strip() for r in requirements)) + f"\npython=={python}\n"
    return hashlib.sha256(text.encode()).hexdigest()[:20]


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    """One builder per environment at a time (two servers starting together share the work)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _venv_python(env: Path) -> Path:
    return env / ("Scripts/python.exe" if os.name == "nt" else "bin/python")


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


def prepare_env(model_uri: str, *, quiet: bool = True, tracking_uri: str | None = None) -> Path:
    """The virtual environment for the model at ``model_uri``, built on first use and cached.

    Parameters
    ----------
    model_uri
        Any model URI (``runs:/``, ``models:/``, a path).
    quiet
        When False, say on stderr what is being built.
    tracking_uri
        The store ``models:/`` and ``runs:/`` URIs resolve against (default: the current one).

    Returns
    -------
    Path
        The environment's folder; its interpreter is ``<env>/bin/python``.
    """
    from jupyter_mltrack.models.uri import resolve_model_uri
    from jupyter_mltrack.tracking.client import Client

    client = Client(tracking_uri) if tracking_uri else None
    model_path = resolve_model_uri(model_uri, client).local_path
    reqs = model_requirements(model_path)
    base_python, version = _interpreter(model_python(model_path))
    root = cache_dir()
    env = root / env_key(reqs, version)
    wheel = package_wheel()
    with _locked(root / f"{env.name}.lock"):
        marker = env / MARKER
        state = json.loads(marker.read_text()) if marker.is_file() else None
        if state is None:
            _build(env, base_python, reqs, wheel, quiet)
        elif state.get("wheel") != wheel.parent.name:
            # the package changed since the env was built: swap in the new wheel only
            _say(quiet, f"Updating {DIST} in {env}")
            python = _venv_python(env)
            _pip(python, ["--no-deps", "--force-reinstall", str(wheel)], DIST)
            # then only what its new version needs and the env lacks (a new serve dependency)
            _pip(python, [f"{wheel}[{SERVE_EXTRA}]"], f"{DIST} with its '{SERVE_EXTRA}' extra")
            state["wheel"] = wheel.parent.name
            marker.write_text(json.dumps(state, indent=1))
    return env


def _say(quiet: bool, message: str) -> None:
    if not quiet:
        print(message, file=sys.stderr, flush=True)


def _build(env: Path, base_python: str, reqs: list[str], wheel: Path, quiet: bool) -> None:
    # Built at its final path (venv scripts hold their absolute path); the marker written
    # last is what makes it complete: a half-built env (crash, Ctrl-C) is rebuilt next time.
    started = time.monotonic()
    shutil.rmtree(env, ignore_errors=True)
    _say(quiet, f"Building the model's environment in {env} ({len(reqs)} requirement(s))")
    try:
        made = subprocess.run([base_python, "-m", "venv", str(env)], capture_output=True, text=True)
        if made.returncode != 0:
            raise EnvironmentBuildError(
                f"python -m venv failed: {made.stderr.strip() or made.stdout.strip()} "
                "(on Debian/Ubuntu: apt-get install python3-venv)."
            )
        python = _venv_python(env)
        if reqs:
            req_file = env / "model-requirements.txt"
            req_file.write_text("\n".join(reqs) + "\n")
            _pip(python, ["-r", str(req_file)], "the model's requirements")
        _pip(python, [f"{wheel}[{SERVE_EXTRA}]"], f"{DIST} with its '{SERVE_EXTRA}' extra")
        marker = {
            "requirements": reqs,
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


def run_in_env(env: Path, cli_args: list[str], tracking_uri: str | None = None) -> int:
    """Run ``mltrack <cli_args>`` with the environment's interpreter, replacing this process
    on POSIX (signals then reach the server directly); returns the exit code elsewhere."""
    python = str(_venv_python(env))
    cmd = [python, "-m", "jupyter_mltrack.cli"]
    if tracking_uri:
        cmd += ["--tracking-uri", tracking_uri]
    cmd += cli_args
    sys.stdout.flush()
    sys.stderr.flush()
    if os.name == "posix":
        os.execv(python, cmd)
    return subprocess.call(cmd)


def serve_in_virtualenv(
    model_uri: str,
    host: str,
    port: int,
    workers: int = 1,
    extra_args: Sequence[str] = (),
    tracking_uri: str | None = None,
    **options: object,
) -> int:
    """Serve ``model_uri`` from its own environment: ``mltrack models serve ... --env-manager
    local`` run by the environment's Python (built first if needed).

    ``options`` are further ``serve`` options by parameter name (``watch=True``,
    ``poll_interval=0.5``): True becomes a flag, None and False are left out.
    """
    env = prepare_env(model_uri, quiet=False, tracking_uri=tracking_uri)
    args = ["models", "serve", "-m", model_uri, "--host", host, "-p", str(port)]
    args += ["--workers", str(workers)]
    for name, value in options.items():
        flag = "--" + name.replace("_", "-")
        if value is True:
            args.append(flag)
        elif value is not None and value is not False:
            args += [flag, str(value)]
    args += [*extra_args, "--env-manager", "local"]
    return run_in_env(env, args, tracking_uri)
