"""Check task folders for what heareval needs, before ``hear-gura evaluate`` embeds anything.

heareval 2021.1.3 reads a task folder lazily: a label missing from
``labelvocabulary.csv`` surfaces as a ``KeyError`` after embedding and probe
training, a missing or corrupt wav as a libsndfile "System error" traceback, a
clip at another sample rate as a bare ``AssertionError``. :func:`preflight`
finds all of these first and raises one :class:`HearGuraError` listing every
problem of every task, naming the files.

It checks only what heareval (and hear_gura's 16 kHz models) need, so official
HEAR 2021 task folders pass unchanged; :func:`hear_gura.tasks.check.check_task_dir`
is the stricter check of what ``hear-gura tasks build`` guarantees. Checked:

- ``task_metadata.json``: the fields heareval reads (``task_name``,
  ``embedding_type``, ``prediction_type``, ``split_mode``, ``splits``,
  ``sample_duration``, ``evaluation``, the optional ``evaluation_params``);
- ``labelvocabulary.csv``: columns ``idx`` and ``label``, indices 0..n-1,
  labels unique, read with pandas as heareval reads it;
- ``{split}.json`` for every split: file -> labels (scene) or events (event);
  every label in the vocabulary; multiclass scene clips have one label;
- every wav named in a split: exists under ``16000/<split>/``, readable,
  non-empty, mono, 16000 Hz, and (fixed ``sample_duration``) as long as the
  task's other clips, since heareval batches clips.

Cost: one header read (``soundfile.SoundFile``) per clip, no decoding; libsndfile
reports a truncated wav's real length, which the length check catches.
"""

from __future__ import annotations

import json
import math
import os
import time
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

import soundfile as sf

from hear_gura.errors import HearGuraError
from hear_gura.harness.scores import SAMPLE_RATE_FOLDER, TaskInfo

#: heareval 2021.1.3's ``available_scores``, by the task type they score (as in ``hear_gura.tasks.check``,
#: not imported from there: ``hear_gura.tasks`` imports scipy.signal, seconds of start-up).
SCENE_METRICS = frozenset({"top1_acc", "mAP", "d_prime", "aucroc", "pitch_acc", "chroma_acc"})
EVENT_METRICS = frozenset({"event_onset_200ms_fms", "event_onset_50ms_fms", "event_onset_offset_50ms_20perc_fms",
                           "segment_1s_er"})
SAMPLE_RATE = int(SAMPLE_RATE_FOLDER)
#: problems listed per task in the error; the rest are counted.
MAX_LISTED = 10
#: clips above which :func:`preflight` says what it is doing before it does it.
PROGRESS_CLIPS = 2000
_CHOICES = {
    "embedding_type": ("scene", "event"),
    "prediction_type": ("multiclass", "multilabel"),
    "split_mode": ("trainvaltest", "new_split_kfold", "presplit_kfold"),
}


def preflight(tasks_dir: "str | Path", tasks: Sequence[TaskInfo], echo: Callable[[str], None] = print) -> None:
    """Check every task of an evaluation before any model is loaded; raise one error listing all problems.

    Also notes (``NOTE: ...`` through ``echo``) the sub-folders of ``tasks_dir``
    that hold no ``task_metadata.json`` and are therefore not evaluated; hidden
    dot-folders (unfinished builds) are passed over silently.

    Args:
        tasks_dir: the ``--tasks-dir`` folder.
        tasks: the tasks to evaluate (from :func:`hear_gura.harness.scores.discover_tasks`).
        echo: where the NOTE and progress lines go.
    Raises:
        HearGuraError: some task cannot be evaluated; the message lists up to
            :data:`MAX_LISTED` problems per task (and counts the rest), naming files and labels.
    """
    others = folders_without_metadata(tasks_dir)
    if others:
        echo(f"NOTE: skipped {len(others)} folder(s) of {tasks_dir} without task_metadata.json (not HEAR tasks): "
             + ", ".join(others))
    start = time.perf_counter()
    clips = _count_clips(tasks)
    if clips >= PROGRESS_CLIPS:
        echo(f"checking {len(tasks)} task(s), {clips:,} clip(s), before any embedding ...")
    bad = [(task, found) for task in tasks if (found := task_problems(task.path))]
    if clips >= PROGRESS_CLIPS:
        echo(f"checked {len(tasks)} task(s) in {time.perf_counter() - start:.1f} s")
    if bad:
        raise HearGuraError(format_problems(bad))


