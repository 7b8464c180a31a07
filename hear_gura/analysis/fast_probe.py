"""A fast probe for sweeps: a linear probe (and a kNN probe for scene tasks) on in-memory embeddings.

NOT heareval's probe. heareval's prediction runner (an MLP, a hyper-parameter
grid, one Lightning run per grid point) stays the only source of figures called
HEAR scores; this probe is for exploring (layer sweeps, option sweeps) and
every table it feeds says ``fast probe`` in its title and ``fastprobe`` in its
file names (:data:`TITLE_TAG`, :data:`FILE_TAG`).

What it shares with heareval, so that numbers are comparable in kind:

- the splits: ``trainvaltest`` -> one (train, valid, test); k-fold -> for fold
  ``i``, test = fold ``i``, valid = fold ``i + 1`` (mod k), train = the rest
  (heareval's ``data_splits_from_folds``); k-fold scores are the mean over folds;
- the targets: one-hot (multiclass) or multi-hot (multilabel) vectors from
  ``labelvocabulary.csv``; event frames carry the labels of the events covering
  their timestamp (as heareval's embedding runner writes them);
- the predictions scored: softmax (multiclass) or sigmoid (multilabel) outputs;
  for event tasks, heareval's own post-processing
  (``heareval.predictions.task_predictions.get_events_for_all_files``: median
  filter, threshold 0.5, minimum duration), its grid searched on the validation
  split by the primary metric, the best applied to test;
- the metrics: heareval's own score functions (``heareval.score.available_scores``),
  called exactly as its prediction runner calls them, except its event-based
  F-measures, whose same values :mod:`hear_gura.analysis.event_scores` computes
  without sed_eval's Python loops (checked against heareval's scorer).

What differs (fixed, see :class:`ProbeConfig`): a single linear layer,
zero-initialised, no hyper-parameter grid, and one of two fits. When it scores
variants on scene tasks (:data:`VARIANT_PROBE` = :data:`LOGISTIC_PROBE`, what ``hear-gura
evaluate --probe fast`` runs; :func:`variant_probe`): raw embeddings, as heareval's probe sees them,
divided by one number (their root mean square: heareval's probe is invariant to
it), fitted by full-batch L-BFGS along a path of L2 penalties, a bounded number
of iterations each, the state of lowest validation LOSS kept
(:mod:`hear_gura.analysis.logistic_probe`; heareval keeps the best validation
score). When it compares the states of one member (:class:`ProbeConfig`'s
default, what ``hear-gura layers`` runs): standardised inputs (train mean and
standard deviation), Adam at a fixed learning rate on mini-batches in a seeded
order, early stopping on the validation loss. When it scores variants on event
tasks (:data:`EVENT_PROBE`): the same Adam fit on the raw embeddings. The kNN probe
(scene tasks): cosine similarity of standardised embeddings
(``knn_standardise``), the ``k`` nearest training clips vote with weights
``exp(similarity / temperature)`` (the weighted kNN of DINO, Caron et al. 2021).
The MLP probe (``mlp``, any task) is heareval's own model at one point of its
grid (:func:`mlp_model`: raw inputs, one hidden layer of 1024 with BatchNorm),
trained like the Adam linear probe. The ridge probe (``ridge``, any task) is a
linear read-out in closed form on raw inputs
(:mod:`hear_gura.analysis.ridge_probe`): no steps, no randomness. The projected
probe (:data:`PROJECTED_PROBE`) is the logistic probe read through heareval's
first layer as initialised and its BatchNorm at the training statistics, frozen,
without the non-linearity: still linear in the embeddings, its penalty taken in
the coordinates heareval's probe sees (``eval_scripts/fastprobe-projected-plan.md``).
``eval_scripts/fastprobe_kinds.py`` measures which kind ranks variants as
heareval's probe does: the raw Adam linear probe was chosen by its rule on
cells no kind had been chosen on (``eval_scripts/fastprobe-heldout-plan.md``),
kept when ``ridge`` was tested on a layer sweep (``fastprobe-sweep-plan.md``),
and replaced by the logistic probe on fresh layer sweeps
(``fastprobe-logistic-plan.md``).

:func:`score_embedding_folder` scores one task folder written by heareval's
embedding runner; :func:`probe_task` scores in-memory arrays (what
:mod:`hear_gura.analysis.layer_scores` uses).
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import math
import pickle
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Callable, Dict, Iterator, List, Mapping, Optional, Sequence, Tuple

import numpy as np
import torch

from hear_gura.analysis.logistic_probe import LOGISTIC_MAX_ITER, LOGISTIC_PENALTIES, fit_logistic
from hear_gura.errors import HearGuraError
from hear_gura.probe_names import FAST_FILE_TAG, FAST_TITLE_TAG, LOWER_IS_BETTER  # noqa: F401  (used by importers)

#: Put in every title of a table or plot of fast-probe figures (:mod:`hear_gura.probe_names`).
TITLE_TAG = FAST_TITLE_TAG
#: Put in every file name of fast-probe figures.
FILE_TAG = FAST_FILE_TAG
#: heareval's event post-processing grid when a task does not give one (``EVENT_POSTPROCESSING_GRID``).
DEFAULT_POSTPROCESSING_GRID = {"median_filter_ms": [250], "min_duration": [125, 250]}


@dataclass(frozen=True)
class ProbeConfig:
    """The fast probe's fixed hyper-parameters (no grid search).

    Attributes:
        lr: Adam learning rate.
        batch_size: training rows (clips, or frames of event tasks) per step.
        max_steps: at most this many optimiser steps.
        eval_every: check the validation loss every ``max(eval_every, steps per epoch)`` steps.
        patience: stop after this many checks without a validation loss ``min_delta`` below the best
            (the best state is kept): on separable data the loss falls forever, ever more slowly.
        min_delta: the improvement of the validation loss (nats per row) that counts.
        knn_k: neighbours of the kNN probe (at most the training clips).
        knn_temperature: the kNN vote weight is ``exp(cosine similarity / knn_temperature)``.
        memory_values: inputs with more values than this are streamed per batch, not moved to the device whole.
        standardise: the linear probe standardises its inputs with the training statistics (False: raw
            inputs, as heareval's probe sees them; :data:`VARIANT_PROBE`).
        rms_scale: with ``standardise`` False, divide the raw inputs by ONE number, the root mean square of the
            training inputs (:func:`rms_value`), so that ``x`` and ``c * x`` score the same. heareval's probe has
            this invariance (its first linear layer feeds a BatchNorm in every grid point of its default and fast
            grids: ``tests/test_logistic_probe.py`` checks it), while the per-dimension scales it does see stay as
            they are. False: the inputs as they come (the probe then learns slowly on inputs of small magnitude).
        solver: how the linear probe is fitted: ``"adam"`` (mini-batch Adam, early stop on the validation loss:
            ``lr`` .. ``retries``) or ``"lbfgs"`` (the penalty path of :mod:`hear_gura.analysis.logistic_probe`:
            full-batch L-BFGS, at most ``lbfgs_iterations`` iterations per L2 penalty of ``penalties``, the state of
            lowest validation loss kept; :data:`LOGISTIC_PROBE`).
        penalties, lbfgs_iterations: the ``"lbfgs"`` solver's L2 penalties (strongest first) and iterations per
            penalty.
        projection: 0, or the width of a frozen random projection between the inputs (as ``standardise`` /
            ``rms_scale`` leave them) and the fitted layer, each of its outputs standardised with the training
            statistics: heareval's first layer as initialised, and its BatchNorm, without the non-linearity
            (:func:`projected_inputs`). The probe stays linear in its inputs; its L2 penalty is taken in those
            coordinates. Drawn per fold from the probe's seed plus the fold's index. ``"lbfgs"`` solver only
            (:data:`PROJECTED_PROBE`).
        knn_standardise: the kNN probe standardises the embeddings before their cosine similarity.
        mlp_hidden, mlp_dropout, mlp_lr: the MLP probe (heareval's model, :func:`mlp_model`: one hidden
            layer, BatchNorm, dropout, ReLU, RAW inputs) and its Adam learning rate (a value of
            heareval's grid); trained as the linear probe is (batches, early stop on validation loss).
        retries: when no validation check beats the untrained (zero) state, which would score chance,
            training is redone up to this many times, checking every step, with the learning rate divided by
            10 each time (:func:`train_probe`); every fold records the cadence and rate it kept.
    """

    lr: float = 3e-3
    batch_size: int = 1024
    max_steps: int = 3000
    eval_every: int = 25
    patience: int = 8
    min_delta: float = 1e-3
    knn_k: int = 20
    knn_temperature: float = 0.07
    memory_values: int = 500_000_000
    standardise: bool = True
    rms_scale: bool = False
    solver: str = "adam"
    penalties: Tuple[float, ...] = LOGISTIC_PENALTIES
    lbfgs_iterations: int = LOGISTIC_MAX_ITER
    projection: int = 0
    knn_standardise: bool = True
    mlp_hidden: int = 1024
    mlp_dropout: float = 0.1
    mlp_lr: float = 1e-3
    retries: int = 2


#: The logistic probe (``fastprobe_kinds.py``'s ``logistic``, ``eval_scripts/fastprobe-logistic-plan.md``): the
#: linear layer on raw inputs divided by their root mean square, fitted by full-batch L-BFGS along L2 penalties
#: (:mod:`hear_gura.analysis.logistic_probe`): its cost is bounded whatever the inputs' scale.
LOGISTIC_PROBE = ProbeConfig(standardise=False, rms_scale=True, solver="lbfgs")

#: The projected probe (``fastprobe_kinds.py``'s ``projected``, ``eval_scripts/fastprobe-projected-plan.md``): the
#: logistic probe seen through heareval's first layer (width 1024, heareval's ``hidden_dim``) as initialised and its
#: BatchNorm at the training statistics, frozen, with no non-linearity (:func:`projected_inputs`).
PROJECTED_PROBE = replace(LOGISTIC_PROBE, projection=1024)

#: The fast probe that scores variants (``hear-gura evaluate --probe fast``, :func:`score_embedding_folder`): the
#: logistic probe, chosen by the rule of ``eval_scripts/fastprobe-logistic-plan.md`` on 24 fresh cells
#: (``fastprobe-kinds-logistic.json``) over the Adam linear probe on raw inputs (``ProbeConfig(standardise=False)``,
#: the default before, chosen by ``fastprobe-heldout-plan.md``). ``hear-gura layers`` keeps :class:`ProbeConfig`'s
#: standardised inputs: it compares and mixes the states of one member, whose scales differ from state to state.
VARIANT_PROBE = LOGISTIC_PROBE

#: The fast probe that scores variants on EVENT tasks (frames as rows): the Adam linear probe on raw inputs
#: (``linear_raw`` in the README's tables; ``evaluate --probe fast``'s default between the held-out and the logistic
#: tests), chosen on the 16 event cells of the ``--size full`` suite by the
#: addendum of ``eval_scripts/fastprobe-families-plan.md`` (``eval_scripts/fastprobe-kinds-families.json``; README,
#: "a fourth test"). There the logistic probe's path stopped at strong penalties whose frame probabilities stay under
#: heareval's event threshold (0.5): it found no onset on most dcase cells.
EVENT_PROBE = ProbeConfig(standardise=False)

#: A HEAR task's ``embedding_type`` values: one prediction per clip, or per frame (timestamps).
EMBEDDING_TYPES = ("scene", "event")


def variant_probe(embedding_type: str) -> ProbeConfig:
    """The fast probe that scores variants on a task of this ``embedding_type`` (``scene`` or ``event``):
    :data:`EVENT_PROBE` for event tasks, :data:`VARIANT_PROBE` for scene tasks."""
    if embedding_type not in EMBEDDING_TYPES:
        raise HearGuraError(f"unknown embedding_type {embedding_type!r} (scene or event)")
    return EVENT_PROBE if embedding_type == "event" else VARIANT_PROBE

#: The fast probe's kinds (:func:`probe_task`).
PROBE_KINDS = ("linear", "mlp", "knn", "ridge")
#: How the linear probe can be fitted (:attr:`ProbeConfig.solver`).
SOLVERS = ("adam", "lbfgs")


# ------------------------------------------------------------------ the task
@dataclass(frozen=True)
class TaskSpec:
    """What a probe needs to know about a HEAR task (from ``task_metadata.json`` and ``labelvocabulary.csv``).

    Attributes:
        name: ``task_name``.
        embedding_type: ``scene`` or ``event``.
        prediction_type: ``multiclass`` or ``multilabel``.
        metrics: the ``evaluation`` list; the first is the primary metric.
        labels: the label of each index.
        data_splits: per fold ``{"train": [...], "valid": [...], "test": [...]}`` split names (heareval's).
        postprocessing_grid: event tasks' post-processing grid.
        use_scoring_for_early_stopping: the metadata flag; False means a single post-processing setting.
    """

    name: str
    embedding_type: str
    prediction_type: str
    metrics: Tuple[str, ...]
    labels: Tuple[str, ...]
    data_splits: Tuple[Dict[str, Tuple[str, ...]], ...]
    postprocessing_grid: Dict[str, List[float]] = field(default_factory=dict)
    use_scoring_for_early_stopping: bool = True

    @property
    def primary_metric(self) -> str:
        return self.metrics[0]

    @property
    def label_to_idx(self) -> Dict[str, int]:
        return {label: i for i, label in enumerate(self.labels)}

    @property
    def split_names(self) -> Tuple[str, ...]:
        """Every split any fold uses, sorted."""
        return tuple(sorted({s for fold in self.data_splits for part in fold.values() for s in part}))

    @classmethod
    def load(cls, folder: Path) -> "TaskSpec":
        """Read ``folder/task_metadata.json`` and ``folder/labelvocabulary.csv`` (a task or an embedding folder).

        Raises:
            HearGuraError: a file is missing or malformed.
        """
        meta_path, vocab_path = folder / "task_metadata.json", folder / "labelvocabulary.csv"
        try:
            metadata = json.loads(meta_path.read_text(encoding="utf-8"))
            rows = [row for row in csv.reader(vocab_path.read_text(encoding="utf-8").splitlines()[1:]) if row]
        except (OSError, ValueError) as err:
            raise HearGuraError(f"{folder}: cannot read task_metadata.json / labelvocabulary.csv ({err}); "
                                "give a HEAR task folder or a task folder written by heareval's embedding runner")
        try:
            by_index = {int(row[0]): row[1] for row in rows}
        except (IndexError, ValueError):
            raise HearGuraError(f"{vocab_path}: expected rows 'idx,label' after the header") from None
        if sorted(by_index) != list(range(len(by_index))):
            raise HearGuraError(f"{vocab_path}: indices must be 0 .. n-1, got {sorted(by_index)}")
        return cls.from_metadata(metadata, [by_index[i] for i in range(len(by_index))])

    @classmethod
    def from_metadata(cls, metadata: Mapping[str, Any], labels: Sequence[str]) -> "TaskSpec":
        """From the content of ``task_metadata.json`` and the labels in index order."""
        missing = [k for k in ("task_name", "embedding_type", "prediction_type", "evaluation", "split_mode")
                   if k not in metadata]
        if missing:
            raise HearGuraError(f"task metadata lacks {', '.join(missing)}; not a HEAR task")
        if metadata["embedding_type"] not in EMBEDDING_TYPES:
            raise HearGuraError(f"unknown embedding_type {metadata['embedding_type']!r} (scene or event)")
        if metadata["prediction_type"] not in ("multiclass", "multilabel"):
            raise HearGuraError(f"unknown prediction_type {metadata['prediction_type']!r} (multiclass or multilabel)")
        grid = metadata.get("evaluation_params", {}).get("event_postprocessing_grid", DEFAULT_POSTPROCESSING_GRID)
        return cls(str(metadata["task_name"]), str(metadata["embedding_type"]), str(metadata["prediction_type"]),
                   tuple(str(m) for m in metadata["evaluation"]), tuple(str(x) for x in labels),
                   data_splits(metadata), dict(grid), bool(metadata.get("use_scoring_for_early_stopping", True)))


def data_splits(metadata: Mapping[str, Any]) -> Tuple[Dict[str, Tuple[str, ...]], ...]:
    """heareval's ``get_splits_from_metadata``: the (train, valid, test) split names of every fold.

    Raises:
        HearGuraError: an unknown ``split_mode``.
    """
    mode = metadata["split_mode"]
    if mode == "trainvaltest":
        return ({"train": ("train",), "valid": ("valid",), "test": ("test",)},)
    if mode in ("new_split_kfold", "presplit_kfold"):
        folds = sorted(str(s) for s in metadata["splits"])
        k = len(folds)
        if k < 3:
            raise HearGuraError(f"a k-fold task needs at least 3 folds (train, valid, test), got {folds}")
        return tuple({"train": tuple(f for f in folds if f not in (folds[i], folds[(i + 1) % k])),
                      "valid": (folds[(i + 1) % k],), "test": (folds[i],)} for i in range(k))
    raise HearGuraError(f"unknown split_mode {mode!r} (trainvaltest, new_split_kfold or presplit_kfold)")


def fold_name(fold: Mapping[str, Sequence[str]]) -> str:
    """A fold's name as heareval writes it: its test split(s), ``|``-joined."""
    return "|".join(fold["test"])


# ------------------------------------------------------------------ the data
@dataclass
class SplitArrays:
    """One split's rows: embeddings, targets and (event tasks) where each frame is.

    Attributes:
        x: ``(rows, width)`` float32 (or ``(rows, states, width)`` for learned weights); rows are
            clips (scene tasks) or frames (event tasks). A ``np.memmap`` is fine.
        y: ``(rows, labels)`` float32 one-hot / multi-hot targets.
        files: event tasks: each frame's file name (``x.wav``, as in the split's ``.json``).
        timestamps: event tasks: each frame's centre (ms), ``(rows,)``.
        events: event tasks: the target events per file (the split's ``.json``).
    """

    x: np.ndarray
    y: np.ndarray
    files: Optional[List[str]] = None
    timestamps: Optional[np.ndarray] = None
    events: Optional[Dict[str, list]] = None

    def __post_init__(self) -> None:
        if len(self.x) != len(self.y):
            raise HearGuraError(f"{len(self.x)} embedding rows but {len(self.y)} target rows")

    def with_x(self, x: np.ndarray) -> "SplitArrays":
        """The same rows with other embeddings (another layer of the same clips)."""
        return replace(self, x=x)

    @staticmethod
    def concat(parts: Sequence["SplitArrays"]) -> "SplitArrays":
        """Several splits as one (k-fold training folds)."""
        if len(parts) == 1:
            return parts[0]
        joiner = getattr(type(parts[0].x), "concat_rows", None)  # on-disk views concatenate lazily
        x = joiner([p.x for p in parts]) if joiner else np.concatenate([np.asarray(p.x) for p in parts])
        y = np.concatenate([p.y for p in parts])
        if parts[0].files is None:
            return SplitArrays(x, y)
        events: Dict[str, list] = {}
        for p in parts:
            events.update(p.events or {})
        return SplitArrays(x, y, [f for p in parts for f in p.files or []],
                           np.concatenate([p.timestamps for p in parts]), events)


def multi_hot(labels: Sequence[Sequence[Any]], label_to_idx: Mapping[str, int]) -> np.ndarray:
    """``(rows, len(label_to_idx))`` float32 targets from each row's label list."""
    y = np.zeros((len(labels), len(label_to_idx)), dtype=np.float32)
    for row, names in enumerate(labels):
        for name in names:
            try:
                y[row, label_to_idx[str(name)]] = 1.0
            except KeyError:
                raise HearGuraError(f"label {name!r} is not in labelvocabulary.csv "
                                    f"({', '.join(label_to_idx)})") from None
    return y


def frame_labels(events: Sequence[Mapping[str, Any]], timestamps: Sequence[float]) -> List[List[str]]:
    """The labels of the events covering each timestamp, as heareval's embedding runner computes them.

    An event covers ``start <= t < end + 0.0001`` (ms; heareval's interval tree adds 0.0001 so the end counts).
    """
    return [[str(e["label"]) for e in events if e["start"] <= t < e["end"] + 0.0001] for t in timestamps]


def read_embedding_folder(folder: Path, task: Optional[TaskSpec] = None) -> Dict[str, SplitArrays]:
    """Every split of a task folder written by heareval's embedding runner, in memory.

    Reads what heareval's prediction runner reads: ``<split>.embeddings.npy`` (a raw float32
    memmap) with ``<split>.embedding-dimensions.json``, ``<split>.target-labels.pkl``, and for
    event tasks ``<split>.filename-timestamps.json`` and the target events ``<split>.json``.

    Raises:
        HearGuraError: a file is missing or the counts disagree.
    """
    task = task or TaskSpec.load(folder)
    splits: Dict[str, SplitArrays] = {}
    for split in task.split_names:
        try:
            rows, width = json.loads((folder / f"{split}.embedding-dimensions.json").read_text())
            x = np.array(np.memmap(folder / f"{split}.embeddings.npy", dtype=np.float32, mode="r",
                                   shape=(rows, width)))
            with open(folder / f"{split}.target-labels.pkl", "rb") as handle:
                labels = pickle.load(handle)
        except (OSError, ValueError, pickle.UnpicklingError) as err:
            raise HearGuraError(f"{folder}: split {split!r} is incomplete ({err}); is this a finished task folder "
                                "of heareval's embedding runner (with .done.embeddings)?") from None
        if len(labels) != rows:
            raise HearGuraError(f"{folder}: {split} has {rows} embeddings but {len(labels)} labels")
        y = multi_hot(labels, task.label_to_idx)
        if task.embedding_type == "scene":
            splits[split] = SplitArrays(x, y)
            continue
        where = json.loads((folder / f"{split}.filename-timestamps.json").read_text())
        events = json.loads((folder / f"{split}.json").read_text())
        splits[split] = SplitArrays(x, y, [Path(f).name for f, _ in where],
                                    np.array([t for _, t in where], dtype=np.float64), events)
    return splits


# ------------------------------------------------------------------ scoring
_PRELOADED = False


def preload() -> float:
    """Import now what the first fit and score of a process would import on first use, and return the seconds it
    took (0.0 once done): heareval's metric module (with scikit-learn and sed_eval) and torch's optimiser
    machinery (its first optimiser loads ``torch._dynamo``). Called before the first cell is timed, so that no
    cell's seconds carry the process's one-time imports (the caller reports them once). Changes no result.
    """
    global _PRELOADED
    if _PRELOADED:
        return 0.0
    start = time.perf_counter()
    import heareval.score  # noqa: F401

    weight = torch.zeros(1, requires_grad=True)
    torch.optim.LBFGS([weight])
    torch.optim.Adam([weight])
    _PRELOADED = True
    return time.perf_counter() - start


def _score_value(ret: Any) -> float:
    """A heareval score's value: a float, or the first entry of a sed_eval tuple."""
    return float(ret[0][1]) if isinstance(ret, tuple) else float(ret)


def score_functions(task: TaskSpec) -> Dict[str, Callable[..., Any]]:
    """heareval's score function objects for the task's metrics, in order (primary first); its event-based
    F-measures are computed by :mod:`hear_gura.analysis.event_scores` (the same values, without sed_eval's per-file
    loops in Python)."""
    from heareval.score import available_scores

    from hear_gura.analysis.event_scores import fast_score_functions

    unknown = [m for m in task.metrics if m not in available_scores]
    if unknown:
        raise HearGuraError(f"metrics {unknown} are unknown to heareval; known: {', '.join(available_scores)}")
    label_to_idx = task.label_to_idx
    return fast_score_functions({m: available_scores[m](label_to_idx=label_to_idx) for m in task.metrics})


def score_scene(task: TaskSpec, predictions: np.ndarray, targets: np.ndarray) -> Dict[str, float]:
    """Every metric of a scene task, as heareval's prediction runner scores its test predictions.

    Args:
        predictions: ``(clips, labels)`` softmax (multiclass) or sigmoid (multilabel) outputs.
        targets: ``(clips, labels)`` one-hot / multi-hot.
    """
    return {name: _score_value(fn(predictions, targets)) for name, fn in score_functions(task).items()}


def _postprocessings(task: TaskSpec) -> List[Tuple[Tuple[str, Any], ...]]:
    from sklearn.model_selection import ParameterGrid

    return [tuple(p.items()) for p in ParameterGrid(task.postprocessing_grid)]


def predicted_events(task: TaskSpec, predictions: np.ndarray, split: SplitArrays,
                     postprocessing: Optional[Tuple[Tuple[str, Any], ...]] = None) -> Dict[tuple, Dict[str, list]]:
    """heareval's ``get_events_for_all_files``: events per file for each post-processing setting (or one)."""
    from hear_gura.heareval_compat import install_import_hook

    install_import_hook()
    from heareval.predictions.task_predictions import get_events_for_all_files

    idx_to_label = dict(enumerate(task.labels))
    with contextlib.redirect_stderr(io.StringIO()):  # its progress bar, once per call
        return get_events_for_all_files(torch.from_numpy(predictions), split.files,
                                        torch.from_numpy(split.timestamps), idx_to_label, task.postprocessing_grid,
                                        postprocessing)


def best_postprocessing(task: TaskSpec, predictions: np.ndarray, valid: SplitArrays) -> Tuple[Tuple[str, Any], ...]:
    """The post-processing with the best primary score on the validation split (heareval's choice, once).

    heareval sorts the scores descending whatever the metric's direction; here a lower-is-better
    primary metric is negated first (no HEAR 2021 event task has one: they all rank by onset F-measure).
    """
    settings = _postprocessings(task)
    if len(settings) == 1 or not task.use_scoring_for_early_stopping:
        return settings[0]
    primary = score_functions(task)[task.primary_metric]
    sign = -1.0 if task.primary_metric in LOWER_IS_BETTER else 1.0
    scored = []
    for setting, events in predicted_events(task, predictions, valid).items():
        value = _score_value(primary(events, valid.events))
        scored.append((sign * (0.0 if math.isnan(value) else value), setting))
    scored.sort(reverse=True)  # as heareval: ties go to the larger setting tuple
    return scored[0][1]


def score_events(task: TaskSpec, predictions: np.ndarray, split: SplitArrays,
                 postprocessing: Tuple[Tuple[str, Any], ...]) -> Dict[str, float]:
    """Every metric of an event task on one split's frame predictions, with one post-processing setting."""
    events = predicted_events(task, predictions, split, postprocessing)[postprocessing]
    return {name: _score_value(fn(events, split.events)) for name, fn in score_functions(task).items()}


# ------------------------------------------------------------------ training
class Standardize(torch.nn.Module):
    """``(x - mean) / std`` with fixed statistics (buffers)."""

    def __init__(self, mean: torch.Tensor, std: torch.Tensor) -> None:
        super().__init__()
        self.register_buffer("mean", mean)
        self.register_buffer("std", std)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean) / self.std


def feature_stats(x: np.ndarray, chunk: int = 65536, transform: Optional[Callable[[torch.Tensor], torch.Tensor]] = None
                  ) -> Tuple[torch.Tensor, torch.Tensor]:
    """Per-dimension mean and standard deviation (float64 sums, clamped below at 1e-5) of ``(rows, width)``, or of
    ``transform``'s ``(rows, out)`` outputs of its float32 rows (computed a chunk at a time, never all at once)."""
    if transform is None:
        width = x.shape[1:]
    else:
        with torch.no_grad():
            width = transform(torch.zeros((1,) + tuple(x.shape[1:]))).shape[1:]
    total, squares = np.zeros(width, dtype=np.float64), np.zeros(width, dtype=np.float64)
    for start in range(0, len(x), chunk):
        if transform is None:
            part = np.asarray(x[start:start + chunk], dtype=np.float64)
        else:
            rows = torch.from_numpy(np.asarray(x[start:start + chunk], dtype=np.float32))
            with torch.no_grad():
                part = transform(rows).double().numpy()
        total += part.sum(axis=0)
        squares += (part ** 2).sum(axis=0)
    mean = total / max(1, len(x))
    std = np.sqrt(np.maximum(squares / max(1, len(x)) - mean ** 2, 0.0))
    return torch.from_numpy(mean).float(), torch.from_numpy(np.maximum(std, 1e-5)).float()


def rms_value(x: np.ndarray, chunk: int = 65536) -> float:
    """The root mean square of every value of ``(rows, width)`` (float64 sums; 1.0 when it is 0 or there are no rows)."""
    squares = 0.0
    for start in range(0, len(x), chunk):
        squares += float((np.asarray(x[start:start + chunk], dtype=np.float64) ** 2).sum())
    rms = math.sqrt(squares / max(1, x.size))
    return rms if rms > 0 else 1.0


def linear_model(x: np.ndarray, labels: int, standardise: bool = True, rms_scale: bool = False,
                 projection: int = 0, seed: int = 0) -> torch.nn.Module:
    """A zero-initialised linear layer ``(rows, width) -> (rows, labels)``, after standardising with ``x``'s
    statistics unless ``standardise`` is False: then raw inputs, as heareval's probe sees them, divided by their
    root mean square (one number, :func:`rms_value`) when ``rms_scale`` is True. With ``projection`` > 0 the layer
    reads :func:`projected_inputs` (``(rows, projection)``, drawn from ``seed``) of those inputs.
    """
    inputs: List[torch.nn.Module] = []
    if standardise:
        inputs.append(Standardize(*feature_stats(x)))
    elif rms_scale:
        inputs.append(Standardize(torch.zeros(x.shape[1]), torch.full((x.shape[1],), rms_value(x))))
    if projection:
        inputs += projected_inputs(x, torch.nn.Sequential(*inputs), projection, seed)
    layer = torch.nn.Linear(projection or x.shape[1], labels)
    torch.nn.init.zeros_(layer.weight)
    torch.nn.init.zeros_(layer.bias)
    return torch.nn.Sequential(*inputs, layer)


def projected_inputs(x: np.ndarray, before: torch.nn.Module, width: int, seed: int,
                     chunk: int = 65536) -> List[torch.nn.Module]:
    """heareval's first layer as initialised and its BatchNorm at ``x``'s statistics, frozen, no non-linearity.

    ``(rows, in) -> (rows, width)``: ``torch.nn.Linear(in, width)`` created, then its weight drawn by
    ``xavier_uniform_`` (gain 1), as heareval's ``FullyConnectedPrediction`` initialises its first layer, under
    ``torch.manual_seed(seed)`` (the global generator's state is restored afterwards); then each output standardised
    with its mean and standard deviation over ``before(x)``'s rows (:func:`feature_stats`: float64 sums, population
    deviation). Every parameter is frozen (``requires_grad`` False), so a probe on top stays linear in ``x`` and the
    logistic fit computes these outputs once (:func:`~hear_gura.analysis.logistic_probe.fit_logistic`).
    """
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        first = torch.nn.Linear(x.shape[1], width)
        torch.nn.init.xavier_uniform_(first.weight, gain=1.0)
    first.requires_grad_(False)
    return [first, Standardize(*feature_stats(x, chunk, lambda rows: first(before(rows))))]


def mlp_model(width: int, labels: int, hidden: int = 1024, dropout: float = 0.1) -> torch.nn.Module:
    """heareval's probe (``FullyConnectedPrediction``) at one fixed point of its grid: ``(rows, width) -> (rows, labels)``.

    ``Linear(width, hidden) -> BatchNorm1d -> Dropout -> ReLU -> Linear(hidden, labels)``, built in
    heareval's order with its initialisation (Xavier-uniform weights, gain 1 then ``sqrt(2)``;
    PyTorch's default biases) and RAW inputs (heareval's ``embedding_norm`` is the identity, so
    members of very different scales meet the first layer as they are). Uses the global torch
    RNG: :func:`probe_task` seeds it per fold, and for the same seed the weights are the ones
    heareval's model gets (``tests/test_layer_analysis.py`` checks it against heareval).
    """
    first = torch.nn.Linear(width, hidden)
    torch.nn.init.xavier_uniform_(first.weight, gain=torch.nn.init.calculate_gain("linear"))
    norm, drop = torch.nn.BatchNorm1d(hidden), torch.nn.Dropout(dropout)
    projection = torch.nn.Linear(hidden, labels)
    torch.nn.init.xavier_uniform_(projection.weight, gain=torch.nn.init.calculate_gain("relu"))
    return torch.nn.Sequential(first, norm, drop, torch.nn.ReLU(), projection)


@contextlib.contextmanager
def cpu_threads_for(rows: int, width: int, device: str) -> Iterator[None]:
    """One CPU thread for small problems (``rows * width < 2**20``), then the previous count.

    Small operations gain nothing from threads and lose much on a busy machine:
    measured on 2 loaded cores, 1,000 steps of a 4 x 48 linear probe took 1.4 s
    on one thread and 11.4 s on two (the threads wait for each other).
    """
    if torch.device(device).type != "cpu" or rows * width >= 2 ** 20 or torch.get_num_threads() == 1:
        yield
        return
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


class DeviceRows:
    """Rows of an array on a device: the whole array when it has at most ``limit`` values, else fetched per
    batch (memmaps). Shared by the Adam solver, :func:`predict` and the L-BFGS solver
    (:func:`hear_gura.analysis.logistic_probe.fit_logistic`)."""

    def __init__(self, x: np.ndarray, device: torch.device, limit: int) -> None:
        self.x, self.device = x, device
        self.whole = torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32)).to(device) if x.size <= limit else None

    def __len__(self) -> int:
        return len(self.x)

    def take(self, index: torch.Tensor) -> torch.Tensor:
        if self.whole is not None:
            return self.whole[index.to(self.device)]
        return torch.from_numpy(np.ascontiguousarray(self.x[index.numpy()], dtype=np.float32)).to(self.device)

    def chunks(self, size: int) -> Iterator[torch.Tensor]:
        """Consecutive blocks of ``size`` rows (the last shorter): views of the whole array, or reads."""
        for start in range(0, len(self.x), size):
            if self.whole is not None:
                yield self.whole[start:start + size]
            else:
                yield torch.from_numpy(np.ascontiguousarray(self.x[start:start + size], dtype=np.float32)).to(
                    self.device)


