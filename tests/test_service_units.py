"""The service's pure parts on their own: the drift monitor, the authenticator, the redaction
of credentials and the batch histogram. No model, no registry, no server."""
from __future__ import annotations

import time

import jwt
import numpy as np
import pytest
from litestar.exceptions import NotAuthorizedException, PermissionDeniedException
from prometheus_client import CollectorRegistry, generate_latest

from contracts.signature import Signature
from service.auth import Authenticator
from service.drift import DriftMonitor
from service.metrics import BatchHistogram
from service.redact import Redactor
from service.settings import Settings, parse_api_keys

SECRET = "a-unit-test-secret-of-sufficient-length"


def _signature(task: str = "binary") -> Signature:
    classes = {"binary": ["no", "yes"], "multiclass": ["a", "b", "c"], "regression": None}[task]
    return Signature.model_validate({
        "model": "m", "task": task, "target": "t", "classes": classes,
        "positive_class": "yes" if task == "binary" else None,
        "features": [{"name": "x", "type": "number", "nullable": True},
                     {"name": "c", "type": "category", "categories": ["p", "q"],
                      "nullable": True}]})


def _reference(answers: dict) -> dict:
    rng = np.random.default_rng(0)
    return {"numeric": {"x": {"sample": rng.normal(0, 1, 500).tolist()}},
            "categorical": {"c": {"frequencies": {"p": 0.5, "q": 0.5}}},
            "prediction": answers}


# ---- drift ------------------------------------------------------------------------------------
def test_drift_is_silent_until_the_window_holds_min_rows_then_measures_ks_and_psi():
    monitor = DriftMonitor(_signature(), _reference({"probability_sample": [0.1, 0.5, 0.9]}),
                           window=100, min_rows=10)
    monitor.observe([(0.1,) * 9, ("p",) * 9], [0.5] * 9)
    assert monitor.statistics() == {} and monitor.answer_statistic() is None
    rng = np.random.default_rng(1)
    xs = tuple(rng.normal(0, 1, 91).tolist())
    monitor.observe([xs, tuple("pq"[i % 2] for i in range(91))], [0.5] * 91)
    stats = monitor.statistics()
    assert monitor.rows == 100
    assert stats[("x", "ks")] < 0.2 and stats[("c", "psi")] < 0.05
    shifted = tuple(v + 5 for v in rng.normal(0, 1, 100))
    monitor.observe([shifted, ("q",) * 100], [0.5] * 100)  # the window slides past the old rows
    stats = monitor.statistics()
    assert stats[("x", "ks")] > 0.9 and stats[("c", "psi")] > 1.0


def test_the_window_holds_exactly_the_newest_rows_when_its_edge_falls_inside_a_request():
    monitor = DriftMonitor(_signature(), _reference({"probability_sample": [0.1, 0.5, 0.9]}),
                           window=10, min_rows=10)
    monitor.observe([(100.0,) * 7, ("p",) * 7], [0.9] * 7)   # rows 1-7
    monitor.observe([(0.0,) * 5, ("q",) * 5], [0.5] * 5)     # rows 8-12
    assert monitor.rows == 10
    # The newest ten, rows 3-12, hold five p and five q: the reference's shares exactly.
    assert monitor.statistics()[("c", "psi")] == pytest.approx(0.0)
    monitor.observe([(0.0,) * 5, ("q",) * 5], [0.5] * 5)     # rows 13-17 push rows 1-7 out
    assert monitor.rows == 10
    assert monitor.statistics()[("c", "psi")] == pytest.approx(
        (1e-4 - 0.5) * np.log(1e-4 / 0.5) + (1 - 0.5) * np.log(1 / 0.5))
    # Answers 0.5 only (the 0.9s left): a third of the reference lies on either side.
    assert monitor.answer_statistic() == ("ks", pytest.approx(1 / 3))


def test_empty_values_are_left_out_of_drift():
    monitor = DriftMonitor(_signature(), _reference({}), window=50, min_rows=5)
    monitor.observe([(None,) * 10, ("",) * 10], [0.5] * 10)
    assert monitor.statistics() == {}  # nothing to compare, nothing made up
    monitor.observe([(0.0,) * 10, ("p",) * 10], [0.5] * 10)
    stats = monitor.statistics()
    assert stats[("c", "psi")] == pytest.approx(
        (1 - 0.5) * np.log(1 / 0.5) + (1e-4 - 0.5) * np.log(1e-4 / 0.5))
    assert 0.4 < stats[("x", "ks")] < 0.6  # a point mass at the reference's median


