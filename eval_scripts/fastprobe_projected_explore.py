"""The exploration that chose the ``projected`` kind: candidate read-outs on the three one-machine scene tests.

Selection, not validation (``fastprobe-projected-plan.md``): the candidates were
scored, in the order of :data:`CANDIDATES`, on the cells of the three scene tests
whose embeddings are on this machine, and the one kept was then tested on fresh
cells. Each test's cells and reference come from its committed files
(:data:`TESTS`); ``logistic`` is scored again first and must give its committed
score on every cell (the embeddings are the ones the tests scored).

Candidates (every one fitted by the logistic probe's L-BFGS penalty path on
inputs divided by their root mean square, :mod:`hear_gura.analysis.logistic_probe`):

- ``logistic``: the default (the reproduction check);
- ``logistic_standardised``: per-dimension standardised inputs instead;
- ``relu_features_1024`` / ``relu_features_4096``: heareval's first layer as initialised and its BatchNorm at the
  training statistics (:func:`hear_gura.analysis.fast_probe.projected_inputs`), then a ReLU: a linear read-out of
  fixed random features (not a linear probe);
- ``projected`` (seeds 42, 43, 44): the same without the ReLU (:data:`~hear_gura.analysis.fast_probe.PROJECTED_PROBE`).

    OMP_NUM_THREADS=1 python eval_scripts/fastprobe_projected_explore.py --json eval_scripts/fastprobe-projected-explore.json
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import Any, Callable, Dict, List, Tuple

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from fastprobe_agreement import spearman  # noqa: E402  (this folder's scripts)

HERE = Path(__file__).resolve().parent

#: test name -> (committed file, how its reference is read from a pair). The ensembles' reference is the mean of all
#: six heareval runs (fastprobe_reference.py); the sweeps' the kinds file's heareval (three-run mean, or one run).
TESTS: Dict[str, Tuple[str, str]] = {
    "speech layer sweep": ("fastprobe-kinds-logistic-now.json", "heareval"),
    "environmental and language ensembles": ("fastprobe-reference-env.json", "heareval_mean_all"),
    "environmental and language layer sweep": ("fastprobe-kinds-envsweep.json", "heareval"),
}


def relu_features(width: int) -> Callable[..., Dict[str, Any]]:
    """Candidate: the projected inputs, then a ReLU, then the logistic path (one fit per fold)."""
    def score(task: Any, splits: Dict[str, Any], seed: int) -> Dict[str, Any]:
        from hear_gura.analysis import fast_probe as fp
        from hear_gura.analysis.logistic_probe import fit_logistic

        folds = {}
        for index, fold in enumerate(task.data_splits):
            train, valid, test = (fp.SplitArrays.concat([splits[s] for s in fold[part]])
                                  for part in ("train", "valid", "test"))
            base = fp.linear_model(train.x, len(task.labels), False, True, width, seed + index)
            model, _ = fit_logistic(torch.nn.Sequential(*base[:-1], torch.nn.ReLU(), base[-1]),
                                    fp._loss_function(task), train.x, train.y, valid.x, valid.y)
            folds[fp.fold_name(fold)] = fp.fold_scores(task, model, valid, test)[0]
        return fp.summarise(task, folds)["test"]
    return score


def config_candidate(**overrides: Any) -> Callable[..., Dict[str, Any]]:
    """Candidate: ``probe_task``'s linear probe with the logistic probe's settings and these overrides."""
    def score(task: Any, splits: Dict[str, Any], seed: int) -> Dict[str, Any]:
        from hear_gura.analysis.fast_probe import LOGISTIC_PROBE, probe_task

        return probe_task(task, splits, "linear", seed, "cpu", replace(LOGISTIC_PROBE, **overrides))["test"]
    return score


#: (name, seed, scorer), in the order they were tried.
CANDIDATES: List[Tuple[str, int, Callable[..., Dict[str, Any]]]] = [
    ("logistic", 42, config_candidate()),
    ("logistic_standardised", 42, config_candidate(standardise=True)),
    ("relu_features_1024", 42, relu_features(1024)),
    ("relu_features_4096", 42, relu_features(4096)),
    ("projected", 42, config_candidate(projection=1024)),
    ("projected", 43, config_candidate(projection=1024)),
    ("projected", 44, config_candidate(projection=1024)),
]


def committed_score(entry: Any) -> float:
    """A kind's committed score: ``{"score": ...}`` in a kinds file, the number itself in a reference file."""
    return entry["score"] if isinstance(entry, dict) else entry


