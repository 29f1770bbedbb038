"""``--env-manager virtualenv``: a venv built from the model's requirements, cached, and a real
server started from it.

The model needs only numpy, pandas and cloudpickle (pinned to what runs the tests, so pip takes
them from its cache or the index quickly); one environment is built for the whole module, in a
cache folder of its own, and every test after the first reuses it.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest

from jupyter_mltrack.serving import envs

pytestmark = pytest.mark.timeout(600)


@pytest.fixture(scope="module")
def cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("env-cache")


@pytest.fixture(autouse=True)
def _env_cache(cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MLTRACK_ENV_CACHE", str(cache))


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    import jupyter_mltrack.pyfunc as pyfunc

    class Triple(pyfunc.PythonModel):
        def predict(self, context, model_input):
            return model_input["x"] * 3

    path = tmp_path_factory.mktemp("tiny") / "model"
    pyfunc.save_model(str(path), python_model=Triple(), input_example=pd.DataFrame({"x": [1.0]}))
    return path


@pytest.fixture(scope="module")
def built(tiny_model: Path, cache: Path) -> tuple[Path, float]:
    """The model's environment, built cold once for the module: (env, seconds)."""
    os.environ["MLTRACK_ENV_CACHE"] = str(cache)  # module fixtures run before monkeypatch
    try:
        started = time.perf_counter()
        env = envs.prepare_env(str(tiny_model))
        return env, time.perf_counter() - started
    finally:
        del os.environ["MLTRACK_ENV_CACHE"]


