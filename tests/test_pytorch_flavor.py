"""The PyTorch flavor: every format round-trips, pyfunc scores DataFrames and arrays against
the signature, a notebook's class loads in another process, a real scoring server answers, and
bad input gets a clear error. Tiny models on the CPU."""

from __future__ import annotations

import json
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
import yaml
from torch import nn

from jupyter_mltrack.exceptions import InvalidParameterValue

torch.set_num_threads(1)
# TorchScript is deprecated in PyTorch 2.x; these tests still script modules on purpose
pytestmark = pytest.mark.filterwarnings(r"ignore:`torch\.jit\.\w+` is deprecated")


class TinyNet(nn.Module):
    """Needs constructor arguments: rebuilding it from its state dict needs them too."""

    def __init__(self, n_in: int, hidden: int = 8) -> None:
        super().__init__()
        self.fc1 = nn.Linear(n_in, hidden)
        self.fc2 = nn.Linear(hidden, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(torch.relu(self.fc1(x)))


class NoArgsNet(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.linear = nn.Linear(4, 2)
        self.register_buffer("scale", torch.ones(2))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear(x) * self.scale


def _train(model: nn.Module, X: np.ndarray, steps: int = 30) -> nn.Module:
    target = torch.from_numpy(X).sum(1, keepdim=True)
    optimizer = torch.optim.Adam(model.parameters(), lr=0.05)
    for _ in range(steps):
        loss = nn.functional.mse_loss(model(torch.from_numpy(X)), target)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return model.eval()


@pytest.fixture(scope="module")
def X() -> np.ndarray:
    return np.random.default_rng(0).normal(size=(12, 4)).astype(np.float32)


@pytest.fixture(scope="module")
def net(X: np.ndarray) -> TinyNet:
    torch.manual_seed(0)
    return _train(TinyNet(4, hidden=6), X)


@pytest.fixture
def mlf(tmp_path: Path):
    """The package on an embedded SQLite store."""
    import jupyter_mltrack as mlflow

    mlflow.set_tracking_uri(str(tmp_path / "store"))
    return mlflow


def _out(model: nn.Module, X: np.ndarray) -> np.ndarray:
    with torch.no_grad():
        return model(torch.from_numpy(X)).numpy()


def _flavor(path: str | Path) -> dict:
    return yaml.safe_load((Path(path) / "MLmodel").read_text())["flavors"]["pytorch"]


def _local(model_uri: str) -> Path:
    from jupyter_mltrack.models.uri import resolve_model_uri

    return Path(resolve_model_uri(model_uri).local_path)


# -- formats ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("fmt", ["state_dict", "pickle", "torchscript", "pt2"])
def test_each_format_round_trips(mlf, net, X, fmt):
    extra = {"init_kwargs": {"n_in": 4, "hidden": 6}} if fmt == "state_dict" else {}
    with mlf.start_run():
        info = mlf.pytorch.log_model(
            net, name="model", serialization_format=fmt, input_example=X[:3], **extra
        )
    conf = _flavor(_local(info.model_uri))
    assert conf["serialization_format"] == fmt
    assert conf["pytorch_version"] == torch.__version__
    loaded = mlf.pytorch.load_model(info.model_uri)
    assert not loaded.training
    assert all(p.device.type == "cpu" for p in loaded.parameters())
    np.testing.assert_allclose(_out(loaded, X), _out(net, X), rtol=1e-6, atol=1e-6)
    predicted = mlf.pyfunc.load_model(info.model_uri).predict(X.astype(np.float64))
    assert isinstance(predicted, np.ndarray) and predicted.dtype == np.float32
    np.testing.assert_allclose(predicted, _out(net, X), rtol=1e-6, atol=1e-6)


def test_state_dict_format_keeps_weights_apart_from_code(mlf, net, X, tmp_path):
    path = tmp_path / "tiny"
    rng_before = torch.get_rng_state()
    mlf.pytorch.save_model(net, path, init_kwargs={"n_in": 4, "hidden": 6})
    assert torch.equal(torch.get_rng_state(), rng_before)  # the rebuild check used no RNG
    conf = _flavor(path)
    assert conf["model_class"].endswith("TinyNet")
    assert conf["init_kwargs"] == {"n_in": 4, "hidden": 6}
    # the weights are plain tensors: readable with weights_only=True
    weights = torch.load(path / "data" / "state_dict.pth", weights_only=True)
    assert set(weights) == {"fc1.weight", "fc1.bias", "fc2.weight", "fc2.bias"}
    forward = TinyNet.__dict__["forward"]
    loaded = mlf.pytorch.load_model(str(path), device="cpu")
    assert type(loaded).__name__ == "TinyNet" and loaded.fc1.out_features == 6
    # loading in the process that saved it leaves the live class alone (its own code is used)
    mlf.pytorch.save_model(net, tmp_path / "whole", serialization_format="pickle")
    mlf.pytorch.load_model(str(tmp_path / "whole"))
    assert TinyNet.__dict__["forward"] is forward
    torch.jit.script(TinyNet(4))  # needs the class's source: still there


def test_default_format_is_chosen_per_model(mlf, net, X, tmp_path):
    torch.manual_seed(1)
    cases = {
        "no_args": (NoArgsNet(), "state_dict"),  # rebuildable without arguments
        "needs_args": (net, "pickle"),  # constructor arguments unknown: the whole module
        "sequential": (nn.Sequential(nn.Linear(4, 3), nn.Tanh()), "pickle"),
        "scripted": (torch.jit.script(NoArgsNet()), "torchscript"),
    }
    for name, (model, expected) in cases.items():
        mlf.pytorch.save_model(model, tmp_path / name)
        assert _flavor(tmp_path / name)["serialization_format"] == expected, name
        loaded = mlf.pytorch.load_model(str(tmp_path / name))
        np.testing.assert_allclose(_out(loaded, X), _out(model, X), rtol=1e-6, atol=1e-6)


class VarArgsNet(nn.Module):
    """``forward(*xs)`` cannot be scripted; it can be traced."""

    def __init__(self) -> None:
        super().__init__()
        self.linear = nn.Linear(4, 2)

    def forward(self, *xs: torch.Tensor) -> torch.Tensor:
        return self.linear(xs[0])


def test_torchscript_traces_what_it_cannot_script(mlf, X, tmp_path):
    model = VarArgsNet()
    with pytest.raises(InvalidParameterValue, match=r"cannot compile VarArgsNet.*input_example"):
        mlf.pytorch.save_model(model, tmp_path / "a", serialization_format="torchscript")
    mlf.pytorch.save_model(
        model, tmp_path / "b", serialization_format="torchscript", input_example=X[:2]
    )
    loaded = mlf.pytorch.load_model(str(tmp_path / "b"))
    np.testing.assert_allclose(_out(loaded, X), _out(model, X), rtol=1e-6)


def test_compiled_modules_are_saved_as_the_module(mlf, tmp_path, X):
    model = NoArgsNet()
    wrapped = torch.compile(model)  # not run: no compilation happens
    mlf.pytorch.save_model(wrapped, tmp_path / "compiled")
    assert _flavor(tmp_path / "compiled")["model_class"].endswith("NoArgsNet")


def test_requirements_pin_torch_without_the_local_build_label(mlf, net, tmp_path):
    reqs = mlf.pytorch.get_default_pip_requirements()
    assert reqs[0] == f"torch=={torch.__version__.split('+')[0]}"
    assert all("+" not in r for r in reqs)
    mlf.pytorch.save_model(net, tmp_path / "m", serialization_format="torchscript")
    lines = (tmp_path / "m" / "requirements.txt").read_text().split()
    assert f"torch=={torch.__version__.split('+')[0]}" in lines
    assert not any(line.startswith("cloudpickle") for line in lines)  # TorchScript needs none
    conda_pip = mlf.pytorch.get_default_conda_env()["dependencies"][-1]["pip"]
    assert reqs[0] in conda_pip


MLFLOW_MLMODEL = """flavors:
  python_function:
    code: null
    data: data
    env:
      conda: conda.yaml
      virtualenv: python_env.yaml
    loader_module: mlflow.pytorch
    model_config:
      device: null
    pickle_module_name: mlflow.pytorch.pickle_module
    python_version: 3.11.7
  pytorch:
    code: null
    model_data: data
    pytorch_version: 2.13.0+cpu
mlflow_version: 3.17.2
model_uuid: 0b5f9cfd1e5c4a4f9d3c2c0f6b1e8a11
utc_time_created: '2026-11-26 04:18:50.518776'
"""


def test_loads_a_model_saved_by_mlflow(mlf, net, X, tmp_path):
    """MLflow's layout: data/model.pth written by torch.save with its cloudpickle module."""
    import cloudpickle

    folder = tmp_path / "mlflow_model"
    (folder / "data").mkdir(parents=True)
    torch.save(net, folder / "data" / "model.pth", pickle_module=cloudpickle)
    (folder / "data" / "pickle_module_info.txt").write_text("mlflow.pytorch.pickle_module")
    (folder / "MLmodel").write_text(MLFLOW_MLMODEL)
    loaded = mlf.pytorch.load_model(str(folder))
    np.testing.assert_allclose(_out(loaded, X), _out(net, X), rtol=1e-6)
    predicted = mlf.pyfunc.load_model(str(folder)).predict(X)
    np.testing.assert_allclose(predicted, _out(net, X), rtol=1e-6)


# -- pyfunc -----------------------------------------------------------------------------------------
def test_pyfunc_scores_dataframes_and_arrays_against_the_signature(mlf, net, X):
    frame = pd.DataFrame(X, columns=["a", "b", "c", "d"], index=range(100, 112))
    with mlf.start_run():
        by_columns = mlf.pytorch.log_model(net, name="columns", input_example=frame.head(3))
        by_tensor = mlf.pytorch.log_model(net, name="tensor", input_example=X[:3])
        unsigned = mlf.pytorch.log_model(net, name="plain")
    expected = _out(net, X)

    model = mlf.pyfunc.load_model(by_columns.model_uri)
    out = model.predict(frame)
    assert isinstance(out, pd.DataFrame) and list(out.index) == list(frame.index)
    np.testing.assert_allclose(out.to_numpy(), expected, rtol=1e-6)
    with pytest.raises(InvalidParameterValue, match=r"missing 1 column.*'d'"):
        model.predict(frame.drop(columns="d"))

    tensor_model = mlf.pyfunc.load_model(by_tensor.model_uri)
    np.testing.assert_allclose(tensor_model.predict(X), expected, rtol=1e-6)
    with pytest.raises(InvalidParameterValue, match=r"expects \[-1, 4\].*has \[12, 3\]"):
        tensor_model.predict(X[:, :3])
    assert tensor_model.get_raw_model().__class__.__name__ == "TinyNet"

    plain = mlf.pyfunc.load_model(unsigned.model_uri)
    out = plain.predict(pd.DataFrame(X.astype(np.float64)))  # float64 frame -> float32 input
    assert isinstance(out, pd.DataFrame)
    np.testing.assert_allclose(out.to_numpy(), expected, rtol=1e-6)
    with pytest.raises(
        InvalidParameterValue, match=r"could not score the input \(tensor \[12, 3\]"
    ):
        plain.predict(X[:, :3])
    with pytest.raises(InvalidParameterValue, match="not numbers"):
        plain.predict(np.array([["a", "b", "c", "d"]], dtype=object))


def test_pyfunc_predicts_on_the_cpu_unless_model_config_says_otherwise(mlf, net, X):
    with mlf.start_run():
        info = mlf.pytorch.log_model(net, name="m", input_example=X[:3])
    on_cpu = mlf.pyfunc.load_model(info.model_uri)
    assert next(on_cpu.get_raw_model().parameters()).device.type == "cpu"
    # no GPU here: the meta device shows the model is put where model_config says
    elsewhere = mlf.pyfunc.load_model(info.model_uri, model_config={"device": "meta"})
    assert next(elsewhere.get_raw_model().parameters()).device.type == "meta"
    assert mlf.pytorch.load_model(info.model_uri, device="meta").training is False
    with pytest.raises(InvalidParameterValue, match=r"'bogus' is not a torch device"):
        mlf.pyfunc.load_model(info.model_uri, model_config={"device": "bogus"})
    if not torch.cuda.is_available():
        with pytest.raises(InvalidParameterValue, match=r"no CUDA device.*on 'cpu' instead"):
            mlf.pytorch.load_model(info.model_uri, device="cuda")


# -- another process --------------------------------------------------------------------------------
SAVE_IN_MAIN = """
import sys, torch
from torch import nn
import jupyter_mltrack as mlflow

class NotebookNet(nn.Module):          # defined in __main__, as in a notebook
    def __init__(self, width):
        super().__init__()
        self.layer = nn.Linear(4, width)
    def forward(self, x):
        return torch.tanh(self.layer(x)).sum(1, keepdim=True)

torch.manual_seed(3)
model = NotebookNet(width=5)
mlflow.pytorch.save_model(model, sys.argv[1] + "/main_state", init_kwargs={"width": 5})
mlflow.pytorch.save_model(model, sys.argv[1] + "/main_pickle", serialization_format="pickle")
"""

MODULE_SOURCE = """
import torch
from torch import nn

SCALE = 3.0

class Block(nn.Module):
    def __init__(self, n):
        super().__init__()
        self.inner = nn.Linear(n, n)
    def forward(self, x):
        return torch.relu(self.inner(x)) * SCALE

class ScratchNet(nn.Module):
    def __init__(self, n=4):
        super().__init__()
        self.block = Block(n)
        self.head = nn.Linear(n, 2)
    def forward(self, x):
        return self.head(self.block(x))
"""

LOAD_ALL = """
import json, sys, numpy as np, torch
import jupyter_mltrack as mlflow
assert "scratch_net_module" not in sys.modules
x = np.ones((2, 4), dtype=np.float32)
out = {}
for name in sys.argv[2:]:
    model = mlflow.pytorch.load_model(sys.argv[1] + "/" + name)
    out[name] = [type(model).__name__, mlflow.pyfunc.load_model(sys.argv[1] + "/" + name).predict(x).tolist()]
print(json.dumps(out))
"""


def test_notebook_and_deleted_module_classes_load_in_another_process(mlf, tmp_path, monkeypatch):
    models = tmp_path / "models"
    models.mkdir()
    script = tmp_path / "notebook.py"
    script.write_text(SAVE_IN_MAIN)
    done = subprocess.run(
        [sys.executable, str(script), str(models)], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    # a class from a .py file beside the notebook, which is gone when the model is loaded
    code = tmp_path / "code"
    code.mkdir()
    (code / "scratch_net_module.py").write_text(MODULE_SOURCE)
    monkeypatch.syspath_prepend(str(code))
    import scratch_net_module

    torch.manual_seed(4)
    scratch = scratch_net_module.ScratchNet()
    mlf.pytorch.save_model(scratch, models / "module_state")
    mlf.pytorch.save_model(scratch, models / "module_pickle", serialization_format="pickle")
    expected_scratch = _out(scratch, np.ones((2, 4), dtype=np.float32)).tolist()
    assert _flavor(models / "module_state")["serialization_format"] == "state_dict"
    (code / "scratch_net_module.py").unlink()
    del sys.modules["scratch_net_module"]

    names = ["main_state", "main_pickle", "module_state", "module_pickle"]
    loader = tmp_path / "load_all.py"
    loader.write_text(LOAD_ALL)
    done = subprocess.run(
        [sys.executable, str(loader), str(models), *names],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout.strip().splitlines()[-1])
    assert out["main_state"][0] == out["main_pickle"][0] == "NotebookNet"
    assert out["main_state"][1] == out["main_pickle"][1]
    assert out["module_state"] == out["module_pickle"] == ["ScratchNet", expected_scratch]


# -- serving ----------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory, net: TinyNet, X: np.ndarray):
    """One real ``mltrack models serve`` process for a logged TinyNet (state dict format)."""
    import os

    import jupyter_mltrack as mlflow
    from tests.test_serving import free_port, serve_cmd, start_server, stop_server

    store = str(tmp_path_factory.mktemp("pytorch-serving") / "store")
    mlflow.set_tracking_uri(store)
    with mlflow.start_run():
        info = mlflow.pytorch.log_model(
            net, name="model", input_example=X[:2], init_kwargs={"n_in": 4, "hidden": 6}
        )
    mlflow.set_tracking_uri(None)
    port = free_port()
    env = {**os.environ, "MLTRACK_TRACKING_URI": store}
    proc = start_server(serve_cmd(info.model_uri, port), port, env, timeout=90)
    yield port
    stop_server(proc)
    for pipe in (proc.stdout, proc.stderr):
        if pipe is not None:
            pipe.close()


def test_the_scoring_server_answers_with_the_modules_predictions(served, net, X):
    from tests.test_serving import invoke

    expected = _out(net, X)
    status, body = invoke(served, {"inputs": X.tolist()})
    assert status == 200
    np.testing.assert_allclose(np.array(body["predictions"]), expected, rtol=1e-5, atol=1e-6)
    split = {"dataframe_split": {"columns": list(range(4)), "data": X[:2].tolist()}}
    status, body = invoke(served, split)
    assert status == 200
    np.testing.assert_allclose(np.array(body["predictions"]), expected[:2], rtol=1e-5, atol=1e-6)
    status, body = invoke(served, {"inputs": X[:, :3].tolist()})
    assert status == 400 and "Shape mismatch" in body["message"]


# -- state dicts ------------------------------------------------------------------------------------
def test_log_and_load_state_dict(mlf, net):
    with mlf.start_run() as run:
        mlf.pytorch.log_state_dict(net.state_dict(), artifact_path="weights")
    loaded = mlf.pytorch.load_state_dict(f"runs:/{run.info.run_id}/weights")
    assert all(torch.equal(loaded[k], v) for k, v in net.state_dict().items())
    with pytest.raises(InvalidParameterValue, match="must be a dict"):
        mlf.pytorch.save_state_dict(net, "x")


# -- bad input --------------------------------------------------------------------------------------
def test_bad_inputs_are_clear_errors(mlf, net, X, tmp_path):
    save = mlf.pytorch.save_model
    with pytest.raises(
        InvalidParameterValue, match=r"torch.nn.Module, got OrderedDict\. A state dict"
    ):
        save(net.state_dict(), tmp_path / "a")
    with pytest.raises(InvalidParameterValue, match=r"not the class: pass TinyNet\(\.\.\.\)"):
        save(TinyNet, tmp_path / "a")
    with pytest.raises(InvalidParameterValue, match="Unknown serialization_format 'onnx'"):
        save(net, tmp_path / "a", serialization_format="onnx")
    with pytest.raises(
        InvalidParameterValue, match=r"needs the argument\(s\) n_in.*init_kwargs=\{'n_in': \.\.\.\}"
    ):
        save(net, tmp_path / "a", serialization_format="state_dict")
    with pytest.raises(
        InvalidParameterValue, match=r"other shapes for fc1.weight \[8, 4\] vs \[6, 4\]"
    ):
        save(net, tmp_path / "a", init_kwargs={"n_in": 4})  # hidden left at its default, 8
    with pytest.raises(InvalidParameterValue, match="init_kwargs must be a dict"):
        save(net, tmp_path / "a", init_kwargs=[4, 6])
    with pytest.raises(InvalidParameterValue, match=r"'pt2' .* needs an input_example"):
        save(net, tmp_path / "a", serialization_format="pt2")
    with pytest.raises(
        InvalidParameterValue, match="only be saved with serialization_format='torchscript'"
    ):
        save(torch.jit.script(NoArgsNet()), tmp_path / "a", serialization_format="pickle")
    with pytest.raises(TypeError, match=r"unexpected keyword argument.*pickle_protcol"):
        save(net, tmp_path / "a", pickle_protcol=4)
    with pytest.raises(TypeError, match="map_location and device"):
        mlf.pytorch.load_model(str(tmp_path), weights_only=True)
    assert not (tmp_path / "a").exists()  # nothing half-written
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # MLflow 3's log_model arguments are accepted quietly
        with mlf.start_run():
            mlf.pytorch.log_model(net, name="m", step=3, model_type="regressor")


def test_import_does_not_import_torch():
    code = """
import json, sys
import jupyter_mltrack.pytorch
import jupyter_mltrack.autolog.pytorch
jupyter_mltrack.pytorch.autolog()
print(json.dumps(sorted(m for m in ("torch", "pytorch_lightning", "numpy") if m in sys.modules)))
"""
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == []


def _uses_submodules(x):
    import concurrent.futures
    import xml.etree.ElementTree

    return torch.nn.functional.relu(x), concurrent.futures.Future, xml.etree.ElementTree.Element


def test_submodule_search_matches_cloudpickles_and_is_restored():
    """Our pickler finds a function's submodules (kept so they are imported on loading) from
    the names in its code: the same modules cloudpickle's scan of sys.modules finds."""
    import concurrent
    import xml

    import cloudpickle.cloudpickle as impl

    from jupyter_mltrack.pytorch import pickle_module

    original = impl._find_imported_submodules
    code = _uses_submodules.__code__
    for dependencies in ([torch], [concurrent, xml, torch], [torch.nn], [np, "not a module"]):
        ours = pickle_module._imported_submodules(code, dependencies)
        theirs = original(code, dependencies)
        assert sorted(m.__name__ for m in ours) == sorted(m.__name__ for m in theirs)
    assert {"torch.nn", "torch.nn.functional"} <= {
        m.__name__ for m in pickle_module._imported_submodules(code, [torch])
    }

    def local(x):  # a local function: pickled by value, its submodules searched
        return torch.nn.functional.relu(x)

    data = pickle_module.dumps(local)
    assert impl._find_imported_submodules is original  # swapped back after the dump
    assert pickle_module.loads(data)(torch.tensor([-1.0, 2.0])).tolist() == [0.0, 2.0]
