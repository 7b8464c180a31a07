"""The ``hear-gura evaluate`` subcommand (added to the main parser by :func:`register`)."""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING, Any, Dict

from hear_gura.errors import HearGuraError

if TYPE_CHECKING:
    from hear_gura.harness.evaluate import EvaluationResult

EPILOG = """\
examples:
  hear-gura evaluate --tasks-dir tasks --ensembles crepe,fbank --grid-points 1 --probe-grid faster
  hear-gura evaluate --tasks-dir hear-2021.0.6/tasks --ensembles fusion_cat --model ckpt.json --reference gura
  hear-gura evaluate --tasks-dir tasks --ensembles fusion_cat --model fixtures/checkpoints.json \\
      --grid '{"fusion": ["avg", "cat_interleave"], "layers": ["last", "mean"]}'
  hear-gura evaluate --tasks-dir tasks --ensembles crepe,fbank --seeds 3          # mean ± std over 3 probe runs
  hear-gura evaluate --tasks-dir tasks --ensembles crepe,fbank --seeds 3 --report-only --per-class tiny_tones
  hear-gura evaluate --tasks-dir tasks --ensembles crepe,fbank --probe fast       # results-fastprobe.*: NOT HEAR scores
  hear-gura evaluate --tasks-dir tasks --ensembles crepe,fbank,basic_pitch --probe fast --finalists 2  # then heareval on each task's best 2

Reruns into the same --out skip finished cells. Each runner's output is in OUT/logs/.
Every distinct member runs once per task for the whole study (all ensembles and grid points).
Several processes or GPUs (rank r takes every N-th task's member pass, then every N-th probe):
  torchrun --nproc-per-node 8 -m hear_gura evaluate --tasks-dir tasks --ensembles cat,fusion_cat --out results
"""


def cmd_evaluate(args: argparse.Namespace) -> None:
    """Run :func:`hear_gura.harness.evaluate.evaluate` from parsed arguments; exit 1 if a cell failed."""
    arguments = {k: v for k, v in vars(args).items() if k not in ("func", "command")}
    try:
        result = _evaluate(args, arguments)
    except KeyboardInterrupt:
        sys.exit(130)  # evaluate() has said how to resume
    if result.failed:
        names = ", ".join(o.cell.name for o in result.failed)
        raise HearGuraError(f"{len(result.failed)} cell(s) failed: {names}; see {result.out / 'logs'} "
                            "(rerun the same command to retry only those)")


def _evaluate(args: argparse.Namespace, arguments: Dict[str, Any]) -> "EvaluationResult":
    from hear_gura.harness.evaluate import evaluate

    return evaluate(
        tasks_dir=args.tasks_dir,
        ensembles=args.ensembles,
        grid=args.grid,
        model=args.model,
        out=args.out,
        grid_points=args.grid_points,
        probe_grid=args.probe_grid,
        reference=args.reference,
        tasks=args.tasks.split(",") if args.tasks else None,
        verbose=args.verbose,
        fail_fast=args.fail_fast,
        report_only=args.report_only,
        feature_cache=args.feature_cache,
        argv=sys.argv,
        arguments=arguments,
        seeds=args.seeds,
        probe=args.probe,
        per_class=args.per_class,
        finalists=args.finalists,
    )


def register(subparsers: "argparse._SubParsersAction") -> None:
    """Add ``evaluate`` to ``hear-gura``'s subparsers (``build_parser`` calls this)."""
    p = subparsers.add_parser(
        "evaluate",
        help="run heareval (embeddings + MLP probe) for ensembles x option grid x tasks; results.{csv,md,png}",
        description="Evaluate ensembles on HEAR 2021-format tasks with heareval's own embedding and prediction "
                    "runners, one isolated subprocess per step and cell (the --probe fast probe runs in this "
                    "process), resumably.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--tasks-dir", required=True, help="folder of HEAR task folders (each with task_metadata.json)")
    p.add_argument("--ensembles", required=True, help="comma-separated ensemble names (hear-gura list --names)")
    p.add_argument("--grid", help="option grid: JSON object {option: [values, ...]} or a JSON file; the cartesian "
                                  "product applies to every ensemble (passed as --model-options)")
    p.add_argument("--model", help="checkpoint manifest (JSON), passed to heareval as --model")
    p.add_argument("--out", default="results", help="output folder (default: results)")
    p.add_argument("--grid-points", type=int, default=8,
                   help="heareval's --grid-points: probe hyper-parameter settings tried (default 8, as HEAR 2021)")
    p.add_argument("--probe-grid", default="default", choices=("default", "fast", "faster"),
                   help="heareval's --grid: probe hyper-parameter grid (default: HEAR 2021's; fast/faster for tests)")
    p.add_argument("--reference", choices=("gura",),
                   help="add the published GURA leaderboard scores for official HEAR 2021 task folders")
    p.add_argument("--tasks", help="comma-separated task folder names or task names (default: all in --tasks-dir)")
    p.add_argument("--verbose", action="store_true", help="echo the runners' output (always in OUT/logs/)")
    p.add_argument("--fail-fast", action="store_true", help="stop at the first failing cell")
    p.add_argument("--report-only", action="store_true",
                   help="run nothing: write results.{csv,md,png} from the cells finished so far (others: n/a)")
    p.add_argument("--feature-cache", metavar="DIR",
                   help="keep every member's features per clip in DIR (created) and reuse them: adding an ensemble "
                        "or variant over the same members later runs no member (hear-gura cache info DIR)")
    p.add_argument("--seeds", type=int, default=1, metavar="N",
                   help="run the probe N times per cell, run i with seed 42 + i (42: heareval's own); tables show "
                        "mean ± std, every run is kept (default 1: exactly heareval's run)")
    p.add_argument("--probe", default="heareval", choices=("heareval", "fast"),
                   help="heareval: its prediction runner, the only source of HEAR scores (default); fast: a linear "
                        "probe with fixed hyper-parameters for exploring (scene tasks: logistic regression by L-BFGS "
                        "along L2 penalties on the raw embeddings divided by their root mean square, and a kNN "
                        "probe; event tasks: a linear layer on the raw embeddings, Adam, early stopping), "
                        "written to results-fastprobe.* and never called HEAR scores")
    p.add_argument("--finalists", type=int, default=0, metavar="K",
                   help="with --probe fast: then run heareval's probe on the K variants the fast probe scores best "
                        "on each task (results.*: their HEAR scores; results-finalists.{md,csv}: both probes side "
                        "by side)")
    p.add_argument("--per-class", action="append", metavar="TASK[:VARIANT]",
                   help="write per-class-<task>[-<variant>].{md,csv}: the primary metric per class of that task's "
                        "finished cells (all variants, or VARIANT: a variant label or an ensemble name); repeatable; "
                        "with --report-only, from cells finished earlier")
    p.set_defaults(func=cmd_evaluate)
