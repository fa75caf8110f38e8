"""The prediction log and its feedback.

Revision ID: 0001
Revises:
Create Date: 2026-12-02
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "predictions",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("model", sa.String(64), nullable=False),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("digest", sa.String(64), nullable=False),
        sa.Column("environment", sa.String(64), nullable=False),
        sa.Column("variant", sa.String(32), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("features", sa.JSON, nullable=False),
        sa.Column("predicted_label", sa.String(256), nullable=True),
        sa.Column("predicted_value", sa.Float, nullable=True),
        sa.Column("output", sa.JSON, nullable=False),
    )
    op.create_index("ix_predictions_model_created", "predictions", ["model", "created_at"])
    op.create_index("ix_predictions_expires", "predictions", ["expires_at"])
    op.create_table(
        "feedback",
        sa.Column("prediction_id", sa.String(32),
                  sa.ForeignKey("predictions.id", ondelete="CASCADE"), primary_key=True),
        sa.Column("label", sa.String(256), nullable=True),
        sa.Column("value", sa.Float, nullable=True),
        sa.Column("correct", sa.Boolean, nullable=True),
        sa.Column("abs_error", sa.Float, nullable=True),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_feedback_received", "feedback", ["received_at"])


def downgrade() -> None:
    op.drop_index("ix_feedback_received", "feedback")
    op.drop_table("feedback")
    op.drop_index("ix_predictions_expires", "predictions")
    op.drop_index("ix_predictions_model_created", "predictions")
    op.drop_table("predictions")
