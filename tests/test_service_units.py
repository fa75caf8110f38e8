"""The service's pure parts on their own: the drift monitor, the feedback store, the
authenticator and the batch histogram. No model, no registry, no server."""
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
from service.feedback import AlreadyAnswered, InvalidTruth, MemoryFeedbackStore, UnknownPrediction
from service.metrics import BatchHistogram
from service.settings import Settings

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


# ---- feedback store -----------------------------------------------------------------------------
def test_classifier_feedback_scores_accuracy_over_the_window():
    store = MemoryFeedbackStore(memory=100, window=3)
    ids = store.issue(1, ["yes", "no", "yes", "no"], ("no", "yes"))
    assert len(set(ids)) == 4
    outcomes = [store.record(i, t) for i, t in zip(ids, ["yes", "yes", "yes", "no"])]
    assert [o.correct for o in outcomes] == [True, False, True, True]
    assert outcomes[-1].accuracy == 2 / 3 and outcomes[-1].window == 3  # the oldest fell out
    with pytest.raises(AlreadyAnswered):
        store.record(ids[0], "yes")
    with pytest.raises(InvalidTruth, match="'maybe' is not a class"):
        store.record(store.issue(1, ["no"], ("no", "yes"))[0], "maybe")


def test_regression_feedback_scores_the_absolute_error_and_mae():
    store = MemoryFeedbackStore(memory=10, window=10)
    ids = store.issue(2, [10.0, 20.0], None)
    assert store.record(ids[0], 13.0).error == 3.0
    scored = store.record(ids[1], 19)
    assert (scored.error, scored.mae, scored.version, scored.correct) == (1.0, 2.0, 2, None)
    for truth in ("ten", float("inf"), True):
        with pytest.raises(InvalidTruth):
            store.record(store.issue(2, [1.0], None)[0], truth)


def test_only_the_newest_ids_are_remembered_and_foreign_ids_are_unknown():
    store = MemoryFeedbackStore(memory=5, window=10)
    first = store.issue(1, ["a", "b", "c"], ("a", "b", "c"))
    later = store.issue(1, ["a"] * 4, ("a", "b", "c"))  # wraps the ring: the oldest two go
    for pid in [*first[:2], "nope-1", first[0].split("-")[0] + "-999", first[0] + "x", ""]:
        with pytest.raises(UnknownPrediction):
            store.record(pid, "a")
    assert store.record(first[2], "c").correct is True
    assert store.record(later[-1], "b").correct is False
    big = store.issue(1, ["a", "b", "c", "a", "b", "c", "a"], ("a", "b", "c"))  # > memory
    with pytest.raises(UnknownPrediction):
        store.record(big[1], "b")
    assert store.record(big[6], "a").correct and store.record(big[2], "c").correct


def test_ids_of_two_stores_never_collide():
    a, b = MemoryFeedbackStore(10, 10), MemoryFeedbackStore(10, 10)
    ids = a.issue(1, ["x"], ("x", "y"))
    with pytest.raises(UnknownPrediction):
        b.record(ids[0], "x")


# ---- authenticator ------------------------------------------------------------------------------
def _auth(**settings) -> Authenticator:
    return Authenticator(Settings(model_pin="pin.yaml", **settings))


def _token(scope: str | None, expires_in: int = 60, **claims) -> str:
    now = int(time.time())
    granted = {"scope": scope} if scope is not None else {}
    return jwt.encode({**granted, "iat": now, "exp": now + expires_in, **claims}, SECRET,
                      algorithm="HS256")


def test_without_credentials_configured_everything_is_open():
    auth = _auth()
    assert not auth.enabled
    auth.check({}, "predict")


def test_api_keys_grant_every_scope_and_wrong_keys_are_refused():
    auth = _auth(api_keys=("k1", "k2"))
    for scope in ("predict", "feedback"):
        auth.check({"x-api-key": "k2"}, scope)
    with pytest.raises(NotAuthorizedException, match="API key is not valid"):
        auth.check({"x-api-key": "k3"}, "predict")
    with pytest.raises(NotAuthorizedException, match="bearer tokens are not accepted"):
        auth.check({"authorization": f"Bearer {_token('predict')}"}, "predict")


@pytest.mark.parametrize("token, error, words", [
    (None, NotAuthorizedException, "credentials required"),
    ("Basic abc", NotAuthorizedException, "must be 'Bearer <token>'"),
    (("predict", -120, {"aud": "svc"}), NotAuthorizedException, "expired"),
    (("predict", 60, {"aud": "other"}), NotAuthorizedException, "not for audience"),
    (("feedback", 60, {"aud": "svc"}), PermissionDeniedException, "'predict' scope"),
])
def test_tokens_need_signature_audience_expiry_and_scope(token, error, words):
    auth = _auth(jwt_secret=SECRET, jwt_audience="svc")
    if isinstance(token, tuple):  # made now: a token made at collection could expire first
        scope, expires_in, claims = token
        token = f"Bearer {_token(scope, expires_in, **claims)}"
    headers = {} if token is None else {"authorization": token}
    with pytest.raises(error, match=words):
        auth.check(headers, "predict")


def test_a_token_with_the_scope_in_a_scopes_list_is_accepted():
    auth = _auth(jwt_secret=SECRET, jwt_audience="svc")
    auth.check({"authorization": f"Bearer {_token(None, aud='svc', scopes=['predict'])}"},
               "predict")


# ---- batch histogram ----------------------------------------------------------------------------
def test_batch_histogram_counts_like_prometheus_buckets():
    registry = CollectorRegistry()
    histogram = BatchHistogram("h", "doc", ["m"], (0.5, 1.0), registry)
    histogram.labels(m="a").observe_many(np.array([0.1, 0.5, 0.7, 1.0, 3.0, np.nan]))
    text = generate_latest(registry).decode()
    for line in ('h_bucket{le="0.5",m="a"} 2.0', 'h_bucket{le="1.0",m="a"} 4.0',
                 'h_bucket{le="+Inf",m="a"} 5.0', 'h_count{m="a"} 5.0', 'h_sum{m="a"} 5.3'):
        assert line in text, text
