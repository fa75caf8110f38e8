"""A/B tests in the service: a pin with `ab:` serves both versions, routes each record by the
shared rule (contracts/routing.py) on its unit id (header, then field, else at random), answers
and logs with the variant, labels the metrics with it, and swaps back to one model when the
test is concluded.

The routing, refusals and metrics run in process (Litestar's test client, SQLite log); a
second replica, a restart and the end to end with `mlops ab-report` / `ab-conclude` run as
real processes on a port against PostgreSQL.
"""
from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace

import pytest
from gitops_fixtures import git
from service_fixtures import (
    ServedRegistry,
    in_process,
    sklearn_probability,
    sqlite_log,
    start_service,
    write_pin,
)
from sqlalchemy import select

from contracts import routing
from contracts.pin import Pin
from contracts.prediction_log.schema import predictions
from contracts.prediction_log.store import PredictionLog

ENV = "staging"
HEADER = "X-Customer-Id"
FIELD = "customerID"
A, B = 1, 2  # churn v1 and v2 of the served registry: two good models that disagree


def write_ab_pin(path: Path, reg: ServedRegistry, split: tuple[int, int] = (90, 10),
                 b: int = B, started: datetime | None = None) -> Pin:
    """Pin churn v1 (a) against `b` the way `mlops promote` starts a test."""
    path.parent.mkdir(parents=True, exist_ok=True)
    # The one-model pin is drafted beside the file: a service polling `path` must only ever
    # see the finished A/B pin, as it would after a git checkout.
    draft = write_pin(path.with_name(f".{path.name}.draft"), reg, A, ENV)
    data = Pin.read(draft).model_dump(mode="json", exclude_none=True)
    draft.unlink()
    data["ab"] = {"split": {"a": split[0], "b": split[1]},
                  "unit": {"header": HEADER, "field": FIELD},
                  "b": {"model": {"name": "churn", "version": b, "uri": f"models:/churn/{b}",
                                  "sha256": reg.digests[b]},
                        "lineage": data["lineage"], "metrics": {"roc_auc": 0.9, "accuracy": 0.85},
                        "promoted": {"by": "Test Person",
                                     "at": (started or datetime.now(UTC)).isoformat()}}}
    pin = Pin.model_validate(data)
    pin.write(path)
    return pin


def units(n: int, start: int = 0) -> list[str]:
    return [f"customer-{i}" for i in range(start, start + n)]


def b_share(variants: list[str]) -> float:
    return variants.count("b") / len(variants)


@pytest.fixture(scope="module")
def ab(served_registry, tmp_path_factory):
    """The app in process on a 90/10 A/B pin, with a SQLite prediction log."""
    tmp = tmp_path_factory.mktemp("ab")
    pin = write_ab_pin(tmp / "model.yaml", served_registry)
    url = sqlite_log(tmp / "log.db")
    with in_process(tmp, served_registry, tmp / "model.yaml", database_url=url) as svc:
        svc.wait_ready(A)
        svc.ab_pin, svc.url = pin, url
        yield svc


def test_units_in_the_header_split_90_10_by_the_shared_rule(ab, served_registry):
    record = served_registry.records(1)[0]
    answers = [ab.post("/v1/predict", json=record, headers={HEADER: u}).json()
               for u in units(5000)]

    variants = [a["variant"] for a in answers]
    assert 0.08 <= b_share(variants) <= 0.12
    assert variants == [routing.variant(ab.ab_pin, u) for u in units(5000)]
    assert all(a["version"] == {"a": A, "b": B}[a["variant"]] for a in answers)
    # Each variant's own model answered: v2 is regularized hard and says other probabilities.
    for version in (A, B):
        said = next(a["probability"] for a in answers if a["version"] == version)
        expected = sklearn_probability(served_registry, version,
                                       served_registry.rows.iloc[:1])[0]
        assert said == pytest.approx(expected, abs=1e-5)


