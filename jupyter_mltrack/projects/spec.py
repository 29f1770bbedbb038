"""The ``MLproject`` file: entry points, typed parameters, command templates, environment.

The format is MLflow's::

    name: tutorial
    python_env: python_env.yaml          # or conda_env: conda.yaml, or docker_env: {...}
    entry_points:
      main:
        parameters:
          alpha: {type: float, default: 0.5}
          data: path                       # type only: required
          epochs: {type: int, default: 3}  # int is ours; MLflow has string, float, path, uri
        command: "python train.py --alpha {alpha} --data {data}"

Values are checked against their type before anything runs; they are substituted into the
command shell-quoted; values for parameters the entry point does not declare are appended as
``--key value`` (MLflow's rule). A project without an MLproject file can run any of its ``.py``
or ``.sh`` files as an entry point, every parameter passed as ``--key value``.
"""

from __future__ import annotations

import os
import re
import shlex
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

import yaml

from jupyter_mltrack.exceptions import InvalidParameterValue, MlflowException

TYPES = ("string", "float", "int", "path", "uri")
_TYPE_ALIASES = {"str": "string", "integer": "int", "double": "float", "number": "float"}
DEFAULT_ENTRY_POINT = "main"
PYTHON_ENV_FILE = "python_env.yaml"
CONDA_ENV_FILE = "conda.yaml"
REQUIREMENTS_FILE = "requirements.txt"
# `{name}` is a parameter; `{{` and `}}` are literal braces (MLflow formats with str.format);
# `${VAR}` is the shell's and other braces (`{a,b}`, `{1..3}`) are left alone
_TEMPLATE = re.compile(r"\{\{|\}\}|(?<!\$)\{([A-Za-z_][\w.-]*)\}")


class ProjectSpecError(InvalidParameterValue):
    """An MLproject file, an entry point or a parameter value is not acceptable."""


class ExecutionException(MlflowException):
    """A project run did not finish successfully (MLflow's name); ``.run`` is the ended run."""

    def __init__(self, message: str, run: Any = None) -> None:
        super().__init__(message)
        self.run = run
        self.run_id = run.info.run_id if run is not None else None


@dataclass(frozen=True)
class Parameter:
    """One declared parameter of an entry point."""

    name: str
    type: str = "string"
    default: str | None = None

    @property
    def required(self) -> bool:
        return self.default is None

    def compute(self, value: Any, base: Path, entry_point: str) -> str:
        """``value`` checked against the type and normalised; relative paths and URIs are
        made absolute against ``base``."""
        text = _text(value)
        where = f"parameter {self.name!r} of entry point {entry_point!r}"
        if self.type == "float":
            try:
                float(text)
            except ValueError:
                raise ProjectSpecError(
                    f"The {where} is a float; {text!r} is not a number."
                ) from None
        elif self.type == "int":
            try:
                int(text)
            except ValueError:
                raise ProjectSpecError(
                    f"The {where} is an int; {text!r} is not a whole number."
                ) from None
        elif self.type == "path":
            return _local_path(text, base, where)
        elif self.type == "uri":
            scheme = urlparse(text).scheme
            if len(scheme) <= 1:  # a local path (or a Windows drive letter)
                return str((base / os.path.expanduser(text)).resolve())
        return text


