"""SUPERB's weighted sum of a member's states, learned jointly with the fast probe, and exported.

The model (Yang et al., SUPERB, 2021): ``mix = sum_i softmax(w)_i h_i`` over the
member's ``S`` states ``h_i``, with one weight per state initialised equal
(``w = 0``), then the fast probe's fixed standardisation and linear layer
(:mod:`hear_gura.analysis.fast_probe`), all trained together on the task's
training split and early-stopped on its validation split, per fold. The
standardisation uses the training statistics of the equal-weight mix (a fixed
affine map, so the mix the probe sees is exactly ``mix``). The weights learn at
:data:`WEIGHT_LR_SCALE` times the probe's learning rate: at the probe's own
rate (3e-3) and a few hundred steps they would barely leave uniform.

The learned weights are exported as the ensemble option the HEAR module
already takes, ``{"layers": {member: {"weights": [w_0, ..., w_{S-1}]}}}``
(:mod:`hear_gura.layers`: weights after the softmax), so the same mix runs as
``hear_gura.<ensemble>`` with ``--model-options`` and heareval's own probe can
score it. k-fold tasks learn one set per fold; the exported set is their mean.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

import numpy as np
import torch

from hear_gura.analysis.fast_probe import (
    ProbeConfig, SplitArrays, Standardize, TaskSpec, probe_task,
)
from hear_gura.atomic import save_json

#: The learning rate of the layer weights, relative to the probe's.
WEIGHT_LR_SCALE = 10.0


class WeightedSum(torch.nn.Module):
    """``(rows, states, width) -> (rows, width)``: ``sum_i softmax(logits)_i x[:, i]``."""

    def __init__(self, num_states: int) -> None:
        super().__init__()
        self.logits = torch.nn.Parameter(torch.zeros(num_states))
        self.logits.lr_scale = WEIGHT_LR_SCALE  # read by fast_probe.parameter_groups

    def weights(self) -> torch.Tensor:
        """The softmax weights, ``(states,)``, summing to 1."""
        return torch.softmax(self.logits, dim=0)

    def forward(self, states: torch.Tensor) -> torch.Tensor:
        return torch.einsum("s,bsd->bd", self.weights(), states)


def mix_stats(x: Any, chunk: int = 16384) -> Tuple[torch.Tensor, torch.Tensor]:
    """Mean and standard deviation per feature of the equal-weight mix of ``(rows, states, width)``."""
    total = np.zeros(x.shape[2], dtype=np.float64)
    squares = np.zeros(x.shape[2], dtype=np.float64)
    for start in range(0, len(x), chunk):
        mixed = np.asarray(x[start:start + chunk], dtype=np.float64).mean(axis=1)
        total += mixed.sum(axis=0)
        squares += (mixed ** 2).sum(axis=0)
    mean = total / max(1, len(x))
    std = np.sqrt(np.maximum(squares / max(1, len(x)) - mean ** 2, 0.0))
    return torch.from_numpy(mean).float(), torch.from_numpy(np.maximum(std, 1e-5)).float()


def weighted_model(train: SplitArrays, labels: int) -> torch.nn.Module:
    """Weighted sum, then the fast probe's standardisation and zero-initialised linear layer."""
    num_states, width = train.x.shape[1], train.x.shape[2]
    mean, std = mix_stats(train.x)
    layer = torch.nn.Linear(width, labels)
    torch.nn.init.zeros_(layer.weight)
    torch.nn.init.zeros_(layer.bias)
    return torch.nn.Sequential(WeightedSum(num_states), Standardize(mean, std), layer)


def learn_weights(task: TaskSpec, splits: Mapping[str, SplitArrays], seed: int = 0, device: str = "cpu",
                  config: ProbeConfig = ProbeConfig()) -> Dict[str, Any]:
    """Train the weighted sum with the probe on every fold; the fast probe's scores and the weights.

    Args:
        splits: split -> rows whose ``x`` is ``(rows, states, width)`` (e.g. :meth:`StateStore.stacked`).
    Returns:
        :func:`~hear_gura.analysis.fast_probe.probe_task`'s result (``test``, ``per_fold``, ``models``...)
        plus ``weights_per_fold`` (fold -> softmax weights) and ``weights`` (their mean, summing to 1).
    """
    result = probe_task(task, splits, "linear", seed, device, config,
                        model_factory=lambda rows: weighted_model(rows, len(task.labels)))
    per_fold = {fold: model[0].weights().detach().double().tolist() for fold, model in result["models"].items()}
    mean = np.mean(np.array(list(per_fold.values())), axis=0)
    result["weights_per_fold"] = per_fold
    result["weights"] = (mean / mean.sum()).tolist()
    return result


def layers_option(weights: Mapping[str, Sequence[float]], members: Optional[Sequence[str]] = None) -> Dict[str, Any]:
    """The ``--model-options`` object that runs these mixes: ``{"layers": {member: {"weights": [...]}}}``.

    Args:
        weights: member -> softmax weights (one per state).
        members: also restrict the ensemble to these members (``"members"`` option), or None.
    """
    option: Dict[str, Any] = {"layers": {m: {"weights": [float(w) for w in ws]} for m, ws in weights.items()}}
    if members:
        option["members"] = list(members)
    return option


def export(path: "str | Path", ensemble: str, per_task: Mapping[str, Dict[str, Any]]) -> List[Path]:
    """Write the learned mixes as ``--model-options`` objects, one per task.

    ``path`` holds ``{"ensemble", "module", "note", "model_options": {task folder: options}}``;
    beside it, ``<stem>.<task><suffix>`` holds one task's options alone, ready for
    ``python -m heareval.embeddings.runner hear_gura.<ensemble> --model-options "$(cat FILE)"``.

    heareval's embedding runner names its output folder after the options
    (``<module>-layers=<slug of the value>``); 49 full-precision weights make a slug of
    about 1,000 characters, which :mod:`hear_gura.heareval_compat` (fix 4) cuts to 64
    with a digest of the whole, so any mix runs through heareval's runner.

    Returns:
        the files written (``path`` first).
    """
    path = Path(path)
    save_json(path, {"ensemble": ensemble, "module": f"hear_gura.{ensemble}",
                     "note": "layer weights learned with the fast probe (not HEAR scores); "
                             "each task's value is a --model-options object", "model_options": dict(per_task)})
    written = [path]
    for task, options in per_task.items():
        single = path.with_name(f"{path.stem}.{task}{path.suffix or '.json'}")
        save_json(single, options)
        written.append(single)
    return written
