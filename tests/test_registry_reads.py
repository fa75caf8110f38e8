"""`mlops status` and `mlops promote` read the embedded registry without loading MLflow, and get
the answers MLflow would give."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from gitops_fixtures import MODEL, OTHER

from contracts.digest import bundle_sha256
from pipelines.registry import sqlite_reads
from pipelines.registry import store as registry

pytest_plugins = ("gitops_fixtures",)

# Runs mlops in a fresh interpreter, then says which heavy modules it loaded.
_LOADED = """
import json, sys
from pipelines import cli
code = cli.main(sys.argv[1:])
print("LOADED", json.dumps(sorted(m for m in ("mlflow", "pandas", "sklearn", "sqlalchemy")
                                  if m in sys.modules)))
sys.exit(code)
"""


def _mlops(repo: Path, *args: str) -> tuple[str, list[str]]:
    proc = subprocess.run([sys.executable, "-c", _LOADED, *args], cwd=repo, text=True,
                          capture_output=True)
    assert proc.returncode == 0, proc.stderr
    out, _, loaded = proc.stdout.rpartition("LOADED ")
    return out, json.loads(loaded)


def test_version_and_alias_lookups_answer_exactly_what_mlflow_answers(registry_env, tmp_path):
    client = registry.client()
    client.set_registered_model_alias(MODEL, "staging", "2")
    db = sqlite_reads.database(registry_env.uri)
    for name, versions in ((MODEL, registry_env.digests), (OTHER, registry_env.other_digests)):
        for version in versions:
            mv = client.get_model_version(name, str(version))
            run = client.get_run(mv.run_id)
            row = sqlite_reads.model_version(db, name, version)
            assert (row.source, row.run_id, row.tags, row.params, row.metrics,
                    sorted(row.aliases)) == (
                mv.source, mv.run_id, mv.tags, run.data.params, run.data.metrics,
                sorted(mv.aliases)), f"{name} v{version}"
        assert sqlite_reads.aliases(db, name) == {
            a: int(v) for a, v in client.get_registered_model(name).aliases.items()}
    assert sqlite_reads.model_version(db, MODEL, 99) is None
    assert sqlite_reads.aliases(db, "nobody") is None
    with pytest.raises(registry.RegistryError, match="churn version 99 does not exist"):
        registry.get_version(MODEL, 99)

    # The files promote verifies are the ones MLflow downloads.
    import mlflow

    info = registry.get_version(MODEL, 2)
    copied = registry._download(info, tmp_path / "copied")
    downloaded = Path(mlflow.artifacts.download_artifacts(artifact_uri=info.source,
                                                          dst_path=str(tmp_path / "mlflow")))
    assert copied.name == downloaded.name
    assert bundle_sha256(copied) == bundle_sha256(downloaded) == registry_env.digests[2]


def test_promote_status_and_history_do_not_load_mlflow_pandas_or_sklearn(gitops_repo,
                                                                        registry_env):
    out, loaded = _mlops(gitops_repo.path, "promote", MODEL, "2", "--to", "staging", "--here")
    assert f"promoted {MODEL} v2 to staging" in out and loaded == []
    registry.set_alias(MODEL, "staging", 2)
    out, loaded = _mlops(gitops_repo.path, "status")
    staging = next(line for line in out.splitlines() if line.startswith("staging"))
    assert staging.split()[2] == "v2" and staging.endswith(" ok") and loaded == []
    out, loaded = _mlops(gitops_repo.path, "history", "staging")
    assert "promotion" in out and loaded == []
