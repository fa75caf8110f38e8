"""The bundle digest is the one a person computes with coreutils, and sees every byte."""
from __future__ import annotations

import subprocess

import pytest

from contracts.digest import bundle_sha256

HAND = ("(cd {d} && find . -type f ! -path ./registered_model_meta -printf '%P\\n' "
        "| LC_ALL=C sort | xargs sha256sum) | sha256sum")


@pytest.fixture()
def bundle(tmp_path):
    d = tmp_path / "bundle"
    (d / "sub").mkdir(parents=True)
    (d / "MLmodel").write_text("flavors: {}\n")
    (d / "model.skops").write_bytes(b"\x00\x01model")
    (d / "sub" / "b.json").write_text("{}\n")
    (d / "a.json").write_text("[]\n")
    return d


def test_digest_equals_the_coreutils_command(bundle):
    hand = subprocess.run(["bash", "-c", HAND.format(d=bundle)], capture_output=True, text=True,
                          check=True).stdout.split()[0]
    assert bundle_sha256(bundle) == hand


def test_any_changed_added_or_renamed_file_changes_the_digest(bundle):
    before = bundle_sha256(bundle)
    (bundle / "a.json").write_text("[1]\n")
    changed = bundle_sha256(bundle)
    (bundle / "extra").write_text("x")
    added = bundle_sha256(bundle)
    (bundle / "extra").rename(bundle / "extra2")
    assert len({before, changed, added, bundle_sha256(bundle)}) == 4


def test_mlflow_download_marker_does_not_change_the_digest(bundle):
    before = bundle_sha256(bundle)
    (bundle / "registered_model_meta").write_text("model_name: churn\nmodel_version: '1'\n")
    assert bundle_sha256(bundle) == before


def test_empty_or_missing_bundle_is_an_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="is not a directory"):
        bundle_sha256(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="holds no files"):
        bundle_sha256(tmp_path / "empty")
