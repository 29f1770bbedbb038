"""Signatures: inference from pandas, numpy, lists and dicts; MLflow's JSON form; enforcement
of inputs and params (missing columns, safe and unsafe conversions, extra columns)."""

from __future__ import annotations

import datetime as dt
import json
import warnings

import numpy as np
import pandas as pd
import pytest

from jupyter_mltrack.exceptions import InvalidParameterValue, MlflowException
from jupyter_mltrack.models import (
    ColSpec,
    ModelSignature,
    ParamSchema,
    ParamSpec,
    Schema,
    TensorSpec,
    infer_signature,
)
from jupyter_mltrack.models.enforce import enforce_params, enforce_schema


def _types(schema):
    return [(s.name, s.type) for s in schema.inputs]


# -- inference ------------------------------------------------------------------------------------
def test_infer_from_dataframe_matches_mlflow_json():
    frame = pd.DataFrame({"sepal length (cm)": [5.1, 4.9], "petal width (cm)": [0.2, 0.2]})
    signature = infer_signature(frame, np.array([0, 1]))
    # the exact strings MLflow 3.17 writes for the same data
    assert signature.to_dict() == {
        "inputs": '[{"type": "double", "name": "sepal length (cm)", "required": true}, '
        '{"type": "double", "name": "petal width (cm)", "required": true}]',
        "outputs": '[{"type": "tensor", "tensor-spec": {"dtype": "int64", "shape": [-1]}}]',
        "params": None,
    }


def test_infer_dataframe_dtypes():
    frame = pd.DataFrame(
        {
            "a": [1, 2],
            "b": ["x", "y"],
            "c": [True, False],
            "d": pd.to_datetime(["2020-01-01", "2020-01-02"]),
            "e": np.array([1, 2], dtype=np.int32),
            "f": np.array([1, 2], dtype=np.float32),
            "g": pd.Series(["u", "v"], dtype="category"),
            "h": pd.array([1, None], dtype="Int64"),
            "i": [b"\x00", b"\x01"],
            "j": pd.Series(["p", None], dtype=object),
        }
    )
    schema = infer_signature(frame).inputs
    assert _types(schema) == [
        ("a", "long"),
        ("b", "string"),
        ("c", "boolean"),
        ("d", "datetime"),
        ("e", "integer"),
        ("f", "float"),
        ("g", "string"),
        ("h", "long"),
        ("i", "binary"),
        ("j", "string"),
    ]
    assert all(s.required for s in schema.inputs)


def test_infer_from_series_numpy_lists_dicts_and_scalars():
    assert _types(infer_signature(pd.Series([1.5, 2.0], name="y")).inputs) == [("y", "double")]
    tensor = infer_signature(np.zeros((3, 4), dtype=np.float32)).inputs.inputs[0]
    assert isinstance(tensor, TensorSpec)
    assert (str(tensor.type), tensor.shape) == ("float32", (-1, 4))
    assert _types(infer_signature([1.0, 2.0]).inputs) == [(None, "double")]
    assert _types(infer_signature(["a", "b"]).inputs) == [(None, "string")]
    records = infer_signature([{"x": 1, "y": "a"}, {"x": 2, "y": "b"}]).inputs
    assert _types(records) == [("x", "long"), ("y", "string")]
    nested = infer_signature([[1, 2], [3, 4]]).inputs.inputs[0]
    assert isinstance(nested, TensorSpec) and nested.shape == (-1, 2)
    assert _types(infer_signature({"x": [1, 2], "y": [0.5, 1.5]}).inputs) == [
        ("x", "long"),
        ("y", "double"),
    ]
    assert _types(infer_signature({"x": 1, "name": "a"}).inputs) == [
        ("x", "long"),
        ("name", "string"),
    ]
    named = infer_signature({"img": np.zeros((2, 3, 3)), "mask": np.ones((2, 3), dtype=bool)})
    assert [(s.name, s.shape) for s in named.inputs.inputs] == [
        ("img", (-1, 3, 3)),
        ("mask", (-1, 3)),
    ]
    assert _types(infer_signature("hello").inputs) == [(None, "string")]


def test_infer_sparse_matrix():
    from scipy.sparse import csr_matrix

    spec = infer_signature(csr_matrix(np.eye(3))).inputs.inputs[0]
    assert isinstance(spec, TensorSpec) and spec.shape == (-1, 3)


