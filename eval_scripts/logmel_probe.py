"""The tasks' sanity floor: a log-mel logistic-regression probe per task folder.

    python eval_scripts/logmel_probe.py TASKS_DIR [--only kws,env_sounds] [--json FILE]

Prints, per task, the probe's score and the chance level of its metric
(``hear_gura.tasks.probe.baseline_probe``: mean log-mel features, scikit-learn
logistic regression; not heareval's MLP probe); ``--json`` writes them, with
each task folder's name and build seed. The README's full-``kws`` figure is
``eval_scripts/logmel-probe-kws-full.json``, from
``hear-gura tasks build tasks_full --size full --only kws`` then
``python eval_scripts/logmel_probe.py tasks_full --only kws --json eval_scripts/logmel-probe-kws-full.json``.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from hear_gura.tasks.probe import baseline_probe


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("tasks_dir", type=Path, help="folder of HEAR task folders")
    parser.add_argument("--only", help="comma-separated task names (default: every task folder)")
    parser.add_argument("--json", type=Path, help="write the scores to this file")
    args = parser.parse_args()
    folders = sorted(p.parent for p in args.tasks_dir.glob("*/task_metadata.json"))
    if args.only:
        wanted = set(args.only.split(","))
        folders = [f for f in folders if json.loads((f / "task_metadata.json").read_text())["task_name"] in wanted]
    if not folders:
        sys.exit(f"no task folders (with task_metadata.json) under {args.tasks_dir} matching --only {args.only}")
    figures = {}
    for folder in folders:
        result = baseline_probe(folder)
        print(f"{result.task:20s} {result.metric:10s} {result.score:.3f}  (chance {result.chance:.3f})", flush=True)
        metadata = json.loads((folder / "task_metadata.json").read_text())
        figures[result.task] = {"task_folder": folder.name, "seed": metadata.get("generator", {}).get("seed"),
                                "metric": result.metric, "score": result.score, "chance": result.chance}
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2) + "\n")
        print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
