"""What heareval's probe costs as HEAR 2021 ran it, beside the reduced grid the comparisons used, on chosen cells.

Every fast-probe speed-up in the README divides the seconds of heareval's probe
run with ``--probe-grid fast --grid-points 2`` (at most 50 epochs, two grid
points: what this machine can afford over a study). HEAR 2021 ran heareval's
default: ``--grid default --grid-points 8`` (up to 500 epochs, eight grid
points). This script runs that default probe (seed 42, one thread, through
``hear_gura.harness.probe_run`` as ``evaluate`` runs it) on cells of a
``fastprobe_agreement.py`` / ``fastprobe_kinds.py`` pairs file whose embeddings
are on this machine, and records per cell: the default probe's seconds and
score, the reduced probe's seconds and score (from the pair), and the fast
probe's seconds (the pair's ``linear_raw`` kind when the file has kinds, else the
pair's fast cell) with its speed-up against both.

    OMP_NUM_THREADS=1 python eval_scripts/heareval_default_cost.py \\
        --pairs eval_scripts/fastprobe-kinds-sweep.json --cells 'pesto[layers=last]|speaker_id-v1-full' \\
        --json eval_scripts/heareval-default-cost.json --note "idle machine"

``--merge`` adds earlier outputs' cells and commands (a cell measured now replaces its earlier entry);
``--cells ''`` only merges.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

#: HEAR 2021's probe: heareval's default grid, eight grid points.
DEFAULT_GRID = ("default", 8)


def fast_seconds(pair: Dict[str, Any]) -> float:
    """The fast probe's seconds for the pair: its ``linear_raw`` kind (fastprobe_kinds.py), else its fast cell's."""
    kinds = pair.get("kinds") or {}
    if "linear_raw" in kinds:
        return float(kinds["linear_raw"]["seconds"])
    return float(pair.get("fast_seconds_in_process") or pair["fast_seconds"])


def parse_cells(text: str) -> List[Tuple[str, ...]]:
    """``'variant|task,...'`` as ``[(variant, task), ...]`` (a malformed entry stays a 1-tuple: not a pair's key)."""
    return [tuple(c.split("|", 1)) for c in text.split(",") if c]


def check_cells(wanted: Sequence[Tuple[str, ...]], pairs: Dict[Tuple[str, str], Dict[str, Any]], source: Path) -> None:
    """Exit, before any probe runs, unless every wanted cell is a pair of ``source`` whose embeddings are here."""
    unknown = [c for c in wanted if c not in pairs]
    if unknown:
        sys.exit(f"cells not in {source}: {unknown}; give 'variant|task' as its pairs name them")
    missing = [c for c in wanted if not Path(pairs[c]["embedding_dir"]).is_dir()]
    if missing:
        sys.exit(f"no embeddings here for {missing} (the pairs' embedding_dir): re-make them with "
                 "hear-gura evaluate --probe fast")


def override_param_grid(view: Path, param_grid: Mapping[str, Sequence[Any]]) -> None:
    """Give heareval's probe ``param_grid`` (e.g. ``{"hidden_layers": [0]}``) through heareval's own per-task grid
    override: ``evaluation_params.task_specific_param_grid`` of the view's ``task_metadata.json`` (a copy replaces
    the link; the folder the view links to is untouched). heareval applies it over its named grid's entries."""
    metadata_path = view / "task_metadata.json"
    metadata = json.loads(metadata_path.read_text(encoding="utf-8"))
    params = dict(metadata.get("evaluation_params") or {})
    params["task_specific_param_grid"] = {**(params.get("task_specific_param_grid") or {}),
                                          **{key: list(values) for key, values in param_grid.items()}}
    metadata["evaluation_params"] = params
    metadata_path.unlink()
    metadata_path.write_text(json.dumps(metadata, indent=1) + "\n", encoding="utf-8")


def parse_param_grid(text: str) -> Dict[str, List[Any]]:
    """``--param-grid`` JSON (``{}``: heareval's grid as named) as ``{entry: [values]}``; exits on a bad one."""
    try:
        grid = json.loads(text or "{}")
    except json.JSONDecodeError as err:
        sys.exit(f"--param-grid is not JSON ({err}); e.g. '{{\"hidden_layers\": [0]}}'")
    if not isinstance(grid, dict) or not all(isinstance(v, list) and v for v in grid.values()):
        sys.exit(f"--param-grid must map heareval grid entries to non-empty lists, e.g. '{{\"hidden_layers\": [0]}}'; "
                 f"got {text!r}")
    return grid


def run_heareval_probe(embedding_dir: Path, metrics: Sequence[str], grid: Sequence[Any] = DEFAULT_GRID,
                       seed: int = 42, param_grid: Optional[Mapping[str, Sequence[Any]]] = None) -> Dict[str, Any]:
    """heareval's probe on one task folder, in a fresh subprocess as ``evaluate`` runs it
    (``hear_gura.harness.probe_run``), with ``grid`` = (grid name, grid points) and one seed, on an
    :func:`~hear_gura.harness.probe_run.input_view` of the folder: runs on one folder can go on at once.
    ``param_grid`` overrides entries of heareval's grid (:func:`override_param_grid`).

    Returns ``{"seconds": its run's seconds (run.json: training and scoring), "wall_seconds": the subprocess's
    wall-clock seconds (its Python start and imports included: what ``evaluate`` records as a one-seed cell's
    ``predict_seconds``), "score": the primary test score, "hparams": the grid point heareval chose (its
    ``test.predicted-scores.json``'s, values as heareval writes them)}``.
    """
    from hear_gura.harness.probe_run import input_view, seed_folder_name
    from hear_gura.harness.scores import read_scores

    with tempfile.TemporaryDirectory() as work:
        # heareval writes its outputs into the folder it scores: a view of links to the embeddings keeps them
        # apart from any other run's on the same folder (and leaves the folder as it was)
        view, keep = input_view(Path(embedding_dir), Path(work) / "view"), str(Path(work) / "runs")
        if param_grid:
            override_param_grid(view, param_grid)
        command = [sys.executable, "-m", "hear_gura.harness.probe_run", "predictions", str(view),
                   "--seeds", str(seed), "--keep", keep, "--grid", str(grid[0]), "--grid-points", str(grid[1])]
        start = time.perf_counter()
        done = subprocess.run(command, capture_output=True, text=True)
        wall = time.perf_counter() - start
        if done.returncode != 0:
            raise SystemExit(f"{embedding_dir}: heareval's probe failed ({done.returncode}):\n{done.stderr[-3000:]}")
        run = Path(keep) / seed_folder_name("heareval", seed)
        seconds = json.loads((run / "run.json").read_text())["seconds"]
        scores_file = run / "test.predicted-scores.json"
        score = read_scores(scores_file, metrics).score
        hparams = json.loads(scores_file.read_text()).get("hparams", {})
    return {"seconds": seconds, "wall_seconds": round(wall, 2), "score": score, "hparams": hparams}


def main(argv: Optional[Sequence[str]] = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pairs", type=Path, required=True, help="a fastprobe_agreement.py or fastprobe_kinds.py JSON")
    parser.add_argument("--cells", required=True,
                        help="comma-separated 'variant|task' cells of --pairs (their embedding_dir must exist here)")
    parser.add_argument("--json", type=Path, required=True, help="write the cells and a summary here")
    parser.add_argument("--note", default="", help="how the machine was loaded")
    parser.add_argument("--merge", type=Path, nargs="*", default=[], help="earlier outputs whose cells join these")
    args = parser.parse_args(argv)
    pairs = {(p["variant"], p["task"]): p for p in json.loads(args.pairs.read_text())["pairs"]}
    wanted = parse_cells(args.cells)
    check_cells(wanted, pairs, args.pairs)
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    from hear_gura.analysis.fast_probe import TaskSpec

    cells: List[Dict[str, Any]] = []
    commands: List[str] = []
    for merged in args.merge:
        earlier = json.loads(merged.read_text())
        cells += earlier["cells"]
        commands += earlier["commands"]
    for variant, task in wanted:
        pair = pairs[(variant, task)]
        folder = Path(pair["embedding_dir"])
        spec = TaskSpec.load(folder)
        print(f"{variant} x {task}: heareval's default probe (grid default, 8 points, seed 42) ...", flush=True)
        measured = run_heareval_probe(folder, spec.metrics)
        fast = fast_seconds(pair)
        cell = {"variant": variant, "task": task, "embedding_dir": str(folder), "metric": spec.primary_metric,
                "heareval_default": measured, "heareval_reduced": {"seconds": pair["heareval_seconds"],
                                                                   "score": pair["heareval"]},
                "fast_seconds": fast, "speedup_reduced": pair["heareval_seconds"] / fast,
                "speedup_default": measured["seconds"] / fast}
        print(f"    default {measured['seconds']:.1f} s (score {measured['score']:.4f}); reduced "
              f"{pair['heareval_seconds']:.1f} s; fast {fast:.2f} s: {cell['speedup_default']:.1f}x against the "
              f"default, {cell['speedup_reduced']:.1f}x against the reduced grid", flush=True)
        cells = [c for c in cells if (c["variant"], c["task"]) != (variant, task)] + [cell]
    summary = {"cells": len(cells),
               "default_over_reduced_seconds_median": statistics.median(
                   c["heareval_default"]["seconds"] / c["heareval_reduced"]["seconds"] for c in cells),
               "speedup_default_min": min(c["speedup_default"] for c in cells),
               "speedup_reduced_min": min(c["speedup_reduced"] for c in cells)}
    out = {"note": args.note, "grid": {"default": list(DEFAULT_GRID), "reduced": ["fast", 2]},
           "machine": {"cpu_threads": int(os.environ.get("OMP_NUM_THREADS", "0") or 0),
                       "python": platform.python_version()},
           "commands": commands + ["python eval_scripts/heareval_default_cost.py " + " ".join(argv or sys.argv[1:])],
           "cells": cells, "summary": summary}
    args.json.write_text(json.dumps(out, indent=1) + "\n")
    print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
