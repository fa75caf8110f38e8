"""`mlops report` / `python -m pipelines.report` / `make report`: write the report."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from contracts.files import atomic_write_text
from pipelines.changed import touched
from pipelines.errors import CommandError
from pipelines.gitops.git import toplevel
from pipelines.report.inputs import load
from pipelines.report.render import COMMENT_LIMIT, render


def configure(parser: argparse.ArgumentParser) -> None:
    """The options of `mlops report` / `python -m pipelines.report`."""
    parser.add_argument("--base", default="origin/main",
                        help="the revision to compare against (default origin/main)")
    parser.add_argument("--models", nargs="*", metavar="NAME",
                        help="the models to report (default: those the change against --base "
                             "touches, as `mlops changed` prints them)")
    parser.add_argument("--repo", type=Path, default=Path("."), help="the project checkout")
    parser.add_argument("--plots-url", default=None, help="where the full HTML plots are")
    parser.add_argument("--out", type=Path,
                        help="write the markdown here (the pull-request comment: charts are "
                             f"left out if it would pass {COMMENT_LIMIT} characters)")
    parser.add_argument("--summary", type=Path,
                        help="append the whole markdown to this file ($GITHUB_STEP_SUMMARY)")
    parser.add_argument("--no-dvc-status", dest="check_stale", action="store_false",
                        help="trust the outputs in the working tree without `dvc status`")


def run(args: argparse.Namespace) -> int:
    """Write the report to --out and/or append it to --summary; print it otherwise."""
    repo = toplevel(args.repo)
    names = touched(repo, args.base) if args.models is None else list(dict.fromkeys(args.models))
    views = load(repo, names, args.base, check_stale=args.check_stale)
    text = render(views, args.base, plots_url=args.plots_url)
    if args.out:
        atomic_write_text(args.out, render(views, args.base, plots_url=args.plots_url,
                                           limit=COMMENT_LIMIT))
    if args.summary:
        with args.summary.open("a", encoding="utf-8") as fh:
            fh.write(text + "\n")
    if not args.out and not args.summary:
        print(text)
    return 0


def main(argv: list[str] | None = None) -> int:
    """CLI entry point of `python -m pipelines.report`."""
    parser = argparse.ArgumentParser(prog="python -m pipelines.report",
                                     description="Render the training report of the changed "
                                                 "models.")
    configure(parser)
    try:
        return run(parser.parse_args(argv))
    except CommandError as exc:
        print(f"pipelines.report: {exc}", file=sys.stderr)
        return 2
