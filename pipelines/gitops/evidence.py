"""The evidence a reviewer reads in a promotion or rollback pull request (GitHub Markdown).

Text that people, alerts or the registry supply (a rollback's reason, names, gate notes) reaches
the Markdown only through `code()` or `plain()`: it shows as typed and can add no heading, link,
image, HTML, @mention or issue-closing reference, nor leave its line or table cell.
"""
from __future__ import annotations

import math
import re
from typing import Any

from contracts.pin import Pin
from pipelines.gitops import pins
from pipelines.metric_names import KEY_METRICS

# Line breaks and other control characters (C0, C1, Unicode line separators) end a Markdown
# line or hide text; they become spaces.
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029]")
# What Markdown cannot read as anything but text (inside words, `_` does not emphasise).
_PLAIN = re.compile(r"[A-Za-z0-9 _.,:;()/%=+-]*")
TEXT_LIMIT = 500


def code(value: object, *, cell: bool = False, limit: int = TEXT_LIMIT) -> str:
    """`value` as one inline code span: Markdown, HTML, mentions and references inside it are
    shown literally. One line, at most `limit` characters; `cell`: also safe in a table cell."""
    text = " ".join(_CONTROL.sub(" ", str(value)).split())
    if len(text) > limit:
        text = text[:limit - 1] + "…"
    if cell:
        text = text.replace("|", "\\|")  # GFM splits cells before it reads code spans
    fence = "`" * (max((len(run) for run in re.findall("`+", text)), default=0) + 1)
    pad = " " if text.startswith("`") or text.endswith("`") else ""  # CommonMark strips one
    return f"{fence}{pad}{text}{pad}{fence}" if text else "–"


def plain(value: object, *, cell: bool = False) -> str:
    """`value` as it is when it is plain words and numbers, otherwise as `code(value)`."""
    text = str(value)
    return text if _PLAIN.fullmatch(text) and len(text) <= TEXT_LIMIT else code(text, cell=cell)


# Interval bounds are logged beside each metric as `<metric>_ci_low` / `<metric>_ci_high`.
_BOUNDS = ("_ci_low", "_ci_high")
# Shown first when present; any other metric follows alphabetically.


def point_metrics(metrics: dict[str, Any]) -> dict[str, float]:
    """The point estimates of a flat metrics dict (interval bounds and non-numbers dropped)."""
    out = {}
    for key, value in metrics.items():
        if key.endswith(_BOUNDS) or isinstance(value, bool):
            continue
        try:
            number = float(value)
        except (TypeError, ValueError):
            continue
        if math.isfinite(number):
            out[key] = round(number, 6)  # float noise (0.6100000000000001) never reaches a pin
    return dict(sorted(out.items(), key=lambda kv: _order(kv[0])))


def _order(name: str) -> tuple[int, str]:
    return (KEY_METRICS.index(name) if name in KEY_METRICS else len(KEY_METRICS), name)


def _cell(metrics: dict[str, Any] | None, name: str) -> str:
    if not metrics or name not in metrics:
        return "–"
    text = f"{float(metrics[name]):.4f}"
    low, high = metrics.get(f"{name}_ci_low"), metrics.get(f"{name}_ci_high")
    if low is not None and high is not None:
        text += f" [{float(low):.4f}, {float(high):.4f}]"
    return text


def metrics_table(challenger: dict[str, Any], champion: dict[str, Any] | None,
                  challenger_label: str, champion_label: str) -> str:
    """Markdown table: each metric for challenger and champion with its 95% interval."""
    names = sorted(set(point_metrics(challenger)) | set(point_metrics(champion or {})),
                   key=_order)
    lines = [f"| metric | {challenger_label} | {champion_label} | Δ |", "|---|---|---|---|"]
    for name in names:
        delta = "–"
        if champion and name in champion and name in challenger:
            delta = f"{float(challenger[name]) - float(champion[name]):+.4f}"
        lines.append(f"| {plain(name, cell=True)} | {_cell(challenger, name)} | "
                     f"{_cell(champion, name)} | {delta} |")
    return "\n".join(lines)


