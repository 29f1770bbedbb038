"""What a PyTorch training run logs, shared by Lightning autologging and ``track_training``:
metric points buffered and written in batches, optimizer settings and learning rates, the
model's size, the first forward pass (for the model signature), datasets, and problems that
are reported once instead of stopping the training."""

from __future__ import annotations

import time
from typing import Any

from jupyter_mltrack.exceptions import InvalidParameterValue
from jupyter_mltrack.validation import MAX_PARAM_VALUE_LENGTH

BATCH_SIZE = 1000  # metric points per log_batch call
SIGNATURE_ROWS = 5


class MetricBuffer:
    """Metric points collected in memory and written with one ``log_batch`` per flush."""

    def __init__(self, client: Any, run_id: str) -> None:
        self.client = client
        self.run_id = run_id
        self.points: list[tuple[str, float, int, int]] = []

    def __len__(self) -> int:
        return len(self.points)

    def add(self, values: dict[str, Any], step: int) -> None:
        """Record ``values`` (numbers or one-element tensors) at ``step``, stamped now."""
        now = int(time.time() * 1000)
        points = self.points
        refused = []
        for key, value in values.items():
            number = to_float(value)
            if number is None:
                refused.append(key)
            else:
                points.append((key, number, now, step))
        if refused:
            raise InvalidParameterValue(
                f"metric(s) {', '.join(repr(k) for k in refused)} are not single numbers "
                f"(e.g. {values[refused[0]]!r:.60}); log numbers or one-element tensors"
            )

    def flush(self) -> None:
        """Write the collected points; they are dropped even when the write fails (a store
        that is down must not make the training hold every point in memory)."""
        if not self.points:
            return
        points, self.points = self.points, []
        for start in range(0, len(points), BATCH_SIZE):
            self.client.log_metric_points(self.run_id, points[start : start + BATCH_SIZE])


def to_float(value: Any) -> float | None:
    """A logged value as a float (a tensor is read with ``.item()``), None when it is not one
    number."""
    if type(value) is float:  # the hot path: plain floats and tensors
        return value
    item = getattr(value, "item", None)
    if item is not None:
        try:
            value = item()
        except (TypeError, ValueError, RuntimeError):  # not a one-element tensor
            return None
    if isinstance(value, str):
        return None
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


class Problems:
    """What went wrong while logging, each kind recorded once, reported in one warning."""

    def __init__(self) -> None:
        self.items: dict[str, None] = {}

    def __bool__(self) -> bool:
        return bool(self.items)

    def add(self, what: str, exc: BaseException) -> None:
        self.items.setdefault(f"{what} ({describe(exc)})", None)

    def text(self) -> str:
        return "; ".join(self.items)


