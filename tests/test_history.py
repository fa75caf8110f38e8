"""`mlops history`: what each environment's models served, from git, on a demo-like history."""
from __future__ import annotations

from pathlib import Path

import pytest
from history_fixtures import demo_like_repository

from pipelines.gitops import history

GOLDEN = Path(__file__).parent / "golden" / "history"
CASES = [("staging", None), ("production", None), ("staging", "churn"), ("staging", "housing"),
         ("production", "housing")]


@pytest.fixture(scope="module")
def demo(tmp_path_factory) -> Path:
    return demo_like_repository(tmp_path_factory.mktemp("history") / "repo")


@pytest.mark.parametrize(("env", "model"), CASES)
def test_history_output_matches_the_golden_file(demo, env, model):
    # The golden files were written by the reader that parsed every pin of every commit; the
    # output must stay byte for byte what it was. If the pin format or the promotion message
    # changes on purpose, rewrite them from `history.history_lines` and review the diff.
    name = f"{env}.txt" if model is None else f"{env}-{model}.txt"
    assert history.history_lines(demo, env, model) + "\n" == (GOLDEN / name).read_text()
