"""Search grammar and compiler, run against real databases (SQLite; PostgreSQL when
MLTRACK_TEST_PG_URL is set). One fixed data set per backend; tests only read it."""

from __future__ import annotations

import uuid
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest
import sqlalchemy as sa

from jupyter_mltrack import search
from jupyter_mltrack.exceptions import FilterSyntaxError, InvalidParameterValue
from jupyter_mltrack.store import schema

BACKENDS = ["sqlite", "postgresql"]

# run: (experiment, stage, name, status, user, start, end)
RUNS = {
    "r1": (1, "active", "alpha", "FINISHED", "ann", 1000, 1100),
    "r2": (1, "active", "Alpha2", "RUNNING", "bob", 2000, None),
    "r3": (1, "active", "beta_1", "FAILED", "ann", 3000, 3100),
    "r4": (1, "active", "beta%1", "FINISHED", "cy", 4000, 4100),
    "r5": (2, "active", "gamma", "FINISHED", "ann", 1500, 1600),
    "r6": (1, "deleted", "gone", "FINISHED", "ann", 5000, 5100),
    "r7": (1, "active", "early", "FINISHED", "bob", 500, None),
}
PARAMS = {
    "r1": {"lr": "0.10", "n_estimators": "100", "model": "rf"},
    "r2": {"lr": "0.01", "n_estimators": "50", "model": "RF"},
    "r3": {"lr": "high", "n_estimators": "200"},
    "r4": {"n_estimators": "1e2"},
    "r5": {"lr": "0.1"},
    "r6": {"lr": "0.1"},
}
METRICS = {  # None stands for NaN
    "r1": {"f1": 0.9, "acc": 0.8},
    "r2": {"f1": 0.5, "acc": None},
    "r3": {"f1": 0.7, "my metric": 1.5},
    "r5": {"f1": 0.95},
    "r6": {"f1": 0.99},
    "r7": {"f1": 0.6},
}
TAGS = {
    "r1": {"team": "Vision", "my tag": "x y", "note": "5", "glob": "aZbQ"},
    "r2": {"team": "vision", "version": "1.0"},
    "r3": {"team": "nlp", "glob": "a*[b]?"},
}
EXPERIMENTS = {  # id: (name, stage, creation_time, tags)
    1: ("Default", "active", 100, {"team": "vision"}),
    2: ("fraud-model", "active", 300, {"team": "risk"}),
    3: ("Fraud v2", "active", 200, {}),
    4: ("old", "deleted", 400, {"team": "vision"}),
}


def _number(text: str) -> float | None:
    try:
        return float(text)
    except ValueError:
        return None


def _fill(conn: sa.Connection) -> None:
    conn.execute(
        schema.experiments.insert(),
        [
            dict(
                experiment_id=i,
                name=n,
                artifact_location=f"/a/{i}",
                lifecycle_stage=s,
                creation_time=t,
                last_update_time=t + 1,
            )
            for i, (n, s, t, _) in EXPERIMENTS.items()
        ],
    )
    etags = [
        dict(experiment_id=i, key=k, value=v)
        for i, e in EXPERIMENTS.items()
        for k, v in e[3].items()
    ]
    conn.execute(schema.experiment_tags.insert(), etags)
    ids = {run: i for i, run in enumerate(RUNS, start=1)}
    conn.execute(
        schema.runs.insert(),
        [
            dict(
                id=ids[r],
                run_uuid=r,
                experiment_id=e,
                lifecycle_stage=st,
                name=n,
                status=s,
                user_id=u,
                start_time=t0,
                end_time=t1,
                artifact_uri=f"/art/{r}",
            )
            for r, (e, st, n, s, u, t0, t1) in RUNS.items()
        ],
    )
    conn.execute(
        schema.params.insert(),
        [
            dict(run_id=ids[r], key=k, value=v, value_num=_number(v))
            for r, ps in PARAMS.items()
            for k, v in ps.items()
        ],
    )
    conn.execute(
        schema.latest_metrics.insert(),
        [
            dict(run_id=ids[r], key=k, value=v, is_nan=v is None, timestamp=0, step=0)
            for r, ms in METRICS.items()
            for k, v in ms.items()
        ],
    )
    conn.execute(
        schema.tags.insert(),
        [dict(run_id=ids[r], key=k, value=v) for r, ts in TAGS.items() for k, v in ts.items()],
    )


