"""``evaluate --probe fast --finalists K``: the fast probe's best K variants per task, scored by heareval's probe.

A sweep explores with the fast probe (every variant on every task: exploring,
never HEAR scores) and then needs heareval's probe, the only source of HEAR
scores, on the variants that matter. The fast probe ranks variants much as
heareval's probe does but not exactly (README, "How sure are these figures"):
its best variant is usually heareval's best or close to it. So the K variants
the fast probe scores best on a task (by the task's primary metric; lowest for
error rates) are that task's finalists, and heareval's probe runs on those
cells only, in the same output folder (``results.*``: heareval's cells, n/a
elsewhere; ``results-fastprobe.*``: every fast cell).

:func:`pick_finalists` chooses them from the finished fast cells;
:func:`write_finalists` writes ``results-finalists.{md,csv}``: per task, the
finalists in the fast probe's order, both scores, and heareval's order among
them.
"""

from __future__ import annotations

import csv
import io
import math
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

from hear_gura.atomic import atomic_write
from hear_gura.harness.grid import Variant
from hear_gura.harness.report import format_score
from hear_gura.harness.scores import TaskInfo
from hear_gura.probe_names import FAST_FILE_TAG as FILE_TAG, FAST_TITLE_TAG as TITLE_TAG, LOWER_IS_BETTER

#: The finalists' tables: ``results-finalists.md`` and ``.csv``.
FINALISTS_STEM = "results-finalists"
CSV_COLUMNS = ("task", "metric", "fast_rank", "variant", f"{FILE_TAG}_score", "heareval_score", "heareval_std",
               "heareval_rank")

#: ``{task folder: [variant, ...]}``: a task's finalists, best fast score first.
Picks = Dict[str, List[Variant]]
#: ``{(variant label, task folder): cell record}``.
Records = Mapping[Tuple[str, str], Dict[str, Any]]


def order_key(score: float, metric: str) -> float:
    """Sort key, smallest = best: the score negated unless the metric is an error rate; an undefined (nan)
    score sorts last."""
    if not math.isfinite(score):
        return math.inf
    return score if metric in LOWER_IS_BETTER else -score


def pick_finalists(fast_records: Records, variants: Sequence[Variant], tasks: Sequence[TaskInfo],
                   count: int) -> Picks:
    """Per task, the ``count`` variants of ``variants`` whose finished fast cells score best (ties: the earlier
    variant). A task with fewer finished fast cells gets those it has; a variant without a finished fast cell on
    the task is never a finalist there."""
    picks: Picks = {}
    for task in tasks:
        scored = [(order_key(float(rec["score"]), rec["metric"]), i, v) for i, v in enumerate(variants)
                  if (rec := fast_records.get((v.label, task.folder))) is not None]
        picks[task.folder] = [v for _, _, v in sorted(scored, key=lambda item: item[:2])[:count]]
    return picks


def finalist_cells(picks: Picks) -> frozenset:
    """``{(variant label, task folder)}`` of every finalist."""
    return frozenset((v.label, task) for task, chosen in picks.items() for v in chosen)


def finalist_rows(picks: Picks, tasks: Sequence[TaskInfo], fast_records: Records,
                  heareval_records: Records) -> List[Dict[str, Any]]:
    """One row per (task, finalist) in the fast probe's order: both scores and heareval's rank among the task's
    finalists it has scored (1 = best; None where heareval's cell is not finished)."""
    rows: List[Dict[str, Any]] = []
    for task in tasks:
        chosen = picks.get(task.folder, [])
        heareval = {v.label: heareval_records.get((v.label, task.folder)) for v in chosen}
        metric = task.primary_metric
        scored = sorted((order_key(float(r["score"]), metric), label) for label, r in heareval.items() if r)
        rank = {label: i + 1 for i, (_, label) in enumerate(scored)}
        for position, variant in enumerate(chosen, 1):
            record = heareval[variant.label]
            rows.append({
                "task": task.folder, "metric": metric, "fast_rank": position, "variant": variant.label,
                f"{FILE_TAG}_score": float(fast_records[(variant.label, task.folder)]["score"]),
                "heareval_score": None if record is None else float(record["score"]),
                "heareval_std": None if record is None or record.get("seed_std") is None else float(record["seed_std"]),
                "heareval_rank": rank.get(variant.label),
            })
    return rows


