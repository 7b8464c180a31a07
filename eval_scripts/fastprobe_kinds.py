"""Which fast probe ranks variants as heareval's probe does: the fast probe's kinds against heareval, per family.

``fastprobe_agreement.py`` measured the default fast probe (a linear layer on
standardised embeddings) against heareval's prediction runner. This script
re-scores the SAME embeddings with each candidate below and reports, per task
family (scene, pitch, event), Spearman's rank correlation with heareval's
scores (pooled over the family's cells, and within each task over variants)
and the fast probe's seconds:

- ``linear``: standardised inputs, zero-initialised linear layer (the default of ``evaluate --probe fast``
  until the held-out test, ``fastprobe-heldout-plan.md``; still what ``hear-gura layers`` runs);
- ``linear_raw``: the same layer on raw embeddings (heareval never standardises; ``evaluate --probe fast``'s
  default from that test until the logistic test, ``fastprobe-logistic-plan.md``);
- ``mlp``: heareval's model family at one fixed grid point (one hidden layer of
  1024, BatchNorm, ReLU, dropout 0.1, Xavier init, raw inputs, Adam at 1e-3),
  early-stopped on the validation loss;
- ``knn`` / ``knn_raw`` (scene tasks): the weighted kNN on standardised / raw embeddings;
- ``ridge``: a linear read-out in closed form on raw embeddings (:mod:`hear_gura.analysis.ridge_probe`), added
  after the others and tested on cells no kind had scored (``fastprobe-sweep-plan.md``);
- ``linear_rms``: ``linear_raw`` on inputs divided by their root mean square (one number: heareval's probe is
  invariant to it), tried while developing ``logistic``;
- ``logistic``: the same model as ``linear_rms`` fitted by full-batch L-BFGS along a path of L2 penalties, a
  bounded number of iterations each (:mod:`hear_gura.analysis.logistic_probe`), tested on fresh cells
  (``fastprobe-logistic-plan.md``) and since then ``evaluate --probe fast``'s default
  (:data:`hear_gura.analysis.fast_probe.VARIANT_PROBE`);
- ``projected``: ``logistic`` read through heareval's first layer as initialised (width 1024) and its BatchNorm at
  the training statistics, frozen, with no non-linearity: still a linear probe
  (:data:`hear_gura.analysis.fast_probe.PROJECTED_PROBE`), tested on fresh cells (``fastprobe-projected-plan.md``).

When heareval's cells ran two or more seeds (``hear-gura evaluate --seeds N``),
``heareval`` is their mean and each family also gives the kinds' pooled Spearman
against each run alone (``spearman_pooled_per_seed``) and, leaving each run out
in turn, against the mean of the others (``spearman_pooled_leave_one_out``: the
references against which ``fastprobe_agreement.py`` measures heareval itself).

The candidates were fixed before any was scored; with ten scene cells, a
correlation chosen as the best of five is an optimistic estimate, so the
pitch and event families (not used to pick) are reported beside it.

heareval's scores and probe seconds come from ``--agreement`` (the pairs of
``fastprobe-agreement.json``); the embeddings from ``--embeddings`` (output
folders of ``hear-gura evaluate``: ``<out>/embeddings/<variant>/<module>/<task>``),
re-made on this machine. The kind the pair's fast cell was made with (``linear``,
or ``linear_raw`` where the cell records raw inputs: :func:`reproducing_kind`)
must reproduce its committed fast score on them (``linear_reproduces``), which
shows the embeddings are the ones heareval scored; pairs whose embeddings are
missing are skipped and listed.

    python eval_scripts/fastprobe_kinds.py --agreement eval_scripts/fastprobe-agreement.json \\
        --embeddings /work/results_real /work/results_real_scene --json eval_scripts/fastprobe-kinds.json

Families (``--families``) or tasks (``--tasks``) scored in separate runs (one per core) join with
``--merge``; ``--families none --merge A B C`` only merges (``--variants`` splits one task's cells); runs that scored
different kinds of the same embeddings join them (the first run's entry of a kind wins). The output
records every run's command under ``commands``. ``--cell-kinds K`` takes kind K's score and seconds from each pair's
fast cell instead of running K again (the cells must have been made with K; such entries say ``from_cell``: their
seconds are evaluate's, reading included).
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence

sys.path.insert(0, str(Path(__file__).resolve().parent))
from fastprobe_agreement import FAMILIES, leave_one_out, same_score, seed_runs, spearman  # noqa: E402

#: name -> (probe kind, ProbeConfig overrides); fixed before scoring. Each kind names what it differs in, so
#: a change of ProbeConfig's defaults does not change a kind.
KINDS: Dict[str, tuple] = {
    "linear": ("linear", {"standardise": True}),
    "linear_raw": ("linear", {"standardise": False}),
    "linear_rms": ("linear", {"standardise": False, "rms_scale": True}),
    "mlp": ("mlp", {}),
    "ridge": ("ridge", {}),
    "logistic": ("linear", {"standardise": False, "rms_scale": True, "solver": "lbfgs"}),
    "projected": ("linear", {"standardise": False, "rms_scale": True, "solver": "lbfgs", "projection": 1024}),
    "knn": ("knn", {"knn_standardise": True}),
    "knn_raw": ("knn", {"knn_standardise": False}),
}


def scores_family(kind: str, family: str) -> bool:
    """Whether ``kind`` scores cells of ``family``: every kind does, but kNN has no event probe."""
    return not (family == "event" and KINDS[kind][0] == "knn")


def reproducing_kind(pair: Dict[str, Any]) -> str:
    """The kind of :data:`KINDS` that gives the pair's fast cell again: the linear probe with the input handling
    and solver the cell recorded (cells made before these were recorded: standardised inputs, Adam)."""
    hparams = pair.get("fast_hparams", {})
    made = (hparams.get("standardise", True), hparams.get("rms_scale", False), hparams.get("solver", "adam"))
    return next(name for name, (probe, overrides) in KINDS.items()
                if probe == "linear" and (overrides.get("standardise"), overrides.get("rms_scale", False),
                                          overrides.get("solver", "adam")) == made)


def find_embeddings(roots: Sequence[Path], variant: str, task: str, recorded: Optional[str] = None) -> Optional[Path]:
    """``<root>/embeddings/<folder>/<module>/<task>`` in the first root that has it, where ``<folder>`` is the
    variant's name, or the variant folder of the pair's ``recorded`` embedding folder (a grid variant's folder,
    ``pesto__layers=0__430e1d40ba``, is not its label, ``pesto[layers=0]``)."""
    folders = [variant] + ([Path(recorded).parent.parent.name] if recorded else [])
    for root in roots:
        for folder in folders:
            found = sorted((root / "embeddings" / folder).glob(f"*/{task}"))
            if found:
                return found[0]
    return None


def task_name(folder: str) -> str:
    """``kws`` of ``kws-v1-full``: a task folder's name without its version and size."""
    return folder.split("-v1")[0]


