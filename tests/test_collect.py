"""Production data comes back: labelled rows of the prediction log become the next training
data of their model (`mlops collect`), tracked by DVC, validated like the source, and a
retrain on them is judged on the newest of them."""
from __future__ import annotations

import json
import secrets
import sys
from datetime import UTC, datetime, timedelta

import pandas as pd
import pytest
import yaml
from project import mlops, run

from contracts.prediction_log.store import PredictionLog
from pipelines.predictions import database
from pipelines.registry import store as registry

pytestmark = pytest.mark.slow
MLOPS = [sys.executable, "-m", "pipelines.cli"]


def lock_md5(repo, path: str) -> str:
    lock = yaml.safe_load((repo / "dvc.lock").read_text())
    return next(d["md5"] for d in lock["stages"]["ingest@flats"]["deps"] if d["path"] == path)


def log_flats_predictions(repo, rows: pd.DataFrame) -> tuple[list[str], PredictionLog]:
    """Answered predictions of flats as the service logs them, an hour apart, labelled with
    their true price; one more from an older schema that lacks the city."""
    log = PredictionLog(database.url(repo))
    start = datetime.now(UTC) - timedelta(hours=len(rows) + 1)
    logged = []
    for i, row in enumerate(rows.itertuples(index=False)):
        features = {"size_m2": row.size_m2, "rooms": int(row.rooms), "city": row.city}
        logged.append({"id": secrets.token_hex(16), "model": "flats", "version": 1,
                       "digest": "0" * 64, "environment": "production", "variant": None,
                       "created_at": start + timedelta(hours=i), "expires_at": None,
                       "features": features, "predicted_label": None,
                       "predicted_value": float(row.price_k) + 5.0,
                       "output": {"prediction": float(row.price_k) + 5.0}})
    odd = dict(logged[0], id=secrets.token_hex(16), features={"size_m2": 50.0, "rooms": 2})
    log.write([*logged, odd])
    labels = [(p["id"], float(r.price_k)) for p, r in zip(logged, rows.itertuples())]
    assert {o.status for o in log.record_feedback(labels + [(odd["id"], 100.0)],
                                                  regression=True)} == {"stored"}
    return [p["id"] for p in logged], log


def test_collected_rows_retrain_the_model_and_judge_it_on_the_newest_of_them(project_copy):
    repo = project_copy
    mlops(["db", "upgrade"], repo)
    before = lock_md5(repo, "data/flats/production.csv")
    fresh = pd.read_parquet(repo / "data/flats/test.parquet").head(50)
    ids, _ = log_flats_predictions(repo, fresh)

    out = mlops(["collect", "flats"], repo).stdout
    assert "collected flats: 50 labelled rows (50 new)" in out and "1 quarantined" in out
    collected = pd.read_csv(repo / "data/flats/production.csv", dtype=str)
    assert sorted(collected["prediction_id"]) == sorted(ids)
    quarantine = pd.read_csv(repo / "data/flats/production-quarantine.csv", dtype=str)
    assert quarantine["_reason"].tolist() == ["city: empty"]
    report = json.loads((repo / "reports/flats/collect.json").read_text())
    assert report["valid_rows"] == 50 and report["window"]["from"] < report["window"]["to"]
    assert (repo / "data/flats/production.csv.dvc").read_text() != ""

    repro = run(["dvc", "repro"], repo).stdout
    reran = {line.split("'")[1] for line in repro.splitlines() if line.startswith("Running")}
    assert reran == {f"{s}@flats" for s in ("ingest", "split", "train", "export", "evaluate",
                                             "gate")}
    assert lock_md5(repo, "data/flats/production.csv") != before
    ingested = json.loads((repo / "reports/flats/ingest.json").read_text())
    assert ingested["production_used"] == 50
    train = pd.read_parquet(repo / "data/flats/train.parquet")
    test = pd.read_parquet(repo / "data/flats/test.parquet")
    assert (train["_origin"] == "production").sum() == 40  # the newest 10 are held out
    held = test[test["_origin"] == "production"]
    assert len(held) == 10 and held["_at"].min() > train["_at"].max()
    recent = json.loads((repo / "models/flats/metrics.json").read_text())["recent"]
    assert recent["rows"] == 10 and recent["mae"]["ci_low"] <= recent["mae"]["value"]

    run(["git", "add", "-A"], repo)
    run(["git", "commit", "-q", "-m", "Retrain flats on collected rows"], repo)
    mlops(["register", "flats"], repo)
    info = registry.get_version("flats", 1, repo)
    registered = registry.client(repo).get_run(info.run_id).data.tags
    assert registered["production_data_hash"] == lock_md5(repo, "data/flats/production.csv")


def test_collect_refuses_a_database_behind_the_code(project_copy):
    refused = run([*MLOPS, "collect", "flats"], project_copy, check=False)
    assert refused.returncode == 2 and "run `mlops db upgrade`" in refused.stderr
