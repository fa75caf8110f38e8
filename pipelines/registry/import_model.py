"""`mlops import PATH --name NAME --trust-pickle`: a delivered model file, through the gates.

A data-science team often hands over `model.pkl`. Loading a pickle runs whatever code it
holds, so it is loaded only when the user says they trust it; it is then checked against the
declaration of model NAME (task, classes, features), converted to skops (which loads without
running code), checked to predict identically, evaluated on NAME's test split and put through
NAME's gates exactly like a trained model. Only then is it registered as a version of NAME.
"""
from __future__ import annotations

import argparse
import json
import pickle
import shutil
import sys
from pathlib import Path

import numpy as np
import pandas as pd

from contracts.digest import file_sha256
from contracts.files import atomic_write_bytes, atomic_write_text
from contracts.modelfile import UntrustedModelError, loads_skops
from contracts.signature import Signature
from pipelines import declaration
from pipelines.declaration import Declaration
from pipelines.errors import CommandError
from pipelines.gitops import pins
from pipelines.registry import lineage
from pipelines.registry.register import publish_outputs, register
from pipelines.stages import evaluate, export_onnx, gate
from pipelines.stages.features import features
from pipelines.stages.serialize import dumps_skops
from pipelines.stages.train import reference, signature


def load_pickle(path: Path, trust: bool):
    """Unpickle `path` only with explicit trust; joblib files are pickles too."""
    if not path.is_file():
        raise CommandError(f"{path} does not exist")
    if not trust:
        raise CommandError(
            f"{path} is a pickle: loading it runs any code it holds. Pass --trust-pickle only if "
            "you trust whoever produced it; it is converted to skops and never loaded as a "
            "pickle again")
    try:
        import joblib

        return joblib.load(path)
    except Exception:
        try:
            with open(path, "rb") as fh:
                return pickle.load(fh)
        except Exception as exc:
            raise CommandError(f"{path} is not a loadable pickle: {exc}") from exc


def check_model(model, decl: Declaration, test: pd.DataFrame) -> np.ndarray:
    """The model must do the declared task on the declared features; its predictions on the
    test rows (probabilities for a classifier) are returned for the conversion check."""
    kind = type(model).__name__
    sig = decl.signature()
    if decl.task == "regression":
        if hasattr(model, "predict_proba") or not hasattr(model, "predict"):
            raise CommandError(f"the file holds a {kind}, not a fitted regressor with predict; "
                               f"{decl.name} is declared as regression")
    else:
        if not hasattr(model, "predict_proba") or not hasattr(model, "classes_"):
            raise CommandError(f"the file holds a {kind}, not a fitted classifier with "
                               f"predict_proba; {decl.name} is declared as {decl.task}")
        classes = [str(c) for c in model.classes_]
        if sorted(classes) != sorted(decl.classes or []):
            raise CommandError(f"the model predicts classes {classes}; {decl.name} declares "
                               f"{decl.classes} for {decl.target}")
    try:
        x = features(test, sig)
        return np.asarray(model.predict(x) if decl.task == "regression"
                          else model.predict_proba(x))
    except Exception as exc:
        raise CommandError(f"the model cannot predict on {decl.name}'s declared features "
                           f"({', '.join(decl.feature_names[:4])}, ...): {exc}") from exc


def to_skops(model, decl: Declaration, expected: np.ndarray, test: pd.DataFrame) -> bytes:
    """Serialize with skops, load it back as the service will (trusted types only) and prove
    the skops copy predicts exactly like the pickle."""
    try:
        data = dumps_skops(model)
    except Exception as exc:
        raise CommandError(f"the model cannot be converted to skops: {exc}") from exc
    try:
        restored = loads_skops(data, "the converted model")
    except UntrustedModelError as exc:
        raise CommandError(f"refused: {exc}") from exc
    except Exception as exc:
        raise CommandError(f"the model cannot be converted to skops: {exc}") from exc
    x = features(test, decl.signature())
    again = restored.predict(x) if decl.task == "regression" else restored.predict_proba(x)
    if not np.array_equal(np.asarray(again), expected):
        raise CommandError("the skops copy does not predict identically to the pickle")
    return data


