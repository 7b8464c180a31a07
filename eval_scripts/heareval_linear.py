"""heareval's probe with no hidden layer against its MLP and against ``logistic``: the measures of ``heareval-linear-plan.md``.

Inputs: ``fastprobe_reference.py``'s JSON (heareval's default probe, several
runs per cell, and the fast kinds' scores on the same cells) and
``heareval_same_machine.py --param-grid '{"hidden_layers": [0]}'`` JSONs, one
per seed, on the same embedding folders. Writes, pooled over the cells and
within each task (Spearman):

1. ``linear_vs_mlp``: the mean of heareval's no-hidden-layer runs (L) against
   the mean of its default runs (D, the reference file's ``all``);
2. ``kind_vs_linear``: each kind's scores against L;
3. ``kind_vs_mlp``: each kind against D (the reference file's figure again);
4. ``linear_self``: L's runs against each other (every two runs), beside the
   default runs' (``mlp_self``);
5. seconds: the no-hidden-layer probe's per cell (its run's and its process's);
6. ``linear_max_seed_range``: the largest spread of one cell's no-hidden-layer scores over the seeds (each seed
   also draws heareval's grid points); ``levels``: per kind, the cells where L is below the kind's score, the mean of L minus the kind's score and of
   D minus the kind's score (whether a probe's scores sit near the MLP's or far below them: an underfitted probe
   ranks by how far each cell is from converging).

    python eval_scripts/heareval_linear.py --reference eval_scripts/fastprobe-reference-env.json \\
        --linear eval_scripts/heareval-linear-env-42.json eval_scripts/heareval-linear-env-43.json \\
                 eval_scripts/heareval-linear-env-44.json --json eval_scripts/heareval-linear-env.json

Checked before anything is computed: each ``--linear`` file overrode heareval's grid with no hidden layer, they
have distinct seeds and one grid, and each has every cell of the reference on the same embedding folder, with the
no-hidden-layer grid point recorded for every run.
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

#: The override the plan fixed: heareval's probe with no hidden layer.
NO_HIDDEN_LAYER = {"hidden_layers": [0]}


class LinearRunsMismatch(ValueError):
    """The no-hidden-layer runs do not describe the reference's cells with the plan's probe."""


def check_linear_runs(pairs: Sequence[Dict[str, Any]], linear_files: Sequence[Dict[str, Any]]) -> None:
    """Raise :class:`LinearRunsMismatch` unless every file is a distinct seed of the plan's probe on one grid,
    with every reference cell on the same embedding folder and heareval's record of no hidden layer."""
    if not linear_files:
        raise LinearRunsMismatch("no --linear files")
    seeds = [f.get("seed") for f in linear_files]
    if len(set(seeds)) != len(seeds):
        raise LinearRunsMismatch(f"the --linear files repeat a seed ({seeds}): each must be another run")
    if len({tuple(f.get("grid") or ()) for f in linear_files}) > 1:
        raise LinearRunsMismatch("the --linear files ran heareval with different grids")
    for f in linear_files:
        if f.get("param_grid") != NO_HIDDEN_LAYER:
            raise LinearRunsMismatch(f"the seed-{f.get('seed')} file ran heareval with --param-grid "
                                     f"{f.get('param_grid')}, not {NO_HIDDEN_LAYER}")
        cells = {(c["variant"], c["task"]): c for c in f["cells"]}
        for p in pairs:
            c = cells.get((p["variant"], p["task"]))
            if c is None:
                raise LinearRunsMismatch(f"the seed-{f['seed']} file lacks {p['variant']} x {p['task']}")
            if Path(c["embedding_dir"]) != Path(p["embedding_dir"]):
                raise LinearRunsMismatch(f"{p['variant']} x {p['task']}: the seed-{f['seed']} run scored "
                                         f"{c['embedding_dir']}, the reference {p['embedding_dir']}")
            if (c["heareval_here"].get("hparams") or {}).get("hidden_layers") != 0:
                raise LinearRunsMismatch(f"{p['variant']} x {p['task']}, seed {f['seed']}: heareval's record does "
                                         "not show a probe with no hidden layer")


def every_two(runs: Sequence[Sequence[float]], seeds: Sequence[Any]) -> List[Dict[str, Any]]:
    """Spearman of every two runs (pooled), named by their seeds."""
    return [{"seeds": [seeds[a], seeds[b]], "spearman_pooled": spearman(runs[a], runs[b])}
            for a in range(len(runs)) for b in range(a + 1, len(runs))]