def test_infer_params_and_round_trip():
    signature = infer_signature(
        pd.DataFrame({"x": [1.0]}),
        pd.Series([1.0]),
        params={
            "k": 3,
            "t": 0.5,
            "mode": "fast",
            "flags": [True, False],
            "when": dt.datetime(2024, 1, 2),
        },
    )
    params = {p.name: (p.dtype, p.default, p.shape) for p in signature.params}
    assert params == {
        "k": ("long", 3, None),
        "t": ("double", 0.5, None),
        "mode": ("string", "fast", None),
        "flags": ("boolean", [True, False], (-1,)),
        "when": ("datetime", dt.datetime(2024, 1, 2), None),
    }
    as_dict = signature.to_dict()
    assert json.loads(as_dict["params"])[0] == {
        "name": "k",
        "default": 3,
        "shape": None,
        "type": "long",
    }
    assert ModelSignature.from_dict(as_dict) == signature


def test_uninferable_parts_warn_and_are_left_out():
    with pytest.warns(UserWarning, match="inputs"):
        signature = infer_signature(object(), np.array([1.0]))
    assert signature.inputs is None and signature.outputs is not None
    with pytest.warns(UserWarning, match="mixes values of types int, str"):
        assert infer_signature(pd.DataFrame({"m": [1, "a"]})).inputs is None


def test_schema_rejects_mixed_specs_and_bad_types():
    with pytest.raises(InvalidParameterValue, match="either ColSpecs or TensorSpecs"):
        Schema([ColSpec("double", "a"), TensorSpec(np.dtype("float32"), (-1,), "b")])
    with pytest.raises(InvalidParameterValue, match="Unknown column type 'decimal'"):
        ColSpec("decimal", "a")
    with pytest.raises(InvalidParameterValue, match="ModelSignature inputs must be a Schema"):
        ModelSignature(inputs=[ColSpec("double", "a")])
    with pytest.raises(InvalidParameterValue, match="Unreadable model signature"):
        ModelSignature.from_dict({"inputs": "not json"})


def test_reads_mlflow_optional_flag():
    schema = Schema.from_json('[{"type": "long", "name": "a", "optional": true}]')
    assert schema.inputs[0].required is False


# -- enforcement: columns -------------------------------------------------------------------------
SCHEMA = Schema(
    [
        ColSpec("double", "age"),
        ColSpec("long", "tenure"),
        ColSpec("string", "plan"),
        ColSpec("float", "score"),
    ]
)


def _frame(**overrides):
    data = {"age": [35.0, 40.0], "tenure": [24, 3], "plan": ["basic", "pro"], "score": [0.5, 0.25]}
    data.update(overrides)
    return pd.DataFrame(data)


def test_matching_input_passes_and_is_reordered():
    frame = _frame()[["plan", "score", "tenure", "age"]]
    out = enforce_schema(frame, SCHEMA)
    assert list(out.columns) == ["age", "tenure", "plan", "score"]
    assert str(out["score"].dtype) == "float32"


def test_missing_columns_are_all_listed():
    with pytest.raises(InvalidParameterValue) as err:
        enforce_schema(_frame().drop(columns=["age", "plan"]), SCHEMA)
    assert err.value.error_code == "INVALID_PARAMETER_VALUE"
    assert isinstance(err.value, MlflowException)
    message = str(err.value)
    assert "missing 2 column(s)" in message and "'age'" in message and "'plan'" in message


def test_safe_conversions():
    out = enforce_schema(
        _frame(age=[35, 40], tenure=np.array([24, 3], dtype=np.int32), score=[1, 0]), SCHEMA
    )
    assert [str(out[c].dtype) for c in out.columns[[0, 1, 3]]] == ["float64", "int64", "float32"]
    # floats holding whole numbers (what JSON often gives) become ints
    whole = enforce_schema(_frame(tenure=[24.0, 3.0]), SCHEMA)
    assert whole["tenure"].tolist() == [24, 3] and str(whole["tenure"].dtype) == "int64"
    # object columns of numbers are fine
    objects = enforce_schema(_frame(age=pd.Series([35.5, 40], dtype=object)), SCHEMA)
    assert str(objects["age"].dtype) == "float64"


def test_unsafe_conversions_name_column_and_both_types():
    with pytest.raises(InvalidParameterValue) as err:
        enforce_schema(_frame(tenure=[24.5, 3.0]), SCHEMA)
    message = str(err.value)
    assert "column 'tenure'" in message and "float64" in message and "long" in message
    assert "24.5 has a fractional part" in message
    with pytest.raises(
        InvalidParameterValue,
        match=r"column 'age': cannot convert .* to double \(text is not a number\)",
    ):
        enforce_schema(_frame(age=["35", "40"]), SCHEMA)
    with pytest.raises(
        InvalidParameterValue, match=r"column 'plan': cannot convert int64 to string"
    ):
        enforce_schema(_frame(plan=[1, 2]), SCHEMA)
    with pytest.raises(InvalidParameterValue, match="missing values, which integers cannot hold"):
        enforce_schema(_frame(tenure=[24.0, np.nan]), SCHEMA)
    with pytest.raises(InvalidParameterValue, match="booleans are not numbers"):
        enforce_schema(_frame(age=[True, False]), SCHEMA)


