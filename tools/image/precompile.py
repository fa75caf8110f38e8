"""Write the bytecode of the modules the service imports, and of no others (image build step).

Bytecode for the whole environment adds about 110 MB to the image; with none, every start
compiles some 2,500 modules again (10-15 s longer here before /ready). So the build writes
it for: every module the code under the given directories imports, at the top of a file or
inside a function (found with ast, so a new import is covered without editing this file),
the modules uvicorn loads for the loop and parser the service asks for, and every
scikit-learn estimator (a model file may hold any of them). The bytecode is hash-checked:
it stays valid whatever the files' times become when they are copied between stages.

Usage: python tools/image/precompile.py DIR...   (run in the environment it compiles)
"""
from __future__ import annotations

import ast
import importlib
import py_compile
import sys
import sysconfig
from pathlib import Path

# What uvicorn.run(loop="uvloop", http="httptools") imports by name at start.
RUNTIME = ("uvicorn.loops.uvloop", "uvicorn.protocols.http.httptools_impl", "uvicorn.lifespan.on")


def imported_names(source_dirs: list[Path]) -> set[str]:
    """Absolute module names imported anywhere in the .py files below `source_dirs`."""
    names: set[str] = set()
    for root in source_dirs:
        for path in sorted(root.rglob("*.py")):
            for node in ast.walk(ast.parse(path.read_text(), str(path))):
                if isinstance(node, ast.Import):
                    names.update(alias.name for alias in node.names)
                elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                    names.add(node.module)
    return names


def main(argv: list[str]) -> int:
    """Import what the service imports, then hash-compile each imported file of the venv."""
    dirs = [Path(a) for a in argv]
    sys.path[:0] = sorted({str(d.resolve().parent) for d in dirs})
    for name in sorted(imported_names(dirs)) + list(RUNTIME):
        importlib.import_module(name)
    from sklearn.utils.discovery import all_estimators

    all_estimators()  # imports every estimator's module
    site = Path(sysconfig.get_paths()["purelib"]).resolve()
    files = {Path(m.__file__).resolve() for m in list(sys.modules.values())
             if getattr(m, "__file__", None) and m.__file__.endswith(".py")}
    compiled = 0
    for path in sorted(f for f in files if site in f.parents):
        py_compile.compile(str(path), doraise=True,
                           invalidation_mode=py_compile.PycInvalidationMode.CHECKED_HASH)
        compiled += 1
    print(f"precompile: {compiled} modules of {site}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
