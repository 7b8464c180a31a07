"""The study's member pass inside hear-gura evaluate: one pass per task for all ensembles, heareval's own files,
the feature cache."""

from __future__ import annotations

import contextlib
import io
import json
from typing import List

import pytest

from hear_tasks import EVENT, SCENE
from test_harness import counting_runs, read_csv, run_cli


# ------------------------------------------------------- the study's member pass
STUDY_VARIANTS = [("cat_wav2vec2_crepe", {"time_align": "centre"}), ("avg_hubert_wav2vec2", {})]


def test_study_pass_writes_the_bytes_heareval_writes_per_variant(tmp_path, tasks_dir, manifest):
    """Two ensembles with different member sets (W + C, H-l + W) from one member pass per task, on a scene and an
    event task: heareval's own files (its runner once per variant, over both tasks, as ``--task all`` runs them)."""
    import os
    import subprocess
    import sys

    from hear_gura.harness.shared_embed import study_task_embeddings

    shared_tasks, tasks_dir = tasks_dir, tmp_path / "tasks"  # exactly the two tasks, for --task all
    tasks_dir.mkdir()
    for task in (SCENE, EVENT):
        (tasks_dir / task).symlink_to(shared_tasks / task, target_is_directory=True)
    study = {}
    for task in (SCENE, EVENT):
        variants = [{"ensemble": e, "options": o, "embeddings_dir": str(tmp_path / f"study{i}")}
                    for i, (e, o) in enumerate(STUDY_VARIANTS)]
        report = tmp_path / f"report-{task}.json"
        study[task] = study_task_embeddings(variants, str(manifest), tasks_dir / task, report=report)
        summary = json.loads(report.read_text())
        assert summary["members"] == 3 and summary["variants"] == 2  # wav2vec2 built and run once for both
    for index, (ensemble, options) in enumerate(STUDY_VARIANTS):
        root = tmp_path / f"plain{index}"
        result = subprocess.run(
            [sys.executable, "-m", "heareval.embeddings.runner", f"hear_gura.{ensemble}", "--model",
             str(manifest), "--tasks-dir", str(tasks_dir), "--task", "all", "--embeddings-dir", str(root),
             "--model-options", json.dumps(options)],
            capture_output=True, text=True, env=dict(os.environ, HF_HUB_OFFLINE="1"), cwd=tmp_path, timeout=600)
        assert result.returncode == 0, result.stderr[-2000:]
        for task in (SCENE, EVENT):
            [plain] = root.glob(f"*/{task}")
            ours = study[task][index]
            assert plain.parent.name == ours.parent.name  # heareval's folder naming
            files = sorted(p.relative_to(plain) for p in plain.rglob("*") if p.is_file())
            assert files == sorted(p.relative_to(ours) for p in ours.rglob("*") if p.is_file())
            compared = [f for f in files if f.name != "profile.embeddings.json"]
            assert any(str(f).endswith(".embedding.npy") for f in compared)
            for name in compared:
                expected = (plain / name).read_bytes()
                if name.name.endswith("filename-timestamps.json"):  # heareval records absolute file paths there
                    expected = expected.replace(str(plain).encode(), str(ours).encode())
                assert expected == (ours / name).read_bytes(), (task, name)


def test_evaluate_embeds_each_task_once_for_every_ensemble_and_grid_point(tmp_path, tasks_dir, manifest):
    calls: List[str] = []
    out = tmp_path / "out"
    argv = ["evaluate", "--tasks-dir", str(tasks_dir), "--ensembles", "cat_wav2vec2_crepe,avg_hubert_wav2vec2",
            "--model", str(manifest), "--out", str(out), "--probe", "fast",
            "--tasks", SCENE, "--grid", json.dumps({"fusion": ["avg", "cat_interleave"]})]
    console = io.StringIO()
    with counting_runs(calls), contextlib.redirect_stdout(console):
        run_cli(argv)
    # 4 variants, one member pass; the probes are the in-process fast probe (heareval's per variant: test_harness.py)
    assert calls == [f"--tasks-dir {SCENE}"]
    clips = len(list((tasks_dir / SCENE).glob("16000/*/*.wav")))
    assert f"member pass {clips}/{clips} clips (100 %)" in console.getvalue()  # the study's progress, on the console
    rows = read_csv(out / "results-fastprobe.csv")
    assert len(rows) == 4 and all(r["score"] for r in rows)
    summary = json.loads((out / "logs" / "study" / f"{SCENE}.embeddings.json").read_text())
    assert summary["members"] == 3 and summary["variants"] == 4
    batches = summary["member_passes_total"] // 3
    assert summary["member_passes_total"] == 3 * batches  # each of W, C, H-l once per batch, not once per variant
    records = [json.loads(p.read_text()) for p in (out / "cells").glob(f"*/{SCENE}.embeddings.json")]
    assert len(records) == 4 and {r["shared_with"] for r in records} == {4}


def test_a_feature_cache_makes_a_later_study_over_the_same_members_run_none(tmp_path, tasks_dir):
    cache = tmp_path / "cache"
    common = ["evaluate", "--tasks-dir", str(tasks_dir), "--tasks", SCENE, "--probe", "fast",
              "--feature-cache", str(cache)]
    with contextlib.redirect_stdout(io.StringIO()):
        run_cli(common + ["--ensembles", "crepe", "--out", str(tmp_path / "first")])
    first = json.loads((tmp_path / "first" / "logs" / "study" / f"{SCENE}.embeddings.json").read_text())
    assert first["member_passes_total"] > 0 and first["feature_cache"]["misses"] > 0

    stdout = io.StringIO()
    with contextlib.redirect_stdout(stdout):  # two more variants over the same member: served from the cache
        run_cli(common + ["--ensembles", "crepe", "--grid", '{"fusion": ["avg", "cat_block"]}',
                          "--out", str(tmp_path / "second")])
    second = json.loads((tmp_path / "second" / "logs" / "study" / f"{SCENE}.embeddings.json").read_text())
    assert second["member_passes_total"] == 0 and second["feature_cache"]["misses"] == 0
    assert second["feature_cache"]["hits"] > 0 and "100.0 % hit rate" in stdout.getvalue()
    scores = {r["variant"]: r["score"] for r in read_csv(tmp_path / "second" / "results-fastprobe.csv")}
    assert set(scores.values()) == {read_csv(tmp_path / "first" / "results-fastprobe.csv")[0]["score"]}
