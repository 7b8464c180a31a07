"""Layer choice: which hidden states of a member make its output, and how they combine.

A member with ``L`` transformer layers exposes ``L + 1`` selectable states,
indexed as transformers 4.x returned them: ``0`` = the input to the first
layer (feature projection plus convolutional positional embedding), ``1 ..
L-1`` = the raw outputs of layers 1 .. L-1, ``L`` = the final output
(``last_hidden_state``, after the encoder's final LayerNorm on
stable-layer-norm models). Single-state members (CREPE, fbank) have one state.

Accepted values (JSON-friendly, so they travel through ``--model-options``):

- ``"last"``: state ``L`` alone.
- ``"mean"``: the equal-weight mean of all ``L + 1`` states (GURA's "Fuse").
- an int ``i``: state ``i`` alone (negative counts from the end).
- ``"a:b"``: the mean of states ``a .. b-1`` (Python slice; either end may be empty).
- ``{"weights": [w0, ..., wL]}``: the weighted sum ``sum_i w_i h_i / sum_i w_i``
  (SUPERB's weighted sum, with weights given after its softmax or as raw
  non-negative numbers).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Iterable, List, Mapping, Optional, Sequence, Tuple, Union

import torch

from hear_gura.errors import ConfigError

LayerChoiceValue = Union[str, int, Mapping[str, list]]

_FORMS = '"last", "mean", an int index, a slice string "a:b", or {"weights": [...]}'


@dataclass(frozen=True)
class LayerSelection:
    """A parsed layer choice for a member with ``num_states`` selectable states.

    Attributes:
        num_states: number of selectable states (L + 1 for an L-layer transformer).
        weights: one weight per state; zero weights are skipped.
        uniform: True when every selected state has the same weight; the
            combination is then ``sum / count`` (the exact GURA arithmetic).
    """

    num_states: int
    weights: Tuple[float, ...]
    uniform: bool

    @property
    def indices(self) -> Tuple[int, ...]:
        """Indices of the states with a non-zero weight, ascending."""
        return tuple(i for i, w in enumerate(self.weights) if w != 0.0)

    @property
    def deepest(self) -> int:
        """Deepest state the choice needs: a forward pass may stop there."""
        return self.indices[-1]

    def combine(self, states: Iterable[torch.Tensor]) -> torch.Tensor:
        """Reduce states ``0, 1, ...`` (consumed lazily) to one tensor.

        Only one running sum is alive at a time, so a caller that yields states
        one by one never holds all of them. States past :attr:`deepest` are not
        consumed.

        Args:
            states: tensors of one shape, e.g. ``(batch, frames, width)``.
        Returns:
            a tensor of that shape.
        """
        return combine_all([self], states)[0]


def parse_layer_choice(value: LayerChoiceValue, num_states: int) -> LayerSelection:
    """Parse a layer choice for a member with ``num_states`` selectable states.

    Raises:
        ConfigError: the value has none of the accepted forms or is out of range.
    """
    if num_states < 1:
        raise ConfigError(f"a member needs at least one state, got {num_states}")
    if isinstance(value, bool):
        raise ConfigError(f"layer choice {value!r} is not valid; expected {_FORMS}")
    if isinstance(value, int):
        if not -num_states <= value < num_states:
            raise ConfigError(
                f"layer index {value} is out of range for a member with {num_states} "
                f"states (valid: {-num_states} .. {num_states - 1})"
            )
        return _uniform(num_states, [value % num_states])
    if isinstance(value, str):
        if value == "last":
            return _uniform(num_states, [num_states - 1])
        if value == "mean":
            return _uniform(num_states, range(num_states))
        if value.count(":") == 1:
            start, stop = (part.strip() for part in value.split(":"))
            try:
                bounds = slice(int(start) if start else None, int(stop) if stop else None)
            except ValueError:
                raise ConfigError(f"layer slice {value!r} must be 'a:b' with integers") from None
            indices = list(range(num_states))[bounds]
            if not indices:
                raise ConfigError(
                    f"layer slice {value!r} selects no state of a member with {num_states} states"
                )
            return _uniform(num_states, indices)
        raise ConfigError(f"layer choice {value!r} is not valid; expected {_FORMS}")
    if isinstance(value, Mapping) and set(value) == {"weights"}:
        weights = value["weights"]
        if not isinstance(weights, (list, tuple)) or len(weights) != num_states:
            raise ConfigError(
                f"layer weights must be a list of {num_states} numbers (one per state), "
                f"got {weights!r}"
            )
        try:
            floats = tuple(float(w) for w in weights)
        except (TypeError, ValueError):
            raise ConfigError(f"layer weights must be numbers, got {weights!r}") from None
        bad = [f"weight {i} is {w}" for i, w in enumerate(floats) if not (math.isfinite(w) and w >= 0)]
        if bad:
            raise ConfigError(
                f"layer weights must be finite and non-negative (raw weights, or weights after a softmax): "
                f"{', '.join(bad)} in {list(weights)!r}"
            )
        total = sum(floats)
        if not 0 < total < math.inf:
            raise ConfigError(
                f"layer weights must have a positive, finite sum, got {list(weights)!r} (sum {total}); "
                "give at least one weight > 0, e.g. 1.0 for the states to keep"
            )
        nonzero = {w for w in floats if w != 0.0}
        return LayerSelection(num_states, floats, uniform=len(nonzero) == 1)
    raise ConfigError(f"layer choice {value!r} is not valid; expected {_FORMS}")


def _uniform(num_states: int, indices: Iterable[int]) -> LayerSelection:
    chosen = set(indices)
    weights = tuple(1.0 if i in chosen else 0.0 for i in range(num_states))
    return LayerSelection(num_states, weights, uniform=True)



def combine_all(selections: Sequence[LayerSelection], states: Iterable[torch.Tensor]) -> List[torch.Tensor]:
    """Reduce one stream of states by several layer choices at once (one pass, one sum each).

    The states are consumed up to the deepest state any choice needs; each
    choice keeps its own running sum. Uniform choices divide their sum by the
    count at the end (the exact GURA arithmetic); weighted choices scale each state
    by its normalised weight ``w_i / sum(w)`` (float32 states cannot overflow from
    large raw weights); a single state is returned as is.
    """
    deepest = max(s.deepest for s in selections)
    chosen = [set(s.indices) for s in selections]
    totals: List[Optional[torch.Tensor]] = [None] * len(selections)
    for index, state in zip(range(deepest + 1), states):
        for k, selection in enumerate(selections):
            if index not in chosen[k]:
                continue
            term = state if selection.uniform else state * (selection.weights[index] / sum(selection.weights))
            if totals[k] is None:
                totals[k] = term if len(chosen[k]) == 1 else term.clone()
            else:
                totals[k].add_(term)
    results = []
    for k, (selection, total) in enumerate(zip(selections, totals)):
        if total is None:
            raise ConfigError(
                f"the member produced fewer states than the layer choice needs (deepest state {selection.deepest})"
            )
        if len(chosen[k]) == 1 and selection.uniform:
            results.append(total)
        elif selection.uniform:
            results.append(total / len(chosen[k]))
        else:
            results.append(total)
    return results
