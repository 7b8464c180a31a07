"""The ``hear-gura`` command: list ensembles, write fixtures, embed files."""

from __future__ import annotations

import argparse
import errno
import json
import os
import stat
import sys
import tempfile
import time
from pathlib import Path
from typing import Dict, List, Optional, Sequence

from hear_gura.errors import HearGuraError


def _real_widths(ensemble: str) -> Dict[str, int]:
    """Member widths of an ensemble with its real checkpoints, from each kind's description (no weights loaded)."""
    from hear_gura.identity import describe_member
    from hear_gura.manifest import Manifest
    from hear_gura.registry import load_ensemble

    return {member.name: describe_member(member, Manifest()).width for member in load_ensemble(ensemble).members}


def _layers_text(config, name: str) -> str:
    choice = config.layer_choice(name)
    return choice if isinstance(choice, str) else json.dumps(choice)


def list_table() -> str:
    """The ``hear-gura list`` table (Markdown)."""
    from hear_gura.identity import describe_member
    from hear_gura.manifest import Manifest
    from hear_gura.model import embedding_sizes
    from hear_gura.registry import available_ensembles, load_ensemble
    from hear_gura.specs import checkpoint_spec

    rows = [["module", "GURA leaderboard name", "members", "layers", "fusion", "width (ts/scene)"]]
    for name in available_ensembles():
        config = load_ensemble(name)
        members = []
        for member in config.members:
            spec = checkpoint_spec(member.checkpoint() or "")
            short = spec.short if spec else {"crepe": "C"}.get(member.type, member.params.get("upstream", member.name))
            members.append(short)
        layers = sorted({_layers_text(config, m.name) for m in config.members
                         if describe_member(m, Manifest()).num_states > 1}) or ["-"]
        fusion = config.fusion if len(config.members) > 1 else "-"
        ts, scene = embedding_sizes(config, _real_widths(name))
        rows.append([
            f"hear_gura.{name}", config.gura_name or "(not in GURA)", " + ".join(members),
            ", ".join(layers), fusion + (f", {config.scene_pooling}" if config.scene_pooling != "mean" else ""),
            f"{ts} / {scene}",
        ])
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = ["| " + " | ".join(c.ljust(w) for c, w in zip(r, widths)) + " |" for r in rows]
    lines.insert(1, "|" + "|".join("-" * (w + 2) for w in widths) + "|")
    return "\n".join(lines)


def kinds_table() -> str:
    """The ``hear-gura kinds`` table (Markdown): every member kind, where it comes from, what it takes."""
    from hear_gura.members.registry import describe_params, known_kinds, member_class

    rows = [["kind", "class", "parameters (type = default)"]]
    for kind in known_kinds():
        try:
            cls = member_class(kind)
        except HearGuraError as err:
            rows.append([kind, "(cannot be imported)", str(err)])
            continue
        rows.append([kind, f"{cls.__module__}.{cls.__qualname__}", describe_params(cls.PARAMS).replace("|", "\\|")])
    widths = [max(len(r[i]) for r in rows) for i in range(3)]
    lines = ["| " + " | ".join(c.ljust(w) for c, w in zip(r, widths)) + " |" for r in rows]
    lines.insert(1, "|" + "|".join("-" * (w + 2) for w in widths) + "|")
    return "\n".join(lines)


def cmd_kinds(args: argparse.Namespace) -> None:
    print(kinds_table())


def cmd_list(args: argparse.Namespace) -> None:
    from hear_gura.registry import available_ensembles

    if args.names:
        print("\n".join(available_ensembles()))
    else:
        print(list_table())


def cmd_fixtures(args: argparse.Namespace) -> None:
    from hear_gura.fixtures import write_fixtures

    path = write_fixtures(args.dir, seed=args.seed)
    print(f"wrote tiny RANDOM-weight checkpoints and the manifest {path}")


