"""heareval's probe run again on THIS machine on the cells of a ``fastprobe_kinds.py`` file: speed-ups of one machine.

The fast-probe tests divide heareval's seconds from the committed cells (most
of them made on another 2-core machine, AVX-512) by the fast kinds' seconds
measured here (2-core AVX2): two machines. This
script runs heareval's probe again here on the same embedding folders, with
the settings of the comparisons (``--grid fast --grid-points 2``, seed 42; ``--grid`` / ``--grid-points`` /
``--seed`` choose others, recorded in the output), one
fresh subprocess per cell as ``hear-gura evaluate`` runs it
(:func:`heareval_default_cost.run_heareval_probe`), and records per cell:

- heareval's wall-clock seconds here (the subprocess's Python start and imports
  included: what ``evaluate`` records as a one-seed cell's ``predict_seconds``)
  and its run's own seconds (training and scoring, ``run.json``);
- its seed-42 score here beside the committed cell's seed-42 score (a score of
  heareval's probe can change from machine to machine:
  ``results-speech-pitch-seeds/provenance.json``);
- for each kind of the kinds file: its speed-up against heareval's seconds here
  (one machine) and against the committed seconds (two machines, as before).

Per family and kind the summary gives the median and minimum speed-up and the
cells below the issue's target (10x) by both measures.

    OMP_NUM_THREADS=1 python eval_scripts/heareval_same_machine.py \\
        --kinds-file eval_scripts/fastprobe-kinds-families-pitch-now.json \\
        --json eval_scripts/heareval-same-machine-pitch.json --note "one thread, beside ..."

``--param-grid '{"hidden_layers": [0]}'`` overrides entries of heareval's grid through heareval's own per-task grid
(``heareval_default_cost.override_param_grid``; recorded as ``param_grid``): heareval's probe with no hidden layer
for ``heareval-linear-plan.md``.

``--cells 'variant|task,...'`` measures some cells only; ``--merge`` adds earlier outputs' cells (a cell measured
now replaces its earlier entry): their heareval runs are kept, and where ``--kinds-file`` has the cell (the same
embedding folder) its kinds' seconds are taken from it, so that a kinds file re-timed later needs no heareval run
again. Every cell must have its embeddings here (checked before any probe runs); ``--cells ''`` only merges.
The output is written after every cell (``"complete": false`` until the last), so a run that stops keeps its
finished cells and ``--merge`` of its file with ``--cells`` the rest resumes it.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence

sys.path.insert(0, str(Path(__file__).resolve().parent))
from heareval_default_cost import check_cells, parse_cells, parse_param_grid, run_heareval_probe  # noqa: E402  (this folder's scripts: one way to run heareval)

#: The issue's speed target per cell.
SPEED_TARGET = 10.0
#: heareval's probe as every comparison ran it: grid ``fast``, two grid points.
REDUCED_GRID = ("fast", 2)


def committed_seed_score(pair: Dict[str, Any], seed: int) -> Optional[float]:
    """The committed cell's score for ``seed``: from its per-seed scores when it ran several, else its one score
    (a one-run cell of ``evaluate``, whose first seed is 42) when ``seed`` is 42, else None."""
    seeds = pair.get("heareval_seeds")
    if seeds:
        return float(pair["heareval_seed_scores"][seeds.index(seed)]) if seed in seeds else None
    return float(pair["heareval"]) if seed == 42 else None


def against(pair: Dict[str, Any], here: Dict[str, Any], seed: int) -> Dict[str, Any]:
    """A kinds-file pair's committed heareval run and its kinds' speed-ups against heareval's run here (``here``,
    :func:`heareval_default_cost.run_heareval_probe`'s) and against the committed seconds."""
    return {"heareval_committed": {"seconds": pair["heareval_seconds"], "score": pair["heareval"],
                                   "seed_score": committed_seed_score(pair, seed)},
            "kinds": {k: {"seconds": v["seconds"], "score": v["score"],
                          "speedup_here": here["wall_seconds"] / v["seconds"],
                          "speedup_committed": pair["heareval_seconds"] / v["seconds"]}
                      for k, v in pair["kinds"].items() if v.get("seconds")}}


