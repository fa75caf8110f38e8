"""API keys and JWT bearer tokens on the prediction endpoints; operations endpoints stay open.
The app in process; the authenticator alone in tests/test_service_units.py."""
from __future__ import annotations

import time

import jwt
import pytest
from service_fixtures import in_process, write_pin

pytest_plugins = ("service_fixtures",)
SECRET = "a-test-signing-secret-of-sufficient-length"
AUDIENCE = "gitops-ml"


@pytest.fixture(scope="module")
def guarded(tmp_path_factory, served_registry):
    tmp = tmp_path_factory.mktemp("auth")
    pin = write_pin(tmp / "model.yaml", served_registry, 1)
    with in_process(tmp, served_registry, pin, api_keys=("key-one", "key-two"),
                    jwt_secret=SECRET, jwt_audience=AUDIENCE) as svc:
        svc.wait_ready(1)
        yield svc


def token(scope: str = "predict feedback", expires_in: int = 60, secret: str = SECRET,
          audience: str = AUDIENCE) -> str:
    now = int(time.time())
    return jwt.encode({"sub": "client", "scope": scope, "aud": audience, "iat": now,
                       "exp": now + expires_in}, secret, algorithm="HS256")


def test_requests_without_valid_credentials_get_401_saying_why(guarded, served_registry):
    record = served_registry.records(1)[0]
    cases = {
        "credentials required": {},
        "API key is not valid": {"X-API-Key": "key-three"},
        "must be 'Bearer <token>'": {"Authorization": "Basic dXNlcjpwYXNz"},
        "has expired": {"Authorization": f"Bearer {token(expires_in=-120)}"},
        "signature is not valid": {"Authorization": f"Bearer {token(secret='x' * 40)}"},
        "not for audience": {"Authorization": f"Bearer {token(audience='someone-else')}"},
        "not valid": {"Authorization": "Bearer not.a.token"},
    }
    for words, headers in cases.items():
        r = guarded.post("/v1/predict", json=record, headers=headers)
        assert r.status_code == 401, (words, r.text)
        assert words in r.json()["detail"], (words, r.json())
        assert r.headers["www-authenticate"].startswith("Bearer")


def test_a_token_without_the_endpoints_scope_gets_403(guarded, served_registry):
    predicted = guarded.post("/v1/predict", json=served_registry.records(1)[0],
                             headers={"Authorization": f"Bearer {token('predict')}"})
    assert predicted.status_code == 200
    r = guarded.post("/v1/feedback", json={"prediction_id": predicted.json()["prediction_id"],
                                           "label": "No"},
                     headers={"Authorization": f"Bearer {token('predict')}"})
    assert r.status_code == 403 and "'feedback' scope" in r.json()["detail"]


def test_valid_api_keys_and_tokens_are_served(guarded, served_registry):
    record = served_registry.records(1)[0]
    for headers in ({"X-API-Key": "key-one"}, {"X-API-Key": "key-two"},
                    {"Authorization": f"Bearer {token()}"}):
        assert guarded.post("/v1/predict", json=record, headers=headers).status_code == 200


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
