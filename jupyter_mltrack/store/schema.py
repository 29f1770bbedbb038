"""The store's tables (SQLAlchemy Core). Portable SQL only: SQLite and PostgreSQL.

Runs have an integer surrogate key (``runs.id``) used by every child table; the public id is
``runs.run_uuid``. Params keep a numeric shadow (``value_num``) written at log time so numeric
comparisons need no casts at query time. NaN metric values are stored as ``value = NULL`` with
``is_nan = true`` (SQLite cannot store NaN), so NaN never matches a comparison on either database.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Float,
    ForeignKey,
    ForeignKeyConstraint,
    Index,
    Integer,
    MetaData,
    PrimaryKeyConstraint,
    String,
    Table,
    Text,
    UniqueConstraint,
)

# Bump together with a new migration in migrations/versions/.
SCHEMA_REVISION = "0004"
VERSION_TABLE = "mltrack_schema_version"

metadata = MetaData()

experiments = Table(
    "experiments",
    metadata,
    Column("experiment_id", Integer, primary_key=True, autoincrement=True),
    Column("name", String(500), nullable=False, unique=True),
    Column("artifact_location", String(2000), nullable=False),
    Column("lifecycle_stage", String(20), nullable=False, default="active"),
    Column("creation_time", BigInteger),
    Column("last_update_time", BigInteger),
)

experiment_tags = Table(
    "experiment_tags",
    metadata,
    Column(
        "experiment_id",
        Integer,
        ForeignKey("experiments.experiment_id", ondelete="CASCADE"),
        nullable=False,
    ),
    Column("key", String(250), nullable=False),
    Column("value", Text),
    PrimaryKeyConstraint("experiment_id", "key"),
)

runs = Table(
    "runs",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("run_uuid", String(32), nullable=False, unique=True),
    Column(
        "experiment_id",
        Integer,
        ForeignKey("experiments.experiment_id", ondelete="CASCADE"),
        nullable=False,
    ),
    Column("name", String(250)),
    Column("user_id", String(256)),
    Column("status", String(20), nullable=False),
    Column("start_time", BigInteger, nullable=False),
    Column("end_time", BigInteger),
    Column("lifecycle_stage", String(20), nullable=False),
    Column("artifact_uri", String(2000)),
    Column("deleted_time", BigInteger),
    Index("ix_runs_experiment_start", "experiment_id", "start_time"),
)

params = Table(
    "params",
    metadata,
    Column("run_id", Integer, ForeignKey("runs.id", ondelete="CASCADE"), nullable=False),
    Column("key", String(250), nullable=False),
    Column("value", Text, nullable=False),
    Column("value_num", Float),
    PrimaryKeyConstraint("run_id", "key"),
    Index("ix_params_key_num", "key", "value_num"),
)

tags = Table(
    "tags",
    metadata,
    Column("run_id", Integer, ForeignKey("runs.id", ondelete="CASCADE"), nullable=False),
    Column("key", String(250), nullable=False),
    Column("value", Text),
    PrimaryKeyConstraint("run_id", "key"),
)

latest_metrics = Table(
    "latest_metrics",
    metadata,
    Column("run_id", Integer, ForeignKey("runs.id", ondelete="CASCADE"), nullable=False),
    Column("key", String(250), nullable=False),
    Column("value", Float),
    Column("is_nan", Boolean, nullable=False, default=False),
    Column("timestamp", BigInteger, nullable=False),
    Column("step", BigInteger, nullable=False),
    PrimaryKeyConstraint("run_id", "key"),
    Index("ix_latest_metrics_key_value", "key", "value"),
)

# The metric history: clustered by (run, key, step) on SQLite (WITHOUT ROWID) so a point costs
# ~35 bytes and a history read is one range scan. Identical points collapse, as in MLflow.
metrics = Table(
    "metrics",
    metadata,
    Column("run_id", Integer, ForeignKey("runs.id", ondelete="CASCADE"), nullable=False),
    Column("key", String(250), nullable=False),
    Column("step", BigInteger, nullable=False),
    Column("timestamp", BigInteger, nullable=False),
    Column("value", Float, nullable=False),
    Column("is_nan", Boolean, nullable=False),
    PrimaryKeyConstraint("run_id", "key", "step", "timestamp", "value", "is_nan"),
    sqlite_with_rowid=False,
)


# -- model registry (revision 0002) -----------------------------------------------------------
registered_models = Table(
    "registered_models",
    metadata,
    Column("model_id", Integer, primary_key=True, autoincrement=True),
    Column("name", String(256), nullable=False, unique=True),
    Column("description", Text),
    Column("creation_timestamp", BigInteger, nullable=False),
    Column("last_updated_timestamp", BigInteger, nullable=False),
)

registered_model_tags = Table(
    "registered_model_tags",
    metadata,
    Column(
        "model_id",
        Integer,
        ForeignKey("registered_models.model_id", ondelete="CASCADE"),
        nullable=False,
    ),
    Column("key", String(250), nullable=False),
    Column("value", Text),
    PrimaryKeyConstraint("model_id", "key"),
)

# ``name`` repeats the model's name (kept in step on rename) so versions search by name alone.
model_versions = Table(
    "model_versions",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column(
        "model_id",
        Integer,
        ForeignKey("registered_models.model_id", ondelete="CASCADE"),
        nullable=False,
    ),
    Column("name", String(256), nullable=False),
    Column("version", Integer, nullable=False),
    Column("creation_timestamp", BigInteger, nullable=False),
    Column("last_updated_timestamp", BigInteger, nullable=False),
    Column("description", Text),
    Column("user_id", String(256)),
    Column("current_stage", String(20), nullable=False),
    Column("source", String(2000), nullable=False),
    Column("run_id", String(32)),
    Column("run_link", String(2000)),
    Column("status", String(20), nullable=False),
    Column("status_message", Text),
    UniqueConstraint("model_id", "version", name="uq_model_versions_model_version"),
    Index("ix_model_versions_name_version", "name", "version"),
    Index("ix_model_versions_model_stage", "model_id", "current_stage"),
    Index("ix_model_versions_run", "run_id"),
)

model_version_tags = Table(
    "model_version_tags",
    metadata,
    Column(
        "version_id", Integer, ForeignKey("model_versions.id", ondelete="CASCADE"), nullable=False
    ),
    Column("key", String(250), nullable=False),
    Column("value", Text),
    PrimaryKeyConstraint("version_id", "key"),
)

registered_model_aliases = Table(
    "registered_model_aliases",
    metadata,
    Column(
        "model_id",
        Integer,
        ForeignKey("registered_models.model_id", ondelete="CASCADE"),
        nullable=False,
    ),
    Column("alias", String(256), nullable=False),
    Column(
        "version_id", Integer, ForeignKey("model_versions.id", ondelete="CASCADE"), nullable=False
    ),
    PrimaryKeyConstraint("model_id", "alias"),
)

# Every stage transition, alias move and promotion decision: who, when, from, to, why.
registry_audit = Table(
    "registry_audit",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column(
        "model_id",
        Integer,
        ForeignKey("registered_models.model_id", ondelete="CASCADE"),
        nullable=False,
    ),
    Column("name", String(256), nullable=False),
    Column("version", Integer),
    Column("action", String(32), nullable=False),
    Column("target", String(256)),  # the stage or alias acted on
    Column("from_value", String(256)),
    Column("to_value", String(256)),
    Column("user_id", String(256)),
    Column("timestamp", BigInteger, nullable=False),
    Column("comment", Text),
    Column("details", Text),  # JSON: validation results
    Index("ix_registry_audit_model", "model_id", "id"),
)


# -- logged models (revision 0003): MLflow 3's models with their own id ---------------------
logged_models = Table(
    "logged_models",
    metadata,
    Column("model_id", String(40), primary_key=True),
    Column(
        "experiment_id",
        Integer,
        ForeignKey("experiments.experiment_id", ondelete="CASCADE"),
        nullable=False,
    ),
    Column("name", String(500), nullable=False),
    Column("artifact_location", String(2000), nullable=False),
    Column("creation_timestamp", BigInteger, nullable=False),
    Column("last_updated_timestamp", BigInteger, nullable=False),
    Column("status", String(20), nullable=False),
    Column("status_message", Text),
    Column("model_type", String(500)),
    Column("source_run_id", String(32)),
    Column("lifecycle_stage", String(20), nullable=False),
    Index("ix_logged_models_experiment_created", "experiment_id", "creation_timestamp"),
    Index("ix_logged_models_source_run", "source_run_id"),
)


def _logged_model_fk() -> Column:  # type: ignore[type-arg]
    return Column(
        "model_id",
        String(40),
        ForeignKey("logged_models.model_id", ondelete="CASCADE"),
        nullable=False,
    )


logged_model_tags = Table(
    "logged_model_tags",
    metadata,
    _logged_model_fk(),
    Column("key", String(250), nullable=False),
    Column("value", Text),
    PrimaryKeyConstraint("model_id", "key"),
)

logged_model_params = Table(
    "logged_model_params",
    metadata,
    _logged_model_fk(),
    Column("key", String(250), nullable=False),
    Column("value", Text, nullable=False),
    PrimaryKeyConstraint("model_id", "key"),
)

# Metrics logged against a model (``log_metric(..., model_id=...)``), optionally per dataset.
logged_model_metrics = Table(
    "logged_model_metrics",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    _logged_model_fk(),
    Column("key", String(250), nullable=False),
    Column("value", Float),
    Column("timestamp", BigInteger, nullable=False),
    Column("step", BigInteger, nullable=False),
    Column("run_id", String(32)),
    Column("dataset_name", String(500)),
    Column("dataset_digest", String(36)),
    Index("ix_logged_model_metrics_model_key", "model_id", "key"),
)

# A run's outputs: the logged models it produced (``run.outputs.model_outputs``).
run_model_outputs = Table(
    "run_model_outputs",
    metadata,
    Column("run_id", Integer, ForeignKey("runs.id", ondelete="CASCADE"), nullable=False),
    _logged_model_fk(),
    Column("step", BigInteger, nullable=False),
    PrimaryKeyConstraint("run_id", "model_id", "step"),
)


# -- dataset inputs (revision 0004): ``log_input`` ------------------------------------------
# A dataset is stored once per experiment and (name, digest); runs point at it.
datasets = Table(
    "datasets",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column(
        "experiment_id",
        Integer,
        ForeignKey("experiments.experiment_id", ondelete="CASCADE"),
        nullable=False,
    ),
    Column("name", String(500), nullable=False),
    Column("digest", String(36), nullable=False),
    Column("source_type", String(64), nullable=False),
    Column("source", Text, nullable=False),
    Column("schema", Text),
    Column("profile", Text),
    UniqueConstraint("experiment_id", "name", "digest", name="uq_datasets_experiment_name_digest"),
)

run_inputs = Table(
    "inputs",
    metadata,
    Column("run_id", Integer, ForeignKey("runs.id", ondelete="CASCADE"), nullable=False),
    Column("dataset_id", Integer, ForeignKey("datasets.id", ondelete="CASCADE"), nullable=False),
    PrimaryKeyConstraint("run_id", "dataset_id"),
    Index("ix_inputs_dataset", "dataset_id"),
)

# The input's tags (``mlflow.data.context`` = ``training``): logging again merges them.
input_tags = Table(
    "input_tags",
    metadata,
    Column("run_id", Integer, nullable=False),
    Column("dataset_id", Integer, nullable=False),
    Column("key", String(255), nullable=False),
    Column("value", Text, nullable=False),
    PrimaryKeyConstraint("run_id", "dataset_id", "key"),
    ForeignKeyConstraint(
        ["run_id", "dataset_id"], ["inputs.run_id", "inputs.dataset_id"], ondelete="CASCADE"
    ),
)
