"""How far the fast probe agrees with heareval's, and how much faster it is, per task family.

For every (variant, task) cell scored with BOTH probes in the given
``hear-gura evaluate`` output folders (``cells/<variant>/<task>.json``: heareval's
prediction runner; ``cells/<variant>/<task>.fastprobe.json``: ``--probe fast``),
this pairs the two primary-metric test scores and probe times, then reports per
task family (scene: the speech/scene classification tasks; pitch: tasks scored
by ``pitch_acc``; event: timestamp tasks):

- ``spearman_pooled``: Spearman's rank correlation over all (variant, task) pairs of
  the family (what the issue asks; it also ranks tasks against each other);
- ``spearman_per_task``: the correlation over variants within each task (needs 3+
  variants), and their mean;
- ``speedup``: heareval's probe seconds (of one run: a cell made with ``--seeds N``
  records the sum of its N runs) / the fast probe's, per cell, with the
  family's median and minimum;
- ``heareval_self``, when the cells ran heareval's probe with two or more seeds
  (``hear-gura evaluate --seeds N``): heareval against itself on the same
  embeddings, every two runs' Spearman (pooled and per task); and, leaving each
  run out in turn, that run against the mean of the others beside the fast probe
  against the same means (``leave_one_out``): how well one heareval run predicts
  heareval's ranking is the most a probe can be expected to reach, and the fast
  probe is measured against exactly the same references. ``spearman_pooled``
  stays the fast probe against the mean of all runs (the cell's score).

The two cells of a pair must have scored the same embeddings: where both record
an identity, their module, options, resolved config, members' checkpoint
content and task content must agree (paths, versions and the probe may
differ); pairs that do not are left out and listed (``excluded``).

Run it after both probes have finished, e.g.::

    hear-gura evaluate --tasks-dir T --out R --ensembles A,B,C ...              # heareval's probe
    hear-gura evaluate --tasks-dir T --out R --ensembles A,B,C ... --probe fast # same embeddings
    python eval_scripts/fastprobe_agreement.py R [R2 ...] --json eval_scripts/fastprobe-agreement.json

or, with heareval's cells committed elsewhere (the fast probe re-run on re-made embeddings)::

    python eval_scripts/fastprobe_agreement.py FAST --heareval eval_scripts/results-real [...] --json ...

Probe seconds are wall-clock times from the cells (``predict_seconds``); when the
runs shared the machine with other work, say so with ``--note``. Cells written
before the harness ran the fast probe in its own process (each cell then paid a
Python start and its imports, about 15 s) can be re-timed with ``--rerun-fast``:
every paired cell's fast probe runs again here, in one process, on the cell's
own embedding folder and seed; its score must equal the cell's (else the script
fails), and ``fast_seconds_in_process`` and its speed-up are reported beside
the cell's. The one-time imports are timed apart (``import_seconds``).
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple

FAMILIES = ("scene", "pitch", "event")


def family(cell: Dict[str, Any]) -> str:
    """``event`` (timestamp tasks), ``pitch`` (scored by pitch_acc) or ``scene``."""
    if cell.get("embedding_type") == "event":
        return "event"
    return "pitch" if str(cell.get("metric", "")).startswith("pitch") else "scene"


def ranks(values: Sequence[float]) -> List[float]:
    """Average ranks (ties share the mean rank), 1-based."""
    order = sorted(range(len(values)), key=lambda i: values[i])
    out = [0.0] * len(values)
    i = 0
    while i < len(order):
        j = i
        while j + 1 < len(order) and values[order[j + 1]] == values[order[i]]:
            j += 1
        for k in range(i, j + 1):
            out[order[k]] = (i + j) / 2 + 1
        i = j + 1
    return out


def rank_value(score: float) -> float:
    """A score as it ranks: an undefined one (NaN: an event onset F-measure where the probe predicted no onset at
    all) counts as 0, no onset found. Every primary metric ranked here is higher-is-better (accuracy, mAP,
    F-measure)."""
    return 0.0 if math.isnan(score) else score


def same_score(a: float, b: float) -> bool:
    """Two runs gave the same score: equal, or both undefined (NaN, which is not equal to itself)."""
    return a == b or (math.isnan(a) and math.isnan(b))


def spearman(a: Sequence[float], b: Sequence[float]) -> Optional[float]:
    """Spearman's rho (Pearson's r of the average ranks, each score as :func:`rank_value` ranks it); None with
    fewer than 3 pairs or no spread."""
    if len(a) != len(b) or len(a) < 3:
        return None
    ra, rb = ranks([rank_value(x) for x in a]), ranks([rank_value(y) for y in b])
    ma, mb = statistics.fmean(ra), statistics.fmean(rb)
    cov = sum((x - ma) * (y - mb) for x, y in zip(ra, rb))
    va = sum((x - ma) ** 2 for x in ra)
    vb = sum((y - mb) ** 2 for y in rb)
    if va == 0 or vb == 0:
        return None
    return cov / (va * vb) ** 0.5


def fast_hparams(cell: Dict[str, Any]) -> Dict[str, Any]:
    """The fast probe's hyper-parameters a fast cell records (``identity.probe.hparams``; ``{}`` if none)."""
    return dict(((cell.get("identity") or {}).get("probe") or {}).get("hparams") or {})