def test_a_unit_keeps_its_variant_through_the_field_and_inside_mixed_batches(ab,
                                                                           served_registry):
    records = served_registry.records(50)
    chosen = {u: routing.variant(ab.ab_pin, u) for u in units(500)}

    by_field = {u: ab.post("/v1/predict", json={**records[i % 50], FIELD: u}).json()["variant"]
                for i, u in enumerate(units(500))}
    assert by_field == chosen

    for start in range(0, 500, 25):  # 25 known units and 25 new ones per batch of 50
        batch = units(25, start) + units(25, 10_000 + start)
        body = [{**r, FIELD: u} for r, u in zip(records, batch)]
        answer = ab.post("/v1/predict", json=body).json()
        assert [row["variant"] for row in answer["predictions"]] == \
            [routing.variant(ab.ab_pin, u) for u in batch]
        assert all(row["version"] == {"a": A, "b": B}[row["variant"]]
                   for row in answer["predictions"])
        assert answer["version"] == A  # both answered: variant a's
    # The header wins over the field for every record of its request.
    header_b = next(u for u, v in chosen.items() if v == "b")
    field_a = [u for u, v in chosen.items() if v == "a"][:3]
    answer = ab.post("/v1/predict", json=[{**r, FIELD: u} for r, u in zip(records, field_a)],
                     headers={HEADER.lower(): header_b}).json()
    assert [row["variant"] for row in answer["predictions"]] == ["b"] * 3
    assert answer["version"] == B


def test_without_a_unit_id_records_are_drawn_at_the_split_odds(ab, served_registry):
    record = served_registry.records(1)[0]
    variants = [ab.post("/v1/predict", json=record).json()["variant"] for _ in range(5000)]
    assert 0.08 <= b_share(variants) <= 0.12
    assert set(variants) == {"a", "b"}


def test_every_answer_log_row_and_series_names_its_variant(ab, served_registry):
    before = ab.metric("gitops_ml_predictions_total", variant="b", **{"class": "Yes"}) or 0
    before += ab.metric("gitops_ml_predictions_total", variant="b", **{"class": "No"}) or 0
    records = served_registry.records(40)
    body = [{**r, FIELD: u} for r, u in zip(records, units(40, 20_000))]
    rows = ab.post("/v1/predict", json=body).json()["predictions"]
    single = [ab.post("/v1/predict", json=records[0], headers={HEADER: u}).json()
              for u in units(60, 30_000)]
    answered = [(r["prediction_id"], r["variant"], r["version"]) for r in rows] + \
        [(a["prediction_id"], a["variant"], a["version"]) for a in single]
    sent_b = sum(v == "b" for _, v, _ in answered)
    assert sent_b > 0

    log = PredictionLog(ab.url)
    try:
        ab.wait_until(lambda: log.count()["predictions"] >= len(answered) and
                      _logged(log, [pid for pid, _, _ in answered]) is not None, 10,
                      "the predictions in the log")
        logged = _logged(log, [pid for pid, _, _ in answered])
    finally:
        log.close()
    for pid, variant, version in answered:
        row = logged[pid]
        assert (row.variant, row.version) == (variant, version)
        assert row.digest == served_registry.digests[version]
        # The unit field is no feature: it is not logged, and neither is the unit id.
        assert FIELD not in row.features and "tenure" in row.features

    after = sum(ab.metric("gitops_ml_predictions_total", variant="b", **{"class": c}) or 0
                for c in ("Yes", "No"))
    assert after - before == sent_b
    assert {ab.metric("gitops_ml_model_info", variant=v, version=str(n))
            for v, n in (("a", A), ("b", B))} == {1.0}
    assert ab.metric("gitops_ml_model_info", variant="") is None
    assert (ab.metric("gitops_ml_ab_split", variant="a"),
            ab.metric("gitops_ml_ab_split", variant="b")) == (0.9, 0.1)
    assert ab.metric("gitops_ml_model_test_metric", metric="accuracy", variant="b") == 0.85
    assert ab.metric("gitops_ml_requests_total", route="/v1/predict", variant="mixed") >= 1
    assert ab.metric("gitops_ml_request_duration_seconds_count", route="/v1/predict",
                     variant="b") >= 1

    b_id = next(pid for pid, v, _ in answered if v == "b")
    feedback = ab.post("/v1/feedback", json={"prediction_id": b_id, "label": "No"}).json()
    assert (feedback["variant"], feedback["version"]) == ("b", B)
    assert ab.metric("gitops_ml_feedback_total", variant="b", outcome=feedback["outcome"]) == 1
    assert ab.metric("gitops_ml_feedback_total", variant="a") is None
    described = ab.get("/v1/model").json()["ab"]
    assert described["split"] == {"a": 90, "b": 10}
    assert described["unit"] == {"header": HEADER, "field": FIELD}
    assert {k: (v["version"], v["sha256"]) for k, v in described["variants"].items()} == {
        "a": (A, served_registry.digests[A]), "b": (B, served_registry.digests[B])}
    assert described["variants"]["b"]["live_quality"]["labelled"] == 1
    correct = {"correct": 1.0, "incorrect": 0.0}[feedback["outcome"]]
    assert ab.metric("gitops_ml_feedback_accuracy", variant="b") == correct
    assert ab.metric("gitops_ml_feedback_accuracy", variant="") is None
    ready = ab.get("/ready").json()
    assert ready["in_sync"] is True