def _loss_function(task: TaskSpec) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
    if task.prediction_type == "multiclass":
        return lambda logits, y: torch.nn.functional.cross_entropy(logits, y.argmax(dim=1))
    return torch.nn.functional.binary_cross_entropy_with_logits


def activation(task: TaskSpec, logits: torch.Tensor) -> torch.Tensor:
    """heareval's output activation: softmax (multiclass) or sigmoid (multilabel)."""
    return torch.softmax(logits, dim=-1) if task.prediction_type == "multiclass" else torch.sigmoid(logits)


@dataclass
class TrainResult:
    """A trained probe: the model at its best validation loss, and how it got there.

    ``check_every`` and ``lr``: the validation cadence (optimiser steps) and learning rate of the run that
    produced ``model``: ``max(eval_every, steps per epoch)`` and ``config.lr``, or 1 and a tenth (a hundredth)
    of it when no check of the previous run beat the untrained state (:attr:`ProbeConfig.retries`).
    """

    model: torch.nn.Module
    steps: int
    best_step: int
    valid_loss: float
    check_every: int = 0
    lr: float = 0.0


def parameter_groups(model: torch.nn.Module, lr: float) -> List[Dict[str, Any]]:
    """Adam parameter groups: ``lr``, times ``parameter.lr_scale`` where a module set one."""
    groups: Dict[float, List[torch.nn.Parameter]] = {}
    for parameter in model.parameters():
        if parameter.requires_grad:
            groups.setdefault(float(getattr(parameter, "lr_scale", 1.0)), []).append(parameter)
    return [{"params": params, "lr": lr * scale} for scale, params in groups.items()]