def describe(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def param_text(value: Any) -> str:
    if hasattr(value, "item") and getattr(value, "ndim", 1) == 0:
        value = value.item()
    text = value if isinstance(value, str) else str(value)
    return (
        text if len(text) <= MAX_PARAM_VALUE_LENGTH else text[: MAX_PARAM_VALUE_LENGTH - 3] + "..."
    )


def log_params(client: Any, run_id: str, params: dict[str, Any], problems: Problems) -> None:
    """Log params; in a run that already has some of them with other values (a ``%%track``
    cell's own ``lr = ...``, a second fit), keep the values it has and say which."""
    from jupyter_mltrack.entities import Param

    texts = {k: param_text(v) for k, v in params.items()}
    try:
        client.log_batch(run_id, params=[Param(k, v) for k, v in texts.items()])
        return
    except InvalidParameterValue:
        existing = client.get_run(run_id).data.params
    fresh = [Param(k, v) for k, v in texts.items() if k not in existing]
    if fresh:
        client.log_batch(run_id, params=fresh)
    kept = sorted(k for k, v in texts.items() if k in existing and existing[k] != v)
    if kept:
        problems.items.setdefault(
            f"params already in the run with other values were left as they were: "
            f"{', '.join(kept)}",
            None,
        )


# -- optimizers and models ----------------------------------------------------------------------
def _inner(optimizer: Any) -> Any:
    return getattr(optimizer, "_optimizer", optimizer)  # Lightning wraps optimizers


def optimizer_params(optimizers: list[Any]) -> dict[str, Any]:
    """``optimizer_name`` and the first optimizer's settings (``lr``, ``betas``...), as MLflow
    logs them; more optimizers add ``optimizer_<i>_name``."""
    if not optimizers:
        return {}
    first = _inner(optimizers[0])
    params: dict[str, Any] = {"optimizer_name": type(first).__name__}
    for key, value in (getattr(first, "defaults", None) or {}).items():
        if value is None or isinstance(value, (bool, int, float, str, tuple, list)):
            params[key] = value
        elif hasattr(value, "item") and getattr(value, "ndim", 1) == 0:
            params[key] = value.item()
    for i, optimizer in enumerate(optimizers[1:], start=1):
        params[f"optimizer_{i}_name"] = type(_inner(optimizer)).__name__
    return params


class LearningRates:
    """The current learning rate of each parameter group, read cheaply on every step: named
    ``lr`` for one optimizer with one group, ``lr-<Optimizer>`` for several optimizers and
    ``/pg<n>`` for several groups; the names are worked out once (again when a group is
    added)."""

    def __init__(self, optimizers: list[Any]) -> None:
        self._inner = [_inner(o) for o in optimizers]
        self._sizes: list[int] = []
        self._pairs: list[tuple[str, dict[str, Any]]] = []

    def current(self) -> list[tuple[str, float]]:
        sizes = [len(getattr(o, "param_groups", ())) for o in self._inner]
        if sizes != self._sizes:
            self._sizes, self._pairs = sizes, self._names()
        out = []
        for key, group in self._pairs:
            rate = group.get("lr")
            if type(rate) is not float:
                rate = to_float(rate)
            if rate is not None:
                out.append((key, rate))
        return out

    def single_group(self) -> tuple[list[Any], dict[str, Any], float] | None:
        """(param_groups, the group, its rate) when there is one optimizer with one group
        whose rate is a float, else None."""
        if len(self._inner) != 1:
            return None
        groups = getattr(self._inner[0], "param_groups", None)
        if not isinstance(groups, list) or len(groups) != 1:
            return None
        rate = groups[0].get("lr")
        return (groups, groups[0], rate) if type(rate) is float else None

    def _names(self) -> list[tuple[str, dict[str, Any]]]:
        pairs = []
        seen: dict[str, int] = {}
        for inner in self._inner:
            groups = list(getattr(inner, "param_groups", ()))
            if len(self._inner) == 1:
                base = "lr"
            else:
                base = f"lr-{type(inner).__name__}"
                seen[base] = seen.get(base, 0) + 1
                if seen[base] > 1:
                    base = f"{base}-{seen[base] - 1}"
            for j, group in enumerate(groups):
                pairs.append((base if len(groups) == 1 else f"{base}/pg{j + 1}", group))
        return pairs


class RateCurve:
    """The learning-rate points worth logging at the sampled steps: the first value, each
    change (with the value before it, at the previous sampled step) and the last value. A
    chart draws exactly the curve of a point per step, from a handful of points when the rate
    is constant or changes in steps (half the points of a loop otherwise go to ``lr``)."""

    def __init__(self, optimizers: list[Any]) -> None:
        self.rates = LearningRates(optimizers)
        self.last: dict[str, list[Any]] = {}  # key -> [value, step, timestamp, logged]
        self._previous: list[tuple[str, float]] | None = None  # the rates last observed
        self._unchanged: tuple[int, int] | None = None  # (step, time) of the last unchanged
        # one optimizer with one parameter group (the usual case): (its groups, the group,
        # the float rate last seen), checked without building the list of rates
        self._single: tuple[list[Any], dict[str, Any], float] | None = None

    def observe(self, step: int, now: int, points: list[tuple[str, float, int, int]]) -> None:
        single = self._single
        if single is not None and len(single[0]) == 1 and single[1].get("lr") == single[2]:
            self._unchanged = (step, now)
            return
        current = self.rates.current()
        self._single = self.rates.single_group()
        if current == self._previous:  # no rate changed
            self._unchanged = (step, now)
            return
        self._settle()
        self._previous = current
        last = self.last
        for key, rate in current:
            seen = last.get(key)
            if seen is None:
                points.append((key, rate, now, step))
                last[key] = [rate, step, now, True]
            elif seen[0] != rate:
                if not seen[3]:
                    points.append((key, seen[0], seen[2], seen[1]))
                points.append((key, rate, now, step))
                last[key] = [rate, step, now, True]
            else:
                seen[1], seen[2], seen[3] = step, now, False

    def _settle(self) -> None:
        """Record the last unchanged sighting in every rate (each was seen then)."""
        if self._unchanged is not None:
            step, now = self._unchanged
            self._unchanged = None
            for seen in self.last.values():
                seen[1], seen[2], seen[3] = step, now, False

    def finish(self, points: list[tuple[str, float, int, int]]) -> None:
        """Add the last value of each rate (once training is over)."""
        self._settle()
        for key, seen in self.last.items():
            if not seen[3]:
                points.append((key, seen[0], seen[2], seen[1]))
                seen[3] = True


def model_size(model: Any) -> dict[str, int]:
    total = trainable = 0
    for parameter in model.parameters():
        count = parameter.numel()
        total += count
        if parameter.requires_grad:
            trainable += count
    return {"total_params": total, "trainable_params": trainable}


class FirstForward:
    """Keeps the first rows of the first single-tensor ``forward`` call of a module (input and
    output), from which the logged model's signature is inferred; the hook removes itself."""

    def __init__(self, module: Any) -> None:
        self.inputs: Any = None
        self.output: Any = None
        self._handle = module.register_forward_hook(self._hook)

    def _hook(self, module: Any, args: tuple, output: Any) -> None:
        import torch

        try:
            if (
                len(args) == 1
                and isinstance(args[0], torch.Tensor)
                and isinstance(output, torch.Tensor)
            ):
                self.inputs = args[0][:SIGNATURE_ROWS].detach().cpu().numpy()
                self.output = output[:SIGNATURE_ROWS].detach().cpu().numpy()
        finally:
            self.remove()

    def remove(self) -> None:
        if self._handle is not None:
            self._handle.remove()
            self._handle = None

    def signature(self) -> Any:
        if self.inputs is None:
            return None
        from jupyter_mltrack.models.signature import infer_signature

        return infer_signature(self.inputs, self.output)


# -- datasets -----------------------------------------------------------------------------------
def dataset_of(data: Any, name: str | None = None) -> Any:
    """A ``jupyter_mltrack.data`` dataset for a DataLoader over a TensorDataset, a tensor, a
    numpy array or a DataFrame; None for data we cannot describe (a custom Dataset)."""
    import numpy as np

    from jupyter_mltrack import data as mdata

    data = getattr(data, "dataset", data)  # a DataLoader
    tensors = getattr(data, "tensors", None)  # a TensorDataset
    if isinstance(tensors, tuple) and tensors:
        arrays = [_array(t) for t in tensors]
        if any(a is None for a in arrays):
            return None
        targets = arrays[1] if len(arrays) == 2 else None
        features = arrays[0] if len(arrays) <= 2 else {f"x{i}": a for i, a in enumerate(arrays)}
        return mdata.from_numpy(features, targets=targets, name=name)
    if type(data).__name__ == "DataFrame":
        return mdata.from_pandas(data, name=name)
    array = _array(data)
    if isinstance(array, np.ndarray):
        return mdata.from_numpy(array, name=name)
    return None


def _array(value: Any) -> Any:
    import numpy as np

    if isinstance(value, np.ndarray):
        return value
    if hasattr(value, "detach") and hasattr(value, "numpy"):
        return value.detach().cpu().numpy()
    return None


def log_datasets(client: Any, run_id: str, datasets: list[tuple[Any, str]]) -> None:
    """Log ``(dataset, context)`` pairs as the run's inputs (one write)."""
    from jupyter_mltrack.entities import DatasetInput, InputTag
    from jupyter_mltrack.tracking.fluent import DATASET_CONTEXT_TAG

    inputs = [
        DatasetInput(dataset._to_mlflow_entity(), [InputTag(DATASET_CONTEXT_TAG, context)])
        for dataset, context in datasets
    ]
    if inputs:
        client.log_inputs(run_id, inputs)


# -- warnings -----------------------------------------------------------------------------------
_LIBRARIES = ("jupyter_mltrack", "torch", "pytorch_lightning", "lightning", "lightning_fabric")


def user_stacklevel() -> int:
    """The ``stacklevel`` for a ``warnings.warn`` made by our caller that points at the first
    frame outside jupyter_mltrack, torch and Lightning: the user's line."""
    import contextlib
    import os
    import sys

    prefixes = [contextlib.__file__]
    for name in _LIBRARIES:
        module = sys.modules.get(name)
        file = getattr(module, "__file__", None)
        if file:
            prefixes.append(os.path.join(os.path.dirname(file), ""))
    prefixes_tuple = (*prefixes, "<frozen")
    depth, frame = 1, sys._getframe(1)
    while frame is not None and frame.f_code.co_filename.startswith(prefixes_tuple):
        frame = frame.f_back
        depth += 1
    return depth