def test_cells(name: str) -> List[Dict[str, Any]]:
    """The test's scene cells: variant, task, embedding folder, reference score, committed ``logistic`` score."""
    file, reference = TESTS[name]
    data = json.loads((HERE / file).read_text())
    return [{"variant": p["variant"], "task": p["task"], "embedding_dir": p["embedding_dir"],
             "heareval": p[reference], "logistic_committed": committed_score(p["kinds"]["logistic"])}
            for p in data["pairs"] if p.get("family", "scene") == "scene"]


def summary(cells: List[Dict[str, Any]], key: str) -> Dict[str, Any]:
    """Pooled and per-task Spearman of one candidate's scores against the reference; its seconds."""
    tasks = sorted({c["task"] for c in cells})
    return {"pooled": spearman([c["heareval"] for c in cells], [c["scores"][key]["score"] for c in cells]),
            "per_task": {t: spearman([c["heareval"] for c in cells if c["task"] == t],
                                     [c["scores"][key]["score"] for c in cells if c["task"] == t]) for t in tasks},
            "seconds_median": statistics.median(c["scores"][key]["seconds"] for c in cells),
            "seconds_max": max(c["scores"][key]["seconds"] for c in cells)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--json", type=Path, required=True, help="write the cells and the summary here")
    parser.add_argument("--note", default="", help="how the machine was loaded while this ran")
    args = parser.parse_args()
    from hear_gura.analysis.fast_probe import TaskSpec, preload, read_embedding_folder

    preload()
    tests: Dict[str, Any] = {}
    for name in TESTS:
        cells = test_cells(name)
        for i, cell in enumerate(cells, 1):
            folder = Path(cell["embedding_dir"])
            if not folder.is_dir():
                raise SystemExit(f"{name}: no embeddings at {folder} (this script needs the tests' embedding folders)")
            task = TaskSpec.load(folder)
            splits = read_embedding_folder(folder, task)
            cell["scores"] = {}
            for candidate, seed, scorer in CANDIDATES:
                start = time.perf_counter()
                score = scorer(task, splits, seed)[task.primary_metric]
                cell["scores"][f"{candidate} seed {seed}"] = {"score": score,
                                                              "seconds": round(time.perf_counter() - start, 2)}
            print(f"{name}: {i}/{len(cells)} {cell['variant']} {cell['task']}", flush=True)
        reproduced = sum(c["scores"]["logistic seed 42"]["score"] == c["logistic_committed"] for c in cells)
        tests[name] = {"cells": cells, "logistic_reproduces": f"{reproduced} of {len(cells)}",
                       "candidates": {key: summary(cells, key) for key in cells[0]["scores"]}}
        for key, s in tests[name]["candidates"].items():
            print(f"  {key}: {s['pooled']:.3f}", flush=True)
    out = {"what": __doc__.split("\n\n")[0], "plan": "eval_scripts/fastprobe-projected-plan.md",
           "command": " ".join(["python"] + sys.argv), "note": args.note,
           "machine": {"platform": platform.platform(), "processor": platform.processor(),
                       "torch": torch.__version__, "threads": torch.get_num_threads()},
           "order": [f"{c} seed {s}" for c, s, _ in CANDIDATES], "tests": tests}
    args.json.write_text(json.dumps(out, indent=1) + "\n")


if __name__ == "__main__":
    main()
