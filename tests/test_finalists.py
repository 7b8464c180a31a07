"""``hear-gura evaluate --probe fast --finalists K``: the fast probe on every cell, heareval's probe on each task's
K best by the fast probe; real runs on the tiny scene task (fbank and CREPE), no mocks."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from hear_gura.errors import HearGuraError
from hear_gura.harness.finalists import finalist_rows, pick_finalists, ties_left_out
from hear_gura.harness.grid import build_variants
from hear_gura.harness.scores import TaskInfo
from hear_tasks import SCENE
from test_harness import read_csv, read_markdown_table
from test_seeds_per_class import evaluate as evaluate_scene


def evaluate(out: Path, tasks_dir: Path, *extra: str) -> tuple:
    """``hear-gura evaluate`` of fbank and crepe on the scene task; returns (runner calls, stdout)."""
    return evaluate_scene(out, tasks_dir, *extra, ensembles="fbank,crepe")


def test_finalists_are_the_fast_probes_best_per_task_error_rates_lowest_and_unfinished_cells_never(tasks_dir):
    variants = build_variants(["fbank", "crepe", "basic_pitch"], {})
    task = TaskInfo.load(tasks_dir / SCENE)
    labels = [v.label for v in variants]

    def records(scores, metric="top1_acc"):
        return {(label, task.folder): {"score": s, "metric": metric} for label, s in zip(labels, scores) if s is not None}

    def picked(scores, count, metric="top1_acc"):
        return [v.label for v in pick_finalists(records(scores, metric), variants, [task], count)[task.folder]]

    assert picked([0.2, 0.9, 0.5], 2) == ["crepe", "basic_pitch"]
    assert picked([0.2, 0.9, 0.5], 2, "segment_1s_er") == ["fbank", "basic_pitch"]  # an error rate: lowest first
    assert picked([0.5, 0.5, 0.1], 1) == ["fbank"]  # a tie goes to the earlier variant
    assert picked([math.nan, 0.1, 0.2], 2) == ["basic_pitch", "crepe"]  # an undefined score sorts last
    assert picked([None, 0.1, None], 2) == ["crepe"]  # only finished fast cells

    picks = pick_finalists(records([0.2, 0.9, 0.5]), variants, [task], 2)
    heareval = {("crepe", task.folder): {"score": 0.4, "seed_std": None},
                ("basic_pitch", task.folder): {"score": 0.6, "seed_std": 0.01}}
    rows = finalist_rows(picks, [task], records([0.2, 0.9, 0.5]), heareval)
    assert [(r["variant"], r["fast_rank"], r["heareval_rank"]) for r in rows] == [("crepe", 1, 2), ("basic_pitch", 2, 1)]
    assert ties_left_out(pick_finalists(records([0.5, 0.5, 0.1]), variants, [task], 1), variants,
                         records([0.5, 0.5, 0.1])) == {task.folder: ["crepe"]}
    assert ties_left_out(picks, variants, records([0.2, 0.9, 0.5])) == {}
    del heareval[("basic_pitch", task.folder)]
    assert finalist_rows(picks, [task], records([0.2, 0.9, 0.5]), heareval)[1]["heareval_rank"] is None


def test_bad_finalists_are_refused_before_any_work(tasks_dir, tmp_path):
    out = tmp_path / "out"
    with pytest.raises(HearGuraError, match="add --probe fast"):
        evaluate(out, tasks_dir, "--finalists", "1")
    with pytest.raises(HearGuraError, match="has 2 variant"):
        evaluate(out, tasks_dir, "--probe", "fast", "--finalists", "2")
    with pytest.raises(HearGuraError, match=r"0 \(off\) or a positive integer"):
        evaluate(out, tasks_dir, "--probe", "fast", "--finalists", "-1")
    assert not out.exists()


def test_heareval_runs_on_the_fast_probes_best_variant_only_and_the_tables_show_both(tasks_dir, tmp_path):
    out = tmp_path / "out"
    calls, stdout = evaluate(out, tasks_dir, "--probe", "fast", "--finalists", "1")
    fast = {r["variant"]: float(r["score"]) for r in read_csv(out / "results-fastprobe.csv")}
    assert set(fast) == {"fbank", "crepe"}
    best = max(fast, key=lambda label: (fast[label], label == "fbank"))  # the tie rule: fbank is listed first
    other = ({"fbank", "crepe"} - {best}).pop()
    # one member pass for both variants, then one heareval probe run: the best variant's cell only
    assert [c for c in calls if c.startswith("--tasks-dir")] == [f"--tasks-dir {SCENE}"]
    assert len([c for c in calls if not c.startswith("--tasks-dir")]) == 1
    assert (out / "cells" / best / f"{SCENE}.json").is_file()
    assert not (out / "cells" / other / f"{SCENE}.json").exists()
    heareval = json.loads((out / "cells" / best / f"{SCENE}.json").read_text())
    assert heareval["probe"]["kind"] == "heareval"
    table = read_markdown_table(out / "results.md")
    assert table[other][f"{SCENE} (top1_acc)"] == "n/a"
    [row] = read_csv(out / "results-finalists.csv")
    assert (row["variant"], row["fast_rank"], row["heareval_rank"]) == (best, "1", "1")
    assert float(row["fastprobe_score"]) == fast[best] and float(row["heareval_score"]) == heareval["score"]
    md = (out / "results-finalists.md").read_text()
    assert "fast probe, not HEAR scores" in md and best in md
    assert f"finalists: heareval's probe on the fast probe's best 1 per task ({SCENE}: {best})" in stdout

    command = json.loads((out / "command.json").read_text())  # both stages' times and counts
    assert command["stage"] == "heareval's probe on the finalists" and command["cells"]["done"] == 1
    assert command["fast_stage"]["cells"]["done"] == 2 and command["fast_stage"]["seconds"] > 0

    # a rerun finds both stages finished and runs nothing; --report-only rewrites the tables from the cells
    again, _ = evaluate(out, tasks_dir, "--probe", "fast", "--finalists", "1")
    assert again == []
    (out / "results-finalists.md").unlink()
    assert evaluate(out, tasks_dir, "--probe", "fast", "--finalists", "1", "--report-only")[0] == []
    assert (out / "results-finalists.md").read_text() == md
    evaluate(out, tasks_dir, "--probe", "fast", "--finalists", "1", "--report-only", "--per-class", SCENE)
    [per_class] = out.glob("per-class-*.md")
    header = next(line for line in per_class.read_text().splitlines() if line.startswith("| class"))
    assert best in header and other not in header  # the finalists' heareval cells: predictions kept


def test_importing_the_harness_loads_neither_torch_nor_the_fast_probe():
    """``hear-gura evaluate --help`` and heareval-only studies stay light: the finalists module takes the fast
    probe's tags from the harness, not from hear_gura.analysis.fast_probe (which imports torch)."""
    import subprocess
    import sys

    code = ("import sys, hear_gura.harness.evaluate; "
            "print('torch' in sys.modules, 'hear_gura.analysis.fast_probe' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["False", "False"]
