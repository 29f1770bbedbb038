"""``mltrack run``: fetch a project, check its parameters, prepare its environment, run its
command as a tracked run and end the run with the command's status.

Everything that can be refused is refused before the run exists: an unknown entry point, a
missing or mistyped parameter, a missing path, conda without conda, a git URI that does not
clone, an environment that does not build. The command then runs with the run exported to it
(``MLTRACK_RUN_ID`` / ``MLFLOW_RUN_ID``, the tracking URI, the experiment), so the
``start_run()`` / ``log_metric(...)`` inside log into that run; its exit code ends the run
FINISHED (0), FAILED (other codes) or KILLED (a signal, Ctrl-C).
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from jupyter_mltrack.entities import Param, Run, RunStatus
from jupyter_mltrack.projects.spec import (
    DEFAULT_ENTRY_POINT,
    ExecutionException,
    Project,
    ProjectSpecError,
    load_project,
    python_env,
)

ENV_MANAGERS = ("local", "virtualenv", "conda")
BACKENDS = ("local",)
# MLflow's project tags, then ours (what `mltrack reproduce` needs to run it again)
SOURCE_TYPE_TAG = "mlflow.source.type"
SOURCE_NAME_TAG = "mlflow.source.name"
GIT_COMMIT_TAG = "mlflow.source.git.commit"
GIT_BRANCH_TAG = "mlflow.source.git.branch"
GIT_REPO_TAG = "mlflow.source.git.repoURL"
ENTRY_POINT_TAG = "mlflow.project.entryPoint"
ENV_TAG = "mlflow.project.env"
BACKEND_TAG = "mlflow.project.backend"
URI_TAG = "mltrack.project.uri"
VERSION_TAG = "mltrack.project.version"
PARAMS_TAG = "mltrack.project.params"
USER_PARAMS_TAG = "mltrack.project.user_params"
COMMAND_TAG = "mltrack.project.command"
NAME_TAG = "mltrack.project.name"
EXIT_CODE_TAG = "mltrack.project.exit_code"
DIRTY_TAG = "mltrack.git.dirty"
_GIT_SCHEMES = ("http", "https", "ssh", "git", "file", "git+ssh", "git+https", "git+file")


class ProjectRun(Run):
    """The ended run of a project; ``run_id``, ``wait()`` and ``get_status()`` as MLflow's
    ``SubmittedRun`` has them, so code written for ``mlflow.projects.run`` keeps working."""

    @property
    def run_id(self) -> str:
        return self.info.run_id

    def wait(self) -> bool:
        """True when the run finished successfully (it already ended: runs are synchronous)."""
        return self.info.status == RunStatus.FINISHED

    def get_status(self) -> str:
        return self.info.status


@dataclass
class Fetched:
    """A project's folder ready to run, and where it came from."""

    directory: Path  # the project folder (the subdirectory when the URI has #subdir)
    uri: str  # what to record: an absolute path or the git URI, with #subdir
    commit: str | None
    repo_url: str | None
    dirty: bool | None


def split_uri(uri: str) -> tuple[str, str]:
    """``PATH_OR_GIT_URI#subdirectory`` -> (base, subdirectory)."""
    base, _, subdir = str(uri).partition("#")
    return base, subdir.strip("/")


def is_git_uri(base: str) -> bool:
    """A URI to clone (``https://``, ``ssh://``, ``git@host:``, ``file://``), not a local path."""
    if base.startswith("git@"):
        return True
    scheme = urlparse(base).scheme
    return len(scheme) > 1 and scheme in _GIT_SCHEMES


def _git(args: list[str], cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    if shutil.which("git") is None:
        raise ProjectSpecError("git is needed to run a project from a git URI; install git.")
    return subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True)


def _git_state(directory: Path) -> tuple[str | None, str | None, bool | None]:
    """(commit, origin URL, dirty) of the repository holding ``directory``, or Nones."""
    if shutil.which("git") is None:
        return None, None, None
    head = _git(["rev-parse", "HEAD"], directory)
    if head.returncode != 0:
        return None, None, None
    origin = _git(["config", "--get", "remote.origin.url"], directory).stdout.strip() or None
    status = _git(["status", "--porcelain", "--", "."], directory)
    dirty = bool(status.stdout.strip()) if status.returncode == 0 else None
    return head.stdout.strip(), origin, dirty