def train_probe(model: torch.nn.Module, task: TaskSpec, train: SplitArrays, valid: SplitArrays,
                config: ProbeConfig = ProbeConfig(), seed: int = 0, device: str = "cpu") -> TrainResult:
    """Train ``model`` (rows of ``train.x`` -> logits) with Adam; keep the state of lowest validation loss.

    Deterministic for a seed on CPU (zero-initialised layers, a seeded batch order).
    """
    where = torch.device(device)
    model = model.to(where)
    loss_fn = _loss_function(task)
    x_train, x_valid = DeviceRows(train.x, where, config.memory_values), DeviceRows(valid.x, where, config.memory_values)
    y_train, y_valid = torch.from_numpy(train.y).to(where), torch.from_numpy(valid.y).to(where)
    batch = min(config.batch_size, len(x_train))
    per_epoch = math.ceil(len(x_train) / batch)

    def snapshot() -> Dict[str, torch.Tensor]:
        return {k: v.detach().clone() for k, v in model.state_dict().items()}

    initial = snapshot()

    def valid_loss() -> float:
        model.eval()
        with torch.no_grad():
            total = sum(float(loss_fn(model(xb), y_valid[i:i + len(xb)])) * len(xb)
                        for i, xb in zip(range(0, len(x_valid), 8192), x_valid.chunks(8192)))
        model.train()
        return total / max(1, len(x_valid))

    initial_loss = valid_loss()  # of the untrained state, where every run starts

    def run(check: int, lr: float) -> Tuple[float, int, Dict[str, torch.Tensor], int]:
        """Train from the initial state, checking every ``check`` steps: (best loss, its step, its state, steps)."""
        model.load_state_dict(initial)
        optimiser = torch.optim.Adam(parameter_groups(model, lr))
        generator = torch.Generator().manual_seed(seed)
        best = (initial_loss, 0, initial)
        step, waited, order = 0, 0, torch.empty(0, dtype=torch.long)
        model.train()
        while step < config.max_steps and waited < config.patience:
            for _ in range(check):
                if len(order) < batch:
                    order = torch.cat([order, torch.randperm(len(x_train), generator=generator)])
                index, order = order[:batch].sort().values, order[batch:]  # sorted: memmaps read forwards
                optimiser.zero_grad(set_to_none=True)
                loss = loss_fn(model(x_train.take(index)), y_train[index.to(where)])
                loss.backward()
                optimiser.step()
                step += 1
            current = valid_loss()
            if current < best[0] - config.min_delta:
                best, waited = (current, step, snapshot()), 0
            else:
                waited += 1
        return best[0], best[1], best[2], step

    check, lr = max(config.eval_every, per_epoch), config.lr
    best_loss, best_step, state, steps = run(check, lr)
    for _ in range(config.retries):
        if best_step > 0:
            break  # a run that learned is never redone
        # No check beat the untrained state: the probe overshoots or overfits within the first ``check`` steps
        # (Adam's first steps move every weight by about ``lr``, a large change of the logits on wide inputs),
        # and keeping the untrained state would score chance. Redo it checking every step with a tenth of the
        # learning rate (same seed, same batches).
        check, lr = 1, lr / 10
        best_loss, best_step, state, steps = run(check, lr)
    model.load_state_dict(state)
    model.eval()
    return TrainResult(model, steps, best_step, best_loss, check, lr)