def speed_summary(cells: Sequence[Dict[str, Any]]) -> Dict[str, Any]:
    """Per kind and family: median / minimum speed-up and cells below :data:`SPEED_TARGET`, against heareval's
    seconds here and against the committed ones; and heareval's seconds here over the committed (median)."""
    out: Dict[str, Any] = {}
    kinds = sorted({k for c in cells for k in c["kinds"]})
    for kind in kinds:
        for family in sorted({c["family"] for c in cells}):
            rows = [c["kinds"][kind] for c in cells if c["family"] == family and kind in c["kinds"]]
            if not rows:
                continue
            entry: Dict[str, Any] = {"cells": len(rows)}
            for measure in ("here", "committed"):
                values = [r[f"speedup_{measure}"] for r in rows]
                entry[measure] = {"speedup_median": statistics.median(values), "speedup_min": min(values),
                                  "below_target": sum(v < SPEED_TARGET for v in values)}
            out.setdefault(kind, {})[family] = entry
    ratios = [c["heareval_here"]["wall_seconds"] / c["heareval_committed"]["seconds"] for c in cells
              if c["heareval_committed"]["seconds"]]
    reproduced = [c for c in cells if c["heareval_committed"]["seed_score"] is not None]
    return {"cells": len(cells), "kinds": out,
            "heareval_here_over_committed_seconds_median": statistics.median(ratios) if ratios else None,
            "heareval_seed_score_equal": sum(c["heareval_here"]["score"] == c["heareval_committed"]["seed_score"]
                                             for c in reproduced),
            "heareval_seed_score_compared": len(reproduced),
            "heareval_seed_score_max_abs_difference": max(
                (abs(c["heareval_here"]["score"] - c["heareval_committed"]["seed_score"]) for c in reproduced),
                default=None)}