@contextlib.contextmanager
def fetch_project(uri: str, version: str | None = None) -> Iterator[Fetched]:
    """The project at ``uri`` as a local folder, for the time of the ``with`` block.

    A local folder is used in place (its git commit recorded when it is in a repository);
    a git URI, or a local repository with ``version``, is cloned into a temporary folder,
    checked out at ``version`` (branch, tag or commit) and removed afterwards.
    """
    base, subdir = split_uri(uri)
    suffix = f"#{subdir}" if subdir else ""
    if not is_git_uri(base):
        local = Path(base).expanduser().resolve()
        if not local.is_dir():
            raise ProjectSpecError(f"No project folder at {local} (from {uri!r}).")
        if version is None:
            directory = _subdir(local, subdir, uri)
            commit, origin, dirty = _git_state(directory)
            yield Fetched(directory, f"{local}{suffix}", commit, origin, dirty)
            return
        if _git_state(local)[0] is None:
            raise ProjectSpecError(
                f"--version {version!r} needs a git repository; {local} is not one."
            )
        base = str(local)
    tmp = Path(tempfile.mkdtemp(prefix="mltrack-project-"))
    try:
        checkout = tmp / "repo"
        cloned = _git(["clone", "--quiet", base, str(checkout)])
        if cloned.returncode != 0:
            raise ProjectSpecError(f"Could not clone {base}: {_tail(cloned)}")
        if version is not None:
            moved = _git(["checkout", "--quiet", version], checkout)
            if moved.returncode != 0:
                raise ProjectSpecError(
                    f"No version {version!r} (branch, tag or commit) in {base}: {_tail(moved)}"
                )
        commit = _git(["rev-parse", "HEAD"], checkout).stdout.strip() or None
        yield Fetched(_subdir(checkout, subdir, uri), f"{base}{suffix}", commit, base, False)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _subdir(root: Path, subdir: str, uri: str) -> Path:
    if not subdir:
        return root
    path = (root / subdir).resolve()
    if not path.is_relative_to(root.resolve()) or not path.is_dir():
        raise ProjectSpecError(f"No subdirectory {subdir!r} in the project {uri!r}.")
    return path


def _tail(done: subprocess.CompletedProcess[str]) -> str:
    text = (done.stderr or done.stdout or "").strip()
    return "\n".join(text.splitlines()[-5:]) or f"git exited with {done.returncode}"


# -- environments ------------------------------------------------------------------------------
def resolve_env_manager(project: Project, env_manager: str | None) -> str:
    """The environment manager to use: the one asked for, else the project's kind
    (python_env -> virtualenv, conda_env -> conda), else local. Refused: unknown names,
    conda when conda is not installed, docker projects (unless run with local)."""
    if env_manager is not None and env_manager not in ENV_MANAGERS:
        raise ProjectSpecError(
            f"Unknown env manager {env_manager!r}; use one of {', '.join(ENV_MANAGERS)}."
        )
    if project.env_type == "docker" and env_manager != "local":
        raise ProjectSpecError(
            "This project declares a docker_env; docker execution is not supported. Run it in "
            "the current environment with --env-manager local."
        )
    chosen = env_manager or {"python": "virtualenv", "conda": "conda"}.get(
        project.env_type or "", "local"
    )
    if chosen == "conda":
        if shutil.which("conda") is None and shutil.which("mamba") is None:
            raise ProjectSpecError(
                "--env-manager conda needs conda, which is not installed (no conda on PATH). "
                "Use --env-manager virtualenv (the pip part of conda.yaml is installed) or "
                "--env-manager local (the current environment)."
            )
        raise ProjectSpecError(
            "--env-manager conda is not supported yet; use --env-manager virtualenv (the pip "
            "part of conda.yaml is installed) or --env-manager local."
        )
    return chosen


