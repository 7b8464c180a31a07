"""Tiny synthetic HEAR 2021 task directories for tests (seconds to write, seconds to evaluate).

``write_scene_task(root)``: 2-class scene task (harmonic tone vs. noise), 1 s
clips, 3-fold ``new_split_kfold`` (so heareval writes ``aggregated_scores``).
``write_event_task(root)``: tone-burst onsets in 1.5 s clips of faint noise,
``trainvaltest`` (so heareval writes a single ``test`` entry), scored like
DCASE 2016 (onset F-measure, 200 ms collar). Deterministic for a given seed.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Dict, List

import numpy as np
import soundfile as sf

SR = 16000
#: Folder names of the two default tasks (the ``tasks_dir`` fixture in conftest.py writes both).
SCENE, EVENT = "tiny_tones-v1-full", "tiny_onsets-v1-full"


def _write_common(task: Path, metadata: dict, labels: List[str], splits: Dict[str, dict]) -> Path:
    task.mkdir(parents=True, exist_ok=True)
    (task / "task_metadata.json").write_text(json.dumps(metadata, indent=2))
    vocab = "".join(f"{i},{label}\n" for i, label in enumerate(sorted(labels)))
    (task / "labelvocabulary.csv").write_text("idx,label\n" + vocab)
    for split, content in splits.items():
        (task / f"{split}.json").write_text(json.dumps(content, indent=1))
    return task


def _save(path: Path, audio: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(str(path), np.clip(audio, -1, 1).astype(np.float32), SR, subtype="PCM_16")


def write_scene_task(root: "str | Path", name: str = "tiny_tones", clips: int = 12, folds: int = 3,
                     seed: int = 0) -> Path:
    """A scene task ``root/<name>-v1-full``: label ``tone`` (harmonic tone + faint noise) or ``noise``.

    Clips are 1 s, classes alternate, and folds are balanced (``clips`` must be a
    multiple of ``2 * folds``). Metrics: ``top1_acc`` (primary), ``mAP``.
    """
    rng = np.random.default_rng(seed)
    task = Path(root) / f"{name}-v1-full"
    fold_names = [f"fold{i:02d}" for i in range(folds)]
    splits: Dict[str, dict] = {f: {} for f in fold_names}
    t = np.arange(SR) / SR
    for i in range(clips):
        label = ("tone", "noise")[i % 2]
        if label == "tone":
            f0 = rng.uniform(150, 600)
            audio = sum(np.sin(2 * np.pi * k * f0 * t + rng.uniform(0, 6.3)) / k for k in range(1, 4)) * 0.3
            audio = audio + 0.01 * rng.standard_normal(SR)
        else:
            audio = 0.3 * rng.standard_normal(SR)
        fold = fold_names[(i // 2) % folds]
        file = f"{label}_{i:03d}.wav"
        _save(task / str(SR) / fold / file, audio)
        splits[fold][file] = [label]
    metadata = {
        "task_name": name, "version": "v1", "embedding_type": "scene", "prediction_type": "multiclass",
        "split_mode": "new_split_kfold", "nfolds": folds, "sample_duration": 1.0,
        "evaluation": ["top1_acc", "mAP"], "mode": "full", "splits": fold_names,
    }
    return _write_common(task, metadata, ["noise", "tone"], splits)


def write_event_task(root: "str | Path", name: str = "tiny_onsets", clips: int = 8, seed: int = 1) -> Path:
    """An event task ``root/<name>-v1-full``: 1.5 s clips, each with two 300 ms tone bursts (label ``tone``).

    Split half / quarter / quarter into train / valid / test. Metrics: ``event_onset_200ms_fms``
    (primary), ``segment_1s_er``; a small post-processing grid in ``evaluation_params``.
    """
    rng = np.random.default_rng(seed)
    task = Path(root) / f"{name}-v1-full"
    duration = 1.5
    n = int(duration * SR)
    splits: Dict[str, dict] = {"train": {}, "valid": {}, "test": {}}
    order = ["train"] * (clips // 2) + ["valid"] * (clips // 4) + ["test"] * (clips - clips // 2 - clips // 4)
    for i, split in enumerate(order):
        audio = 0.01 * rng.standard_normal(n)
        events = []
        for start_s in (rng.uniform(0.05, 0.35), rng.uniform(0.8, 1.1)):
            start = int(start_s * SR)
            length = int(0.3 * SR)
            t = np.arange(length) / SR
            f0 = rng.uniform(300, 900)
            envelope = np.minimum(1.0, np.minimum(t, t[::-1]) / 0.01)
            audio[start:start + length] += 0.5 * envelope * np.sin(2 * np.pi * f0 * t)
            events.append({"label": "tone", "start": round(start * 1000 / SR, 3),
                           "end": round((start + length) * 1000 / SR, 3)})
        file = f"clip_{i:03d}.wav"
        _save(task / str(SR) / split / file, audio)
        splits[split][file] = events
    metadata = {
        "task_name": name, "version": "v1", "embedding_type": "event", "prediction_type": "multilabel",
        "split_mode": "trainvaltest", "sample_duration": duration,
        "evaluation": ["event_onset_200ms_fms", "segment_1s_er"], "mode": "full",
        "splits": ["train", "valid", "test"],
        "evaluation_params": {"event_postprocessing_grid": {"median_filter_ms": [100], "min_duration": [50, 100]}},
    }
    return _write_common(task, metadata, ["tone"], splits)