def cmd_embed(args: argparse.Namespace) -> None:
    """``hear-gura embed``: every input and the output folder are checked before the models load."""
    options = _parse_options(args.options)
    if args.batch_size < 1:
        raise HearGuraError("--batch-size must be at least 1")
    files = [Path(f) for f in args.files]
    frames = check_wav_files(files, args.resample)
    stems = [f.stem for f in files]
    if len(set(stems)) != len(stems):
        raise HearGuraError("input files must have distinct names (outputs are named after them)")
    check_output_folder(Path(args.out))

    import numpy as np
    import torch
    from tqdm import tqdm

    from hear_gura.api import load_ensemble_model
    from hear_gura.audio_io import read_wav
    from hear_gura.distributed import Shard

    shard = Shard.from_environment()
    out = Path(args.out)
    record = start_embed_record(out, args.ensemble, options, args.model, write=shard.rank == 0)
    cache = None
    if args.feature_cache:
        from hear_gura.feature_cache import FeatureCache

        cache = FeatureCache(args.feature_cache)
    model = load_ensemble_model(args.ensemble, args.model or "", with_keys=cache is not None, **options)
    device = shard.device(args.device)
    model.to(device)
    if model.random_weights and shard.rank == 0:
        print("NOTE: this model uses RANDOM fixture weights (hear-gura fixtures), not pretrained ones", file=sys.stderr)
    # Batches are formed over ALL files (longest first, so lengths in a batch are
    # close) before sharding, so every batch, and thus every output byte, is the
    # same whatever the number of processes.
    order = sorted(range(len(files)), key=lambda i: (-frames[i], stems[i]))
    batches = [order[i : i + args.batch_size] for i in range(0, len(order), args.batch_size)]
    mine = shard.take(batches)
    start = time.time()
    bar = tqdm(total=sum(len(b) for b in mine), desc=f"embedding with {args.ensemble}{shard.label()}",
               unit="file", disable=args.quiet)
    try:
        for batch in mine:
            clips = [read_wav(files[i], resample=args.resample).to(device) for i in batch]
            for i, (embedding, timestamps, scene) in zip(batch, model.embed_clips(clips, cache=cache)):
                save_clip_outputs(out, stems[i], {
                    "embedding": embedding.cpu().numpy().astype(np.float32),
                    "timestamps": timestamps.cpu().numpy().astype(np.float32),
                    "scene": scene.cpu().numpy().astype(np.float32),
                })
            bar.update(len(batch))
    except BaseException:
        if shard.rank == 0:
            abandon_embed_record(out, record)
        raise
    bar.close()
    shard.barrier()
    if cache is not None and not args.quiet:
        print(cache.summary() + shard.label(), file=sys.stderr)
    if shard.rank == 0:
        finish_embed_record(out, record, stems)
        if not args.quiet:
            print(f"{len(files)} file(s) embedded in {time.time() - start:.1f} s into {out}/ "
                  f"(timestamp width {model.timestamp_embedding_size}, scene width {model.scene_embedding_size})")
    shard.close()


EMBED_RECORD = "config.json"


