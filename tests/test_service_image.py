"""The service image definition: lint-clean, non-root, no model baked in."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DOCKERFILE = ROOT / "service" / "Dockerfile"


def test_dockerfile_is_clean_under_hadolint():
    hadolint = Path(sys.executable).parent / "hadolint"
    proc = subprocess.run([str(hadolint), str(DOCKERFILE)], capture_output=True, text=True,
                          check=False, timeout=60)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_image_runs_as_non_root_and_carries_no_model_or_training_code():
    text = DOCKERFILE.read_text()
    copies = [line for line in text.splitlines() if line.startswith("COPY")]
    assert text.count("FROM ") >= 2  # build stage + slim runtime stage
    assert any(line.startswith("USER 10001") for line in text.splitlines())
    assert not any("models" in line or "pipelines" in line or ".mlflow" in line
                   for line in copies)