def score_kinds(folder: Path, seed: int, kinds: Sequence[str]) -> Dict[str, Dict[str, Any]]:
    """Each kind's primary test score and seconds on one embedding folder (read once)."""
    from hear_gura.analysis.fast_probe import ProbeConfig, TaskSpec, probe_task, read_embedding_folder

    task = TaskSpec.load(folder)
    splits = read_embedding_folder(folder, task)
    out: Dict[str, Dict[str, Any]] = {}
    for name in kinds:
        probe, overrides = KINDS[name]
        if probe == "knn" and task.embedding_type != "scene":
            continue
        start = time.perf_counter()
        result = probe_task(task, splits, probe, seed, "cpu", replace(ProbeConfig(), **overrides))
        out[name] = {"score": result["test"][task.primary_metric], "seconds": round(time.perf_counter() - start, 2)}
    return out


def summarise(pairs: Sequence[Dict[str, Any]], kinds: Sequence[str]) -> Dict[str, Any]:
    """Per kind and family: pooled and per-task Spearman against heareval, seconds and speed-up medians."""
    summary: Dict[str, Any] = {}
    for name in kinds:
        per_family: Dict[str, Any] = {}

        def kind_scores(rows: Sequence[Dict[str, Any]]) -> List[float]:
            return [p["kinds"][name]["score"] for p in rows]

        for fam in FAMILIES:
            cells = [p for p in pairs if p["family"] == fam and name in p["kinds"]]
            if not cells:
                continue
            by_task = {t: [p for p in cells if p["task"] == t] for t in sorted({p["task"] for p in cells})}
            per_task = {task: spearman([p["heareval"] for p in rows], kind_scores(rows))
                        for task, rows in by_task.items()}
            defined = [v for v in per_task.values() if v is not None]
            speedups = [p["heareval_seconds"] / p["kinds"][name]["seconds"] for p in cells
                        if p.get("heareval_seconds") and p["kinds"][name]["seconds"]]
            per_family[fam] = {
                "cells": len(cells),
                "spearman_pooled": spearman([p["heareval"] for p in cells], kind_scores(cells)),
                "spearman_per_task": per_task,
                "spearman_per_task_mean": statistics.fmean(defined) if defined else None,
                "seconds_median": statistics.median(seconds) if (seconds := [
                    p["kinds"][name]["seconds"] for p in cells if p["kinds"][name]["seconds"] is not None]) else None,
                "speedup_median": statistics.median(speedups) if speedups else None,
                "speedup_min": min(speedups) if speedups else None,
            }
            seeded = [p for p in cells if len(p.get("heareval_seed_scores") or []) >= 2]
            if len(seeded) >= 3:
                # over the cells heareval ran 2+ times (all of them, or a subset: "seeded_cells"), the runs every
                # such cell has: against each heareval run alone, and against the mean of the other runs with
                # each left out in turn (the references of fastprobe_agreement's heareval_self leave-one-out)
                runs = seed_runs(seeded)
                seeded_tasks = {t: [p for p in seeded if p["task"] == t] for t in sorted({p["task"] for p in seeded})}
                per_family[fam]["seeded_cells"] = len(seeded)
                per_family[fam]["spearman_pooled_per_seed"] = {
                    str(seed): spearman(runs[i], kind_scores(seeded))
                    for i, seed in enumerate(seeded[0]["heareval_seeds"][:len(runs)])}
                per_family[fam]["spearman_pooled_leave_one_out"] = leave_one_out(runs, kind_scores(seeded))
                per_family[fam]["spearman_per_task_leave_one_out"] = {
                    task: leave_one_out(seed_runs(rows)[:len(runs)], kind_scores(rows))["mean"]
                    for task, rows in seeded_tasks.items()}
        summary[name] = per_family
    return summary