@pytest.fixture(scope="module", params=BACKENDS)
def engine(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[sa.Engine]:
    """A filled database per backend; on PostgreSQL inside a schema of its own."""
    if request.param == "sqlite":
        path: Path = tmp_path_factory.mktemp("search") / "store.db"
        engine = sa.create_engine(f"sqlite:///{path}")
        schema.metadata.create_all(engine)
        with engine.begin() as conn:
            _fill(conn)
        yield engine
        engine.dispose()
        return
    name = f"search_{uuid.uuid4().hex[:12]}"
    admin = sa.create_engine(request.getfixturevalue("pg_server"))
    with admin.begin() as conn:
        conn.exec_driver_sql(f"CREATE SCHEMA {name}")
    engine = admin.execution_options(schema_translate_map={None: name})
    try:
        schema.metadata.create_all(engine)
        with engine.begin() as conn:
            _fill(conn)
        yield engine
    finally:
        with admin.begin() as conn:
            conn.exec_driver_sql(f"DROP SCHEMA {name} CASCADE")
        admin.dispose()


def runs(
    engine: sa.Engine,
    filter_string: str | None = None,
    order_by: Sequence[str] | None = None,
    ids: Sequence[int] = (1,),
    stages: Sequence[str] = ("active",),
    max_results: int = 100,
    offset: int = 0,
) -> list[str]:
    query = search.compile_runs_search(ids, filter_string, stages, order_by, max_results, offset)
    with engine.connect() as conn:
        return [row.run_uuid for row in conn.execute(query)]


def found(engine: sa.Engine, filter_string: str, **kw: object) -> set[str]:
    return set(runs(engine, filter_string, **kw))  # type: ignore[arg-type]


# -- params ---------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("filter_string", "expected"),
    [
        ("params.lr = 0.1", {"r1"}),  # '0.10' is the number 0.1
        ("params.lr = 1e-1", {"r1"}),
        ("params.lr = '0.1'", set()),  # quoted: the string '0.10' differs
        ("params.lr = '0.10'", {"r1"}),
        ("params.lr != 0.1", {"r2"}),  # 'high' is not a number, r4 and r7 lack lr
        ("params.lr <> 0.1", {"r2"}),
        ("params.lr < 1", {"r1", "r2"}),
        ("params.lr <= 0.1", {"r1", "r2"}),
        ("params.lr >= 0.01", {"r1", "r2"}),
        ("params.lr > -5", {"r1", "r2"}),
        ("params.lr IN (0.1, 7)", {"r1"}),
        ("params.lr NOT IN (0.1)", {"r2"}),
        ("params.lr IN ('high', '0.01')", {"r2", "r3"}),
        ("params.lr NOT IN ('high')", {"r1", "r2"}),
        ("params.lr != 'high'", {"r1", "r2"}),
        ("params.n_estimators > 50", {"r1", "r3", "r4"}),  # '1e2' is 100
        ("param.n_estimators = 100 AND parameter.lr = 0.1", {"r1"}),
        ("parameters.n_estimators >= 50 and params.lr < 0.05", {"r2"}),
        ("params.model = 'rf'", {"r1"}),
        ("params.model != 'rf'", {"r2"}),
        ('params.model = "RF"', {"r2"}),
        ("params.model LIKE 'r%'", {"r1"}),
        ("params.model ILIKE 'r%'", {"r1", "r2"}),
        ("params.model > 'Z'", {"r1"}),  # byte order: 'RF' < 'Z' < 'rf'
        ("params.lr IS NULL", {"r4", "r7"}),
        ("params.lr IS NOT NULL", {"r1", "r2", "r3"}),
        ("params.lr is not null and params.lr is null", set()),
        ("params.missing != 1", set()),
        ("params.missing != 'x'", set()),
    ],
)
def test_params(engine: sa.Engine, filter_string: str, expected: set[str]) -> None:
    assert found(engine, filter_string) == expected