@dataclass
class EntryPoint:
    """An entry point: its parameters and command template."""

    name: str
    command: str
    parameters: dict[str, Parameter] = field(default_factory=dict)

    def compute_parameters(
        self, given: Mapping[str, Any], cwd: Path, project_dir: Path
    ) -> tuple[dict[str, str], dict[str, str]]:
        """(declared values, extra values): every declared parameter from ``given`` or its
        default, checked; values given for undeclared names pass through as text.

        A relative ``path``/``uri`` value is resolved against ``cwd`` (where the user runs
        ``mltrack run``, as MLflow does) and a relative default against ``project_dir`` (where
        the author meant it). A missing required parameter is refused, naming all of them.
        """
        missing = [n for n, p in self.parameters.items() if p.required and n not in given]
        if missing:
            names = ", ".join(repr(n) for n in missing)
            flags = " ".join(f"-P {n}=VALUE" for n in missing)
            raise ProjectSpecError(
                f"No value given for the required parameter(s) {names} of entry point "
                f"{self.name!r}; pass {flags}."
            )
        declared = {}
        for name, param in self.parameters.items():
            if name in given:
                declared[name] = param.compute(given[name], cwd, self.name)
            else:
                declared[name] = param.compute(param.default, project_dir, self.name)
        extra = {str(k): _text(v) for k, v in given.items() if k not in self.parameters}
        return declared, extra

    def compute_command(self, declared: Mapping[str, str], extra: Mapping[str, str]) -> str:
        """The command with every ``{name}`` replaced by its shell-quoted value, then
        ``--key value`` for each extra parameter."""

        def substitute(match: re.Match[str]) -> str:
            token = match.group(0)
            if token in ("{{", "}}"):
                return token[0]
            name = match.group(1)
            if name not in declared:
                raise ProjectSpecError(
                    f"The command of entry point {self.name!r} uses {{{name}}}, which is not "
                    f"one of its parameters ({', '.join(declared) or 'it has none'}); declare "
                    f"it under parameters, or write {{{{{name}}}}} for literal braces."
                )
            return shlex.quote(declared[name])

        command = _TEMPLATE.sub(substitute, self.command)
        for key, value in extra.items():
            command += f" --{key} {shlex.quote(value)}"
        return command


@dataclass
class Project:
    """A project folder: its MLproject (if any), entry points and environment file."""

    directory: Path
    name: str | None = None
    entry_points: dict[str, EntryPoint] = field(default_factory=dict)
    env_type: str | None = None  # "python", "conda", "docker" or None
    env_file: Path | None = None
    docker_env: dict[str, Any] | None = None
    has_mlproject: bool = False

    def entry_point(self, name: str) -> EntryPoint:
        """The entry point called ``name``: declared in MLproject, else a ``.py`` or ``.sh``
        file of the project (``main`` finds ``main.py`` / ``main.sh`` when there is no
        MLproject)."""
        if name in self.entry_points:
            return self.entry_points[name]
        script = self._script(name)
        if script is None and not self.has_mlproject and name == DEFAULT_ENTRY_POINT:
            script = self._script("main.py") or self._script("main.sh")
        if script is not None:
            rel = script.relative_to(self.directory).as_posix()
            if script.suffix == ".py":
                command = f"python {shlex.quote(rel)}"
            else:
                command = f"{shlex.quote(os.environ.get('SHELL') or 'bash')} {shlex.quote(rel)}"
            return EntryPoint(name=name, command=command)
        declared = ", ".join(repr(n) for n in self.entry_points)
        scripts = sorted(
            p.relative_to(self.directory).as_posix()
            for p in self.directory.iterdir()
            if p.is_file() and p.suffix in (".py", ".sh")
        )
        where = (
            f"MLproject declares {declared or 'no entry points'}"
            if self.has_mlproject
            else "there is no MLproject file"
        )
        raise ProjectSpecError(
            f"Unknown entry point {name!r} in {self.directory}: {where}, and it is not a .py "
            f"or .sh file of the project" + (f" (files: {', '.join(scripts)})." if scripts else ".")
        )

    def _script(self, name: str) -> Path | None:
        if not name.endswith((".py", ".sh")):
            return None
        path = (self.directory / name).resolve()
        if not path.is_relative_to(self.directory.resolve()) or not path.is_file():
            return None
        return path


