"""The ridge probe (``hear_gura.analysis.ridge_probe``): scikit-learn's ``Ridge`` on the same rows, whichever
eigendecomposition it takes; sums kept per split add up to the fold's; the penalty kept is the one of lowest
validation error; one factor on the embeddings changes nothing; the read-out's clipped outputs are scored as they are.

Fixtures are generated scene rows (``tests/probe_rows.py``: 4 classes, a class shifting a few values of its own,
an offset and unequal feature scales, as raw member features have).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from hear_gura.analysis.fast_probe import SplitArrays, predict, probe_task
from hear_gura.analysis.ridge_probe import RIDGE_PENALTIES, fit_ridge, ridge_weights, split_moments
from hear_gura.errors import HearGuraError
from probe_rows import KFOLD, rows

@pytest.mark.parametrize("n, width", [(40, 96), (300, 24)], ids=["kernel: rows < width", "gram: rows >= width"])
def test_equals_sklearn_ridge(n: int, width: int) -> None:
    """Both paths give scikit-learn's Ridge (intercept fitted, alpha = penalty * trace(C) / width) on the rows."""
    from sklearn.linear_model import Ridge

    data = rows(np.random.default_rng(0), n, width)
    weights, biases = ridge_weights(data.x, data.y, RIDGE_PENALTIES)
    x = data.x.astype(np.float64)
    scale = ((x - x.mean(0)) ** 2).sum() / width
    for i, penalty in enumerate(RIDGE_PENALTIES):
        reference = Ridge(alpha=penalty * scale, fit_intercept=True, solver="svd").fit(x, data.y.astype(np.float64))
        np.testing.assert_allclose(weights[i].numpy(), reference.coef_.T, rtol=1e-6, atol=1e-9 * np.abs(
            reference.coef_).max())
        np.testing.assert_allclose(biases[i].numpy(), reference.intercept_, rtol=1e-6, atol=1e-9)


def test_sums_per_split_add_up_to_the_folds() -> None:
    rng = np.random.default_rng(1)
    parts = [rows(rng, 50, 8) for _ in range(3)]
    summed = split_moments(parts[0].x, parts[0].y, chunk=7) + split_moments(parts[1].x, parts[1].y) + \
        split_moments(parts[2].x, parts[2].y, chunk=16)
    whole = SplitArrays.concat(parts)
    direct = split_moments(whole.x, whole.y)
    assert summed.rows == direct.rows == 150
    for a, b in ((summed.x, direct.x), (summed.y, direct.y), (summed.xx, direct.xx), (summed.xy, direct.xy)):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-9)


def test_probe_task_keeps_the_penalty_of_lowest_validation_error_and_scores_its_clipped_outputs() -> None:
    rng = np.random.default_rng(2)
    splits = {f"fold0{i}": rows(rng, 60, 40) for i in range(4)}
    result = probe_task(KFOLD, splits, "ridge", seed=0)
    assert probe_task(KFOLD, splits, "ridge", seed=7)["per_fold"] == result["per_fold"]  # no randomness
    assert 0.45 < result["test"]["top1_acc"] <= 1.0  # chance 0.25; 240 test rows: 0.45 is 7 standard errors above
    for index, fold in enumerate(KFOLD.data_splits):
        name = fold["test"][0]
        train = SplitArrays.concat([splits[s] for s in fold["train"]])
        valid, test = splits[fold["valid"][0]], splits[name]
        readout, errors = fit_ridge(train.x, train.y, valid.x, valid.y)
        kept = result["per_fold"][name]["penalty"]
        assert kept == readout.penalty and errors[repr(kept)] == min(errors.values())
        outputs = predict(result["models"][name], KFOLD, test.x)
        weights, biases = ridge_weights(train.x, train.y, [kept])
        expected = np.clip(test.x.astype(np.float64) @ weights[0].numpy() + biases[0].numpy(), 0.0, 1.0)
        np.testing.assert_allclose(outputs, expected, rtol=1e-5, atol=1e-6)  # no softmax on top
        assert outputs.min() >= 0.0 and outputs.max() <= 1.0
        assert not np.allclose(outputs.sum(axis=1), 1.0)


def test_one_factor_on_the_embeddings_changes_nothing() -> None:
    """The penalty is relative to the inputs' own scale, as heareval's probe (Linear -> BatchNorm) is blind to one
    factor on its inputs."""
    rng = np.random.default_rng(3)
    splits = {f"fold0{i}": rows(rng, 60, 40) for i in range(4)}
    scaled = {k: v.with_x(v.x * np.float32(1000.0)) for k, v in splits.items()}
    a, b = probe_task(KFOLD, splits, "ridge"), probe_task(KFOLD, scaled, "ridge")
    assert [f["penalty"] for f in a["per_fold"].values()] == [f["penalty"] for f in b["per_fold"].values()]
    assert a["test"] == pytest.approx(b["test"])


def test_refuses_what_it_cannot_fit() -> None:
    data = rows(np.random.default_rng(4), 10, 6)
    with pytest.raises(HearGuraError, match="at least 2 training rows"):
        fit_ridge(data.x[:1], data.y[:1], data.x, data.y)
    with pytest.raises(HearGuraError, match="validation split, which has no rows"):
        fit_ridge(data.x, data.y, data.x[:0], data.y[:0])