def compile_onnx(out_dir: Path, test_path: Path) -> str:
    """Give the imported model the service's fast path when it compiles with parity."""
    try:
        result = export_onnx.export(out_dir / "model.skops", out_dir / "signature.json", test_path,
                                    out_dir / "model.onnx")
    except ValueError as exc:
        return f"no ONNX copy, the service will use scikit-learn: {str(exc)[:300]}"
    return f"model.onnx agrees with model.skops on {result.rows} rows"


def import_model(path: Path, out_dir: Path, *, decl: Declaration, trust: bool,
                 train: pd.DataFrame, test: pd.DataFrame, test_path: Path,
                 champion: Path) -> tuple[dict, str]:
    """Convert, compile, evaluate and gate a pickled model into `out_dir`; return gate.json's
    content and what the ONNX compilation said."""
    model = load_pickle(path, trust)
    expected = check_model(model, decl, test)
    skops_bytes = to_skops(model, decl, expected, test)
    if out_dir.exists():
        shutil.rmtree(out_dir)
    atomic_write_bytes(out_dir / "model.skops", skops_bytes)
    sig: Signature = signature(decl, model)
    sig.write(out_dir / "signature.json")
    ref = reference(train, model, sig, decl.train.reference_sample_size, decl.train.seed)
    atomic_write_text(out_dir / "reference.json", json.dumps(ref) + "\n")
    compiled = compile_onnx(out_dir, test_path)  # before the gate: it times what will serve
    result, plot_data = evaluate.evaluate(model, sig, test, train, decl.evaluate, decl.slices)
    evaluate.write(result, plot_data, out_dir / "metrics.json", out_dir / "plots")
    verdict, measured = gate.run(out_dir, sig, result, test, decl.gates,
                                 gate.read_champion(champion), decl.slices)
    atomic_write_text(out_dir / "latency.json", json.dumps(measured, indent=2) + "\n")
    atomic_write_text(out_dir / "gate.json", json.dumps(verdict, indent=2) + "\n")
    return verdict, compiled


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("path", type=Path, help="the delivered model file (pickle or joblib)")
    parser.add_argument("--name", required=True,
                        help="the declared model it is a version of (models/NAME/model.yaml)")
    parser.add_argument("--trust-pickle", action="store_true",
                        help="allow loading the pickle (it can run arbitrary code)")
    parser.add_argument("--out", type=Path, default=None,
                        help="where the converted model and its reports go "
                             "(default build/import/NAME)")
    parser.add_argument("--no-register", action="store_true", help="gate only")
    parser.add_argument("--repo", type=Path, default=Path("."))


def run(args: argparse.Namespace) -> int:
    try:
        name = declaration.check_name(args.name)  # before any path is built from it
    except ValueError as exc:
        raise CommandError(str(exc)) from None
    repo = args.repo
    decl = declaration.load_named(repo, name)
    splits = {s: repo / "data" / name / f"{s}.parquet" for s in ("train", "test")}
    for path in splits.values():
        if not path.is_file():
            raise CommandError(f"{path} not found: run `dvc repro split@{name}` first")
    out_dir = args.out or repo / "build" / "import" / name
    train, test = pd.read_parquet(splits["train"]), pd.read_parquet(splits["test"])
    verdict, compiled = import_model(
        args.path, out_dir, decl=decl, trust=args.trust_pickle, train=train, test=test,
        test_path=splits["test"], champion=repo / pins.relpath("production", name))
    print(compiled)
    print(gate.table(verdict, json.loads((out_dir / "latency.json").read_text())))
    if not verdict["passed"]:
        print(f"mlops import: not registered: the gate failed (reports in {out_dir})",
              file=sys.stderr)
        return 1
    if args.no_register:
        return 0
    tags = {"git_commit": lineage.git_commit(repo), "imported_from": args.path.name,
            "imported_sha256": file_sha256(args.path), "data_hash": "unknown"}
    tags.update(lineage.data_hashes(lineage.read_lock(repo), name,
                                       declaration.sources(repo).get(name)))
    info = register(out_dir, name, repo, example=test.head(5),
                    params=decl.model_dump(mode="json", exclude={"features", "description", "train"}),
                    tags=tags, gate=verdict, description=decl.description,
                    plots_dir=out_dir / "plots", created=lineage.commit_time(repo))
    print(f"registered {info.name} version {info.version}  sha256 {info.sha256}  run {info.run_id}")
    publish_outputs(info)
    return 0