@pytest.mark.parametrize("task, answers, reference, test, far", [
    ("binary", [0.99] * 20, {"probability_sample": np.linspace(0, 1, 101).tolist()}, "ks", 0.9),
    ("regression", [500.0] * 20, {"value_sample": list(range(100))}, "ks", 0.99),
    ("multiclass", ["c"] * 20, {"class_shares": {"a": 0.4, "b": 0.4, "c": 0.2}}, "psi", 1.0),
])
def test_the_models_answers_drift_by_task(task, answers, reference, test, far):
    monitor = DriftMonitor(_signature(task), _reference(reference), window=20, min_rows=20)
    monitor.observe([(0.0,) * 20, ("p",) * 20], answers)
    name, value = monitor.answer_statistic()
    assert name == test and value > far


# ---- authenticator ------------------------------------------------------------------------------
def _auth(**settings) -> Authenticator:
    return Authenticator(Settings(model_pin="pin.yaml", allow_anonymous=True,
                                  prediction_log=False, **settings))


def _token(scope, expires_in=60, **claims) -> str:
    now = int(time.time())
    if not isinstance(expires_in, int):  # a malformed exp claim, as it is
        return _forge_hs256({"scope": scope, "exp": expires_in, "iss": "issuer", **claims},
                            SECRET)
    granted = {"scope": scope} if scope is not None else {}
    # Signed by hand: pyjwt refuses to encode some of the malformed claims tested here.
    return _forge_hs256({**granted, "iat": now, "exp": now + expires_in, "iss": "issuer",
                         **claims}, SECRET)


def test_without_credentials_configured_everything_is_open():
    auth = _auth()
    assert not auth.enabled
    auth.check({}, "predict")
    assert auth.allows({}, "admin")


def test_api_keys_grant_their_scopes_and_wrong_keys_are_refused():
    auth = _auth(api_keys=parse_api_keys("k1, k2=admin, k3=predict+feedback+admin"))
    for scope in ("predict", "feedback"):
        auth.check({"x-api-key": "k1"}, scope)
    with pytest.raises(PermissionDeniedException, match="'predict' scope"):
        auth.check({"x-api-key": "k2"}, "predict")
    assert not auth.allows({"x-api-key": "k1"}, "admin") and not auth.allows({}, "admin")
    assert auth.allows({"x-api-key": "k2"}, "admin") and auth.allows({"x-api-key": "k3"}, "admin")
    for sent in ("k4", "", "k1 ", "\u00e9t\u00e9", "k1\x00"):  # unknown, empty, non-ASCII, NUL
        with pytest.raises(NotAuthorizedException, match="API key is not valid"):
            auth.check({"x-api-key": sent}, "predict")
    with pytest.raises(NotAuthorizedException, match="bearer tokens are not accepted"):
        auth.check({"authorization": f"Bearer {_token('predict')}"}, "predict")


@pytest.mark.parametrize("token, error, words", [
    (None, NotAuthorizedException, "credentials required"),
    ("Basic abc", NotAuthorizedException, "must be 'Bearer <token>'"),
    (("predict", -120, {"aud": "svc"}), NotAuthorizedException, "expired"),
    (("predict", 60, {"aud": "other"}), NotAuthorizedException, "not for audience"),
    (("predict", 60, {}), NotAuthorizedException, "no 'aud' claim"),
    (("predict", 60, {"aud": "svc", "iss": "someone"}), NotAuthorizedException, "not from issuer"),
    (("predict", 60, {"aud": "svc", "iss": 7}), NotAuthorizedException, "issuer"),
    (("predict", 60, {"aud": 7}), NotAuthorizedException, "audience"),
    (("predict", "soon", {"aud": "svc"}), NotAuthorizedException, "not valid"),
    ((7, 60, {"aud": "svc"}), NotAuthorizedException, "'scope' claim must be text"),
    ((None, 60, {"aud": "svc", "scopes": "predict"}), NotAuthorizedException,
     "'scopes' claim must be a list"),
    ((None, 60, {"aud": "svc", "scopes": [1]}), NotAuthorizedException,
     "'scopes' claim must be a list"),
    ("Bearer not.a.token", NotAuthorizedException, "not valid"),
    ("Bearer \u00e9\u00e9.\u00e9\u00e9.\u00e9\u00e9", NotAuthorizedException, "not valid"),
    ("Bearer " + "A" * 40, NotAuthorizedException, "not valid"),
    (("feedback", 60, {"aud": "svc"}), PermissionDeniedException, "'predict' scope"),
])
def test_tokens_need_signature_audience_issuer_expiry_and_scope(token, error, words):
    auth = _auth(jwt_secret=SECRET, jwt_audience="svc", jwt_issuer="issuer")
    if isinstance(token, tuple):  # made now: a token made at collection could expire first
        scope, expires_in, claims = token
        token = f"Bearer {_token(scope, expires_in, **claims)}"
    headers = {} if token is None else {"authorization": token}
    with pytest.raises(error, match=words):
        auth.check(headers, "predict")


