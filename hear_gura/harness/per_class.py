"""Per-class test scores from the test predictions heareval's prediction runner writes.

heareval writes one ``<test split>.predictions.pkl`` per test split (``test``,
or ``fold00`` ... for k-fold tasks), holding torch tensors ``target`` and
``prediction`` of shape ``(examples, classes)`` (event tasks: frames), and for
event tasks also ``target_events`` / ``predicted_events`` (``{file: [{"label",
"start", "end"} ms]}``, after the post-processing chosen on validation). It
scores them only overall; this module scores the task's primary metric per
class, from the same arrays, with the same library calls:

- ``top1_acc`` / ``pitch_acc``: the share of a class's test clips predicted as
  that class (its recall; their mean over classes is the balanced accuracy);
- ``chroma_acc``: the same, up to octave errors;
- ``mAP``: the class's average precision (heareval's mAP is their mean);
- ``aucroc``, ``d_prime``: the class's ROC AUC, and ``sqrt(2) * Phi^-1(AUC)``;
- event metrics (``event_onset_200ms_fms``, ``segment_1s_er``, ...): sed_eval's
  class-wise result of the same metric object heareval builds (same collar,
  same files), e.g. the class's onset F-measure.

k-fold tasks: the mean over folds of each fold's per-class score (folds where
it is undefined, e.g. no clip of the class, are left out); support is summed.
An undefined score (a class without positives for AP, no reference event) is NaN.

:func:`parse_selections` reads ``--per-class TASK[:VARIANT]``; :func:`write_task_tables`
writes ``per-class-<task>[-<variant>].{md,csv}`` from the cells' records (rows =
classes, columns = variants; mean ± std over seeds).
"""

from __future__ import annotations

import math
import pickle
from collections import ChainMap
from pathlib import Path
from typing import TYPE_CHECKING, Any, Dict, List, Mapping, Optional, Sequence, Tuple

from hear_gura.errors import HearGuraError

if TYPE_CHECKING:
    from hear_gura.harness.grid import Variant
    from hear_gura.harness.scores import TaskInfo

#: What a per-class value of each primary metric is.
MEASURES = {
    "top1_acc": "share of the class's test clips predicted as the class (recall)",
    "pitch_acc": "share of the class's test clips predicted as the class (recall)",
    "chroma_acc": "share of the class's test clips predicted as the class, up to octave errors",
    "mAP": "average precision of the class",
    "aucroc": "ROC AUC of the class",
    "d_prime": "d' of the class (sqrt(2) * inverse normal CDF of its ROC AUC)",
}
PREDICTIONS_SUFFIX = ".predictions.pkl"
#: Every global heareval's predictions pickles reference (dicts of numpy arrays and torch tensors);
#: :class:`PredictionsUnpickler` loads nothing else.
PREDICTIONS_GLOBALS = frozenset({
    ("collections", "OrderedDict"),
    ("numpy", "dtype"), ("numpy", "ndarray"),
    ("numpy._core.multiarray", "scalar"), ("numpy.core.multiarray", "scalar"),
    ("numpy._core.multiarray", "_reconstruct"), ("numpy.core.multiarray", "_reconstruct"),
    ("torch._utils", "_rebuild_tensor_v2"),
})


def _tensor_from_bytes(data: bytes) -> Any:
    """What ``torch.storage._load_from_bytes`` returns, loaded weights-only (tensors, never code)."""
    import io

    import torch

    return torch.load(io.BytesIO(data), weights_only=True)


class PredictionsUnpickler(pickle.Unpickler):
    """Reads heareval's ``*.predictions.pkl`` and refuses any other global (a results folder
    from elsewhere cannot run code here); tensors stored inside load weights-only."""

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) == ("torch.storage", "_load_from_bytes"):
            return _tensor_from_bytes
        if (module, name) in PREDICTIONS_GLOBALS:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"{module}.{name} is not part of heareval's predictions: refusing to load it")


def measure(metric: str) -> str:
    """What a per-class value of ``metric`` means (a sentence fragment for table notes)."""
    if metric in MEASURES:
        return MEASURES[metric]
    return f"sed_eval's class-wise {metric} (heareval's parameters)"