def folders_without_metadata(tasks_dir: "str | Path") -> List[str]:
    """Names of the sub-folders of ``tasks_dir`` without ``task_metadata.json``, sorted (dot-folders left out)."""
    root = Path(tasks_dir).expanduser()
    return sorted(p.name for p in root.iterdir()
                  if p.is_dir() and not p.name.startswith(".") and not (p / "task_metadata.json").is_file())


def format_problems(bad: Sequence[Tuple[TaskInfo, List[str]]]) -> str:
    """The error message: per task its path, its problem count and the first :data:`MAX_LISTED` problems."""
    lines = [f"{len(bad)} task folder(s) cannot be evaluated (checked before any embedding); fix or rebuild them, "
             "or leave them out with --tasks:"]
    for task, found in bad:
        lines.append(f"{task.folder} ({task.path}): {len(found)} problem(s)")
        lines.extend(f"  - {problem}" for problem in found[:MAX_LISTED])
        if len(found) > MAX_LISTED:
            lines.append(f"  ... and {len(found) - MAX_LISTED} more")
    return "\n".join(lines)


def task_problems(path: Path) -> List[str]:
    """Everything in task folder ``path`` that heareval would fail on, in reading order; [] when usable.

    Checks as much as the folder allows: an unreadable vocabulary skips the
    label check, an unusable ``splits`` list skips the split files and audio.
    """
    problems: List[str] = []
    meta = _metadata(path, problems)
    vocabulary = _vocabulary(path, problems)
    splits = meta.get("splits")
    if not (isinstance(splits, list) and splits and all(isinstance(s, str) for s in splits)):
        return problems
    labels = {split: _split_labels(path, split, meta, problems) for split in splits}
    _check_labels(meta, vocabulary, labels, problems)
    _check_audio(path, meta, labels, problems)
    return problems


def _count_clips(tasks: Sequence[TaskInfo]) -> int:
    """Files under the tasks' ``16000/<split>/`` folders (one ``scandir`` per split)."""
    total = 0
    for task in tasks:
        audio = task.path / SAMPLE_RATE_FOLDER
        for split in (p for p in audio.iterdir() if p.is_dir()):
            total += sum(1 for _ in os.scandir(split))
    return total


def _metadata(path: Path, problems: List[str]) -> Dict[str, Any]:
    """``task_metadata.json``, after checking the fields heareval reads (problems appended)."""
    try:
        meta = json.loads((path / "task_metadata.json").read_text(encoding="utf-8"))
    except (OSError, ValueError) as err:
        problems.append(f"task_metadata.json: unreadable ({err})")
        return {}
    if not isinstance(meta, dict):
        problems.append("task_metadata.json: must hold a JSON object")
        return {}

    def bad(key: str, expected: str) -> None:
        found = "missing" if key not in meta else f"{meta[key]!r}"
        problems.append(f"task_metadata.json: {key} is {found}; expected {expected}")

    if not isinstance(meta.get("task_name"), str):
        bad("task_name", "a string")
    for key, valid in _CHOICES.items():
        if meta.get(key) not in valid:
            bad(key, "one of " + ", ".join(valid))
    duration = meta.get("sample_duration", "missing")
    if duration is not None and (isinstance(duration, bool) or not isinstance(duration, (int, float))
                                 or not duration > 0):
        bad("sample_duration", "positive seconds, or null for clips of any length")
    splits = meta.get("splits")
    if not (isinstance(splits, list) and splits and all(isinstance(s, str) for s in splits)):
        bad("splits", "a non-empty list of split names")
    elif len(set(splits)) != len(splits):
        bad("splits", "split names without repeats")
    elif meta.get("split_mode") == "trainvaltest" and not {"train", "valid", "test"} <= set(splits):
        bad("splits", "train, valid and test (split_mode trainvaltest)")
    elif meta.get("split_mode") in ("new_split_kfold", "presplit_kfold") and len(splits) < 3:
        bad("splits", "at least 3 folds (k-fold: one tests, the next validates, the rest train)")
    metrics = meta.get("evaluation")
    allowed = EVENT_METRICS if meta.get("embedding_type") == "event" else SCENE_METRICS
    if not (isinstance(metrics, list) and metrics and all(m in allowed for m in metrics)):
        bad("evaluation", f"a non-empty list of {meta.get('embedding_type', 'scene')}-task metrics "
                          f"from {', '.join(sorted(allowed))}")
    params = meta.get("evaluation_params", {})
    grid = params.get("event_postprocessing_grid") if isinstance(params, dict) else None
    if not isinstance(params, dict):
        bad("evaluation_params", "an object")
    elif grid is not None and not (isinstance(grid, dict) and grid and all(
            isinstance(v, list) and v and all(isinstance(x, (int, float)) for x in v) for v in grid.values())):
        problems.append("task_metadata.json: evaluation_params.event_postprocessing_grid must map names "
                        "(median_filter_ms, min_duration) to non-empty lists of numbers")
    elif grid and meta.get("use_scoring_for_early_stopping", True) is False and math.prod(map(len, grid.values())) != 1:
        problems.append("task_metadata.json: with use_scoring_for_early_stopping false, heareval needs exactly "
                        "one event_postprocessing_grid point")
    return meta


