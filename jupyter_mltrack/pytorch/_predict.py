"""Scoring a PyTorch module the pyfunc way: a DataFrame, a numpy array, a tensor or a dict of
named arrays in, no gradients, predictions out (a DataFrame for a DataFrame, as MLflow does;
numpy arrays otherwise)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from jupyter_mltrack.exceptions import InvalidParameterValue


@contextmanager
def eval_mode(module: Any) -> Iterator[None]:
    """``module`` in eval mode for the block, its own mode restored afterwards (dropout and
    batch-norm statistics of a model still training are left untouched)."""
    training = bool(getattr(module, "training", False))
    switched = False
    if training:
        try:
            module.eval()
            switched = True
        except NotImplementedError:  # torch.export modules have no train/eval switch
            pass
    try:
        yield
    finally:
        if switched:
            module.train(True)


def float_dtype(module: Any) -> Any:
    """The floating dtype of the module's parameters (float32 when it has none)."""
    import torch

    for tensor in _tensors(module):
        if tensor.is_floating_point():
            return tensor.dtype
    return torch.float32


def device_of(module: Any) -> Any:
    import torch

    for tensor in _tensors(module):
        return tensor.device
    return torch.device("cpu")


def _tensors(module: Any) -> Iterator[Any]:
    for getter in ("parameters", "buffers"):
        method = getattr(module, getter, None)
        if method is not None:
            yield from method()


def to_tensor(value: Any, dtype: Any, device: Any) -> Any:
    """``value`` as a tensor: floating data in the model's float dtype, integers and booleans
    (indices, masks) as they are."""
    import numpy as np
    import pandas as pd
    import torch

    if isinstance(value, torch.Tensor):
        tensor = value
    else:
        if isinstance(value, (pd.DataFrame, pd.Series)):
            array = value.to_numpy(dtype=np.float64 if dtype == torch.float64 else np.float32)
        else:
            array = np.asarray(value)
        if array.dtype.kind == "O":
            try:
                array = array.astype(np.float64)
            except (TypeError, ValueError):
                raise InvalidParameterValue(
                    "The PyTorch model takes numbers; the input holds values that are not "
                    f"numbers (e.g. {array.ravel()[0]!r})."
                ) from None
        if not array.flags.writeable or not array.flags.c_contiguous:
            array = np.ascontiguousarray(array).copy()
        tensor = torch.from_numpy(array)
    if tensor.is_floating_point() and tensor.dtype != dtype:
        tensor = tensor.to(dtype)
    return tensor.to(device)


def to_numpy(value: Any) -> Any:
    import torch

    if isinstance(value, torch.Tensor):
        return value.detach().cpu().numpy()
    if isinstance(value, dict):
        return {k: to_numpy(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_numpy(v) for v in value]
    return value


def predict(module: Any, data: Any, params: dict[str, Any] | None = None) -> Any:
    """Run ``module`` on ``data`` (see the module docstring); ``params`` go to ``forward`` as
    keyword arguments."""
    import pandas as pd
    import torch

    dtype, device = float_dtype(module), device_of(module)
    kwargs = dict(params or {})
    if isinstance(data, dict):
        args: tuple[Any, ...] = ()
        kwargs.update({str(k): to_tensor(v, dtype, device) for k, v in data.items()})
    elif isinstance(data, (list, tuple)) and data and all(hasattr(v, "shape") for v in data):
        args = tuple(to_tensor(v, dtype, device) for v in data)  # several positional inputs
    else:
        args = (to_tensor(data, dtype, device),)
    with torch.no_grad(), eval_mode(module):
        try:
            output = module(*args, **kwargs)
        except (RuntimeError, TypeError, ValueError, IndexError) as exc:
            raise InvalidParameterValue(_scoring_error(module, args, kwargs, exc)) from exc
    result = to_numpy(output)
    if isinstance(data, pd.DataFrame) and getattr(result, "ndim", 0) in (1, 2):
        return pd.DataFrame(result, index=data.index)
    return result


def _scoring_error(module: Any, args: tuple, kwargs: dict, exc: BaseException) -> str:
    inputs = [*args, *kwargs.values()]
    shapes = ", ".join(f"{list(t.shape)} {str(t.dtype).replace('torch.', '')}" for t in inputs)
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    message = (
        f"The PyTorch model ({type(module).__name__}) could not score the input "
        f"(tensor {shapes}): {type(exc).__name__}: {text}"
    )
    if any(not t.is_floating_point() for t in inputs) and "dtype" in text.lower():
        message += (
            ". Integer input is passed on as integers (for embedding indices); send floats, "
            "or log the model with a float32 signature so inputs are converted"
        )
    return message + "."


class PyTorchWrapper:
    """What ``pyfunc.load_model`` holds for a PyTorch model."""

    def __init__(self, pytorch_model: Any) -> None:
        self.pytorch_model = pytorch_model

    def get_raw_model(self) -> Any:
        """The ``torch.nn.Module``."""
        return self.pytorch_model

    def predict(self, data: Any, params: dict[str, Any] | None = None) -> Any:
        return predict(self.pytorch_model, data, params)
