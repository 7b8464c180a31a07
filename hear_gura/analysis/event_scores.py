"""heareval's event-based F-measures, computed exactly and fast, for the fast probe.

heareval scores event tasks with ``heareval.score.EventBasedScore``: sed_eval's ``EventBasedMetrics`` (optimal
matching) fed file by file from dcase_util containers. Its result depends only on three counts over the files that
have predictions: the system events ``Nsys``, the reference events ``Nref`` and the true positives ``Ntp``, the size
of a maximum matching between reference and system events of the same file and label whose onsets lie within
``t_collar`` seconds of each other (and, where offsets count, whose offsets lie within
``max(t_collar, percentage_of_length * reference length)``). Its per-file filtering and per-class loops in Python cost
most of the fast probe's seconds on a task like ``maestro_like_onset`` (tens of seconds per fold).

:class:`FastEventBasedScore` takes the same counts with numpy (the same IEEE double arithmetic per pair as
``sed_eval.sound_event.EventBasedMetrics.validate_onset`` / ``validate_offset``) and scipy's maximum bipartite
matching (the size of a maximum matching is unique, whichever algorithm finds it), then hands them to sed_eval's own
``precision`` / ``recall`` / ``f_measure``. ``tests/test_event_scores.py`` checks it against heareval's scorer on the
same events, value for value. Inputs it cannot prove it reads as heareval does (a time that is not a double, a file
name that dcase_util would rewrite) are scored by heareval's own scorer.

Events are heareval's: ``{file: [{"label": str, "start": ms, "end": ms}, ...]}``.
"""

from __future__ import annotations

from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence, Tuple

import numpy as np
from scipy.sparse import csr_matrix
from scipy.sparse.csgraph import maximum_bipartite_matching

#: heareval's result of an event-based score: ``(("f_measure", f), ("precision", p), ("recall", r))``.
ScoreTuple = Tuple[Tuple[str, float], ...]

_DOUBLE_TYPES = (float, np.float64)


def _sed_eval_label(label: Any) -> Optional[str]:
    """The label as dcase_util's ``MetaDataItem`` stores it: ``str``, stripped; ``"none"`` or empty is ``None``."""
    text = str(label).strip()
    return None if text.lower() == "none" or text == "" else text


class _Unprovable(Exception):
    """An input this implementation does not read exactly as heareval does (heareval's scorer takes it)."""


def _times(events: Sequence[Mapping[str, Any]], key: str) -> np.ndarray:
    """Seconds of ``events[i][key]`` (ms), each divided as heareval divides it (``value / 1000.0``)."""
    values = [event[key] / 1000.0 for event in events]
    if any(type(v) not in _DOUBLE_TYPES for v in values):  # a float32 time would subtract in float32 there
        raise _Unprovable(key)
    return np.asarray(values, dtype=np.float64)


def _file_counts(reference: Sequence[Mapping[str, Any]], estimated: Sequence[Mapping[str, Any]], t_collar: float,
                 evaluate_onset: bool, evaluate_offset: bool, percentage_of_length: float) -> int:
    """True positives of one file: a maximum matching of (reference, estimated) pairs that hit."""
    if not reference or not estimated:
        return 0
    ref_labels = [_sed_eval_label(e["label"]) for e in reference]
    est_labels = [_sed_eval_label(e["label"]) for e in estimated]
    index = {label: i for i, label in enumerate(dict.fromkeys(ref_labels + est_labels))}
    hit = np.asarray([index[x] for x in ref_labels])[:, None] == np.asarray([index[x] for x in est_labels])[None, :]
    ref_on, est_on = _times(reference, "start"), _times(estimated, "start")
    if evaluate_onset:
        hit &= np.abs(ref_on[:, None] - est_on[None, :]) <= t_collar
    if evaluate_offset:
        ref_off, est_off = _times(reference, "end"), _times(estimated, "end")
        share = percentage_of_length * (ref_off - ref_on)
        tolerance = np.where(share > t_collar, share, t_collar)  # Python's max(t_collar, share), NaN included
        hit &= np.abs(ref_off[:, None] - est_off[None, :]) <= tolerance[:, None]
    if not hit.any():
        return 0
    matched = maximum_bipartite_matching(csr_matrix(hit), perm_type="column")
    return int((matched >= 0).sum())