def gate_table(gate: dict[str, Any] | None) -> str:
    """Markdown table of the gate rules from the bundle's gate.json."""
    if not gate or not gate.get("rules"):
        return "_No gate.json in the bundle; the version's `gate` tag is the only verdict._"
    fmt = lambda v: "–" if v is None else f"{float(v):.4f}"
    lines = ["| rule | value | threshold | verdict |", "|---|---|---|---|"]
    for rule in gate["rules"]:
        note = f" ({plain(rule['note'], cell=True)})" if rule.get("note") else ""
        lines.append(f"| {plain(rule.get('rule', '?'), cell=True)} | {fmt(rule.get('value'))} | "
                     f"{fmt(rule.get('threshold'))} | {plain(rule.get('verdict', '?'), cell=True)}"
                     f"{note} |")
    lines.append(f"\nOverall: **{'passed' if gate.get('passed') else 'FAILED'}**")
    return "\n".join(lines)


def _describe(pin: Pin) -> str:
    if pin.is_empty:
        return "nothing (no model promoted yet)"
    m = pin.model
    if pin.is_ab:
        b, split = pin.ab.b.model, pin.ab.split
        return (f"an A/B test of `{m.name}`: v{m.version} (a, {split['a']}%, sha256 "
                f"`{m.sha256[:12]}`) against v{b.version} (b, {split['b']}%, sha256 "
                f"`{b.sha256[:12]}`)")
    shadow = f" with v{pin.shadow.version} in shadow" if pin.shadow is not None else ""
    return f"`{m.name}` v{m.version} (sha256 `{m.sha256[:12]}`){shadow}"


def unit_text(pin: Pin) -> str:
    """Where an A/B pin's unit id is read, in words: `header X-Customer-Id or field customerID`."""
    unit = pin.ab.unit
    return " or ".join(filter(None, [unit.header and f"header `{unit.header}`",
                                     unit.field and f"field `{unit.field}` of each record"]))


def _what_it_does(new: Pin, current: Pin, kind: str) -> tuple[str, str]:
    """The heading and the paragraph saying what merging the promotion does, by kind."""
    env, m = new.environment, new.model
    if kind == "ab":
        a, b, split = new.model, new.ab.b.model, new.ab.split
        return (f"## Start an A/B test of `{m.name}` in **{env}**: v{a.version} "
                f"({split['a']}%) against v{b.version} ({split['b']}%)",
                f"Merging it is the start of the test: each unit (named by the "
                f"{unit_text(new)}) always gets the same variant, by a stable hash; v{b.version} "
                f"(variant b) answers {split['b']}% of the units and v{a.version} (variant a) the "
                f"rest; requests without a unit id are assigned at random. Every answer and "
                f"prediction-log row names its variant. Read the verdict with "
                f"`mlops ab-report {env} --model {m.name}`; `mlops ab-conclude {env} --model "
                f"{m.name}` then makes the winner the only pin.")
    if kind == "shadow":
        return (f"## Shadow `{m.name}` v{new.shadow.version} beside v{m.version} in **{env}**",
                f"Merging it runs v{new.shadow.version} on a copy of every request, off the "
                f"request path; only its agreement with v{m.version} is exported "
                f"(gitops_ml_shadow_agreement), and users keep getting v{m.version}'s answers. "
                f"Promoting v{new.shadow.version} again makes it the model.")
    note = ""
    if kind == "from-shadow":
        note = f" It ran in shadow before (`{pins.relpath(env, m.name)}` named it as such)."
    return (f"## Promote `{m.name}` v{m.version} to **{env}**",
            f"Merging it is the deployment: Argo CD syncs the environment and the service loads "
            f"exactly this digest.{note}")


