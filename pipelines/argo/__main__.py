"""`python -m pipelines.argo [--check]`: write (or check) the committed WorkflowTemplate YAML."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from contracts.files import atomic_write_text
from pipelines.argo.workflow import OUTPUT, ROOT, render
from pipelines.errors import CommandError


def main(argv: list[str] | None = None) -> int:
    """Regenerate pipelines/argo/gitops-ml-pipeline.yaml; with --check, exit 1 if it is stale."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repo", type=Path, default=ROOT)
    parser.add_argument("--out", type=Path, default=OUTPUT)
    parser.add_argument("--check", action="store_true",
                        help="fail instead of writing when the file differs")
    args = parser.parse_args(argv)
    try:
        text = render(args.repo)
    except CommandError as exc:
        print(f"pipelines.argo: {exc}", file=sys.stderr)
        return 2
    current = args.out.read_text() if args.out.exists() else None
    if args.check:
        if current != text:
            print(f"{args.out} is stale: run `make argo-workflow` and commit it", file=sys.stderr)
            return 1
        print(f"{args.out} matches dvc.yaml")
        return 0
    if current != text:
        atomic_write_text(args.out, text)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
