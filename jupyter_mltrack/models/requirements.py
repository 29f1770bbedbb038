"""A model's environment: ``requirements.txt``, ``python_env.yaml`` and ``conda.yaml``.

Each flavor names the distributions its models need; their versions are read from the modules
already imported (``sklearn.__version__``) or from installed metadata, never by scanning the
environment or starting a subprocess (MLflow spends seconds there), so this costs milliseconds.
"""

from __future__ import annotations

import functools
import importlib.metadata
import os
import re
import sys
from collections.abc import Iterable
from typing import Any

from jupyter_mltrack.exceptions import InvalidParameterValue

REQUIREMENTS_FILE = "requirements.txt"
PYTHON_ENV_FILE = "python_env.yaml"
CONDA_ENV_FILE = "conda.yaml"
SELF = "jupyter-mltrack"

# distribution -> the module whose __version__ gives its version without a metadata lookup
_MODULES = {
    "scikit-learn": "sklearn",
    "numpy": "numpy",
    "scipy": "scipy",
    "pandas": "pandas",
    "cloudpickle": "cloudpickle",
    "skops": "skops",
    SELF: "jupyter_mltrack",
    "pip": "pip",
    "setuptools": "setuptools",
}
_NAME = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)")


def python_version() -> str:
    return "{}.{}.{}".format(*sys.version_info[:3])


@functools.cache
def package_version(dist: str) -> str | None:
    """The installed version of distribution ``dist`` (local labels like ``+cpu`` dropped)."""
    module = sys.modules.get(_MODULES.get(dist, dist.replace("-", "_")))
    version = getattr(module, "__version__", None)
    if not isinstance(version, str):
        try:
            version = importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            return None
    return version.split("+")[0]


def pinned(dists: Iterable[str]) -> list[str]:
    """``name==version`` for each installed distribution (just the name when not installed)."""
    out = []
    for dist in dists:
        version = package_version(dist)
        out.append(f"{dist}=={version}" if version else dist)
    return out


def package_versions(dists: Iterable[str]) -> dict[str, str]:
    """``{name: version}`` for the installed ones of ``dists`` (recorded in ``MLmodel``)."""
    return {d: v for d in dists if (v := package_version(d))}


def requirement_name(line: str) -> str:
    """The normalized distribution name of a requirement line (``Scikit_Learn>=1`` -> ``scikit-learn``)."""
    match = _NAME.match(line)
    return re.sub(r"[-_.]+", "-", match.group(1)).lower() if match else line.strip()


def _read_requirements(value: str | os.PathLike[str] | Iterable[str], label: str) -> list[str]:
    if isinstance(value, (str, os.PathLike)):
        path = os.fspath(value)
        if not os.path.isfile(path):
            raise InvalidParameterValue(
                f"{label} must be a list of requirements or the path of a requirements file; "
                f"{path!r} is not a file."
            )
        with open(path, encoding="utf-8") as fh:
            lines = fh.read().splitlines()
    else:
        lines = [str(v) for v in value]
    return [line.strip() for line in lines if line.strip() and not line.strip().startswith("#")]


def merge_requirements(base: list[str], extra: list[str]) -> list[str]:
    """``base`` with ``extra`` appended; a later line for the same distribution replaces the earlier."""
    by_name: dict[str, str] = {}
    for line in [*base, *extra]:
        name = requirement_name(line)
        by_name.pop(name, None)
        by_name[name] = line
    return list(by_name.values())


def _load_conda_env(conda_env: Any) -> dict[str, Any]:
    if isinstance(conda_env, dict):
        return conda_env
    import yaml

    path = os.fspath(conda_env)
    if not os.path.isfile(path):
        raise InvalidParameterValue(
            f"conda_env must be a dict or a YAML file; {path!r} is not a file."
        )
    with open(path, encoding="utf-8") as fh:
        loaded = yaml.safe_load(fh)
    if not isinstance(loaded, dict):
        raise InvalidParameterValue(f"conda_env file {path!r} does not hold a YAML mapping.")
    return loaded


