"""How a PyTorch model is written into the model's ``data/`` folder and read back.

- ``state_dict``: ``state_dict.pth`` holds the weights (read back with ``weights_only=True``)
  and ``model_class.pth`` the module's class with its constructor arguments; loading calls the
  constructor and loads the weights. The arguments are ``init_kwargs`` when given, else the
  hyperparameters a LightningModule saved with ``save_hyperparameters()``, else none; before
  anything is written, the class is instantiated with them on PyTorch's ``meta`` device (no
  memory, no weights) and its parameter names and shapes must match the model's.
- ``pickle``: ``torch.save`` of the whole module (``model.pth``), MLflow's default format.
- ``torchscript``: ``torch.jit.save`` of a scripted module (``model.pt``); an eager module is
  scripted, or traced on the input example when it cannot be scripted.
- ``pt2``: ``torch.export`` of the module traced on the input example (``model.pt2``), with a
  dynamic batch dimension; loading it runs no pickled code.

Classes defined in user code (a notebook, ``__main__``, a local ``.py`` file) are pickled by
value, so the model loads in a process that does not have that code.
"""

from __future__ import annotations

import importlib
import inspect
import os
import warnings
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from jupyter_mltrack.exceptions import InvalidModelError, InvalidParameterValue
from jupyter_mltrack.pytorch import _code
from jupyter_mltrack.pytorch._predict import eval_mode, float_dtype, to_tensor

STATE_DICT = "state_dict"
PICKLE = "pickle"
TORCHSCRIPT = "torchscript"
PT2 = "pt2"
FORMATS = (STATE_DICT, PICKLE, TORCHSCRIPT, PT2)
FILES = {
    STATE_DICT: "state_dict.pth",
    PICKLE: "model.pth",
    TORCHSCRIPT: "model.pt",
    PT2: "model.pt2",
}
CLASS_FILE = "model_class.pth"
PICKLE_MODULE_INFO_FILE = "pickle_module_info.txt"  # MLflow's name for it
DEFAULT_PICKLE_MODULE = "jupyter_mltrack.pytorch.pickle_module"
# pickle modules named by models saved elsewhere -> the module here that reads them
_PICKLE_MODULES = {
    "mlflow.pytorch.pickle_module": DEFAULT_PICKLE_MODULE,
    "cloudpickle": DEFAULT_PICKLE_MODULE,  # it has no Unpickler of its own
}


class NotRebuildable(Exception):
    """The module cannot be rebuilt from its class and known constructor arguments."""


@dataclass
class Rebuild:
    """How ``state_dict`` models are rebuilt: ``cls(**kwargs)``, then the weights."""

    cls: type
    kwargs: dict[str, Any]
    source: str  # where the arguments came from, for messages and MLmodel


# -- choosing ---------------------------------------------------------------------------------------
def unwrap(model: Any) -> Any:
    """The module itself for a ``torch.compile``'d model."""
    inner = getattr(model, "_orig_mod", None)
    return inner if inner is not None and type(model).__name__ == "OptimizedModule" else model


def choose(
    model: Any, requested: str | None, init_kwargs: Mapping[str, Any] | None
) -> tuple[str, Rebuild | None]:
    """The format to write (``requested``, or automatically: TorchScript for a scripted module,
    ``state_dict`` when the module can be rebuilt, else ``pickle``) and the rebuild recipe."""
    import torch

    if requested is not None and requested not in FORMATS:
        raise InvalidParameterValue(
            f"Unknown serialization_format {requested!r}; use one of {', '.join(FORMATS)} "
            "(or leave it out: state_dict when the module can be rebuilt, else pickle)."
        )
    if init_kwargs is not None and not isinstance(init_kwargs, Mapping):
        raise InvalidParameterValue(
            f"init_kwargs must be a dict of the model's constructor arguments, got "
            f"{type(init_kwargs).__name__}."
        )
    scripted = isinstance(model, torch.jit.ScriptModule)
    if requested is None:
        if scripted:
            return TORCHSCRIPT, None
        try:
            return STATE_DICT, rebuild_spec(model, init_kwargs)
        except NotRebuildable:
            if init_kwargs is not None:
                raise  # the user said how to rebuild it: that must work
            return PICKLE, None
    if scripted and requested != TORCHSCRIPT:
        raise InvalidParameterValue(
            f"This is a TorchScript module ({type(model).__name__}); it can only be saved with "
            "serialization_format='torchscript'."
        )
    if requested == STATE_DICT:
        return STATE_DICT, rebuild_spec(model, init_kwargs)
    return requested, None


