"""The tasks' sanity floor: a log-mel logistic-regression probe per task folder.

    python eval_scripts/logmel_probe.py TASKS_DIR [--only kws,env_sounds]

Prints, per task, the probe's score and the chance level of its metric
(``hear_gura.tasks.probe.baseline_probe``: mean log-mel features, scikit-learn
logistic regression; not heareval's MLP probe). The README's "0.35 on full
kws" comes from ``python eval_scripts/logmel_probe.py tasks_full --only kws``.
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
    args = parser.parse_args()
    folders = sorted(p.parent for p in args.tasks_dir.glob("*/task_metadata.json"))
    if args.only:
        wanted = set(args.only.split(","))
        folders = [f for f in folders if json.loads((f / "task_metadata.json").read_text())["task_name"] in wanted]
    if not folders:
        sys.exit(f"no task folders (with task_metadata.json) under {args.tasks_dir} matching --only {args.only}")
    for folder in folders:
        result = baseline_probe(folder)
        print(f"{result.task:20s} {result.metric:10s} {result.score:.3f}  (chance {result.chance:.3f})", flush=True)


if __name__ == "__main__":
    main()
