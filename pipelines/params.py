"""Reading `params.yaml`: the one home of every ML knob."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml


def load_params(path: Path = Path("params.yaml")) -> dict[str, Any]:
    """Load params.yaml, failing with the file's name if it is missing or malformed."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found: run from the repository root or pass --params")
    data = yaml.safe_load(path.read_text())
    if not isinstance(data, dict):
        raise ValueError(f"{path} must be a mapping of sections")
    return data


def flatten(data: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """{'train': {'seed': 1}} -> {'train.seed': 1}: the form MLflow params and dvc take."""
    flat: dict[str, Any] = {}
    for key, value in data.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            flat.update(flatten(value, f"{name}."))
        else:
            flat[name] = value
    return flat
