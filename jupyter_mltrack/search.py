"""Search: filter and order_by strings -> clauses -> one SQLAlchemy ``Select``; page tokens.

One parser and one compiler serve every entity; an entity is *declared* as an ``EntitySpec``
(its attributes, and its child key/value tables such as metrics, params and tags).

Semantics, identical on SQLite and PostgreSQL:

- Clauses are joined by ``AND``; ``OR`` is refused.
- An unquoted number compares numerically: metrics, numeric attributes, and params through
  ``params.value_num`` (so ``params.lr = 0.1`` matches a logged ``'0.10'``, and a non-numeric
  param never matches a numeric comparison). A quoted value compares as a string; metrics and
  numeric attributes accept a quoted *number* (``metrics.f1 > '0.5'``) and reject other text.
  Tags and string attributes compare an unquoted number against its literal text.
- A run lacking the key never matches a comparison (``!=`` and ``NOT IN`` included); NaN metrics
  are stored as NULL and never match. ``IS NULL`` / ``IS NOT NULL`` test whether the key exists
  (for attributes: whether the column is NULL).
- ``LIKE`` is case-sensitive, ``ILIKE`` case-insensitive (ASCII letters only on SQLite); ``%`` and
  ``_`` are wildcards and a backslash makes the next character literal (``'a\\_b%'``).
- Strings order and range-compare byte-wise (``COLLATE "C"`` on PostgreSQL).
- ``order_by`` keys sort rows lacking the key (or NaN) last in both directions. Params order
  numbers first (numerically), then non-numeric values (as strings), then runs lacking the param.
"""

from __future__ import annotations

import base64
import binascii
import json
import operator
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final, Literal, NoReturn

import sqlalchemy as sa
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.functions import FunctionElement

from jupyter_mltrack.exceptions import FilterSyntaxError, InvalidParameterValue
from jupyter_mltrack.store import schema

Kind = Literal["number", "string", "dual"]  # dual: text value with a numeric shadow (params)
Value = str | float


# -- entity declarations -------------------------------------------------------------------
@dataclass(frozen=True)
class Attribute:
    """A column of the entity's own table that filters and order_by may name."""

    column: str
    kind: Kind


@dataclass(frozen=True)
class KeyValues:
    """A child key/value table (metrics, params, tags), joined on ``link`` (child, parent) pairs."""

    table: sa.Table
    link: tuple[tuple[str, str], ...]
    kind: Kind
    number_column: str | None = None  # the numeric shadow of ``value_column`` for "dual"
    key_column: str = "key"
    value_column: str = "value"


@dataclass(frozen=True)
class EntitySpec:
    """What an entity exposes to search: attributes, key/value children and the default order.

    ``prefixes`` maps every accepted spelling (``metric``, ``attr``...) to ``"attributes"`` or a
    key of ``children``. With ``bare_attributes`` an identifier without prefix is an attribute.
    ``default_order`` applies when no order_by is given; ``tiebreak`` is always appended, then
    ``unique`` ascending so that paging is stable.
    """

    name: str
    table: sa.Table
    attributes: Mapping[str, Attribute]
    children: Mapping[str, KeyValues]
    prefixes: Mapping[str, str]
    unique: str
    bare_attributes: bool = False
    default_order: tuple[str, ...] = ()
    tiebreak: tuple[str, ...] = ()


@dataclass(frozen=True)
class Field:
    """A resolved identifier: ``source`` is ``"attributes"`` (key = column) or a child name."""

    source: str
    key: str
    kind: Kind


@dataclass(frozen=True)
class Comparison:
    """One ``field op value`` clause; ``value`` is None for IS [NOT] NULL, a tuple for IN."""

    field: Field
    op: str
    value: Value | tuple[Value, ...] | None
    position: int


@dataclass(frozen=True)
class OrderKey:
    """One order_by item."""

    field: Field
    ascending: bool


_NUM: Final = "number"
_STR: Final = "string"
_RUN_LINK = (("run_id", "id"),)

