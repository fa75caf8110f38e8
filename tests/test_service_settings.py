"""Service settings come from environment variables, and a bad one is named."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

from contracts.signature import Signature
from service.settings import Settings, SettingsError, parse_api_keys
from service.validation import RequestCodec, RequestInvalid

BASE = {"MODEL_PIN": "p", "API_KEYS": "k", "DATABASE_URL": "sqlite:///log.db"}


def _public_key() -> str:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    return rsa.generate_private_key(public_exponent=65537, key_size=2048).public_key() \
        .public_bytes(serialization.Encoding.PEM,
                      serialization.PublicFormat.SubjectPublicKeyInfo).decode()


def test_settings_are_read_from_the_environment():
    s = Settings.parse({"MODEL_PIN": "/pins/model.yaml", "API_KEYS": "a, b=admin,",
                        "MAX_BATCH_ROWS": "50", "COALESCE_ROWS": "0",
                        "JWT_PUBLIC_KEY": _public_key(),
                        "JWT_AUDIENCE": "svc", "JWT_ISSUER": "idp", "RATE_LIMIT": "100/minute",
                        "DATABASE_URL": "postgresql://u:p@db/log", "LOG_BUFFER_ROWS": "10"})
    assert s.model_pin == Path("/pins/model.yaml")
    assert [(k.secret, sorted(k.scopes)) for k in s.api_keys] == [
        ("a", ["feedback", "predict"]), ("b", ["admin"])] and s.auth_enabled
    assert s.max_batch_rows == 50 and s.rate_limit == (100, "minute") and s.coalesce_rows == 0
    assert s.jwt_algorithms == ("RS256",)
    assert (s.database_url, s.prediction_log, s.log_buffer_rows) == (
        "postgresql://u:p@db/log", True, 10)


def test_api_keys_name_their_scopes_and_may_end_in_base64_padding():
    keys = parse_api_keys("abc==, xyz==predict+admin, plain=feedback")
    assert [(k.secret, sorted(k.scopes), k.name) for k in keys] == [
        ("abc==", ["feedback", "predict"], "key1"), ("xyz=", ["admin", "predict"], "key2"),
        ("plain", ["feedback"], "key3")]


@pytest.mark.parametrize("env, words", [
    ({}, "MODEL_PIN is not set"),
    ({**BASE, "MAX_BATCH_ROWS": "lots"}, "MAX_BATCH_ROWS='lots' is not an integer"),
    ({**BASE, "PIN_POLL_SECONDS": "-1"}, "PIN_POLL_SECONDS='-1' must be at least 0"),
    ({**BASE, "COALESCE_ROWS": "-1"}, "COALESCE_ROWS='-1' must be at least 0"),
    ({**BASE, "API_KEYS": "k=predict+everything"}, "key 1 names scope 'everything'"),
    ({**BASE, "API_KEYS": "k, k"}, "key 2 is listed twice"),
    ({**BASE, "RATE_LIMIT": "fast"}, "RATE_LIMIT='fast' is not N/unit"),
    ({**BASE, "ALLOW_ANONYMOUS": "yes"}, "ALLOW_ANONYMOUS='yes' must be true or false"),
    ({**BASE, "JWT_SECRET": "s" * 32}, "a JWT key needs JWT_AUDIENCE and JWT_ISSUER"),
    ({**BASE, "JWT_SECRET": "s" * 32, "JWT_AUDIENCE": "a", "JWT_ISSUER": "i",
      "JWT_ALGORITHMS": "RS256"}, "JWT_SECRET cannot verify RS256 tokens"),
    ({**BASE, "JWT_PUBLIC_KEY": "-----BEGIN PUBLIC KEY-----\nnope", "JWT_AUDIENCE": "a",
      "JWT_ISSUER": "i"}, "JWT_PUBLIC_KEY cannot verify RS256 tokens"),
    ({**BASE, "JWT_SECRET": "s" * 32, "JWT_AUDIENCE": "a", "JWT_ISSUER": "i",
      "JWT_ALGORITHMS": "none"}, "'none' is not a signing algorithm"),
    ({**BASE, "DATABASE_URL": ""}, "DATABASE_URL is not set"),
])
def test_a_bad_setting_is_named(env, words):
    with pytest.raises(SettingsError, match=words):
        Settings.parse(env)


def test_the_service_refuses_to_start_open_unless_told_to(tmp_path, monkeypatch, capsys):
    from service.__main__ import main

    for name in list(os.environ):  # only what this test sets, as in a bare container
        monkeypatch.delenv(name)
    monkeypatch.setenv("MODEL_PIN", str(tmp_path / "pin.yaml"))
    monkeypatch.setenv("PREDICTION_LOG", "off")
    monkeypatch.setattr("uvicorn.run", lambda *_, **__: pytest.fail("the service started open"))
    assert main(["--port", "1"]) == 2
    refused = capsys.readouterr().err
    assert "no authentication is configured" in refused
    assert "ALLOW_ANONYMOUS=true" in refused
    open_on_purpose = Settings.parse({"MODEL_PIN": "p", "ALLOW_ANONYMOUS": "true",
                                      "PREDICTION_LOG": "off"})
    assert not open_on_purpose.auth_enabled and open_on_purpose.allow_anonymous


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