# -- metrics --------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("filter_string", "expected"),
    [
        ("metrics.f1 > 0.6", {"r1", "r3"}),
        ("metrics.f1 >= 0.6", {"r1", "r3", "r7"}),
        ("metric.f1 < 0.6", {"r2"}),
        ("metrics.f1 <= 0.6", {"r2", "r7"}),
        ("metrics.f1 = 0.5", {"r2"}),
        ("metrics.f1 != 0.5", {"r1", "r3", "r7"}),  # r4 has no f1
        ("metrics.f1 > '0.6'", {"r1", "r3"}),  # a quoted number is accepted for metrics
        ("metrics.f1 IN (0.5, 0.9)", {"r1", "r2"}),
        ("metrics.f1 NOT IN (0.5, 0.9)", {"r3", "r7"}),
        ("metrics.acc != 0.8", set()),  # r2's acc is NaN: never matches
        ("metrics.acc < 100", {"r1"}),
        ("metrics.acc > -1e308", {"r1"}),
        ("metrics.acc IS NOT NULL", {"r1", "r2"}),  # a NaN metric exists
        ("metrics.acc IS NULL", {"r3", "r4", "r7"}),
        ("metrics.`my metric` > 1", {"r3"}),
        ('metrics."my metric" = 1.5', {"r3"}),
        ("`metrics.my metric` = 1.5", {"r3"}),
        ("metrics.f1 > 0.55 AND metrics.f1 < 0.8", {"r3", "r7"}),
    ],
)
def test_metrics(engine: sa.Engine, filter_string: str, expected: set[str]) -> None:
    assert found(engine, filter_string) == expected


# -- tags -----------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("filter_string", "expected"),
    [
        ("tags.team = 'vision'", {"r2"}),
        ("tag.team != 'vision'", {"r1", "r3"}),
        ("tags.team LIKE 'V%'", {"r1"}),  # case-sensitive on SQLite too
        ("tags.team LIKE '%ision'", {"r1", "r2"}),
        ("tags.team LIKE 'vision'", {"r2"}),
        ("tags.team ILIKE 'VISION'", {"r1", "r2"}),
        ("tags.team ILIKE '_ision'", {"r1", "r2"}),
        ("tags.team IN ('nlp', 'Vision')", {"r1", "r3"}),
        ("tags.team NOT IN ('nlp')", {"r1", "r2"}),
        ("tags.team < 'a'", {"r1"}),  # byte order: upper case first
        ("tags.note = 5", {"r1"}),  # an unquoted number compares as its text
        ("tags.version = 1.0", {"r2"}),
        ("tags.version = 1", set()),
        ("tags.`my tag` = 'x y'", {"r1"}),
        ("tags.\"my tag\" LIKE 'x %'", {"r1"}),
        ("tags.glob LIKE 'a*[b]?'", {"r3"}),  # GLOB characters are literal
        ("tags.glob LIKE 'a*%'", {"r3"}),
        ("tags.glob LIKE 'a_b_'", {"r1"}),
        ("tags.glob ILIKE 'A%[B]_'", {"r3"}),
        ("tags.team IS NULL", {"r4", "r7"}),
        ("tags.team IS NOT NULL AND tags.glob IS NOT NULL", {"r1", "r3"}),
        ("tags.team = 'it''s'", set()),
    ],
)
def test_tags(engine: sa.Engine, filter_string: str, expected: set[str]) -> None:
    assert found(engine, filter_string) == expected