def compare(reference: Dict[str, Any], linear_files: Sequence[Dict[str, Any]]) -> Dict[str, Any]:
    """The plan's measures (the module docstring) over the reference's pairs."""
    pairs = reference["pairs"]
    check_linear_runs(pairs, linear_files)
    by_cell = [{(c["variant"], c["task"]): c for c in f["cells"]} for f in linear_files]
    linear_runs = [[cells[(p["variant"], p["task"])]["heareval_here"]["score"] for p in pairs] for cells in by_cell]
    mlp_runs = [[(p["heareval_committed"] + p["heareval_here"])[i] for p in pairs]
                for i in range(len(pairs[0]["heareval_committed"]) + len(pairs[0]["heareval_here"]))]
    linear_mean, mlp_mean = mean_runs(linear_runs), [p["heareval_mean_all"] for p in pairs]
    kinds = sorted(pairs[0]["kinds"])
    kind_scores = {k: [p["kinds"][k] for p in pairs] for k in kinds}
    seconds = [c["heareval_here"] for cells in by_cell for c in cells.values()]
    return {
        "cells": len(pairs), "linear_seeds": [f["seed"] for f in linear_files], "mlp_runs": len(mlp_runs),
        "linear_vs_mlp": spearman_by_task(pairs, mlp_mean, linear_mean),
        "kind_vs_linear": {k: spearman_by_task(pairs, linear_mean, s) for k, s in kind_scores.items()},
        "kind_vs_mlp": {k: spearman_by_task(pairs, mlp_mean, s) for k, s in kind_scores.items()},
        "linear_self": every_two(linear_runs, [f["seed"] for f in linear_files]),
        "mlp_self": every_two(mlp_runs, [r["seed"] for r in reference["runs"]]),
        "levels": {k: {"linear_below": sum(a < b for a, b in zip(linear_mean, s)),
                       "mean_linear_minus_kind": statistics.fmean(a - b for a, b in zip(linear_mean, s)),
                       "mean_mlp_minus_kind": statistics.fmean(a - b for a, b in zip(mlp_mean, s))}
                   for k, s in kind_scores.items()},
        "linear_max_seed_range": max(max(run[i] for run in linear_runs) - min(run[i] for run in linear_runs)
                                     for i in range(len(pairs))),
        "linear_seconds_median": {"run": statistics.median(s["seconds"] for s in seconds),
                                  "process": statistics.median(s["wall_seconds"] for s in seconds)},
        "pairs": [{"variant": p["variant"], "task": p["task"], "heareval_linear": [run[i] for run in linear_runs],
                   "heareval_linear_mean": linear_mean[i], "heareval_mlp_mean": mlp_mean[i],
                   "kinds": {k: kind_scores[k][i] for k in kinds}} for i, p in enumerate(pairs)],
    }


def main(argv: Optional[Sequence[str]] = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--reference", type=Path, required=True, help="fastprobe_reference.py's JSON")
    parser.add_argument("--linear", type=Path, nargs="+", required=True,
                        help="heareval_same_machine.py --param-grid '{\"hidden_layers\": [0]}' JSONs, one per seed")
    parser.add_argument("--json", type=Path, required=True, help="write the comparison here")
    args = parser.parse_args(argv)
    try:
        reference = json.loads(args.reference.read_text())
        linear_files = [json.loads(path.read_text()) for path in args.linear]
        result = compare(reference, linear_files)
    except (OSError, json.JSONDecodeError, KeyError) as err:
        sys.exit(f"cannot read the inputs ({err}); expected fastprobe_reference.py's and heareval_same_machine.py's JSON")
    except LinearRunsMismatch as err:
        sys.exit(str(err))
    command = " ".join(["python", "eval_scripts/heareval_linear.py", *(argv if argv is not None else sys.argv[1:])])
    out = {"plan": "eval_scripts/heareval-linear-plan.md", "reference_file": str(args.reference),
           "linear_files": [str(p) for p in args.linear], "linear_notes": [f.get("note", "") for f in linear_files],
           "grid": linear_files[0]["grid"], "param_grid": NO_HIDDEN_LAYER, "command": command, **result}
    args.json.write_text(json.dumps(out, indent=1) + "\n")

    def rho(value: Optional[float]) -> str:
        return "n/a" if value is None else f"{value:.3f}"

    def line(entry: Dict[str, Any]) -> str:
        return f"{rho(entry['pooled'])} (" + " / ".join(rho(v) for v in entry["per_task"].values()) + ")"

    print(f"heareval no hidden layer vs heareval MLP: {line(result['linear_vs_mlp'])}")
    for k in result["kind_vs_linear"]:
        print(f"{k}: vs no hidden layer {line(result['kind_vs_linear'][k])}; vs MLP {line(result['kind_vs_mlp'][k])}")
    print("no hidden layer, run vs run: " + ", ".join(rho(p["spearman_pooled"]) for p in result["linear_self"]))
    print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
