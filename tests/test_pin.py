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
