"""The fast probe's kinds against heareval's reference with more runs: the committed runs plus runs made here.

``fastprobe_kinds.py`` ranks each kind against the mean of the committed cells'
heareval runs. This script adds heareval runs made on this machine by
``heareval_same_machine.py`` (one file per seed, on the same embedding folders
the kinds were scored on) and reports, per kind, Spearman's rho pooled over the
cells and within each task against:

- ``all``: the mean of every run, committed and here (the headline of
  ``fastprobe-reference-plan.md``);
- ``here``: the mean of the runs made here;
- ``committed``: the mean of the committed runs (``fastprobe_kinds.py``'s reference);

plus heareval against itself over all the runs (every two runs; each run left
out against the mean of the others, and each kind against the same means:
``fastprobe_agreement.leave_one_out``) and the two machines' means against each
other. The kinds' scores are the kinds file's: nothing is fitted here.

    python eval_scripts/fastprobe_reference.py --kinds-file eval_scripts/fastprobe-kinds-families-env.json \\
        --here eval_scripts/heareval-same-machine-env.json eval_scripts/heareval-reference-env-43.json \\
               eval_scripts/heareval-reference-env-44.json --json eval_scripts/fastprobe-reference-env.json

Every pair of the kinds file must have committed seed scores and a run in every ``--here`` file on the same
embedding folder, and the ``--here`` files must have distinct seeds and heareval's grid of one another: checked
before anything is computed.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence

sys.path.insert(0, str(Path(__file__).resolve().parent))
from fastprobe_agreement import leave_one_out, mean_runs, spearman  # noqa: E402  (this folder's scripts)

#: The references a kind is ranked against, in the order the output lists them.
REFERENCES = ("all", "here", "committed")


class RunsMismatch(ValueError):
    """The kinds file and the heareval runs here do not describe the same cells."""


def check_inputs(pairs: Sequence[Dict[str, Any]], here_files: Sequence[Dict[str, Any]]) -> None:
    """Raise :class:`RunsMismatch` unless every pair has 2+ committed seed scores and a run in every here file
    on the same embedding folder, and the here files have distinct seeds and one grid."""
    if not pairs:
        raise RunsMismatch("the kinds file has no pairs")
    seeds = [f["seed"] for f in here_files]
    if len(set(seeds)) != len(seeds):
        raise RunsMismatch(f"the --here files repeat a seed ({seeds}): each must be another run")
    overridden = [f["seed"] for f in here_files if f.get("param_grid")]
    if overridden:
        raise RunsMismatch(f"the --here runs of seed(s) {overridden} overrode heareval's grid (--param-grid): not "
                           "heareval's probe as the committed runs ran it")
    grids = {tuple(f["grid"]) for f in here_files}
    if len(grids) > 1:
        raise RunsMismatch(f"the --here files ran heareval with different grids {sorted(grids)}")
    for p in pairs:
        if len(p.get("heareval_seed_scores") or []) < 2:
            raise RunsMismatch(f"{p['variant']} x {p['task']}: fewer than two committed heareval runs")
    for f in here_files:
        cells = {(c["variant"], c["task"]): c for c in f["cells"]}
        for p in pairs:
            c = cells.get((p["variant"], p["task"]))
            if c is None:
                raise RunsMismatch(f"the seed-{f['seed']} run here lacks {p['variant']} x {p['task']}: run "
                                      "heareval_same_machine.py on every cell of the kinds file")
            if Path(c["embedding_dir"]) != Path(p["embedding_dir"]):
                raise RunsMismatch(f"{p['variant']} x {p['task']}: heareval ran here on {c['embedding_dir']}, the "
                                      f"kinds on {p['embedding_dir']}: not the same embeddings")


def spearman_by_task(pairs: Sequence[Dict[str, Any]], reference: Sequence[float],
                     scores: Sequence[float]) -> Dict[str, Any]:
    """Spearman of ``scores`` with ``reference`` (one per pair, same order), pooled and within each task."""
    tasks = sorted({p["task"] for p in pairs})
    index = {t: [i for i, p in enumerate(pairs) if p["task"] == t] for t in tasks}
    return {"pooled": spearman(reference, scores),
            "per_task": {t: spearman([reference[i] for i in rows], [scores[i] for i in rows])
                         for t, rows in index.items()}}


def compare(pairs: Sequence[Dict[str, Any]], here_files: Sequence[Dict[str, Any]],
            kinds: Sequence[str]) -> Dict[str, Any]:
    """The measures of ``fastprobe-reference-plan.md`` (see the module docstring) over ``pairs``."""
    check_inputs(pairs, here_files)
    committed_count = min(len(p["heareval_seed_scores"]) for p in pairs)
    committed = [[p["heareval_seed_scores"][i] for p in pairs] for i in range(committed_count)]
    by_cell = [{(c["variant"], c["task"]): c for c in f["cells"]} for f in here_files]
    here = [[cells[(p["variant"], p["task"])]["heareval_here"]["score"] for p in pairs] for cells in by_cell]
    runs = committed + here
    means = {"all": mean_runs(runs), "here": mean_runs(here), "committed": mean_runs(committed)}
    tasks = sorted({p["task"] for p in pairs})
    task_rows = {t: [i for i, p in enumerate(pairs) if p["task"] == t] for t in tasks}

    def task_runs(t: str) -> List[List[float]]:
        return [[run[i] for i in task_rows[t]] for run in runs]

    kind_scores = {k: [p["kinds"][k]["score"] for p in pairs] for k in kinds}
    out_kinds = {}
    for k, scores in kind_scores.items():
        entry = {ref: spearman_by_task(pairs, means[ref], scores) for ref in REFERENCES}
        entry["leave_one_out"] = leave_one_out(runs, scores)
        entry["leave_one_out_per_task"] = {t: leave_one_out(task_runs(t), [scores[i] for i in task_rows[t]])["mean"]
                                           for t in tasks}
        out_kinds[k] = entry
    machines = spearman_by_task(pairs, means["here"], means["committed"])
    machines["max_abs_difference"] = max(abs(a - b) for a, b in zip(means["here"], means["committed"]))
    return {
        "cells": len(pairs),
        "runs": [{"source": "committed", "seed": s} for s in pairs[0]["heareval_seeds"][:committed_count]]
        + [{"source": "here", "seed": f["seed"]} for f in here_files],
        "kinds": out_kinds,
        "heareval_self": {"leave_one_out": leave_one_out(runs),
                          "pairs": [{"runs": [a, b], "spearman_pooled": spearman(runs[a], runs[b])}
                                    for a in range(len(runs)) for b in range(a + 1, len(runs))],
                          "leave_one_out_per_task": {t: leave_one_out(task_runs(t))["mean"] for t in tasks}},
        "machines": machines,
        "here_wall_seconds": {str(f["seed"]): statistics.median(c["heareval_here"]["wall_seconds"] for c in f["cells"])
                              for f in here_files},
        "pairs": [{"variant": p["variant"], "task": p["task"], "embedding_dir": p["embedding_dir"],
                   "heareval_committed": [run[i] for run in committed], "heareval_here": [run[i] for run in here],
                   "heareval_mean_all": means["all"][i], "kinds": {k: kind_scores[k][i] for k in kinds}}
                  for i, p in enumerate(pairs)],
    }


def main(argv: Optional[Sequence[str]] = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--kinds-file", type=Path, required=True, help="fastprobe_kinds.py's JSON")
    parser.add_argument("--here", type=Path, nargs="+", required=True,
                        help="heareval_same_machine.py JSONs, one per seed, on the kinds file's embedding folders")
    parser.add_argument("--json", type=Path, required=True, help="write the comparison here")
    args = parser.parse_args(argv)
    try:
        kinds_file = json.loads(args.kinds_file.read_text())
        here_files = [json.loads(path.read_text()) for path in args.here]
        pairs = kinds_file["pairs"]
        kinds = [k for k in kinds_file["kinds"] if all(k in p["kinds"] for p in pairs)]
    except (OSError, json.JSONDecodeError, KeyError) as err:
        sys.exit(f"cannot read the inputs ({err}); expected fastprobe_kinds.py's JSON and heareval_same_machine.py's")
    try:
        result = compare(pairs, here_files, kinds)
    except RunsMismatch as err:
        sys.exit(str(err))
    command = " ".join(["python", "eval_scripts/fastprobe_reference.py", *(argv if argv is not None else sys.argv[1:])])
    out = {"plan": "eval_scripts/fastprobe-reference-plan.md", "kinds_file": str(args.kinds_file),
           "here_files": [str(p) for p in args.here], "here_notes": [f.get("note", "") for f in here_files],
           "grid": here_files[0]["grid"], "command": command, **result}
    args.json.write_text(json.dumps(out, indent=1) + "\n")
    def rho(value: Optional[float]) -> str:
        return "n/a" if value is None else f"{value:.3f}"

    for k, entry in result["kinds"].items():
        print(f"{k}: " + ", ".join(f"{ref} {rho(entry[ref]['pooled'])}" for ref in REFERENCES)
              + f", leave-one-out {rho(entry['leave_one_out']['mean'])}")
    print(f"heareval itself, leave-one-out {rho(result['heareval_self']['leave_one_out']['mean'])}; "
          f"here against committed {rho(result['machines']['pooled'])}")
    print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