def start_embed_record(out: Path, ensemble: str, options: dict, manifest: Optional[str], write: bool) -> dict:
    """Check that ``out`` holds no embeddings of another ensemble, options or weights; record this run's identity.

    ``out/config.json`` says what produced every embedding in the folder: the
    resolved ensemble, the content of its checkpoints and the versions
    (:func:`hear_gura.identity.ensemble_identity`), and the files embedded. One
    folder holds the outputs of ONE identity: a second ensemble (or other
    weights) into the same ``--out`` is refused before any model loads, rather
    than leaving a ``config.json`` that describes only the last run.

    Raises:
        HearGuraError: ``out`` holds outputs of another identity, or ``config.json`` cannot be written.
    """
    from hear_gura.atomic import save_json
    from hear_gura.identity import differences, ensemble_identity, same_identity
    from hear_gura.manifest import Manifest
    from hear_gura.registry import load_ensemble

    identity = ensemble_identity(load_ensemble(ensemble).with_options(**options), Manifest.load(manifest or None))
    path = out / EMBED_RECORD
    previous: dict = {}
    if path.exists():
        try:
            previous = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            previous = {}
        if not same_identity(previous.get("identity"), identity):
            reasons = differences(previous.get("identity"), identity) if isinstance(previous, dict) else []
            what = previous.get("ensemble", "an unknown ensemble") if isinstance(previous, dict) else "unknown"
            raise HearGuraError(
                f"{out} already holds embeddings of {what!r} computed under another identity "
                f"({'; '.join(reasons) or 'unreadable ' + str(path)}); embed each ensemble, option set and set of "
                f"weights into its own --out folder, or delete {path} and the .npy files beside it to start over"
            )
    elif any(out.glob("*.embedding.npy")):
        raise HearGuraError(f"{out} holds .embedding.npy files but no {EMBED_RECORD} saying what produced them; "
                            "choose an empty --out, or delete those files")
    record = {"ensemble": ensemble, "options": options, "config": identity["config"], "identity": identity,
              "random_weights": identity["random_weights"], "status": "running",
              "files": sorted(previous.get("files", [])) if isinstance(previous, dict) else []}
    if write:
        try:
            out.mkdir(parents=True, exist_ok=True)
            save_json(path, record)
        except OSError as err:
            raise HearGuraError(f"cannot write {path}: {err.strerror or err}; {_write_fix(err)}") from None
    return record


def abandon_embed_record(out: Path, record: dict) -> None:
    """After a failed run: remove a ``config.json`` this run created if no output was written under it."""
    path = out / EMBED_RECORD
    if not record["files"] and not any(out.glob("*.embedding.npy")):
        path.unlink(missing_ok=True)


def finish_embed_record(out: Path, record: dict, stems: Sequence[str]) -> None:
    """Mark the run complete in ``out/config.json`` with every file embedded under its identity."""
    from hear_gura.atomic import save_json

    path = out / EMBED_RECORD
    done = dict(record, status="complete", files=sorted(set(record["files"]) | set(stems)))
    try:
        save_json(path, done)
    except OSError as err:
        raise HearGuraError(f"the embeddings are complete but {path} could not be written: "
                            f"{err.strerror or err}; {_write_fix(err)}") from None


def cmd_tasks_build(args: argparse.Namespace) -> None:
    from hear_gura.tasks import TaskBuildError, TaskFormatError, build_tasks, format_summary
    from hear_gura.tasks.sources import MissingSourceError

    only = [name.strip() for name in args.only.split(",") if name.strip()] if args.only else None
    start = time.time()
    try:
        summaries = build_tasks(args.out, size=args.size, seed=args.seed, only=only, progress=not args.quiet)
    except (TaskBuildError, TaskFormatError, MissingSourceError, ValueError) as err:
        raise HearGuraError(str(err)) from None
    print(format_summary(summaries))
    print(f"wrote {len(summaries)} task(s) into {args.out}/ in {time.time() - start:.1f} s")


def _parse_options(text: Optional[str]) -> dict:
    if not text:
        return {}
    try:
        options = json.loads(text)
    except json.JSONDecodeError as err:
        raise HearGuraError(f"--options must be a JSON object, e.g. '{{\"fusion\": \"avg\"}}': {err}") from None
    if not isinstance(options, dict):
        raise HearGuraError("--options must be a JSON object, e.g. '{\"fusion\": \"avg\"}'")
    from hear_gura.validation import non_finite_numbers

    bad = [p for key, value in options.items() for p in non_finite_numbers(value, key)]
    if bad:
        raise HearGuraError(
            f"--options holds non-finite number(s): {', '.join(bad)}; JSON's NaN and Infinity (and literals too "
            "large for a float, e.g. 1e999) are not valid option values"
        )
    return options


