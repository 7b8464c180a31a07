"""One cell's probe runs, one seed after another, in one subprocess: ``python -m hear_gura.harness.probe_run``.

``predictions EMBEDDING_DIR --grid-points N --grid G --seeds 42,43 --keep RUNS_DIR``
    heareval's prediction runner (with :mod:`hear_gura.heareval_compat`'s fixes)
    once per seed. heareval seeds each run with ``seed_everything(42)`` (torch,
    numpy and the ``random`` module, which also draws the hyper-parameter grid
    points it tries: ``random.shuffle`` of the grid); here that call takes the
    run's seed instead, so seed 42 is exactly heareval's own run and every
    other seed is a genuinely different, reproducible one (other grid points
    drawn, other initialisation, other batch order).
``fastprobe EMBEDDING_DIR --seeds 42,43 --keep RUNS_DIR [--device D]``
    :func:`hear_gura.analysis.fast_probe.score_embedding_folder` once per seed
    (a linear probe, and a kNN probe on scene tasks; NOT HEAR scores).

After each run its outputs are copied into ``RUNS_DIR/<prefix>seed-<seed>/``
(``seed-42``, or ``fastprobe-seed-42``): heareval's ``test.predicted-scores.json``
and ``<test split>.predictions.pkl`` (the test predictions), or the fast
probe's ``fastprobe.json``; plus ``run.json`` (seed, seconds, per-class
scores). The folder is written under a temporary name and renamed when
complete, so a folder that exists is a finished run. The embedding folder
keeps heareval's outputs of the last run, as heareval's own runner leaves them.

heareval's runner writes its outputs INTO the embedding folder (and deletes
them first), so two runs on one folder at once would take each other's scores:
a heareval run holds ``EMBEDDING_DIR/.probe-run.lock`` and a second one is
refused. To run several at once on the same embeddings, give each an
:func:`input_view` of the folder (links to its inputs, none of its outputs).
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
import traceback
from pathlib import Path
from typing import Any, ContextManager, Dict, List, Optional, Sequence

from hear_gura.folder_lock import FolderBusy, exclusive

#: What heareval's prediction runner writes into an embedding folder (``prediction.log`` aside).
SCORES_FILE = "test.predicted-scores.json"
DONE_PREDICTIONS = "prediction-done.json"
PREDICTIONS_GLOB = "*.predictions.pkl"
RUN_FILE = "run.json"
FAST_FILE = "fastprobe.json"
#: heareval's own fixed seed (``task_predictions`` calls ``seed_everything(42)``): run 0 of every cell.
FIRST_SEED = 42
PREFIXES = {"heareval": "", "fast": "fastprobe-"}
#: Held in an embedding folder while heareval's runner writes its outputs there.
LOCK_FILE = ".probe-run.lock"
#: heareval's runner's outputs in an embedding folder (with ``PREDICTIONS_GLOB``): never linked by :func:`input_view`.
HEAREVAL_OUTPUTS = (DONE_PREDICTIONS, SCORES_FILE, "prediction.log", "lightning_logs", LOCK_FILE)


def seed_folder_name(probe: str, seed: int) -> str:
    """``seed-42`` (heareval's probe) or ``fastprobe-seed-42`` (the fast probe)."""
    return f"{PREFIXES[probe]}seed-{seed}"


def clear_outputs(embedding_dir: Path, log: bool = True) -> None:
    """Delete heareval's prediction outputs in an embedding folder (its runner skips a folder it marked done).

    ``log=False`` keeps ``prediction.log``, which heareval's logger holds open for the whole process.
    """
    names = [DONE_PREDICTIONS, SCORES_FILE] + (["prediction.log"] if log else [])
    for name in names:
        (embedding_dir / name).unlink(missing_ok=True)
    for path in embedding_dir.glob(PREDICTIONS_GLOB):
        path.unlink()
    shutil.rmtree(embedding_dir / "lightning_logs", ignore_errors=True)


def input_view(embedding_dir: Path, view: Path) -> Path:
    """Fill the new folder ``view`` with symbolic links to ``embedding_dir``'s inputs (embeddings, labels,
    metadata), none of heareval's outputs (:data:`HEAREVAL_OUTPUTS`, ``*.predictions.pkl``), and return it.

    heareval's runner run on ``view`` reads the same files and writes its outputs into ``view``: runs on views of
    one folder can go on at once without touching each other's scores, or the folder.
    """
    if not (embedding_dir / "task_metadata.json").is_file():
        raise FileNotFoundError(f"{embedding_dir} is not an embedding folder of heareval's runner (no "
                                "task_metadata.json)")
    view.mkdir(parents=True)
    for path in sorted(embedding_dir.iterdir()):
        if path.name not in HEAREVAL_OUTPUTS and not path.match(PREDICTIONS_GLOB):
            (view / path.name).symlink_to(path.resolve())
    return view


def exclusive_outputs(embedding_dir: Path) -> ContextManager[None]:
    """Hold ``embedding_dir/.probe-run.lock`` while heareval's runner writes there (released on exit or death).

    Raises:
        hear_gura.folder_lock.FolderBusy: another process holds it.
    """
    return exclusive(embedding_dir / LOCK_FILE,
                     f"another heareval probe run is writing its outputs in {embedding_dir}: wait for it, or run "
                     "each on its own input_view() of the folder")


def _seeded_heareval(seed_holder: List[int]) -> Any:
    """heareval's runner command, its ``seed_everything(42)`` replaced by ``seed_everything(seed_holder[0])``."""
    from hear_gura.heareval_compat import install_import_hook

    install_import_hook()
    import heareval.predictions.task_predictions as task_predictions
    from heareval.predictions.runner import runner
    from pytorch_lightning import seed_everything

    def seeded(seed: Optional[int] = None, workers: bool = False) -> int:
        return seed_everything(seed_holder[0], workers=workers)

    task_predictions.seed_everything = seeded  # task_predictions() looks it up at call time
    return runner


def _per_class(folder: Path, embedding_dir: Path) -> Dict[str, Any]:
    """Per-class scores of the primary metric from the run's predictions (an error is recorded, not raised)."""
    from hear_gura.harness.per_class import per_class_scores, read_labels

    try:
        metadata = json.loads((embedding_dir / "task_metadata.json").read_text(encoding="utf-8"))
        return per_class_scores(folder, str(metadata["evaluation"][0]), str(metadata["embedding_type"]),
                                read_labels(embedding_dir))
    except Exception as err:  # per-class scores are extra: never lose the run for them
        traceback.print_exc()
        return {"error": f"{type(err).__name__}: {err}"}


def _publish(staging: Path, final: Path) -> None:
    """Rename a complete staging folder to its final name (replacing an older one)."""
    if final.exists():
        shutil.rmtree(final)
    staging.rename(final)


def run_heareval(embedding_dir: Path, seeds: Sequence[int], keep: Path, grid_points: int, grid: str) -> int:
    """heareval's probe once per seed; each run kept in ``keep/seed-<seed>``. Returns an exit status.

    Holds the folder's :func:`exclusive_outputs` lock for all the seeds (heareval writes its outputs there).
    """
    seed_holder = [FIRST_SEED]
    with exclusive_outputs(embedding_dir):
        runner = _seeded_heareval(seed_holder)
        for seed in seeds:
            seed_holder[0] = seed
            clear_outputs(embedding_dir, log=False)
            print(f"hear_gura probe run: seed {seed} (heareval's seed_everything({FIRST_SEED}) takes {seed})",
                  flush=True)
            start = time.perf_counter()
            runner.main(args=[str(embedding_dir), "--grid-points", str(grid_points), "--grid", grid],
                        standalone_mode=False)
            seconds = time.perf_counter() - start
            if not (embedding_dir / SCORES_FILE).exists():
                print(f"heareval wrote no {SCORES_FILE} for seed {seed}", file=sys.stderr, flush=True)
                return 1
            staging = keep / f".{seed_folder_name('heareval', seed)}.partial"
            shutil.rmtree(staging, ignore_errors=True)
            staging.mkdir(parents=True)
            for path in [embedding_dir / SCORES_FILE, embedding_dir / DONE_PREDICTIONS,
                         *sorted(embedding_dir.glob(PREDICTIONS_GLOB))]:
                if path.exists():
                    shutil.copy2(path, staging / path.name)
            run = {"seed": seed, "seconds": round(seconds, 2), "per_class": _per_class(staging, embedding_dir)}
            (staging / RUN_FILE).write_text(json.dumps(run, indent=2, default=str) + "\n", encoding="utf-8")
            _publish(staging, keep / seed_folder_name("heareval", seed))
    return 0


def run_fast(embedding_dir: Path, seeds: Sequence[int], keep: Path, device: str) -> int:
    """The fast probe once per seed; each run kept in ``keep/fastprobe-seed-<seed>``. Returns an exit status."""
    from hear_gura.analysis.fast_probe import preload, score_embedding_folder

    startup = preload()  # the one-time imports, before any run is timed
    if startup:
        print(f"hear_gura fast probe: one-time imports {startup:.1f} s (in no run's seconds)", flush=True)
    if device == "auto":
        import torch

        device = "cuda" if torch.cuda.is_available() else "cpu"
    for seed in seeds:
        print(f"hear_gura fast probe run: seed {seed} on {device} (fast probe, not HEAR scores)", flush=True)
        start = time.perf_counter()
        result = score_embedding_folder(embedding_dir, seed=seed, device=device)
        staging = keep / f".{seed_folder_name('fast', seed)}.partial"
        shutil.rmtree(staging, ignore_errors=True)
        staging.mkdir(parents=True)
        (staging / FAST_FILE).write_text(json.dumps(result, indent=2, default=str) + "\n", encoding="utf-8")
        run = {"seed": seed, "seconds": round(time.perf_counter() - start, 2), "device": device, "per_class": None}
        (staging / RUN_FILE).write_text(json.dumps(run, indent=2) + "\n", encoding="utf-8")
        _publish(staging, keep / seed_folder_name("fast", seed))
    return 0


def main(argv: Optional[Sequence[str]] = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m hear_gura.harness.probe_run", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("probe", choices=("predictions", "fastprobe"))
    parser.add_argument("embedding_dir", type=Path, help="one task folder of heareval's embedding runner")
    parser.add_argument("--seeds", required=True, help="comma-separated seeds, one run each, in order")
    parser.add_argument("--keep", type=Path, required=True, help="folder that receives one sub-folder per run")
    parser.add_argument("--grid-points", type=int, default=8)
    parser.add_argument("--grid", default="default")
    parser.add_argument("--device", default="auto", help="the fast probe's torch device (auto: cuda if available)")
    args = parser.parse_args(argv)
    seeds = [int(s) for s in args.seeds.split(",") if s.strip()]
    args.keep.mkdir(parents=True, exist_ok=True)
    if args.probe == "predictions":
        try:
            status = run_heareval(args.embedding_dir, seeds, args.keep, args.grid_points, args.grid)
        except FolderBusy as err:
            sys.exit(f"hear_gura probe run: {err}")
    else:
        status = run_fast(args.embedding_dir, seeds, args.keep, args.device)
    sys.exit(status)


if __name__ == "__main__":
    main()
