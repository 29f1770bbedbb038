"""``--env-manager virtualenv`` for models: a virtual environment built from a model's
``requirements.txt`` (with ``python -m venv`` and pip), cached by a hash of those requirements
and the Python version, and commands (``models serve``, ``models predict``) run inside it.

Building and caching live in ``jupyter_mltrack.envcache`` (shared with ``mltrack run``); this
module knows what a model needs: its requirements, its Python version and the ``serve`` extra.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

from jupyter_mltrack.envcache import (
    DIST,
    MARKER,
    PACKAGE,
    EnvironmentBuildError,
    _locked,
    _pip,
    _with_extra,
    cache_dir,
    ensure_env,
    env_key,
    find_python,
    package_version,
    package_wheel,
    venv_python,
)
from jupyter_mltrack.models.requirements import requirement_name

__all__ = [
    "DIST",
    "MARKER",
    "PACKAGE",
    "SERVE_EXTRA",
    "EnvironmentBuildError",
    "_locked",
    "_pip",
    "_venv_python",
    "_with_extra",
    "cache_dir",
    "env_key",
    "model_python",
    "model_requirements",
    "package_version",
    "package_wheel",
    "prepare_env",
    "run_in_env",
    "serve_in_virtualenv",
    "subprocess",
]

SERVE_EXTRA = "serve"
_venv_python = venv_python  # the name other modules knew before envcache


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
    base_python, version = find_python(model_python(model_path))
    return ensure_env(
        model_requirements(model_path),
        base_python,
        version,
        extra=SERVE_EXTRA,
        what="the model",
        quiet=quiet,
    )


def run_in_env(env: Path, cli_args: list[str], tracking_uri: str | None = None) -> int:
    """Run ``mltrack <cli_args>`` with the environment's interpreter, replacing this process
    on POSIX (signals then reach the server directly); returns the exit code elsewhere."""
    python = str(venv_python(env))
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