def _from_conda(env: dict[str, Any]) -> tuple[list[str], str | None]:
    """pip requirements and python version stated by a conda environment.

    Conda packages other than python and pip are translated (``pandas=2.0.0`` ->
    ``pandas==2.0.0``): the common ML packages have the same names on both sides.
    """
    reqs: list[str] = []
    python = None
    for dep in env.get("dependencies") or []:
        if isinstance(dep, dict):
            reqs.extend(str(r) for r in dep.get("pip") or [])
            continue
        text = str(dep).strip()
        name = requirement_name(text)
        if name == "python":
            python = re.sub(r"^python\s*=*\s*", "", text) or None
        elif name != "pip":
            reqs.append(re.sub(r"^([^=<>!~\s]+)\s*=(?!=)", r"\1==", text))
    return reqs, python


def resolve_environment(
    default_requirements: list[str],
    pip_requirements: Any = None,
    extra_pip_requirements: Any = None,
    conda_env: Any = None,
) -> tuple[list[str], dict[str, Any], str]:
    """The model's (requirements, conda env, python version) from a flavor's defaults and the
    user's ``pip_requirements`` (replace), ``extra_pip_requirements`` (add) or ``conda_env``
    (the environment as given, as MLflow does)."""
    given = [
        n
        for n, v in (
            ("conda_env", conda_env),
            ("pip_requirements", pip_requirements),
            ("extra_pip_requirements", extra_pip_requirements),
        )
        if v is not None
    ]
    if len(given) > 1:
        raise InvalidParameterValue(
            f"Give at most one of conda_env, pip_requirements and extra_pip_requirements "
            f"(got {' and '.join(given)})."
        )
    python = python_version()
    conda: dict[str, Any] | None = None
    if conda_env is not None:
        conda = _load_conda_env(conda_env)
        reqs, conda_python = _from_conda(conda)
        python = conda_python or python
    elif pip_requirements is not None:
        reqs = _read_requirements(pip_requirements, "pip_requirements")
    elif extra_pip_requirements is not None:
        extra = _read_requirements(extra_pip_requirements, "extra_pip_requirements")
        reqs = merge_requirements(default_requirements, extra)
    else:
        reqs = list(default_requirements)
    if not any(requirement_name(r) == SELF for r in reqs):
        # the loader lives in jupyter_mltrack: without it the model cannot be loaded
        reqs = [*pinned([SELF]), *reqs]
    reqs = merge_requirements([], reqs)
    if conda is None:
        pip = package_version("pip")
        conda = {
            "name": "mltrack-env",
            "channels": ["conda-forge"],
            "dependencies": [f"python={python}", f"pip<={pip}" if pip else "pip", {"pip": reqs}],
        }
    return reqs, conda, python


def write_environment(
    path: str, requirements: list[str], conda_env: dict[str, Any], python: str
) -> dict[str, str]:
    """Write the three environment files into ``path``; return the ``env`` entry for MLmodel."""
    import yaml

    dumper = getattr(yaml, "CSafeDumper", yaml.SafeDumper)
    with open(os.path.join(path, REQUIREMENTS_FILE), "w", encoding="utf-8") as fh:
        fh.write("\n".join(requirements) + "\n")
    build = [r for r in pinned(["pip", "setuptools"])] + ["wheel"]
    python_env = {
        "python": python,
        "build_dependencies": build,
        "dependencies": [f"-r {REQUIREMENTS_FILE}"],
    }
    with open(os.path.join(path, PYTHON_ENV_FILE), "w", encoding="utf-8") as fh:
        yaml.dump(python_env, fh, Dumper=dumper, sort_keys=False, default_flow_style=False)
    with open(os.path.join(path, CONDA_ENV_FILE), "w", encoding="utf-8") as fh:
        yaml.dump(conda_env, fh, Dumper=dumper, sort_keys=False, default_flow_style=False)
    return {"conda": CONDA_ENV_FILE, "virtualenv": PYTHON_ENV_FILE}


def read_requirements_file(model_dir: str) -> list[str]:
    """The requirement lines of a saved model (empty when it has no requirements.txt)."""
    path = os.path.join(model_dir, REQUIREMENTS_FILE)
    if not os.path.isfile(path):
        return []
    return _read_requirements(path, REQUIREMENTS_FILE)
