"""eval_scripts/bench.py reports no speed-up, writes no figures and exits non-zero when hear_gura's side fails."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
HXL = "facebook/hubert-xlarge-ll60k"
W = "facebook/wav2vec2-large-960h-lv60-self"


def test_bench_fails_without_a_speedup_when_hear_gura_fails(tmp_path):
    """hear_gura refuses a wav2vec2 folder under the HuBERT id (wrong architecture); the naive side loads it."""
    from hear_gura.fixtures import write_fixtures

    manifest = write_fixtures(tmp_path / "checkpoints" / "layers-2")  # bench.py's cache folder for --layers 2
    entries = json.loads(manifest.read_text())
    entries[HXL] = entries[W]
    manifest.write_text(json.dumps(entries))
    figures = tmp_path / "bench.json"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    result = subprocess.run(
        [sys.executable, str(ROOT / "eval_scripts" / "bench.py"), "--layers", "2", "--cases", "a",
         "--ensembles", "hubert", "--checkpoints", str(tmp_path / "checkpoints"), "--json", str(figures)],
        capture_output=True, text=True, env=env, timeout=300,
    )
    assert "naive_s=" in result.stdout, result.stdout + result.stderr  # the naive side did run
    assert result.returncode != 0, result.stdout
    assert "speedup" not in result.stdout
    assert "hear_gura failed" in result.stderr and "hubert.batch16x4s" in result.stderr
    assert not figures.exists()


def test_fastprobe_agreement_pairs_cells_and_ranks_like_scipy(tmp_path):
    """eval_scripts/fastprobe_agreement.py: Spearman's rho equals scipy's (ties included); cells pair by file."""
    import importlib.util

    from scipy.stats import spearmanr

    spec = importlib.util.spec_from_file_location("agreement", Path(__file__).parent.parent / "eval_scripts"
                                                  / "fastprobe_agreement.py")
    agreement = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(agreement)
    a, b = [0.3, 0.1, 0.1, 0.9, 0.5, 0.2], [0.2, 0.15, 0.3, 0.8, 0.8, 0.1]
    assert abs(agreement.spearman(a, b) - spearmanr(a, b).statistic) < 1e-12
    assert agreement.spearman([1, 2], [2, 1]) is None and agreement.spearman([1, 1, 1], [1, 2, 3]) is None
    scores = {"x": (0.5, 0.4), "y": (0.7, 0.6), "z": (0.6, 0.3), "w": (0.2, 0.1)}
    for variant, (hear, fast) in scores.items():
        cells = tmp_path / "cells" / variant
        cells.mkdir(parents=True)
        common = {"variant": variant, "task": "kws-v1-full", "metric": "top1_acc", "embedding_type": "scene",
                  "complete": True}
        (cells / "kws-v1-full.json").write_text(json.dumps({**common, "score": hear, "predict_seconds": 100.0}))
        (cells / "kws-v1-full.fastprobe.json").write_text(json.dumps({**common, "score": fast,
                                                                      "predict_seconds": 4.0}))
    (tmp_path / "cells" / "w" / "kws-v1-full.json").unlink()  # heareval's probe missing: not paired
    pairs = agreement.paired_cells([tmp_path])
    assert sorted(p["variant"] for p in pairs) == ["x", "y", "z"]
    summary = agreement.summarise(pairs)["scene"]
    expected = spearmanr([0.5, 0.7, 0.6], [0.4, 0.6, 0.3]).statistic
    assert abs(summary["spearman_pooled"] - expected) < 1e-12 and summary["speedup_median"] == 25.0
    assert "heareval_self" not in summary  # one seed per cell: nothing to say about heareval against itself


def test_fastprobe_agreement_measures_heareval_against_itself(tmp_path):
    """With two heareval seeds per cell, the summary ranks seed 42's scores against seed 43's (scipy's rho)."""
    import importlib.util

    from scipy.stats import spearmanr

    spec = importlib.util.spec_from_file_location("agreement", Path(__file__).parent.parent / "eval_scripts"
                                                  / "fastprobe_agreement.py")
    agreement = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(agreement)
    runs = {"x": (0.50, 0.55, 0.4), "y": (0.70, 0.52, 0.6), "z": (0.60, 0.65, 0.3), "w": (0.20, 0.25, 0.1)}
    for variant, (seed42, seed43, fast) in runs.items():
        cells = tmp_path / "cells" / variant
        cells.mkdir(parents=True)
        common = {"variant": variant, "task": "kws-v1-full", "metric": "top1_acc", "embedding_type": "scene",
                  "complete": True}
        (cells / "kws-v1-full.json").write_text(json.dumps({**common, "score": (seed42 + seed43) / 2,
                                                            "seeds": [42, 43], "seed_scores": [seed42, seed43]}))
        (cells / "kws-v1-full.fastprobe.json").write_text(json.dumps({**common, "score": fast}))
    itself = agreement.summarise(agreement.paired_cells([tmp_path]))["scene"]["heareval_self"]
    first, second, fast = ([r[i] for r in runs.values()] for i in range(3))
    assert itself["cells"] == 4 and itself["seeds"] == [42, 43]
    assert abs(itself["spearman_pooled"] - spearmanr(first, second).statistic) < 1e-12
    assert itself["spearman_pooled"] < 1.0  # y and z swap places between the seeds
    assert abs(itself["spearman_pooled_first_seed"] - spearmanr(first, fast).statistic) < 1e-12
    assert abs(itself["spearman_pooled_second_seed"] - spearmanr(second, fast).statistic) < 1e-12
    assert abs(itself["max_abs_score_difference"] - 0.18) < 1e-12