def predict(model: torch.nn.Module, task: TaskSpec, x: np.ndarray, device: str = "cpu",
            memory_values: int = ProbeConfig.memory_values) -> np.ndarray:
    """``(rows, labels)`` activations (softmax / sigmoid) of a trained probe, float32; a model whose
    ``returns_scores`` is true (the ridge read-out) gives its outputs as they are."""
    rows = DeviceRows(x, torch.device(device), memory_values)
    scores = bool(getattr(model, "returns_scores", False))
    with torch.no_grad():
        parts = [(model(xb) if scores else activation(task, model(xb))).float().cpu() for xb in rows.chunks(8192)]
    return torch.cat(parts).numpy() if parts else np.zeros((0, len(task.labels)), dtype=np.float32)


def knn_predictions(train: SplitArrays, x: np.ndarray, config: ProbeConfig = ProbeConfig(),
                    device: str = "cpu") -> np.ndarray:
    """Weighted kNN votes ``(rows, labels)`` for ``x`` from the training clips (scene tasks).

    Embeddings are standardised with the training statistics (``config.knn_standardise``) and L2-normalised; the ``k``
    most similar training clips vote with weight ``exp(cos / T)``; votes are normalised to sum 1.
    """
    where = torch.device(device)
    if config.knn_standardise:
        mean, std = feature_stats(train.x)
    else:
        mean, std = torch.zeros(train.x.shape[1:]), torch.ones(train.x.shape[1:])
    mean, std = mean.to(where), std.to(where)

    def unit(a: np.ndarray) -> torch.Tensor:
        t = (torch.from_numpy(np.ascontiguousarray(a, dtype=np.float32)).to(where) - mean) / std
        return torch.nn.functional.normalize(t, dim=-1)

    bank, labels = unit(train.x), torch.from_numpy(train.y).to(where)
    k = min(config.knn_k, len(bank))
    out = []
    for start in range(0, len(x), 4096):
        sim = unit(x[start:start + 4096]) @ bank.T
        top, index = sim.topk(k, dim=1)
        weight = torch.exp((top - top[:, :1]) / config.knn_temperature)  # shifted: same ratios, no overflow
        votes = (weight[..., None] * labels[index]).sum(dim=1) / weight.sum(dim=1, keepdim=True)
        out.append(votes.cpu())
    return torch.cat(out).numpy() if out else np.zeros((0, train.y.shape[1]), dtype=np.float32)


