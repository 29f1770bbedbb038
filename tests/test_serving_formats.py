"""Request bodies to model input, in-process (the served behaviour is in test_serving.py)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from jupyter_mltrack.models.signature import ColSpec, Schema
from jupyter_mltrack.serving.formats import ServingError, records_frame

DOUBLES = Schema([ColSpec("double", "a"), ColSpec("double", "b"), ColSpec("double", "c")])


def _general(row: dict, columns: list[str]) -> pd.DataFrame:
    return pd.DataFrame([[row[c] for c in columns]], columns=pd.Index(columns, dtype=object))


@pytest.mark.parametrize(
    "row",
    [
        {"a": 1.5, "b": -2.0, "c": 3e10},
        {"c": 3.0, "a": 1.5, "b": 2.0},  # another order: the signature's order wins
        {"a": 1, "b": 2.5, "c": 3},  # JSON integers in double columns
    ],
)
def test_one_row_of_doubles_is_the_same_frame_built_quicker(row: dict) -> None:
    frame = records_frame([row], DOUBLES)
    assert list(frame.columns) == ["a", "b", "c"]
    assert frame.columns.dtype == object
    assert (frame.dtypes == np.float64).all()
    expected = _general(row, ["a", "b", "c"]).astype(np.float64)
    pd.testing.assert_frame_equal(frame, expected)


@pytest.mark.parametrize(
    ("row", "schema"),
    [
        ({"a": True, "b": 2.0, "c": 3.0}, DOUBLES),  # a bool is not a number here
        ({"a": "x", "b": 2.0, "c": 3.0}, DOUBLES),  # the signature check refuses it later
        ({"a": None, "b": 2.0, "c": 3.0}, DOUBLES),
        (
            {"a": 1.0, "b": 2.0, "c": 3.0},
            Schema([ColSpec("double", "a"), ColSpec("long", "b"), ColSpec("double", "c")]),
        ),
        ({"a": 1.0, "b": 2.0, "c": 3.0}, None),
    ],
    ids=["bool", "text", "null", "not-all-double", "no-signature"],
)
def test_anything_else_keeps_pandas_own_types(row: dict, schema: Schema | None) -> None:
    frame = records_frame([row], schema)
    pd.testing.assert_frame_equal(frame, _general(row, ["a", "b", "c"]))


def test_records_that_are_not_rows_are_refused() -> None:
    with pytest.raises(ServingError, match="list of row objects"):
        records_frame([[1.0, 2.0, 3.0]], DOUBLES)
