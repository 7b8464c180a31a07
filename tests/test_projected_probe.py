"""The projected probe (``ProbeConfig.projection``, :data:`PROJECTED_PROBE`): the logistic probe read through
heareval's first layer as initialised and its BatchNorm at the training statistics, frozen, with no non-linearity.

- the frozen layer is heareval's ``FullyConnectedPrediction`` first layer for the same seed, and its standardised
  outputs are what heareval's BatchNorm gives on the training rows;
- the fitted probe is one affine map of its inputs (a linear probe), and one factor on the inputs changes nothing;
- the global random generator is left as it was; folds draw their own projections; bad settings are refused.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch

from hear_gura.analysis.fast_probe import (LOGISTIC_PROBE, PROJECTED_PROBE, Standardize, linear_model, predict,
                                           probe_task, projected_inputs)
from hear_gura.errors import HearGuraError
from probe_rows import KFOLD, rows


def test_projection_is_hearevals_first_layer_and_batchnorm() -> None:
    from heareval.predictions.task_predictions import FullyConnectedPrediction

    rng = np.random.default_rng(0)
    x = rows(rng, 300, 20).x
    conf = {"hidden_layers": 1, "hidden_dim": 64, "dropout": 0.1, "hidden_norm": torch.nn.BatchNorm1d,
            "norm_after_activation": False, "initialization": torch.nn.init.xavier_uniform_}
    torch.manual_seed(11)
    theirs = FullyConnectedPrediction(20, 4, "multiclass", conf).train()
    first, norm = projected_inputs(x, torch.nn.Identity(), 64, seed=11)
    assert torch.equal(first.weight, theirs.hidden[0].weight)
    assert not any(p.requires_grad for p in first.parameters())
    inputs = torch.from_numpy(x)
    with torch.no_grad():  # BatchNorm in training mode: the batch's statistics (eps 1e-5 in its variance)
        torch.testing.assert_close(norm(first(inputs)), theirs.hidden[1](theirs.hidden[0](inputs)), rtol=1e-3,
                                   atol=1e-3)


def test_fitted_probe_is_one_affine_map_and_ignores_one_input_factor() -> None:
    rng = np.random.default_rng(1)
    splits = {f"fold0{i}": rows(rng, 80, 24, shift=0.8) for i in range(4)}
    result = probe_task(KFOLD, splits, "linear", seed=5, config=replace(PROJECTED_PROBE, projection=32))
    model = result["models"]["fold00"]
    assert isinstance(model[-1], torch.nn.Linear) and model[-1].in_features == 32
    x = torch.from_numpy(splits["fold00"].x)
    with torch.no_grad():
        bias = model(torch.zeros(1, 24))
        weight = model(torch.eye(24)) - bias  # row i: the map of unit vector i
        torch.testing.assert_close(model(x), x @ weight + bias, rtol=1e-4, atol=1e-3)
    # x / rms(x) is bit for bit the same for a power of two, so the projections and fits are too
    scaled = {name: s.with_x(s.x * np.float32(2.0 ** -10)) for name, s in splits.items()}
    again = probe_task(KFOLD, scaled, "linear", seed=5, config=replace(PROJECTED_PROBE, projection=32))
    assert again["per_fold"] == result["per_fold"]


def test_seeds_folds_and_the_global_generator() -> None:
    rng = np.random.default_rng(2)
    splits = {f"fold0{i}": rows(rng, 60, 16) for i in range(4)}
    config = replace(PROJECTED_PROBE, projection=16)
    torch.manual_seed(0)
    before = torch.get_rng_state()
    projected_inputs(splits["fold00"].x, torch.nn.Identity(), 16, seed=42)
    assert torch.equal(torch.get_rng_state(), before)  # drawn from its own seed, the global generator untouched
    a = probe_task(KFOLD, splits, "linear", seed=42, config=config)
    assert a["per_fold"] == probe_task(KFOLD, splits, "linear", seed=42, config=config)["per_fold"]
    weights = [m[-3].weight for m in a["models"].values()]  # the frozen layer of each fold: drawn from seed + fold
    assert not torch.equal(weights[0], weights[1])
    other = probe_task(KFOLD, splits, "linear", seed=43, config=config)
    assert not torch.equal(other["models"]["fold00"][-3].weight, weights[0])
    # projection 0 is the logistic probe, unchanged
    plain = linear_model(splits["fold00"].x, 4, standardise=False, rms_scale=True)
    assert [type(m) for m in plain] == [Standardize, torch.nn.Linear]
    logistic = probe_task(KFOLD, splits, "linear", seed=42, config=LOGISTIC_PROBE)
    np.testing.assert_array_equal(predict(logistic["models"]["fold00"], KFOLD, splits["fold00"].x),
                                  predict(probe_task(KFOLD, splits, "linear", seed=1, config=LOGISTIC_PROBE)
                                          ["models"]["fold00"], KFOLD, splits["fold00"].x))


def test_projection_needs_the_lbfgs_linear_probe() -> None:
    rng = np.random.default_rng(3)
    splits = {f"fold0{i}": rows(rng, 30, 8) for i in range(4)}
    with pytest.raises(HearGuraError, match="lbfgs"):
        probe_task(KFOLD, splits, "linear", config=replace(PROJECTED_PROBE, solver="adam"))
    with pytest.raises(HearGuraError, match="lbfgs"):
        probe_task(KFOLD, splits, "knn", config=PROJECTED_PROBE)