def scene_per_class(metric: str, predictions: Any, targets: Any) -> Tuple[List[float], List[int]]:
    """Per-class values of a scene metric.

    Args:
        metric: heareval's metric name (``top1_acc``, ``mAP``...).
        predictions, targets: ``(examples, classes)`` arrays; targets one- or multi-hot.
    Returns:
        (one value per class, NaN where undefined; positives per class).
    """
    import numpy as np

    predictions, targets = np.asarray(predictions, dtype=np.float64), np.asarray(targets, dtype=np.float64)
    classes = targets.shape[1]
    positives = targets > 0.5
    support = [int(n) for n in positives.sum(axis=0)]
    values: List[float] = []
    if metric in ("top1_acc", "pitch_acc", "chroma_acc"):
        truth, guess = targets.argmax(axis=1), predictions.argmax(axis=1)
        hit = (truth % 12 == guess % 12) if metric == "chroma_acc" else truth == guess
        for c in range(classes):
            mine = truth == c
            values.append(float(hit[mine].mean()) if mine.any() else math.nan)
        return values, [int((truth == c).sum()) for c in range(classes)]
    if metric in ("mAP", "aucroc", "d_prime"):
        from sklearn.metrics import average_precision_score, roc_auc_score

        for c in range(classes):
            column, scores = positives[:, c], predictions[:, c]
            if metric == "mAP":
                values.append(float(average_precision_score(column, scores)) if column.any() else math.nan)
                continue
            if column.all() or not column.any():
                values.append(math.nan)
                continue
            auc = float(roc_auc_score(column, scores))
            if metric == "d_prime":
                from scipy import stats

                auc = float(stats.norm().ppf(auc) * math.sqrt(2.0))
            values.append(auc)
        return values, support
    raise HearGuraError(f"no per-class form of the scene metric {metric!r} (known: {', '.join(MEASURES)})")


def event_per_class(metric: str, predicted: Mapping[str, Any], reference: Mapping[str, Any],
                    labels: Sequence[str]) -> Tuple[List[float], List[int]]:
    """Per-class values of an event metric, from heareval's own scorer object (sed_eval, same parameters).

    Args:
        metric: heareval's metric name (``event_onset_200ms_fms``, ``segment_1s_er``...).
        predicted, reference: ``{file: [{"label", "start", "end"}]}`` (ms), as heareval's predictions hold them.
        labels: the label vocabulary, by index.
    Returns:
        (one value per class, NaN where undefined; reference events per class).
    """
    from heareval.score import SoundEventScore, available_scores

    scorer = available_scores[metric](label_to_idx={label: i for i, label in enumerate(labels)})
    if not isinstance(scorer, SoundEventScore):
        raise HearGuraError(f"{metric} is not an event metric")
    truth = scorer.sed_eval_event_container(reference)
    guess = scorer.sed_eval_event_container(predicted)
    metrics = scorer.score_class(event_label_list=list(labels), **scorer.params)
    for filename in predicted:  # the files heareval scores, in its order
        metrics.evaluate(reference_event_list=truth.filter(filename=filename),
                         estimated_event_list=guess.filter(filename=filename))
    class_wise = metrics.results_class_wise_metrics()
    values = []
    for label in labels:
        flat = dict(ChainMap(*class_wise.get(label, {}).values()))
        value = flat.get(scorer.scores[0])
        values.append(math.nan if value is None else float(value))
    support = [sum(1 for events in reference.values() for e in events if str(e["label"]) == str(label))
               for label in labels]
    return values, support


def read_labels(folder: Path) -> List[str]:
    """The label vocabulary (``labelvocabulary.csv``: ``idx,label``) by index."""
    import csv

    path = folder / "labelvocabulary.csv"
    try:
        with open(path, newline="", encoding="utf-8") as handle:
            rows = sorted((int(r["idx"]), str(r["label"])) for r in csv.DictReader(handle))
    except (OSError, KeyError, ValueError) as err:
        raise HearGuraError(f"{path}: cannot read the label vocabulary ({err})") from None
    return [label for _, label in rows]


