"""Offline HEAR benchmark harness: ``hear-gura evaluate``.

Runs heareval's embedding and prediction runners (with
:mod:`hear_gura.heareval_compat`'s fixes) for every ensemble x option-grid
point x task, resumably, and writes ``results.csv``, ``results.md`` and
``results.png`` (``--seeds N``: mean ± std over N probe runs; ``--probe fast``:
``results-fastprobe.*``, never HEAR scores; ``--per-class TASK``: per-class tables).

Modules: :mod:`~hear_gura.harness.grid` (option grids, variants, labels),
:mod:`~hear_gura.harness.scores` (task folders, heareval's score files, runs over seeds),
:mod:`~hear_gura.harness.runner` (cells, subprocesses, resume),
:mod:`~hear_gura.harness.probe_run` (a cell's probe runs, one per seed),
:mod:`~hear_gura.harness.probe_progress` (console lines while heareval's probe trains),
:mod:`~hear_gura.harness.per_class` (per-class scores from heareval's test predictions),
:mod:`~hear_gura.harness.report` (csv / md / png),
:mod:`~hear_gura.harness.leaderboard` (published GURA scores),
:mod:`~hear_gura.harness.evaluate` (the whole run), :mod:`~hear_gura.harness.cli`.
"""

from hear_gura.harness.evaluate import EvaluationResult, evaluate

__all__ = ["EvaluationResult", "evaluate"]
