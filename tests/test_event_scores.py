"""The fast probe's event F-measures (``hear_gura.analysis.event_scores``) equal heareval's scorer, value for value.

heareval's ``EventBasedScore`` (sed_eval, optimal matching) is the reference on the same events: generated event
lists on a 10 ms grid (onset and offset differences that land on the collars, where double rounding decides), with
overlapping events of one label, a label dcase_util reads as None, files without predictions or without references,
predictions whose frame times are numpy doubles, and no prediction at all. Every metric heareval registers as an
``EventBasedScore`` is checked. The fast probe scores event tasks with it (``fast_probe.score_functions``).
"""

from __future__ import annotations

import math
from typing import Any, Dict, List

import numpy as np
import pytest

from hear_gura.analysis.event_scores import FastEventBasedScore, event_counts, fast_score_functions

LABELS = ["60", "61", "62", " none ", "dog"]


def event_metrics() -> List[str]:
    from heareval.score import EventBasedScore, available_scores

    return [name for name, make in available_scores.items()
            if getattr(make, "func", make) is EventBasedScore]


def heareval_scorer(name: str) -> Any:
    from heareval.score import available_scores

    return available_scores[name](label_to_idx={label: i for i, label in enumerate(LABELS)})


def random_events(rng: np.random.Generator, files: List[str], per_file: int, grid_ms: float,
                  numpy_times: bool = False) -> Dict[str, List[Dict[str, Any]]]:
    out: Dict[str, List[Dict[str, Any]]] = {}
    for name in files:
        events = []
        for _ in range(int(rng.integers(0, per_file + 1))):
            start = float(rng.integers(0, 300)) * grid_ms
            end = start + float(rng.integers(1, 60)) * grid_ms
            if numpy_times:  # heareval's predicted events: numpy doubles of the frame times
                start, end = np.float64(start), np.float64(end)
            events.append({"label": LABELS[int(rng.integers(0, len(LABELS)))], "start": start, "end": end})
        out[name] = events
    return out


def same(a: float, b: float) -> bool:
    """Equal, or both undefined (sed_eval's F-measure of no prediction is NaN)."""
    return a == b or (math.isnan(a) and math.isnan(b))


@pytest.mark.parametrize("seed", range(6))
def test_equals_heareval_on_generated_events(seed: int) -> None:
    rng = np.random.default_rng(seed)
    files = [f"clip{i}.wav" for i in range(8)]
    grid = (10.0, 12.5, 3.3)[seed % 3]  # 3.3 ms: times that are not round in binary
    targets = random_events(rng, files[:7], 12, grid)  # clip7 has no references
    predictions = random_events(rng, files[1:], 14, grid, numpy_times=seed % 2 == 0)  # clip0 has no predictions
    for name in event_metrics():
        reference = heareval_scorer(name)
        expected, got = reference(predictions, targets), FastEventBasedScore(reference)(predictions, targets)
        assert [k for k, _ in got] == [k for k, _ in expected] == ["f_measure", "precision", "recall"]
        assert all(same(g, e) for (_, g), (_, e) in zip(got, expected)), (name, got, expected)


def test_collar_boundaries_round_as_sed_eval_does() -> None:
    """Onsets (and offsets) exactly one collar apart in ms: whether they hit depends on the doubles, as in sed_eval.

    0.1 - 0.05 and 0.4 - 0.2 are exactly the collars 0.05 and 0.2 (a hit), 1.05 - 1.0 is a little more (a miss).
    """
    pairs = [(50.0, 100.0), (100.0, 50.0), (200.0, 400.0), (400.0, 200.0), (1000.0, 1050.0), (2000.0, 1950.0),
             (3000.0, 3200.0)]
    for name in event_metrics():
        reference = heareval_scorer(name)
        for ref_start, est_start in pairs:
            for ref_len, est_len in ((100.0, 100.0), (250.0, 300.0), (250.0, 200.0), (500.0, 600.0)):
                targets = {"a.wav": [{"label": "60", "start": ref_start, "end": ref_start + ref_len}]}
                predictions = {"a.wav": [{"label": "60", "start": est_start, "end": est_start + est_len}]}
                assert FastEventBasedScore(reference)(predictions, targets) == reference(predictions, targets), (
                    name, ref_start, est_start, ref_len, est_len)
        # offsets exactly at the tolerance: the collar (0.1 - 0.05) and 20 % of the length (1.25 - 1.0 = 0.2 * 1.25)
        for ref_end, est_end in ((100.0, 50.0), (1250.0, 1000.0), (750.0, 600.0), (1250.0, 1001.0)):
            targets = {"a.wav": [{"label": "60", "start": 0.0, "end": ref_end}]}
            predictions = {"a.wav": [{"label": "60", "start": 0.0, "end": est_end}]}
            assert FastEventBasedScore(reference)(predictions, targets) == reference(predictions, targets), (
                name, ref_end, est_end)


def test_matching_is_maximum_not_greedy() -> None:
    """References at 1.0 and 1.3 s, predictions at 1.15 s (hits both) and 0.9 s (hits the first only): matching the
    first reference to the first prediction, as a greedy pass would, leaves the second unmatched."""
    targets = {"a.wav": [{"label": "60", "start": s, "end": s + 100.0} for s in (1000.0, 1300.0)]}
    predictions = {"a.wav": [{"label": "60", "start": s, "end": s + 100.0} for s in (1150.0, 900.0)]}
    reference = heareval_scorer("event_onset_200ms_fms")
    assert event_counts(predictions, targets, t_collar=0.2) == {"Nref": 2.0, "Nsys": 2.0, "Ntp": 2.0}
    assert FastEventBasedScore(reference)(predictions, targets) == reference(predictions, targets)


def test_no_prediction_and_no_file() -> None:
    targets = {"a.wav": [{"label": "60", "start": 0.0, "end": 100.0}]}
    for predictions in ({"a.wav": []}, {}):
        reference = heareval_scorer("event_onset_200ms_fms")
        expected, got = reference(predictions, targets), FastEventBasedScore(reference)(predictions, targets)
        assert all(same(g, e) for (_, g), (_, e) in zip(got, expected)), (got, expected)


def test_times_it_cannot_prove_go_to_heareval() -> None:
    """A float32 time would be subtracted in float32 inside sed_eval: heareval's scorer scores it."""
    targets = {"a.wav": [{"label": "60", "start": 1000.0, "end": 1100.0}]}
    predictions = {"a.wav": [{"label": "60", "start": np.float32(1049.9999), "end": np.float32(1150.0)}]}
    reference = heareval_scorer("event_onset_50ms_fms")
    assert FastEventBasedScore(reference)(predictions, targets) == reference(predictions, targets)


def test_fast_score_functions_replaces_event_scores_only() -> None:
    from heareval.score import available_scores

    label_to_idx = {label: i for i, label in enumerate(LABELS)}
    functions = {m: available_scores[m](label_to_idx=label_to_idx)
                 for m in ("event_onset_200ms_fms", "segment_1s_er", "top1_acc")}
    fast = fast_score_functions(functions)
    assert isinstance(fast["event_onset_200ms_fms"], FastEventBasedScore)
    assert fast["segment_1s_er"] is functions["segment_1s_er"] and fast["top1_acc"] is functions["top1_acc"]