def _vocabulary(path: Path, problems: List[str]) -> Optional[List[str]]:
    """The labels of ``labelvocabulary.csv`` as heareval sees them (pandas, then ``str``); None if unusable."""
    import pandas as pd  # heareval's own dependency; read the file the way it does

    file = path / "labelvocabulary.csv"
    try:
        table = pd.read_csv(file)
    except (OSError, ValueError) as err:  # missing, empty, malformed
        problems.append(f"labelvocabulary.csv: unreadable ({str(err).splitlines()[0]}); expected a CSV file "
                        "with the header 'idx,label' and one row per label")
        return None
    if not {"idx", "label"} <= set(table.columns) or table.empty:
        problems.append(f"labelvocabulary.csv: columns {list(map(str, table.columns))} and {len(table)} row(s); "
                        "expected the header 'idx,label' and one row per label")
        return None
    labels = table["label"].astype(str).tolist()
    idx = pd.to_numeric(table["idx"], errors="coerce")
    if idx.isna().any() or sorted(idx.tolist()) != list(range(len(table))):
        problems.append(f"labelvocabulary.csv: idx must number the {len(table)} label(s) 0..{len(table) - 1}")
    repeated = sorted(label for label, n in Counter(labels).items() if n > 1)
    if repeated:
        problems.append(f"labelvocabulary.csv: label(s) listed more than once: {_some(repeated)}")
    return labels


def _split_labels(path: Path, split: str, meta: Dict[str, Any], problems: List[str]) -> Dict[str, list]:
    """``{split}.json`` (file name -> list of labels or events) after checking its shape; {} if unusable."""
    name = f"{split}.json"
    try:
        data = json.loads((path / name).read_text(encoding="utf-8"))
    except (OSError, ValueError) as err:
        problems.append(f"{name}: unreadable ({err}); every split in task_metadata.json needs one")
        return {}
    if not isinstance(data, dict) or not data:
        problems.append(f"{name}: expected a JSON object mapping each wav file name to its labels; found "
                        + ("an empty object" if isinstance(data, dict) else type(data).__name__))
        return {}
    event = meta.get("embedding_type") == "event"
    valid = _is_event if event else _is_label
    malformed = {f: v for f, v in data.items() if not isinstance(v, list) or not all(map(valid, v))}
    if malformed:
        expected = ('a list of events {"label": ..., "start": ms, "end": ms}' if event
                    else "a list of labels")
        problems.append(f"{name}: {len(malformed)} clip(s) without {expected}, e.g. {_example(malformed)}")
    if meta.get("prediction_type") == "multiclass" and not event:
        counts = {f: v for f, v in data.items() if isinstance(v, list) and len(v) != 1}
        if counts:
            problems.append(f"{name}: {len(counts)} clip(s) of a multiclass task without exactly one label, "
                            f"e.g. {_example(counts)}")
    return {f: [] if f in malformed else v for f, v in data.items()}  # malformed clips: audio still checked


