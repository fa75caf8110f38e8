"""`mlops status`: what every model runs in every environment (its pin in git: one version, a
version and its shadow, or the two variants of an A/B test), how new versions reach its users,
and whether the registry agrees; then, when a prediction log is at hand, each declared slice's
live figures against its rule (pipelines/gitops/live_slices.py)."""
from __future__ import annotations

import argparse
from pathlib import Path

from contracts.pin import Pin
from pipelines.gitops import evidence, pins
from pipelines.gitops import git as gitops

SHOWN_METRICS = 3


def registry_verdict(pin: Pin, repo: Path) -> str:
    """`ok`, or what in the registry disagrees with the pin (git is right either way): each
    version it names (both variants of an A/B test) must be there with the pinned digest, and
    the environment's alias must name the model (variant a)."""
    if pin.is_empty:
        return "-"
    from pipelines.registry import store as registry

    m = pin.model
    named = [m] + ([pin.ab.b.model] if pin.is_ab else [])
    infos = []
    try:
        for ref in named:
            try:
                infos.append(registry.get_version(ref.name, ref.version, repo))
            except registry.RegistryError:
                return f"MISSING: {ref.name} v{ref.version} not in registry"
        alias = registry.aliases(m.name, repo).get(pin.environment)
    except Exception as exc:
        return f"unreachable ({type(exc).__name__})"
    for ref, info in zip(named, infos):
        if info.sha256 != ref.sha256:
            return (f"DIGEST DIFFERS: registry sha256 of v{ref.version} "
                    f"{info.sha256[:12] or 'missing'}")
    if alias != m.version:
        shown = "unset" if alias is None else f"v{alias}"
        return f"alias {pin.environment} is {shown} (run mlops sync-aliases)"
    return "ok"


def _metrics(pin: Pin) -> str:
    shown = list(evidence.point_metrics(pin.metrics).items())[:SHOWN_METRICS]
    return " ".join(f"{k}={v:.3f}" for k, v in shown) or "-"


def status_rows(repo: Path, registry: bool = True,
                registry_repo: Path | None = None) -> list[dict[str, str]]:
    """One row per environment and model, as the table shows it (`registry_repo`: see
    promote())."""
    rows = []
    for env, model in ((e, m) for e in pins.environments(repo) for m in pins.models(repo, e)):
        try:
            pin = pins.read(repo, env, model)
        except ValueError as exc:
            rows.append({"environment": env, "model": model,
                         "version": f"INVALID PIN: {exc}".splitlines()[0]})
            continue
        if pin.is_empty:
            rows.append({"environment": env, "model": model, "version": "(nothing promoted)",
                         "strategy": _strategy(repo, env, model)})
            continue
        version, digest = f"v{pin.model.version}", pin.model.sha256[:12]
        if pin.is_ab:
            b, split = pin.ab.b.model, pin.ab.split
            version = f"v{pin.model.version} {split['a']}% / v{b.version} {split['b']}%"
            digest = f"{digest} / {b.sha256[:12]}"
        elif pin.shadow is not None:
            version += f" (shadow v{pin.shadow.version})"
        rows.append({
            "environment": env,
            "model": model,
            "version": version,
            "digest": digest,
            "strategy": _strategy(repo, env, model),
            "promoted": pin.promoted.at.strftime("%Y-%m-%d %H:%M:%SZ"),
            "by": pin.promoted.by,
            "metrics": _metrics(pin),
            "registry": (registry_verdict(pin, registry_repo or repo) if registry
                         else "(not checked)"),
        })
    return rows


def _strategy(repo: Path, env: str, model: str) -> str:
    from pipelines.errors import CommandError
    from pipelines.release import strategy

    try:
        choice = strategy.effective(repo, env, model)
    except CommandError:
        return "INVALID"
    return choice.strategy + ("*" if choice.overridden else "")


COLUMNS = ("environment", "model", "version", "digest", "strategy", "promoted", "by", "metrics",
           "registry")


def status_table(repo: Path, registry: bool = True, registry_repo: Path | None = None) -> str:
    """Printable table, a row per environment and model: version, digest, release strategy (`*`:
    the model's own), when/who, metrics, registry."""
    rows = status_rows(Path(repo), registry, registry_repo)
    widths = {c: max([len(c)] + [len(r.get(c, "-")) for r in rows]) for c in COLUMNS}
    line = lambda r: "  ".join(r.get(c, "-").ljust(widths[c]) for c in COLUMNS).rstrip()
    return "\n".join([line({c: c.upper() for c in COLUMNS})] + [line(r) for r in rows])


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--repo", type=Path, default=Path("."), help="repository (default .)")
    parser.add_argument("--offline", action="store_true",
                        help="do not ask the registry whether it agrees")
    parser.add_argument("--no-slices", action="store_true",
                        help="do not show the live slices from the prediction log")


def run(args: argparse.Namespace) -> int:
    from pipelines.gitops import live_slices

    repo = gitops.toplevel(args.repo)
    print(status_table(repo, registry=not args.offline))
    if not args.no_slices and (shown := live_slices.section(repo)):
        print("\n" + shown)
    return 0
