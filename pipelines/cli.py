"""`mlops`: one command for what a person, a workflow step or an Argo step does.

Each subcommand lives in its own module, which exposes `configure(parser)` and
`run(args) -> int`; this file only routes to them, importing a module when its
subcommand is used so `mlops --help` stays fast.
"""
from __future__ import annotations

import argparse
import importlib
import os
import sys

from pipelines.errors import CommandError

# (subcommand, module, one-line help)
COMMANDS: list[tuple[str, str, str]] = [
    ("new-model", "pipelines.declaration.onboard",
     "draft a model's declaration from its data and wire it in (no code)"),
    ("register", "pipelines.registry.register", "log the gated model to MLflow and register a new version"),
    ("import", "pipelines.registry.import_model", "bring a delivered model file through the gates"),
    ("promote", "pipelines.gitops.promote", "pin a registered version in an environment (one commit)"),
    ("rollback", "pipelines.gitops.rollback", "git revert the newest promotion of an environment"),
    ("image", "pipelines.gitops.image",
     "roll an environment's service image out by digest (one commit)"),
    ("status", "pipelines.gitops.status", "what each environment runs, with metrics and lineage"),
    ("history", "pipelines.gitops.history", "every promotion and rollback of an environment"),
    ("strategy", "pipelines.release.strategy",
     "how new versions reach an environment's users (rolling, canary, blue-green, shadow, ab)"),
    ("ab-report", "pipelines.release.ab_report",
     "the A/B test pinned in an environment: per variant, the difference, the verdict"),
    ("ab-conclude", "pipelines.release.ab_conclude",
     "the A/B test's verdict as a promotion: the winner becomes the only pin"),
    ("sync-aliases", "pipelines.registry.sync_aliases", "make registry aliases follow the pins in git"),
    ("serve", "pipelines.serve", "run the inference service on an environment's pin"),
    ("changed", "pipelines.changed", "the declared models a change touches against a base revision"),
    ("report", "pipelines.report", "metrics vs the base branch, gate verdicts: the PR report"),
    ("db", "pipelines.predictions.database", "the prediction log's database: upgrade or check it"),
    ("collect", "pipelines.predictions.collect",
     "labelled production rows of a model into its next training data"),
    ("prune", "pipelines.predictions.prune", "delete predictions past their model's retention"),
    ("retrain-summary", "pipelines.predictions.retrain",
     "collected rows and recent-holdout metrics against the champion, for a retrain PR"),
]


def _quiet_tools() -> None:
    # The project never phones home, whoever runs it.
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    os.environ.setdefault("DVC_NO_ANALYTICS", "1")
    os.environ.setdefault("DO_NOT_TRACK", "1")


def _wanted(argv: list[str]) -> str | None:
    return next((a for a in argv if not a.startswith("-")), None)


def main(argv: list[str] | None = None) -> int:
    """Entry point of the `mlops` console script."""
    _quiet_tools()
    argv = sys.argv[1:] if argv is None else argv
    wanted = _wanted(argv)
    # Only the chosen subcommand's module is imported (MLflow alone takes seconds).
    parser = argparse.ArgumentParser(prog="mlops", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, module_name, help_text in COMMANDS:
        p = sub.add_parser(name, help=help_text, description=help_text)
        p.set_defaults(_module=module_name)
        if name == wanted:
            try:
                importlib.import_module(module_name).configure(p)
            except ModuleNotFoundError as exc:
                if exc.name != module_name:
                    raise
                parser.error(f"'{name}' is not available in this installation")
    args = parser.parse_args(argv)
    module = importlib.import_module(args._module)
    try:
        return int(module.run(args) or 0)
    except CommandError as exc:
        print(f"mlops {args.command}: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