# ------------------------------------------------------------------ per task
@dataclass
class FoldScores:
    """One fold's test scores (every metric), with what chose them."""

    test: Dict[str, float]
    valid: Dict[str, float]
    steps: int = 0
    best_step: int = 0
    postprocessing: Optional[List[List[Any]]] = None
    check_every: int = 0  # steps between validation checks (1: a redone run, see ProbeConfig.retries)
    lr: float = 0.0  # the learning rate of the run kept
    penalty: Optional[float] = None  # the ridge probe: the penalty kept (ridge_probe.RIDGE_PENALTIES)


def fold_scores(task: TaskSpec, model: torch.nn.Module, valid: SplitArrays, test: SplitArrays,
                device: str = "cpu", memory_values: int = ProbeConfig.memory_values) -> Tuple[Dict[str, float],
                                                                                          Dict[str, float], Any]:
    """Test and validation scores of a trained probe (event tasks: post-processing chosen on validation)."""
    valid_pred = predict(model, task, valid.x, device, memory_values)
    test_pred = predict(model, task, test.x, device, memory_values)
    if task.embedding_type == "scene":
        return score_scene(task, test_pred, test.y), score_scene(task, valid_pred, valid.y), None
    setting = best_postprocessing(task, valid_pred, valid)
    return (score_events(task, test_pred, test, setting), score_events(task, valid_pred, valid, setting),
            [list(p) for p in setting])


