"""The logistic probe: the fast probe's linear layer fitted by full-batch L-BFGS along a path of L2 penalties.

NOT heareval's probe (see :mod:`hear_gura.analysis.fast_probe`, whose splits,
targets, event post-processing and metrics it shares). The linear probe takes
Adam steps on mini-batches until its validation loss stops falling: thousands
of steps when the inputs are small (a pitch posterior sums to 1) and the task
has many classes. This one's cost is bounded whatever the inputs:
``len(LOGISTIC_PENALTIES) * max_iter`` iterations of L-BFGS at most (each a
pass or a few over the training rows). Per fold:

- inputs: RAW embeddings divided by one number, their root mean square on the
  training rows (:func:`~hear_gura.analysis.fast_probe.linear_model` with
  ``rms_scale``): heareval's probe is invariant to one factor on its inputs,
  and so is this one; the per-dimension scales heareval's probe sees stay;
- from zero weights, for each penalty ``a`` of :data:`LOGISTIC_PENALTIES`,
  strongest first, each starting where the previous stopped: at most
  ``max_iter`` iterations of L-BFGS (strong-Wolfe line search, all training
  rows at once) on the mean training loss (softmax cross-entropy, multiclass;
  per-label binary cross-entropy, multilabel) plus ``a / 2 * ||W||^2`` (the
  bias is not penalised);
- the state kept is the one of lowest validation loss (as the linear probe
  stops on its validation loss, not on a score); the path stops at the first
  penalty whose validation loss is higher than the best so far;
- predictions are softmax / sigmoid outputs, as the linear probe's.

The iteration budget is part of the probe's definition: with weak penalties the
problem is close to separable and L-BFGS would need hundreds of iterations to
reach the optimum, so the path is both a penalty path and an early stop (the
weights grow with the iterations). At one penalty and enough iterations it is
scikit-learn's ``LogisticRegression`` (``tests/test_logistic_probe.py``). No
randomness (full batches, zero start): the seed changes nothing.
"""

from __future__ import annotations

import math
from typing import Callable, Dict, Optional, Sequence, Tuple

import numpy as np
import torch

from hear_gura.errors import HearGuraError

#: L2 penalties tried, strongest first (each fit starts where the last stopped); in nats per row per squared
#: weight, on inputs of root mean square 1.
LOGISTIC_PENALTIES: Tuple[float, ...] = (1e-1, 1e-2, 1e-3, 1e-4, 1e-5, 1e-6)
#: L-BFGS iterations per penalty at most.
LOGISTIC_MAX_ITER = 25


def fit_logistic(model: torch.nn.Sequential, loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
                 x_train: np.ndarray, y_train: np.ndarray, x_valid: np.ndarray, y_valid: np.ndarray,
                 penalties: Sequence[float] = LOGISTIC_PENALTIES, max_iter: int = LOGISTIC_MAX_ITER,
                 device: str = "cpu", chunk: int = 65536,
                 memory_values: int = 500_000_000) -> Tuple[torch.nn.Sequential, Dict[str, float]]:
    """Fit ``model`` along the penalty path; keep the state of lowest validation loss.

    Args:
        model: maps ``(rows, width)`` float32 inputs to ``(rows, labels)`` logits and ends in a ``Linear``, whose
            weight is penalised (:func:`~hear_gura.analysis.fast_probe.linear_model`, zero-initialised).
        loss_fn: mean loss of ``(logits, targets)`` (softmax cross-entropy or binary cross-entropy).
        x_train, y_train: ``(rows, width)`` inputs and ``(rows, labels)`` targets (read into memory once).
        x_valid, y_valid: the validation split's.
        penalties: L2 penalties, fitted in this order, each from where the previous stopped.
        max_iter: L-BFGS iterations per penalty at most.
        chunk: rows per forward pass (gradients are summed over chunks: one full batch).
        memory_values: inputs with more values than this stay where they are (a memmap) and are read a chunk at a
            time at every evaluation (the same chunks: the same fit), instead of being moved to the device whole.
    Returns:
        the model at its state of lowest validation loss (eval mode, on the CPU), and
        ``{"penalty", "valid_loss", "evaluations"}`` (loss and gradient evaluations over the whole path).
    Raises:
        HearGuraError: no penalties, no training rows or no validation rows.
    """
    if not penalties:
        raise HearGuraError("the logistic probe needs at least one penalty")
    if len(x_train) == 0:
        raise HearGuraError("the logistic probe needs training rows")
    if len(x_valid) == 0:
        raise HearGuraError("the logistic probe chooses its penalty on the validation split, which has no rows")
    from hear_gura.analysis.fast_probe import DeviceRows  # here, not above: fast_probe imports this module

    where = torch.device(device)
    model = model.to(where)
    layer = model[-1]
    xt, xv = DeviceRows(x_train, where, memory_values), DeviceRows(x_valid, where, memory_values)
    fitted = model
    if len(model) > 1 and xt.whole is not None and xv.whole is not None and not any(
            p.requires_grad for p in model[:-1].parameters()):
        # The layers before the last have no trained parameters (the RMS scaling or standardisation: buffers
        # only), so their outputs are the same at every evaluation: computed once here, the same values
        # (elementwise, row by row), instead of at each of the path's hundreds of evaluations.
        with torch.no_grad():
            xt.whole, xv.whole = model[:-1](xt.whole), model[:-1](xv.whole)
        fitted = torch.nn.Sequential(layer)
    yt = torch.from_numpy(np.asarray(y_train, dtype=np.float32)).to(where)
    yv = torch.from_numpy(np.asarray(y_valid, dtype=np.float32)).to(where)
    evaluations = 0

    def summed_loss(x: DeviceRows, y: torch.Tensor, backward: bool) -> torch.Tensor:
        """The mean loss over all rows, chunk by chunk (gradients accumulated when ``backward``)."""
        total = torch.zeros((), device=where)
        for i, rows in zip(range(0, len(x), chunk), x.chunks(chunk)):
            part = loss_fn(fitted(rows), y[i:i + chunk]) * (len(rows) / len(x))
            if backward:
                part.backward()
            total = total + part.detach()
        return total

    def state() -> Dict[str, torch.Tensor]:
        return {k: v.detach().clone() for k, v in model.state_dict().items()}

    best: Tuple[float, float, Optional[Dict[str, torch.Tensor]]] = (math.inf, float("nan"), None)
    for penalty in penalties:
        optimiser = torch.optim.LBFGS([p for p in model.parameters() if p.requires_grad], lr=1.0,
                                      max_iter=max_iter, history_size=20, tolerance_grad=1e-7,
                                      tolerance_change=1e-10, line_search_fn="strong_wolfe")

        def closure() -> torch.Tensor:
            nonlocal evaluations
            evaluations += 1
            optimiser.zero_grad()
            total = summed_loss(xt, yt, backward=True)
            regulariser = 0.5 * penalty * layer.weight.pow(2).sum()
            regulariser.backward()
            return total + regulariser.detach()

        model.train()
        optimiser.step(closure)
        model.eval()
        with torch.no_grad():
            valid_loss = float(summed_loss(xv, yv, backward=False))
        if valid_loss < best[0]:
            best = (valid_loss, penalty, state())
        elif valid_loss > best[0]:
            break  # weaker penalties (and more iterations) only fit the training rows closer
    if best[2] is None:  # every validation loss was NaN: keep the last state, its loss says so
        best = (float("nan"), penalty, state())
    model.load_state_dict(best[2])
    model.eval()
    return model.cpu(), {"penalty": best[1], "valid_loss": best[0], "evaluations": evaluations}
