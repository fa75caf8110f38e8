"""`python -m service`: run the inference service (what `mlops serve` and the image start).

One process: the model and the drift window live in it (prediction ids and feedback in the
prediction log's database), and one uvicorn process with uvloop and httptools measured faster
per core here than the alternatives (see the README's service section). SIGTERM: uvicorn
finishes the requests in flight, then the app's shutdown writes the prediction log's buffer.
"""
from __future__ import annotations

import argparse
import os
import sys

from service.settings import SettingsError, from_env


def main(argv: list[str] | None = None) -> int:
    """Parse --host/--port, check the settings, and serve until stopped."""
    parser = argparse.ArgumentParser(prog="python -m service", description=__doc__.splitlines()[0])
    parser.add_argument("--host", default=os.environ.get("HOST", "127.0.0.1"))
    parser.add_argument("--port", type=int, default=int(os.environ.get("PORT", "8000")))
    args = parser.parse_args(argv)
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    try:
        settings = from_env()
    except SettingsError as exc:
        print(f"service: {exc}", file=sys.stderr)
        return 2
    import uvicorn

    uvicorn.run(
        "service.app:create_app", factory=True, host=args.host, port=args.port,
        loop="uvloop", http="httptools", workers=1, access_log=False,
        log_level=settings.log_level, timeout_graceful_shutdown=10,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
