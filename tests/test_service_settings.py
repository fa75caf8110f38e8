"""Service settings come from environment variables, and a bad one is named."""
from __future__ import annotations

from pathlib import Path

import pytest

from contracts.signature import Signature
from service.settings import Settings, SettingsError
from service.validation import RequestCodec, RequestInvalid


def test_settings_are_read_from_the_environment():
    s = Settings.parse({"MODEL_PIN": "/pins/model.yaml", "API_KEYS": "a, b,", "MAX_BATCH_ROWS": "50",
                        "JWT_PUBLIC_KEY": "-----BEGIN PUBLIC KEY-----"})
    assert s.model_pin == Path("/pins/model.yaml")
    assert s.api_keys == ("a", "b") and s.auth_enabled
    assert s.max_batch_rows == 50
    assert s.jwt_algorithms == ("RS256",)


@pytest.mark.parametrize("env, words", [
    ({}, "MODEL_PIN is not set"),
    ({"MODEL_PIN": "p", "MAX_BATCH_ROWS": "lots"}, "MAX_BATCH_ROWS='lots' is not an integer"),
    ({"MODEL_PIN": "p", "PIN_POLL_SECONDS": "-1"}, "PIN_POLL_SECONDS='-1' must be at least 0"),
])
def test_a_bad_setting_is_named(env, words):
    with pytest.raises(SettingsError, match=words):
        Settings.parse(env)


def test_request_rules_follow_the_signature():
    sig = Signature.model_validate({
        "model": "m", "target": "t", "classes": ["a", "b"], "positive_class": "b",
        "features": [{"name": "n", "type": "integer", "min": 0, "max": 5},
                     {"name": "x", "type": "number"},
                     {"name": "c", "type": "category", "categories": ["p", "q"]}]})
    codec = RequestCodec(sig, max_rows=2)
    batch = codec.decode(b'[{"n": 1, "x": 2, "c": "p"}, {"n": 5, "x": -1.5, "c": "q"}]')
    assert batch.rows == 2 and batch.columns == [(1, 5), (2.0, -1.5), ("p", "q")]
    cases = {
        b'{"n": 6, "x": 1, "c": "p"}': ("n", "maximum"),
        b'[{"n": 1, "x": 1, "c": "p"}, {"n": 1, "x": 1, "c": "z"}]': ("c", "category"),
        b'{"n": 1, "x": 1e400, "c": "p"}': ("x", "finite"),
        b'[{"n":1,"x":1,"c":"p"},{"n":1,"x":1,"c":"p"},{"n":1,"x":1,"c":"p"}]':
            (None, "batch_size"),
    }
    for body, (field, rule) in cases.items():
        with pytest.raises(RequestInvalid) as err:
            codec.decode(body)
        assert (err.value.errors[0]["field"], err.value.errors[0]["rule"]) == (field, rule)
    with pytest.raises(RequestInvalid) as err:
        codec.decode(b'[{"n": 1, "x": 1, "c": "p"}, {"n": 1, "x": 1, "c": "z"}]')
    assert err.value.errors[0]["row"] == 1 and "record 1" in err.value.message
