"""The ridge probe: a linear read-out in closed form, for sweeps where even a few thousand Adam steps are too many.

NOT heareval's probe (see :mod:`hear_gura.analysis.fast_probe`, whose splits,
targets, event post-processing and metrics it shares). Per fold:

- inputs are RAW embeddings, as heareval's probe sees them, centred with the
  training mean (the intercept is not penalised);
- targets are the one-hot (multiclass) or multi-hot (multilabel) rows;
- ``W(a) = (C + a * s * I)^-1 B`` with ``C = Xc^T Xc`` (the centred Gram matrix
  of the training rows, ``(width, width)``, float64), ``B = Xc^T Yc`` and
  ``s = trace(C) / width`` (the mean eigenvalue: the penalty scales with the
  inputs, so one factor on the embeddings changes nothing), for every ``a`` of
  :data:`RIDGE_PENALTIES`; one eigendecomposition serves them all: of ``C``, or
  of the kernel ``Xc Xc^T`` ``(rows, rows)`` when there are fewer training rows
  than dimensions (the same solution, ``Xc^T (Xc Xc^T + a s I)^-1 Yc``);
- the penalty kept is the one of lowest mean squared error on the validation
  split (as the linear probe stops on its validation loss, not on a score);
- predictions are the read-out's outputs clipped to ``[0, 1]`` (scores, not
  softmax / sigmoid probabilities: argmax and ranking metrics see the read-out
  itself, and event post-processing thresholds them at 0.5 as heareval does).

The sums behind ``C`` and ``B`` are taken once per split (:func:`split_moments`,
``rows x width^2`` multiply-adds, streamed ``chunk`` rows at a time) and added
up per fold, so a k-fold task reads every row once; the kernel path reads the
fold's training rows into memory (``rows x width`` float64, rows < width). No
randomness: the seed changes nothing.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Dict, Mapping, Optional, Sequence, Tuple

import numpy as np
import torch

from hear_gura.errors import HearGuraError

#: Penalties tried, in units of the mean eigenvalue of the centred training Gram matrix (``trace / width``).
RIDGE_PENALTIES: Tuple[float, ...] = (1e-6, 1e-5, 1e-4, 1e-3, 1e-2, 1e-1, 1.0, 10.0)


@dataclass
class Moments:
    """Sums over the rows of one or more splits, float64: what least squares needs of them.

    Attributes:
        rows: number of rows.
        x: ``(width,)`` sum of the embeddings.
        y: ``(labels,)`` sum of the targets.
        xx: ``(width, width)`` sum of ``x x^T``.
        xy: ``(width, labels)`` sum of ``x y^T``.
    """

    rows: int
    x: torch.Tensor
    y: torch.Tensor
    xx: torch.Tensor
    xy: torch.Tensor

    def __add__(self, other: "Moments") -> "Moments":
        return Moments(self.rows + other.rows, self.x + other.x, self.y + other.y, self.xx + other.xx,
                       self.xy + other.xy)


def split_moments(x: np.ndarray, y: np.ndarray, chunk: int = 8192) -> Moments:
    """The :class:`Moments` of ``x`` ``(rows, width)`` (any array, a memmap too) and ``y`` ``(rows, labels)``."""
    if x.ndim != 2:
        raise HearGuraError(f"the ridge probe reads (rows, width) embeddings, got shape {tuple(x.shape)}")
    width, labels = x.shape[1], y.shape[1]
    out = Moments(0, torch.zeros(width, dtype=torch.float64), torch.zeros(labels, dtype=torch.float64),
                  torch.zeros(width, width, dtype=torch.float64), torch.zeros(width, labels, dtype=torch.float64))
    for start in range(0, len(x), chunk):
        xb = torch.from_numpy(np.asarray(x[start:start + chunk], dtype=np.float64))
        yb = torch.from_numpy(np.asarray(y[start:start + chunk], dtype=np.float64))
        out = out + Moments(len(xb), xb.sum(0), yb.sum(0), xb.T @ xb, xb.T @ yb)
    return out


class RidgeReadout(torch.nn.Module):
    """``(rows, width) -> (rows, labels)``: ``clip(x W + b, 0, 1)``, computed in float64 (raw inputs with large
    offsets meet weights that cancel them), returned as float32.

    ``returns_scores``: its outputs are the scores to evaluate, not logits
    (:func:`hear_gura.analysis.fast_probe.predict` applies no softmax / sigmoid).
    """

    returns_scores = True

    def __init__(self, weight: torch.Tensor, bias: torch.Tensor, penalty: float) -> None:
        super().__init__()
        self.register_buffer("weight", weight.double())
        self.register_buffer("bias", bias.double())
        self.penalty = penalty

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x.double() @ self.weight + self.bias).clamp(0.0, 1.0).float()


def _solve(matrix: torch.Tensor, rhs: torch.Tensor, width: int, penalties: Sequence[float]) -> torch.Tensor:
    """``(matrix + a * s * I)^-1 rhs`` for every penalty ``a``, ``(penalties, n, labels)``, from one eigendecomposition
    of the symmetric ``(n, n)`` ``matrix`` (the Gram matrix or the kernel: both have trace ``trace(C)``), with
    ``s = trace(matrix) / width``."""
    matrix = (matrix + matrix.T) / 2  # exactly symmetric for eigh
    scale = max(float(torch.trace(matrix)) / width, 1e-12)
    eigenvalues, vectors = torch.linalg.eigh(matrix)
    projected = vectors.T @ rhs  # (n, labels)
    eigenvalues = eigenvalues.clamp(min=0.0)[:, None]
    return torch.stack([vectors @ (projected / (eigenvalues + a * scale)) for a in penalties])


def ridge_weights(train_x: np.ndarray, train_y: np.ndarray, penalties: Sequence[float] = RIDGE_PENALTIES,
                  moments: Optional[Callable[[], Moments]] = None) -> Tuple[torch.Tensor, torch.Tensor]:
    """The ridge solutions for every penalty: ``(weights (penalties, width, labels), biases (penalties, labels))``,
    float64, from the smaller eigendecomposition: of the kernel ``Xc Xc^T`` (rows x rows) when there are fewer rows
    than dimensions, since ``(Xc^T Xc + p I)^-1 Xc^T = Xc^T (Xc Xc^T + p I)^-1``; else of the Gram matrix
    ``Xc^T Xc`` (width x width) built from ``moments()`` (default: the rows' own).

    Raises:
        HearGuraError: fewer than 2 training rows.
    """
    rows, width = len(train_x), int(np.prod(train_x.shape[1:]))
    if rows < 2:
        raise HearGuraError(f"the ridge probe needs at least 2 training rows, got {rows}")
    if rows < width:
        xs = torch.from_numpy(np.asarray(train_x, dtype=np.float64))
        ys = torch.from_numpy(np.asarray(train_y, dtype=np.float64))
        mean_x, mean_y = xs.mean(0), ys.mean(0)
        centred = xs - mean_x
        weights = centred.T @ _solve(centred @ centred.T, ys - mean_y, width, penalties)
    else:
        sums = moments() if moments else split_moments(train_x, train_y)
        mean_x, mean_y = sums.x / sums.rows, sums.y / sums.rows
        gram = sums.xx - sums.rows * torch.outer(mean_x, mean_x)
        cross = sums.xy - sums.rows * torch.outer(mean_x, mean_y)
        weights = _solve(gram, cross, width, penalties)
    return weights, mean_y[None, :] - torch.einsum("w,pwl->pl", mean_x, weights)


def fit_ridge(train_x: np.ndarray, train_y: np.ndarray, valid_x: np.ndarray, valid_y: np.ndarray,
              penalties: Sequence[float] = RIDGE_PENALTIES, moments: Optional[Callable[[], Moments]] = None,
              chunk: int = 8192) -> Tuple[RidgeReadout, Dict[str, float]]:
    """The read-out of the penalty with the lowest validation mean squared error (ties: the larger penalty).

    Args:
        train_x, train_y: the training rows ``(rows, width)``, ``(rows, labels)`` (a memmap view is fine).
        valid_x, valid_y: the validation rows.
        moments: gives the training rows' :class:`Moments` when they are needed (the Gram path), e.g. summed
            from sums kept per split (:func:`fold_moments`).
    Returns:
        (the read-out, ``{repr(penalty): validation mean squared error per row}``).
    Raises:
        HearGuraError: fewer than 2 training rows, or no validation rows.
    """
    if len(valid_x) == 0:
        raise HearGuraError("the ridge probe chooses its penalty on the validation split, which has no rows")
    weights, biases = ridge_weights(train_x, train_y, penalties, moments)
    errors = torch.zeros(len(penalties), dtype=torch.float64)
    for start in range(0, len(valid_x), chunk):
        xb = torch.from_numpy(np.asarray(valid_x[start:start + chunk], dtype=np.float64))
        yb = torch.from_numpy(np.asarray(valid_y[start:start + chunk], dtype=np.float64))
        outputs = torch.einsum("rw,pwl->prl", xb, weights) + biases[:, None, :]
        errors += ((outputs - yb[None]) ** 2).sum(dim=(1, 2))
    errors /= len(valid_x)
    best = min(range(len(penalties)), key=lambda i: (float(errors[i]), -penalties[i]))
    return (RidgeReadout(weights[best], biases[best], float(penalties[best])),
            {repr(float(a)): float(e) for a, e in zip(penalties, errors)})


def fold_moments(splits: Mapping[str, Tuple[np.ndarray, np.ndarray]], names: Sequence[str],
                 cache: Dict[str, Moments]) -> Moments:
    """The summed :class:`Moments` of the named splits, each computed once (kept in ``cache``)."""
    total = None
    for name in names:
        if name not in cache:
            cache[name] = split_moments(*splits[name])
        total = cache[name] if total is None else total + cache[name]
    if total is None:
        raise HearGuraError("a fold with no training split")
    return total