def run_seconds(cell: Dict[str, Any]) -> Optional[float]:
    """Seconds of ONE probe run of a cell: its ``predict_seconds`` (the sum over its runs) over its run count.

    A cell made with ``--seeds N`` ran heareval's probe N times; the fast probe runs once, so a speed-up per
    cell divides one run's mean seconds, not the sum.
    """
    seconds = cell.get("predict_seconds")
    if not seconds:
        return None
    return float(seconds) / max(1, len(cell.get("seeds") or [None]))


def embedding_identity(cell: Dict[str, Any]) -> Optional[Dict[str, Any]]:
    """What a cell's embeddings were made from: the HEAR module, its options and resolved config, each member's
    checkpoint content and the task's content (from ``identity``; None for a cell that records none).

    Paths, versions and the probe are left out: two cells made on two machines, or with two probes, from the
    same config, weights and task carry the same embedding identity.
    """
    identity = cell.get("identity")
    if not identity:
        return None
    return {"module": identity.get("module"), "options": identity.get("options"), "config": identity.get("config"),
            "members": {name: (member or {}).get("content") for name, member in (identity.get("members") or {}).items()},
            "task": (identity.get("task") or {}).get("content")}


def identity_difference(a: Optional[Dict[str, Any]], b: Optional[Dict[str, Any]]) -> List[str]:
    """The keys (``config.members``, ``task``, ...) in which two embedding identities differ; [] if equal, or if
    either is unknown (cells that record no identity are paired as before)."""
    if a is None or b is None:
        return []
    out: List[str] = []
    for key in sorted(set(a) | set(b)):
        x, y = a.get(key), b.get(key)
        if isinstance(x, dict) and isinstance(y, dict):
            out += [f"{key}.{k}" for k in sorted(set(x) | set(y)) if x.get(k) != y.get(k)]
        elif x != y:
            out.append(key)
    return out


def _usable(cell: Dict[str, Any], metric: Optional[str] = None) -> bool:
    return bool(cell.get("complete")) and cell.get("score") is not None and metric in (None, cell.get("metric"))