def load_project(directory: str | os.PathLike[str]) -> Project:
    """Read the project in ``directory`` (its MLproject file, or the conventions without one)."""
    root = Path(directory).resolve()
    if not root.is_dir():
        raise ProjectSpecError(f"No project folder at {root}.")
    found = [p for p in root.iterdir() if p.is_file() and p.name.lower() == "mlproject"]
    if len(found) > 1:
        raise ProjectSpecError(
            f"{root} holds several MLproject files ({', '.join(p.name for p in found)}); keep one."
        )
    if not found:
        project = Project(directory=root)
        if (root / PYTHON_ENV_FILE).is_file():
            project.env_type, project.env_file = "python", root / PYTHON_ENV_FILE
        elif (root / CONDA_ENV_FILE).is_file():
            project.env_type, project.env_file = "conda", root / CONDA_ENV_FILE
        return project
    return _parse(found[0], root)


def _parse(path: Path, root: Path) -> Project:
    try:
        spec = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as err:
        raise ProjectSpecError(f"{path} is not valid YAML: {err}") from None
    if not isinstance(spec, dict):
        raise ProjectSpecError(f"{path} must be a YAML mapping (name, entry_points, ...).")
    project = Project(directory=root, name=spec.get("name"), has_mlproject=True)
    envs = [k for k in ("python_env", "conda_env", "docker_env") if spec.get(k)]
    if len(envs) > 1:
        raise ProjectSpecError(f"{path} names more than one environment ({', '.join(envs)}).")
    if envs == ["docker_env"]:
        project.env_type, project.docker_env = "docker", dict(spec["docker_env"])
    elif envs:
        kind = envs[0]
        env_file = (root / str(spec[kind])).resolve()
        if not env_file.is_file():
            raise ProjectSpecError(f"{path} names {kind}: {spec[kind]}, which does not exist.")
        project.env_type, project.env_file = kind.split("_")[0], env_file
    entry_points = spec.get("entry_points") or {}
    if not isinstance(entry_points, dict):
        raise ProjectSpecError(f"entry_points in {path} must be a mapping of name to entry point.")
    for name, body in entry_points.items():
        project.entry_points[str(name)] = _entry_point(str(name), body, path)
    return project


def _entry_point(name: str, body: Any, path: Path) -> EntryPoint:
    if not isinstance(body, dict) or not isinstance(body.get("command"), str):
        raise ProjectSpecError(f"Entry point {name!r} in {path} needs a command (a string).")
    raw = body.get("parameters") or {}
    if not isinstance(raw, dict):
        raise ProjectSpecError(
            f"The parameters of entry point {name!r} in {path} must be a mapping."
        )
    params = {}
    for pname, pspec in raw.items():
        if isinstance(pspec, dict):
            ptype, default = pspec.get("type", "string"), pspec.get("default")
        else:
            ptype, default = pspec, None
        ptype = _TYPE_ALIASES.get(str(ptype).lower(), str(ptype).lower())
        if ptype not in TYPES:
            raise ProjectSpecError(
                f"Parameter {pname!r} of entry point {name!r} in {path} has type {ptype!r}; "
                f"use one of {', '.join(TYPES)}."
            )
        params[str(pname)] = Parameter(
            str(pname), ptype, None if default is None else _text(default)
        )
    return EntryPoint(name=name, command=body["command"], parameters=params)


def _text(value: Any) -> str:
    """A parameter value as the text a command line gets (``True`` stays ``True``, as MLflow)."""
    return value if isinstance(value, str) else str(value)


def _local_path(text: str, base: Path, where: str) -> str:
    parsed = urlparse(text)
    if parsed.scheme == "file":
        text = unquote(parsed.path)
    elif len(parsed.scheme) > 1:
        raise ProjectSpecError(
            f"The {where} is a path; {text!r} is a {parsed.scheme}: URI, which is not fetched "
            "for you. Download it first, or declare the parameter as type uri."
        )
    path = (base / os.path.expanduser(text)).resolve()
    if not path.exists():
        raise ProjectSpecError(f"The {where} is a path; there is no file or folder at {path}.")
    return str(path)


