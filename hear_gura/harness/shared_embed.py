"""Embeddings of a study's variants on one task from ONE member pass, written in heareval's own files.

``python -m hear_gura.harness.shared_embed --tasks-dir D --task T --variants JSON [--model M] [--feature-cache DIR]``

``--variants`` is a JSON list of ``{"ensemble": NAME, "options": {...}, "embeddings_dir": DIR}``,
any ensembles, any options. For each variant this writes exactly what heareval's
embedding runner writes for ``hear_gura.<ensemble>`` with those options
(``<dir>/<module>[-options]/<task>/``: per-file ``.embedding.npy``, labels,
timestamps, the split memmaps, ``.done.embeddings``), through heareval's own
``task_embeddings``; only the numbers come from a :class:`~hear_gura.shared.StudyPass`,
which loads each distinct member once and runs each distinct member
computation once per batch. The first variant's run computes every variant per
batch and spools the others' arrays to disk (so memory holds one batch of
member features, whatever the number of variants); the other variants' runs
replay them in the same (unshuffled) batch order, checking each batch's audio
fingerprint. Given identical batches the arrays are bit-identical to a
per-variant run (tested). At the end it writes ``member-passes.json`` beside
the log: the member forward passes run, by member, and the feature cache's
hits and misses.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence

import numpy as np
import torch

from hear_gura.heareval_compat import install_import_hook


def heareval_folder_name(module: str, options: Dict[str, Any]) -> str:
    """The folder heareval's embedding runner names after a module and its options
    (with :mod:`hear_gura.heareval_compat`'s fix 4: long option slugs cut and hashed)."""
    from hear_gura.heareval_compat import option_slug

    suffix = "-" + "-".join(f"{option_slug(k)}={option_slug(v)}" for k, v in options.items()) if options else ""
    return module + suffix


class _Spool:
    """Per-variant queues of arrays on disk, filled by the first variant, drained by the others."""

    def __init__(self, root: Path, variants: int) -> None:
        self.root, self.written, self.read = root, [0] * variants, [0] * variants

    def put(self, variant: int, fingerprint: str, arrays: Sequence[np.ndarray]) -> None:
        path = self.root / f"{variant}-{self.written[variant]:07d}.npz"
        np.savez(path, fingerprint=np.array(fingerprint), *arrays)
        self.written[variant] += 1

    def take(self, variant: int, fingerprint: str) -> List[np.ndarray]:
        path = self.root / f"{variant}-{self.read[variant]:07d}.npz"
        if not path.exists():
            raise RuntimeError("shared embeddings: heareval asked for more batches than the first variant saw")
        with np.load(path) as data:
            if str(data["fingerprint"]) != fingerprint:
                raise RuntimeError("shared embeddings: heareval's batches differ between variants (order changed?)")
            arrays = [data[f"arr_{i}"] for i in range(len(data.files) - 1)]
        path.unlink()
        self.read[variant] += 1
        return arrays


def _fingerprint(audio: torch.Tensor) -> str:
    return hashlib.sha1(audio.detach().cpu().contiguous().numpy().tobytes()).hexdigest()


def study_task_embeddings(
    variants: Sequence[Dict[str, Any]], model_path: Optional[str], task_path: Path,
    feature_cache: Optional[str] = None, report: Optional[Path] = None,
) -> List[Path]:
    """Write each variant's heareval embedding folder for one task from one member pass; returns those folders.

    Args:
        variants: ``{"ensemble", "options", "embeddings_dir"}`` per variant.
        model_path: the checkpoint manifest (heareval's ``--model``), or None.
        task_path: the HEAR task folder.
        feature_cache: a :class:`~hear_gura.feature_cache.FeatureCache` folder, or None.
        report: where to write the member passes and cache counts (JSON), or None.
    """
    install_import_hook()
    from heareval.embeddings.task_embeddings import TORCH, Embedding, task_embeddings

    from hear_gura.manifest import Manifest
    from hear_gura.shared import StudyPass

    if not variants:
        raise ValueError("give at least one variant")
    cache = None
    if feature_cache:
        from hear_gura.feature_cache import FeatureCache

        cache = FeatureCache(feature_cache)
    study = StudyPass.of_variants([(v["ensemble"], v.get("options", {})) for v in variants],
                                  Manifest.load(model_path), cache)
    device = "cuda" if torch.cuda.is_available() else "cpu"  # where heareval's runner puts a model
    study.to(device)
    targets = []
    with tempfile.TemporaryDirectory(prefix="hear_gura_study_") as spool_dir:
        spool = _Spool(Path(spool_dir), len(variants))
        progress = _Progress(sum(1 for _ in task_path.glob("16000/*/*.wav")))

        class VariantModule:
            """Stands in for the HEAR module inside heareval's Embedding, for one variant."""

            def __init__(self, index: int, name: str) -> None:
                self.index, self.__name__ = index, name

            def get_scene_embeddings(self, audio: torch.Tensor, model: Any) -> torch.Tensor:
                return self._get(audio, scene=True)[0]

            def get_timestamp_embeddings(self, audio: torch.Tensor, model: Any):
                return tuple(self._get(audio, scene=False))

            def _get(self, audio: torch.Tensor, scene: bool) -> List[torch.Tensor]:
                fingerprint = _fingerprint(audio)
                if self.index > 0:
                    return [torch.from_numpy(a) for a in spool.take(self.index, fingerprint)]
                if scene:
                    outputs = [[s] for s in study.scene_embeddings(audio)]
                else:
                    outputs = [list(pair) for pair in study.timestamp_embeddings(audio)]
                progress.advance(audio.shape[0])
                for k, arrays in enumerate(outputs[1:], start=1):
                    spool.put(k, fingerprint, [a.detach().cpu().numpy() for a in arrays])
                return outputs[0]

        for index, variant in enumerate(variants):
            module = f"hear_gura.{variant['ensemble']}"
            embedding = Embedding.__new__(Embedding)  # heareval's Embedding, without loading a model again
            embedding.module, embedding.model = VariantModule(index, module), study
            embedding.type, embedding.device = TORCH, device
            options = dict(variant.get("options", {}))
            task_dir = Path(variant["embeddings_dir"]) / heareval_folder_name(module, options) / task_path.name
            if task_dir.exists():
                shutil.rmtree(task_dir)
            start = time.time()
            task_embeddings(embedding, task_path, task_dir)
            (task_dir / "profile.embeddings.json").write_text(json.dumps(
                {"time_elapsed": time.time() - start, "gpu_max_mem": None, "gpu_device_name": None,
                 "study_member_pass": len(variants)}, indent=4))
            (task_dir / ".done.embeddings").touch()
            targets.append(task_dir)
    summary = {"variants": len(variants), "members": len(study.networks),
               "member_passes": dict(study.counts), "member_passes_total": sum(study.counts.values())}
    if cache is not None:
        stats = cache.stats
        summary["feature_cache"] = {"hits": stats.hits, "misses": stats.misses, "corrupt": stats.corrupt,
                                    "written_bytes": stats.written_bytes, "summary": cache.summary()}
        print(cache.summary())
    if report is not None:
        report.write_text(json.dumps(summary, indent=2) + "\n")
    print(f"{len(variants)} variant(s) from {len(study.networks)} distinct member(s): "
          f"{summary['member_passes_total']} member forward pass(es)")
    return targets


class _Progress:
    """Prints ``hear_gura progress: N/TOTAL clips (P %), elapsed, about T left`` at most every ``every`` s
    (the harness shows such lines on the console: :data:`hear_gura.harness.runner.PROGRESS_PREFIX`)."""

    def __init__(self, total: int, every: float = 30.0) -> None:
        self.total, self.every, self.done = max(total, 1), every, 0
        self.start = self.said = time.perf_counter()

    def advance(self, clips: int) -> None:
        from hear_gura.harness.runner import PROGRESS_PREFIX

        self.done += clips
        now = time.perf_counter()
        if now - self.said < self.every and self.done < self.total:
            return
        self.said = now
        elapsed = now - self.start
        left = elapsed * (self.total - self.done) / self.done if self.done < self.total else 0.0
        print(f"{PROGRESS_PREFIX}member pass {self.done:,}/{self.total:,} clips ({100 * self.done / self.total:.0f} %), "
              f"{_minutes(elapsed)}, about {_minutes(left)} left", flush=True)


def _minutes(seconds: float) -> str:
    seconds = round(seconds)
    return f"{seconds // 60} min {seconds % 60:02d} s" if seconds >= 60 else f"{seconds} s"


def main(argv: Optional[Sequence[str]] = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default=None)
    parser.add_argument("--tasks-dir", required=True)
    parser.add_argument("--task", required=True)
    parser.add_argument("--variants", required=True,
                        help='JSON list of {"ensemble": NAME, "options": {...}, "embeddings_dir": DIR}')
    parser.add_argument("--feature-cache", default=None, help="a feature cache folder (hear-gura cache info DIR)")
    parser.add_argument("--report", default=None, help="write member passes and cache counts here (JSON)")
    args = parser.parse_args(argv)
    folders = study_task_embeddings(json.loads(args.variants), args.model, Path(args.tasks_dir) / args.task,
                                    args.feature_cache, Path(args.report) if args.report else None)
    for folder in folders:
        print(f"wrote {folder}")


if __name__ == "__main__":
    main()
