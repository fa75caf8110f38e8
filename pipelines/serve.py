"""`mlops serve --env ENV [--model NAME]`: run the inference service on one model's pin in an
environment (`--model` may be left out when the environment holds one model).

The service follows the pin file while it runs, so a promotion merged (or a `git revert` of
one) is picked up without a restart. Its prediction log is DATABASE_URL when set, otherwise the
embedded SQLite file `.mlflow/predictions.db`, which is migrated here first (the service never
migrates). A local run on a loopback address with no API_KEYS or JWT key is open to anyone on
this machine (ALLOW_ANONYMOUS=true, said at start); anywhere else the service refuses to start
open. This module only starts the service process; it never imports the service.
"""
from __future__ import annotations

import argparse
import ipaddress
import os
import sys
from pathlib import Path

from pipelines.errors import CommandError
from pipelines.gitops import pins


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--env", required=True, help="environment whose pin to serve")
    parser.add_argument("--model", help="the model to serve (may be left out when ENV holds one)")
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=8000, help="port (default 8000)")
    parser.add_argument("--repo", type=Path, default=Path("."),
                        help="the gitops repository (default: current directory)")


def pin_path(repo: Path, env: str, model: str | None = None) -> Path:
    """environments/<env>/<model>/model.yaml, checked to exist and to hold a valid pin of that
    model (`model` None: the environment's only model)."""
    if env not in pins.environments(repo):
        known = pins.environments(repo)
        raise CommandError(f"no pin for environment {env!r} under {repo / pins.ROOT}; "
                           f"environments with a pin: {', '.join(known) or 'none'}")
    model = pins.resolve_model(repo, env, model)
    path = repo / pins.relpath(env, model)
    try:
        pins.parse(path.read_text(), env, model, str(path))
    except ValueError as exc:
        raise CommandError(str(exc)) from exc
    return path


AUTH_SETTINGS = ("API_KEYS", "JWT_SECRET", "JWT_PUBLIC_KEY")


def service_environment(repo: Path, pin: Path, host: str = "127.0.0.1") -> dict[str, str]:
    """The service's settings: the pin, the registry the pipeline side uses, the prediction
    log (DATABASE_URL, or the embedded file), and ALLOW_ANONYMOUS for a local run without
    credentials."""
    from pipelines.predictions import database
    from pipelines.registry.store import tracking_uri

    env = dict(os.environ)
    env["MODEL_PIN"] = str(pin.resolve())
    env["MLFLOW_TRACKING_URI"] = tracking_uri(repo)
    env["DATABASE_URL"] = database.url(repo)
    env.setdefault("MODEL_CACHE_DIR", str((repo / ".mlflow" / "serving-cache").resolve()))
    if _loopback(host) and not any(env.get(name, "").strip() for name in AUTH_SETTINGS):
        env.setdefault("ALLOW_ANONYMOUS", "true")
    return env


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def run(args: argparse.Namespace) -> int:
    from contracts.prediction_log import migrate
    from pipelines.predictions import database

    repo = args.repo.resolve()
    pin = pin_path(repo, args.env, args.model or None)
    env = service_environment(repo, pin, args.host)
    print(f"mlops serve: {pin.parent.name} in {args.env} from {pin} on "
          f"http://{args.host}:{args.port}", flush=True)
    if not os.environ.get("DATABASE_URL", "").strip():
        before, after = migrate.upgrade(env["DATABASE_URL"])  # the embedded file: ours to migrate
        schema = f"schema {after}" + (f" (was {before or 'empty'})" if before != after else "")
        print(f"  prediction log: {repo / database.EMBEDDED} ({schema})", flush=True)
    else:
        print("  prediction log: DATABASE_URL (`mlops db upgrade` migrates it)", flush=True)
    if env.get("ALLOW_ANONYMOUS", "").strip().lower() == "true":
        print("  open to anyone who can reach it: ALLOW_ANONYMOUS=true (set API_KEYS or a JWT "
              "key to require credentials)", flush=True)
    command = [sys.executable, "-m", "service", "--host", args.host, "--port", str(args.port)]
    # Become the service process: signals (Ctrl-C, SIGTERM) reach it directly.
    os.execve(sys.executable, command, env)
    return 0  # not reached