def main(argv: Optional[Sequence[str]] = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--agreement", type=Path, required=True, help="fastprobe-agreement.json (heareval's side)")
    parser.add_argument("--embeddings", type=Path, nargs="+", required=True, help="hear-gura evaluate output folders")
    parser.add_argument("--kinds", default=",".join(KINDS), help=f"comma-separated, of {', '.join(KINDS)}")
    parser.add_argument("--families", default=",".join(FAMILIES), help="comma-separated families to score")
    parser.add_argument("--tasks", default="",
                        help="comma-separated task names (kws) or folders (kws-v1-full) to score (default: every "
                             "task of the families), so one family's cells can be split over runs and --merge'd")
    parser.add_argument("--cell-kinds", default="",
                        help="comma-separated kinds of --kinds NOT re-run: each pair's score and seconds are its fast "
                             "cell's, as evaluate --probe fast ran it (reading included); only for cells made with "
                             "that kind (reproducing_kind), to spare a second run of a slow kind")
    parser.add_argument("--variants", default="",
                        help="comma-separated variant labels to score (default: all), to split one task's cells "
                             "over runs and --merge them")
    parser.add_argument("--json", type=Path, help="write the pairs and the summary here")
    parser.add_argument("--note", default="", help="how the machine was loaded while this ran")
    parser.add_argument("--merge", type=Path, nargs="*", default=[],
                        help="earlier --json outputs whose pairs join this run's (a pair scored now replaces its "
                             "earlier entry), so families scored in separate runs share one summary")
    parser.add_argument("--partial-merge", action="store_true",
                        help="accept --merge runs that did not score every kind of --kinds: each kind's summary "
                             "covers the cells that have it, and the output lists the cells each kind lacks "
                             "(not_scored)")
    args = parser.parse_args(argv)
    kinds = [k for k in args.kinds.split(",") if k]
    unknown = [k for k in kinds if k not in KINDS]
    if unknown:
        sys.exit(f"unknown kind(s) {', '.join(unknown)}; valid: {', '.join(KINDS)}")
    families = set(args.families.split(","))
    tasks = {t for t in args.tasks.split(",") if t}
    variants = {v for v in args.variants.split(",") if v}
    from_cells = [k for k in args.cell_kinds.split(",") if k]
    if set(from_cells) - set(kinds):
        sys.exit(f"--cell-kinds {', '.join(sorted(set(from_cells) - set(kinds)))} not in --kinds")
    try:
        agreement = json.loads(args.agreement.read_text())
        earlier = [json.loads(path.read_text()) for path in args.merge]
    except (OSError, json.JSONDecodeError) as err:
        sys.exit(f"cannot read {err.filename if isinstance(err, OSError) else 'a JSON input'} ({err})")
    known = {p["task"] for p in agreement["pairs"]}
    unknown_tasks = sorted(t for t in tasks if not any(t in (k, task_name(k)) for k in known))
    if unknown_tasks:
        sys.exit(f"no pair of {args.agreement} is on task(s) {', '.join(unknown_tasks)}; "
                 f"its tasks: {', '.join(sorted(known))}")
    unknown_variants = sorted(variants - {p["variant"] for p in agreement["pairs"]})
    if unknown_variants:
        sys.exit(f"no pair of {args.agreement} has the variant(s) {', '.join(unknown_variants)}")
    for path, run in zip(args.merge, earlier):
        missing = [k for k in kinds if k not in run.get("kinds", {})
                   and any(scores_family(k, p["family"]) for p in run.get("pairs", []))]
        if missing and not args.partial_merge:
            sys.exit(f"{path} did not score kind(s) {', '.join(missing)}; merge runs made with the same --kinds "
                     "(or say --partial-merge)")
    from hear_gura.analysis.fast_probe import preload

    # the process's one-time imports before any cell is timed (kinds files without startup_seconds charged them to
    # the first cell they scored)
    startup_seconds = round(preload(), 2)
    pairs: List[Dict[str, Any]] = []
    skipped: List[str] = []
    for p in agreement["pairs"]:
        if p["family"] not in families or (tasks and not tasks & {p["task"], task_name(p["task"])}) or (
                variants and p["variant"] not in variants):
            continue
        folder = find_embeddings(args.embeddings, p["variant"], p["task"], p.get("embedding_dir"))
        if folder is None:
            skipped.append(f"{p['variant']} x {p['task']}")
            continue
        print(f"{p['family']:6s} {p['task']:30s} {p['variant']:32s}", end=" ", flush=True)
        wrong = [k for k in from_cells if reproducing_kind(p) != k]
        if wrong:
            sys.exit(f"{p['variant']} x {p['task']}: its fast cell was made with {reproducing_kind(p)}, not "
                     f"{', '.join(wrong)}: it cannot stand for that kind (--cell-kinds)")
        scored = score_kinds(folder, p.get("fast_seed", 42), [k for k in kinds if k not in from_cells])
        scored.update({k: {"score": p["fast"], "seconds": p.get("fast_seconds"), "from_cell": True} for k in from_cells})
        scored = {k: scored[k] for k in kinds if k in scored}
        entry = {k: p[k] for k in ("variant", "task", "family", "metric", "heareval", "heareval_seconds", "fast")}
        if "heareval_seed_scores" in p:  # heareval ran 2+ seeds: "heareval" is their mean
            entry.update(heareval_seeds=p["heareval_seeds"], heareval_seed_scores=p["heareval_seed_scores"])
        entry.update(embedding_dir=str(folder), kinds=scored)
        same = reproducing_kind(p)
        if same in scored and same not in from_cells:  # the cell's own probe again, on the re-made embeddings
            entry["reproducing_kind"] = same
            entry["linear_reproduces"] = same_score(scored[same]["score"], p["fast"])
        pairs.append(entry)
        print(f"heareval {p['heareval']:.3f} " + " ".join(f"{k} {v['score']:.3f}" for k, v in scored.items())
              + ("" if entry.get("linear_reproduces", True) else f"  ({same} differs from the committed fast score)"),
              flush=True)
    base = {(p["variant"], p["task"]): p for p in pairs}
    for run in earlier:  # this run's entry of a cell first, then the merged runs' in order
        for p in run["pairs"]:
            key = (p["variant"], p["task"])
            if key not in base:
                base[key] = {**p, "kinds": dict(p["kinds"])}
                pairs.append(base[key])
            elif p.get("embedding_dir") == base[key].get("embedding_dir"):
                # the same embeddings scored by another run: the kinds the first entry lacks join it
                base[key]["kinds"].update({k: v for k, v in p["kinds"].items() if k not in base[key]["kinds"]})
                for field in ("reproducing_kind", "linear_reproduces"):
                    if field in p and field not in base[key]:
                        base[key][field] = p[field]
    skipped = sorted({s for s in skipped + [s for run in earlier for s in run.get("skipped", [])]
                      if tuple(s.split(" x ")) not in base})
    notes = list(dict.fromkeys([args.note] + [run.get("note", "") for run in earlier]))  # each once, in order
    command = " ".join(["python", "eval_scripts/fastprobe_kinds.py", *(argv if argv is not None else sys.argv[1:])])
    commands = [c for run in earlier for c in run.get("commands", [])] + [command]
    if skipped:
        print(f"skipped (no embeddings): {'; '.join(skipped)}")
    not_scored = {k: [f"{p['variant']} x {p['task']}" for p in pairs
                      if k not in p["kinds"] and scores_family(k, p["family"])] for k in kinds}
    not_scored = {k: cells for k, cells in not_scored.items() if cells}
    for name, cells in not_scored.items():
        print(f"{name} not scored on {len(cells)} cell(s): {'; '.join(cells)}")
    summary = summarise(pairs, kinds)
    for name, fams in summary.items():
        for fam, s in fams.items():
            pooled = "n/a" if s["spearman_pooled"] is None else f"{s['spearman_pooled']:.3f}"
            mean = "n/a" if s["spearman_per_task_mean"] is None else f"{s['spearman_per_task_mean']:.3f}"
            print(f"{name:10s} {fam:6s} {s['cells']:2d} cells  Spearman pooled {pooled}  per task {mean}  "
                  + ("" if s["seconds_median"] is None else f"median {s['seconds_median']:.1f} s"))
    if args.json:
        import torch

        args.json.write_text(json.dumps({
            "note": " | ".join(n for n in notes if n), "kinds": {k: {"probe": KINDS[k][0], "overrides": KINDS[k][1]} for k in kinds},
            "machine": {"cpu_threads": torch.get_num_threads(), "python": platform.python_version(),
                        "torch": torch.__version__},
            "commands": commands, "startup_seconds": startup_seconds, "skipped": skipped, "not_scored": not_scored,
            "pairs": pairs, "summary": summary}, indent=2) + "\n")
        print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