RUNS = EntitySpec(
    name="run",
    table=schema.runs,
    attributes={
        "run_id": Attribute("run_uuid", _STR),
        "run_name": Attribute("name", _STR),
        "status": Attribute("status", _STR),
        "start_time": Attribute("start_time", _NUM),
        "created": Attribute("start_time", _NUM),
        "end_time": Attribute("end_time", _NUM),
        "user_id": Attribute("user_id", _STR),
        "artifact_uri": Attribute("artifact_uri", _STR),
        "lifecycle_stage": Attribute("lifecycle_stage", _STR),
    },
    children={
        "metrics": KeyValues(schema.latest_metrics, _RUN_LINK, _NUM),
        "params": KeyValues(schema.params, _RUN_LINK, "dual", number_column="value_num"),
        "tags": KeyValues(schema.tags, _RUN_LINK, _STR),
    },
    prefixes={
        **dict.fromkeys(("attributes", "attribute", "attr", "run"), "attributes"),
        **dict.fromkeys(("metrics", "metric"), "metrics"),
        **dict.fromkeys(("params", "param", "parameters", "parameter"), "params"),
        **dict.fromkeys(("tags", "tag"), "tags"),
    },
    unique="id",
    tiebreak=("attributes.start_time DESC",),
)

EXPERIMENTS = EntitySpec(
    name="experiment",
    table=schema.experiments,
    attributes={
        "experiment_id": Attribute("experiment_id", _NUM),
        "name": Attribute("name", _STR),
        "creation_time": Attribute("creation_time", _NUM),
        "last_update_time": Attribute("last_update_time", _NUM),
    },
    children={
        "tags": KeyValues(schema.experiment_tags, (("experiment_id", "experiment_id"),), _STR)
    },
    prefixes={
        **dict.fromkeys(("attributes", "attribute", "attr"), "attributes"),
        **dict.fromkeys(("tags", "tag"), "tags"),
    },
    unique="experiment_id",
    bare_attributes=True,
    default_order=("creation_time DESC",),  # MLflow's default; experiment_id ASC follows
)


REGISTERED_MODELS = EntitySpec(
    name="registered model",
    table=schema.registered_models,
    attributes={
        "name": Attribute("name", _STR),
        "creation_timestamp": Attribute("creation_timestamp", _NUM),
        "last_updated_timestamp": Attribute("last_updated_timestamp", _NUM),
    },
    children={"tags": KeyValues(schema.registered_model_tags, (("model_id", "model_id"),), _STR)},
    prefixes={
        **dict.fromkeys(("attributes", "attribute", "attr"), "attributes"),
        **dict.fromkeys(("tags", "tag"), "tags"),
    },
    unique="model_id",
    bare_attributes=True,
    default_order=("name ASC",),
)

MODEL_VERSIONS = EntitySpec(
    name="model version",
    table=schema.model_versions,
    attributes={
        "name": Attribute("name", _STR),
        "version": Attribute("version", _NUM),
        "run_id": Attribute("run_id", _STR),
        "source": Attribute("source", _STR),
        "current_stage": Attribute("current_stage", _STR),
        "user_id": Attribute("user_id", _STR),
        "creation_timestamp": Attribute("creation_timestamp", _NUM),
        "last_updated_timestamp": Attribute("last_updated_timestamp", _NUM),
    },
    children={"tags": KeyValues(schema.model_version_tags, (("version_id", "id"),), _STR)},
    prefixes={
        **dict.fromkeys(("attributes", "attribute", "attr"), "attributes"),
        **dict.fromkeys(("tags", "tag"), "tags"),
    },
    unique="id",
    bare_attributes=True,
    default_order=("name ASC", "version DESC"),
)


_LOGGED_MODEL_LINK = (("model_id", "model_id"),)

LOGGED_MODELS = EntitySpec(
    name="logged model",
    table=schema.logged_models,
    attributes={
        "model_id": Attribute("model_id", _STR),
        "name": Attribute("name", _STR),
        "model_type": Attribute("model_type", _STR),
        "status": Attribute("status", _STR),
        "source_run_id": Attribute("source_run_id", _STR),
        "artifact_location": Attribute("artifact_location", _STR),
        "creation_timestamp": Attribute("creation_timestamp", _NUM),
        "creation_time": Attribute("creation_timestamp", _NUM),
        "last_updated_timestamp": Attribute("last_updated_timestamp", _NUM),
    },
    children={
        "params": KeyValues(schema.logged_model_params, _LOGGED_MODEL_LINK, _STR),
        "tags": KeyValues(schema.logged_model_tags, _LOGGED_MODEL_LINK, _STR),
    },
    prefixes={
        **dict.fromkeys(("attributes", "attribute", "attr"), "attributes"),
        **dict.fromkeys(("params", "param", "parameters", "parameter"), "params"),
        **dict.fromkeys(("tags", "tag"), "tags"),
    },
    unique="model_id",
    bare_attributes=True,
    default_order=("creation_timestamp DESC",),  # MLflow's: newest first
)