def rebuild_spec(model: Any, init_kwargs: Mapping[str, Any] | None) -> Rebuild:
    """How to rebuild ``model`` from its class, checked now; ``NotRebuildable`` says why not."""
    cls = type(model)
    if init_kwargs is not None:
        kwargs, source = dict(init_kwargs), "init_kwargs"
    else:
        hparams = _lightning_hparams(model)
        if hparams is not None:
            kwargs, source = hparams, "save_hyperparameters"
        else:
            kwargs, source = {}, "none"
    name = cls.__qualname__
    try:
        signature = inspect.signature(cls)
    except (TypeError, ValueError):
        signature = None
    if signature is not None:
        try:
            signature.bind(**kwargs)
        except TypeError as exc:
            required = [
                p.name
                for p in signature.parameters.values()
                if p.default is p.empty
                and p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)
                and p.name not in kwargs
            ]
            if required:
                raise NotRebuildable(
                    f"{name}.__init__ needs the argument(s) {', '.join(required)}, which "
                    + (
                        "init_kwargs does not give"
                        if source == "init_kwargs"
                        else "are not known (pass init_kwargs={"
                        + ", ".join(f"{r!r}: ..." for r in required)
                        + "} with the values the model was built with)"
                    )
                ) from None
            raise NotRebuildable(
                f"{name}(**{_describe_kwargs(kwargs)}) cannot be called: {exc}"
            ) from None
    _check_rebuilds(model, cls, kwargs)
    return Rebuild(cls, kwargs, source)


def _lightning_hparams(model: Any) -> dict[str, Any] | None:
    if not hasattr(type(model), "save_hyperparameters"):
        return None
    try:
        hparams = dict(getattr(model, "hparams_initial", None) or {})
    except Exception:
        return None
    return hparams or None


def _check_rebuilds(model: Any, cls: type, kwargs: dict[str, Any]) -> None:
    """Instantiate ``cls(**kwargs)`` (on the meta device when it can be) and compare its
    parameter names and shapes with the model's; the global RNG state is left as it was."""
    import torch

    expected = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    probe = None
    with torch.random.fork_rng(devices=[]), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            with torch.device("meta"):
                probe = cls(**kwargs)
        except Exception:
            try:
                probe = cls(**kwargs)
            except Exception as exc:
                raise NotRebuildable(
                    f"calling {cls.__qualname__}(**{_describe_kwargs(kwargs)}) failed: "
                    f"{type(exc).__name__}: {exc}"
                ) from None
    got = {k: tuple(v.shape) for k, v in probe.state_dict().items()}
    if got == expected:
        return
    missing = [k for k in expected if k not in got]
    extra = [k for k in got if k not in expected]
    shapes = [
        f"{k} {list(got[k])} vs {list(expected[k])}"
        for k in expected
        if k in got and got[k] != expected[k]
    ]
    details = []
    if missing:
        details.append(f"missing {', '.join(missing[:5])}")
    if extra:
        details.append(f"unexpected {', '.join(extra[:5])}")
    if shapes:
        details.append(f"other shapes for {', '.join(shapes[:5])}")
    raise NotRebuildable(
        f"{cls.__qualname__}(**{_describe_kwargs(kwargs)}) does not have the model's parameters "
        f"({'; '.join(details)}): the model was built with other constructor arguments; pass "
        "them as init_kwargs"
    )


def _describe_kwargs(kwargs: dict[str, Any]) -> str:
    text = repr(kwargs)
    return text if len(text) <= 200 else text[:197] + "..."


# -- writing --------------------------------------------------------------------------------------
def write(
    model: Any,
    fmt: str,
    data_dir: str,
    *,
    rebuild: Rebuild | None,
    pickle_module: Any,
    example: Any,
    save_kwargs: dict[str, Any],
    classes: list[type],
) -> dict[str, Any]:
    """Write the model into ``data_dir``; return the flavor configuration entries."""
    import torch

    os.makedirs(data_dir, exist_ok=True)
    target = os.path.join(data_dir, FILES[fmt])
    conf: dict[str, Any] = {"serialization_format": fmt, "model_file": FILES[fmt]}
    by_value = _code.by_value(_code.user_modules(classes))
    if fmt == STATE_DICT:
        assert rebuild is not None
        torch.save(model.state_dict(), target, **save_kwargs)
        ours = importlib.import_module(DEFAULT_PICKLE_MODULE)
        with by_value:
            torch.save(
                {"class": rebuild.cls, "kwargs": rebuild.kwargs},
                os.path.join(data_dir, CLASS_FILE),
                pickle_module=ours,
            )
        conf["model_class"] = f"{rebuild.cls.__module__}.{rebuild.cls.__qualname__}"
        conf["init_kwargs_source"] = rebuild.source
    elif fmt == PICKLE:
        module = pickle_module or importlib.import_module(DEFAULT_PICKLE_MODULE)
        with by_value:
            torch.save(model, target, pickle_module=module, **save_kwargs)
        with open(os.path.join(data_dir, PICKLE_MODULE_INFO_FILE), "w", encoding="utf-8") as fh:
            fh.write(module.__name__)
        conf["pickle_module_name"] = module.__name__
    elif fmt == TORCHSCRIPT:
        scripted = model if isinstance(model, torch.jit.ScriptModule) else _script(model, example)
        with _quiet_jit():
            torch.jit.save(scripted, target)
    else:
        torch.export.save(_export(model, example), target)
    return conf


def _example_inputs(model: Any, example: Any) -> tuple[Any, ...]:
    import torch

    dtype = float_dtype(model)
    if isinstance(example, (list, tuple)):
        return tuple(to_tensor(v, dtype, torch.device("cpu")) for v in example)
    return (to_tensor(example, dtype, torch.device("cpu")),)


