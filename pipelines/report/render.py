"""The whole report: a summary line per model, then one section per model, then where the
full plots are. The marker on its first line lets train.yml update one comment in place."""
from __future__ import annotations

from pipelines.metric_names import HEADLINE
from pipelines.report.inputs import ModelView
from pipelines.report.sections import SECTIONS, Block, Section, render_model, verdict
from pipelines.report.tables import change, interval, table

MARKER = "<!-- gitops-ml:train-report -->"
# GitHub refuses a comment body longer than this.
COMMENT_LIMIT = 65_536
LEFT_OUT = ("_Chart left out: with every chart the report passes GitHub's comment limit; the "
            "job summary and `make report` have it._")


def _summary(views: list[ModelView]) -> str:
    rows = []
    for view in views:
        metric = HEADLINE.get(view.task or "", "")
        new, old = view.new.metrics or {}, view.old.metrics or {}
        entry, before = new.get(metric) or {}, old.get(metric) or {}
        cell, _ = change(metric, entry.get("value"), before.get("value"), before.get("ci_low"),
                         before.get("ci_high"))
        value = interval(entry.get("value"), entry.get("ci_low"), entry.get("ci_high"))
        rows.append([view.name, view.task or "?", verdict(view), metric or "—", value, cell])
    return table(["model", "task", "gates", "headline metric", "this branch", "change"], rows)


def _block(block: Block, charts: bool) -> list[str]:
    body = block.body if charts or not block.chart else LEFT_OUT
    return ([f"#### {block.title}", ""] if block.title else []) + [body, ""]


def _render(views: list[ModelView], base: str, plots_url: str | None, sections: list[Section],
            charts: bool) -> str:
    names = ", ".join(v.name for v in views)
    parts = [MARKER, f"## Model report: {names or 'no model'} vs `{base}`", ""]
    if not views:
        parts += ["This change touches no declared model, so no model was trained.", ""]
        return "\n".join(parts)
    parts += [_summary(views), ""]
    for view in views:
        parts += [f"### {view.name} ({view.task or 'task unknown'})", ""]
        for block in render_model(view, sections):
            parts += _block(block, charts)
    where = (f"[the run's artifacts]({plots_url})" if plots_url
             else f"`dvc plots diff {base}` (HTML in build/report/plots/)")
    parts += ["### Full plots", "",
              f"Every curve and confusion matrix, this branch against `{base}`: {where}.", ""]
    return "\n".join(parts)


def render(views: list[ModelView], base: str, *, plots_url: str | None = None,
           sections: list[Section] = SECTIONS, limit: int | None = None) -> str:
    """The markdown report; with `limit`, charts are left out when the whole would not fit."""
    text = _render(views, base, plots_url, sections, charts=True)
    if limit is not None and len(text) > limit:
        text = _render(views, base, plots_url, sections, charts=False)
    return text
