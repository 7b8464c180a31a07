"""The steps of ``make demo``, each run as a command, timed and recorded.

    python eval_scripts/demo.py [DIR] [--full] [--record FOLDER] [--note TEXT]

Runs, with the ``hear-gura`` and ``hear-validator`` next to this Python:

1. ``hear-gura fixtures DIR/fixtures``: tiny RANDOM checkpoints and their manifest;
2. ``hear-validator hear_gura.fusion_cat -m DIR/fixtures/checkpoints.json``;
3. ``hear-gura tasks build DIR/tasks --size ci --only TASKS``;
4. ``hear-gura evaluate``: CREPE (real weights) against the fbank floor
   (weight-free) through heareval's runners, then ``results.{csv,md,png}``;

then prints the table and where the plot is. The default (``make demo``) is
three ``ci`` tasks (pitch, a spoken-word scene task, a sound-event task) with
heareval's probe grid ``fast`` at 1 grid point (grid ``faster`` is cheaper but
underfits: CREPE fell to chance on pitch). ``--full``
(``make demo-full``) is every ``ci`` task, ``fusion_cat`` on the random
fixture weights as a third row, and the probe settings of the ``--size full``
table (grid ``fast``, 2 points).

Writes ``DIR/timings.json``: each step's command, exit status and wall
seconds, the total, the load average (1, 5, 15 min) before and after and the
CPU count, since other work on the machine stretches every time. ``--record
FOLDER`` copies that file and the results (csv, md, png, command.json) into
FOLDER: the README's demo figures are rendered from ``eval_scripts/results-demo``
by ``eval_scripts/readme_figures.py``. Exits with the status of the first step that fails.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

DEMO_TASKS = ("nsynth_like_pitch", "kws", "dcase_like_events")
"""Pitch (CREPE's strength), spoken words (the floor's), and a sound-event task (per-frame probe)."""
DEMO_PROBE = ("--probe-grid", "fast", "--grid-points", "1")
FULL_PROBE = ("--probe-grid", "fast", "--grid-points", "2")
RECORDED = ("results.csv", "results.md", "results.png", "command.json", "timings.json")


def steps(out: Path, full: bool) -> list[tuple[str, list[str]]]:
    """``(name, argv)`` of every step, the executables taken from this interpreter's ``bin`` folder."""
    bin_dir = Path(sys.executable).parent
    gura, validator = str(bin_dir / "hear-gura"), str(bin_dir / "hear-validator")
    manifest = str(out / "fixtures" / "checkpoints.json")
    build = [gura, "tasks", "build", str(out / "tasks"), "--size", "ci"]
    evaluate = [gura, "evaluate", "--tasks-dir", str(out / "tasks"), "--out", str(out / "results")]
    if full:
        evaluate += ["--ensembles", "crepe,fbank,fusion_cat", "--model", manifest, *FULL_PROBE]
    else:
        build += ["--only", ",".join(DEMO_TASKS)]
        evaluate += ["--ensembles", "crepe,fbank", *DEMO_PROBE]
    return [
        ("fixtures", [gura, "fixtures", str(out / "fixtures")]),
        ("validator", [validator, "hear_gura.fusion_cat", "-m", manifest]),
        ("tasks", build),
        ("evaluate", evaluate),
    ]


def run_steps(out: Path, full: bool, note: str | None) -> dict:
    """Run the steps in order (stopping at the first failure); the timings record."""
    record: dict = {
        "demo": "full" if full else "default",
        "started_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "cpu_count": os.cpu_count(),
        "loadavg_start": list(os.getloadavg()),
        "machine_load": note,
        "steps": [],
    }
    start = time.perf_counter()
    for name, argv in steps(out, full):
        print("+ " + " ".join(argv), flush=True)
        step_start = time.perf_counter()
        returncode = subprocess.run(argv).returncode
        record["steps"].append({"name": name, "argv": argv, "returncode": returncode,
                                "seconds": round(time.perf_counter() - step_start, 1)})
        if returncode:
            break
    record["total_seconds"] = round(time.perf_counter() - start, 1)
    record["loadavg_end"] = list(os.getloadavg())
    return record


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("out", nargs="?", default="demo", type=Path, help="output folder (default: demo)")
    parser.add_argument("--full", action="store_true", help="every ci task, fusion_cat too, probe grid fast x 2")
    parser.add_argument("--record", type=Path, help="copy timings.json and the results into this folder")
    parser.add_argument("--note", help="what else ran on the machine (recorded as machine_load)")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    record = run_steps(args.out, args.full, args.note)
    (args.out / "timings.json").write_text(json.dumps(record, indent=2) + "\n")
    failed = [s for s in record["steps"] if s["returncode"]]
    if failed:
        sys.exit(f"demo step {failed[0]['name']!r} failed (exit status {failed[0]['returncode']}); "
                 f"timings so far in {args.out / 'timings.json'}")
    results = args.out / "results"
    print((results / "results.md").read_text())
    print(f"plot: {results / 'results.png'}   table: {results / 'results.csv'}")
    print("demo steps: " + ", ".join(f"{s['name']} {s['seconds']:.0f} s" for s in record["steps"])
          + f"; {record['total_seconds'] / 60:.1f} min in all")
    if args.record:
        args.record.mkdir(parents=True, exist_ok=True)
        shutil.copy(args.out / "timings.json", args.record / "timings.json")
        for name in RECORDED[:-1]:
            shutil.copy(results / name, args.record / name)
        print(f"recorded in {args.record}")


if __name__ == "__main__":
    main()