# -- attributes -----------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("filter_string", "expected"),
    [
        ("attributes.status = 'FINISHED'", {"r1", "r4", "r7"}),
        ("attribute.status != 'FINISHED'", {"r2", "r3"}),
        ("attr.status IN ('RUNNING', 'FAILED')", {"r2", "r3"}),
        ("run.status NOT IN ('FINISHED')", {"r2", "r3"}),
        ("attributes.run_id = 'r1'", {"r1"}),
        ("attributes.run_id IN ('r1', 'r2', 'r5')", {"r1", "r2"}),
        ("attributes.run_name = 'alpha'", {"r1"}),
        ("attributes.run_name LIKE 'alpha%'", {"r1"}),
        ("attributes.run_name ILIKE 'alpha%'", {"r1", "r2"}),
        ("attributes.run_name LIKE 'beta_1'", {"r3", "r4"}),
        ("attributes.run_name LIKE 'beta\\_1'", {"r3"}),  # backslash escapes a wildcard
        ("attributes.run_name LIKE 'beta\\%%'", {"r4"}),
        ("attributes.user_id = 'ann'", {"r1", "r3"}),
        ("attributes.artifact_uri LIKE '/art/r_'", {"r1", "r2", "r3", "r4", "r7"}),
        ("attributes.start_time > 1500", {"r2", "r3", "r4"}),
        ("attributes.start_time >= '3000'", {"r3", "r4"}),
        ("attributes.created <= 2000", {"r1", "r2", "r7"}),
        ("attributes.start_time = 1000.5", set()),
        ("attributes.start_time < 1000.5", {"r1", "r7"}),
        ("attributes.start_time IS NULL", set()),  # start_time is always set
        ("attributes.end_time IS NULL", {"r2", "r7"}),
        ("attributes.end_time IS NOT NULL", {"r1", "r3", "r4"}),
        ("attributes.lifecycle_stage = 'active'", {"r1", "r2", "r3", "r4", "r7"}),
        ("ATTRIBUTES.STATUS = 'FAILED'", {"r3"}),
    ],
)
def test_attributes(engine: sa.Engine, filter_string: str, expected: set[str]) -> None:
    assert found(engine, filter_string) == expected


def test_everything_together(engine: sa.Engine) -> None:
    text = (
        "params.n_estimators >= 100 AND metrics.f1 > 0.6 and tags.team ILIKE '%i%' "
        "AnD attributes.status = 'FINISHED' AND params.lr IS NOT NULL"
    )
    assert runs(engine, text) == ["r1"]


def test_blank_filter_matches_all(engine: sa.Engine) -> None:
    assert found(engine, None) == found(engine, "  ") == {"r1", "r2", "r3", "r4", "r7"}


def test_stages_and_experiments(engine: sa.Engine) -> None:
    assert found(engine, "params.lr = 0.1", stages=("deleted",)) == {"r6"}
    assert found(engine, "params.lr = 0.1", stages=("active", "deleted")) == {"r1", "r6"}
    assert found(engine, "params.lr = 0.1", ids=(1, 2)) == {"r1", "r5"}
    assert found(engine, "params.lr = '0.1'", ids=(1, 2)) == {"r5"}
    assert found(engine, "", ids=(2,)) == {"r5"}
    assert found(engine, "", ids=()) == set()
    assert found(engine, "", stages=()) == set()


# -- order_by -------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("order_by", "expected"),
    [
        (None, ["r4", "r3", "r2", "r1", "r7"]),  # start_time DESC
        (["attributes.start_time ASC"], ["r7", "r1", "r2", "r3", "r4"]),
        (["attributes.start_time DESC"], ["r4", "r3", "r2", "r1", "r7"]),
        (["metrics.f1 DESC"], ["r1", "r3", "r7", "r2", "r4"]),  # lacking: last
        (["metrics.f1"], ["r2", "r7", "r3", "r1", "r4"]),
        (["metrics.f1 asc"], ["r2", "r7", "r3", "r1", "r4"]),
        (["metrics.acc DESC"], ["r1", "r4", "r3", "r2", "r7"]),  # NaN sorts with missing
        (["params.lr ASC"], ["r2", "r1", "r3", "r4", "r7"]),  # numbers, strings, missing
        (["params.lr DESC"], ["r1", "r2", "r3", "r4", "r7"]),
        (["params.n_estimators"], ["r2", "r1", "r4", "r3", "r7"]),  # 50 < 100 = 1e2 < 200
        (["tags.team ASC"], ["r1", "r3", "r2", "r4", "r7"]),  # byte order
        (["tags.team DESC"], ["r2", "r3", "r1", "r4", "r7"]),
        (["`metrics.my metric` DESC"], ["r3", "r4", "r2", "r1", "r7"]),
        (["metrics.`my metric` DESC"], ["r3", "r4", "r2", "r1", "r7"]),
        (["attributes.run_name"], ["r2", "r1", "r4", "r3", "r7"]),
        (["attributes.status DESC", "metrics.f1 DESC"], ["r2", "r1", "r7", "r4", "r3"]),
        (["attributes.end_time DESC"], ["r4", "r3", "r1", "r2", "r7"]),
    ],
)
def test_order_by(engine: sa.Engine, order_by: list[str] | None, expected: list[str]) -> None:
    assert runs(engine, None, order_by) == expected