# -- environment files -------------------------------------------------------------------------
@dataclass
class PythonEnv:
    """What a virtualenv for the project holds: Python version and pip requirement lines."""

    python: str | None = None
    build_dependencies: list[str] = field(default_factory=list)
    dependencies: list[str] = field(default_factory=list)
    source: str = "no environment file"


def python_env(project: Project) -> PythonEnv:
    """The project's environment as pip requirements: from its python_env.yaml, the pip part
    of its conda.yaml, else its requirements.txt, else nothing extra."""
    if project.env_type == "python" and project.env_file is not None:
        return _read_python_env(project.env_file)
    if project.env_type == "conda" and project.env_file is not None:
        return _read_conda_env(project.env_file)
    req = project.directory / REQUIREMENTS_FILE
    if req.is_file():
        return PythonEnv(dependencies=_expand(req), source=REQUIREMENTS_FILE)
    return PythonEnv()


def _read_python_env(path: Path) -> PythonEnv:
    try:
        spec = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as err:
        raise ProjectSpecError(f"{path} is not valid YAML: {err}") from None
    if not isinstance(spec, dict):
        raise ProjectSpecError(f"{path} must be a mapping (python, build_dependencies, ...).")
    env = PythonEnv(python=_major_minor(spec.get("python")), source=path.name)
    env.build_dependencies = [
        d for d in _lines(spec.get("build_dependencies"), path) if d.strip() != "pip"
    ]
    env.dependencies = _expand_lines(_lines(spec.get("dependencies"), path), path.parent)
    return env


def _read_conda_env(path: Path) -> PythonEnv:
    import warnings

    try:
        spec = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as err:
        raise ProjectSpecError(f"{path} is not valid YAML: {err}") from None
    env = PythonEnv(source=path.name)
    ignored = []
    for dep in spec.get("dependencies") or []:
        if isinstance(dep, dict) and "pip" in dep:
            env.dependencies += _expand_lines([str(x) for x in dep["pip"] or []], path.parent)
        elif isinstance(dep, str):
            match = re.match(r"^python\s*=*\s*([\d.]+)", dep.strip())
            if match:
                env.python = _major_minor(match.group(1))
            elif dep.strip().split("=")[0] not in ("pip", "setuptools", "wheel"):
                ignored.append(dep)
    if ignored:
        warnings.warn(
            f"{path.name}: conda packages {', '.join(ignored)} are not installed by "
            "--env-manager virtualenv (only its pip section is); list them under pip: if pip "
            "can install them.",
            UserWarning,
            stacklevel=3,
        )
    return env


def _lines(value: Any, path: Path) -> list[str]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise ProjectSpecError(f"Dependencies in {path} must be a list of requirement lines.")
    return [str(v) for v in value]


def _expand(req_file: Path, seen: frozenset[Path] = frozenset()) -> list[str]:
    """The lines of a requirements file with its ``-r`` includes inlined (so the environment's
    cache key is the content, not the file name)."""
    if req_file in seen:
        return []
    if not req_file.is_file():
        raise ProjectSpecError(f"Requirements file {req_file} does not exist.")
    lines = [
        line.strip()
        for line in req_file.read_text(encoding="utf-8").splitlines()
        if line.strip() and not line.strip().startswith("#")
    ]
    return _expand_lines(lines, req_file.parent, seen | {req_file})


def _expand_lines(lines: list[str], base: Path, seen: frozenset[Path] = frozenset()) -> list[str]:
    out: list[str] = []
    for line in lines:
        match = re.match(r"^(?:-r|--requirement)[\s=]+(.+)$", line.strip())
        if match:
            out += _expand((base / match.group(1).strip()).resolve(), seen)
        else:
            out.append(line.strip())
    return out


def _major_minor(version: Any) -> str | None:
    match = re.match(r"^(\d+)\.(\d+)", str(version or ""))
    return f"{match.group(1)}.{match.group(2)}" if match else None
