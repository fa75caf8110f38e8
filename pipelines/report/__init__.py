"""The training report a reviewer reads on a pull request: one section per changed model.

Each section has the model's gate verdict, its key test metrics with bootstrap intervals on
the base branch and on this one, the keys of its declaration that changed, its slices, and its
curves drawn inline as Mermaid charts (this branch against the base branch, whose plot data is
committed and read from git). train.yml appends it to $GITHUB_STEP_SUMMARY and posts it as one
pull-request comment; `make report` writes the same file locally.

  inputs.py    what is read: this branch's outputs, the base branch's from git
  sections.py  the parts of a model's section (SECTIONS: add one to extend the report)
  curves.py    one chart per plot file; charts.py the Mermaid xychart writer
  render.py    the whole report; command.py the command line
"""
from __future__ import annotations

from pipelines.report.command import configure, main, run
from pipelines.report.render import MARKER, render

__all__ = ["MARKER", "configure", "main", "render", "run"]