def paired_cells(outs: Sequence[Path], excluded: Optional[List[Dict[str, Any]]] = None,
                 heareval_outs: Sequence[Path] = ()) -> List[Dict[str, Any]]:
    """Every cell finished with both probes: variant, task, family, both scores and times.

    Each fast cell (``cells/<variant>/<task>.fastprobe.json`` of ``outs``) is paired with heareval's cell of the
    same variant folder and task: the one beside it, or one in ``heareval_outs`` (committed result folders), the
    one with the most heareval runs (the first found on a tie, the one beside it first).

    A heareval cell and a fast cell are paired only if their embedding identities agree
    (:func:`embedding_identity`): both probes then scored the same embeddings. Cells that disagree are left out
    and, when ``excluded`` is given, appended to it with the keys that differ.
    """
    pairs: Dict[Tuple[str, str], Dict[str, Any]] = {}
    for out in outs:
        for fast_file in sorted((out / "cells").glob("*/*.fastprobe.json")):
            fast = json.loads(fast_file.read_text())
            if not _usable(fast):
                continue
            relative = fast_file.relative_to(out).with_name(fast_file.name.replace(".fastprobe.json", ".json"))
            found = [(root, json.loads((root / relative).read_text())) for root in (out, *heareval_outs)
                     if (root / relative).is_file()]
            found = [(root, hear) for root, hear in found if _usable(hear, fast["metric"])]
            if not found:
                continue
            source, hear = max(found, key=lambda f: len(f[1].get("seeds") or [None]))
            key = (hear["variant"], hear["task"])
            differ = identity_difference(embedding_identity(hear), embedding_identity(fast))
            if differ:
                if excluded is not None:
                    excluded.append({"variant": hear["variant"], "task": hear["task"], "family": family(hear),
                                     "out": str(out),
                                     "heareval_out": str(source), "differs_in": differ})
                continue
            pairs[key] = {
                "variant": hear["variant"], "task": hear["task"], "family": family(hear), "metric": hear["metric"],
                "heareval": hear["score"], "fast": fast["score"],
                "heareval_seconds": run_seconds(hear), "fast_seconds": fast.get("predict_seconds"),
                "out": str(out), "embedding_dir": fast.get("embedding_dir"), "fast_seed": (fast.get("seeds") or [42])[0],
                "fast_hparams": fast_hparams(fast),
            }
            if source != out:
                pairs[key]["heareval_out"] = str(source)
            if len(hear.get("seed_scores") or []) >= 2:
                pairs[key].update(heareval_seeds=hear["seeds"], heareval_seed_scores=hear["seed_scores"])
    return sorted(pairs.values(), key=lambda p: (p["family"], p["task"], p["variant"]))


def rerun_fast(pairs: Sequence[Dict[str, Any]]) -> float:
    """Re-time every pair's fast probe in this process (adds ``fast_seconds_in_process``); returns import seconds.

    Raises:
        SystemExit: a rerun's score differs from the cell's.
    """
    import time

    start = time.perf_counter()
    import torch  # noqa: F401 - timed: paid once per evaluate
    import heareval.score  # noqa: F401
    from dataclasses import fields

    from hear_gura.analysis.fast_probe import ProbeConfig, score_embedding_folder

    torch.optim.Adam([torch.nn.Parameter(torch.zeros(1))])  # its first call imports torch._dynamo
    imports = time.perf_counter() - start
    known = {f.name for f in fields(ProbeConfig)}
    for p in pairs:
        # the cell's own settings (a cell made before knn_standardise existed gets its default, True)
        config = ProbeConfig(**{k: v for k, v in p.get("fast_hparams", {}).items() if k in known})
        start = time.perf_counter()
        result = score_embedding_folder(p["embedding_dir"], seed=p["fast_seed"], config=config)
        p["fast_seconds_in_process"] = round(time.perf_counter() - start, 2)
        if result["test"][p["metric"]] != p["fast"]:
            raise SystemExit(f"{p['variant']} x {p['task']}: rerun gives {result['test'][p['metric']]}, "
                             f"the cell {p['fast']}: not the same fast probe")
    return imports


def mean_runs(runs: Sequence[Sequence[float]]) -> List[float]:
    """The per-cell mean of several runs' scores (each run: one score per cell, same order)."""
    return [statistics.fmean(cell) for cell in zip(*runs)]


def seed_runs(rows: Sequence[Dict[str, Any]]) -> List[List[float]]:
    """heareval's scores per run over rows with ``heareval_seed_scores``: ``seed_runs(rows)[i][k]`` is run i's
    score of row k, for the runs every row has."""
    count = min(len(p["heareval_seed_scores"]) for p in rows)
    return [[p["heareval_seed_scores"][i] for p in rows] for i in range(count)]


def leave_one_out(runs: Sequence[Sequence[float]], candidate: Optional[Sequence[float]] = None) -> Dict[str, Any]:
    """Spearman against the mean of the OTHER runs, for each run left out in turn.

    ``runs[i]`` holds heareval run i's score per cell. With ``candidate`` None the
    left-out run itself is compared (heareval predicting its own other runs: the
    ceiling); else ``candidate`` (another probe's score per cell) is, against the
    SAME references, so the two are directly comparable. Needs 2+ runs (with two,
    "the mean of the others" is the other run).

    Returns:
        ``per_run``: one rho per left-out run (None where undefined); ``mean``: their mean.
    """
    if len(runs) < 2:
        raise ValueError(f"leave-one-out needs 2+ runs, got {len(runs)}")
    per_run: List[Optional[float]] = []
    for i, run in enumerate(runs):
        others = mean_runs([r for j, r in enumerate(runs) if j != i])
        per_run.append(spearman(run if candidate is None else candidate, others))
    defined = [v for v in per_run if v is not None]
    return {"per_run": per_run, "mean": statistics.fmean(defined) if defined else None}