def _logged(log: PredictionLog, ids: list[str]):
    with log.engine.connect() as connection:
        rows = {r.id: r for r in connection.execute(
            select(predictions).where(predictions.c.id.in_(ids)))}
    return rows if len(rows) == len(ids) else None


def test_a_unit_id_that_is_not_one_is_refused_naming_the_field_and_rule(ab, served_registry):
    record = served_registry.records(1)[0]
    r = ab.post("/v1/predict", json={**record, FIELD: 42.5})
    assert r.status_code == 422
    assert r.json()["extra"]["errors"] == [{"field": FIELD, "row": None, "rule": "unit",
                                            "message": r.json()["detail"]}]
    assert "customerID: a unit id must be a string or an integer, got float" in r.json()["detail"]

    r = ab.post("/v1/predict", json=[{**record, FIELD: "ok"}, {**record, FIELD: True}])
    assert r.status_code == 422 and r.json()["extra"]["errors"][0]["row"] == 1
    r = ab.post("/v1/predict", json=record, headers={HEADER: "x" * 257})
    assert r.status_code == 422
    assert r.json()["extra"]["errors"][0] | {"message": ""} == {
        "field": HEADER, "row": None, "rule": "unit", "message": ""}
    # An integer id is its digits; a blank one is none (drawn at random), never refused.
    assert ab.post("/v1/predict", json={**record, FIELD: 42}).json()["variant"] == \
        routing.variant(ab.ab_pin, "42")
    assert ab.post("/v1/predict", json={**record, FIELD: "  "}).status_code == 200
    # Another unknown field is still refused.
    r = ab.post("/v1/predict", json={**record, "customerId": "x"})
    assert r.status_code == 422 and r.json()["extra"]["errors"][0]["rule"] == "unknown_field"


def test_the_other_protocols_route_by_the_unit_header(ab, served_registry):
    b_unit = next(u for u in units(100) if routing.variant(ab.ab_pin, u) == "b")
    rows = served_registry.rows.iloc[:3]
    invoked = ab.post("/invocations", json={"dataframe_split": {
        "columns": list(rows.columns), "data": rows.astype(object).values.tolist()}},
        headers={HEADER: b_unit})
    assert invoked.status_code == 200
    p_yes = [p[served_registry.models[B].classes_.tolist().index("Yes")]
             for p in invoked.json()["predictions"]]
    assert p_yes == pytest.approx(sklearn_probability(served_registry, B, rows), abs=1e-5)

    from service.protocols.tensors import datatype

    inputs = [{"name": f.name, "shape": [3], "datatype": datatype(f),
               "data": rows[f.name].tolist()} for f in served_registry.tasks["binary"].signature.features]
    v2 = ab.post("/v2/models/churn/infer", json={"inputs": inputs}, headers={HEADER: b_unit})
    assert v2.status_code == 200, v2.text
    assert (v2.json()["parameters"]["variant"], v2.json()["model_version"]) == ("b", str(B))
    asked = ab.post(f"/v2/models/churn/versions/{A}/infer", json={"inputs": inputs},
                    headers={HEADER: b_unit}).json()
    assert (asked["parameters"]["variant"], asked["model_version"]) == ("a", str(A))
    assert ab.metric("gitops_ml_requests_total", route="/invocations", variant="b") == 1


def test_a_split_change_reloads_nothing_and_a_b_that_fails_keeps_the_test_serving(
        served_registry, tmp_path):
    pin_path = tmp_path / "model.yaml"
    write_ab_pin(pin_path, served_registry)
    with in_process(tmp_path, served_registry, pin_path) as svc:
        svc.wait_ready(A)
        serving = svc.state.serving
        models = (serving.model, serving.ab.model_b)

        write_ab_pin(pin_path, served_registry, split=(50, 50))
        svc.poll_pin()
        now = svc.state.serving
        assert now is not serving and now.model is models[0] and now.ab.model_b is models[1]
        assert svc.metric("gitops_ml_ab_split", variant="b") == 0.5

        write_ab_pin(pin_path, served_registry, b=4)  # a model file that is not a model
        svc.poll_pin()
        ready = svc.get("/ready").json()
        assert ready["in_sync"] is False and ready["failure"]["reason"] == "corrupt_artifact"
        assert "A/B variant b" in ready["failure"]["message"]
        assert svc.state.serving is now
        assert svc.metric("gitops_ml_model_load_failures_total",
                          reason="corrupt_artifact") == 1
        answer = svc.post("/v1/predict", json=served_registry.records(1)[0],
                          headers={HEADER: "customer-1"}).json()
        assert answer["variant"] in ("a", "b") and answer["version"] in (A, B)


