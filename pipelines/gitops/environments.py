"""Environments and the models deployed in them: environments/<env>/<model>/."""
from __future__ import annotations

from pathlib import Path

from contracts.pin import Pin

ROOT = "environments"
ORDER = ("staging", "production")


def names(repo: Path) -> list[str]:
    """Every environment: a folder of environments/ holding at least one model's pin."""
    root = Path(repo) / ROOT
    found = {p.parent.parent.name for p in root.glob("*/*/model.yaml")}
    order = {env: i for i, env in enumerate(ORDER)}
    return sorted(found | {e for e in ORDER if (root / e).is_dir()},
                  key=lambda n: (order.get(n, len(order)), n))


def existing(repo: Path, model: str) -> list[Path]:
    """The folders of `model` that exist in any environment."""
    return [p for env in names(repo) if (p := Path(repo) / ROOT / env / model).exists()]


def overlay_files(repo: Path, model: str) -> dict[Path, str]:
    """What adding `model` to every environment writes: its empty pin in each."""
    return {Path(repo) / ROOT / env / model / "model.yaml": Pin(environment=env).to_yaml()
            for env in names(repo)}