def test_order_by_a_filtered_key_reuses_its_join(engine: sa.Engine) -> None:
    query = search.compile_runs_search([1], "metrics.f1 > 0.55", ["active"], ["metrics.f1"], 9, 0)
    assert str(query).count("latest_metrics AS") == 1
    assert runs(engine, "metrics.f1 > 0.55", ["metrics.f1"]) == ["r7", "r3", "r1"]
    assert runs(engine, "params.lr IS NULL", ["params.lr DESC"]) == ["r4", "r7"]


def test_paging_with_tokens(engine: sa.Engine) -> None:
    every = runs(engine, None, ["metrics.f1 DESC"])
    pages, token = [], None
    while True:
        offset = search.decode_page_token(token)
        page = runs(engine, None, ["metrics.f1 DESC"], max_results=2, offset=offset)
        pages.extend(page)
        if len(page) < 2:
            break
        token = search.encode_page_token(offset + 2)
    assert pages == every


def test_page_tokens() -> None:
    assert search.decode_page_token(None) == 0
    assert search.decode_page_token("") == 0
    assert search.decode_page_token(search.encode_page_token(1234)) == 1234
    bad = ["garbage", "!!", search.encode_page_token(-1), "eyJ4IjogMX0=", "bnVsbA==", "dHJ1ZQ=="]
    for token in bad:
        with pytest.raises(InvalidParameterValue, match="Invalid page token"):
            search.decode_page_token(token)


def test_bad_limits() -> None:
    with pytest.raises(InvalidParameterValue, match="max_results"):
        search.compile_runs_search([1], None, ["active"], None, -1, 0)
    with pytest.raises(InvalidParameterValue, match="offset"):
        search.compile_runs_search([1], None, ["active"], None, 10, -3)
    with pytest.raises(InvalidParameterValue, match="experiment ids"):
        search.compile_runs_search(["x"], None, ["active"], None, 10, 0)  # type: ignore[list-item]


# -- experiments ----------------------------------------------------------------------------
def experiments(
    engine: sa.Engine, filter_string: str | None, order_by=None, stages=("active",)
) -> list[str]:  # type: ignore[no-untyped-def]
    query = search.compile_experiments_search(filter_string, stages, order_by, 100, 0)
    with engine.connect() as conn:
        return [row.name for row in conn.execute(query)]


@pytest.mark.parametrize(
    ("filter_string", "expected"),
    [
        (None, ["fraud-model", "Fraud v2", "Default"]),  # creation_time DESC
        ("name = 'Default'", ["Default"]),
        ("attributes.name LIKE 'fraud%'", ["fraud-model"]),
        ("name ILIKE 'fraud%'", ["fraud-model", "Fraud v2"]),
        ("`name` != 'Default'", ["fraud-model", "Fraud v2"]),
        ("tags.team = 'vision'", ["Default"]),
        ("creation_time > 150 AND last_update_time < 300", ["Fraud v2"]),
        ("experiment_id = 2", ["fraud-model"]),
        ("attributes.experiment_id IN ('1', 3)", ["Fraud v2", "Default"]),
        ("tags.team IS NULL", ["Fraud v2"]),
    ],
)
def test_experiments(engine: sa.Engine, filter_string: str | None, expected: list[str]) -> None:
    assert experiments(engine, filter_string) == expected


def test_experiments_order_and_stages(engine: sa.Engine) -> None:
    assert experiments(engine, None, ["name"]) == ["Default", "Fraud v2", "fraud-model"]
    assert experiments(engine, None, ["tags.team DESC"]) == ["Default", "fraud-model", "Fraud v2"]
    assert experiments(engine, "tags.team = 'vision'", stages=("deleted",)) == ["old"]
    with pytest.raises(FilterSyntaxError, match=r"unknown prefix 'metrics\.'"):
        experiments(engine, "metrics.x > 1")


