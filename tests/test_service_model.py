"""Loading a bundle: only verified, trusted, consistent files become the model in service."""
from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import skops.io as sio
from service_fixtures import write_pin

from contracts.digest import bundle_sha256
from contracts.pin import Pin
from service import fetch, model
from service.errors import LoadError

pytest_plugins = ("service_fixtures",)


class NotAnEstimator:
    """A type no trusted list names: loading it could run arbitrary code paths."""


def _bundle(reg, version: int, tmp_path: Path) -> Path:
    return shutil.copytree(reg.root / f"bundle-churn-v{version}", tmp_path / f"b{version}")


def _pin(reg, version: int, tmp_path: Path) -> Pin:
    return Pin.read(write_pin(tmp_path / "pin.yaml", reg, version))


def test_a_verified_bundle_loads_onnx_and_agrees_with_sklearn(served_registry, tmp_path):
    reg = served_registry
    pin = _pin(reg, 1, tmp_path)
    loaded = model.load(_bundle(reg, 1, tmp_path), pin.model, pin)
    assert loaded.runtime == "onnxruntime"
    columns = [tuple(reg.rows[f][:50]) for f in loaded.signature.feature_names]
    labels, proba = loaded.predict(columns)
    expected = reg.models[1].predict_proba(reg.rows.iloc[:50])
    assert proba.shape == (50, 2) and abs(proba - expected).max() < 1e-6
    assert labels == list(reg.models[1].predict(reg.rows.iloc[:50]))


def test_without_onnx_the_sklearn_model_serves(served_registry, tmp_path):
    reg = served_registry
    pin = _pin(reg, 1, tmp_path)
    path = _bundle(reg, 1, tmp_path)
    (path / "model.onnx").unlink()
    loaded = model.load(path, pin.model, pin)
    assert loaded.runtime == "scikit-learn"
    columns = [tuple(reg.rows[f][:5]) for f in loaded.signature.feature_names]
    assert loaded.predict(columns)[0] == list(reg.models[1].predict(reg.rows.iloc[:5]))


def test_untrusted_types_in_the_model_file_are_refused(served_registry, tmp_path):
    reg = served_registry
    pin = _pin(reg, 1, tmp_path)
    path = _bundle(reg, 1, tmp_path)
    (path / "model.skops").write_bytes(sio.dumps({"model": NotAnEstimator()}))
    with pytest.raises(LoadError) as err:
        model.load(path, pin.model, pin)
    assert err.value.reason == "untrusted_types"
    assert "NotAnEstimator" in err.value.message


def test_an_onnx_file_that_disagrees_with_the_model_is_refused(served_registry, tmp_path):
    reg = served_registry
    pin = _pin(reg, 1, tmp_path)
    path = _bundle(reg, 1, tmp_path)
    shutil.copy(reg.root / "bundle-churn-v2" / "model.onnx", path / "model.onnx")
    with pytest.raises(LoadError) as err:
        model.load(path, pin.model, pin)
    assert err.value.reason == "onnx_parity"


def test_fetch_checks_the_digest_before_anything_is_loaded(served_registry, tmp_path):
    reg = served_registry
    pin = _pin(reg, 1, tmp_path)
    fetched = fetch.fetch_verified(pin.model, reg.uri, tmp_path / "cache")
    assert bundle_sha256(fetched) == reg.digests[1]
    wrong = pin.model.model_copy(update={"sha256": reg.digests[2]})
    with pytest.raises(LoadError) as err:
        fetch.fetch_verified(wrong, reg.uri, tmp_path / "cache")
    assert err.value.reason == "digest_mismatch"
    assert reg.digests[2] in err.value.message
    # A cached copy altered on disk is not trusted either: it is fetched again.
    (fetched / "metrics.json").write_text("{}")
    again = fetch.fetch_verified(pin.model, reg.uri, tmp_path / "cache")
    assert bundle_sha256(again) == reg.digests[1]


def test_a_missing_version_and_a_missing_registry_are_named(served_registry, tmp_path):
    reg = served_registry
    pin = _pin(reg, 1, tmp_path)
    missing = pin.model.model_copy(update={"version": 42, "uri": "models:/churn/42"})
    with pytest.raises(LoadError) as err:
        fetch.fetch_verified(missing, reg.uri, tmp_path / "cache")
    assert err.value.reason == "version_not_found" and "models:/churn/42" in err.value.message
    with pytest.raises(LoadError) as err:
        fetch.fetch_verified(pin.model, None, tmp_path / "cache")
    assert err.value.reason == "registry_unavailable"
    assert "MLFLOW_TRACKING_URI" in err.value.message