#: Why a write fails, by errno: what to do about it.
_WRITE_FIXES = {
    errno.ENOSPC: "the disk is full: free space or choose another --out",
    errno.EDQUOT: "the disk quota is used up: free space or choose another --out",
    errno.EFBIG: "a file size limit was reached (ulimit -f): raise it or choose another --out",
    errno.EROFS: "the file system is read-only: choose another --out",
    errno.EACCES: "permission denied: choose a folder you can write to",
    errno.EPERM: "permission denied: choose a folder you can write to",
}


def _write_fix(err: OSError) -> str:
    unknown = "is the disk full or the folder read-only? Free space or choose another --out"
    return _WRITE_FIXES.get(err.errno or 0, unknown)


def check_wav_files(files: Sequence[Path], resample: bool) -> List[int]:
    """Check every input before any model loads; return each file's length in samples.

    Reads only the headers (``soundfile.info``).

    Raises:
        HearGuraError: listing every file that is missing, a directory, a
            symbolic link loop, not readable as audio, empty (0 samples), or
            (without ``resample``) not at 16 kHz.
    """
    import soundfile as sf

    from hear_gura.timestamps import SAMPLE_RATE

    problems: List[str] = []
    frames: List[int] = []
    for file in files:
        frames.append(0)
        try:
            status = file.stat()
        except FileNotFoundError:
            problems.append(f"{file}: no such file")
            continue
        except OSError as err:
            loop = err.errno == errno.ELOOP
            problems.append(f"{file}: " + ("is a symbolic link loop" if loop else f"cannot be read ({err.strerror})"))
            continue
        if stat.S_ISDIR(status.st_mode):
            problems.append(f"{file}: is a directory; pass the wav files in it (e.g. {file}/*.wav)")
            continue
        if not stat.S_ISREG(status.st_mode):
            problems.append(f"{file}: is not a regular file")
            continue
        try:
            info = sf.info(str(file))
        except (RuntimeError, sf.LibsndfileError, OSError) as err:
            detail = str(err).split(": ", 1)[-1] if str(err) else type(err).__name__
            problems.append(f"{file}: not a readable audio file, corrupt or of an unknown format ({detail})")
            continue
        if info.frames <= 0:
            problems.append(f"{file}: holds no samples (an empty recording); remove it from the inputs")
        elif info.samplerate != SAMPLE_RATE and not resample:
            problems.append(
                f"{file}: is sampled at {info.samplerate} Hz; hear_gura models take {SAMPLE_RATE} Hz. Convert it "
                f"(e.g. `sox in.wav -r {SAMPLE_RATE} out.wav`) or pass --resample"
            )
        frames[-1] = max(0, info.frames)
    if problems:
        raise HearGuraError(f"{len(problems)} input file(s) cannot be embedded:\n  " + "\n  ".join(problems))
    return frames


def check_output_folder(out: Path) -> None:
    """Check that ``out`` is, or can become, a folder we can write files into (before any model loads).

    Writes (and removes) a 4 KiB probe file: a full disk or a read-only file
    system fails here, not after minutes of embedding. A missing ``out`` is not
    created yet; the probe then goes into its nearest existing parent.

    Raises:
        HearGuraError: ``out`` is an existing file, or a folder (or its parent) cannot be written.
    """
    existing = out
    while not existing.exists() and existing != existing.parent and not existing.is_symlink():
        existing = existing.parent
    if not existing.is_dir():
        what = ("an existing file" if out.is_file() else "not a folder") if existing == out else \
            f"under {existing}, which is not a folder"
        raise HearGuraError(f"--out {out} is {what}; give a folder (created if missing) for the .npy outputs")
    label = f"--out {out}" if existing == out else f"--out {out} cannot be created: its parent {existing}"
    if not os.access(existing, os.W_OK | os.X_OK):
        raise HearGuraError(f"{label} is not writable (read-only); choose a folder you can write to")
    try:
        handle, probe = tempfile.mkstemp(prefix=".hear-gura-probe-", suffix=".tmp", dir=existing)
    except OSError as err:
        raise HearGuraError(f"{label} is not writable ({err.strerror}); {_write_fix(err)}") from None
    try:
        with os.fdopen(handle, "wb") as stream:
            stream.write(bytes(4096))
    except OSError as err:
        raise HearGuraError(f"{label} cannot take new files ({err.strerror}); {_write_fix(err)}") from None
    finally:
        Path(probe).unlink(missing_ok=True)


