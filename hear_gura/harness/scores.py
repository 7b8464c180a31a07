"""HEAR tasks as the harness sees them, and the scores heareval's prediction runner writes.

``test.predicted-scores.json`` has two layouts:

- ``trainvaltest`` tasks: one entry per test split, ``{"test": {"test_score": ...,
  "test_<metric>": ..., "test_<metric>_<subscore>": ...}, "hparams": ..., ...}``;
- k-fold tasks: one entry per fold (``"fold00"``, ...) plus
  ``"aggregated_scores": {"test_<metric>_mean": ..., "test_<metric>_std": ...}``;
  the leaderboard reports the mean over folds.

:func:`read_scores` reads both into one :class:`TaskScores`.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence

from hear_gura.errors import HearGuraError

SAMPLE_RATE_FOLDER = "16000"
#: heareval metrics where lower is better (the rest are maximised).
LOWER_IS_BETTER = frozenset({"segment_1s_er"})


@dataclass(frozen=True)
class TaskInfo:
    """A HEAR task directory.

    Attributes:
        path: the task folder (``tasks/<name>-<version>-<mode>``).
        folder: its name, the column name in the reports.
        task_name: ``task_metadata.json``'s ``task_name``.
        metrics: the ``evaluation`` list; the first is the primary metric.
        embedding_type: ``scene`` or ``event``.
        split_mode: ``trainvaltest``, ``new_split_kfold`` or ``presplit_kfold``.
    """

    path: Path
    folder: str
    task_name: str
    metrics: List[str]
    embedding_type: str
    split_mode: str

    @property
    def primary_metric(self) -> str:
        return self.metrics[0]

    @cached_property
    def fingerprint(self) -> str:
        """What the task holds, hashed: see :func:`task_fingerprint` (computed once per TaskInfo)."""
        return task_fingerprint(self.path)

    @classmethod
    def load(cls, path: Path) -> "TaskInfo":
        """Read ``path/task_metadata.json``.

        Raises:
            HearGuraError: missing or malformed metadata, or no 16 kHz audio.
        """
        meta_path = path / "task_metadata.json"
        try:
            meta = json.loads(meta_path.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as err:
            raise HearGuraError(f"{meta_path}: cannot read the task metadata ({err})") from None
        missing = [k for k in ("task_name", "embedding_type", "evaluation", "split_mode") if k not in meta]
        if missing or not meta.get("evaluation"):
            raise HearGuraError(f"{meta_path} lacks {', '.join(missing) or 'evaluation metrics'}; not a HEAR task")
        if not (path / SAMPLE_RATE_FOLDER).is_dir():
            raise HearGuraError(
                f"task {path.name} has no {SAMPLE_RATE_FOLDER} Hz audio ({path / SAMPLE_RATE_FOLDER} is missing); "
                "hear_gura models take 16 kHz: preprocess the task at 16000 Hz"
            )
        return cls(path.resolve(), path.name, str(meta["task_name"]), [str(m) for m in meta["evaluation"]],
                   str(meta["embedding_type"]), str(meta["split_mode"]))


def task_fingerprint(path: Path) -> str:
    """A hash of a task's content, so a task rebuilt in place is a different task.

    :func:`hear_gura.identity.task_digest`: the top-level ``.json`` / ``.csv``
    files (metadata, label vocabulary, splits) and the bytes of every clip
    under ``16000/``; each file is hashed once and remembered by path, size and
    times. A rebuild with other clips (even of the same sizes) or labels changes
    it; a byte-identical rebuild and a copied folder do not.
    """
    from hear_gura.identity import task_digest

    return task_digest(path, SAMPLE_RATE_FOLDER)


def discover_tasks(tasks_dir: "str | Path", only: Optional[Sequence[str]] = None) -> List[TaskInfo]:
    """The task folders under ``tasks_dir`` (those holding ``task_metadata.json``), sorted by name.

    Args:
        tasks_dir: a folder of HEAR task folders (official ones work unchanged).
        only: keep these tasks; each item is a folder name or a ``task_name``.
    Raises:
        HearGuraError: no such folder, no task in it, or an unknown name in ``only``.
    """
    root = Path(tasks_dir).expanduser()
    if not root.is_dir():
        raise HearGuraError(f"--tasks-dir {root} is not a folder of HEAR tasks")
    folders = sorted(  # dot-folders are unfinished builds (hear-gura tasks build writes .NAME.tmp-PID)
        p for p in root.iterdir() if not p.name.startswith(".") and (p / "task_metadata.json").is_file()
    )
    if not folders:
        raise HearGuraError(f"no HEAR task in {root} (expected sub-folders holding task_metadata.json)")
    tasks = [TaskInfo.load(p) for p in folders]
    if only:
        wanted = [w.strip() for w in only if w.strip()]
        unknown = [w for w in wanted if not any(w in (t.folder, t.task_name) for t in tasks)]
        if unknown:
            raise HearGuraError(
                f"--tasks names unknown task(s) {', '.join(unknown)}; in {root}: {', '.join(t.folder for t in tasks)}"
            )
        tasks = [t for t in tasks if t.folder in wanted or t.task_name in wanted]
    return tasks


@dataclass(frozen=True)
class TaskScores:
    """Test scores of one task.

    Attributes:
        metric: the primary metric's name.
        score: its value (mean over folds for k-fold tasks).
        score_std: standard deviation over folds (None for one test split).
        secondary: every other test metric and sub-score (k-fold: means).
        folds: number of test splits scored.
    """

    metric: str
    score: float
    score_std: Optional[float] = None
    secondary: Dict[str, float] = field(default_factory=dict)
    folds: int = 1


def _number(value: Any) -> Optional[float]:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number


def read_scores(path: "str | Path", metrics: Sequence[str]) -> TaskScores:
    """Read ``test.predicted-scores.json`` in either layout (see the module docstring).

    Args:
        path: the file.
        metrics: the task's ``evaluation`` list (the first is primary).
    Raises:
        HearGuraError: unreadable, or the primary metric is absent.
    """
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as err:
        raise HearGuraError(f"{path}: cannot read heareval's scores ({err})") from None
    primary = metrics[0]
    if isinstance(data.get("aggregated_scores"), dict):
        values, suffix = data["aggregated_scores"], "_mean"
        folds = sum(1 for v in data.values() if isinstance(v, dict) and "test_score" in v)
    else:
        splits = [v for v in data.values() if isinstance(v, dict) and "test_score" in v]
        if len(splits) != 1:
            raise HearGuraError(f"{path}: expected one test split or aggregated_scores, found {len(splits)} splits")
        values, suffix, folds = splits[0], "", 1
    key = f"test_{primary}{suffix}"
    score = _number(values.get(key, values.get(f"test_score{suffix}")))
    if score is None:
        raise HearGuraError(f"{path}: no {key} among {sorted(values)}")
    std = _number(values.get(f"test_{primary}_std")) if suffix else None
    secondary = {}
    for name, value in values.items():
        if not name.startswith("test_") or not name.endswith(suffix) or name in (key, f"test_score{suffix}"):
            continue
        number = _number(value)
        if number is not None and name != f"test_loss{suffix}":
            secondary[name[len("test_"):len(name) - len(suffix)]] = number
    return TaskScores(primary, score, std if std is None or not math.isnan(std) else None, secondary, folds)