def prepare_environment(project: Project, env_manager: str, quiet: bool = False) -> dict[str, str]:
    """Environment variables that make the command run in the chosen environment: the
    project's cached venv first on PATH (``virtualenv``) or the current interpreter's folder
    (``local``, so ``python`` in a command is the Python running mltrack)."""
    env: dict[str, str] = {}
    if env_manager == "virtualenv":
        from jupyter_mltrack.envcache import ensure_env, find_python, venv_bin

        wanted = python_env(project)
        base_python, version = find_python(wanted.python, "The project asks for")
        venv = ensure_env(
            wanted.dependencies,
            base_python,
            version,
            kind="project",
            build_requirements=wanted.build_dependencies,
            what=f"the project ({wanted.source})",
            quiet=quiet,
        )
        env["VIRTUAL_ENV"] = str(venv)
        env["PATH"] = os.pathsep.join([str(venv_bin(venv)), os.environ.get("PATH", "")])
    else:
        folder = Path(sys.executable).parent
        if not (folder / "python").exists():
            folder = _python_shim()
        env["PATH"] = os.pathsep.join([str(folder), os.environ.get("PATH", "")])
        if sys.prefix != sys.base_prefix:
            env["VIRTUAL_ENV"] = sys.prefix
    return env


def _python_shim() -> Path:
    """A folder whose ``python`` is this interpreter (when it is only called python3.x)."""
    from jupyter_mltrack.envcache import cache_dir

    folder = cache_dir() / "python-shim" / str(abs(hash(sys.executable)))
    folder.mkdir(parents=True, exist_ok=True)
    link = folder / "python"
    if not link.exists():
        with contextlib.suppress(FileExistsError):
            link.symlink_to(sys.executable)
    return folder


# -- running -----------------------------------------------------------------------------------
def run(
    uri: str,
    entry_point: str = DEFAULT_ENTRY_POINT,
    version: str | None = None,
    parameters: Mapping[str, Any] | None = None,
    experiment_name: str | None = None,
    experiment_id: str | None = None,
    backend: str = "local",
    env_manager: str | None = None,
    run_name: str | None = None,
    synchronous: bool = True,
    *,
    tracking_uri: str | None = None,
    quiet: bool = False,
) -> ProjectRun:
    """Run a project's entry point as a tracked run and wait for it (MLflow's
    ``mlflow.projects.run``).

    Parameters
    ----------
    uri
        A project folder or git URI (``https://...``, ``file:///...``, ``git@host:repo``),
        optionally ``#subdirectory``.
    entry_point
        An entry point of the MLproject file, or a ``.py`` / ``.sh`` file of the project.
    version
        Git branch, tag or commit to check out (git URIs and local repositories).
    parameters
        Values by name; checked against the declared types before anything runs. Names the
        entry point does not declare are appended to the command as ``--key value``.
    experiment_name, experiment_id
        Where the run goes (default: the active experiment, ``MLFLOW_EXPERIMENT_ID`` /
        ``MLFLOW_EXPERIMENT_NAME``, else the default experiment); a new name is created.
    backend
        ``local`` (the only one).
    env_manager
        ``local`` (this interpreter), ``virtualenv`` (a cached venv from the project's
        python_env.yaml / requirements.txt) or ``conda`` (refused when conda is absent).
        Default: the kind of environment the project declares, else local.
    run_name
        Name of the run.
    synchronous
        Must be True: runs are waited for.
    tracking_uri
        Store of the run (default: the current tracking URI). Ours.
    quiet
        When False, say on stderr what is being built and run. Ours.

    Returns
    -------
    ProjectRun
        The ended run (FINISHED), read back from the store.

    Raises
    ------
    ProjectSpecError
        Bad project, entry point, parameter or environment; no run was created.
    ExecutionException
        The command failed or was killed; ``.run`` is the ended run (FAILED or KILLED).
    """
    if backend not in BACKENDS:
        raise ProjectSpecError(f"Unknown backend {backend!r}; only 'local' is supported.")
    if not synchronous:
        raise ProjectSpecError("Only synchronous runs are supported (synchronous=True).")
    from jupyter_mltrack.tracking.client import Client

    given = dict(parameters or {})
    if str(uri).endswith(".ipynb") and Path(uri).is_file():
        return _run_notebook_project(
            uri, given, experiment_name, run_name, env_manager, tracking_uri
        )
    cwd = Path.cwd()
    with fetch_project(uri, version) as fetched:
        project = load_project(fetched.directory)
        entry = project.entry_point(entry_point)
        declared, extra = entry.compute_parameters(given, cwd, project.directory)
        command = entry.compute_command(declared, extra)
        manager = resolve_env_manager(project, env_manager)
        notebook = _notebook_command(command, project.directory)
        if notebook is not None:  # an entry point whose command is a notebook
            tags = _tags(fetched, project, entry_point, manager, version, declared, command)
            return _run_notebook_project(
                str(notebook),
                {**declared, **extra},
                experiment_name,
                run_name,
                manager,
                tracking_uri,
                tags=tags,
            )
        client = Client(tracking_uri) if tracking_uri else Client()
        if experiment_name is not None and experiment_id is not None:
            raise ProjectSpecError("Give an experiment name or an experiment id, not both.")
        if experiment_id is not None:  # an unknown id is refused before building anything
            client.get_experiment(str(experiment_id))
        child_env = prepare_environment(project, manager, quiet=quiet)
        exp_id = _experiment(client, experiment_name, experiment_id, tracking_uri is None)
        values = {**declared, **extra}
        tags = _tags(fetched, project, entry_point, manager, version, values, command)
        # what to pass to run it again: defaults re-resolve in the new checkout
        tags[USER_PARAMS_TAG] = json.dumps({k: values[k] for k in given}, sort_keys=True)
        created = client.create_run(exp_id, tags=tags, run_name=run_name)
        run_id = created.info.run_id
        client.log_batch(run_id, params=[Param(k, v) for k, v in values.items()], synchronous=True)
        env = _child_env(client, run_id, exp_id, child_env)
        _say(quiet, f"=== Running {command!r} in run {run_id} ({created.info.run_name}) ===")
        code = _execute(command, project.directory, env)
        if code == 0:
            status = RunStatus.FINISHED
        elif code < 0 or code == 130:
            status = RunStatus.KILLED
        else:
            status = RunStatus.FAILED
        client.set_tag(run_id, EXIT_CODE_TAG, str(code))
        client.set_terminated(run_id, status)
        ended = client.get_run(run_id)
        result = ProjectRun(ended.info, ended.data, ended.inputs)
    if status == RunStatus.FINISHED:
        _say(quiet, f"=== Run {run_id} succeeded ===")
        return result
    if status == RunStatus.KILLED and code in (-signal.SIGINT, 130):
        raise KeyboardInterrupt
    what = f"was killed (signal {-code})" if code < 0 else f"failed (exit code {code})"
    raise ExecutionException(f"Run {run_id} {what}: {command}", run=result)


