"""`mlops import PATH --name churn --trust-pickle`: a delivered model file, through the gates.

A data-science team often hands over `model.pkl`. Loading a pickle runs whatever code it
holds, so it is loaded only when the user says they trust it; it is then converted to skops
(which loads without running code), checked to predict identically, evaluated on the test
split and put through the same gates as a trained model. Only then is it registered.
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
import skops.io as sio

from contracts.digest import file_sha256
from contracts.files import atomic_write_bytes, atomic_write_text
from contracts.modelfile import UntrustedModelError, loads_skops
from pipelines import schema
from pipelines.errors import CommandError
from pipelines.params import load_params
from pipelines.registry import lineage
from pipelines.registry.register import publish_outputs, register
from pipelines.stages import evaluate, export_onnx, gate
from pipelines.stages.features import features
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


def check_model(model, test: pd.DataFrame) -> np.ndarray:
    """The model must be a binary classifier of the declared classes on the declared features."""
    if not hasattr(model, "predict_proba") or not hasattr(model, "classes_"):
        raise CommandError(f"the file holds a {type(model).__name__}, not a fitted classifier "
                           "with predict_proba")
    classes = [str(c) for c in model.classes_]
    if sorted(classes) != sorted(schema.TARGET.categories):
        raise CommandError(f"the model predicts classes {classes}; expected "
                           f"{list(schema.TARGET.categories)} for {schema.TARGET.name}")
    try:
        return model.predict_proba(features(test))
    except Exception as exc:
        raise CommandError("the model cannot predict on the declared features "
                           f"({', '.join(schema.FEATURE_NAMES[:4])}, ...): {exc}") from exc


def to_skops(model, reference_proba: np.ndarray, test: pd.DataFrame) -> bytes:
    """Serialize with skops, load it back as the service will (trusted types only) and prove
    the skops copy predicts exactly like the pickle."""
    try:
        data = sio.dumps(model)
    except Exception as exc:
        raise CommandError(f"the model cannot be converted to skops: {exc}") from exc
    try:
        restored = loads_skops(data, "the converted model")
    except UntrustedModelError as exc:
        raise CommandError(f"refused: {exc}") from exc
    except Exception as exc:
        raise CommandError(f"the model cannot be converted to skops: {exc}") from exc
    if not np.array_equal(restored.predict_proba(features(test)), reference_proba):
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


def import_model(path: Path, out_dir: Path, *, trust: bool, train: pd.DataFrame,
                 test: pd.DataFrame, params: dict, champion: Path) -> dict:
    """Convert, evaluate and gate a pickled model into `out_dir`; return gate.json's content."""
    model = load_pickle(path, trust)
    proba = check_model(model, test)
    skops_bytes = to_skops(model, proba, test)
    if out_dir.exists():
        shutil.rmtree(out_dir)
    atomic_write_bytes(out_dir / "model.skops", skops_bytes)
    sig = signature(model)
    sig.write(out_dir / "signature.json")
    ref = reference(train, model, int(params["train"]["reference_sample_size"]),
                    int(params["train"]["seed"]))
    atomic_write_text(out_dir / "reference.json", json.dumps(ref) + "\n")
    result, plot_data = evaluate.evaluate(model, sig, test, params["evaluate"])
    evaluate.write(result, plot_data, out_dir / "metrics.json", out_dir / "plots")
    verdict = gate.run(out_dir / "model.skops", result, test, params["gates"],
                       gate.read_champion(champion))
    atomic_write_text(out_dir / "gate.json", json.dumps(verdict, indent=2) + "\n")
    return verdict


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("path", type=Path, help="the delivered model file (pickle or joblib)")
    parser.add_argument("--name", default="churn", help="registered model name")
    parser.add_argument("--trust-pickle", action="store_true",
                        help="allow loading the pickle (it can run arbitrary code)")
    parser.add_argument("--train", type=Path, default=Path("data/split/train.parquet"))
    parser.add_argument("--test", type=Path, default=Path("data/split/test.parquet"))
    parser.add_argument("--params", type=Path, default=Path("params.yaml"))
    parser.add_argument("--out", type=Path, default=None,
                        help="where the converted model and its reports go "
                             "(default build/import/NAME)")
    parser.add_argument("--no-register", action="store_true", help="gate only")
    parser.add_argument("--repo", type=Path, default=Path("."))


def run(args: argparse.Namespace) -> int:
    for split in (args.train, args.test):
        if not split.is_file():
            raise CommandError(f"{split} not found: run `dvc repro split` first")
    params = load_params(args.params)
    out_dir = args.out or Path("build/import") / args.name
    train, test = pd.read_parquet(args.train), pd.read_parquet(args.test)
    verdict = import_model(args.path, out_dir, trust=args.trust_pickle, train=train, test=test,
                           params=params, champion=Path(params["gates"]["champion_pin"]))
    print(gate.table(verdict))
    print(compile_onnx(out_dir, args.test))
    if not verdict["passed"]:
        print(f"mlops import: not registered: the gate failed (reports in {out_dir})",
              file=sys.stderr)
        return 1
    if args.no_register:
        return 0
    tags = {"git_commit": lineage.git_commit(args.repo), "imported_from": args.path.name,
            "imported_sha256": file_sha256(args.path), "data_hash": "unknown"}
    tags.update(lineage.data_hashes(lineage.read_lock(args.repo)))
    info = register(out_dir, args.name, args.repo, example=test.head(5), params=params,
                    tags=tags, gate=verdict, plots_dir=out_dir / "plots")
    print(f"registered {info.name} version {info.version}  sha256 {info.sha256}  run {info.run_id}")
    publish_outputs(info)
    return 0
