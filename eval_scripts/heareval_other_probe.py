"""heareval's probe run another way against the comparisons' reference and against the fast kinds.

Every fast-probe test measured the kinds against heareval's probe on its
reduced grid (``--grid fast --grid-points 2``); ``fastprobe_reference.py``
holds six runs of it on the environmental and language ensembles. This script
takes ``heareval_same_machine.py`` runs of heareval's probe set up another way
(``--param-grid '{"hidden_layers": [0]}'``: no hidden layer,
``heareval-linear-plan.md``; ``--grid default --grid-points 8``: HEAR 2021's
probe, ``heareval-default-env-plan.md``), one file per seed, and writes, over
the cells the runs have, pooled and within each task (Spearman):

1. ``other_vs_reference``: the mean of the other probe's runs (O) against the
   reference's mean of all its runs (R, ``fastprobe_reference.py``'s ``all``);
2. ``kind_vs_other`` and ``kind_vs_reference``: each kind's scores against O and against R;
3. ``other_self`` and ``reference_self``: every two runs of each, on these cells;
4. ``levels``: per kind, the cells where O is below the kind's score, the mean of O minus the kind's score and of
   R minus it; ``other_max_seed_range``: the largest spread of one cell's O over the seeds (None with one seed);
5. seconds: the other probe's per cell (its run's and its process's) and the reduced probe's process seconds on
   the same cells from the reference's first run made here.

    python eval_scripts/heareval_other_probe.py --reference eval_scripts/fastprobe-reference-env.json \\
        --runs eval_scripts/heareval-linear-env-42.json eval_scripts/heareval-linear-env-43.json \\
               eval_scripts/heareval-linear-env-44.json --plan eval_scripts/heareval-linear-plan.md \\
        --json eval_scripts/heareval-linear-env.json

Checked before anything is computed: the runs are one probe other than the reference's (the same grid and grid
override in every file, distinct seeds), each file has the same cells, each a reference cell on the same embedding
folder, and where heareval's grid was overridden its record of the grid point it chose shows the override.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence

sys.path.insert(0, str(Path(__file__).resolve().parent))
from fastprobe_agreement import mean_runs, spearman  # noqa: E402  (this folder's scripts)
from fastprobe_reference import spearman_by_task  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
#: The reference's probe: heareval's reduced grid, as every comparison ran it, no override.
REFERENCE_GRID = ["fast", 2]


class OtherRunsMismatch(ValueError):
    """The runs do not describe the reference's cells with one probe other than the reference's."""


def probe_of(run_file: Dict[str, Any]) -> Dict[str, Any]:
    """``{"grid": [name, points], "param_grid": {...}}`` of a heareval_same_machine.py output."""
    return {"grid": list(run_file.get("grid") or REFERENCE_GRID), "param_grid": run_file.get("param_grid") or {}}


def check_runs(pairs: Sequence[Dict[str, Any]], run_files: Sequence[Dict[str, Any]]) -> List[Dict[str, Any]]:
    """Raise :class:`OtherRunsMismatch` unless the files are distinct seeds of one probe other than the reference's,
    each with the same cells, every one a reference pair on the same folder whose recorded grid point shows the
    override; return the reference pairs the runs have, in the reference's order."""
    if not run_files:
        raise OtherRunsMismatch("no --runs files")
    unfinished = [f.get("seed") for f in run_files if f.get("complete") is False]
    if unfinished:
        raise OtherRunsMismatch(f"the --runs file(s) of seed(s) {unfinished} stopped before their last cell: finish "
                                "them (heareval_same_machine.py --merge FILE --cells the rest)")
    seeds = [f.get("seed") for f in run_files]
    if len(set(seeds)) != len(seeds):
        raise OtherRunsMismatch(f"the --runs files repeat a seed ({seeds}): each must be another run")
    probes = [probe_of(f) for f in run_files]
    if any(p != probes[0] for p in probes):
        raise OtherRunsMismatch(f"the --runs files ran different probes: {probes}")
    if probes[0] == {"grid": REFERENCE_GRID, "param_grid": {}}:
        raise OtherRunsMismatch("the --runs files ran the reference's own probe (grid fast, 2 points, no override): "
                                "add them to fastprobe_reference.py's --here instead")
    by_key = {(p["variant"], p["task"]): p for p in pairs}
    cell_sets = [sorted((c["variant"], c["task"]) for c in f["cells"]) for f in run_files]
    if any(s != cell_sets[0] for s in cell_sets):
        raise OtherRunsMismatch("the --runs files have different cells: each seed must run the same ones")
    for f in run_files:
        for c in f["cells"]:
            pair = by_key.get((c["variant"], c["task"]))
            if pair is None:
                raise OtherRunsMismatch(f"{c['variant']} x {c['task']} (seed {f['seed']}) is not a cell of the reference")
            if Path(c["embedding_dir"]) != Path(pair["embedding_dir"]):
                raise OtherRunsMismatch(f"{c['variant']} x {c['task']}: the seed-{f['seed']} run scored "
                                        f"{c['embedding_dir']}, the reference {pair['embedding_dir']}")
            chosen = c["heareval_here"].get("hparams") or {}
            for key, values in probes[0]["param_grid"].items():
                if chosen.get(key) not in values:
                    raise OtherRunsMismatch(f"{c['variant']} x {c['task']}, seed {f['seed']}: heareval's record of its "
                                            f"grid point has {key} = {chosen.get(key)!r}, not one of {values}")
    wanted = set(cell_sets[0])
    return [p for p in pairs if (p["variant"], p["task"]) in wanted]