def ties_left_out(picks: Picks, variants: Sequence[Variant], fast_records: Records) -> Dict[str, List[str]]:
    """Per task, the variants left out whose fast score equals the last finalist's (the variant order decided)."""
    out: Dict[str, List[str]] = {}
    for task, chosen in picks.items():
        if not chosen:
            continue
        last = float(fast_records[(chosen[-1].label, task)]["score"])
        tied = [v.label for v in variants if v not in chosen and (rec := fast_records.get((v.label, task)))
                and float(rec["score"]) == last]
        if tied:
            out[task] = tied
    return out


def write_finalists(out_dir: Path, picks: Picks, tasks: Sequence[TaskInfo], variants: Sequence[Variant],
                    fast_records: Records, heareval_records: Records,
                    seeds: int) -> Tuple[Dict[str, Path], List[Dict[str, Any]]]:
    """``results-finalists.{md,csv}`` in ``out_dir`` (atomically); returns ``{"finalists:md": path, ...}`` and the
    rows written (:func:`finalist_rows`)."""
    rows = finalist_rows(picks, tasks, fast_records, heareval_records)
    ties = ties_left_out(picks, variants, fast_records)
    files = {kind: out_dir / f"{FINALISTS_STEM}.{kind}" for kind in ("md", "csv")}
    handle = io.StringIO(newline="")
    writer = csv.DictWriter(handle, fieldnames=CSV_COLUMNS)
    writer.writeheader()
    for row in rows:
        writer.writerow({k: "" if row[k] is None else row[k] for k in CSV_COLUMNS})
    data = handle.getvalue().encode("utf-8")
    atomic_write(files["csv"], lambda out: out.write(data))

    def heareval_text(row: Dict[str, Any]) -> str:
        if row["heareval_score"] is None:
            return "n/a"
        spread = "" if row["heareval_std"] is None else f" ± {format_score(row['heareval_std'])}"
        return format_score(row["heareval_score"]) + spread

    count = max((len(chosen) for chosen in picks.values()), default=0)
    lines = [f"# hear-gura evaluate: the fast probe's best {count} per task, scored by heareval's probe", "",
             f"| task | metric | fast probe's rank | variant | fast probe score ({TITLE_TAG}) | heareval "
             f"score{' (mean ± std over ' + str(seeds) + ' seeds)' if seeds > 1 else ''} | heareval's rank among "
             "the finalists |", "|---|---|---:|---|---:|---:|---:|"]
    for row in rows:
        lines.append(f"| {row['task']} | {row['metric']} | {row['fast_rank']} | {row['variant']} | "
                     f"{format_score(row[f'{FILE_TAG}_score'])} | {heareval_text(row)} | "
                     f"{row['heareval_rank'] if row['heareval_rank'] is not None else 'n/a'} |")
    lines += ["", "- Finalists: per task, the variants the fast probe scores best by the task's primary metric "
              "(lowest for error rates); heareval's probe ran on those cells only (results.md: HEAR scores, n/a "
              "for the others; results-fastprobe.md: every variant, fast probe).",
              "- The fast probe's scores are for exploring, not HEAR scores; heareval's column is heareval's "
              "prediction runner, as in results.md.",
              "- heareval's rank is among the finalists only: a variant the fast probe left out could still score "
              "higher with heareval's probe."]
    lines += [f"- {task}: {', '.join(tied)} tied the last finalist's fast score and {'was' if len(tied) == 1 else 'were'} "
              "left out by the order of the variants: heareval's probe did not score "
              f"{'it' if len(tied) == 1 else 'them'}." for task, tied in ties.items()]
    text = ("\n".join(lines) + "\n").encode("utf-8")
    atomic_write(files["md"], lambda out: out.write(text))
    return {f"finalists:{kind}": path for kind, path in files.items()}, rows


def heareval_rank_text(rows: Sequence[Dict[str, Any]]) -> Optional[str]:
    """``kws-v1-full: resemblyzer[layers=1] heareval's #1; ...``: per task, the fast probe's first finalist and its
    place in heareval's order among the finalists (for the progress line), or None without rows."""
    firsts = [r for r in rows if r["fast_rank"] == 1]
    if not firsts:
        return None
    return "; ".join(f"{r['task']}: {r['variant']} heareval's "
                     + ("n/a" if r["heareval_rank"] is None else f"#{r['heareval_rank']}") for r in firsts)
