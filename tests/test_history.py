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


# --- reading history in bulk --------------------------------------------------------------------

def _counting(monkeypatch) -> dict[str, int]:
    """Count git processes and pin parses made from here on."""
    import subprocess

    from pipelines.gitops import git as gitops
    from pipelines.gitops import pins

    counts = {"git": 0, "parse": 0}
    run, parse = subprocess.run, pins.parse

    def counted_run(cmd, *args, **kwargs):
        counts["git"] += cmd[0] == "git"
        return run(cmd, *args, **kwargs)

    def counted_parse(*args, **kwargs):
        counts["parse"] += 1
        return parse(*args, **kwargs)

    monkeypatch.setattr(gitops.subprocess, "run", counted_run)
    monkeypatch.setattr(pins, "parse", counted_parse)
    return counts


def test_history_costs_one_git_log_and_no_pin_parse_per_promotion(tmp_path, monkeypatch):
    from history_fixtures import DemoHistory

    def cost(repo: Path) -> dict[str, int]:
        counts = _counting(monkeypatch)
        history.history_lines(repo, "staging")
        monkeypatch.undo()
        return counts

    short = demo_like_repository(tmp_path / "short")
    longer = demo_like_repository(tmp_path / "longer")
    h = DemoHistory.__new__(DemoHistory)
    h.path, h.step = longer, 100
    for version in range(4, 16):  # each a commit: twelve more show the cost does not grow
        h.promote("churn" if version % 2 else "housing", version, "staging")
    assert len(history.history_lines(longer, "staging").splitlines()) == (
        len(history.history_lines(short, "staging").splitlines()) + 12)
    # One `git log` and one `git cat-file` for the pins no promotion wrote, whatever the length;
    # only those pins are parsed: the empty one (the same bytes for both models) and the one
    # edited by hand.
    assert cost(short) == cost(longer) == {"git": 2, "parse": 2}


def test_a_rollback_finds_its_target_in_the_same_single_read(demo, monkeypatch):
    counts = _counting(monkeypatch)
    target = history.newest_active_promotion(demo, "staging", "housing")
    assert (target.kind, target.label, target.active) == ("promotion", "housing v2", True)
    assert counts["git"] == 2 and counts["parse"] == 1  # housing's first, empty pin


# --- what served when --------------------------------------------------------------------------

def test_history_at_a_time_names_the_commit_who_promoted_version_digest_and_metrics(demo):
    import hashlib

    # churn v2 reached production at 15:00 (Grace) and was rolled back at 16:00 (Ada).
    lines = history.served_at_lines(demo, "production", history.parse_time("2025-03-01T15:30Z"),
                                    "churn").splitlines()
    digest = hashlib.sha256(b"churn-2").hexdigest()
    assert lines[0] == "churn in production at 2025-03-01T15:30:00+00:00: churn v2"
    assert lines[1].startswith("  commit    182e9bc2") and "(promotion, committed " \
        "2025-03-01T15:00:00+00:00 by Grace Hopper <grace@example.com>)" in lines[1]
    assert lines[2:] == [f"  digest    {digest}",
                         "  promoted  by Grace Hopper <grace@example.com> at "
                         "2025-03-01T15:00:00+00:00",
                         "  metrics   roc_auc=0.82"]
    after = history.served_at_lines(demo, "production", history.parse_time("2025-03-01T16:30"))
    assert after.splitlines()[0] == "churn in production at 2025-03-01T16:30:00+00:00: churn v1"
    assert "(rollback, committed 2025-03-01T16:00:00+00:00 by Ada" in after
    assert after.splitlines()[-1] == ("housing in production at 2025-03-01T16:30:00+00:00: "
                                      "nothing (no commit of "
                                      "environments/production/housing/model.yaml before then)")


def test_history_at_is_a_command_and_refuses_a_time_it_cannot_read(demo, capsys):
    from pipelines import cli

    args = ["history", "staging", "--repo", str(demo)]
    assert cli.main([*args, "--at", "2025-03-01T21:30:00+00:00", "--model", "housing"]) == 0
    assert capsys.readouterr().out.startswith(
        "housing in staging at 2025-03-01T21:30:00+00:00: housing v2\n")
    assert cli.main([*args, "--at", "last tuesday"]) == 2
    assert "--at 'last tuesday' is not an ISO 8601 time" in capsys.readouterr().err