def every_two(runs: Sequence[Sequence[float]], seeds: Sequence[Any]) -> List[Dict[str, Any]]:
    """Spearman of every two runs (pooled), named by their seeds."""
    return [{"seeds": [seeds[a], seeds[b]], "spearman_pooled": spearman(runs[a], runs[b])}
            for a in range(len(runs)) for b in range(a + 1, len(runs))]


def reduced_seconds(reference: Dict[str, Any], pairs: Sequence[Dict[str, Any]], root: Path) -> Optional[float]:
    """The reduced probe's median process seconds on ``pairs`` in the reference's first run made here (None if
    that file is not found)."""
    files = reference.get("here_files") or []
    path = root / files[0] if files else None
    if path is None or not path.is_file():
        return None
    cells = {(c["variant"], c["task"]): c for c in json.loads(path.read_text())["cells"]}
    found = [cells[(p["variant"], p["task"])]["heareval_here"]["wall_seconds"] for p in pairs
             if (p["variant"], p["task"]) in cells]
    return statistics.median(found) if len(found) == len(pairs) else None


def compare(reference: Dict[str, Any], run_files: Sequence[Dict[str, Any]], root: Path = ROOT) -> Dict[str, Any]:
    """The measures of the module docstring over the reference cells the runs have."""
    pairs = check_runs(reference["pairs"], run_files)
    by_cell = [{(c["variant"], c["task"]): c for c in f["cells"]} for f in run_files]
    other_runs = [[cells[(p["variant"], p["task"])]["heareval_here"]["score"] for p in pairs] for cells in by_cell]
    reference_runs = [[(p["heareval_committed"] + p["heareval_here"])[i] for p in pairs]
                      for i in range(len(pairs[0]["heareval_committed"]) + len(pairs[0]["heareval_here"]))]
    other_mean, reference_mean = mean_runs(other_runs), [p["heareval_mean_all"] for p in pairs]
    kinds = sorted(pairs[0]["kinds"])
    kind_scores = {k: [p["kinds"][k] for p in pairs] for k in kinds}
    seconds = [cells[(p["variant"], p["task"])]["heareval_here"] for cells in by_cell for p in pairs]
    return {
        "cells": len(pairs), "tasks": sorted({p["task"] for p in pairs}), "probe": probe_of(run_files[0]),
        "seeds": [f["seed"] for f in run_files], "reference_runs": len(reference_runs),
        "other_vs_reference": spearman_by_task(pairs, reference_mean, other_mean),
        "kind_vs_other": {k: spearman_by_task(pairs, other_mean, s) for k, s in kind_scores.items()},
        "kind_vs_reference": {k: spearman_by_task(pairs, reference_mean, s) for k, s in kind_scores.items()},
        "other_self": every_two(other_runs, [f["seed"] for f in run_files]),
        "reference_self": every_two(reference_runs, [r["seed"] for r in reference["runs"]]),
        "levels": {k: {"other_below": sum(a < b for a, b in zip(other_mean, s)),
                       "mean_other_minus_kind": statistics.fmean(a - b for a, b in zip(other_mean, s)),
                       "mean_reference_minus_kind": statistics.fmean(a - b for a, b in zip(reference_mean, s))}
                   for k, s in kind_scores.items()},
        "other_max_seed_range": (max(max(run[i] for run in other_runs) - min(run[i] for run in other_runs)
                                     for i in range(len(pairs))) if len(other_runs) > 1 else None),
        "other_seconds_median": {"run": statistics.median(s["seconds"] for s in seconds),
                                 "process": statistics.median(s["wall_seconds"] for s in seconds)},
        "reduced_process_seconds_median": reduced_seconds(reference, pairs, root),
        "pairs": [{"variant": p["variant"], "task": p["task"], "heareval_other": [run[i] for run in other_runs],
                   "heareval_other_mean": other_mean[i], "heareval_reference_mean": reference_mean[i],
                   "kinds": {k: kind_scores[k][i] for k in kinds}} for i, p in enumerate(pairs)],
    }


def main(argv: Optional[Sequence[str]] = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--reference", type=Path, required=True, help="fastprobe_reference.py's JSON")
    parser.add_argument("--runs", type=Path, nargs="+", required=True,
                        help="heareval_same_machine.py JSONs of the other probe, one per seed")
    parser.add_argument("--plan", required=True, help="the plan that fixed these runs and their reading")
    parser.add_argument("--json", type=Path, required=True, help="write the comparison here")
    args = parser.parse_args(argv)
    try:
        reference = json.loads(args.reference.read_text())
        run_files = [json.loads(path.read_text()) for path in args.runs]
        result = compare(reference, run_files)
    except (OSError, json.JSONDecodeError, KeyError) as err:
        sys.exit(f"cannot read the inputs ({err}); expected fastprobe_reference.py's and heareval_same_machine.py's JSON")
    except OtherRunsMismatch as err:
        sys.exit(str(err))
    command = " ".join(["python", "eval_scripts/heareval_other_probe.py", *(argv if argv is not None else sys.argv[1:])])
    out = {"plan": args.plan, "reference_file": str(args.reference), "run_files": [str(p) for p in args.runs],
           "run_notes": [f.get("note", "") for f in run_files], "command": command, **result}
    args.json.write_text(json.dumps(out, indent=1) + "\n")

    def rho(value: Optional[float]) -> str:
        return "n/a" if value is None else f"{value:.3f}"

    def line(entry: Dict[str, Any]) -> str:
        return f"{rho(entry['pooled'])} (" + " / ".join(rho(v) for v in entry["per_task"].values()) + ")"

    print(f"{result['probe']} against the reference: {line(result['other_vs_reference'])}")
    for k in result["kind_vs_other"]:
        print(f"{k}: vs the other probe {line(result['kind_vs_other'][k])}; vs the reference "
              f"{line(result['kind_vs_reference'][k])}")
    print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
