"""A/B routing (contracts/routing.py): a 90/10 split over thousands of units lands within two
points, the same unit always gets the same variant (in another process too), and requests
without a unit are drawn at random with the same odds."""
from __future__ import annotations

import random
import subprocess
import sys
from pathlib import Path

import pytest
from routing_pins import UNITS, ab_pin

from contracts import routing

ROOT = Path(__file__).resolve().parents[1]


def test_a_ninety_ten_split_over_five_thousand_units_lands_within_two_points():
    share_b = sum(routing.variant(ab_pin(), u) == "b" for u in UNITS) / len(UNITS)
    assert abs(share_b - 0.10) <= 0.02, share_b


def test_the_same_unit_always_gets_the_same_variant_in_any_process():
    pin = ab_pin()
    here = [routing.variant(pin, u) for u in UNITS[:200]]
    assert here == [routing.variant(pin, u) for u in UNITS[:200]]
    # Another interpreter (another hash seed) assigns the same: no process state is involved.
    code = ("import sys; sys.path.insert(0, 'tests'); from routing_pins import ab_pin, UNITS; "
            "from contracts import routing; "
            "print(''.join(routing.variant(ab_pin(), u) for u in UNITS[:200]))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, cwd=ROOT, env={"PYTHONHASHSEED": "12345"}).stdout.strip()
    assert out == "".join(here)


def test_requests_without_a_unit_are_drawn_at_random_with_the_split_odds():
    rng = random.Random(7)
    draws = [routing.variant(ab_pin(), None, rng) for _ in range(5000)]
    assert abs(draws.count("b") / 5000 - 0.10) <= 0.02
    assert len(set(draws[:100])) == 2  # not one fixed answer


def test_raising_bs_share_only_moves_units_from_a_to_b_and_a_new_test_reshuffles():
    ten = {u: routing.variant(ab_pin(10), u) for u in UNITS}
    thirty = {u: routing.variant(ab_pin(30), u) for u in UNITS}
    assert all(thirty[u] == "b" for u in UNITS if ten[u] == "b")
    assert abs(sum(v == "b" for v in thirty.values()) / len(UNITS) - 0.30) <= 0.02
    other_test = {u: routing.variant(ab_pin(10, b=5), u) for u in UNITS}
    in_b = {u for u, v in ten.items() if v == "b"}
    again = {u for u, v in other_test.items() if v == "b"}
    # Independent draws: about 10% of this test's b units are in the next test's b.
    assert len(in_b & again) < 0.2 * len(in_b)


def test_unit_ids_are_read_one_way_and_ambiguous_ones_are_refused():
    assert routing.unit_text(" 42 ") == routing.unit_text(42) == "42"
    assert routing.unit_text("") is None and routing.unit_text(None) is None
    for bad in (42.0, True, ["42"]):
        with pytest.raises(ValueError, match="string or an integer"):
            routing.unit_text(bad)
    with pytest.raises(ValueError, match="at most 256"):
        routing.unit_text("x" * 257)


def test_the_bucket_is_the_documented_sha256_so_any_language_can_route_alike():
    import hashlib

    digest = hashlib.sha256(b"churn/3/4\x1fcustomer-42").digest()
    assert routing.bucket("customer-42", "churn/3/4") == int.from_bytes(digest[:8], "big") % 10000
    assert routing.experiment(ab_pin()) == "churn/3/4"