def event_counts(predictions: Mapping[str, Sequence[Mapping[str, Any]]],
                 targets: Mapping[str, Sequence[Mapping[str, Any]]], t_collar: float = 0.2,
                 evaluate_onset: bool = True, evaluate_offset: bool = False,
                 percentage_of_length: float = 0.5) -> Dict[str, float]:
    """sed_eval's overall ``Nref``, ``Nsys`` and ``Ntp`` as heareval accumulates them (files of ``predictions``).

    Raises:
        _Unprovable: an event time is not a double, or a file name holds a backslash (dcase_util rewrites it).
    """
    n_ref = n_sys = n_tp = 0.0  # sed_eval's counters start at 0.0
    for filename, estimated in predictions.items():
        if "\\" in str(filename):
            raise _Unprovable(filename)
        reference = targets.get(filename, [])
        n_ref += len(reference)
        n_sys += len(estimated)
        n_tp += _file_counts(reference, estimated, t_collar, evaluate_onset, evaluate_offset, percentage_of_length)
    return {"Nref": n_ref, "Nsys": n_sys, "Ntp": n_tp}


class FastEventBasedScore:
    """A drop-in for one of heareval's ``EventBasedScore`` metrics: ``score(predictions, targets)`` returns
    heareval's tuple ``(("f_measure", f), ("precision", p), ("recall", r))`` with the same values.

    Args:
        reference: heareval's scorer for the metric (``available_scores[name](label_to_idx=...)``); its ``params``
            (``t_collar``, ``evaluate_onset``, ``evaluate_offset``, ``percentage_of_length``) are read from it, and it
            scores any input this class cannot read exactly as heareval does.
    """

    def __init__(self, reference: Callable[..., Any]) -> None:
        from sed_eval.sound_event import EventBasedMetrics

        params = dict(getattr(reference, "params", {}))
        names = ("evaluate_onset", "evaluate_offset", "t_collar", "percentage_of_length", "event_matching_type")
        settings = {**dict(zip(names, EventBasedMetrics.__init__.__defaults__)), **params}  # its keyword defaults
        implemented = (not set(params) - set(names) and settings["event_matching_type"] == "optimal"
                       and tuple(reference.scores) == ("f_measure", "precision", "recall"))
        if not implemented:
            raise ValueError(f"{reference}: only sed_eval's optimal matching with the parameters {names} and the scores "
                             f"(f_measure, precision, recall) is implemented; got {params}, {reference.scores}")
        self.reference = reference
        self.name = str(reference)
        self.settings = {k: settings[k] for k in names[:4]}

    def __str__(self) -> str:
        return self.name

    def __call__(self, predictions: Mapping[str, Sequence[Mapping[str, Any]]],
                 targets: Mapping[str, Sequence[Mapping[str, Any]]]) -> ScoreTuple:
        from sed_eval import metric

        try:
            counts = event_counts(predictions, targets, **self.settings)
        except _Unprovable:
            return self.reference(predictions, targets)
        precision = metric.precision(Ntp=counts["Ntp"], Nsys=counts["Nsys"])
        recall = metric.recall(Ntp=counts["Ntp"], Nref=counts["Nref"])
        return (("f_measure", metric.f_measure(precision=precision, recall=recall)), ("precision", precision),
                ("recall", recall))


def fast_score_functions(functions: Mapping[str, Callable[..., Any]]) -> Dict[str, Callable[..., Any]]:
    """heareval's score objects with every ``EventBasedScore`` replaced by its :class:`FastEventBasedScore` (one
    whose settings this module does not implement keeps heareval's scorer)."""
    from heareval.score import EventBasedScore

    out: Dict[str, Callable[..., Any]] = {}
    for name, fn in functions.items():
        try:
            out[name] = FastEventBasedScore(fn) if isinstance(fn, EventBasedScore) else fn
        except ValueError:
            out[name] = fn
    return out


__all__: List[str] = ["FastEventBasedScore", "event_counts", "fast_score_functions"]
