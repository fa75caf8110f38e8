"""API keys and JWT bearer tokens on the prediction endpoints, scopes, rate limits and what the
service never says (credentials in URLs); operations endpoints stay open. The app in process;
the authenticator alone in tests/test_service_units.py."""
from __future__ import annotations

import time

import jwt
import pytest
from service_fixtures import in_process, write_pin

from service.settings import parse_api_keys

pytest_plugins = ("service_fixtures",)
SECRET = "a-test-signing-secret-of-sufficient-length"
AUDIENCE, ISSUER = "gitops-ml", "https://idp.example.com"
KEYS = "key-one, key-two=predict, key-admin=admin"


@pytest.fixture(scope="module")
def guarded(tmp_path_factory, served_registry):
    tmp = tmp_path_factory.mktemp("auth")
    pin = write_pin(tmp / "model.yaml", served_registry, 1)
    with in_process(tmp, served_registry, pin, api_keys=parse_api_keys(KEYS),
                    jwt_secret=SECRET, jwt_audience=AUDIENCE, jwt_issuer=ISSUER,
                    allow_anonymous=False) as svc:
        svc.wait_ready(1)
        yield svc


def token(scope="predict feedback", expires_in: int = 60, secret: str = SECRET,
          **claims) -> str:
    now = int(time.time())
    body = {"sub": "client", "scope": scope, "aud": AUDIENCE, "iss": ISSUER, "iat": now,
            "exp": now + expires_in, **claims}
    return jwt.encode({k: v for k, v in body.items() if v is not None}, secret,
                      algorithm="HS256")