# -- tokens --------------------------------------------------------------------------------
_NUMBER = re.compile(r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?")
_KEY = re.compile(r"[\w\-./:]+")
_TOKEN = re.compile(  # a doubled quote inside quotes stands for itself
    r"""\s*(?:(?P<str>'(?:[^']|'')*'|"(?:[^"]|"")*")|(?P<key>`(?:[^`]|``)*`)"""
    r"""|(?P<op>!=|<>|>=|<=|=|<|>|!)|(?P<punct>[(),])|(?P<word>[^\s()<>=!,'"`]+)|(?P<open>\S))"""
)
_COMPARE = ("=", "!=", ">", ">=", "<", "<=")
_OPERATORS = "=, !=, <, <=, >, >=, LIKE, ILIKE, IN, NOT IN, IS NULL, IS NOT NULL"


@dataclass(frozen=True)
class _Token:
    kind: str  # num word str key op ( ) , end
    text: str  # without the quotes for str and key
    pos: int
    end: int


def _tokenize(text: str) -> list[_Token]:
    out, i = [], 0
    while m := _TOKEN.match(text, i):
        kind = m.lastgroup or ""
        raw, pos, i = m.group(kind), m.start(kind), m.end()
        if kind == "open":
            raise FilterSyntaxError(f"unclosed quote: expected a closing {raw}", text, pos)
        if kind in ("str", "key"):
            raw = raw[1:-1].replace(raw[0] * 2, raw[0])
        elif kind == "punct":
            kind = raw
        elif kind == "word" and _NUMBER.fullmatch(raw):
            kind = "num"
        out.append(_Token(kind, raw, pos, i))
    return [*out, _Token("end", "", len(text), len(text))]


# -- parser --------------------------------------------------------------------------------
class _Parser:
    def __init__(self, text: str, entity: EntitySpec) -> None:
        self.text, self.entity, self.tokens, self.i = text, entity, _tokenize(text), 0

    def peek(self) -> _Token:
        return self.tokens[self.i]

    def take(self) -> _Token:
        tok = self.tokens[self.i]
        self.i = min(self.i + 1, len(self.tokens) - 1)
        return tok

    def fail(self, message: str, pos: int) -> NoReturn:
        raise FilterSyntaxError(message, self.text, pos)

    def expect(self, ok: bool, what: str, tok: _Token) -> None:
        if not ok:
            self.fail(f"expected {what}, got {self.got(tok)}", tok.pos)

    def got(self, tok: _Token) -> str:
        return "the end" if tok.kind == "end" else repr(self.text[tok.pos : tok.end])

    @staticmethod
    def word(tok: _Token, *words: str) -> bool:
        return tok.kind == "word" and tok.text.upper() in words

    def clauses(self) -> list[Comparison]:
        out: list[Comparison] = []
        while self.peek().kind != "end":
            out.append(self.comparison())
            tok = self.take()
            if self.word(tok, "OR"):
                self.fail("OR is not supported: run one search per alternative instead", tok.pos)
            self.expect(tok.kind == "end" or self.word(tok, "AND"), "AND or the end", tok)
            if tok.kind != "end":
                self.expect(self.peek().kind != "end", "a condition after AND", self.peek())
        return out

    def order_key(self) -> OrderKey:
        self.expect(self.peek().kind != "end", "a field to order by", self.peek())
        field, name = self.field(), repr(self.text[: self.peek().pos].strip())
        tok, ascending = self.take(), True
        if self.word(tok, "ASC", "DESC"):
            ascending, tok = tok.text.upper() == "ASC", self.take()
        self.expect(tok.kind == "end", f"ASC, DESC or the end after {name}", tok)
        return OrderKey(field, ascending)

    def field(self) -> Field:
        tok = self.take()
        if tok.kind == "key":  # the whole identifier in backticks: `metrics.my key`
            prefix, dot, key = tok.text.partition(".")
            if dot and prefix.lower() in self.entity.prefixes:
                return self.resolve(prefix, key, tok.pos, quoted=True)
            if not self.entity.bare_attributes:
                self.fail(f"unknown prefix in {tok.text!r}; {self.prefixes()}", tok.pos)
            return self.resolve(None, tok.text, tok.pos, quoted=True)
        examples = ", ".join([*(f"{c}.KEY" for c in self.entity.children), "attributes.NAME"])
        self.expect(tok.kind == "word", f"an identifier such as {examples}", tok)
        prefix, dot, key = tok.text.partition(".")
        if not dot:
            self.expect(self.entity.bare_attributes, f"an identifier such as {examples}", tok)
            return self.resolve(None, tok.text, tok.pos, quoted=False)
        if key:
            return self.resolve(prefix, key, tok.pos, quoted=False)
        quoted = self.peek()  # metrics.`my key` or params."my key"
        if quoted.kind not in ("str", "key") or quoted.pos != tok.end:
            self.fail(
                f"expected a key after {tok.text!r} (quote odd keys: {tok.text}`a b`)", tok.end
            )
        return self.resolve(prefix, self.take().text, tok.pos, quoted=True)

    def resolve(self, prefix: str | None, key: str, pos: int, *, quoted: bool) -> Field:
        source = "attributes" if prefix is None else self.entity.prefixes.get(prefix.lower())
        if source is None:
            self.fail(f"unknown prefix '{prefix}.'; {self.prefixes()}", pos)
        if not key:
            self.fail("expected a non-empty key", pos)
        if not quoted and not _KEY.fullmatch(key):
            self.fail(f"key {key!r} needs quoting: write {prefix}.`{key}`", pos)
        if source != "attributes":
            return Field(source, key, self.entity.children[source].kind)
        attribute = self.entity.attributes.get(key.lower())
        if attribute is None:
            valid = ", ".join(self.entity.attributes)
            self.fail(f"unknown {self.entity.name} attribute {key!r}; valid: {valid}", pos)
        return Field("attributes", attribute.column, attribute.kind)

    def prefixes(self) -> str:
        spellings: dict[str, list[str]] = {}
        for spelling, source in self.entity.prefixes.items():
            spellings.setdefault(source, []).append(spelling + ".")
        return "valid prefixes: " + "; ".join(", ".join(s) for s in spellings.values())

    def comparison(self) -> Comparison:
        start = self.peek().pos
        field = self.field()
        name = repr(self.text[start : self.peek().pos].strip())
        tok = self.take()
        op = "!=" if tok.text == "<>" else tok.text.upper()
        if tok.kind == "op":
            if op not in _COMPARE:
                self.fail(f"unknown operator {op!r}; expected one of {_OPERATORS}", tok.pos)
            return Comparison(field, op, self.value(field, name, tok), start)
        if self.word(tok, "LIKE", "ILIKE"):
            if field.kind == _NUM:
                self.fail(f"{op} needs a string field but {name} is numeric", tok.pos)
            pattern = self.take()
            self.expect(pattern.kind == "str", f"a quoted pattern after {op}", pattern)
            if re.search(r"(?<!\\)(\\\\)*\\$", pattern.text):
                self.fail("a pattern cannot end with a lone backslash", pattern.pos)
            return Comparison(field, op, pattern.text, start)
        if self.word(tok, "NOT"):
            after = self.take()
            self.expect(self.word(after, "IN"), "IN after NOT", after)
            return Comparison(field, "NOT IN", self.in_list(field, name), start)
        if self.word(tok, "IN"):
            return Comparison(field, "IN", self.in_list(field, name), start)
        self.expect(self.word(tok, "IS"), f"an operator ({_OPERATORS}) after {name}", tok)
        after = self.take()
        negate = self.word(after, "NOT")
        after = self.take() if negate else after
        self.expect(self.word(after, "NULL"), "NULL", after)
        return Comparison(field, "IS NOT NULL" if negate else "IS NULL", None, start)

    def in_list(self, field: Field, name: str) -> tuple[Value, ...]:
        separator = self.take()
        self.expect(separator.kind == "(", "'(' after IN", separator)
        self.expect(self.peek().kind != ")", "a value in the IN list", self.peek())
        values: list[Value] = []
        while separator.kind != ")":
            pos = self.peek().pos
            values.append(self.value(field, name, separator))
            if type(values[-1]) is not type(values[0]):
                self.fail(f"IN list mixes numbers and quoted strings for {name}", pos)
            separator = self.take()
            self.expect(separator.kind in ",)", "',' or ')' in the IN list", separator)
        return tuple(values)

    def value(self, field: Field, name: str, after: _Token) -> Value:
        tok = self.take()
        if tok.kind == "num":
            return tok.text if field.kind == _STR else float(tok.text)
        if tok.kind == "str" and field.kind != _NUM:
            return tok.text
        if tok.kind == "str" and _NUMBER.fullmatch(tok.text):
            return float(tok.text)
        if tok.kind == "str":
            self.fail(f"{name} is numeric: expected a number, got {tok.text!r}", tok.pos)
        hint = f" (quote strings: '{tok.text}')" if tok.kind == "word" else ""
        self.fail(f"expected a value after {after.text!r}, got {self.got(tok)}{hint}", tok.pos)


def parse_filter(filter_string: str | None, entity: EntitySpec) -> list[Comparison]:
    """Parse a filter string into clauses for ``entity``.

    Parameters
    ----------
    filter_string
        MLflow's grammar: ``metrics.f1 > 0.8 AND params.model = 'rf'``; None or blank: no clause.
    entity
        ``RUNS``, ``EXPERIMENTS`` or another declared ``EntitySpec``.

    Raises
    ------
    FilterSyntaxError
        Naming what was expected and the 0-based position in ``filter_string``.
    """
    if filter_string is None:
        return []
    if not isinstance(filter_string, str):
        raise InvalidParameterValue(f"filter_string must be a string, got {filter_string!r}")
    return _Parser(filter_string, entity).clauses()


def parse_order_by(order_by: Sequence[str] | None, entity: EntitySpec) -> list[OrderKey]:
    """Parse order_by items such as ``"metrics.f1 DESC"`` or ``"`params.my key`"`` (ASC default).

    Raises
    ------
    FilterSyntaxError
        For an unknown field or direction; the position is within that item.
    """
    if order_by is not None and (isinstance(order_by, str) or not isinstance(order_by, Sequence)):
        raise InvalidParameterValue(f"order_by must be a list of strings, got {order_by!r}")
    keys = []
    for item in order_by or ():
        if not isinstance(item, str):
            raise InvalidParameterValue(f"order_by items must be strings, got {item!r}")
        keys.append(_Parser(item, entity).order_key())
    return keys


# -- SQL constructs that behave the same on SQLite and PostgreSQL --------------------------
class _like(FunctionElement[bool]):
    """Case-sensitive LIKE (args: expr, LIKE pattern, GLOB pattern): SQLite's LIKE ignores case."""

    type, inherit_cache = sa.Boolean(), True


class _ilike(FunctionElement[bool]):
    """Case-insensitive LIKE (args: expr, pattern)."""

    type, inherit_cache = sa.Boolean(), True


class _bytewise(FunctionElement[str]):
    """A string compared and ordered byte by byte, like SQLite's default BINARY collation."""

    type, inherit_cache = sa.String(), True


_FORMS = {  # construct -> dialect ("" = any other) -> SQL over the compiled arguments
    _like: {"sqlite": "({0} GLOB {2})", "": "({0} LIKE {1} ESCAPE '\\')"},
    _ilike: {
        "sqlite": "(lower({0}) LIKE lower({1}) ESCAPE '\\')",
        "": "({0} ILIKE {1} ESCAPE '\\')",
    },
    _bytewise: {"postgresql": '{0} COLLATE "C"', "": "{0}"},
}


def _render(element: FunctionElement[Any], compiler: Any, **kw: Any) -> str:
    forms = _FORMS[type(element)]
    sql = forms.get(compiler.dialect.name, forms[""])
    return sql.format(*(compiler.process(arg, **kw) for arg in element.clauses))


for _construct in _FORMS:
    compiles(_construct)(_render)


def _glob(pattern: str) -> str:
    """Translate a LIKE pattern (``%``, ``_``, backslash escapes) to an SQLite GLOB pattern."""
    out, chars = [], iter(pattern)
    for ch in chars:
        if ch == "\\":
            ch = next(chars)  # the parser refuses a trailing lone backslash
        elif ch in "%_":
            out.append("*" if ch == "%" else "?")
            continue
        out.append(f"[{ch}]" if ch in "*?[" else ch)
    return "".join(out)


# -- compiler ------------------------------------------------------------------------------
_SQL_OPS: dict[str, Callable[[Any, Any], Any]] = dict(
    zip(
        _COMPARE,
        (operator.eq, operator.ne, operator.gt, operator.ge, operator.lt, operator.le),
        strict=True,
    )
)


def _bind(column: Any, value: Value) -> Any:
    """Bind a number as an int for integer columns (keeps their indexes usable on PostgreSQL)."""
    if isinstance(value, float) and isinstance(column.type, sa.Integer):
        if value.is_integer() and abs(value) < 2**53:
            return int(value)
        return sa.literal(value, sa.Float())
    return value


class _Compiler:
    def __init__(self, entity: EntitySpec, comparisons: list[Comparison], keys: list[OrderKey]):
        self.entity, self.table = entity, entity.table
        # a comparison never matches a missing key, so it can use an inner join
        self.inner = {c.field for c in comparisons if c.op != "IS NULL"}
        fields = [c.field for c in comparisons] + [k.field for k in keys]
        self.aliases: dict[Field, Any] = {}
        self.from_: Any = self.table
        for field in dict.fromkeys(f for f in fields if f.source != "attributes"):
            child = entity.children[field.source]
            alias = child.table.alias(f"{field.source}_{len(self.aliases)}")
            on = [alias.c[mine] == self.table.c[theirs] for mine, theirs in child.link]
            on.append(alias.c[child.key_column] == field.key)
            self.from_ = self.from_.join(alias, sa.and_(*on), isouter=field not in self.inner)
            self.aliases[field] = alias
        # columns a comparison already proved non-NULL need no NULLS LAST (keeps indexes usable)
        self.not_null = {
            (c.field, self.column_name(c.field, c.value))
            for c in comparisons
            if c.op not in ("IS NULL", "IS NOT NULL")
        }

    def column_name(self, field: Field, value: Any) -> str:
        if field.source == "attributes":
            return field.key
        child = self.entity.children[field.source]
        sample = value[0] if isinstance(value, tuple) else value
        if child.number_column and isinstance(sample, float):
            return child.number_column
        return child.value_column

    def column(self, field: Field, name: str) -> Any:
        return self.table.c[name] if field.source == "attributes" else self.aliases[field].c[name]

    def condition(self, c: Comparison) -> Any:
        if c.op in ("IS NULL", "IS NOT NULL"):
            key = c.field.key
            if c.field.source != "attributes":
                key = self.entity.children[c.field.source].key_column
            column = self.column(c.field, key)
            return column.is_(None) if c.op == "IS NULL" else column.is_not(None)
        column = self.column(c.field, self.column_name(c.field, c.value))
        if c.op == "LIKE":
            assert isinstance(c.value, str)
            return _like(column, sa.literal(c.value), sa.literal(_glob(c.value)))
        if c.op == "ILIKE":
            return _ilike(column, sa.literal(c.value))
        if isinstance(c.value, tuple):
            values = [_bind(column, v) for v in c.value]
            return column.in_(values) if c.op == "IN" else column.not_in(values)
        assert c.value is not None
        if isinstance(c.value, str) and c.op not in ("=", "!="):
            column = _bytewise(column)
        return _SQL_OPS[c.op](column, _bind(column, c.value))

    def order(self, key: OrderKey) -> list[Any]:
        field = key.field
        if field.source == "attributes":
            names = [field.key]
        else:
            child = self.entity.children[field.source]
            names = [n for n in (child.number_column, child.value_column) if n]
        terms = []
        for name in names:
            column = self.column(field, name)
            certain = (field, name) in self.not_null or (
                not column.nullable and (field.source == "attributes" or field in self.inner)
            )
            if isinstance(column.type, sa.String):
                column = _bytewise(column)
            term = column.asc() if key.ascending else column.desc()
            terms.append(term if certain else term.nulls_last())
        return terms


def _compile(
    entity: EntitySpec,
    where: list[Any],
    filter_string: str | None,
    order_by: Sequence[str] | None,
    max_results: int,
    offset: int,
) -> sa.Select[Any]:
    for name, number in (("max_results", max_results), ("offset", offset)):
        if not isinstance(number, int) or isinstance(number, bool) or number < 0:
            raise InvalidParameterValue(f"{name} must be a non-negative integer, got {number!r}")
    comparisons = parse_filter(filter_string, entity)
    keys = parse_order_by(order_by, entity) or parse_order_by(entity.default_order, entity)
    keys += parse_order_by(entity.tiebreak, entity)
    first: dict[Field, OrderKey] = {}
    for key in keys:
        first.setdefault(key.field, key)
    keys = list(first.values())
    compiler = _Compiler(entity, comparisons, keys)
    table = entity.table
    order = [term for key in keys for term in compiler.order(key)]
    return (
        sa.select(table)
        .select_from(compiler.from_)
        .where(*where, *(compiler.condition(c) for c in comparisons))
        .order_by(*order, table.c[entity.unique].asc())
        .limit(max_results)
        .offset(offset)
    )


def _ids(experiment_ids: Sequence[int]) -> list[int]:
    try:
        return [int(e) for e in experiment_ids]
    except (TypeError, ValueError):
        raise InvalidParameterValue(f"Invalid experiment ids {experiment_ids!r}") from None


def compile_runs_search(
    experiment_ids: Sequence[int],
    filter_string: str | None,
    stages: Sequence[str],
    order_by: Sequence[str] | None,
    max_results: int,
    offset: int,
) -> sa.Select[Any]:
    """One query for a page of runs: the columns of ``schema.runs``.

    Rows are ordered by ``order_by``, then ``start_time DESC`` and ``runs.id``; ``stages`` are
    lifecycle stages (``"active"``, ``"deleted"``).
    """
    runs = schema.runs
    where = [runs.c.experiment_id.in_(_ids(experiment_ids)), runs.c.lifecycle_stage.in_(stages)]
    return _compile(RUNS, where, filter_string, order_by, max_results, offset)


def compile_experiments_search(
    filter_string: str | None,
    stages: Sequence[str],
    order_by: Sequence[str] | None,
    max_results: int,
    offset: int,
) -> sa.Select[Any]:
    """One query for a page of experiments: the columns of ``schema.experiments``.

    Without ``order_by`` the order is MLflow's: ``creation_time DESC``; ``experiment_id`` always
    breaks ties.
    """
    where = [schema.experiments.c.lifecycle_stage.in_(stages)]
    return _compile(EXPERIMENTS, where, filter_string, order_by, max_results, offset)


def compile_registered_models_search(
    filter_string: str | None, order_by: Sequence[str] | None, max_results: int, offset: int
) -> sa.Select[Any]:
    """One query for a page of registered models (``name``, ``tags.``, timestamps)."""
    return _compile(REGISTERED_MODELS, [], filter_string, order_by, max_results, offset)


def compile_model_versions_search(
    filter_string: str | None, order_by: Sequence[str] | None, max_results: int, offset: int
) -> sa.Select[Any]:
    """One query for a page of model versions (``name``, ``version``, ``run_id``, ``current_stage``,
    ``tags.``...); by default ordered by name, newest version first."""
    return _compile(MODEL_VERSIONS, [], filter_string, order_by, max_results, offset)


def compile_logged_models_search(
    experiment_ids: Sequence[int],
    filter_string: str | None,
    stages: Sequence[str],
    order_by: Sequence[str] | None,
    max_results: int,
    offset: int,
) -> sa.Select[Any]:
    """One query for a page of logged models (``name``, ``status``, ``source_run_id``,
    ``model_type``, timestamps, ``params.``, ``tags.``); newest first by default."""
    models = schema.logged_models
    where = [
        models.c.experiment_id.in_(_ids(experiment_ids)),
        models.c.lifecycle_stage.in_(stages),
    ]
    return _compile(LOGGED_MODELS, where, filter_string, order_by, max_results, offset)


# -- page tokens ---------------------------------------------------------------------------
def encode_page_token(offset: int) -> str:
    """An opaque token for the page starting at ``offset``."""
    return base64.urlsafe_b64encode(json.dumps({"offset": offset}).encode()).decode()


def next_page_token(rows: Sequence[Any], max_results: int, offset: int) -> str | None:
    """The token of the next page, when a query for ``max_results + 1`` rows got more than a page."""
    return encode_page_token(offset + max_results) if len(rows) > max_results else None


def decode_page_token(token: str | None) -> int:
    """The offset a token from ``encode_page_token`` stands for; None or "" is the first page."""
    if not token:
        return 0
    try:
        offset = json.loads(base64.urlsafe_b64decode(token.encode()))["offset"]
    except (AttributeError, TypeError, ValueError, KeyError, binascii.Error):
        offset = None
    if not isinstance(offset, int) or isinstance(offset, bool) or offset < 0:
        raise InvalidParameterValue(
            f"Invalid page token {token!r}: pass the token a search returned"
        )
    return offset
