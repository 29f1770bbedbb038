"""Model signatures: what a model takes and returns, in MLflow's JSON form.

A ``Schema`` is a list of column specs (``ColSpec``: a named or positional column of one
scalar type) or of tensor specs (``TensorSpec``: a numpy dtype and shape). ``ModelSignature``
holds the input, output and params schemas and is stored in ``MLmodel`` as JSON strings, as
MLflow does, so signatures read by either tool mean the same. numpy and pandas are imported
inside functions: importing this module costs nothing.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from jupyter_mltrack.exceptions import InvalidParameterValue

# MLflow's scalar type names, with the numpy dtype each one means.
_NUMPY_NAMES = {
    "boolean": "bool",
    "integer": "int32",
    "long": "int64",
    "float": "float32",
    "double": "float64",
    "string": "object",
    "binary": "object",
    "datetime": "datetime64[ns]",
}
DATA_TYPES = tuple(_NUMPY_NAMES)


class DataType:
    """The scalar column types, by MLflow's names (``DataType.double`` is ``"double"``)."""

    boolean = "boolean"
    integer = "integer"
    long = "long"
    float = "float"
    double = "double"
    string = "string"
    binary = "binary"
    datetime = "datetime"

    @staticmethod
    def check(name: str) -> str:
        name = getattr(name, "name", name)
        if name not in _NUMPY_NAMES:
            raise InvalidParameterValue(
                f"Unknown column type {name!r}; valid types: {', '.join(DATA_TYPES)}."
            )
        return str(name)

    @staticmethod
    def to_numpy(name: str) -> Any:
        import numpy as np

        return np.dtype(_NUMPY_NAMES[name])


class ColSpec:
    """One column: its type, its name (None for positional columns), and whether required."""

    def __init__(
        self,
        type: str,
        name: str | None = None,
        optional: bool | None = None,
        required: bool = True,
    ) -> None:
        self.type = DataType.check(type)
        self.name = None if name is None else str(name)
        self.required = (not optional) if optional is not None else bool(required)

    @property
    def optional(self) -> bool:
        return not self.required

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"type": self.type}
        if self.name is not None:
            out["name"] = self.name
        out["required"] = self.required
        return out

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ColSpec:
        required = d.get("required", not d.get("optional", False))
        return cls(d["type"], d.get("name"), required=bool(required))

    def __eq__(self, other: object) -> bool:
        return isinstance(other, ColSpec) and self.to_dict() == other.to_dict()

    def __repr__(self) -> str:
        name = f"{self.name!r}: " if self.name is not None else ""
        return f"{name}{self.type!r}{'' if self.required else ' (optional)'}"


def _dtype_name(dtype: Any) -> str:
    kind = dtype.kind
    if kind == "U":
        return "str"
    if kind == "S":
        return "bytes"
    if kind == "O":
        return "object"
    return str(dtype.name)


def _dtype_from_name(name: str) -> Any:
    import numpy as np

    return np.dtype({"str": "str", "bytes": "bytes", "object": "object"}.get(name, name))


class TensorSpec:
    """A tensor: numpy dtype and shape (``-1`` for a variable dimension, usually the first)."""

    def __init__(self, type: Any, shape: Iterable[int], name: str | None = None) -> None:
        import numpy as np

        try:
            self.type = type if isinstance(type, np.dtype) else _dtype_from_name(str(type))
        except TypeError:
            raise InvalidParameterValue(f"Unknown tensor dtype {type!r}.") from None
        self.shape = tuple(int(s) for s in shape)
        self.name = None if name is None else str(name)

    @property
    def required(self) -> bool:
        return True

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "type": "tensor",
            "tensor-spec": {"dtype": _dtype_name(self.type), "shape": list(self.shape)},
        }
        if self.name is not None:
            out["name"] = self.name
        return out

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TensorSpec:
        spec = d["tensor-spec"]
        return cls(spec["dtype"], spec["shape"], d.get("name"))

    def __eq__(self, other: object) -> bool:
        return isinstance(other, TensorSpec) and self.to_dict() == other.to_dict()

    def __repr__(self) -> str:
        name = f"{self.name!r}: " if self.name is not None else ""
        return f"{name}Tensor({_dtype_name(self.type)!r}, {self.shape})"


