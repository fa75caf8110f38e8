"""The declared schema of the churn data: what a valid row is, column by column.

The rules are data, not code, so the same declaration validates ingested files, writes
the model's `signature.json`, and (through it) validates every request the service takes.
"""
from __future__ import annotations

from dataclasses import dataclass

from contracts.signature import Feature


@dataclass(frozen=True)
class Column:
    """One declared column."""

    name: str
    type: str  # "id" | "integer" | "number" | "category"
    categories: tuple[str, ...] = ()
    min: float | None = None
    max: float | None = None

    def as_feature(self) -> Feature:
        return Feature(
            name=self.name,
            type=self.type,
            categories=list(self.categories) or None,
            min=self.min,
            max=self.max,
        )


YES_NO = ("No", "Yes")
INTERNET_ADDON = ("No", "No internet service", "Yes")

ID = Column("customerID", "id")
TARGET = Column("Churn", "category", YES_NO)
POSITIVE_CLASS = "Yes"

FEATURES: tuple[Column, ...] = (
    Column("gender", "category", ("Female", "Male")),
    Column("SeniorCitizen", "integer", min=0, max=1),
    Column("Partner", "category", YES_NO),
    Column("Dependents", "category", YES_NO),
    # Months with the company; the Telco data tops out at 72, the rule allows 50 years.
    Column("tenure", "integer", min=0, max=600),
    Column("PhoneService", "category", YES_NO),
    Column("MultipleLines", "category", ("No", "No phone service", "Yes")),
    Column("InternetService", "category", ("DSL", "Fiber optic", "No")),
    Column("OnlineSecurity", "category", INTERNET_ADDON),
    Column("OnlineBackup", "category", INTERNET_ADDON),
    Column("DeviceProtection", "category", INTERNET_ADDON),
    Column("TechSupport", "category", INTERNET_ADDON),
    Column("StreamingTV", "category", INTERNET_ADDON),
    Column("StreamingMovies", "category", INTERNET_ADDON),
    Column("Contract", "category", ("Month-to-month", "One year", "Two year")),
    Column("PaperlessBilling", "category", YES_NO),
    Column(
        "PaymentMethod",
        "category",
        ("Bank transfer (automatic)", "Credit card (automatic)", "Electronic check", "Mailed check"),
    ),
    Column("MonthlyCharges", "number", min=0.0, max=10_000.0),
    Column("TotalCharges", "number", min=0.0, max=1_000_000.0),
)

COLUMNS: tuple[Column, ...] = (ID, *FEATURES, TARGET)
FEATURE_NAMES = [c.name for c in FEATURES]
NUMERIC = [c.name for c in FEATURES if c.type in ("integer", "number")]
CATEGORICAL = [c.name for c in FEATURES if c.type == "category"]
