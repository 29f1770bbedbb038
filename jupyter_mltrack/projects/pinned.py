"""Kernels in cached virtual environments: pinned to the package versions a run captured
(``reproduce --env-manager virtualenv``) or built from a notebook's ``requirements.txt``.

Building and caching are ``jupyter_mltrack.envcache``'s; this module says what goes in: the
requirement lines and ``ipykernel``, so notebooks and cells can run in the environment.
"""

from __future__ import annotations

import sys
from pathlib import Path

from jupyter_mltrack import envcache

KERNEL_REQUIREMENT = "ipykernel"
# import names whose distribution has another name, for when it is not installed here
_DISTRIBUTIONS = {
    "sklearn": "scikit-learn",
    "pytorch_lightning": "pytorch-lightning",
    "jupyter_mltrack": envcache.DIST,
}


def _distribution(import_name: str) -> str:
    import importlib.metadata

    found = importlib.metadata.packages_distributions().get(import_name)
    if found:
        return found[0]
    return _DISTRIBUTIONS.get(import_name, import_name)


def captured_requirements(packages: str) -> list[str]:
    """``name==version`` lines from a run's ``mltrack.packages`` tag, without this package (it
    is installed from the running code). Reads both forms the tag has had: JSON
    ``{"scikit-learn": "1.4.2"}`` (distribution names) and ``numpy=1.26.4, sklearn=1.4.2``
    (import names)."""
    import json

    from jupyter_mltrack.models.requirements import requirement_name

    text = packages.strip()
    pairs: list[tuple[str, str]] = []
    if text.startswith("{"):
        try:
            pairs = [(str(k), str(v)) for k, v in json.loads(text).items()]
        except ValueError:
            pairs = []
    else:
        for item in text.replace("\n", ",").split(","):
            name, sep, version = item.strip().partition("=")
            if sep and name.strip() and version.lstrip("=").strip():
                pairs.append((_distribution(name.strip()), version.lstrip("=").strip()))
    lines = {
        f"{dist}=={version}"
        for dist, version in pairs
        if version and requirement_name(dist) != envcache.DIST
    }
    return sorted(lines)


def requirements_file_python(path: Path) -> str:
    """The interpreter of a cached venv built from ``path`` (a requirements.txt; when missing,
    only ipykernel and this package)."""
    reqs: list[str] = []
    if path.is_file():
        reqs = [
            line.strip()
            for line in path.read_text().splitlines()
            if line.strip() and not line.strip().startswith("#")
        ]
    return pinned_python(reqs, what="the notebook's requirements.txt")


def pinned_python(
    requirements: list[str], what: str = "the recorded packages", quiet: bool = False
) -> str:
    """The interpreter of a cached venv holding ``requirements``, ipykernel and this package,
    built on first use."""
    reqs = sorted({r.strip() for r in requirements if r.strip()})
    version = "{}.{}".format(*sys.version_info[:2])
    base = getattr(sys, "_base_executable", None) or sys.executable
    env = envcache.ensure_env(
        [*reqs, KERNEL_REQUIREMENT], base, version, kind="kernel", what=what, quiet=quiet
    )
    return str(envcache.venv_python(env))
