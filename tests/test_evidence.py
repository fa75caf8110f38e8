"""Pull-request evidence: text from people, alerts and the registry shows as typed and can
change nothing else in the Markdown (checked on the HTML a CommonMark + GFM-table renderer makes)."""
from __future__ import annotations

import re
from datetime import UTC, datetime

import pytest
from markdown_it import MarkdownIt

from contracts.pin import Lineage, ModelRef, Pin, Promotion
from pipelines.gitops import evidence

HOSTILE = ("disk full\r\n\n## Approved by @acme/release-owners\n"
           "<img src=x onerror=alert(1)> [docs](https://evil.example) Fixes #1 "
           "`` ` `` | col \u2028 ![x](https://evil.example/x.png) <!--")


def html(markdown: str) -> str:
    return MarkdownIt("commonmark").enable("table").render(markdown)


def pin(env: str, version: int) -> Pin:
    return Pin(environment=env,
               model=ModelRef(name="churn", version=version, uri=f"models:/churn/{version}",
                              sha256=f"{version:x}" * 64),
               lineage=Lineage(run_id="r" * 32, git_commit="c" * 40, data_hash="d" * 32),
               metrics={"roc_auc": 0.8 + version / 100},
               promoted=Promotion(by="Ada <ada@example.com>",
                                  at=datetime(2026, 1, 2, tzinfo=UTC)))


def test_a_hostile_rollback_reason_stays_one_line_of_literal_text():
    body = evidence.rollback_body(env="production", model="churn", reverted="a" * 40,
                                  current=pin("production", 2), restored=pin("production", 1),
                                  commit="b" * 40, reason=HOSTILE)
    reason_lines = [line for line in body.splitlines() if line.startswith("**Reason:**")]
    assert len(reason_lines) == 1
    assert not any(line.startswith("## Approved") for line in body.splitlines())
    rendered = html(body)
    # Only the headings the body itself writes, no image, link, or raw HTML from the reason.
    assert re.findall(r"<h2>(.*?)</h2>", rendered) == ["Roll back <code>churn</code> in "
                                                       "<strong>production</strong>"]
    assert "<img" not in rendered and "<a " not in rendered and "<!--" not in rendered
    shown = re.search(r"<strong>Reason:</strong> <code>(.*?)</code>", rendered)[1]
    assert "&lt;img src=x onerror=alert(1)&gt;" in shown
    assert "## Approved by @acme/release-owners" in shown and "Fixes #1" in shown


@pytest.mark.parametrize("text", ["`", "``a``", "a ` b", "` leading", "trailing `", "x" * 900])
def test_code_spans_hold_any_backticks_and_are_bounded(text):
    rendered = html(evidence.code(text))
    inner = re.fullmatch(r"<p><code>(.*)</code></p>\n", rendered, re.DOTALL)[1]
    if len(text) <= evidence.TEXT_LIMIT:
        assert inner == text.replace("&", "&amp;")
    else:
        assert inner == text[:evidence.TEXT_LIMIT - 1] + "…"


def test_gate_notes_and_rule_names_from_the_bundle_cannot_break_the_table():
    gate = {"passed": True, "rules": [
        {"rule": "floor roc_auc", "value": 0.9, "threshold": 0.8, "verdict": "pass",
         "note": "ok | injected cell <b>bold</b>"},
        {"rule": "x\n| fake | row |", "value": 1, "threshold": 1, "verdict": "pass", "note": ""}]}
    table = evidence.gate_table(gate)
    rendered = html(table)
    rows = re.findall(r"<tr>(.*?)</tr>", rendered, re.DOTALL)
    assert len(rows) == 3  # the header and the two rules: nothing added
    assert all(row.count("<td>") in (0, 4) for row in rows)
    assert "<b>" not in rendered
    assert "| floor roc_auc | 0.9000 | 0.8000 | pass (`ok \\| injected cell <b>bold</b>`) |" \
        in table
