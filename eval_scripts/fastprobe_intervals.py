"""How sure each scene test's rank correlation is, and what a sweep loses by trusting the fast probe.

The fast-probe tests (``fastprobe_kinds.py`` files, and ``fastprobe_reference.py``'s
file where heareval was run more times) report one Spearman's rho per kind over
24 or so cells. This script adds, for every scene test of :data:`SCENE_TESTS`
and every kind that scored all its cells (plan: ``fastprobe-envsweep-plan.md``):

- ``spearman_pooled`` against heareval's reference (the mean of its runs), and
  its 95 % bootstrap interval over cells (``scipy.stats.bootstrap``: cells
  resampled with replacement, paired, percentile method, :data:`RESAMPLES`
  resamples, seed :data:`SEED`);
- per task, **the sweep's pick**: the variant the kind scores best, its place in
  heareval's ranking (1 = heareval's best), the place of heareval's best variant
  in the kind's ranking (the smallest ``evaluate --finalists K`` that would give
  it to heareval's probe), and the **regret**: heareval's score
  of its own best variant minus heareval's score of the kind's pick (both the
  means of heareval's runs; in the task's metric, higher is better for every
  scene metric here), beside the standard deviation of heareval's runs on the
  pick and on the best cell where heareval ran several times.

Nothing is fitted here: the scores are the files'.

    python eval_scripts/fastprobe_intervals.py --json eval_scripts/fastprobe-intervals.json
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np
from scipy.stats import bootstrap

sys.path.insert(0, str(Path(__file__).resolve().parent))
from fastprobe_agreement import spearman  # noqa: E402  (this folder's scripts)

EVAL = Path(__file__).resolve().parent
#: Bootstrap resamples and the generator's seed (fixed by the plan).
RESAMPLES = 2000
SEED = 0
#: Confidence level of the intervals.
LEVEL = 0.95

#: The scene tests: (name, fastprobe_kinds.py file, fastprobe_reference.py file whose mean of all runs replaces the
#: kinds file's heareval reference, or "").
SCENE_TESTS: Tuple[Tuple[str, str, str], ...] = (
    ("held-out ensembles, speech (fastprobe-heldout-plan.md)", "fastprobe-kinds-heldout.json", ""),
    ("PESTO layer sweep, speech (fastprobe-sweep-plan.md)", "fastprobe-kinds-sweep.json", ""),
    ("Resemblyzer and Basic Pitch layer sweep, speech (fastprobe-logistic-plan.md)",
     "fastprobe-kinds-logistic-now.json", ""),
    ("ensembles, environmental and language (fastprobe-reference-plan.md: six runs)",
     "fastprobe-kinds-families-env.json", "fastprobe-reference-env.json"),
    ("Resemblyzer and Basic Pitch layer sweep, environmental and language (fastprobe-envsweep-plan.md)",
     "fastprobe-kinds-envsweep.json", ""),
    ("PESTO layer sweep, environmental and language (fastprobe-projected-plan.md)",
     "fastprobe-kinds-projected.json", ""),
)


class InputsError(ValueError):
    """A test's files cannot be read as this script expects."""


def rho_interval(reference: Sequence[float], scores: Sequence[float]) -> Tuple[float, float]:
    """The 95 % percentile bootstrap interval of Spearman's rho of paired ``(reference, scores)`` over cells."""
    def statistic(a: np.ndarray, b: np.ndarray) -> float:
        value = spearman(list(a), list(b))
        return math.nan if value is None else value

    result = bootstrap((np.asarray(reference, float), np.asarray(scores, float)), statistic, paired=True,
                       vectorized=False, n_resamples=RESAMPLES, confidence_level=LEVEL, method="percentile",
                       rng=np.random.default_rng(SEED))
    low, high = float(result.confidence_interval.low), float(result.confidence_interval.high)
    if math.isnan(low) or math.isnan(high):
        raise InputsError("a bootstrap resample had no spread in its scores: too few distinct cells")
    return low, high