def test_env_is_built_from_the_model_requirements(
    built: tuple[Path, float], tiny_model: Path, cache: Path, tmp_path: Path
) -> None:
    env, seconds = built
    print(f"\ncold venv build: {seconds:.1f}s")
    assert env.parent == cache
    marker = json.loads((env / envs.MARKER).read_text())
    assert marker["requirements"] == envs.model_requirements(str(tiny_model))
    assert {r.split("==")[0] for r in marker["requirements"]} == {"numpy", "pandas", "cloudpickle"}
    # the env's own copy of jupyter_mltrack (cwd elsewhere than the source tree) loads and
    # scores the model
    script = (
        "import jupyter_mltrack, jupyter_mltrack.pyfunc as pf, pandas as pd, starlette, uvicorn;"
        "print(jupyter_mltrack.__file__);"
        f"print(pf.load_model({str(tiny_model)!r}).predict(pd.DataFrame({{'x': [2.0]}})).tolist())"
    )
    done = subprocess.run(
        [str(env / "bin" / "python"), "-c", script],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    where, result = done.stdout.split()
    assert Path(where).is_relative_to(env)
    assert result == "[6.0]"
    assert (env / "bin" / "mltrack").is_file()


def test_second_prepare_reuses_the_cache_without_pip(
    built: tuple[Path, float], tiny_model: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    env, cold = built
    marker = (env / envs.MARKER).read_text()

    def no_subprocess(*args: object, **kwargs: object) -> None:
        raise AssertionError(f"a process was started: {args}")

    monkeypatch.setattr(envs.subprocess, "run", no_subprocess)
    started = time.perf_counter()
    again = envs.prepare_env(str(tiny_model))
    warm = time.perf_counter() - started
    print(f"\nwarm prepare: {warm:.2f}s (cold {cold:.1f}s)")
    assert again == env
    assert (env / envs.MARKER).read_text() == marker
    assert warm < 2.0 and warm < cold / 5


def test_same_requirements_share_an_env(built: tuple[Path, float], tmp_path: Path) -> None:
    import jupyter_mltrack.pyfunc as pyfunc

    class Other(pyfunc.PythonModel):
        def predict(self, context, model_input):
            return model_input

    pyfunc.save_model(str(tmp_path / "other"), python_model=Other())
    assert envs.prepare_env(str(tmp_path / "other")) == built[0]


def test_a_changed_package_is_swapped_in_without_a_rebuild(
    built: tuple[Path, float], tiny_model: Path
) -> None:
    env, _ = built
    marker_file = env / envs.MARKER
    state = json.loads(marker_file.read_text())
    state["wheel"] = "stale"
    marker_file.write_text(json.dumps(state))
    numpy_dir = next((env / "lib").glob("python*/site-packages/numpy"))
    before = numpy_dir.stat().st_mtime_ns
    assert envs.prepare_env(str(tiny_model)) == env
    assert json.loads(marker_file.read_text())["wheel"] == envs.package_wheel().parent.name
    assert numpy_dir.stat().st_mtime_ns == before  # the rest was not reinstalled


def test_bad_requirement_is_named_and_nothing_is_left(tmp_path: Path, cache: Path) -> None:
    import jupyter_mltrack.pyfunc as pyfunc

    class Nothing(pyfunc.PythonModel):
        def predict(self, context, model_input):
            return model_input

    pyfunc.save_model(
        str(tmp_path / "m"), python_model=Nothing(), pip_requirements=["numpy==0.0.1"]
    )
    with pytest.raises(envs.EnvironmentBuildError, match=r"requirement 'numpy==0\.0\.1'"):
        envs.prepare_env(str(tmp_path / "m"))
    key = envs.env_key(
        envs.model_requirements(str(tmp_path / "m")), "{}.{}".format(*sys.version_info[:2])
    )
    assert not (cache / key).exists()


def test_prepare_env_cli(built: tuple[Path, float], tiny_model: Path) -> None:
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "jupyter_mltrack.cli",
            "models",
            "prepare-env",
            "-m",
            str(tiny_model),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ},
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == str(built[0])


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def venv_server(
    built: tuple[Path, float], tiny_model: Path, tmp_path: Path
) -> Iterator[tuple[str, int]]:
    """``mltrack models serve --env-manager virtualenv`` as a real process."""
    port = _free_port()
    log = open(tmp_path / "server.log", "w+")  # noqa: SIM115 - closed after the server stops
    proc = subprocess.Popen(
        [
            *(sys.executable, "-m", "jupyter_mltrack.cli", "models", "serve"),
            *("-m", str(tiny_model), "-p", str(port), "--env-manager", "virtualenv"),
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
        cwd=tmp_path,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                with urllib.request.urlopen(f"{url}/ping", timeout=2) as resp:
                    if resp.status == 200:
                        break
            except OSError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                log.seek(0)
                pytest.fail(f"server did not start: {log.read()}")
            time.sleep(0.2)
        yield url, proc.pid
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


def test_server_runs_from_the_virtualenv(
    venv_server: tuple[str, int], built: tuple[Path, float]
) -> None:
    url, pid = venv_server
    # the CLI replaced itself with the env's interpreter running `serve --env-manager local`
    cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().decode().split("\0")
    assert cmdline[0] == str(built[0] / "bin" / "python")
    assert cmdline[cmdline.index("--env-manager") + 1] == "local"
    body = json.dumps({"dataframe_records": [{"x": 1.0}, {"x": 2.5}]}).encode()
    request = urllib.request.Request(
        f"{url}/invocations", data=body, headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=10) as resp:
        assert json.loads(resp.read()) == {"predictions": [3.0, 7.5]}


def test_predict_in_the_virtualenv(
    built: tuple[Path, float], tiny_model: Path, tmp_path: Path
) -> None:
    pd.DataFrame({"x": [1.0, 2.0, 4.0]}).to_csv(tmp_path / "in.csv", index=False)
    done = subprocess.run(
        [
            *(
                sys.executable,
                "-m",
                "jupyter_mltrack.cli",
                "models",
                "predict",
                "-m",
                str(tiny_model),
            ),
            *("-i", "in.csv", "-o", "out.json", "--env-manager", "virtualenv"),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr
    assert json.loads((tmp_path / "out.json").read_text()) == [3.0, 6.0, 12.0]


def test_extra_requirements_with_markers_keep_valid_metadata():
    from packaging.requirements import Requirement

    from jupyter_mltrack.serving.envs import _with_extra

    plain = Requirement(_with_extra("starlette>=0.37", "serve"))
    marked = Requirement(_with_extra("uvloop>=0.19; sys_platform != 'win32'", "serve"))
    assert plain.marker.evaluate({"extra": "serve"}) and not plain.marker.evaluate({"extra": ""})
    assert str(marked.marker) == 'sys_platform != "win32" and extra == "serve"'