def test_a_new_entity_is_a_declaration(engine: sa.Engine) -> None:
    """Model versions: composite link (name, version) to their tags; same parser and compiler."""
    meta = sa.MetaData()
    versions = sa.Table(
        "search_test_versions",
        meta,
        sa.Column("name", sa.String(100), primary_key=True),
        sa.Column("version", sa.Integer, primary_key=True),
        sa.Column("current_stage", sa.String(20)),
    )
    vtags = sa.Table(
        "search_test_version_tags",
        meta,
        sa.Column("name", sa.String(100), primary_key=True),
        sa.Column("version", sa.Integer, primary_key=True),
        sa.Column("key", sa.String(100), primary_key=True),
        sa.Column("value", sa.Text),
    )
    spec = search.EntitySpec(
        name="model_version",
        table=versions,
        attributes={
            "name": search.Attribute("name", "string"),
            "version": search.Attribute("version", "number"),
            "current_stage": search.Attribute("current_stage", "string"),
        },
        children={
            "tags": search.KeyValues(vtags, (("name", "name"), ("version", "version")), "string")
        },
        prefixes={"tags": "tags", "tag": "tags"},
        unique="version",
        bare_attributes=True,
        default_order=("name", "version DESC"),
    )
    meta.create_all(engine)
    try:
        with engine.begin() as conn:
            conn.execute(
                versions.insert(),
                [
                    {"name": "m", "version": v, "current_stage": s}
                    for v, s in [(1, "Archived"), (2, "Production"), (3, "None")]
                ],
            )
            conn.execute(vtags.insert(), [{"name": "m", "version": 2, "key": "ok", "value": "y"}])
        text = "name = 'm' AND version >= 2 AND tags.ok = 'y' AND current_stage LIKE 'Prod%'"
        query = search._compile(spec, [], text, None, 10, 0)
        with engine.connect() as conn:
            assert [r.version for r in conn.execute(query)] == [2]
            query = search._compile(spec, [], "version != 2", None, 10, 0)
            assert [r.version for r in conn.execute(query)] == [3, 1]
    finally:
        meta.drop_all(engine)


# -- parsing --------------------------------------------------------------------------------
def test_parse_filter_values() -> None:
    text = (
        "params.lr = 0.10 and tags.t = 0.10 AND metrics.m <> '2' and params.s in ('a', 'b') "
        "AND attributes.end_time is not null AND params.x NOT in (1, 2)"
    )
    parsed = search.parse_filter(text, search.RUNS)
    assert [(c.field.source, c.field.key, c.op, c.value) for c in parsed] == [
        ("params", "lr", "=", 0.1),
        ("tags", "t", "=", "0.10"),
        ("metrics", "m", "!=", 2.0),
        ("params", "s", "IN", ("a", "b")),
        ("attributes", "end_time", "IS NOT NULL", None),
        ("params", "x", "NOT IN", (1.0, 2.0)),
    ]
    starts = ["params.lr", "tags.t", "metrics.m", "params.s", "attributes.end", "params.x"]
    assert [c.position for c in parsed] == [text.index(start) for start in starts]
    keys = search.parse_order_by(
        ["metrics.f1 DESC", "attr.created", "params.`a b` asc"], search.RUNS
    )
    assert [(k.field.key, k.ascending) for k in keys] == [
        ("f1", False),
        ("start_time", True),
        ("a b", True),
    ]
    assert search.parse_order_by(None, search.RUNS) == []


