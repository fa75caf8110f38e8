"""The pin's fields match their patterns whole: nothing may trail them, not even a newline."""
from __future__ import annotations

import pytest
from pydantic import ValidationError

from contracts.pin import ModelRef, Pin

SHA = "ab" * 32


def ref(**fields) -> dict:
    return {"name": "churn", "version": 3, "uri": "models:/churn/3", "sha256": SHA, **fields}


def test_a_plain_reference_is_accepted():
    assert ModelRef.model_validate(ref()).sha256 == SHA


@pytest.mark.parametrize("sha", [SHA + "\n", SHA + "0", SHA.upper(), "\n" + SHA, SHA[:-1]])
def test_a_digest_that_is_not_exactly_64_lowercase_hex_digits_is_refused(sha):
    with pytest.raises(ValidationError, match="64 lowercase hex"):
        ModelRef.model_validate(ref(sha256=sha))


@pytest.mark.parametrize("name", ["churn\n", "churn\nhousing", "-churn", "churn/x", ""])
def test_a_name_that_is_not_a_plain_registry_name_is_refused(name):
    # The uri agrees with the name, so only the name's own pattern can refuse it.
    with pytest.raises(ValidationError, match="plain registry name"):
        ModelRef.model_validate(ref(name=name, uri=f"models:/{name}/3"))


def test_a_yaml_block_scalar_cannot_smuggle_a_trailing_newline_into_the_digest():
    text = (f"environment: staging\nmodel:\n  name: churn\n  version: 3\n"
            f"  uri: models:/churn/3\n  sha256: |\n    {SHA}\n"
            "lineage: {run_id: r, git_commit: c, data_hash: d}\n"
            "promoted: {by: someone, at: '2026-01-01T00:00:00Z'}\n")
    with pytest.raises(ValidationError, match="64 lowercase hex"):
        Pin.parse(text)
    assert Pin.parse(text.replace("sha256: |\n    ", "sha256: ")).model.sha256 == SHA


# --- A/B pins ------------------------------------------------------------------------------

def _pin_data(**extra) -> dict:
    return {"environment": "production", "model": ref(),
            "lineage": {"run_id": "r", "git_commit": "c", "data_hash": "d"},
            "metrics": {"accuracy": 0.8},
            "promoted": {"by": "Ada <ada@example.com>", "at": "2026-01-01T00:00:00Z"}, **extra}


def _ab(**fields) -> dict:
    b = {"model": ref(version=4, uri="models:/churn/4", sha256="cd" * 32),
         "lineage": {"run_id": "r4", "git_commit": "c4", "data_hash": "d4"},
         "metrics": {"accuracy": 0.82},
         "promoted": {"by": "Grace <grace@example.com>", "at": "2026-01-05T00:00:00Z"}}
    return {"split": {"a": 90, "b": 10}, "unit": {"header": "X-Customer-Id"}, "b": b, **fields}


def test_pins_written_before_ab_existed_read_and_write_byte_for_byte(tmp_path):
    # The repository's own pins and a pinned one with a shadow: parse -> write is the identity.
    from pathlib import Path

    root = Path(__file__).resolve().parents[1] / "environments"
    texts = [p.read_text() for p in root.glob("*/*/model.yaml")]
    pinned = Pin.model_validate(_pin_data(shadow=ref(version=2, uri="models:/churn/2")))
    texts.append(pinned.to_yaml())
    for text in texts:
        assert Pin.parse(text).to_yaml() == text
    assert "ab:" not in pinned.to_yaml()


def test_an_ab_pin_names_two_versions_the_split_and_the_unit_and_round_trips():
    pin = Pin.model_validate(_pin_data(ab=_ab(unit={"header": "X-Customer-Id",
                                                   "field": "customerID"})))
    assert pin.is_ab and pin.variant("a").version == 3 and pin.variant("b").version == 4
    text = pin.to_yaml()
    assert Pin.parse(text) == pin and Pin.parse(text).to_yaml() == text
    tail = text.split("\nab:\n", 1)[1]
    assert tail.startswith("  split:\n    a: 90\n    b: 10\n  unit:\n    header: X-Customer-Id\n"
                           "    field: customerID\n  b:\n    model:\n      name: churn\n")
    only_header = Pin.model_validate(_pin_data(ab=_ab())).to_yaml()
    assert "field:" not in only_header  # an unset place is left out, not written as null


@pytest.mark.parametrize(("ab", "message"), [
    (_ab(split={"a": 90, "b": 20}), "add up to 100"),
    (_ab(split={"a": 100, "b": 0}), "from 1 to 99"),
    (_ab(split={"a": 50, "c": 50}), "exactly the variants a and b"),
    (_ab(split={"a": 89.5, "b": 10.5}), "valid integer"),
    (_ab(unit={}), "header, field, or both"),
    (_ab(unit={"header": "X-Id\r\nX-Other: 1"}), "not an HTTP header name"),
    (_ab(unit={"field": "customer id"}), "not a plain field name"),
])
def test_an_ab_pin_with_a_bad_split_or_unit_is_refused_naming_the_problem(ab, message):
    with pytest.raises(ValidationError, match=message):
        Pin.model_validate(_pin_data(ab=ab))


def test_an_ab_pin_compares_two_versions_of_the_same_model_and_runs_no_shadow():
    same = _ab()
    same["b"]["model"] = ref()
    with pytest.raises(ValidationError, match="needs two versions"):
        Pin.model_validate(_pin_data(ab=same))
    other = _ab()
    other["b"]["model"] = ref(name="housing", uri="models:/housing/3")
    with pytest.raises(ValidationError, match="versions of one model"):
        Pin.model_validate(_pin_data(ab=other))
    with pytest.raises(ValidationError, match="a shadow or an A/B test, not both"):
        Pin.model_validate(_pin_data(ab=_ab(), shadow=ref(version=2, uri="models:/churn/2")))
    with pytest.raises(ValidationError, match="no model cannot carry"):
        Pin.model_validate({"environment": "production", "model": None, "ab": _ab()})
