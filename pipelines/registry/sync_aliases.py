"""`mlops sync-aliases`: make each model's registry alias `<env>` point at the version git pins
for that model in that environment, for every model.

Git is the source of truth: an alias that disagrees is reported and then moved (or deleted
when the environment pins nothing); `--check` only reports and exits 1 on any disagreement.
"""
from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path

from pipelines.gitops import git as gitops
from pipelines.gitops import pins


@dataclass
class AliasChange:
    """One alias that disagreed with git."""

    model: str
    alias: str
    registry: int | None  # version the alias pointed at (None: unset)
    git: int | None  # version the pin names (None: nothing pinned)

    def describe(self, applied: bool) -> str:
        was = "unset" if self.registry is None else f"v{self.registry}"
        want = "nothing" if self.git is None else f"v{self.git}"
        verb = ("deleted" if self.git is None else "moved to " + want) if applied else "disagrees"
        return (f"{self.model}@{self.alias}: registry says {was}, git pins {want}; {verb}")


def sync_aliases(repo: Path, *, check: bool = False,
                 registry_repo: Path | None = None) -> list[AliasChange]:
    """Align aliases with the pins (unless `check`); return every alias that disagreed."""
    from pipelines.registry import store as registry

    repo = gitops.toplevel(Path(repo))
    store = Path(registry_repo) if registry_repo else repo
    envs = pins.environments(repo)
    pinned = {(env, model): pins.read(repo, env, model)
              for env in envs for model in pins.models(repo, env)}
    changes = []
    # Every model with a folder in some environment, pinned or not: a model rolled back to
    # nothing everywhere still has aliases to delete.
    for model in sorted({m for _, m in pinned}):
        current = registry.aliases(model, store)
        for env in envs:
            pin = pinned.get((env, model))
            want = None if pin is None or pin.is_empty else pin.model.version
            have = current.get(env)
            if have == want:
                continue
            changes.append(AliasChange(model, env, have, want))
            if check:
                continue
            if want is None:
                registry.delete_alias(model, env, store)
            else:
                registry.set_alias(model, env, want, store)
    return changes


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--repo", type=Path, default=Path("."), help="repository (default .)")
    parser.add_argument("--check", action="store_true",
                        help="only report disagreements; exit 1 if there are any")


def run(args: argparse.Namespace) -> int:
    changes = sync_aliases(args.repo, check=args.check)
    for change in changes:
        print(change.describe(applied=not args.check))
    if not changes:
        print("every alias agrees with git")
    return 1 if (args.check and changes) else 0