def _script(model: Any, example: Any) -> Any:
    import torch

    with _quiet_jit():
        try:
            return torch.jit.script(model)
        except Exception as exc:
            if example is None:
                first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
                raise InvalidParameterValue(
                    f"torch.jit.script cannot compile {type(model).__name__} ({type(exc).__name__}"
                    f": {first}). Give an input_example so the model is traced with "
                    "torch.jit.trace instead, or use serialization_format='state_dict' or 'pt2'."
                ) from None
        with torch.no_grad(), eval_mode(model):
            return torch.jit.trace(model, _example_inputs(model, example))


def _export(model: Any, example: Any) -> Any:
    import torch

    if example is None:
        raise InvalidParameterValue(
            "serialization_format='pt2' traces the model with torch.export and needs an "
            "input_example (a numpy array or tensor shaped like a batch of inputs)."
        )
    inputs = _example_inputs(model, example)
    dynamic = tuple({0: torch.export.Dim.AUTO} for _ in inputs)
    with eval_mode(model):
        try:
            return torch.export.export(model, inputs, dynamic_shapes=dynamic)
        except Exception as exc:
            raise InvalidParameterValue(
                f"torch.export could not trace {type(model).__name__} on the input example "
                f"({type(exc).__name__}: {str(exc).strip().splitlines()[0] if str(exc).strip() else ''}); "
                "use serialization_format='state_dict' or 'pickle'."
            ) from None


@contextmanager
def _quiet_jit() -> Iterator[None]:
    """TorchScript is deprecated in PyTorch 2.x; saving and loading a model the user chose to
    keep in that format should not warn on every load (the scoring server loads it too)."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r"`torch\.jit\.\w+` is deprecated")
        yield


# -- reading --------------------------------------------------------------------------------------
def read(data_dir: str, conf: dict[str, Any], map_location: Any = None, device: Any = None) -> Any:
    """The module saved in ``data_dir`` (our layout, or MLflow's ``model.pth`` / ``model.pt2``),
    in eval mode, on ``device`` (CPU unless told)."""
    import torch

    fmt = conf.get("serialization_format") or _mlflow_format(data_dir)
    file = os.path.join(data_dir, conf.get("model_file") or FILES.get(fmt, ""))
    if fmt not in FORMATS:
        raise InvalidModelError(
            f"The PyTorch model in {data_dir} uses serialization format {fmt!r}, which this "
            f"version cannot read ({', '.join(FORMATS)})."
        )
    if not os.path.isfile(file):
        raise InvalidModelError(f"The model file {file} is missing from the model directory.")
    location = map_location if map_location is not None else (device or "cpu")
    if fmt == STATE_DICT:
        model = _read_state_dict(data_dir, file, location)
    elif fmt == PICKLE:
        model = torch.load(
            file,
            map_location=location,
            weights_only=False,
            pickle_module=_pickle_module(data_dir, conf),
        )
    elif fmt == TORCHSCRIPT:
        with _quiet_jit():
            model = torch.jit.load(file, map_location=location)
    else:
        model = torch.export.load(file).module()
    if device is not None:
        model = model.to(device)
    try:
        model.eval()
    except NotImplementedError:
        # a torch.export module cannot switch modes; its graph was exported in eval mode
        for module in model.modules():
            module.training = False
    return model


def _read_state_dict(data_dir: str, file: str, location: Any) -> Any:
    import torch

    class_file = os.path.join(data_dir, CLASS_FILE)
    if not os.path.isfile(class_file):
        raise InvalidModelError(f"The model file {class_file} is missing from the model directory.")
    spec = torch.load(
        class_file,
        map_location=location,
        weights_only=False,
        pickle_module=importlib.import_module(DEFAULT_PICKLE_MODULE),
    )
    cls, kwargs = spec["class"], spec.get("kwargs") or {}
    try:
        model = cls(**kwargs)
    except Exception as exc:
        raise InvalidModelError(
            f"Could not rebuild the model: {cls.__qualname__}(**{_describe_kwargs(kwargs)}) "
            f"raised {type(exc).__name__}: {exc}"
        ) from exc
    state = torch.load(file, map_location=location, weights_only=True)
    model.load_state_dict(state)
    return model


def _mlflow_format(data_dir: str) -> str:
    if os.path.isfile(os.path.join(data_dir, FILES[PT2])):
        return PT2
    return PICKLE


def _pickle_module(data_dir: str, conf: dict[str, Any]) -> Any:
    name = conf.get("pickle_module_name")
    info = os.path.join(data_dir, PICKLE_MODULE_INFO_FILE)
    if not name and os.path.isfile(info):
        with open(info, encoding="utf-8") as fh:
            name = fh.read().strip()
    name = _PICKLE_MODULES.get(name or "", name or "pickle")
    try:
        return importlib.import_module(name)
    except ImportError:
        raise InvalidModelError(
            f"The PyTorch model was pickled with the module {name!r}, which cannot be imported "
            "here; install it to load the model."
        ) from None