def test_a_token_with_the_scope_in_a_scopes_list_is_accepted():
    auth = _auth(jwt_secret=SECRET, jwt_audience="svc", jwt_issuer="issuer")
    auth.check({"authorization": f"Bearer {_token(None, aud='svc', scopes=['predict'])}"},
               "predict")


def test_a_token_signed_with_another_kind_of_key_is_refused_not_an_error():
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec, rsa

    rsa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    public = rsa_key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo).decode()
    claims = {"scope": "predict", "aud": "svc", "iss": "issuer", "exp": int(time.time()) + 60}
    by_secret = _auth(jwt_secret=SECRET, jwt_audience="svc", jwt_issuer="issuer")
    by_public = _auth(jwt_public_key=public, jwt_algorithms=("RS256",), jwt_audience="svc",
                      jwt_issuer="issuer")
    by_public.check({"authorization": f"Bearer {jwt.encode(claims, rsa_key, 'RS256')}"},
                    "predict")
    refused = {
        "RSA token, shared-secret service": (by_secret, jwt.encode(claims, rsa_key, "RS256")),
        "EC token, RSA service": (by_public, jwt.encode(
            claims, ec.generate_private_key(ec.SECP256R1()), "ES256")),
        # The algorithm-confusion attack: the public key itself used as an HMAC secret.
        "HMAC with the public key": (by_public, _forge_hs256(claims, public)),
    }
    for case, (auth, token) in refused.items():
        with pytest.raises(NotAuthorizedException) as err:
            auth.check({"authorization": f"Bearer {token}"}, "predict")
        assert err.value.status_code == 401, case


def _forge_hs256(claims: dict, secret: str) -> str:
    import base64
    import hashlib
    import hmac
    import json

    def part(data: bytes) -> str:
        return base64.urlsafe_b64encode(data).rstrip(b"=").decode()

    signing = f"{part(json.dumps({'alg': 'HS256', 'typ': 'JWT'}).encode())}." \
              f"{part(json.dumps(claims).encode())}"
    mac = hmac.new(secret.encode(), signing.encode(), hashlib.sha256).digest()
    return f"{signing}.{part(mac)}"


# ---- redaction ----------------------------------------------------------------------------------
def test_credentials_in_urls_never_reach_messages():
    redact = Redactor(["postgresql+psycopg://gitops:s3cr%2Ft@db:5432/log",
                       "https://ghp_tokenvalue@mlflow.example.com", None])
    said = redact("connection to postgresql+psycopg://gitops:s3cr%2Ft@db:5432/log failed: "
                  "password authentication failed (password=s3cr/t); fetching "
                  "https://ghp_tokenvalue@mlflow.example.com/api and http://u:p@other/x")
    for secret in ("s3cr%2Ft", "s3cr/t", "ghp_tokenvalue", "u:p@"):
        assert secret not in said, said
    assert "db:5432/log" in said and "mlflow.example.com/api" in said


# ---- batch histogram ----------------------------------------------------------------------------
def test_batch_histogram_counts_like_prometheus_buckets():
    registry = CollectorRegistry()
    histogram = BatchHistogram("h", "doc", ["m"], (0.5, 1.0), registry)
    histogram.labels(m="a").observe_many(np.array([0.1, 0.5, 0.7, 1.0, 3.0, np.nan]))
    text = generate_latest(registry).decode()
    for line in ('h_bucket{le="0.5",m="a"} 2.0', 'h_bucket{le="1.0",m="a"} 4.0',
                 'h_bucket{le="+Inf",m="a"} 5.0', 'h_count{m="a"} 5.0', 'h_sum{m="a"} 5.3'):
        assert line in text, text