def sweep_pick(rows: Sequence[Dict[str, Any]], kind: str) -> Dict[str, Any]:
    """The variant ``kind`` scores best among one task's ``rows`` (``variant``, ``reference``: heareval's mean,
    ``runs``: heareval's scores, ``kinds``), its place in heareval's ranking and the regret (heareval's best mean
    minus the pick's mean; 0 when the kind picks heareval's best). Ties go to the first row."""
    pick = max(range(len(rows)), key=lambda i: rows[i]["kinds"][kind])
    best = max(range(len(rows)), key=lambda i: rows[i]["reference"])
    place = 1 + sum(r["reference"] > rows[pick]["reference"] for r in rows)
    # where heareval's best stands in the kind's order: the smallest --finalists K that gives it heareval's probe
    best_in_kind = 1 + sum(r["kinds"][kind] > rows[best]["kinds"][kind] for r in rows)

    def spread(row: Dict[str, Any]) -> Optional[float]:
        return statistics.stdev(row["runs"]) if len(row["runs"]) >= 2 else None

    return {"pick": rows[pick]["variant"], "heareval_best": rows[best]["variant"], "place": place,
            "best_in_kind": best_in_kind,
            "variants": len(rows), "regret": rows[best]["reference"] - rows[pick]["reference"],
            "pick_score": rows[pick]["reference"], "best_score": rows[best]["reference"],
            "pick_runs_sd": spread(rows[pick]), "best_runs_sd": spread(rows[best])}


def scene_rows(kinds_file: Dict[str, Any], reference_file: Optional[Dict[str, Any]]) -> List[Dict[str, Any]]:
    """One row per scene cell: ``variant``, ``task``, ``reference`` (heareval's mean), ``runs`` (heareval's scores:
    the reference file's committed and here runs, else the kinds file's seed scores, else its one score), ``kinds``
    (score per kind). With a reference file, its kinds' scores must be the kinds file's."""
    pairs = [p for p in kinds_file["pairs"] if p["family"] == "scene"]
    if not pairs:
        raise InputsError("no scene cells")
    theirs = {}
    if reference_file is not None:
        theirs = {(p["variant"], p["task"]): p for p in reference_file["pairs"]}
    rows = []
    for p in pairs:
        kinds = {k: v["score"] for k, v in p["kinds"].items()}
        if reference_file is not None:
            ref = theirs.get((p["variant"], p["task"]))
            if ref is None or any(ref["kinds"].get(k) != v for k, v in kinds.items() if k in ref["kinds"]):
                raise InputsError(f"the reference file's cell {p['variant']} | {p['task']} is not the kinds file's")
            runs, reference = ref["heareval_committed"] + ref["heareval_here"], ref["heareval_mean_all"]
        else:
            runs = list(p.get("heareval_seed_scores") or [p["heareval"]])
            reference = p["heareval"]
        rows.append({"variant": p["variant"], "task": p["task"], "reference": reference, "runs": runs, "kinds": kinds})
    return rows


def measure(rows: Sequence[Dict[str, Any]]) -> Dict[str, Any]:
    """Per kind that scored every row: pooled rho, its interval, and the sweep's pick per task."""
    kinds = [k for k in rows[0]["kinds"] if all(k in r["kinds"] for r in rows)]
    tasks = list(dict.fromkeys(r["task"] for r in rows))
    reference = [r["reference"] for r in rows]
    out: Dict[str, Any] = {}
    for kind in kinds:
        scores = [r["kinds"][kind] for r in rows]
        low, high = rho_interval(reference, scores)
        out[kind] = {"spearman_pooled": spearman(reference, scores), "interval": [low, high],
                     "picks": {t: sweep_pick([r for r in rows if r["task"] == t], kind) for t in tasks}}
    return {"cells": len(rows), "tasks": tasks, "runs_per_cell": min(len(r["runs"]) for r in rows), "kinds": out}


def main(argv: Optional[Sequence[str]] = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--json", type=Path, required=True, help="write the intervals and picks here")
    args = parser.parse_args(argv)
    tests = []
    for name, kinds_name, reference_name in SCENE_TESTS:
        try:
            kinds_file = json.loads((EVAL / kinds_name).read_text())
            reference_file = json.loads((EVAL / reference_name).read_text()) if reference_name else None
            result = measure(scene_rows(kinds_file, reference_file))
        except (OSError, json.JSONDecodeError, KeyError, InputsError) as err:
            sys.exit(f"{kinds_name}: cannot measure ({err}); expected fastprobe_kinds.py's (and "
                     "fastprobe_reference.py's) JSON in eval_scripts/")
        tests.append({"test": name, "kinds_file": kinds_name, "reference_file": reference_name, **result})
        print(f"{name}: " + ", ".join(f"{k} {v['spearman_pooled']:.3f} [{v['interval'][0]:.2f}, {v['interval'][1]:.2f}]"
                                      for k, v in result["kinds"].items()))
    out = {"plan": "eval_scripts/fastprobe-envsweep-plan.md", "resamples": RESAMPLES, "seed": SEED, "level": LEVEL,
           "method": "percentile bootstrap over cells, paired (scipy.stats.bootstrap)",
           "command": " ".join(["python", "eval_scripts/fastprobe_intervals.py",
                                *(argv if argv is not None else sys.argv[1:])]),
           "tests": tests}
    args.json.write_text(json.dumps(out, indent=1) + "\n")
    print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
