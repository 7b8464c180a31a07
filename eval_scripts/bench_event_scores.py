"""Event scoring: heareval's sed_eval scorer against ``hear_gura.analysis.event_scores``, seconds and equality.

    python eval_scripts/bench_event_scores.py --task tasks_full/maestro_like_onset-v1-full \\
        [--repeats 3] [--json eval_scripts/bench-event-scores-cpu.json]

The references are a built event task's (every split's ``<split>.json``, as
``hear-gura tasks build`` writes them); the predictions are made from them, seeded:
each reference kept with probability 0.8, its onset and offset moved by a normal
error (sd 30 ms) and put on a 10 ms frame grid as numpy doubles (as heareval's
post-processing gives them), plus 10 % extra events of random labels and times.
For every event-based metric of the task, each split is scored by heareval's
scorer (``heareval.score.available_scores``) and by the fast one; the script
fails if any value differs, and reports the best of ``--repeats`` seconds of
each. The machine's load average is recorded before and after: the seconds are
only comparable at a similar load.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path
from typing import Any, Dict, List

import numpy as np


def predictions_from(references: Dict[str, List[Dict[str, Any]]], labels: List[str],
                     rng: np.random.Generator) -> Dict[str, List[Dict[str, Any]]]:
    """Noisy detections of ``references`` on a 10 ms grid, with extra events (see the module docstring)."""
    out: Dict[str, List[Dict[str, Any]]] = {}
    for name, events in references.items():
        found = []
        for event in events:
            if rng.random() < 0.8:
                start = max(0.0, round((event["start"] + rng.normal(0, 30)) / 10) * 10)
                end = max(start + 10, round((event["end"] + rng.normal(0, 30)) / 10) * 10)
                found.append({"label": event["label"], "start": np.float64(start), "end": np.float64(end)})
        last = max((e["end"] for e in events), default=1000)
        for _ in range(len(events) // 10):
            start = float(rng.integers(0, int(last) // 10)) * 10
            found.append({"label": labels[int(rng.integers(len(labels)))], "start": np.float64(start),
                          "end": np.float64(start + 10 * int(rng.integers(5, 60)))})
        out[name] = sorted(found, key=lambda e: (e["start"], e["label"]))
    return out


def best_seconds(fn: Any, repeats: int) -> tuple:
    times, value = [], None
    for _ in range(repeats):
        start = time.perf_counter()
        value = fn()
        times.append(time.perf_counter() - start)
    return min(times), value


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--task", type=Path, required=True, help="a built event task folder (task_metadata.json)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()

    import torch
    from fastprobe_agreement import same_score  # this folder's scripts: NaN counts as the same as NaN
    from heareval.score import EventBasedScore, available_scores

    from hear_gura.analysis.event_scores import FastEventBasedScore
    from hear_gura.analysis.fast_probe import TaskSpec
    from hear_gura.errors import HearGuraError

    try:
        task = TaskSpec.load(args.task)
    except HearGuraError as err:
        sys.exit(f"bench_event_scores: {err}")
    if task.embedding_type != "event":
        sys.exit(f"{args.task} is a {task.embedding_type} task; give an event task folder")
    label_to_idx = task.label_to_idx
    metrics = [m for m in task.metrics if isinstance(available_scores[m](label_to_idx=label_to_idx), EventBasedScore)]
    rng = np.random.default_rng(args.seed)
    load_before = os.getloadavg()
    rows, differ = [], []
    for split in task.split_names:
        references = json.loads((args.task / f"{split}.json").read_text())
        predictions = predictions_from(references, list(task.labels), rng)
        for metric in metrics:
            reference = available_scores[metric](label_to_idx=label_to_idx)
            fast = FastEventBasedScore(reference)
            slow_s, expected = best_seconds(lambda: reference(predictions, references), args.repeats)
            fast_s, got = best_seconds(lambda: fast(predictions, references), args.repeats)
            equal = all(same_score(g, e) for (_, g), (_, e) in zip(got, expected))
            if not equal:
                differ.append(f"{split} {metric}: {got} != {expected}")
            rows.append({"split": split, "metric": metric, "files": len(references),
                         "reference_events": sum(len(v) for v in references.values()),
                         "predicted_events": sum(len(v) for v in predictions.values()),
                         "f_measure": expected[0][1], "equal": equal, "heareval_seconds": round(slow_s, 4),
                         "fast_seconds": round(fast_s, 4), "speedup": round(slow_s / fast_s, 1)})
            print(f"{split:8s} {metric:36s} F {expected[0][1]:.4f}  heareval {slow_s:7.3f} s  fast {fast_s:6.3f} s  "
                  f"x{slow_s / fast_s:6.1f}  {'equal' if equal else 'DIFFERENT'}", flush=True)
    total_slow = sum(r["heareval_seconds"] for r in rows)
    total_fast = sum(r["fast_seconds"] for r in rows)
    print(f"all splits and metrics: heareval {total_slow:.2f} s, fast {total_fast:.3f} s, x{total_slow / total_fast:.0f}")
    out = {"what": __doc__.split("\n\n")[0], "task": task.name, "task_folder": str(args.task),
           "seed": args.seed, "repeats": args.repeats, "rows": rows,
           "total": {"heareval_seconds": round(total_slow, 3), "fast_seconds": round(total_fast, 4),
                     "speedup": round(total_slow / total_fast, 1)},
           "all_equal": not differ,
           "machine": {"platform": platform.platform(), "processor": platform.processor(),
                       "cpu_count": os.cpu_count(), "torch_threads": torch.get_num_threads(),
                       "torch_cpu_capability": torch.backends.cpu.get_cpu_capability(),
                       "load_before": load_before, "load_after": os.getloadavg()},
           "command": " ".join(["python", "eval_scripts/bench_event_scores.py", *sys.argv[1:]])}
    if args.json:
        args.json.write_text(json.dumps(out, indent=1) + "\n")
        print(f"wrote {args.json}")
    if differ:
        sys.exit("values differ from heareval's:\n" + "\n".join(differ))


if __name__ == "__main__":
    main()