class Schema:
    """An ordered list of ``ColSpec`` or of ``TensorSpec`` (never both)."""

    def __init__(self, inputs: list[ColSpec | TensorSpec]) -> None:
        inputs = list(inputs)
        kinds = {type(i) for i in inputs}
        if len(kinds) > 1:
            raise InvalidParameterValue("A schema holds either ColSpecs or TensorSpecs, not both.")
        named = [i.name is not None for i in inputs]
        if any(named) and not all(named):
            raise InvalidParameterValue("Either every input of a schema has a name, or none.")
        self.inputs = inputs

    def __len__(self) -> int:
        return len(self.inputs)

    def __iter__(self) -> Any:
        return iter(self.inputs)

    def is_tensor_spec(self) -> bool:
        return bool(self.inputs) and isinstance(self.inputs[0], TensorSpec)

    def has_input_names(self) -> bool:
        return bool(self.inputs) and self.inputs[0].name is not None

    def input_names(self) -> list[str | int]:
        return [i.name if i.name is not None else n for n, i in enumerate(self.inputs)]

    def required_input_names(self) -> list[str | int]:
        return [n for n, i in zip(self.input_names(), self.inputs) if i.required]

    def optional_input_names(self) -> list[str | int]:
        return [n for n, i in zip(self.input_names(), self.inputs) if not i.required]

    def column_types(self) -> list[Any]:
        return [i.type for i in self.inputs]

    def numpy_types(self) -> list[Any]:
        return [
            i.type if isinstance(i, TensorSpec) else DataType.to_numpy(i.type) for i in self.inputs
        ]

    def to_dict(self) -> list[dict[str, Any]]:
        return [i.to_dict() for i in self.inputs]

    def to_json(self) -> str:
        return json.dumps(self.to_dict())

    @classmethod
    def from_json(cls, text: str) -> Schema:
        items = json.loads(text)
        return cls(
            [
                TensorSpec.from_dict(i) if i.get("type") == "tensor" else ColSpec.from_dict(i)
                for i in items
            ]
        )

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Schema) and self.to_dict() == other.to_dict()

    def __repr__(self) -> str:
        return "[" + ", ".join(repr(i) for i in self.inputs) + "]"


_PARAM_TYPES = ("boolean", "integer", "long", "float", "double", "string", "datetime")


class ParamSpec:
    """An inference parameter: name, type, default, and shape (None for a scalar, (-1,) a list)."""

    def __init__(
        self, name: str, dtype: str, default: Any, shape: tuple[int, ...] | None = None
    ) -> None:
        dtype = getattr(dtype, "name", dtype)
        if dtype not in _PARAM_TYPES:
            raise InvalidParameterValue(
                f"Param {name!r} has type {dtype!r}; valid types: {', '.join(_PARAM_TYPES)}."
            )
        self.name = str(name)
        self.dtype = str(dtype)
        self.shape = None if shape is None else tuple(shape)
        self.default = default if default is None else convert_param(self, default)

    @property
    def type(self) -> str:
        return self.dtype

    def to_dict(self) -> dict[str, Any]:
        default = self.default
        if hasattr(default, "isoformat"):
            default = default.isoformat()
        shape = list(self.shape) if self.shape is not None else None
        return {"name": self.name, "default": default, "shape": shape, "type": self.dtype}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ParamSpec:
        shape = d.get("shape")
        return cls(d["name"], d["type"], d.get("default"), tuple(shape) if shape else None)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, ParamSpec) and self.to_dict() == other.to_dict()

    def __repr__(self) -> str:
        return f"{self.name!r}: {self.dtype!r} (default: {self.default!r})"


class ParamSchema:
    """The inference parameters a model accepts (``predict(data, params={...})``)."""

    def __init__(self, params: list[ParamSpec]) -> None:
        self.params = list(params)

    def __iter__(self) -> Any:
        return iter(self.params)

    def to_dict(self) -> list[dict[str, Any]]:
        return [p.to_dict() for p in self.params]

    def to_json(self) -> str:
        return json.dumps(self.to_dict())

    @classmethod
    def from_json(cls, text: str) -> ParamSchema:
        return cls([ParamSpec.from_dict(p) for p in json.loads(text)])

    def __eq__(self, other: object) -> bool:
        return isinstance(other, ParamSchema) and self.to_dict() == other.to_dict()

    def __repr__(self) -> str:
        return "[" + ", ".join(repr(p) for p in self.params) + "]"