def main(argv: Optional[Sequence[str]] = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--kinds-file", type=Path, required=True,
                        help="a fastprobe_kinds.py JSON whose kinds were timed on this machine")
    parser.add_argument("--cells", default="all",
                        help="comma-separated 'variant|task' cells (default: all the kinds file's pairs; '': none, "
                             "only --merge)")
    parser.add_argument("--seed", type=int, default=42, help="heareval's seed (the committed cells' first run: 42)")
    parser.add_argument("--json", type=Path, required=True, help="write the cells and the summary here")
    parser.add_argument("--note", default="", help="how the machine was loaded while this ran")
    parser.add_argument("--merge", type=Path, nargs="*", default=[], help="earlier outputs whose cells join these")
    parser.add_argument("--grid", default=REDUCED_GRID[0], help="heareval's named grid (default: the comparisons' "
                        f"{REDUCED_GRID[0]!r}; HEAR 2021 ran 'default')")
    parser.add_argument("--grid-points", type=int, default=REDUCED_GRID[1],
                        help=f"grid points heareval tries (default: the comparisons' {REDUCED_GRID[1]}; HEAR 2021 ran 8)")
    parser.add_argument("--param-grid", default="{}",
                        help="entries of heareval's grid to override, through heareval's per-task grid "
                             "(e.g. '{\"hidden_layers\": [0]}': its probe with no hidden layer); recorded in the output")
    args = parser.parse_args(argv)
    param_grid = parse_param_grid(args.param_grid)
    grid = (args.grid, args.grid_points)
    try:
        pairs = {(p["variant"], p["task"]): p for p in json.loads(args.kinds_file.read_text())["pairs"]}
        earlier = [json.loads(path.read_text()) for path in args.merge]
    except (OSError, json.JSONDecodeError, KeyError) as err:
        sys.exit(f"cannot read the kinds file or a --merge output ({err}); expected fastprobe_kinds.py's / this "
                 "script's JSON")
    wanted = list(pairs) if args.cells == "all" else parse_cells(args.cells)
    check_cells(wanted, pairs, args.kinds_file)
    from hear_gura.analysis.fast_probe import TaskSpec

    cells: List[Dict[str, Any]] = []
    for run in earlier:  # heareval's measurements kept; the kinds' seconds are --kinds-file's where it has the cell
        for c in run["cells"]:
            pair = pairs.get((c["variant"], c["task"]))
            if pair is not None and Path(pair["embedding_dir"]) != Path(c["embedding_dir"]):
                sys.exit(f"{c['variant']} x {c['task']}: a --merge output measured heareval on {c['embedding_dir']}, "
                         f"{args.kinds_file} timed the kinds on {pair['embedding_dir']}: not the same embeddings")
            if pair is not None and run.get("seed", 42) != args.seed:
                sys.exit(f"a --merge output ran heareval with seed {run.get('seed')}, this run with {args.seed}")
            if tuple(run.get("grid", REDUCED_GRID)) != grid:
                sys.exit(f"a --merge output ran heareval with grid {run.get('grid')}, this run with {list(grid)}")
            if (run.get("param_grid") or {}) != param_grid:
                sys.exit(f"a --merge output ran heareval with --param-grid {run.get('param_grid') or {}}, this run "
                         f"with {param_grid}: not the same probe")
            cells.append({**c, **against(pair, c["heareval_here"], args.seed)} if pair is not None else c)
    command = " ".join(["python", "eval_scripts/heareval_same_machine.py", *(argv if argv is not None else sys.argv[1:])])

    def save(complete: bool) -> None:
        """The output as it stands (after each cell, ``"complete": false`` until the last): a stopped run keeps
        its finished cells, and ``--merge`` of the file with ``--cells`` the rest resumes it."""
        out = {"note": " | ".join(dict.fromkeys(n for n in [args.note] + [r.get("note", "") for r in earlier] if n)),
               "grid": list(grid), "param_grid": param_grid, "seed": args.seed, "target": SPEED_TARGET,
               "complete": complete,
               "machine": {"cpu_threads": int(os.environ.get("OMP_NUM_THREADS", "0") or 0),
                           "python": platform.python_version()},
               "commands": [c for r in earlier for c in r.get("commands", [])] + [command],
               "cells": cells, "summary": speed_summary(cells) if cells else {}}
        staging = args.json.with_name(args.json.name + ".partial")
        staging.write_text(json.dumps(out, indent=1) + "\n")
        staging.replace(args.json)

    for number, (variant, task) in enumerate(wanted, 1):
        pair = pairs[(variant, task)]
        folder = Path(pair["embedding_dir"])
        spec = TaskSpec.load(folder)
        print(f"[{number}/{len(wanted)}] {variant} x {task}: heareval's probe (grid {grid[0]}"
              f"{f' with {param_grid}' if param_grid else ''}, {grid[1]} points, seed {args.seed}) ...",
              flush=True)
        here = run_heareval_probe(folder, spec.metrics, grid, args.seed, param_grid)
        cell = {"variant": variant, "task": task, "family": pair["family"], "metric": spec.primary_metric,
                "embedding_dir": str(folder), "heareval_here": here, **against(pair, here, args.seed)}
        committed, kinds = cell["heareval_committed"], cell["kinds"]
        print(f"    here {here['wall_seconds']:.1f} s wall ({here['seconds']:.1f} s run), score {here['score']:.4f}; "
              f"committed {pair['heareval_seconds']:.1f} s, seed-{args.seed} score "
              f"{'n/a' if committed['seed_score'] is None else format(committed['seed_score'], '.4f')}; "
              + ", ".join(f"{k} {v['speedup_here']:.1f}x" for k, v in kinds.items()), flush=True)
        cells = [c for c in cells if (c["variant"], c["task"]) != (variant, task)] + [cell]
        if number < len(wanted):
            save(complete=False)
    save(complete=True)
    print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
