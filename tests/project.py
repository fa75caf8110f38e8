"""A project checkout for tests: copy what git versions of the pipeline into a fresh
repository, and run commands in it with their output in the assertion when they fail."""
from __future__ import annotations

import contextlib
import io
import os
import shutil
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

PROJECT_FILES = ("dvc.yaml", "params.yaml", ".dvcignore", ".gitignore", "pyproject.toml")
PROJECT_DIRS = ("pipelines", "contracts", ".dvc", "environments", "models", "data")


def run(cmd: list[str], cwd: Path, check: bool = True,
        env: dict | None = None) -> subprocess.CompletedProcess:
    """Run a command, returning its output; on failure the assertion shows both streams."""
    proc = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True,
                          env={**os.environ, **(env or {})})
    if check and proc.returncode != 0:
        raise AssertionError(f"{' '.join(cmd)} exited {proc.returncode}\n"
                             f"--- stdout\n{proc.stdout}\n--- stderr\n{proc.stderr}")
    return proc


def call(main, args: list, cwd: Path | None = None, env: dict[str, str] | None = None,
         check: bool = False, name: str = "command") -> subprocess.CompletedProcess:
    """Run a command's `main(argv)` in this process (no interpreter start, no imports again),
    in `cwd` with `env` added to the environment, and give what a subprocess gives: the exit
    code and both streams. `check`: fail with both streams unless it exits 0."""
    out, err = io.StringIO(), io.StringIO()
    saved = {key: os.environ.get(key) for key in env or {}}
    os.environ.update(env or {})
    try:
        with contextlib.chdir(cwd or os.getcwd()), contextlib.redirect_stdout(out), \
                contextlib.redirect_stderr(err):
            try:
                code = main([str(a) for a in args])
            except SystemExit as exc:  # argparse's usage errors
                code = 0 if exc.code is None else exc.code if isinstance(exc.code, int) else 1
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
    proc = subprocess.CompletedProcess([name, *map(str, args)], code, out.getvalue(),
                                       err.getvalue())
    if check and code != 0:
        raise AssertionError(f"{' '.join(proc.args)} exited {code}\n"
                             f"--- stdout\n{proc.stdout}\n--- stderr\n{proc.stderr}")
    return proc


def mlops(args: list, cwd: Path, check: bool = True,
          env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    """`mlops ARGS` in this process (see call())."""
    from pipelines import cli

    return call(cli.main, args, cwd, env, check, "mlops")


def make_project(dst: Path) -> Path:
    """A fresh git repository holding the project's pipeline files (what git versions of them,
    as they are in the work tree), committed."""
    dst.mkdir(parents=True, exist_ok=True)
    listed = run(["git", "ls-files", "--cached", "--others", "--exclude-standard", "--",
                  *PROJECT_FILES, *PROJECT_DIRS], ROOT).stdout.split()
    for name in listed:
        if (ROOT / name).is_file():
            (dst / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / name, dst / name)
    run(["git", "init", "-q", "-b", "main"], dst)
    run(["git", "add", "-A"], dst)
    run(["git", "commit", "-q", "-m", "project"], dst)
    return dst


# The models the session's trained project onboards with `mlops new-model`, on data the tests
# make: name -> (maker in pipeline_fixtures, target column, task it is read as).
ONBOARDED = {"fraud": ("make_binary", "fraud", "binary"),
             "tiers": ("make_multiclass", "tier", "multiclass"),
             "flats": ("make_regression", "price_k", "regression")}