def _notebook_command(command: str, directory: Path) -> Path | None:
    """The notebook an entry point's command names (``command: train.ipynb``), or None."""
    import shlex

    words = shlex.split(command)
    if len(words) != 1 or not words[0].endswith(".ipynb"):
        return None
    path = (directory / words[0]).resolve()
    if not path.is_file():
        raise ProjectSpecError(f"The entry point's notebook {words[0]!r} is not in the project.")
    return path


def _run_notebook_project(
    path: str,
    parameters: dict[str, Any],
    experiment_name: str | None,
    run_name: str | None,
    env_manager: str | None,
    tracking_uri: str | None,
    tags: dict[str, Any] | None = None,
) -> ProjectRun:
    """``mltrack run notebook.ipynb -P k=v``: the notebook executed headlessly as one run."""
    from jupyter_mltrack.projects.notebook import NotebookRunError, run_notebook
    from jupyter_mltrack.tracking.client import Client

    try:
        ended = run_notebook(
            path,
            parameters,
            experiment_name=experiment_name,
            run_name=run_name,
            env_manager=env_manager or "local",
            tracking_uri=tracking_uri,
            tags=tags,
        )
    except NotebookRunError as err:
        client = Client(tracking_uri) if tracking_uri else Client()
        failed = client.get_run(err.run_id) if err.run_id else None
        raise ExecutionException(err.message, run=failed) from None
    return ProjectRun(ended.info, ended.data, ended.inputs)


def _experiment(
    client: Any, name: str | None, experiment_id: str | None, current_store: bool
) -> str:
    from jupyter_mltrack.exceptions import ResourceAlreadyExists

    if experiment_id is not None:
        return client.get_experiment(str(experiment_id)).experiment_id
    if name is None:
        if current_store:
            from jupyter_mltrack.tracking import fluent

            if fluent._active_experiment_id is not None:
                return fluent._active_experiment_id
        if os.environ.get("MLFLOW_EXPERIMENT_ID"):
            return os.environ["MLFLOW_EXPERIMENT_ID"]
        name = os.environ.get("MLFLOW_EXPERIMENT_NAME")
        if not name:
            return "0"
    found = client.get_experiment_by_name(name)
    if found is None:
        with contextlib.suppress(ResourceAlreadyExists):  # made by another process meanwhile
            return client.create_experiment(name)
        found = client.get_experiment_by_name(name)
    return found.experiment_id