def self_agreement(cells: Sequence[Dict[str, Any]]) -> Optional[Dict[str, Any]]:
    """heareval against itself over cells with 2+ seeds, and the fast probe against the same runs.

    Returns None when no cell has two seeds; else, over the cells' N runs (seeds
    42, 43, ...):

    - ``pairs``: every two runs, their Spearman pooled and per task and the largest
      change of one cell's score;
    - ``leave_one_out`` (pooled) and ``leave_one_out_per_task``: each run against the
      mean of the others (``heareval``), and the fast probe against the same means
      (``fast``): the like-for-like comparison of a probe with heareval itself;
    - ``fast_per_seed``: the fast probe against each run alone, pooled and per task.
    """
    seeded = [p for p in cells if len(p.get("heareval_seed_scores") or []) >= 2]
    if not seeded:
        return None
    pooled = seed_runs(seeded)
    runs_count = len(pooled)
    seeds = list(seeded[0]["heareval_seeds"][:runs_count])
    by_task = {t: [p for p in seeded if p["task"] == t] for t in sorted({p["task"] for p in seeded})}

    def fast(rows: Sequence[Dict[str, Any]]) -> List[float]:
        return [p["fast"] for p in rows]

    task_runs = {t: seed_runs(rows)[:runs_count] for t, rows in by_task.items()}
    pairs = []
    for a in range(runs_count):
        for b in range(a + 1, runs_count):
            per_task = {t: spearman(r[a], r[b]) for t, r in task_runs.items()}
            pairs.append({"seeds": [seeds[a], seeds[b]], "spearman_pooled": spearman(pooled[a], pooled[b]),
                          "spearman_per_task": per_task,
                          "max_abs_score_difference": max(abs(x - y) for x, y in zip(pooled[a], pooled[b]))})
    return {
        "cells": len(seeded), "seeds": seeds, "pairs": pairs,
        "leave_one_out": {"heareval": leave_one_out(pooled), "fast": leave_one_out(pooled, fast(seeded))},
        "leave_one_out_per_task": {t: {"heareval": leave_one_out(r)["mean"],
                                       "fast": leave_one_out(r, fast(by_task[t]))["mean"]}
                                   for t, r in task_runs.items()},
        "fast_per_seed": {str(seed): {"spearman_pooled": spearman(fast(seeded), pooled[i]),
                                      "spearman_per_task": {t: spearman(fast(by_task[t]), r[i])
                                                            for t, r in task_runs.items()}}
                          for i, seed in enumerate(seeds)},
    }


def summarise(pairs: Sequence[Dict[str, Any]]) -> Dict[str, Any]:
    """Per family: pooled and per-task Spearman, speed-ups, and heareval against itself where it ran 2+ seeds."""
    result: Dict[str, Any] = {}
    for name in FAMILIES:
        cells = [p for p in pairs if p["family"] == name]
        if not cells:
            continue
        per_task = {}
        for task in sorted({p["task"] for p in cells}):
            rows = [p for p in cells if p["task"] == task]
            per_task[task] = {"variants": len(rows),
                              "spearman": spearman([p["heareval"] for p in rows], [p["fast"] for p in rows])}
        speedups = [p["heareval_seconds"] / p["fast_seconds"] for p in cells
                    if p.get("heareval_seconds") and p.get("fast_seconds")]
        in_process = [p["heareval_seconds"] / p["fast_seconds_in_process"] for p in cells
                      if p.get("heareval_seconds") and p.get("fast_seconds_in_process")]
        defined = [t["spearman"] for t in per_task.values() if t["spearman"] is not None]
        result[name] = {
            "cells": len(cells),
            "spearman_pooled": spearman([p["heareval"] for p in cells], [p["fast"] for p in cells]),
            "spearman_per_task": per_task,
            "spearman_per_task_mean": statistics.fmean(defined) if defined else None,
            "speedup_median": statistics.median(speedups) if speedups else None,
            "speedup_min": min(speedups) if speedups else None,
            "speedup_max": max(speedups) if speedups else None,
            "speedup_in_process_median": statistics.median(in_process) if in_process else None,
            "speedup_in_process_min": min(in_process) if in_process else None,
            "speedup_in_process_max": max(in_process) if in_process else None,
        }
        itself = self_agreement(cells)
        if itself is not None:
            result[name]["heareval_self"] = itself
    return result


