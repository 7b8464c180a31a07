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
from hear_gura.probe_names import LOWER_IS_BETTER  # noqa: F401  (heareval's error rates, used by importers)

SAMPLE_RATE_FOLDER = "16000"


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
    data = _read_scores_file(path, "heareval's scores")
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


def _read_scores_file(path: Path, what: str) -> Any:
    """A scores file's JSON content; HearGuraError naming ``what`` when it cannot be read."""
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as err:
        raise HearGuraError(f"{path}: cannot read {what} ({err})") from None


def read_fast_scores(path: "str | Path", metrics: Sequence[str]) -> TaskScores:
    """Read a fast-probe run (``fastprobe.json``, :func:`hear_gura.analysis.fast_probe.score_embedding_folder`).

    The linear probe's primary metric is the score; its other metrics, and the
    kNN probe's (scene tasks, as ``knn_<metric>``), are secondary.

    Raises:
        HearGuraError: unreadable, or the primary metric is absent.
    """
    path = Path(path)
    data = _read_scores_file(path, "the fast probe's scores")
    primary = metrics[0]
    test = data.get("test") if isinstance(data, dict) else None
    score = _number(test.get(primary)) if isinstance(test, dict) else None
    if score is None:
        raise HearGuraError(f"{path}: no test score of {primary} (keys: {sorted(test or {})})")
    std = _number((data.get("test_std") or {}).get(primary))
    secondary = {m: v for m, value in test.items() if m != primary and (v := _number(value)) is not None}
    knn = (data.get("knn") or {}).get("test") or {}
    secondary.update({f"knn_{m}": v for m, value in knn.items() if (v := _number(value)) is not None})
    folds = len(data.get("per_fold") or {}) or 1
    return TaskScores(primary, score, std if std is None or not math.isnan(std) else None, secondary, folds)


def _mean(values: Sequence[float]) -> float:
    """The mean (NaN if any value is NaN: an undefined run is never silently dropped)."""
    return math.fsum(values) / len(values)


def sample_std(values: Sequence[float]) -> Optional[float]:
    """The sample standard deviation (n - 1); None for fewer than two values; NaN if any is NaN."""
    if len(values) < 2:
        return None
    mean = _mean(values)
    return math.sqrt(math.fsum((v - mean) ** 2 for v in values) / (len(values) - 1))


def combine_runs(runs: Sequence[Dict[str, Any]]) -> Dict[str, Any]:
    """A cell's scores from its probe runs (one per seed): means, and the spread over seeds.

    Args:
        runs: run entries (``seed``, ``metric``, ``score``, ``score_std``, ``folds``,
            ``secondary``, ``per_class``), in seed order; at least one.
    Returns:
        ``{"metric", "score" (mean over runs), "score_std" (std over folds, mean over runs; None for one
        test split), "folds", "secondary" (means), "seeds", "seed_scores", "seed_std" (sample std over
        runs; None for one run), "per_class" (None when no run has per-class scores)}``.
    """
    if not runs:
        raise HearGuraError("no probe run to combine")
    scores = [float(r["score"]) for r in runs]
    fold_stds = [float(r["score_std"]) for r in runs if r.get("score_std") is not None]
    names = [n for n in runs[0].get("secondary", {}) if all(n in r.get("secondary", {}) for r in runs)]
    return {
        "metric": runs[0]["metric"],
        "score": _mean(scores),
        "score_std": _mean(fold_stds) if fold_stds else None,
        "folds": runs[0].get("folds", 1),
        "secondary": {n: _mean([float(r["secondary"][n]) for r in runs]) for n in names},
        "seeds": [r["seed"] for r in runs],
        "seed_scores": scores,
        "seed_std": sample_std(scores),
        "per_class": combine_per_class([r.get("per_class") for r in runs]),
    }


def combine_per_class(per_run: Sequence[Any]) -> Optional[Dict[str, Any]]:
    """Per-class scores over runs: ``{"metric", "measure", "classes": {label: {"score", "std", "support"}}}``.

    ``score`` is the mean over the runs that have per-class scores, ``std`` their
    sample standard deviation (None for one run). None when no run has them
    (e.g. the fast probe, or an error computing them: see the run's ``per_class``).
    """
    usable = [p for p in per_run if isinstance(p, dict) and isinstance(p.get("classes"), dict)]
    if not usable:
        return None
    classes = {}
    for label, first in usable[0]["classes"].items():
        values = [float(p["classes"][label]["score"]) for p in usable if label in p["classes"]]
        classes[label] = {"score": _mean(values), "std": sample_std(values), "support": first.get("support")}
    return {"metric": usable[0].get("metric"), "measure": usable[0].get("measure"), "runs": len(usable),
            "classes": classes}
