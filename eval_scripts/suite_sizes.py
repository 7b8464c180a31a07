"""Sizes of the offline task suite, per task and build size, from the builder's plans (no audio rendered).

    python eval_scripts/suite_sizes.py [--sizes ci,full] [--seed 0] [--json eval_scripts/suite-sizes.json]

For every task: clips, clip length (s), hours of audio, label-vocabulary size,
split mode and folds, as ``hear-gura tasks build`` would write them (the
builder's own ``TaskPlan``; every clip has the task's ``sample_duration``).
These are counts, not timings. The README's size table is rendered from the
JSON by ``eval_scripts/readme_figures.py``; ``tests/test_readme_figures.py``
checks the ``ci`` part against the builder.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def suite_sizes(size: str, seed: int = 0) -> dict[str, dict]:
    """``{task: {clips, clip_seconds, hours, classes, split_mode, folds}}`` for one build size."""
    from hear_gura.tasks.build import _BUILDERS, available_tasks

    sizes = {}
    for name in available_tasks():
        plan = _BUILDERS[name](size, seed)
        sizes[name] = {
            "clips": plan.n_clips,
            "clip_seconds": plan.spec.sample_duration,
            "hours": plan.n_clips * plan.spec.sample_duration / 3600,
            "classes": len(set(plan.vocabulary)),
            "embedding_type": plan.spec.embedding_type,
            "split_mode": plan.spec.split_mode,
            "folds": plan.spec.nfolds,
        }
    return sizes


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="ci,full")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", type=Path, help="write the sizes to this file")
    args = parser.parse_args()
    figures = {"seed": args.seed, **{size: suite_sizes(size, args.seed) for size in args.sizes.split(",")}}
    for size in args.sizes.split(","):
        tasks = figures[size]
        print(f"{size}: {sum(t['clips'] for t in tasks.values())} clips, "
              f"{sum(t['hours'] for t in tasks.values()):.2f} h")
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2) + "\n")
        print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
