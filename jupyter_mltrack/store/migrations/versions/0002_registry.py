"""Model registry: registered models, versions, tags, aliases and the audit trail.

Revision ID: 0002
Revises: 0001
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"


def _model_fk() -> sa.Column:
    return sa.Column(
        "model_id",
        sa.Integer,
        sa.ForeignKey("registered_models.model_id", ondelete="CASCADE"),
        nullable=False,
    )


def _version_fk() -> sa.Column:
    return sa.Column(
        "version_id",
        sa.Integer,
        sa.ForeignKey("model_versions.id", ondelete="CASCADE"),
        nullable=False,
    )


def upgrade() -> None:
    op.create_table(
        "registered_models",
        sa.Column("model_id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("name", sa.String(256), nullable=False, unique=True),
        sa.Column("description", sa.Text),
        sa.Column("creation_timestamp", sa.BigInteger, nullable=False),
        sa.Column("last_updated_timestamp", sa.BigInteger, nullable=False),
    )
    op.create_table(
        "registered_model_tags",
        _model_fk(),
        sa.Column("key", sa.String(250), nullable=False),
        sa.Column("value", sa.Text),
        sa.PrimaryKeyConstraint("model_id", "key"),
    )
    op.create_table(
        "model_versions",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        _model_fk(),
        sa.Column("name", sa.String(256), nullable=False),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("creation_timestamp", sa.BigInteger, nullable=False),
        sa.Column("last_updated_timestamp", sa.BigInteger, nullable=False),
        sa.Column("description", sa.Text),
        sa.Column("user_id", sa.String(256)),
        sa.Column("current_stage", sa.String(20), nullable=False),
        sa.Column("source", sa.String(2000), nullable=False),
        sa.Column("run_id", sa.String(32)),
        sa.Column("run_link", sa.String(2000)),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("status_message", sa.Text),
        sa.UniqueConstraint("model_id", "version", name="uq_model_versions_model_version"),
    )
    op.create_index("ix_model_versions_name_version", "model_versions", ["name", "version"])
    op.create_index(
        "ix_model_versions_model_stage", "model_versions", ["model_id", "current_stage"]
    )
    op.create_index("ix_model_versions_run", "model_versions", ["run_id"])
    op.create_table(
        "model_version_tags",
        _version_fk(),
        sa.Column("key", sa.String(250), nullable=False),
        sa.Column("value", sa.Text),
        sa.PrimaryKeyConstraint("version_id", "key"),
    )
    op.create_table(
        "registered_model_aliases",
        _model_fk(),
        sa.Column("alias", sa.String(256), nullable=False),
        _version_fk(),
        sa.PrimaryKeyConstraint("model_id", "alias"),
    )
    op.create_table(
        "registry_audit",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        _model_fk(),
        sa.Column("name", sa.String(256), nullable=False),
        sa.Column("version", sa.Integer),
        sa.Column("action", sa.String(32), nullable=False),
        sa.Column("target", sa.String(256)),
        sa.Column("from_value", sa.String(256)),
        sa.Column("to_value", sa.String(256)),
        sa.Column("user_id", sa.String(256)),
        sa.Column("timestamp", sa.BigInteger, nullable=False),
        sa.Column("comment", sa.Text),
        sa.Column("details", sa.Text),
    )
    op.create_index("ix_registry_audit_model", "registry_audit", ["model_id", "id"])