def save_clip_outputs(out: Path, stem: str, arrays: "Dict[str, object]") -> None:
    """Write ``OUT/STEM.KIND.npy`` for each array, atomically; all of them, or none on a failed write.

    Raises:
        HearGuraError: a write failed (full disk, ...): the clip's outputs are
            removed, so no clip is left with some of its files from this run
            and some from an earlier one.
    """
    from hear_gura.audio_io import save_npy

    paths = {kind: out / f"{stem}.{kind}.npy" for kind in arrays}
    for kind, array in arrays.items():
        try:
            save_npy(paths[kind], array)
        except OSError as err:
            for path in paths.values():
                path.unlink(missing_ok=True)
            raise HearGuraError(
                f"cannot write {paths[kind]} ({err.strerror or err}); {_write_fix(err)}. Nothing is half-written: "
                f"the outputs of {stem} were removed, those of files already done are complete; rerun to finish"
            ) from None


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="hear-gura", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("list", help="table of the named ensembles")
    p.add_argument("--names", action="store_true", help="print module names only, one per line")
    p.set_defaults(func=cmd_list)

    p = sub.add_parser("kinds", help="table of the member kinds (built in and plug-ins) and their parameters")
    p.set_defaults(func=cmd_kinds)

    p = sub.add_parser("fixtures", help="write tiny RANDOM checkpoints for every checkpoint id, and a manifest")
    p.add_argument("dir", help="output folder (DIR/checkpoints.json is the manifest)")
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=cmd_fixtures)

    p = sub.add_parser("embed", help="embed wav files: .npy embeddings, timestamps and scene vectors")
    p.add_argument("ensemble", help="ensemble name (hear-gura list --names)")
    p.add_argument("files", nargs="+", help="16 kHz wav files")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--model", help="checkpoint manifest (JSON)")
    p.add_argument("--options", help="JSON object of load_model options, e.g. '{\"fusion\": \"avg\"}'")
    p.add_argument("--device", default="cpu", help="torch device (default cpu)")
    p.add_argument("--resample", action="store_true", help="resample files that are not at 16 kHz")
    p.add_argument("--batch-size", type=int, default=8, help="files per zero-padded batch (default 8)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.add_argument("--feature-cache", metavar="DIR",
                   help="keep every member's features per clip in DIR and reuse them (hear-gura cache info DIR)")
    p.set_defaults(func=cmd_embed)

    p = sub.add_parser("tasks", help="HEAR-format tasks from offline sound sources")
    tasks = p.add_subparsers(dest="tasks_command", required=True)
    p = tasks.add_parser("build", help="write HEAR 2021-format task folders (deterministic for a seed)")
    p.add_argument("out", help="output folder (one sub-folder per task)")
    p.add_argument("--size", choices=("ci", "full"), default="ci", help="ci: minutes to evaluate; full: the benchmark")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--only", help="comma-separated task names (default: all)")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.set_defaults(func=cmd_tasks_build)

    from hear_gura.analysis.cli import register_layers_command
    from hear_gura.feature_cache import register_cache_commands
    from hear_gura.harness.cli import register as register_evaluate

    register_evaluate(sub)
    register_layers_command(sub)
    register_cache_commands(sub)
    return parser


def main(argv: Optional[Sequence[str]] = None) -> None:
    """Entry point of the ``hear-gura`` console script."""
    args = build_parser().parse_args(argv)
    try:
        args.func(args)
    except HearGuraError as err:
        sys.exit(f"hear-gura: error: {err}")


if __name__ == "__main__":
    main()
