"""The two tables of the prediction log (SQLAlchemy Core; migrations/ creates them)."""
from __future__ import annotations

from sqlalchemy import (
    JSON,
    Boolean,
    Column,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
)

metadata = MetaData()

predictions = Table(
    "predictions", metadata,
    # 128 random bits as 32 hex digits: unguessable, unique across replicas and restarts.
    Column("id", String(32), primary_key=True),
    Column("model", String(64), nullable=False),
    Column("version", Integer, nullable=False),
    Column("digest", String(64), nullable=False),
    Column("environment", String(64), nullable=False),
    # The A/B variant that answered (null outside an A/B test).
    Column("variant", String(32), nullable=True),
    Column("created_at", DateTime(timezone=True), nullable=False),
    # When `mlops prune` may delete it: the model's declared retention after created_at
    # (null: kept until deleted by hand).
    Column("expires_at", DateTime(timezone=True), nullable=True),
    # The features as received, without the columns the declaration says are never logged.
    Column("features", JSON, nullable=False),
    # What was answered: the label (classifiers) or the value (regression), and the full output.
    Column("predicted_label", String(256), nullable=True),
    Column("predicted_value", Float, nullable=True),
    Column("output", JSON, nullable=False),
)
Index("ix_predictions_model_created", predictions.c.model, predictions.c.created_at)
Index("ix_predictions_expires", predictions.c.expires_at)

feedback = Table(
    "feedback", metadata,
    Column("prediction_id", String(32), ForeignKey("predictions.id", ondelete="CASCADE"),
           primary_key=True),
    Column("label", String(256), nullable=True),
    Column("value", Float, nullable=True),
    # Classifiers: was the prediction right; regression: its absolute error.
    Column("correct", Boolean, nullable=True),
    Column("abs_error", Float, nullable=True),
    Column("received_at", DateTime(timezone=True), nullable=False),
)
Index("ix_feedback_received", feedback.c.received_at)