def bearer(value: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {value}"}


def test_requests_without_valid_credentials_get_401_saying_why(guarded, served_registry):
    record = served_registry.records(1)[0]
    from cryptography.hazmat.primitives.asymmetric import rsa

    rsa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    cases = {
        "credentials required": {},
        "API key is not valid": {"X-API-Key": "key-three"},
        # A malformed key: empty, or bytes that are not text.
        "API key is not valid ": {"X-API-Key": ""},
        "API key is not valid  ": {"X-API-Key": "\xe9t\xe9\x01".encode("latin-1")},
        "must be 'Bearer <token>'": {"Authorization": "Basic dXNlcjpwYXNz"},
        "has expired": bearer(token(expires_in=-120)),
        "signature is not valid": bearer(token(secret="x" * 40)),
        "not for audience": bearer(token(aud="someone-else")),
        "no 'aud' claim": bearer(token(aud=None)),
        "no 'iss' claim": bearer(token(iss=None)),
        "'scope' claim must be text": bearer(token(scope=7)),
        # A token of another kind of key (RSA) for a service holding a shared secret.
        "algorithm is not one of HS256": bearer(jwt.encode(
            {"scope": "predict", "aud": AUDIENCE, "iss": ISSUER,
             "exp": int(time.time()) + 60}, rsa_key, algorithm="RS256")),
        "not valid": bearer("not.a.token"),
    }
    endpoints = [("/v1/predict", record), ("/invocations", {"dataframe_records": [record]}),
                 ("/v2/models/churn/infer", {"inputs": []})]
    for words, headers in cases.items():
        for path, body in endpoints:
            r = guarded.post(path, json=body, headers=headers)
            assert r.status_code == 401, (words, path, r.text)
            assert words.strip() in r.text, (words, path, r.text)
            assert r.headers["www-authenticate"].startswith("Bearer")


def test_credentials_without_the_endpoints_scope_get_403(guarded, served_registry):
    predicted = guarded.post("/v1/predict", json=served_registry.records(1)[0],
                             headers=bearer(token("predict")))
    assert predicted.status_code == 200
    label = {"prediction_id": predicted.json()["prediction_id"], "label": "No"}
    for headers in (bearer(token("predict")), {"X-API-Key": "key-two"}):
        r = guarded.post("/v1/feedback", json=label, headers=headers)
        assert r.status_code == 403 and "'feedback' scope" in r.json()["detail"]
    r = guarded.post("/v1/predict", json=served_registry.records(1)[0],
                     headers={"X-API-Key": "key-admin"})
    assert r.status_code == 403 and "'predict' scope" in r.json()["detail"]


def test_valid_api_keys_and_tokens_are_served(guarded, served_registry):
    record = served_registry.records(1)[0]
    for headers in ({"X-API-Key": "key-one"}, {"X-API-Key": "key-two"}, bearer(token()),
                    bearer(jwt.encode({"scopes": ["predict"], "aud": AUDIENCE, "iss": ISSUER,
                                       "exp": int(time.time()) + 60}, SECRET, "HS256"))):
        assert guarded.post("/v1/predict", json=record, headers=headers).status_code == 200


def test_lineage_and_who_promoted_are_shown_to_admin_only(guarded):
    for headers in ({}, {"X-API-Key": "key-one"}, bearer(token())):
        seen = guarded.get("/v1/model", headers=headers).json()
        assert seen["lineage"] is None and "by" not in seen["promoted"], headers
        assert seen["promoted"]["at"] and seen["sha256"]
    for headers in ({"X-API-Key": "key-admin"}, bearer(token("admin"))):
        seen = guarded.get("/v1/model", headers=headers).json()
        assert seen["lineage"]["params"] == {"train.estimator": "lr"}
        assert seen["promoted"]["by"] == "Test Person"
    assert guarded.get("/v1/model", headers={"X-API-Key": "wrong"}).status_code == 401


def test_health_readiness_and_metrics_need_no_credentials(guarded):
    for path in ("/health", "/ready", "/metrics", "/schema/openapi.json"):
        assert guarded.get(path).status_code == 200, path


def test_refusals_are_counted_as_401(guarded, served_registry):
    def refused() -> float:
        return guarded.metric("gitops_ml_requests_total", route="/v1/predict", method="POST",
                              status="401") or 0

    before = refused()
    guarded.post("/v1/predict", json=served_registry.records(1)[0])
    assert refused() == before + 1


def test_each_key_has_its_own_rate_limit_answered_with_429(tmp_path, served_registry):
    pin = write_pin(tmp_path / "model.yaml", served_registry, 1)
    record = served_registry.records(1)[0]
    with in_process(tmp_path, served_registry, pin, api_keys=parse_api_keys(KEYS),
                    allow_anonymous=False, rate_limit=(5, "minute")) as svc:
        svc.wait_ready(1)
        one, two = {"X-API-Key": "key-one"}, {"X-API-Key": "key-two"}
        answers = [svc.post("/v1/predict", json=record, headers=one).status_code
                   for _ in range(7)]
        assert answers == [200] * 5 + [429] * 2
        limited = svc.post("/invocations", json={"dataframe_records": [record]}, headers=one)
        assert limited.status_code == 429 and limited.json()["error_code"]
        assert int(limited.headers["ratelimit-reset"]) > 0
        assert svc.post("/v1/predict", json=record, headers=two).status_code == 200
        for _ in range(10):  # probes and scrapes are never limited
            assert svc.get("/ready").status_code == 200
        assert svc.metric("gitops_ml_requests_total", route="/v1/predict", method="POST",
                          status="429") == 2


def test_ready_never_shows_credentials_of_the_registry_or_the_database(
        tmp_path, served_registry, monkeypatch):
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "2")
    pin = write_pin(tmp_path / "model.yaml", served_registry, 1)
    password, token_user = "pa55-w0rd-registry", "tok-db-secret-9"
    with in_process(tmp_path, served_registry, pin,
                    tracking_uri=f"http://mlflow:{password}@127.0.0.1:9",
                    database_url=f"postgresql+psycopg://gitops:{token_user}@127.0.0.1:9/log",
                    cache_dir=tmp_path / "empty-cache") as svc:
        body = svc.wait_until(lambda: (lambda b: b if b["failure"] and
                                       b["logging"]["state"] == "degraded" else None)(
            svc.get("/ready").json()), 60, "the registry and the database refused")
        text = str(body)
        assert body["failure"]["reason"] == "registry_unavailable"
        assert "127.0.0.1:9" in text
        assert password not in text and token_user not in text, text