def _rho(value: Optional[float]) -> str:
    return "n/a" if value is None else f"{value:.3f}"


def main(argv: Optional[Sequence[str]] = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("outs", nargs="+", type=Path, help="hear-gura evaluate output folders")
    parser.add_argument("--heareval", type=Path, nargs="*", default=[],
                        help="more folders whose cells/ hold heareval's cells (committed results); for each fast "
                             "cell, the heareval cell of the same variant and task with the most runs is paired")
    parser.add_argument("--json", type=Path, help="write the pairs and the summary here")
    parser.add_argument("--note", default="", help="how the machine was loaded while the probes ran")
    parser.add_argument("--rerun-fast", action="store_true",
                        help="re-time each pair's fast probe in this one process (its score must equal the cell's)")
    args = parser.parse_args(argv)
    for out in [*args.outs, *args.heareval]:
        if not (out / "cells").is_dir():
            sys.exit(f"{out}: not a hear-gura evaluate output folder (no cells/)")
    excluded: List[Dict[str, Any]] = []
    pairs = paired_cells(args.outs, excluded, args.heareval)
    for e in excluded:
        print(f"not paired: {e['variant']} on {e['task']} ({e['out']}): the two cells' embeddings differ in "
              f"{', '.join(e['differs_in'])}")
    if not pairs:
        sys.exit("no cell was scored with both probes: run hear-gura evaluate with --probe fast on the same --out")
    imports = rerun_fast(pairs) if args.rerun_fast else None
    summary = summarise(pairs)
    for p in pairs:
        speed = (f"{p['heareval_seconds'] / p['fast_seconds']:6.1f}x"
                 if p.get("heareval_seconds") and p.get("fast_seconds") else "    n/a")
        if p.get("fast_seconds_in_process"):
            speed += f" (in process {p['heareval_seconds'] / p['fast_seconds_in_process']:.1f}x)"
        print(f"{p['family']:6s} {p['task']:30s} {p['variant']:32s} heareval {p['heareval']:.3f}  "
              f"fast {p['fast']:.3f}  {speed}")
    for name, s in summary.items():
        pooled = "n/a" if s["spearman_pooled"] is None else f"{s['spearman_pooled']:.3f}"
        mean = "n/a" if s["spearman_per_task_mean"] is None else f"{s['spearman_per_task_mean']:.3f}"
        speed = "n/a" if s["speedup_median"] is None else f"{s['speedup_median']:.1f}x (min {s['speedup_min']:.1f}x)"
        if s["speedup_in_process_median"] is not None:
            speed += f"; in process {s['speedup_in_process_median']:.1f}x (min {s['speedup_in_process_min']:.1f}x)"
        print(f"{name}: {s['cells']} cells, Spearman pooled {pooled}, per task mean {mean}, speed-up median {speed}")
        if "heareval_self" in s:
            h = s["heareval_self"]
            for pair in h["pairs"]:
                print(f"  heareval seeds {pair['seeds'][0]} vs {pair['seeds'][1]} on {h['cells']} cells: Spearman "
                      f"pooled {_rho(pair['spearman_pooled'])}, per task " + ", ".join(
                          f"{t.split('-v1')[0]} {_rho(v)}" for t, v in pair["spearman_per_task"].items()))
            loo = h["leave_one_out"]
            print(f"  against the mean of the other runs: heareval {_rho(loo['heareval']['mean'])}, "
                  f"fast {_rho(loo['fast']['mean'])}; fast vs each run " + ", ".join(
                      f"seed {seed} {_rho(v['spearman_pooled'])}" for seed, v in h["fast_per_seed"].items()))
    if args.json:
        args.json.write_text(json.dumps({"note": args.note, "import_seconds": imports, "pairs": pairs,
                                         "excluded": excluded, "summary": summary}, indent=2) + "\n")
        print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