def summarise(task: TaskSpec, folds: Mapping[str, Mapping[str, float]]) -> Dict[str, Any]:
    """``{"test": {metric: mean over folds}, "test_std": {...} (k-fold: sample std, as heareval)}``."""
    names = list(task.metrics)
    out: Dict[str, Any] = {"test": {m: float(np.mean([f[m] for f in folds.values()])) for m in names}}
    if len(folds) > 1:
        out["test_std"] = {m: float(np.std([f[m] for f in folds.values()], ddof=1)) for m in names}
    return out


def probe_task(task: TaskSpec, splits: Mapping[str, SplitArrays], probe: str = "linear", seed: int = 0,
               device: str = "cpu", config: ProbeConfig = ProbeConfig(),
               model_factory: Optional[Callable[[SplitArrays], torch.nn.Module]] = None) -> Dict[str, Any]:
    """Score in-memory embeddings of every split with the fast probe, over every fold.

    Args:
        task: the task.
        splits: split name -> its rows (every split the folds name).
        probe: ``linear`` (any task), ``mlp`` (any task: :func:`mlp_model`), ``ridge`` (any task: the closed-form
            read-out of :mod:`hear_gura.analysis.ridge_probe`, raw inputs) or ``knn`` (scene tasks).
        model_factory: builds the model to train from the training rows (default:
            :func:`linear_model`); :mod:`hear_gura.analysis.learned_weights` passes its weighted sum.
    Returns:
        ``{"probe", "test": {metric: value}, "test_std" (k-fold), "per_fold": {fold: {"test", "valid",
        "steps", "best_step", "postprocessing"}}, "seconds", "models" (fold -> trained model; not JSON)}``.
    """
    if probe not in PROBE_KINDS:
        raise HearGuraError(f"unknown fast probe {probe!r}; valid: {', '.join(PROBE_KINDS)}")
    if config.solver not in SOLVERS:
        raise HearGuraError(f"unknown solver {config.solver!r} for the linear probe; valid: {', '.join(SOLVERS)}")
    if config.projection and (config.solver != "lbfgs" or probe != "linear"):
        raise HearGuraError(f"a projection (ProbeConfig.projection={config.projection}) is fitted by the linear "
                            f"probe's 'lbfgs' solver, not by the {probe!r} probe with solver {config.solver!r}: "
                            "pass PROJECTED_PROBE or projection=0")
    if model_factory is not None and config.solver != "adam":
        raise HearGuraError(f"a model_factory's model (learned layer weights) trains with the adam solver, not "
                            f"{config.solver!r}; pass a ProbeConfig with solver='adam'")
    if probe == "knn" and task.embedding_type != "scene":
        raise HearGuraError("the kNN probe is for scene tasks; event tasks use the linear probe")
    missing = [s for s in task.split_names if s not in splits]
    if missing:
        raise HearGuraError(f"task {task.name}: no embeddings for split(s) {', '.join(missing)}")
    start = time.perf_counter()
    per_fold: Dict[str, Dict[str, Any]] = {}
    models: Dict[str, torch.nn.Module] = {}
    moments: Dict[str, Any] = {}  # the ridge probe's sums per split, each taken once
    for index, fold in enumerate(task.data_splits):
        train = SplitArrays.concat([splits[s] for s in fold["train"]])
        valid = SplitArrays.concat([splits[s] for s in fold["valid"]])
        test = SplitArrays.concat([splits[s] for s in fold["test"]])
        name = fold_name(fold)
        with cpu_threads_for(min(len(train.x), config.batch_size), int(np.prod(train.x.shape[1:])), device):
            if probe == "knn":
                per_fold[name] = asdict(FoldScores(
                    score_scene(task, knn_predictions(train, test.x, config, device), test.y),
                    score_scene(task, knn_predictions(train, valid.x, config, device), valid.y)))
                continue
            if probe == "ridge":
                from hear_gura.analysis.ridge_probe import fit_ridge, fold_moments

                arrays = {s: (splits[s].x, splits[s].y) for s in fold["train"]}
                readout, _ = fit_ridge(train.x, train.y, valid.x, valid.y,
                                       moments=lambda: fold_moments(arrays, fold["train"], moments))
                test_scores, valid_scores, setting = fold_scores(task, readout, valid, test, "cpu",
                                                                 config.memory_values)
                per_fold[name] = asdict(FoldScores(test_scores, valid_scores, postprocessing=setting,
                                                   penalty=readout.penalty))
                models[name] = readout
                continue
            if probe == "linear" and config.solver == "lbfgs":
                model, fit = fit_logistic(linear_model(train.x, len(task.labels), config.standardise,
                                                       config.rms_scale, config.projection, seed + index),
                                          _loss_function(task), train.x, train.y, valid.x, valid.y,
                                          config.penalties, config.lbfgs_iterations, device,
                                          memory_values=config.memory_values)
                test_scores, valid_scores, setting = fold_scores(task, model, valid, test, device,
                                                                 config.memory_values)
                per_fold[name] = asdict(FoldScores(test_scores, valid_scores, fit["evaluations"],
                                                   postprocessing=setting, penalty=fit["penalty"]))
                models[name] = model
                continue
            if model_factory is not None:
                factory, train_config = model_factory, config
            elif probe == "mlp":
                factory = lambda rows: mlp_model(int(np.prod(rows.x.shape[1:])), len(task.labels),  # noqa: E731
                                                 config.mlp_hidden, config.mlp_dropout)
                train_config = replace(config, lr=config.mlp_lr)
            else:
                factory = lambda rows: linear_model(rows.x, len(task.labels), config.standardise,  # noqa: E731
                                                    config.rms_scale)
                train_config = config
            torch.manual_seed(seed + index)  # any random initialisation (and dropout) of the model
            result = train_probe(factory(train), task, train, valid, train_config, seed + index, device)
            test_scores, valid_scores, setting = fold_scores(task, result.model, valid, test, device,
                                                             config.memory_values)
        per_fold[name] = asdict(FoldScores(test_scores, valid_scores, result.steps, result.best_step, setting,
                                           result.check_every, result.lr))
        models[name] = result.model.cpu()
    return {"probe": probe, **summarise(task, {k: v["test"] for k, v in per_fold.items()}),
            "per_fold": per_fold, "seconds": time.perf_counter() - start, "models": models}