def test_every_bad_column_is_reported_at_once():
    with pytest.raises(InvalidParameterValue) as err:
        enforce_schema(_frame(age=["a", "b"], tenure=[0.5, 1.5]), SCHEMA)
    assert "column 'age'" in str(err.value) and "column 'tenure'" in str(err.value)


def test_extra_columns_dropped_with_a_warning_naming_them():
    with pytest.warns(UserWarning, match=r"Dropping 2 input column\(s\).*'churned', 'id'"):
        out = enforce_schema(_frame(churned=[0, 1], id=[7, 8]), SCHEMA)
    assert list(out.columns) == ["age", "tenure", "plan", "score"]


def test_input_forms_dict_records_and_numpy_by_position():
    as_dict = {"age": [35.0], "tenure": [24], "plan": ["basic"], "score": [0.5]}
    assert enforce_schema(as_dict, SCHEMA).shape == (1, 4)
    records = [{"age": 35.0, "tenure": 24, "plan": "basic", "score": 0.5}]
    assert enforce_schema(records, SCHEMA).iloc[0]["plan"] == "basic"
    assert enforce_schema({"age": 35.0, "tenure": 24, "plan": "x", "score": 0.5}, SCHEMA).shape == (
        1,
        4,
    )
    numeric = Schema([ColSpec("double", "a"), ColSpec("double", "b")])
    out = enforce_schema(np.array([[1, 2], [3, 4]]), numeric)
    assert list(out.columns) == ["a", "b"] and out["b"].tolist() == [2.0, 4.0]
    with pytest.raises(InvalidParameterValue, match="3 unnamed column"):
        enforce_schema(np.zeros((2, 3)), numeric)


def test_optional_columns_may_be_absent():
    schema = Schema([ColSpec("double", "a"), ColSpec("string", "note", required=False)])
    assert list(enforce_schema(pd.DataFrame({"a": [1.0]}), schema).columns) == ["a"]


def test_positional_schema_and_datetimes():
    positional = Schema([ColSpec("string")])
    assert enforce_schema(["a", "b"], positional).iloc[:, 0].tolist() == ["a", "b"]
    dates = Schema([ColSpec("datetime", "when")])
    out = enforce_schema(pd.DataFrame({"when": ["2024-01-02", "2024-02-03"]}), dates)
    assert out["when"].dt.month.tolist() == [1, 2]
    with pytest.raises(InvalidParameterValue, match="some values are not dates"):
        enforce_schema(pd.DataFrame({"when": ["yesterday"]}), dates)


# -- enforcement: tensors and params --------------------------------------------------------------
def test_tensor_shape_and_dtype():
    schema = Schema([TensorSpec(np.dtype("float32"), (-1, 4))])
    out = enforce_schema(np.ones((2, 4), dtype=np.int64), schema)
    assert out.dtype == np.float32
    assert enforce_schema(pd.DataFrame(np.ones((2, 4))), schema).shape == (2, 4)
    with pytest.raises(InvalidParameterValue, match=r"expects \[-1, 4\].*has \[2, 3\]"):
        enforce_schema(np.ones((2, 3)), schema)
    ints = Schema([TensorSpec(np.dtype("int64"), (-1,))])
    with pytest.raises(InvalidParameterValue, match="cannot convert float64 to int64"):
        enforce_schema(np.array([0.5]), ints)
    named = Schema([TensorSpec(np.dtype("float64"), (-1, 2), "x")])
    with pytest.raises(InvalidParameterValue, match="missing 1 tensor"):
        enforce_schema({"y": np.ones((1, 2))}, named)


def test_params_defaults_conversion_and_unknown():
    schema = ParamSchema([ParamSpec("k", "long", 3), ParamSpec("t", "double", 0.5)])
    assert enforce_params(None, schema) == {"k": 3, "t": 0.5}
    assert enforce_params({"k": 5.0, "t": 1}, schema) == {"k": 5, "t": 1.0}
    with pytest.raises(InvalidParameterValue, match="Param 'k' must be of type long"):
        enforce_params({"k": "five"}, schema)
    with pytest.warns(UserWarning, match="'zzz'"):
        enforce_params({"zzz": 1}, schema)
    with pytest.warns(UserWarning, match="declares no params"):
        assert enforce_params({"k": 1}, None) is None
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert enforce_params(None, None) is None
