"""Cell analysis without IPython: params, metric candidates, fingerprints, literal rewriting."""

from __future__ import annotations

import numpy as np
import pytest

from jupyter_mltrack.notebook import capture


def test_literal_assignments_are_params():
    cell = """
lr = 1e-3
lr2 = 10**-3
layers = [64, 32]
act = "relu"
use_bn = True
x = None
cfg = {"a": 1, "b": [1, 2]}
neg = -5
a, b = 1, "two"
typed: float = 0.5
"""
    params = capture.analyze(cell).params
    assert params == {
        "lr": 1e-3,
        "lr2": 10**-3,
        "layers": [64, 32],
        "act": "relu",
        "use_bn": True,
        "x": None,
        "cfg": {"a": 1, "b": [1, 2]},
        "neg": -5,
        "a": 1,
        "b": "two",
        "typed": 0.5,
    }
    assert [capture.param_text(params[k]) for k in ("lr", "layers", "act")] == ["0.001", "[64, 32]", "relu"]


def test_non_constants_are_metric_candidates_and_never_params():
    cell = """
import math
from os import path
n = 5
n += 1
acc = score(model)
m: float = compute()
p, r = precision_recall()
for i in range(3):
    loop_var = i
def f():
    inner = 1
class C:
    attr = 2
obj.attr = 3
d["k"] = 4
"""
    analysis = capture.analyze(cell)
    assert analysis.params == {}
    assert analysis.metric_names == ["n", "acc", "m", "p", "r"]


def test_fingerprint_ignores_literal_values_but_not_code():
    base = capture.analyze("lr = 0.1\nmodel = fit(lr)\nacc = model.score()").fingerprint
    other_values = capture.analyze("lr = 0.5\nmodel = fit(lr)\nacc = model.score()").fingerprint
    other_code = capture.analyze("lr = 0.1\nmodel = fit(lr * 2)\nacc = model.score()").fingerprint
    assert base == other_values
    assert base != other_code


@pytest.mark.parametrize(
    ("value", "expected"),
    [(1, True), (1.5, True), (np.float32(2.0), True), (np.int64(3), True), (True, False), (np.bool_(True), False),
     (np.array([1.0]), False), (np.array(1.0), True), ("0.5", False), (1 + 2j, False), (None, False)],
)
def test_real_scalars(value, expected):
    assert capture.is_real_scalar(value) is expected


def test_rewrite_params_keeps_literal_types():
    cell = 'lr = 0.1\nact = "relu"\nlayers = [64, 32]\nuse_bn = True\nmodel = fit(lr, act)\n'
    out = capture.rewrite_params(cell, {"lr": "0.5", "act": "tanh", "layers": "[8]", "use_bn": "False"})
    assert out == "lr = 0.5\nact = 'tanh'\nlayers = [8]\nuse_bn = False\nmodel = fit(lr, act)\n"


def test_rewrite_params_handles_unicode_and_multiline():
    cell = 'note = "héllo"; lr = 0.1\nlayers = [\n  1,\n  2,\n]\n'
    out = capture.rewrite_params(cell, {"lr": "2", "layers": "[3]"})
    assert out == 'note = "héllo"; lr = 2\nlayers = [3]\n'


def test_rewrite_unknown_param_names_it():
    with pytest.raises(KeyError, match="missing"):
        capture.rewrite_params("lr = 0.1\nacc = f()", {"missing": "1"})
    with pytest.raises(KeyError, match="acc"):
        capture.rewrite_params("lr = 0.1\nacc = f()", {"acc": "1"})


def test_rewrite_non_literal_value_for_number_param():
    with pytest.raises(ValueError, match="not a Python literal"):
        capture.rewrite_params("lr = 0.1", {"lr": "fast"})
