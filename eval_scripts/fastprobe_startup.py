"""What the fast probe's one-time imports did to the first cell's seconds, before and after ``fast_probe.preload``.

``hear-gura evaluate --probe fast`` records a cell's seconds as its run's seconds plus its share of the in-process
step's wall clock (:func:`hear_gura.harness.runner.run_fast_in_process`). A process's first fit and score import
heareval's metric module and torch's optimiser machinery on first use; before ``preload`` those imports fell into
the first cell's seconds. This script scores the same embedding folders, in order, in two fresh processes, as the
runner does:

- ``charged``: the step timed with the imports inside it (the runner before ``preload``);
- ``preloaded``: ``fast_probe.preload()`` first (the runner now), its seconds recorded apart.

and writes each cell's seconds in both, the preload's seconds, and whether every score is the same.

    OMP_NUM_THREADS=1 python eval_scripts/fastprobe_startup.py FOLDER [FOLDER...] --json eval_scripts/fastprobe-startup.json \\
        --note "how the machine was loaded"
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence

MODES = ("charged", "preloaded")

#: Run in a fresh process per mode: argv = mode, then the folders; prints one JSON line.
CHILD = r"""
import json, sys, tempfile, time
from pathlib import Path
mode, folders = sys.argv[1], sys.argv[2:]
from hear_gura.harness.evaluate import _check_fast_probe
_check_fast_probe()  # evaluate --probe fast imports the fast probe while it validates, before any cell
from hear_gura.harness.runner import run_fast_in_process
preload_seconds = None
if mode == "preloaded":
    from hear_gura.analysis.fast_probe import preload
    preload_seconds = preload()
cells = []
with tempfile.TemporaryDirectory() as work:
    for number, folder in enumerate(folders):
        keep, log = Path(work) / f"runs{number}", Path(work) / f"log{number}.txt"
        status, wall = run_fast_in_process(Path(folder), [42], keep, "cpu", log)
        assert status == 0, log.read_text()[-2000:]
        run = json.loads((keep / "fastprobe-seed-42" / "run.json").read_text())
        result = json.loads((keep / "fastprobe-seed-42" / "fastprobe.json").read_text())
        cells.append({"folder": folder, "seconds": wall, "run_seconds": run["seconds"], "test": result["test"]})
print(json.dumps({"mode": mode, "preload_seconds": preload_seconds, "cells": cells}))
"""


def run_mode(mode: str, folders: Sequence[Path]) -> Dict[str, Any]:
    """One fresh process scoring ``folders`` in order in ``mode``; its JSON."""
    done = subprocess.run([sys.executable, "-c", CHILD, mode, *map(str, folders)], capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"the {mode} process failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main(argv: Optional[Sequence[str]] = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("folders", type=Path, nargs="+", help="task folders of heareval's embedding runner")
    parser.add_argument("--json", type=Path, required=True, help="write the cells' seconds here")
    parser.add_argument("--note", default="", help="how the machine was loaded while this ran")
    args = parser.parse_args(argv)
    missing = [str(f) for f in args.folders if not (f / "task_metadata.json").is_file()]
    if missing:
        sys.exit(f"not embedding folders of heareval's runner (no task_metadata.json): {missing}")
    runs = {mode: run_mode(mode, args.folders) for mode in MODES}
    cells: List[Dict[str, Any]] = []
    for number, folder in enumerate(args.folders):
        charged, preloaded = (runs[m]["cells"][number] for m in MODES)
        cells.append({"folder": str(folder), "seconds": {m: round(runs[m]["cells"][number]["seconds"], 3) for m in MODES},
                      "same_scores": charged["test"] == preloaded["test"]})
        print(f"{folder}: charged {charged['seconds']:.2f} s, preloaded {preloaded['seconds']:.2f} s", flush=True)
    out = {"note": args.note, "command": " ".join(["python", "eval_scripts/fastprobe_startup.py",
                                                   *(argv if argv is not None else sys.argv[1:])]),
           "machine": {"cpu_threads": int(os.environ.get("OMP_NUM_THREADS", "0") or 0),
                       "python": platform.python_version()},
           "preload_seconds": round(runs["preloaded"]["preload_seconds"], 3), "cells": cells,
           "first_cell": {m: cells[0]["seconds"][m] for m in MODES},
           "later_cells_max": {m: max((c["seconds"][m] for c in cells[1:]), default=None) for m in MODES},
           "same_scores": all(c["same_scores"] for c in cells)}
    args.json.write_text(json.dumps(out, indent=1) + "\n")
    print(f"preload {out['preload_seconds']:.2f} s; first cell: charged {out['first_cell']['charged']:.2f} s, "
          f"preloaded {out['first_cell']['preloaded']:.2f} s; same scores: {out['same_scores']}; wrote {args.json}")


if __name__ == "__main__":
    main()
