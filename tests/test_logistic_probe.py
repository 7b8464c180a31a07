"""The logistic probe (``hear_gura.analysis.logistic_probe``) and the RMS scaling of raw inputs.

- at one penalty the fit is scikit-learn's multinomial ``LogisticRegression`` on the same (scaled) rows;
- the penalty kept is the one of lowest validation loss among those fitted, and the path stops where it rose;
- one factor on the embeddings changes neither the logistic probe nor ``rms_scale``'s linear probe, while the
  raw linear probe does change; heareval's own probe has that invariance (the reason for ``rms_scale``);
- ``probe_task`` with :data:`LOGISTIC_PROBE` is deterministic and refuses an unknown solver.

Fixtures are generated scene rows (``tests/probe_rows.py``: 4 classes, a class shifting a few values of its own,
an offset and unequal feature scales, as raw member features have).
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch

from hear_gura.analysis.fast_probe import (LOGISTIC_PROBE, ProbeConfig, SplitArrays, _loss_function, linear_model,
                                           predict, probe_task, rms_value)
from hear_gura.analysis.logistic_probe import LOGISTIC_PENALTIES, fit_logistic
from hear_gura.errors import HearGuraError
from probe_rows import KFOLD, rows

def test_one_penalty_is_sklearn_logistic_regression() -> None:
    """mean cross-entropy + a/2 |W|^2 on x / rms is LogisticRegression(C = 1 / (a n)) on the same scaled rows."""
    from sklearn.linear_model import LogisticRegression

    rng = np.random.default_rng(0)
    train, valid = rows(rng, 200, 16), rows(rng, 40, 16)
    penalty = 1e-2
    model, fit = fit_logistic(linear_model(train.x, 4, standardise=False, rms_scale=True), _loss_function(KFOLD),
                              train.x, train.y, valid.x, valid.y, penalties=(penalty,), max_iter=500)
    assert fit["penalty"] == penalty
    scaled = train.x.astype(np.float64) / rms_value(train.x)
    reference = LogisticRegression(C=1.0 / (penalty * len(scaled)), tol=1e-10, max_iter=10_000).fit(
        scaled, train.y.argmax(1))
    # float32 L-BFGS stops where the loss no longer changes in float32: weights to 5e-3, outputs to 1e-3
    np.testing.assert_allclose(model[-1].weight.detach().numpy(), reference.coef_, atol=5e-3)
    np.testing.assert_allclose(predict(model, KFOLD, valid.x), reference.predict_proba(valid.x / rms_value(train.x)),
                               atol=1e-3)


def test_keeps_the_lowest_validation_loss_and_stops_where_it_rose() -> None:
    rng = np.random.default_rng(1)

    def equal_scales(n: int) -> SplitArrays:  # 60 values of one scale, 3 of them shifted per class
        y = np.arange(n) % 4
        x = rng.standard_normal((n, 60))
        for c in range(4):
            x[y == c, 3 * c:3 * c + 3] += 1.5
        return SplitArrays((x + 2.0).astype(np.float32), np.eye(4, dtype=np.float32)[y])

    train, valid = equal_scales(40), equal_scales(200)  # few rows, many values: weak penalties overfit
    loss_fn = _loss_function(KFOLD)
    losses = []
    for penalty in LOGISTIC_PENALTIES:  # each penalty alone, fitted from zero, as far as the path went
        model, fit = fit_logistic(linear_model(train.x, 4, False, True), loss_fn, train.x, train.y, valid.x, valid.y,
                                  penalties=(penalty,), max_iter=500)
        losses.append(fit["valid_loss"])
    model, fit = fit_logistic(linear_model(train.x, 4, False, True), loss_fn, train.x, train.y, valid.x, valid.y,
                              max_iter=500)
    kept = LOGISTIC_PENALTIES.index(fit["penalty"])
    assert 0 < kept < len(LOGISTIC_PENALTIES) - 1, "the fixture should have an interior best penalty"
    assert losses[kept] == pytest.approx(min(losses[:kept + 2]), rel=1e-3)
    assert losses[kept + 1] > losses[kept]  # the next penalty was worse, so the path stopped there


def test_one_factor_on_the_inputs_changes_nothing() -> None:
    rng = np.random.default_rng(2)
    splits = {f"fold0{i}": rows(rng, 60, 12, shift=0.8) for i in range(4)}
    # a power of two: x / rms(x) is then bit for bit the same, so the fits are too (any factor: to rounding)
    scaled = {name: s.with_x(s.x * np.float32(2.0 ** -10)) for name, s in splits.items()}
    short = ProbeConfig(standardise=False, max_steps=100)  # the Adam probes: a few checks are enough to compare
    for config in (LOGISTIC_PROBE, replace(short, rms_scale=True)):
        a = probe_task(KFOLD, splits, "linear", seed=0, config=config)
        b = probe_task(KFOLD, scaled, "linear", seed=0, config=config)
        assert a["per_fold"] == b["per_fold"], config.solver
        for fold, model in a["models"].items():
            np.testing.assert_array_equal(predict(model, KFOLD, splits[fold].x),
                                          predict(b["models"][fold], KFOLD, scaled[fold].x))
    raw = probe_task(KFOLD, splits, "linear", seed=0, config=short)
    raw_scaled = probe_task(KFOLD, scaled, "linear", seed=0, config=short)
    assert [f["valid"] for f in raw["per_fold"].values()] != [f["valid"] for f in raw_scaled["per_fold"].values()]


def test_hearevals_probe_is_invariant_to_one_input_factor() -> None:
    """heareval's FullyConnectedPrediction (BatchNorm after its first linear layer, every grid point of its default
    and fast grids) gives the same logits and the same first-layer gradient for x and 1000 x: what ``rms_scale``
    gives the raw linear probe. (Up to BatchNorm's eps, 1e-5 added to the hidden variance: on inputs so small that
    the hidden variance nears it, heareval's probe is not invariant either.)"""
    from heareval.predictions.task_predictions import FAST_PARAM_GRID, PARAM_GRID, FullyConnectedPrediction

    for grid in (PARAM_GRID, FAST_PARAM_GRID):
        assert min(grid["hidden_layers"]) >= 1 and grid["hidden_norm"] == [torch.nn.BatchNorm1d]
        assert grid["norm_after_activation"] == [False] and grid["embedding_norm"] == [torch.nn.Identity]
    conf = {"hidden_layers": 2, "hidden_dim": 32, "dropout": 0.0, "hidden_norm": torch.nn.BatchNorm1d,
            "norm_after_activation": False, "initialization": torch.nn.init.xavier_uniform_}
    x = torch.randn(64, 20) * 0.5 + 0.3
    target = torch.randint(0, 5, (64,))
    outputs, gradients = [], []
    for factor in (1.0, 1000.0):
        torch.manual_seed(0)
        model = FullyConnectedPrediction(20, 5, "multiclass", conf).train()
        logits = model.forward_logit(x * factor)
        torch.nn.functional.cross_entropy(logits, target).backward()
        outputs.append(logits.detach())
        gradients.append(model.hidden[0].weight.grad.clone())
    torch.testing.assert_close(outputs[0], outputs[1], rtol=1e-3, atol=1e-4)
    torch.testing.assert_close(gradients[0], gradients[1], rtol=1e-3, atol=1e-6)


def test_no_randomness_and_clear_errors() -> None:
    rng = np.random.default_rng(3)
    splits = {f"fold0{i}": rows(rng, 40, 8) for i in range(4)}
    a = probe_task(KFOLD, splits, "linear", seed=0, config=LOGISTIC_PROBE)
    assert a["per_fold"] == probe_task(KFOLD, splits, "linear", seed=7, config=LOGISTIC_PROBE)["per_fold"]
    assert all(f["penalty"] in LOGISTIC_PENALTIES for f in a["per_fold"].values())
    with pytest.raises(HearGuraError, match="solver"):
        probe_task(KFOLD, splits, "linear", config=replace(LOGISTIC_PROBE, solver="sgd"))
    with pytest.raises(HearGuraError, match="adam solver"):
        probe_task(KFOLD, splits, "linear", config=LOGISTIC_PROBE,
                   model_factory=lambda rows: linear_model(rows.x, 4, False, True))
    empty = SplitArrays(np.zeros((0, 8), np.float32), np.zeros((0, 4), np.float32))
    with pytest.raises(HearGuraError, match="training rows"):
        fit_logistic(linear_model(splits["fold00"].x, 4, False, True), _loss_function(KFOLD), empty.x, empty.y,
                     splits["fold01"].x, splits["fold01"].y)
    with pytest.raises(HearGuraError, match="penalty"):
        fit_logistic(linear_model(splits["fold00"].x, 4, False, True), _loss_function(KFOLD), splits["fold00"].x,
                     splits["fold00"].y, splits["fold01"].x, splits["fold01"].y, penalties=())


@pytest.mark.parametrize("standardise", [False, True])
def test_fixed_input_layers_applied_once_fit_the_same_bits(standardise: bool) -> None:
    """The scaling (or standardisation) before the layer has no trained parameters, so ``fit_logistic`` applies it
    once, not at every evaluation: the fit must equal, bit for bit, the same layer fitted on inputs the test scales
    itself with the same buffers; and inputs too large to hold (read per chunk, ``memory_values``) fit the same."""
    rng = np.random.default_rng(3)
    train, valid = rows(rng, 160, 24), rows(rng, 40, 24)
    loss = _loss_function(KFOLD)
    model = linear_model(train.x, 4, standardise=standardise, rms_scale=True)
    prefix = model[0]
    with torch.no_grad():
        scaled_train = prefix(torch.from_numpy(train.x)).numpy()
        scaled_valid = prefix(torch.from_numpy(valid.x)).numpy()
    plain = torch.nn.Sequential(torch.nn.Linear(24, 4))
    torch.nn.init.zeros_(plain[0].weight)
    torch.nn.init.zeros_(plain[0].bias)
    fitted, fit = fit_logistic(model, loss, train.x, train.y, valid.x, valid.y)
    reference, reference_fit = fit_logistic(plain, loss, scaled_train, train.y, scaled_valid, valid.y)
    assert fit == reference_fit
    assert torch.equal(fitted[-1].weight, reference[0].weight) and torch.equal(fitted[-1].bias, reference[0].bias)
    streamed, streamed_fit = fit_logistic(linear_model(train.x, 4, standardise=standardise, rms_scale=True), loss,
                                          train.x, train.y, valid.x, valid.y, memory_values=100)
    assert streamed_fit == fit and torch.equal(streamed[-1].weight, fitted[-1].weight)