def convert_param(spec: ParamSpec, value: Any) -> Any:
    """``value`` converted to the param's type, or a clear error naming the param."""
    if spec.shape is not None:
        if not isinstance(value, (list, tuple)) and not hasattr(value, "tolist"):
            raise InvalidParameterValue(
                f"Param {spec.name!r} must be a list of {spec.dtype}, got {value!r}."
            )
        items = value.tolist() if hasattr(value, "tolist") else list(value)
        return [_convert_scalar_param(spec, v) for v in items]
    return _convert_scalar_param(spec, value)


def _convert_scalar_param(spec: ParamSpec, value: Any) -> Any:
    t = spec.dtype
    bad = InvalidParameterValue(
        f"Param {spec.name!r} must be of type {t}, got {value!r} ({type(value).__name__})."
    )
    if hasattr(value, "item") and not isinstance(value, (list, tuple)):
        value = value.item()  # numpy scalar -> Python
    if t == "boolean":
        if isinstance(value, bool):
            return value
        raise bad
    if t in ("integer", "long"):
        if isinstance(value, bool):
            raise bad
        if isinstance(value, int):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
        raise bad
    if t in ("float", "double"):
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise bad
        return float(value)
    if t == "string":
        if isinstance(value, str):
            return value
        raise bad
    # datetime
    import datetime as dt

    if isinstance(value, dt.datetime):
        return value
    if isinstance(value, str):
        try:
            return dt.datetime.fromisoformat(value)
        except ValueError:
            raise bad from None
    raise bad


class ModelSignature:
    """What a model takes (``inputs``), returns (``outputs``) and accepts as ``params``."""

    def __init__(
        self,
        inputs: Schema | None = None,
        outputs: Schema | None = None,
        params: ParamSchema | None = None,
    ) -> None:
        for label, value, kind in (
            ("inputs", inputs, Schema),
            ("outputs", outputs, Schema),
            ("params", params, ParamSchema),
        ):
            if value is not None and not isinstance(value, kind):
                raise InvalidParameterValue(
                    f"ModelSignature {label} must be a {kind.__name__} or None, "
                    f"got {type(value).__name__}."
                )
        self.inputs = inputs
        self.outputs = outputs
        self.params = params

    def to_dict(self) -> dict[str, str | None]:
        """MLflow's form: each part a JSON string (None when absent)."""
        return {
            "inputs": self.inputs.to_json() if self.inputs is not None else None,
            "outputs": self.outputs.to_json() if self.outputs is not None else None,
            "params": self.params.to_json() if self.params is not None else None,
        }

    @classmethod
    def from_dict(cls, signature_dict: dict[str, Any]) -> ModelSignature:
        try:
            inputs = signature_dict.get("inputs")
            outputs = signature_dict.get("outputs")
            params = signature_dict.get("params")
            return cls(
                Schema.from_json(inputs) if inputs else None,
                Schema.from_json(outputs) if outputs else None,
                ParamSchema.from_json(params) if params else None,
            )
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise InvalidParameterValue(
                f"Unreadable model signature {signature_dict!r}: {exc}"
            ) from exc

    def __eq__(self, other: object) -> bool:
        return isinstance(other, ModelSignature) and self.to_dict() == other.to_dict()

    def __repr__(self) -> str:
        return f"inputs:\n  {self.inputs!r}\noutputs:\n  {self.outputs!r}\nparams:\n  {self.params!r}\n"


# -- inference ----------------------------------------------------------------------------------
def infer_signature(
    model_input: Any = None, model_output: Any = None, params: dict[str, Any] | None = None
) -> ModelSignature:
    """Infer a signature from example input, output and params.

    Parameters
    ----------
    model_input
        A pandas DataFrame or Series, a numpy array, a list (of scalars, of dicts, of lists),
        a dict (column -> scalar or list, or name -> numpy array) or a scalar.
    model_output
        The model's output on that input, of any of the same kinds.
    params
        Inference parameters with their default values, e.g. ``{"threshold": 0.5}``.

    Returns
    -------
    ModelSignature
        Parts that cannot be inferred are left None with a warning (as MLflow does).
    """
    from jupyter_mltrack.models.infer import infer_or_warn, infer_param_schema

    inputs = infer_or_warn(model_input, "inputs")
    outputs = infer_or_warn(model_output, "outputs")
    param_schema = infer_param_schema(params) if params else None
    return ModelSignature(inputs, outputs, param_schema)
