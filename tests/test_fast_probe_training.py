"""The fast probe's early stop never scores an untrained probe: a run whose checks never beat the untrained
(zero) state is redone with a smaller learning rate, checking every step; a run that learned is left alone.

Fixtures are generated scene rows: 4 classes, 2,048 standard-normal values per row, a class shifting a few
values of its own (the shape of wide member features with little class information per value).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from hear_gura.analysis.fast_probe import ProbeConfig, SplitArrays, TaskSpec, linear_model, predict, train_probe

TASK = TaskSpec.from_metadata({"task_name": "t", "embedding_type": "scene", "prediction_type": "multiclass",
                               "evaluation": ["top1_acc"], "split_mode": "trainvaltest"}, ["a", "b", "c", "d"])


def rows(rng: np.random.Generator, n: int, shift: float, block: int, width: int = 2048) -> SplitArrays:
    """``n`` rows, classes in turn; class c adds ``shift`` to values ``c * block`` to ``(c + 1) * block - 1``."""
    y = np.arange(n) % 4
    x = rng.standard_normal((n, width)).astype(np.float32)
    for c in range(4):
        x[y == c, c * block:(c + 1) * block] += shift
    return SplitArrays(x, np.eye(4, dtype=np.float32)[y])


def trained(shift: float, block: int, retries: int, train_rows: int = 64):
    rng = np.random.default_rng(0)
    train = rows(rng, train_rows, shift, block)
    valid, test = rows(rng, 1024, shift, block), rows(rng, 1024, shift, block)
    torch.manual_seed(0)
    result = train_probe(linear_model(train.x, 4), TASK, train, valid, ProbeConfig(retries=retries))
    predictions = predict(result.model, TASK, test.x)
    return result, predictions, float((predictions.argmax(1) == test.y.argmax(1)).mean())


def test_a_probe_that_never_beats_its_untrained_state_is_redone_not_scored_at_chance() -> None:
    """64 training rows of 2,048 values, class information in 6 values per class: at the regular learning
    rate the first check (25 steps) is already worse than the untrained state."""
    kept, predictions, accuracy = trained(shift=2.0, block=6, retries=0)
    assert kept.best_step == 0 and kept.check_every == 25 and kept.lr == pytest.approx(3e-3)
    assert np.ptp(predictions, axis=0).max() == 0 and accuracy == 0.25  # the zero state: one answer for all
    redone, predictions, accuracy = trained(shift=2.0, block=6, retries=2)
    assert redone.best_step > 0 and redone.check_every == 1 and redone.lr == pytest.approx(3e-4)
    assert np.ptp(predictions, axis=0).max() > 0
    assert accuracy > 0.3  # chance is 0.25; 1,024 test rows put 0.3 about four standard errors above it


def test_a_probe_that_learns_is_never_redone() -> None:
    """With class information in 64 values per class the first run learns: retries change nothing."""
    first, p0, _ = trained(shift=0.5, block=64, retries=0)
    second, p2, _ = trained(shift=0.5, block=64, retries=2)
    assert first.best_step > 0 and (first.check_every, second.check_every) == (25, 25)
    assert first.lr == second.lr == pytest.approx(3e-3) and first.steps == second.steps
    assert np.array_equal(p0, p2)
    for a, b in zip(first.model.state_dict().values(), second.model.state_dict().values()):
        assert torch.equal(a, b)
