"""What a cell defines: params (literal assignments), metric candidates, a fingerprint.

Plain functions on source text; no IPython, no store — tested on their own.
"""

from __future__ import annotations

import ast
import hashlib
import numbers
import operator
from dataclasses import dataclass, field
from typing import Any

_BINOPS = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Div: operator.truediv,
    ast.FloorDiv: operator.floordiv,
    ast.Mod: operator.mod,
    ast.Pow: operator.pow,
}
_UNARY = {ast.UAdd: operator.pos, ast.USub: operator.neg, ast.Not: operator.not_}
_NOT_CONSTANT = object()


def constant_value(node: ast.AST) -> Any:
    """The value of a literal or constant expression of literals, else ``_NOT_CONSTANT``.

    Accepts numbers, strings, bools, None, lists/tuples/dicts/sets of them and arithmetic on
    numbers (``10**-3``, ``-1``, ``2 * 64``).
    """
    if isinstance(node, ast.Constant):
        return node.value if not isinstance(node.value, bytes) else _NOT_CONSTANT
    if isinstance(node, (ast.List, ast.Tuple, ast.Set)):
        items = [constant_value(e) for e in node.elts]
        if any(i is _NOT_CONSTANT for i in items):
            return _NOT_CONSTANT
        return {ast.List: list, ast.Tuple: tuple, ast.Set: set}[type(node)](items)
    if isinstance(node, ast.Dict):
        if any(k is None for k in node.keys):
            return _NOT_CONSTANT
        keys = [constant_value(k) for k in node.keys]  # type: ignore[arg-type]
        values = [constant_value(v) for v in node.values]
        if any(x is _NOT_CONSTANT for x in (*keys, *values)):
            return _NOT_CONSTANT
        return dict(zip(keys, values))
    if isinstance(node, ast.UnaryOp) and type(node.op) in _UNARY:
        operand = constant_value(node.operand)
        if operand is _NOT_CONSTANT or not isinstance(operand, (int, float, bool)):
            return _NOT_CONSTANT
        return _UNARY[type(node.op)](operand)
    if isinstance(node, ast.BinOp) and type(node.op) in _BINOPS:
        left, right = constant_value(node.left), constant_value(node.right)
        if not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in (left, right)):
            return _NOT_CONSTANT
        if isinstance(node.op, ast.Pow) and isinstance(right, (int, float)) and abs(right) > 64:
            return _NOT_CONSTANT  # no huge numbers from a cell's source
        try:
            return _BINOPS[type(node.op)](left, right)
        except (ArithmeticError, ValueError):
            return _NOT_CONSTANT
    return _NOT_CONSTANT


@dataclass
class CellAnalysis:
    """Names a cell assigns at top level, split into params and metric candidates."""

    params: dict[str, Any] = field(default_factory=dict)  # name -> literal value
    metric_names: list[str] = field(default_factory=list)  # assigned from non-constants
    param_nodes: dict[str, ast.AST] = field(default_factory=dict)  # name -> last literal node
    fingerprint: str = ""


def _target_names(target: ast.AST) -> list[str]:
    if isinstance(target, ast.Name):
        return [target.id]
    if isinstance(target, (ast.Tuple, ast.List)):
        return [n for elt in target.elts for n in _target_names(elt)]
    if isinstance(target, ast.Starred):
        return _target_names(target.value)
    return []  # attributes and subscripts are not variables of the cell


def analyze(source: str) -> CellAnalysis:
    """Find params and metric candidates in ``source`` (Python after IPython's transforms)."""
    tree = ast.parse(source)
    literal: dict[str, tuple[Any, ast.AST]] = {}
    non_constant: list[str] = []
    for stmt in tree.body:
        pairs: list[tuple[ast.AST, ast.AST | None]] = []
        if isinstance(stmt, ast.Assign):
            pairs = [(t, stmt.value) for t in stmt.targets]
        elif isinstance(stmt, ast.AnnAssign) and stmt.value is not None:
            pairs = [(stmt.target, stmt.value)]
        elif isinstance(stmt, ast.AugAssign):
            pairs = [(stmt.target, None)]
        for target, value in pairs:
            for name, node in _assignments(target, value):
                if node is None:
                    non_constant.append(name)
                else:
                    literal[name] = (constant_value(node), node)
    analysis = CellAnalysis()
    for name in non_constant:
        if name not in analysis.metric_names:
            analysis.metric_names.append(name)
    for name, (value, node) in literal.items():
        if name not in non_constant:
            analysis.params[name] = value
            analysis.param_nodes[name] = node
    analysis.fingerprint = _fingerprint(tree, set(analysis.params))
    return analysis