def lineage_list(pin: Pin) -> str:
    """The pinned model's immutable references as a Markdown list."""
    if pin.is_empty:
        return "- nothing pinned"
    m, lin = pin.model, pin.lineage
    return "\n".join([
        f"- registry: `{m.uri}`",
        f"- artifact sha256: `{m.sha256}`",
        f"- MLflow run: `{lin.run_id}`",
        f"- training commit: `{lin.git_commit}`",
        f"- data hash (DVC): `{lin.data_hash}`",
    ])


def promotion_body(*, new: Pin, current: Pin, challenger_metrics: dict[str, Any],
                   champion_metrics: dict[str, Any] | None, gate: dict[str, Any] | None,
                   commit: str, staged_in: str | None, kind: str = "replace",
                   delivery: str = "", promoted: Pin | None = None) -> str:
    """The pull-request body of a promotion: what merging it does (`kind`: replace, ab, shadow,
    from-shadow), how it is delivered, metrics, gates, the lineage of the version brought in
    (`promoted`: that version pinned alone; default `new`), the way back."""
    env = new.environment
    promoted = promoted or new
    m = promoted.model
    heading, does = _what_it_does(new, current, kind)
    challenger = f"challenger v{m.version}"
    champion_label = (f"champion v{current.model.version}" if not current.is_empty
                      else "champion (none)")
    order = (f"Staging pinned this exact digest in commit `{staged_in[:12]}`.\n\n"
             if staged_in else "")
    return (
        f"{heading}\n\n"
        f"This pull request changes one file, `{pins.relpath(env, m.name)}`, from "
        f"{_describe(current)} to {_describe(new)}. {does}\n\n{delivery}{order}"
        f"### Metrics on the test split (95% bootstrap interval)\n\n"
        f"{metrics_table(challenger_metrics, champion_metrics, challenger, champion_label)}"
        f"\n\n### Gates\n\n{gate_table(gate)}\n\n"
        f"### Lineage of v{m.version}\n\n{lineage_list(promoted)}\n\n"
        f"### Rolling back\n\n"
        f"After merging, undo this promotion with\n\n"
        f"```\nmlops rollback {env} --model {m.name}\n```\n\nor by hand, the same change:\n\n"
        f"```\ngit revert {commit}\n```\n"
    )


def rollback_body(*, env: str, model: str, reverted: str, current: Pin, restored: Pin,
                  commit: str, reason: str | None = None) -> str:
    """The pull-request body of a rollback: what goes away, what comes back, how to redo."""
    why = f"**Reason:** {code(reason)}\n\n" if reason else ""
    return (
        f"## Roll back `{model}` in **{env}**\n\n{why}"
        f"This pull request is `git revert {reverted}`: it changes only "
        f"`{pins.relpath(env, model)}`, from {_describe(current)} back to "
        f"{_describe(restored)}.\n\n"
        f"### Metrics (as pinned)\n\n"
        f"{metrics_table(restored.metrics, current.metrics, 'restored', 'rolled back')}\n\n"
        f"### Lineage of the restored model\n\n{lineage_list(restored)}\n\n"
        f"### Undoing the rollback\n\n```\ngit revert {commit}\n```\n"
    )


def image_body(*, env: str, path: str, image: str, previous: str, source: str,
               commit: str) -> str:
    """The pull-request body of a service image rollout (`image`: name[:tag]@digest): what
    changes, the same edit by hand, how to undo it."""
    return (
        f"## Roll out the service image to **{plain(env)}**\n\n"
        f"This pull request changes one file, `{path}`: every workload in {plain(env)} (each "
        f"model's service and the database upkeep) runs\n\n```\n{image}\n```\n\ninstead of"
        f"\n\n```\n{previous}\n```\n\nKubernetes pulls it by digest; the tag only says which "
        f"commit built it. Merging it is the deployment: Argo CD syncs every model of the "
        f"environment (by canary where the environment delivers by canary).\n\n"
        f"The same change by hand, in `{path.rsplit('/', 1)[0]}/`:\n\n"
        f"```\nkustomize edit set image {source}={image}\n```\n\n"
        f"### Rolling back\n\n```\ngit revert {commit}\n```\n"
    )
