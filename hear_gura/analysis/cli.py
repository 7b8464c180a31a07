"""The ``hear-gura layers`` subcommand (added to the main parser by :func:`register_layers_command`)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from hear_gura.errors import HearGuraError

EPILOG = """\
examples:
  hear-gura layers --tasks-dir tasks --ensemble hubert --model ckpt.json --out layers-hubert
  hear-gura layers --tasks-dir tasks --ensemble fusion_cat --member wav2vec2 --export wav2vec2-mix.json
  python -m heareval.embeddings.runner hear_gura.fusion_cat --tasks-dir tasks --task T \\
      --model-options "$(cat wav2vec2-mix.T.json)"      # heareval's own probe on the learned mix

Every figure comes from the FAST probe (a linear probe with fixed hyper-parameters, plus kNN on scene
tasks), not heareval's: titles and file names say so (layers-fastprobe.*). One member pass per task
gives every state; reruns into the same --out skip finished (task, member) cells.
"""


def _members(text: "list[str] | None") -> "list[str] | None":
    if not text:
        return None
    return [m.strip() for item in text for m in item.split(",") if m.strip()]


def cmd_layers(args: argparse.Namespace) -> None:
    """Run :func:`hear_gura.analysis.layer_scores.run_layers` from parsed arguments."""
    from hear_gura.analysis.fast_probe import ProbeConfig
    from hear_gura.analysis.layer_scores import run_layers

    options = {}
    if args.options:
        try:
            options = json.loads(args.options)
        except json.JSONDecodeError as err:
            raise HearGuraError(f"--options must be a JSON object of ensemble options: {err}") from None
        if not isinstance(options, dict):
            raise HearGuraError("--options must be a JSON object of ensemble options, e.g. '{\"dtype\": \"float16\"}'")
    config = ProbeConfig() if args.max_steps is None else ProbeConfig(max_steps=args.max_steps)
    try:
        run_layers(
            tasks_dir=args.tasks_dir, ensemble=args.ensemble, members=_members(args.member), out=Path(args.out),
            model=args.model, options=options, tasks=args.tasks.split(",") if args.tasks else None,
            probe=args.probe, learned=not args.no_learned, export=args.export, device=args.device,
            batch_size=args.batch_size, seed=args.seed, keep_features=args.keep_features, config=config,
            argv=sys.argv, feature_cache=args.feature_cache, report_only=args.report_only,
        )
    except KeyboardInterrupt:
        print(f"interrupted: rerun the same command to resume (finished cells are in {args.out}/cells)",
              file=sys.stderr)
        sys.exit(130)


def register_layers_command(subparsers: "argparse._SubParsersAction") -> None:
    """Add ``layers`` to ``hear-gura``'s subparsers."""
    p = subparsers.add_parser(
        "layers",
        help="fast-probe score of every layer of each multi-state member, per task; learned layer weights",
        description="Score every state (layer) of the multi-state members of an ensemble on HEAR tasks with the "
                    "fast probe, from one member pass per task; learn SUPERB's weighted sum; write "
                    "layers-fastprobe.{csv,md,png}. Fast-probe scores are NOT HEAR scores.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--tasks-dir", required=True, help="folder of HEAR task folders (each with task_metadata.json)")
    p.add_argument("--ensemble", required=True, help="ensemble name (hear-gura list --names)")
    p.add_argument("--member", action="append",
                   help="analyse only this member (repeat or comma-separate; default: every multi-state member)")
    p.add_argument("--out", default="layers", help="output folder (default: layers)")
    p.add_argument("--model", help="checkpoint manifest (JSON)")
    p.add_argument("--options", help="JSON object of ensemble options (load_model's), e.g. '{\"dtype\": \"float16\"}'")
    p.add_argument("--tasks", help="comma-separated task folder names or task names (default: all in --tasks-dir)")
    p.add_argument("--probe", default="fast", choices=("fast",),
                   help="fast: linear probe with fixed hyper-parameters (+ kNN on scene tasks); the only one here "
                        "(heareval's probe: hear-gura evaluate with a layers grid)")
    p.add_argument("--no-learned", action="store_true", help="skip the learned weighted sum of the states")
    p.add_argument("--export", metavar="FILE",
                   help="write the learned layer weights as --model-options JSON: FILE holds every task's "
                        "(under model_options), FILE-stem.<task>.json one task's, ready for --model-options")
    p.add_argument("--device", default="cpu", help="torch device for members and probes (default cpu)")
    p.add_argument("--batch-size", type=int, default=8,
                   help="clips per member batch (default 8; a batch holds every state at once: lower it for long clips)")
    p.add_argument("--seed", type=int, default=0, help="the probes' seed (default 0)")
    p.add_argument("--max-steps", type=int, help="the fast probe's step limit (default 3000)")
    p.add_argument("--feature-cache", metavar="DIR",
                   help="keep every member's features per clip in DIR (created; shared with hear-gura evaluate "
                        "--feature-cache) and reuse them: a rerun with other members or probe settings runs no "
                        "member already there")
    p.add_argument("--report-only", action="store_true",
                   help="run nothing: rewrite layers-fastprobe.* from the cells finished in --out")
    p.add_argument("--keep-features", action="store_true",
                   help="keep OUT/features (every state of every clip; large for event tasks) after the probes")
    p.set_defaults(func=cmd_layers)