def _tags(
    fetched: Fetched,
    project: Project,
    entry_point: str,
    env_manager: str,
    version: str | None,
    values: Mapping[str, str],
    command: str,
) -> dict[str, str]:
    from jupyter_mltrack.tracking.context import _static_tags

    tags = dict(_static_tags())  # user, Python, platform
    tags.update(
        {
            SOURCE_TYPE_TAG: "PROJECT",
            SOURCE_NAME_TAG: fetched.uri,
            ENTRY_POINT_TAG: entry_point,
            ENV_TAG: env_manager,
            BACKEND_TAG: "local",
            URI_TAG: fetched.uri,
            PARAMS_TAG: json.dumps(dict(values), sort_keys=True),
            COMMAND_TAG: command,
        }
    )
    if project.name:
        tags[NAME_TAG] = str(project.name)
    if fetched.commit:
        tags[GIT_COMMIT_TAG] = fetched.commit
        tags[VERSION_TAG] = fetched.commit
    if fetched.repo_url:
        tags[GIT_REPO_TAG] = fetched.repo_url
    if version:
        tags[GIT_BRANCH_TAG] = version
    if fetched.dirty is not None:
        tags[DIRTY_TAG] = str(fetched.dirty).lower()
    return tags


def _child_env(client: Any, run_id: str, exp_id: str, extra: Mapping[str, str]) -> dict[str, str]:
    from jupyter_mltrack.store import canonical_uri

    env = dict(os.environ)
    env.pop("PYTHONHOME", None)
    env.update(extra)
    uri = canonical_uri(client.tracking_uri)  # the command runs in another folder
    env.update(
        {
            "MLTRACK_RUN_ID": run_id,
            "MLFLOW_RUN_ID": run_id,
            "MLTRACK_TRACKING_URI": uri,
            "MLFLOW_TRACKING_URI": uri,
            "MLFLOW_EXPERIMENT_ID": exp_id,
        }
    )
    env.pop("MLFLOW_EXPERIMENT_NAME", None)
    return env


def _execute(command: str, cwd: Path, env: Mapping[str, str]) -> int:
    """Run ``command`` with bash (sh without it), output streamed; its exit code, negative for
    a signal. Ctrl-C (or SIGTERM to us) is passed on to the command, which gets 10 s to stop."""
    shell = shutil.which("bash") or "/bin/sh"
    sys.stdout.flush()
    sys.stderr.flush()
    relay = not _real_stdout()
    proc = subprocess.Popen(
        [shell, "-c", command],
        cwd=cwd,
        env=dict(env),
        stdout=subprocess.PIPE if relay else None,
        stderr=subprocess.STDOUT if relay else None,
    )
    reader = None
    if relay:  # a notebook: the command's output goes to the cell, not the server's terminal
        reader = threading.Thread(target=_relay, args=(proc.stdout,), daemon=True)
        reader.start()
    with _sigterm_as_interrupt():
        try:
            code = proc.wait()
        except KeyboardInterrupt:
            # in a terminal the command got the same SIGINT; from elsewhere, pass it on
            with contextlib.suppress(ProcessLookupError):
                proc.send_signal(signal.SIGINT)
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
            code = -signal.SIGINT
    if reader is not None:
        reader.join(timeout=5)
    return code


def _real_stdout() -> bool:
    """Whether our stdout is the process's file descriptor 1 (a terminal, a file, a pipe)
    rather than a Python object standing in for it (a Jupyter kernel's stream)."""
    try:
        return isinstance(sys.stdout, io.TextIOWrapper) and sys.stdout.fileno() == 1
    except (AttributeError, OSError, ValueError):
        return False


def _relay(stream: Any) -> None:
    for line in iter(stream.readline, b""):
        sys.stdout.write(line.decode(errors="replace"))
        sys.stdout.flush()
    stream.close()


@contextlib.contextmanager
def _sigterm_as_interrupt() -> Iterator[None]:
    """While the command runs, SIGTERM to us ends it like Ctrl-C (the run is then KILLED
    rather than left RUNNING)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def interrupt(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _say(quiet: bool, message: str) -> None:
    if not quiet:
        print(message, file=sys.stderr, flush=True)