def per_class_scores(folder: Path, metric: str, embedding_type: str, labels: Sequence[str]) -> Dict[str, Any]:
    """Per-class scores of every ``*.predictions.pkl`` in ``folder`` (one per test split; k-fold: mean).

    Returns:
        ``{"metric", "measure", "folds": [split names], "classes": {label: {"score": float, "support": int}}}``
        (``score`` NaN where undefined in every fold).
    Raises:
        HearGuraError: no predictions file, or one that cannot be read.
    """
    import numpy as np

    files = sorted(folder.glob(f"*{PREDICTIONS_SUFFIX}"))
    if not files:
        raise HearGuraError(f"no {PREDICTIONS_SUFFIX} in {folder}: heareval writes one per test split")
    per_fold, supports = [], []
    for path in files:
        try:
            with open(path, "rb") as handle:
                data = PredictionsUnpickler(handle).load()
        except Exception as err:  # a truncated or foreign pickle: say which file
            raise HearGuraError(f"{path}: cannot read heareval's test predictions ({err})") from None
        if embedding_type == "event":
            values, support = event_per_class(metric, data["predicted_events"], data["target_events"], labels)
        else:
            values, support = scene_per_class(metric, data["prediction"].numpy(), data["target"].numpy())
        per_fold.append(values)
        supports.append(support)
    scores = np.array(per_fold, dtype=np.float64)
    classes = {}
    for c, label in enumerate(labels):
        defined = scores[:, c][np.isfinite(scores[:, c])]
        classes[label] = {"score": float(defined.mean()) if defined.size else math.nan,
                          "support": int(sum(s[c] for s in supports))}
    return {"metric": metric, "measure": measure(metric),
            "folds": [p.name[:-len(PREDICTIONS_SUFFIX)] for p in files], "classes": classes}


def parse_selections(selections: Sequence[str], tasks: Sequence["TaskInfo"],
                     variants: Sequence["Variant"]) -> List[Tuple["TaskInfo", List["Variant"], str]]:
    """``TASK`` or ``TASK:VARIANT`` -> (task, variants, file name suffix), checked against the plan.

    TASK is a task folder or ``task_name`` among the evaluated tasks; VARIANT a
    variant label (``fusion_cat[layers=mean]``) or an ensemble name (all its
    variants). Without VARIANT, every variant of the run.

    Raises:
        HearGuraError: an unknown task or variant (the message lists the valid ones).
    """
    chosen = []
    for selection in selections:
        task_text, _, variant_text = selection.partition(":")
        found = [t for t in tasks if task_text.strip() in (t.folder, t.task_name)]
        if not found:
            raise HearGuraError(f"--per-class {selection}: no task {task_text!r} in this run; tasks: "
                                + ", ".join(t.folder for t in tasks))
        picked = list(variants)
        suffix = ""
        if variant_text.strip():
            name = variant_text.strip()
            picked = [v for v in variants if name in (v.label, v.ensemble)]
            if not picked:
                raise HearGuraError(f"--per-class {selection}: no variant {name!r} in this run; variants: "
                                    + ", ".join(v.label for v in variants))
            suffix = "-" + (picked[0].slug if len(picked) == 1 else picked[0].ensemble)
        chosen.append((found[0], picked, suffix))
    return chosen


def write_task_tables(out_dir: Path, task: "TaskInfo", variants: Sequence["Variant"], suffix: str,
                      records: Mapping[str, Optional[Dict[str, Any]]], seeds: Sequence[int]) -> Dict[str, Path]:
    """``per-class-<task><suffix>.{md,csv}`` in ``out_dir``: one column per variant, one row per class.

    Args:
        records: variant label -> its finished cell record on ``task`` (missing: n/a).
        seeds: the seeds of the run (for the title and notes).
    Returns:
        ``{description: path}`` of the two files written.
    """
    from hear_gura.harness.report import write_per_class

    columns = [records.get(v.label) or {"variant": v.label, "task": task.folder} for v in variants]
    stem = f"per-class-{task.folder}{suffix}"
    md, csv_path = out_dir / f"{stem}.md", out_dir / f"{stem}.csv"
    metric = task.primary_metric
    several = len(seeds) > 1
    title = f"Per-class {metric} on {task.folder}" + (f", mean ± std over {len(seeds)} seeds" if several else "")
    notes = [f"Each value: {measure(metric)}, on the test split(s) of heareval's probe"
             + (" (k-fold: mean over folds)" if task.split_mode != "trainvaltest" else "")
             + (f"; mean ± sample std over the {len(seeds)} probe runs (seeds {', '.join(map(str, seeds))})"
                if several else "") + ".",
             "support: the class's test " + ("reference events" if task.embedding_type == "event" else "clips")
             + " (all test folds together); computed from heareval's test predictions, kept per run in "
             "cells/<variant>/<task>/seed-<seed>/*.predictions.pkl."]
    missing = [c["variant"] for c in columns if not isinstance(c.get("per_class"), dict)]
    if missing:
        notes.append("n/a: no finished cell with per-class scores for " + ", ".join(missing)
                     + " (not run, failed, or under another identity: run the same command without --report-only).")
    write_per_class(md, csv_path, columns, read_labels(task.path), title, notes)
    return {f"per-class {stem} md": md, f"per-class {stem} csv": csv_path}
