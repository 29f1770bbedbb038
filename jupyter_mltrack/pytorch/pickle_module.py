"""The ``pickle_module`` ``torch.save`` / ``torch.load`` use for PyTorch models by default (as
MLflow's ``mlflow.pytorch.pickle_module``): cloudpickle writes, so classes defined in a
notebook are stored by value; the standard unpickler reads.

Reading differs from cloudpickle in one way: a class stored by value always comes back as a
fresh class. cloudpickle, loading in the process that saved it, would instead pour the saved
class body into the live class of the same identity, replacing the methods of the notebook's
own class with copies (which breaks ``inspect.getsource`` and ``torch.jit.script`` on it).
"""

from __future__ import annotations

import functools
import inspect
import io
import pickle
from typing import Any

from cloudpickle import Pickler, dump, dumps  # noqa: F401

_SKELETONS = ("_make_skeleton_class", "_make_skeleton_enum")


class Unpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        found = super().find_class(module, name)
        if module.startswith("cloudpickle") and name in _SKELETONS:
            return _untracked(found)
        return found


@functools.cache
def _untracked(make: Any) -> Any:
    """``make`` called with ``class_tracker_id=None``: no lookup of a live class to reuse."""
    try:
        position = list(inspect.signature(make).parameters).index("class_tracker_id")
    except ValueError:
        return make

    def fresh(*args: Any, **kwargs: Any) -> Any:
        if "class_tracker_id" in kwargs:
            kwargs["class_tracker_id"] = None
        elif len(args) > position:
            args = (*args[:position], None, *args[position + 1 :])
        return make(*args, **kwargs)

    return fresh


def load(file: Any, **kwargs: Any) -> Any:
    return Unpickler(file, **kwargs).load()


def loads(data: bytes, **kwargs: Any) -> Any:
    return Unpickler(io.BytesIO(data), **kwargs).load()
