"""eval_scripts/bench.py reports no speed-up, writes no figures and exits non-zero when hear_gura's side fails."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from eval_scripts_loader import load_script

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
    from scipy.stats import spearmanr

    agreement = load_script("fastprobe_agreement")
    a, b = [0.3, 0.1, 0.1, 0.9, 0.5, 0.2], [0.2, 0.15, 0.3, 0.8, 0.8, 0.1]
    assert abs(agreement.spearman(a, b) - spearmanr(a, b).statistic) < 1e-12
    assert agreement.spearman([1, 2], [2, 1]) is None and agreement.spearman([1, 1, 1], [1, 2, 3]) is None
    # an undefined F-measure (no onset predicted) ranks as 0: tied with a 0, below every score found
    nan = float("nan")
    assert agreement.spearman([nan, 0.0, 0.2, 0.1], [0.1, 0.1, 0.9, 0.5]) == agreement.spearman([0, 0, 0.2, 0.1],
                                                                                             [0.1, 0.1, 0.9, 0.5])
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
    # a cell made with --seeds 2 records the sum of its two runs: the speed-up divides one run's seconds
    two_runs = tmp_path / "cells" / "x" / "kws-v1-full.json"
    two_runs.write_text(json.dumps({**json.loads(two_runs.read_text()), "seeds": [42, 43], "predict_seconds": 300.0}))
    by_variant = {p["variant"]: p for p in agreement.paired_cells([tmp_path])}
    assert by_variant["x"]["heareval_seconds"] == 150.0 and by_variant["y"]["heareval_seconds"] == 100.0
    # cells of two machines and two probes pair when they embedded the same thing, not when the task differs
    identity = {"module": "hear_gura.m", "options": {}, "config": {"layers": "last"}, "task": {"content": "aa"},
                "members": {"m": {"content": "c1", "path": "/here/m.pt"}}, "versions": {"torch": "2.11.0"}}
    elsewhere = {**identity, "members": {"m": {"content": "c1", "path": "/there/m.pt"}}, "versions": {"torch": "2.9"},
                 "probe": {"kind": "heareval"}}
    for variant, hear_identity in (("y", elsewhere), ("z", {**elsewhere, "task": {"content": "bb"}})):
        for name, ident in (("kws-v1-full.json", hear_identity), ("kws-v1-full.fastprobe.json", identity)):
            cell = tmp_path / "cells" / variant / name
            cell.write_text(json.dumps({**json.loads(cell.read_text()), "identity": ident}))
    excluded = []
    assert sorted(p["variant"] for p in agreement.paired_cells([tmp_path], excluded)) == ["x", "y"]
    assert [(e["variant"], e["family"], e["differs_in"]) for e in excluded] == [("z", "scene", ["task"])]
    # heareval's cells in other (committed) folders: the one with the most runs is paired
    fast_only, once, twice = (tmp_path / name for name in ("fast_only", "once", "twice"))
    for root, hear in ((fast_only, None), (once, {"score": 0.1}), (twice, {"score": 0.2, "seeds": [42, 43]})):
        (root / "cells" / "x").mkdir(parents=True)
        x = json.loads((tmp_path / "cells" / "x" / "kws-v1-full.json").read_text())
        name = "kws-v1-full.fastprobe.json" if hear is None else "kws-v1-full.json"
        (root / "cells" / "x" / name).write_text(json.dumps({**x, "seeds": [42], **(hear or {})}))
    for order in ([once, twice], [twice, once]):
        (pair,) = agreement.paired_cells([fast_only], heareval_outs=order)
        assert pair["heareval"] == 0.2 and pair["heareval_out"] == str(twice) and pair["heareval_seconds"] == 150.0
    assert agreement.paired_cells([fast_only]) == []  # no heareval cell beside it, none given elsewhere


def test_fastprobe_agreement_measures_heareval_against_itself(tmp_path):
    """With three heareval seeds per cell: every pair of runs, and each run left out against the mean of the
    others beside the fast probe against the same means (scipy's rho on numpy's means)."""
    import numpy as np
    from scipy.stats import spearmanr

    agreement = load_script("fastprobe_agreement")
    runs = {"x": (0.50, 0.55, 0.47, 0.4), "y": (0.70, 0.52, 0.66, 0.6), "z": (0.60, 0.65, 0.51, 0.3),
            "w": (0.20, 0.25, 0.30, 0.1), "v": (0.33, 0.21, 0.58, 0.35)}
    for variant, (*seed_scores, fast) in runs.items():
        cells = tmp_path / "cells" / variant
        cells.mkdir(parents=True)
        common = {"variant": variant, "task": "kws-v1-full", "metric": "top1_acc", "embedding_type": "scene",
                  "complete": True}
        (cells / "kws-v1-full.json").write_text(json.dumps({**common, "score": float(np.mean(seed_scores)),
                                                            "seeds": [42, 43, 44], "seed_scores": seed_scores}))
        (cells / "kws-v1-full.fastprobe.json").write_text(json.dumps({**common, "score": fast}))
    itself = agreement.summarise(agreement.paired_cells([tmp_path]))["scene"]["heareval_self"]
    table = np.array(list(runs.values()))  # rows: cells; columns: seeds 42, 43, 44, then the fast probe
    heareval, fast = table[:, :3], table[:, 3]
    assert itself["cells"] == 5 and itself["seeds"] == [42, 43, 44]
    assert [p["seeds"] for p in itself["pairs"]] == [[42, 43], [42, 44], [43, 44]]
    for pair, (a, b) in zip(itself["pairs"], [(0, 1), (0, 2), (1, 2)]):
        assert abs(pair["spearman_pooled"] - spearmanr(heareval[:, a], heareval[:, b]).statistic) < 1e-12
        assert abs(pair["max_abs_score_difference"] - np.abs(heareval[:, a] - heareval[:, b]).max()) < 1e-12
    assert itself["pairs"][0]["spearman_pooled"] < 1.0  # y and z swap places between the first two seeds
    others = [heareval[:, [j for j in range(3) if j != i]].mean(axis=1) for i in range(3)]
    own = [spearmanr(heareval[:, i], others[i]).statistic for i in range(3)]
    probe = [spearmanr(fast, others[i]).statistic for i in range(3)]
    assert np.allclose(itself["leave_one_out"]["heareval"]["per_run"], own, atol=1e-12)
    assert np.allclose(itself["leave_one_out"]["fast"]["per_run"], probe, atol=1e-12)
    assert abs(itself["leave_one_out"]["fast"]["mean"] - np.mean(probe)) < 1e-12
    assert itself["leave_one_out_per_task"]["kws-v1-full"]["heareval"] == itself["leave_one_out"]["heareval"]["mean"]
    for i, seed in enumerate(("42", "43", "44")):
        assert abs(itself["fast_per_seed"][seed]["spearman_pooled"] - spearmanr(fast, heareval[:, i]).statistic) < 1e-12


def test_fastprobe_kinds_scores_each_kind_against_every_heareval_run():
    """With three heareval seeds, each kind is ranked against every run and, leaving each run out, against the
    mean of the other two (scipy's rho on numpy's means)."""
    import numpy as np
    from scipy.stats import spearmanr

    kinds = load_script("fastprobe_kinds")
    table = np.array([[0.50, 0.55, 0.47, 0.40], [0.70, 0.52, 0.66, 0.61], [0.60, 0.65, 0.51, 0.30],
                      [0.20, 0.25, 0.30, 0.10], [0.33, 0.21, 0.58, 0.35]])  # seeds 42, 43, 44, then the kind
    pairs = [{"variant": f"v{k}", "task": "kws-v1-full", "family": "scene", "heareval": float(row[:3].mean()),
              "heareval_seconds": 10.0, "heareval_seeds": [42, 43, 44], "heareval_seed_scores": list(row[:3]),
              "kinds": {"mlp": {"score": float(row[3]), "seconds": 1.0}}} for k, row in enumerate(table)]
    scene = kinds.summarise(pairs, ["mlp"])["mlp"]["scene"]
    heareval, kind = table[:, :3], table[:, 3]
    assert list(scene["spearman_pooled_per_seed"]) == ["42", "43", "44"]
    for i, rho in enumerate(scene["spearman_pooled_per_seed"].values()):
        assert abs(rho - spearmanr(heareval[:, i], kind).statistic) < 1e-12
    expected = [spearmanr(kind, np.delete(heareval, i, axis=1).mean(axis=1)).statistic for i in range(3)]
    assert np.allclose(scene["spearman_pooled_leave_one_out"]["per_run"], expected, atol=1e-12)
    assert abs(scene["spearman_per_task_leave_one_out"]["kws-v1-full"] - np.mean(expected)) < 1e-12  # one task
    assert abs(scene["spearman_pooled"] - spearmanr(heareval.mean(axis=1), kind).statistic) < 1e-12
    assert scene["seeded_cells"] == 5
    # a cell heareval ran once joins the pooled figure but not the run-by-run ones, which stay over the others
    single = {"variant": "v5", "task": "kws-v1-full", "family": "scene", "heareval": 0.9, "heareval_seconds": 10.0,
              "kinds": {"mlp": {"score": 0.05, "seconds": 1.0}}}
    mixed = kinds.summarise(pairs + [single], ["mlp"])["mlp"]["scene"]
    assert mixed["cells"] == 6 and mixed["seeded_cells"] == 5
    assert mixed["spearman_pooled_leave_one_out"] == scene["spearman_pooled_leave_one_out"]
    assert mixed["spearman_pooled"] != scene["spearman_pooled"]
    assert "seeded_cells" not in kinds.summarise(pairs[:2] + [single], ["mlp"])["mlp"]["scene"]  # 2 seeded: too few


def test_heareval_default_cost_refuses_cells_it_cannot_measure_before_running_anything(tmp_path):
    """eval_scripts/heareval_default_cost.py: an unknown cell or one without embeddings here exits before any probe
    runs and writes nothing; the fast seconds are the pair's linear_raw kind when it has kinds, else its fast cell's."""
    import pytest

    cost = load_script("heareval_default_cost")
    pair = {"variant": "v", "task": "t-v1-full", "heareval": 0.5, "heareval_seconds": 60.0, "fast": 0.4,
            "fast_seconds": 9.0, "embedding_dir": str(tmp_path / "missing")}
    assert cost.fast_seconds(pair) == 9.0
    assert cost.fast_seconds({**pair, "fast_seconds_in_process": 4.0}) == 4.0
    assert cost.fast_seconds({**pair, "kinds": {"linear_raw": {"seconds": 2.5, "score": 0.4}}}) == 2.5
    pairs = tmp_path / "pairs.json"
    pairs.write_text(json.dumps({"pairs": [pair]}))
    out = tmp_path / "cost.json"
    with pytest.raises(SystemExit, match="cells not in"):
        cost.main(["--pairs", str(pairs), "--cells", "w|t-v1-full", "--json", str(out)])
    with pytest.raises(SystemExit, match="no embeddings here"):
        cost.main(["--pairs", str(pairs), "--cells", "v|t-v1-full", "--json", str(out)])
    assert not out.exists()


def test_heareval_same_machine_summarises_both_measures_and_refuses_before_running(tmp_path):
    """eval_scripts/heareval_same_machine.py: a cell's committed seed score is its seed's run (or its one run for
    seed 42); speed-ups against heareval here and against the committed seconds are summarised per kind and family
    with the cells below 10x; an unknown cell or one without embeddings exits before any probe runs."""
    import pytest

    same = load_script("heareval_same_machine")
    seeded = {"heareval": 0.6, "heareval_seeds": [42, 43], "heareval_seed_scores": [0.5, 0.7]}
    assert same.committed_seed_score(seeded, 43) == 0.7 and same.committed_seed_score(seeded, 44) is None
    assert same.committed_seed_score({"heareval": 0.6}, 42) == 0.6
    assert same.committed_seed_score({"heareval": 0.6}, 43) is None

    def cell(variant, family, wall, committed, seconds, score, seed_score):
        return {"variant": variant, "family": family,
                "heareval_here": {"wall_seconds": wall, "seconds": wall - 5, "score": score},
                "heareval_committed": {"seconds": committed, "score": seed_score, "seed_score": seed_score},
                "kinds": {"logistic": {"seconds": seconds, "speedup_here": wall / seconds,
                                       "speedup_committed": committed / seconds}}}

    cells = [cell("a", "pitch", 40.0, 20.0, 2.0, 0.5, 0.5), cell("b", "pitch", 30.0, 30.0, 5.0, 0.8, 0.75),
             cell("c", "event", 100.0, 50.0, 4.0, 0.1, None)]
    summary = same.speed_summary(cells)
    pitch = summary["kinds"]["logistic"]["pitch"]
    assert pitch["cells"] == 2
    assert pitch["here"] == {"speedup_median": 13.0, "speedup_min": 6.0, "below_target": 1}
    # 20 s / 2 s is exactly the target: not below it
    assert pitch["committed"] == {"speedup_median": 8.0, "speedup_min": 6.0, "below_target": 1}
    assert summary["kinds"]["logistic"]["event"]["here"]["below_target"] == 0
    assert summary["heareval_here_over_committed_seconds_median"] == 2.0
    assert (summary["heareval_seed_score_equal"], summary["heareval_seed_score_compared"]) == (1, 2)
    assert summary["heareval_seed_score_max_abs_difference"] == pytest.approx(0.05)

    pair = {"variant": "v", "task": "t-v1-full", "family": "pitch", "heareval": 0.5, "heareval_seconds": 60.0,
            "kinds": {"logistic": {"score": 0.4, "seconds": 2.0}}, "embedding_dir": str(tmp_path / "missing")}
    kinds = tmp_path / "kinds.json"
    kinds.write_text(json.dumps({"pairs": [pair]}))
    out = tmp_path / "same.json"
    with pytest.raises(SystemExit, match="cells not in"):
        same.main(["--kinds-file", str(kinds), "--cells", "w|t-v1-full", "--json", str(out)])
    with pytest.raises(SystemExit, match="no embeddings here"):
        same.main(["--kinds-file", str(kinds), "--json", str(out)])
    assert not out.exists()


def one_cell_kinds_file(tmp_path):
    """heareval_same_machine.py, an embedding folder, one kinds-file pair on it, the kinds file, and a heareval run
    of the pair as the script records it."""
    same = load_script("heareval_same_machine")
    folder = tmp_path / "emb"
    folder.mkdir()
    pair = {"variant": "v", "task": "t-v1-full", "family": "pitch", "heareval": 0.5, "heareval_seconds": 30.0,
            "kinds": {"logistic": {"score": 0.4, "seconds": 4.0}}, "embedding_dir": str(folder)}
    kinds = tmp_path / "kinds.json"
    kinds.write_text(json.dumps({"pairs": [pair]}))
    return same, folder, pair, kinds, {"wall_seconds": 60.0, "seconds": 52.0, "score": 0.5}


def test_heareval_same_machine_merge_keeps_heareval_and_takes_the_kinds_file_seconds(tmp_path):
    """--merge keeps an earlier output's heareval run and recomputes its speed-ups from --kinds-file's seconds (the
    same embedding folder); a kinds file timed on another folder is refused."""
    import pytest

    same, folder, pair, kinds, here = one_cell_kinds_file(tmp_path)
    earlier = {"seed": 42, "note": "before", "commands": ["first"], "cells": [
        {"variant": "v", "task": "t-v1-full", "family": "pitch", "metric": "pitch_acc", "embedding_dir": str(folder),
         "heareval_here": here, **same.against({**pair, "kinds": {"logistic": {"score": 0.4, "seconds": 12.0}}},
                                               here, 42)}]}
    assert earlier["cells"][0]["kinds"]["logistic"]["speedup_here"] == 5.0
    merged_file, out = tmp_path / "earlier.json", tmp_path / "out.json"
    merged_file.write_text(json.dumps(earlier))
    same.main(["--kinds-file", str(kinds), "--cells", "", "--merge", str(merged_file), "--json", str(out)])
    cell, = json.loads(out.read_text())["cells"]
    assert cell["heareval_here"] == here
    assert cell["kinds"]["logistic"] == {"seconds": 4.0, "score": 0.4, "speedup_here": 15.0, "speedup_committed": 7.5}
    assert cell["heareval_committed"] == {"seconds": 30.0, "score": 0.5, "seed_score": 0.5}
    kinds.write_text(json.dumps({"pairs": [{**pair, "embedding_dir": str(tmp_path / "other")}]}))
    with pytest.raises(SystemExit, match="not the same embeddings"):
        same.main(["--kinds-file", str(kinds), "--cells", "", "--merge", str(merged_file), "--json", str(out)])


def test_fastprobe_reference_ranks_kinds_against_every_mean_of_runs_and_refuses_mismatched_runs(tmp_path):
    """eval_scripts/fastprobe_reference.py: a kind's Spearman against the mean of all runs (committed and here), of
    the runs here and of the committed ones, pooled and within tasks, equal scipy's on the same numbers; heareval's
    leave-one-out is over every run; here files on other embeddings, lacking a cell or repeating a seed are refused
    before anything is written."""
    import numpy as np
    import pytest
    from scipy.stats import spearmanr

    ref = load_script("fastprobe_reference")
    rng = np.random.default_rng(0)
    tasks = ["t1-v1-full"] * 4 + ["t2-v1-full"] * 4
    committed = rng.random((3, 8))
    here_scores = rng.random((2, 8))
    logistic = rng.random(8)
    pairs = [{"variant": f"v{i}", "task": t, "embedding_dir": str(tmp_path / f"e{i}"), "heareval_seeds": [42, 43, 44],
              "heareval_seed_scores": committed[:, i].tolist(), "kinds": {"logistic": {"score": logistic[i]}}}
             for i, t in enumerate(tasks)]

    def here_file(seed, scores, cells=pairs):
        return {"seed": seed, "grid": ["fast", 2], "cells": [
            {"variant": p["variant"], "task": p["task"], "embedding_dir": p["embedding_dir"],
             "heareval_here": {"score": float(s), "wall_seconds": 10.0 + i}} for i, (p, s) in enumerate(zip(cells, scores))]}

    files = [here_file(42, here_scores[0]), here_file(43, here_scores[1])]
    result = ref.compare(pairs, files, ["logistic"])
    means = {"all": np.vstack([committed, here_scores]).mean(0), "here": here_scores.mean(0),
             "committed": committed.mean(0)}
    for name, mean in means.items():
        got = result["kinds"]["logistic"][name]
        assert got["pooled"] == pytest.approx(spearmanr(mean, logistic)[0])
        assert got["per_task"]["t2-v1-full"] == pytest.approx(spearmanr(mean[4:], logistic[4:])[0])
    assert result["runs"] == [{"source": "committed", "seed": s} for s in (42, 43, 44)] + [
        {"source": "here", "seed": 42}, {"source": "here", "seed": 43}]
    runs = np.vstack([committed, here_scores])
    first_left_out = spearmanr(runs[0], runs[1:].mean(0))[0]
    assert result["heareval_self"]["leave_one_out"]["per_run"][0] == pytest.approx(first_left_out)
    pairs_of_runs = result["heareval_self"]["pairs"]
    assert len(pairs_of_runs) == 10 and pairs_of_runs[-1]["runs"] == [3, 4]
    assert pairs_of_runs[-1]["spearman_pooled"] == pytest.approx(spearmanr(here_scores[0], here_scores[1])[0])
    assert result["kinds"]["logistic"]["leave_one_out"]["per_run"][4] == pytest.approx(
        spearmanr(logistic, runs[:4].mean(0))[0])
    assert result["machines"]["pooled"] == pytest.approx(spearmanr(means["here"], means["committed"])[0])
    assert result["pairs"][3]["heareval_mean_all"] == pytest.approx(means["all"][3])

    with pytest.raises(ref.RunsMismatch, match="repeat a seed"):
        ref.compare(pairs, [files[0], here_file(42, here_scores[1])], ["logistic"])
    with pytest.raises(ref.RunsMismatch, match="lacks v7"):
        ref.compare(pairs, [here_file(42, here_scores[0], pairs[:7])], ["logistic"])
    with pytest.raises(ref.RunsMismatch, match="overrode heareval's grid"):
        ref.compare(pairs, [files[0], {**files[1], "param_grid": {"hidden_layers": [0]}}], ["logistic"])
    moved = here_file(42, here_scores[0])
    moved["cells"][0]["embedding_dir"] = str(tmp_path / "other")
    kinds, here, out = tmp_path / "kinds.json", tmp_path / "here.json", tmp_path / "out.json"
    kinds.write_text(json.dumps({"kinds": {"logistic": {}}, "pairs": pairs}))
    here.write_text(json.dumps(moved))
    with pytest.raises(SystemExit, match="not the same embeddings"):
        ref.main(["--kinds-file", str(kinds), "--here", str(here), "--json", str(out)])
    assert not out.exists()


def test_fastprobe_intervals_bootstrap_agrees_with_a_plain_resampling_and_the_sweep_pick_counts_regret():
    """eval_scripts/fastprobe_intervals.py: the 95 % interval of Spearman's rho agrees (within resampling error)
    with a plain numpy resampling of the cells scored by scipy's spearmanr, holds the point estimate, and is [1, 1]
    for scores in heareval's order; the sweep's pick is the kind's best variant, placed in heareval's ranking, its
    regret heareval's best mean minus the pick's; a reference file whose kind scores differ is refused."""
    import numpy as np
    import pytest
    from scipy.stats import spearmanr

    intervals = load_script("fastprobe_intervals")
    rng = np.random.default_rng(1)
    reference = rng.random(24)
    scores = reference + rng.normal(0, 0.25, 24)
    low, high = intervals.rho_interval(reference, scores)
    point = spearmanr(reference, scores)[0]
    assert low < point < high
    draws = rng.integers(0, 24, (4000, 24))
    plain = [spearmanr(reference[i], scores[i])[0] for i in draws]
    assert (low, high) == pytest.approx(tuple(np.percentile(plain, [2.5, 97.5])), abs=0.03)
    assert intervals.rho_interval(reference, 2 * reference + 1) == (1.0, 1.0)

    rows = [{"variant": v, "task": "t", "reference": m, "runs": runs, "kinds": {"k": s}}
            for v, m, runs, s in (("a", 0.5, [0.4, 0.6], 0.9), ("b", 0.7, [0.7, 0.7], 0.1), ("c", 0.6, [0.6, 0.6], 0.8))]
    pick = intervals.sweep_pick(rows, "k")
    assert (pick["pick"], pick["heareval_best"], pick["place"], pick["variants"]) == ("a", "b", 3, 3)
    assert pick["best_in_kind"] == 3  # heareval's best, b, is the kind's last
    assert pick["regret"] == pytest.approx(0.2) and pick["pick_runs_sd"] == pytest.approx(np.std([0.4, 0.6], ddof=1))
    assert intervals.sweep_pick([{**r, "kinds": {"k": r["reference"]}} for r in rows], "k")["regret"] == 0

    kinds_file = {"pairs": [{"variant": "a", "task": "t", "family": "scene", "heareval": 0.5,
                             "heareval_seed_scores": [0.4, 0.6], "kinds": {"k": {"score": 0.9, "seconds": 1.0}}}]}
    assert intervals.scene_rows(kinds_file, None)[0]["runs"] == [0.4, 0.6]
    reference_file = {"pairs": [{"variant": "a", "task": "t", "heareval_committed": [0.4], "heareval_here": [0.5],
                                 "heareval_mean_all": 0.45, "kinds": {"k": 0.8}}]}
    with pytest.raises(intervals.InputsError, match="not the kinds file's"):
        intervals.scene_rows(kinds_file, reference_file)
    reference_file["pairs"][0]["kinds"]["k"] = 0.9
    assert intervals.scene_rows(kinds_file, reference_file)[0]["reference"] == 0.45


def test_heareval_other_probe_ranks_another_heareval_probe_against_the_reference_and_the_kinds(tmp_path):
    """eval_scripts/heareval_other_probe.py: O (the mean of the other probe's runs) against R (the reference's mean
    of all its runs) and each kind against both, pooled and within tasks, equal scipy's Spearman on the same numbers,
    over the cells the runs have; runs of the reference's own probe, of two probes, a repeated seed, a grid point
    not showing the override, a cell not in the reference or on another embedding folder are refused before
    anything is written."""
    import numpy as np
    import pytest
    from scipy.stats import spearmanr

    other = load_script("heareval_other_probe")
    rng = np.random.default_rng(1)
    tasks = ["t1-v1-full"] * 4 + ["t2-v1-full"] * 4
    mlp, runs, logistic = rng.random((6, 8)), rng.random((3, 8)), rng.random(8)
    reference = {"runs": [{"source": "committed", "seed": s} for s in (42, 43, 44)]
                 + [{"source": "here", "seed": s} for s in (42, 43, 44)],
                 "pairs": [{"variant": f"v{i}", "task": t, "embedding_dir": str(tmp_path / f"e{i}"),
                            "heareval_committed": mlp[:3, i].tolist(), "heareval_here": mlp[3:, i].tolist(),
                            "heareval_mean_all": float(mlp[:, i].mean()), "kinds": {"logistic": float(logistic[i])}}
                           for i, t in enumerate(tasks)]}
    linear = {"hidden_layers": [0]}

    def run_file(seed, scores, hidden=0, param_grid=linear, grid=("fast", 2), cells=8):
        return {"seed": seed, "grid": list(grid), "param_grid": param_grid, "cells": [
            {"variant": p["variant"], "task": p["task"], "embedding_dir": p["embedding_dir"],
             "heareval_here": {"score": float(s), "seconds": 3.0, "wall_seconds": 9.0,
                               "hparams": {"hidden_layers": hidden}}}
            for p, s in list(zip(reference["pairs"], scores))[:cells]]}

    files = [run_file(42 + i, runs[i]) for i in range(3)]
    result = other.compare(reference, files, tmp_path)
    O, R = runs.mean(0), mlp.mean(0)
    assert result["other_vs_reference"]["pooled"] == pytest.approx(spearmanr(R, O)[0])
    assert result["other_vs_reference"]["per_task"]["t2-v1-full"] == pytest.approx(spearmanr(R[4:], O[4:])[0])
    assert result["kind_vs_other"]["logistic"]["pooled"] == pytest.approx(spearmanr(O, logistic)[0])
    assert result["kind_vs_reference"]["logistic"]["per_task"]["t1-v1-full"] == pytest.approx(
        spearmanr(R[:4], logistic[:4])[0])
    assert [p["seeds"] for p in result["other_self"]] == [[42, 43], [42, 44], [43, 44]]
    assert result["other_self"][2]["spearman_pooled"] == pytest.approx(spearmanr(runs[1], runs[2])[0])
    assert len(result["reference_self"]) == 15 and result["other_seconds_median"] == {"run": 3.0, "process": 9.0}
    assert result["reduced_process_seconds_median"] is None  # the reference names no run made here
    assert result["levels"]["logistic"]["other_below"] == int((O < logistic).sum())
    assert result["levels"]["logistic"]["mean_reference_minus_kind"] == pytest.approx((R - logistic).mean())
    assert result["other_max_seed_range"] == pytest.approx((runs.max(0) - runs.min(0)).max())
    # HEAR 2021's grid on the first task's cells only, one seed: the measures over those cells
    default = other.compare(reference, [run_file(42, runs[0], param_grid={}, grid=("default", 8), cells=4)], tmp_path)
    assert default["cells"] == 4 and default["tasks"] == ["t1-v1-full"] and default["other_max_seed_range"] is None
    assert default["other_vs_reference"]["pooled"] == pytest.approx(spearmanr(R[:4], runs[0][:4])[0])
    assert default["other_self"] == []

    with pytest.raises(other.OtherRunsMismatch, match="repeat a seed"):
        other.compare(reference, [files[0], run_file(42, runs[1])], tmp_path)
    with pytest.raises(other.OtherRunsMismatch, match="stopped before their last cell"):
        other.compare(reference, [{**files[0], "complete": False}], tmp_path)
    with pytest.raises(other.OtherRunsMismatch, match="reference's own probe"):
        other.compare(reference, [run_file(42, runs[0], param_grid={})], tmp_path)
    with pytest.raises(other.OtherRunsMismatch, match="different probes"):
        other.compare(reference, [files[0], run_file(43, runs[1], param_grid={}, grid=("default", 8))], tmp_path)
    with pytest.raises(other.OtherRunsMismatch, match="hidden_layers = 1"):
        other.compare(reference, [run_file(42, runs[0], hidden=1)], tmp_path)
    with pytest.raises(other.OtherRunsMismatch, match="different cells"):
        other.compare(reference, [files[0], run_file(43, runs[1], cells=7)], tmp_path)
    stray = run_file(42, runs[0])
    stray["cells"][0]["variant"] = "w"
    with pytest.raises(other.OtherRunsMismatch, match="not a cell of the reference"):
        other.compare(reference, [stray], tmp_path)
    moved = run_file(42, runs[0])
    moved["cells"][0]["embedding_dir"] = str(tmp_path / "other")
    ref_path, moved_path, out = tmp_path / "ref.json", tmp_path / "moved.json", tmp_path / "out.json"
    ref_path.write_text(json.dumps(reference))
    moved_path.write_text(json.dumps(moved))
    with pytest.raises(SystemExit, match="the reference"):
        other.main(["--reference", str(ref_path), "--runs", str(moved_path), "--plan", "p.md", "--json", str(out)])
    assert not out.exists()


def test_heareval_same_machine_saves_after_each_cell_and_resumes_with_merge(tmp_path):
    """heareval_same_machine.py writes its output after every cell ("complete": false until the last), so a run
    that stops keeps its finished cells; --merge of that file with --cells the rest gives a complete file. Here with
    no cell to run (the probe itself is exercised by tests/test_seeds_per_class.py): merging a stopped run's file
    keeps its cells, and a merge of another grid is refused."""
    import pytest

    same, folder, pair, kinds, here = one_cell_kinds_file(tmp_path)
    stopped = {"seed": 42, "grid": ["default", 8], "param_grid": {}, "complete": False, "commands": ["first"],
               "cells": [{"variant": "v", "task": "t-v1-full", "family": "pitch", "metric": "pitch_acc",
                          "embedding_dir": str(folder), "heareval_here": here, **same.against(pair, here, 42)}]}
    partial, out = tmp_path / "partial.json", tmp_path / "out.json"
    partial.write_text(json.dumps(stopped))
    same.main(["--kinds-file", str(kinds), "--cells", "", "--grid", "default", "--grid-points", "8",
               "--merge", str(partial), "--json", str(out)])
    result = json.loads(out.read_text())
    assert result["complete"] is True and result["grid"] == ["default", 8] and len(result["cells"]) == 1
    assert not (tmp_path / "out.json.partial").exists()
    with pytest.raises(SystemExit, match="grid"):
        same.main(["--kinds-file", str(kinds), "--cells", "", "--merge", str(partial), "--json", str(tmp_path / "x.json")])