FILTER_ERRORS = [
    ("metrics.f1 >", "expected a value after '>'", 12),
    ("metrics.f1 >> 3", "expected a value after '>'", 12),
    ("metrics.f1 > >", "expected a value after '>'", 13),
    ("foo.x = 1", "unknown prefix 'foo.'; valid prefixes: attributes.", 0),
    ("attributes.bogus = 1", "unknown run attribute 'bogus'; valid: run_id", 0),
    ("params.a = 'abc", "unclosed quote", 11),
    ("tags.`a b = 1", "unclosed quote", 5),
    ("params.a IN ()", "expected a value in the IN list", 13),
    ("params.a IN 'x'", "expected '(' after IN", 12),
    ("params.a IN ('x' 'y')", "expected ',' or ')'", 17),
    ("params.a IN ('x', )", "expected a value after ','", 18),
    ("params.a IN ('x', 1)", "mixes numbers and quoted strings", 18),
    ("params.a LIKE 5", "expected a quoted pattern after LIKE", 14),
    ("metrics.a LIKE 'x'", "LIKE needs a string field", 10),
    ("attributes.start_time ILIKE 'x'", "ILIKE needs a string field", 22),
    ("metrics.a = 1 OR metrics.b = 2", "OR is not supported", 14),
    ("metrics.a = 1 AND", "expected a condition after AND", 17),
    ("AND metrics.a = 1", "expected an identifier", 0),
    ("params.a = abc", "quote strings: 'abc'", 11),
    ("params.a = true", "expected a value after '='", 11),
    ("metrics.a = 'abc'", "is numeric: expected a number", 12),
    ("attributes.start_time > 'yesterday'", "is numeric", 24),
    ("metrics.a ~ 1", "expected an operator", 10),
    ("metrics.a ! 1", "unknown operator '!'", 10),
    ("metrics.a", "expected an operator", 9),
    ("metrics.a IS 1", "expected NULL", 13),
    ("metrics.a IS NOT", "expected NULL", 16),
    ("metrics.a NOT LIKE 'x'", "expected IN after NOT", 14),
    ("metrics. = 1", "expected a key after 'metrics.'", 8),
    ("metrics.`` = 1", "expected a non-empty key", 0),
    ("f1 > 1", "expected an identifier", 0),
    ("metrics.a = 1 metrics.b = 2", "expected AND or the end", 14),
    ("metrics.a@b = 1", "needs quoting", 0),
    ("tags.x LIKE 'a\\'", "lone backslash", 12),
    ("(metrics.a = 1)", "expected an identifier", 0),
    ("'metrics.a' = 1", "expected an identifier", 0),
    ("`foo.bar` = 1", "unknown prefix", 0),
    ("metrics.a = 1 AND metrics.b = 5x", "quote strings", 30),
]


@pytest.mark.parametrize(("text", "message", "position"), FILTER_ERRORS)
def test_filter_errors(text: str, message: str, position: int) -> None:
    with pytest.raises(FilterSyntaxError) as error:
        search.parse_filter(text, search.RUNS)
    assert message in str(error.value)
    assert error.value.position == position
    assert f"position {position}" in str(error.value)
    assert error.value.error_code == "INVALID_PARAMETER_VALUE"


ORDER_ERRORS = [
    ("metrics.f1 DOWN", "expected ASC, DESC or the end after 'metrics.f1'", 11),
    ("metrics.f1 DESC extra", "expected ASC, DESC or the end", 16),
    ("foo.x", "unknown prefix 'foo.'", 0),
    ("attributes.nope DESC", "unknown run attribute 'nope'", 0),
    ("  ", "expected a field to order by", 2),
    ("f1 DESC", "expected an identifier", 0),
    ("`metrics.a b DESC", "unclosed quote", 0),
]


@pytest.mark.parametrize(("text", "message", "position"), ORDER_ERRORS)
def test_order_by_errors(text: str, message: str, position: int) -> None:
    with pytest.raises(FilterSyntaxError) as error:
        search.parse_order_by(["metrics.ok", text], search.RUNS)
    assert message in str(error.value)
    assert error.value.position == position
    assert f"position {position}" in str(error.value)


def test_bad_argument_types() -> None:
    with pytest.raises(InvalidParameterValue, match="list of strings"):
        search.parse_order_by("metrics.f1", search.RUNS)  # type: ignore[arg-type]
    with pytest.raises(InvalidParameterValue, match="must be strings"):
        search.parse_order_by([3], search.RUNS)  # type: ignore[list-item]
    with pytest.raises(InvalidParameterValue, match="must be a string"):
        search.parse_filter(3, search.RUNS)  # type: ignore[arg-type]


def test_sqlite_plan_uses_the_metric_index(tmp_path: Path) -> None:
    """The benchmark query walks ix_latest_metrics_key_value in order and stops after a page."""
    engine = sa.create_engine(f"sqlite:///{tmp_path / 'plan.db'}")
    schema.metadata.create_all(engine)
    query = search.compile_runs_search(
        [1],
        "metrics.f1 > 0.85 AND params.n_estimators > 50",
        ["active"],
        ["metrics.f1 DESC"],
        10,
        0,
    )
    sql = query.compile(engine, compile_kwargs={"literal_binds": True})
    with engine.connect() as conn:
        plan = [row[3] for row in conn.exec_driver_sql(f"EXPLAIN QUERY PLAN {sql}")]
    assert "ix_latest_metrics_key_value" in plan[0]
    assert not any(line == "USE TEMP B-TREE FOR ORDER BY" for line in plan)