def _is_label(label: Any) -> bool:
    return isinstance(label, (str, int, float)) and not isinstance(label, bool)


def _is_event(event: Any) -> bool:
    return (isinstance(event, dict) and {"label", "start", "end"} <= set(event) and all(
        isinstance(event[k], (int, float)) and not isinstance(event[k], bool) and math.isfinite(event[k])
        for k in ("start", "end")))


def _check_labels(meta: Dict[str, Any], vocabulary: Optional[List[str]], labels: Dict[str, Dict[str, list]],
                  problems: List[str]) -> None:
    """Every label of every split in the vocabulary (one problem per unknown label, with a clip using it)."""
    if vocabulary is None:
        return
    known = set(vocabulary)
    event = meta.get("embedding_type") == "event"
    users: Dict[str, List[str]] = defaultdict(list)
    for split, data in labels.items():
        for file, values in data.items():
            for value in values:
                label = str(value["label"] if event else value)
                if label not in known:
                    users[label].append(f"{split}.json: {file}")
    for label, where in users.items():
        problems.append(f"label {label!r} is not in labelvocabulary.csv ({_some(vocabulary)}): "
                        f"{len(where)} clip(s), e.g. {where[0]}")
    if event:  # heareval's scorer merges the splits' events by file name
        seen: Dict[str, str] = {}
        for split, data in labels.items():
            for file in data:
                if file in seen:
                    problems.append(f"{file} is in both {seen[file]}.json and {split}.json; "
                                    "an event task's file names must be unique")
                seen.setdefault(file, split)


def _check_audio(path: Path, meta: Dict[str, Any], labels: Dict[str, Dict[str, list]], problems: List[str]) -> None:
    """Every wav named in a split: exists, readable, non-empty, mono, 16 kHz; equally long for a fixed duration."""
    lengths: Dict[str, int] = {}
    for split, data in labels.items():
        folder = path / SAMPLE_RATE_FOLDER / split
        if not folder.is_dir():
            if data:
                problems.append(f"{SAMPLE_RATE_FOLDER}/{split}/ is missing ({split}.json names {len(data)} wav(s))")
            continue
        present = set(os.listdir(folder))
        for file in data:
            where = f"{SAMPLE_RATE_FOLDER}/{split}/{file}"
            if file not in present:
                problems.append(f"{where}: missing (named in {split}.json)")
                continue
            try:  # the header only (sf.info builds format descriptions too: 1.7x slower)
                with sf.SoundFile(str(folder / file)) as audio:
                    rate, channels, frames = audio.samplerate, audio.channels, audio.frames
            except (RuntimeError, OSError) as err:  # sf.LibsndfileError is a RuntimeError
                problems.append(f"{where}: unreadable audio ({str(err).replace(str(folder / file), file)})")
                continue
            found = []
            if rate != SAMPLE_RATE:
                found.append(f"{rate} Hz (resample it to {SAMPLE_RATE} Hz)")
            if channels != 1:
                found.append(f"{channels} channels (mix it down to mono)")
            if frames == 0:
                found.append("no samples")
            if found:
                problems.append(f"{where}: {', '.join(found)}; expected mono {SAMPLE_RATE} Hz audio")
            else:
                lengths[where] = frames
    if meta.get("sample_duration") is not None and lengths:
        common, count = Counter(lengths.values()).most_common(1)[0]
        for where, frames in lengths.items():
            if frames != common:
                problems.append(f"{where}: {frames} samples, while {count} other clip(s) have {common} "
                                f"(sample_duration {meta['sample_duration']} s; heareval batches clips, "
                                "so they must be equally long: truncated?)")


def _some(items: Sequence[str], limit: int = 8) -> str:
    shown = ", ".join(repr(i) for i in items[:limit])
    return shown + (f", ... ({len(items)} in all)" if len(items) > limit else "")


def _example(mapping: Dict[str, Any]) -> str:
    file, value = next(iter(mapping.items()))
    text = json.dumps(value)
    return f"{file}: {text if len(text) <= 80 else text[:77] + '...'}"