def test_two_versions_that_take_other_records_cannot_share_a_test(served_registry):
    from service.ab import compatible

    def model(task: str, version: int, **changes) -> SimpleNamespace:
        signature = served_registry.tasks[task].signature.model_copy(update=changes)
        return SimpleNamespace(ref=SimpleNamespace(version=version), signature=signature)

    churn = model("binary", 1)
    assert compatible(churn, model("binary", 2)) is None
    assert "answer differently" in compatible(churn, model("multiclass", 2))
    fewer = served_registry.tasks["binary"].signature.features[1:]
    assert "take different features" in compatible(churn, model("binary", 2, features=fewer))


def test_replicas_restarts_and_the_conclusion_agree_on_every_unit(served_registry, postgres,
                                                                 tmp_path):
    repo = tmp_path / "repo"
    pin_path = repo / "environments" / ENV / "churn" / "model.yaml"
    started = datetime.now(UTC) - timedelta(minutes=1)
    pin = write_ab_pin(pin_path, served_registry, started=started)
    git(tmp_path, "init", "-q", "-b", "main", str(repo))
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "Start an A/B test of churn v1 against v2 in staging")
    url = postgres.database()
    from contracts.prediction_log import migrate
    migrate.upgrade(url)

    env = {"DATABASE_URL": url}
    one = start_service(tmp_path, served_registry, pin_path, **env)
    two = start_service(tmp_path, served_registry, pin_path, **env)
    try:
        one.wait_ready(A)
        two.wait_ready(A)
        records = served_registry.records(50)
        chosen = [routing.variant(pin, u) for u in units(500)]
        sent: list[tuple[str, str, str]] = []  # prediction id, variant, its record's truth

        def ask(svc, start: int) -> list[str]:
            body = [{**r, FIELD: u} for r, u in zip(records, units(50, start))]
            rows = svc.post("/v1/predict", json=body).json()["predictions"]
            sent.extend((r["prediction_id"], r["variant"], r["prediction"]) for r in rows)
            return [r["variant"] for r in rows]

        assert [v for start in range(0, 500, 50) for v in ask(one, start)] == chosen
        assert [v for start in range(0, 500, 50) for v in ask(two, start)] == chosen
        one.stop()
        one = start_service(tmp_path, served_registry, pin_path, **env)
        one.wait_ready(A)
        assert [v for start in range(0, 500, 50) for v in ask(one, start)] == chosen

        # Label everything: b's answers right 95 times in 100, a's 60 (the truth made to fit).
        flip = {"Yes": "No", "No": "Yes"}
        labels = {"a": 0, "b": 0}
        items = []
        for k, (pid, variant, said) in enumerate(sent):
            right = (k % 100) < (95 if variant == "b" else 60)
            items.append({"prediction_id": pid, "label": said if right else flip[said]})
            labels[variant] += 1
        for start in range(0, len(items), 100):
            r = two.post("/v1/feedback", json=items[start:start + 100])
            assert r.status_code == 200, r.text

        from pipelines.release import ab_report
        from pipelines.release.ab_conclude import conclude

        report = ab_report.report(repo, ENV, "churn", database=url)
        assert (report.a.labels, report.b.labels) == (labels["a"], labels["b"])
        assert (report.a.predictions, report.b.predictions) == (labels["a"], labels["b"])
        assert report.winner == "b" and report.ignored == 0
        done = conclude(repo, ENV, "churn", here=True, database=url)
        assert done.kept == "b" and Pin.read(pin_path).model.version == B

        def concluded():
            answer = two.post("/v1/predict", json=records[0], headers={HEADER: "customer-1"})
            return answer.json() if answer.json().get("variant", "") is None else None
        answer = two.wait_until(concluded, 30, "the conclusion to be served")
        assert answer["version"] == B
        assert two.get("/ready").json()["in_sync"] is True
        assert two.get("/v1/model").json()["ab"] is None
        for name in ("gitops_ml_predictions_total", "gitops_ml_model_info",
                     "gitops_ml_ab_split", "gitops_ml_feedback_total"):
            assert two.metric(name, variant="b") is None, name
            assert two.metric(name, variant="a") is None, name
        assert two.metric("gitops_ml_model_info", variant="", version=str(B)) == 1
        assert two.metric("gitops_ml_predictions_total", variant="", version=str(B),
                          **{"class": answer["prediction"]}) >= 1
    finally:
        one.stop()
        two.stop()