def _assignments(target: ast.AST, value: ast.AST | None) -> list[tuple[str, ast.AST | None]]:
    """(name, constant value node or None when not constant) for one assignment target."""
    if isinstance(target, ast.Name):
        if value is not None and constant_value(value) is not _NOT_CONSTANT:
            return [(target.id, value)]
        return [(target.id, None)]
    if (
        isinstance(target, (ast.Tuple, ast.List))
        and isinstance(value, (ast.Tuple, ast.List))
        and len(target.elts) == len(value.elts)
        and not any(isinstance(e, ast.Starred) for e in target.elts)
    ):
        return [pair for t, v in zip(target.elts, value.elts) for pair in _assignments(t, v)]
    return [(name, None) for name in _target_names(target)]


class _AbstractLiterals(ast.NodeTransformer):
    def __init__(self, names: set[str]) -> None:
        self.names = names

    def visit_Assign(self, node: ast.Assign) -> ast.AST:
        if any(isinstance(t, ast.Name) and t.id in self.names for t in node.targets):
            node.value = ast.Constant(value="<param>")
        return node


def _fingerprint(tree: ast.Module, param_names: set[str]) -> str:
    """A hash of the cell's code with its literal param values abstracted away."""
    import copy

    abstract = _AbstractLiterals(param_names).visit(copy.deepcopy(tree))
    return hashlib.sha1(ast.dump(abstract, annotate_fields=False).encode()).hexdigest()[:16]


def is_real_scalar(value: Any) -> bool:
    """int, float or numpy real scalar; not bool (numpy bool included), not complex."""
    if isinstance(value, bool) or type(value).__name__ in ("bool_", "bool"):
        return False
    if isinstance(value, numbers.Real):
        return True
    return (
        getattr(value, "ndim", None) == 0
        and getattr(getattr(value, "dtype", None), "kind", "") in "iuf"
        and hasattr(value, "item")
    )


def param_text(value: Any) -> str:
    """Params are stored as MLflow stores them: ``str(value)``."""
    return str(value)


def rewrite_params(source: str, new_values: dict[str, str]) -> str:
    """Replace the literal of each named param in ``source``, keeping the literal's type.

    A string param stays a quoted string; numbers, bools, None and containers are parsed from
    the given text. Raises KeyError naming params the cell does not assign from a literal.
    """
    analysis = analyze(source)
    unknown = [name for name in new_values if name not in analysis.param_nodes]
    if unknown:
        raise KeyError(", ".join(unknown))
    lines = source.splitlines(keepends=True)
    offsets = [0]
    for line in lines:
        offsets.append(offsets[-1] + len(line))
    edits = []
    for name, text in new_values.items():
        node = analysis.param_nodes[name]
        start = offsets[node.lineno - 1] + _char_col(lines[node.lineno - 1], node.col_offset)
        end = offsets[node.end_lineno - 1] + _char_col(
            lines[node.end_lineno - 1], node.end_col_offset
        )  # type: ignore[operator]
        edits.append((start, end, _literal_like(analysis.params[name], text, name)))
    for start, end, replacement in sorted(edits, reverse=True):
        source = source[:start] + replacement + source[end:]
    return source


def _char_col(line: str, byte_col: int) -> int:
    return len(line.encode("utf-8")[:byte_col].decode("utf-8", errors="ignore"))


def _literal_like(old: Any, text: str, name: str) -> str:
    if isinstance(old, str):
        return repr(text)
    try:
        value = ast.literal_eval(text)
    except (ValueError, SyntaxError):
        raise ValueError(
            f"--set {name}={text}: {name} holds a {type(old).__name__} literal; "
            f"{text!r} is not a Python literal (quote strings only for string params)."
        ) from None
    return repr(value)
