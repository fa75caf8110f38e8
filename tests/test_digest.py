"""The bundle digest is the one a person computes with coreutils, and sees every byte."""
from __future__ import annotations

import hashlib
import subprocess

import pytest

from contracts.digest import UnsafeFileNameError, bundle_sha256, file_sha256, manifest

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


def test_a_newline_in_a_file_name_cannot_forge_another_bundles_digest(tmp_path):
    honest, forged = tmp_path / "honest", tmp_path / "forged"
    honest.mkdir()
    forged.mkdir()
    (honest / "a").write_text("weights\n")
    (honest / "b").write_text("signature\n")
    # One file whose name carries the second manifest line of the honest bundle.
    (forged / f"a\n{file_sha256(honest / 'b')}  b").write_text("weights\n")
    # Listed line by line without a check, both bundles give the very same manifest...
    naive = "".join(f"{file_sha256(p)}  {p.name}\n" for p in sorted(forged.iterdir()))
    assert naive == manifest(honest)
    # ...so the forged one gets no digest at all, and the honest one keeps its own.
    with pytest.raises(UnsafeFileNameError, match=r"'\\n'"):
        bundle_sha256(forged)
    assert bundle_sha256(honest) == hashlib.sha256(naive.encode()).hexdigest()


@pytest.mark.parametrize("name", ["tab\there", "cr\r", "esc\x1b[31m", "del\x7f", "nel\x85",
                                  "back\\slash", "dir\nname/inner.json"])
def test_file_names_with_control_characters_or_backslashes_are_refused(bundle, name):
    path = bundle / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("x")
    with pytest.raises(UnsafeFileNameError, match="refused"):
        bundle_sha256(bundle)


def test_file_names_that_are_not_utf8_are_refused(bundle):
    (bundle / "caf\udce9").write_bytes(b"x")  # the bytes b"caf\xe9", Latin-1 on disk
    with pytest.raises(UnsafeFileNameError):
        bundle_sha256(bundle)


def test_unicode_file_names_are_digested_like_coreutils_does(bundle):
    (bundle / "modèle-é.json").write_text("{}\n")
    hand = subprocess.run(["bash", "-c", HAND.format(d=bundle)], capture_output=True, text=True,
                          check=True).stdout.split()[0]
    assert bundle_sha256(bundle) == hand
