"""Docker build contexts (``generate-dockerfile``, ``build-docker``) and the no-engine path."""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
import zipfile
from pathlib import Path

import pandas as pd
import pytest

from jupyter_mltrack.serving.docker import docker_engine_error, dockerfile, generate_build_context

INSTRUCTIONS = {
    "FROM", "RUN", "COPY", "ADD", "WORKDIR", "ENV", "EXPOSE", "CMD", "ENTRYPOINT", "ARG",
    "LABEL", "USER", "VOLUME", "HEALTHCHECK", "STOPSIGNAL", "SHELL", "ONBUILD",
}  # fmt: skip


def parse_dockerfile(text: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) per instruction, as Docker reads them: comments and blank
    lines skipped, backslash continuations joined; raises ValueError on anything else."""
    instructions: list[tuple[str, str]] = []
    pending = ""
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not pending and (not line or line.startswith("#")):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        line, pending = pending + line, ""
        word, _, args = line.partition(" ")
        if word.upper() not in INSTRUCTIONS or word != word.upper():
            raise ValueError(f"line {number}: unknown instruction {word!r}")
        if not args.strip():
            raise ValueError(f"line {number}: {word} without arguments")
        instructions.append((word, args.strip()))
    if pending:
        raise ValueError("the file ends inside a continuation")
    first = next((i for i, (word, _) in enumerate(instructions) if word != "ARG"), None)
    if first is None or instructions[first][0] != "FROM":
        raise ValueError("the first instruction (after ARGs) must be FROM")
    for word, args in instructions:
        if word in ("CMD", "ENTRYPOINT") and args.startswith("["):
            form = json.loads(args)  # exec form must be a JSON array of strings
            if not (isinstance(form, list) and all(isinstance(a, str) for a in form)):
                raise ValueError(f"{word} exec form is not a JSON array of strings")
    return instructions


def test_parser_rejects_broken_dockerfiles() -> None:
    with pytest.raises(ValueError, match="FROM"):
        parse_dockerfile("RUN echo hi\nFROM python:3.11-slim\n")
    with pytest.raises(ValueError, match="unknown instruction"):
        parse_dockerfile("FROM python:3.11-slim\nRUNN echo\n")
    with pytest.raises(json.JSONDecodeError):
        parse_dockerfile('FROM python:3.11-slim\nCMD ["mltrack", serve]\n')
    with pytest.raises(ValueError, match="continuation"):
        parse_dockerfile("FROM python:3.11-slim\nRUN a \\\n")
    assert parse_dockerfile("ARG V=3\nFROM python:$V\nRUN a \\\n  && b\n")[-1] == ("RUN", "a  && b")


@pytest.fixture
def registered(tmp_path: Path) -> tuple[str, str]:
    """(tracking URI, models:/ URI) of a registered custom model with a signature."""
    import jupyter_mltrack as mlflow
    import jupyter_mltrack.pyfunc as pyfunc

    class AddOne(pyfunc.PythonModel):
        def predict(self, context, model_input):
            return model_input["x"] + 1

    store = str(tmp_path / "store")
    mlflow.set_tracking_uri(store)
    with mlflow.start_run():
        pyfunc.log_model(
            "model",
            python_model=AddOne(),
            input_example=pd.DataFrame({"x": [1.0, 2.0]}),
            registered_model_name="AddOne",
        )
    return store, "models:/AddOne/1"


def test_generated_context(registered: tuple[str, str], tmp_path: Path) -> None:
    _, uri = registered
    ctx = generate_build_context(uri, tmp_path / "ctx")

    # the model, whole
    from jupyter_mltrack.models.uri import resolve_model_uri

    source = Path(resolve_model_uri(uri).local_path)
    expected = sorted(p.relative_to(source).as_posix() for p in source.rglob("*") if p.is_file())
    model = ctx / "model"
    assert (
        sorted(p.relative_to(model).as_posix() for p in model.rglob("*") if p.is_file()) == expected
    )
    assert {"MLmodel", "python_model.pkl", "requirements.txt"} <= set(expected)

    # its requirements, less ours (installed from the wheel)
    reqs = (ctx / "requirements.txt").read_text().split()
    names = {re.split(r"[=<>!~]", r)[0] for r in reqs}
    assert {"numpy", "pandas", "cloudpickle"} <= names and "jupyter-mltrack" not in names

    # a wheel of this package that pip can install: code, metadata, the mltrack script
    (wheel,) = (ctx / "dist").iterdir()
    assert re.fullmatch(r"jupyter_mltrack-[\w.]+-py3-none-any\.whl", wheel.name)
    with zipfile.ZipFile(wheel) as zf:
        files = set(zf.namelist())
        info = next(n.split("/")[0] for n in files if n.endswith(".dist-info/METADATA"))
        metadata = zf.read(f"{info}/METADATA").decode()
        assert "mltrack = jupyter_mltrack.cli:main" in zf.read(f"{info}/entry_points.txt").decode()
        assert f"{info}/RECORD" in files
    assert {"jupyter_mltrack/__init__.py", "jupyter_mltrack/serving/app.py"} <= files
    assert not any("__pycache__" in f for f in files)
    assert "Name: jupyter-mltrack" in metadata

    # a Dockerfile that parses and serves /opt/model on 8080 from the model's Python
    instructions = parse_dockerfile((ctx / "Dockerfile").read_text())
    by_word: dict[str, list[str]] = {}
    for word, args in instructions:
        by_word.setdefault(word, []).append(args)
    major_minor = "{}.{}".format(*sys.version_info[:2])  # the model was saved by this Python
    assert by_word["FROM"] == [f"python:{major_minor}-slim"]
    assert by_word["EXPOSE"] == ["8080"]
    assert json.loads(by_word["CMD"][0]) == [
        "mltrack", "models", "serve", "-m", "/opt/model", "--host", "0.0.0.0", "-p", "8080",
    ]  # fmt: skip
    runs = " ".join(by_word["RUN"])
    assert "pip install -r /opt/requirements.txt" in runs
    assert f"/opt/dist/{wheel.name}[serve]" in runs
    assert any("mltrack.model.name=" in label and "AddOne" in label for label in by_word["LABEL"])
    for args in by_word["COPY"]:  # every COPY source is in the context
        *sources, _dest = shlex.split(args)
        for src in sources:
            assert (ctx / src).exists(), src


def test_context_refuses_a_non_empty_folder_and_a_non_model(
    registered: tuple[str, str], tmp_path: Path
) -> None:
    from jupyter_mltrack.exceptions import MlflowException

    _, uri = registered
    busy = tmp_path / "busy"
    busy.mkdir()
    (busy / "keep.txt").write_text("mine")
    with pytest.raises(MlflowException, match="not empty"):
        generate_build_context(uri, busy)
    assert [p.name for p in busy.iterdir()] == ["keep.txt"]
    with pytest.raises(MlflowException, match="Not a model directory"):
        generate_build_context(str(tmp_path), tmp_path / "ctx")
    assert not (tmp_path / "ctx").exists()


def test_dockerfile_uses_the_given_python() -> None:
    text = dockerfile("3.10", "jupyter_mltrack-0.1.0-py3-none-any.whl")
    assert parse_dockerfile(text)[0] == ("FROM", "python:3.10-slim")


def _cli(args: list[str], env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "jupyter_mltrack.cli", *args],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, **(env or {})},
    )


def test_generate_dockerfile_cli(registered: tuple[str, str], tmp_path: Path) -> None:
    store, uri = registered
    done = _cli(
        [
            "--tracking-uri",
            store,
            "models",
            "generate-dockerfile",
            "-m",
            uri,
            "-d",
            str(tmp_path / "c"),
        ]
    )
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "c" / "Dockerfile").is_file()
    assert f"docker build -t NAME {tmp_path / 'c'}" in done.stdout


def test_build_docker_without_an_engine(registered: tuple[str, str], tmp_path: Path) -> None:
    store, uri = registered
    # an engine address where nothing listens: the no-engine path even where Docker runs
    no_engine = {"DOCKER_HOST": f"unix://{tmp_path}/no-docker.sock"}
    done = _cli(
        ["--tracking-uri", store, "models", "build-docker", "-m", uri, "-n", "addone:1"], no_engine
    )
    assert done.returncode == 1
    assert "No Docker engine is reachable" in done.stderr and "Traceback" not in done.stderr
    match = re.search(r"docker build -t addone:1 (\S+)", done.stderr)
    assert match, done.stderr
    ctx = Path(match.group(1))
    try:
        assert f"The build context is ready in {ctx}" in done.stderr
        assert {p.name for p in ctx.iterdir()} >= {
            "Dockerfile",
            "model",
            "dist",
            "requirements.txt",
        }
        parse_dockerfile((ctx / "Dockerfile").read_text())
    finally:
        import shutil

        shutil.rmtree(ctx, ignore_errors=True)

    # with -d the context goes where asked
    done = _cli(
        [
            "--tracking-uri",
            store,
            "models",
            "build-docker",
            "-m",
            uri,
            "-n",
            "addone:1",
            "-d",
            str(tmp_path / "kept"),
        ],
        no_engine,
    )
    assert done.returncode == 1 and f"docker build -t addone:1 {tmp_path / 'kept'}" in done.stderr
    assert (tmp_path / "kept" / "Dockerfile").is_file()


def test_docker_not_installed() -> None:
    assert "is not installed" in (docker_engine_error("no-such-docker-client") or "")
