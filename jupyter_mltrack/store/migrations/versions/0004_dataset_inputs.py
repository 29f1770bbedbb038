"""Dataset inputs (``log_input``): datasets per experiment, run inputs and their tags.

Revision ID: 0004
Revises: 0003
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"


def upgrade() -> None:
    op.create_table(
        "datasets",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column(
            "experiment_id",
            sa.Integer,
            sa.ForeignKey("experiments.experiment_id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("name", sa.String(500), nullable=False),
        sa.Column("digest", sa.String(36), nullable=False),
        sa.Column("source_type", sa.String(64), nullable=False),
        sa.Column("source", sa.Text, nullable=False),
        sa.Column("schema", sa.Text),
        sa.Column("profile", sa.Text),
        sa.UniqueConstraint(
            "experiment_id", "name", "digest", name="uq_datasets_experiment_name_digest"
        ),
    )
    op.create_table(
        "inputs",
        sa.Column(
            "run_id", sa.Integer, sa.ForeignKey("runs.id", ondelete="CASCADE"), nullable=False
        ),
        sa.Column(
            "dataset_id",
            sa.Integer,
            sa.ForeignKey("datasets.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.PrimaryKeyConstraint("run_id", "dataset_id"),
    )
    op.create_index("ix_inputs_dataset", "inputs", ["dataset_id"])
    op.create_table(
        "input_tags",
        sa.Column("run_id", sa.Integer, nullable=False),
        sa.Column("dataset_id", sa.Integer, nullable=False),
        sa.Column("key", sa.String(255), nullable=False),
        sa.Column("value", sa.Text, nullable=False),
        sa.PrimaryKeyConstraint("run_id", "dataset_id", "key"),
        sa.ForeignKeyConstraint(
            ["run_id", "dataset_id"],
            ["inputs.run_id", "inputs.dataset_id"],
            ondelete="CASCADE",
        ),
    )


def downgrade() -> None:
    for table in ("input_tags", "inputs", "datasets"):
        op.drop_table(table)
