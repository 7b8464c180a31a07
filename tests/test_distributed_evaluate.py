"""``torchrun -m hear_gura evaluate``: ranks split the study's member passes and probes; the results are a one-process run's."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

from hear_tasks import SCENE

BIN = Path(sys.executable).parent


def scores(out: Path) -> dict:
    with open(out / "results.csv", newline="") as handle:
        return {(r["variant"], r["task"]): r["score"] for r in csv.DictReader(handle) if r["source"] == "measured"}


def evaluate(out: Path, tasks_dir: Path, processes: int, port: int) -> subprocess.CompletedProcess:
    args = ["-m", "hear_gura", "evaluate", "--tasks-dir", str(tasks_dir), "--ensembles", "crepe,fbank",
            "--out", str(out), "--grid-points", "1", "--tasks", SCENE,
            "--probe-grid", "faster"]
    # one thread per process on both sides: probe and embedding bytes are equal at equal thread counts
    env = dict(os.environ, HF_HUB_OFFLINE="1", OMP_NUM_THREADS="1")
    if processes == 1:
        command = [sys.executable, *args]
    else:
        command = [str(BIN / "torchrun"), "--nproc-per-node", str(processes), "--master-port", str(port), *args]
    return subprocess.run(command, capture_output=True, text=True, env=env, timeout=1200)


def test_two_processes_give_a_one_process_run_and_resume_after_a_lost_rank(tmp_path, tasks_dir):
    """crepe and fbank on the scene task (k-fold): 2 cells, one per rank (event tasks cost minutes more here)."""
    one = evaluate(tmp_path / "one", tasks_dir, 1, 0)
    assert one.returncode == 0, one.stdout[-3000:] + one.stderr[-3000:]
    two = evaluate(tmp_path / "two", tasks_dir, 2, 29741)
    assert two.returncode == 0, two.stdout[-3000:] + two.stderr[-3000:]
    assert len(scores(tmp_path / "one")) == 2
    assert scores(tmp_path / "two") == scores(tmp_path / "one")  # the same numbers, to the last digit
    assert "[rank 1/2]" in two.stdout and "[rank 0/2]" in two.stdout  # both ranks worked
    command = json.loads((tmp_path / "two" / "command.json").read_text())
    assert command["status"] == "finished" and command["processes"] == 2 and command["cells"]["done"] == 2

    # a rank lost mid-run: its cell's result and its probe never finished; the rest is on disk
    cells = {p: p.stat().st_mtime_ns for p in (tmp_path / "two" / "cells").glob("*/*.json")}
    lost = sorted(p for p in cells if p.name.endswith(".embeddings.json") is False)[0]
    lost.unlink()
    again = evaluate(tmp_path / "two", tasks_dir, 2, 29742)
    assert again.returncode == 0, again.stdout[-3000:] + again.stderr[-3000:]
    # two ranks share one stdout pipe: lines may interleave, so count the phrase, not whole lines
    assert again.stdout.count("), skipped") == 1 and "1 run, 1 skipped" in again.stdout and lost.exists()
    assert {p: p.stat().st_mtime_ns for p in cells if p != lost} == {p: t for p, t in cells.items() if p != lost}
    assert scores(tmp_path / "two") == scores(tmp_path / "one")
