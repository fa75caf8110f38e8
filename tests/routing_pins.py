"""An A/B pin and unit ids for the routing tests, importable by another interpreter too
(tests/test_routing.py checks that one assigns the same variants)."""
from __future__ import annotations

from datetime import UTC, datetime

from contracts.pin import ABTest, Challenger, Lineage, ModelRef, Pin, Promotion, Unit

WHEN = Promotion(by="Ada <ada@example.com>", at=datetime(2026, 1, 1, tzinfo=UTC))


def ab_pin(split_b: int = 10, a: int = 3, b: int = 4) -> Pin:
    """A production pin testing churn version `b` against `a`, `split_b` percent to b."""
    def ref(v: int) -> ModelRef:
        return ModelRef(name="churn", version=v, uri=f"models:/churn/{v}", sha256=f"{v:x}" * 64)

    lineage = Lineage(run_id="r", git_commit="c", data_hash="d")
    return Pin(environment="production", model=ref(a), lineage=lineage, promoted=WHEN,
               ab=ABTest(split={"a": 100 - split_b, "b": split_b},
                         unit=Unit(header="X-Customer-Id"),
                         b=Challenger(model=ref(b), lineage=lineage, promoted=WHEN)))


UNITS = [f"customer-{i}" for i in range(5000)]