def score_embedding_folder(task_embeddings: Path, seed: int = 0, device: str = "cpu",
                           config: Optional[ProbeConfig] = None) -> Dict[str, Any]:
    """Score ONE task folder of heareval's embedding runner with the fast probe (not a HEAR score).

    Args:
        task_embeddings: ``<embeddings-dir>/<module>[-options]/<task>/``, as heareval's
            embedding runner (or :mod:`hear_gura.harness.shared_embed`) writes it.
        seed: seeds the batch order of the Adam solver (the probe is zero-initialised, so the seed is all the
            randomness; the L-BFGS solver of :data:`VARIANT_PROBE` has none).
        device: a torch device for the probe (``cpu``, ``cuda``...).
        config: the probe's hyper-parameters; unless given, :func:`variant_probe` of the task's embedding type
            (the logistic probe on scene tasks, the Adam probe on raw inputs on event tasks).
    Returns:
        a JSON-able dict::

            {"probe": "fast",                   # never a HEAR score
             "title": "... fast probe, not HEAR scores ...",
             "task": task_name, "embedding_type": "scene" | "event",
             "primary_metric": metric, "metrics": [...], "width": D, "rows": {split: n},
             "test": {metric: value},           # mean over folds (k-fold) or the test split
             "test_std": {metric: value},       # k-fold only: sample std over folds (as heareval)
             "per_fold": {fold: {"test": {metric: v}, "valid": {metric: v}, "steps": int,
                                 "best_step": int, "postprocessing": [[name, value], ...] | None,
                                 "check_every": int, "lr": float}},
             "knn": {"test": ..., "test_std": ..., "per_fold": ...},   # scene tasks only
             "hparams": {...ProbeConfig...}, "seed": int, "device": str,
             "seconds": float}                  # wall-clock of reading + probing

        Fold names are heareval's (the test split: ``test``, ``fold00``, ...).
    Raises:
        HearGuraError: the folder is not a complete embedding folder.
    """
    start = time.perf_counter()
    folder = Path(task_embeddings)
    task = TaskSpec.load(folder)
    config = variant_probe(task.embedding_type) if config is None else config
    splits = read_embedding_folder(folder, task)
    linear = probe_task(task, splits, "linear", seed, device, config)
    linear.pop("models")
    result: Dict[str, Any] = {
        "probe": "fast", "title": f"{task.name}: linear probe ({TITLE_TAG})", "task": task.name,
        "embedding_type": task.embedding_type, "primary_metric": task.primary_metric,
        "metrics": list(task.metrics), "width": int(next(iter(splits.values())).x.shape[1]),
        "rows": {name: len(s.x) for name, s in splits.items()},
        "test": linear["test"], "per_fold": linear["per_fold"],
    }
    if "test_std" in linear:
        result["test_std"] = linear["test_std"]
    if task.embedding_type == "scene":
        knn = probe_task(task, splits, "knn", seed, device, config)
        knn.pop("models")
        result["knn"] = {k: knn[k] for k in ("test", "test_std", "per_fold") if k in knn}
    result.update(hparams=asdict(config), seed=seed, device=device, seconds=time.perf_counter() - start)
    return result
