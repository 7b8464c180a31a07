"""Fusion of aligned member outputs into one embedding per frame."""

from __future__ import annotations

from typing import Iterable, Sequence

import torch

from hear_gura.errors import ConfigError

FUSIONS = ("avg", "cat_interleave", "cat_block")


def fuse(outputs: Sequence[torch.Tensor], method: str) -> torch.Tensor:
    """Combine member outputs of shape ``(batch, frames, width_m)``.

    - ``avg``: elementwise mean; all widths equal; output width = that width.
    - ``cat_interleave``: ``out[..., n * i + m] = member m's feature i``
      (stack on a new last axis, then flatten); all widths equal; output
      width = n x width.
    - ``cat_block``: ``[member 0 | member 1 | ...]``; any widths; output width =
      their sum.
    A single member passes through unchanged.
    """
    if method not in FUSIONS:
        raise ConfigError(f"unknown fusion {method!r}; valid: {', '.join(FUSIONS)}")
    if not outputs:
        raise ConfigError("fusion needs at least one member output")
    if len(outputs) == 1:
        return outputs[0]
    frames = {o.shape[:2] for o in outputs}
    if len(frames) != 1:
        raise ConfigError(f"members disagree on (batch, frames) before fusion: {sorted(frames)}")
    fused_width([o.shape[-1] for o in outputs], method)  # validates the widths
    if method == "cat_block":
        return torch.cat(list(outputs), dim=-1)
    stacked = torch.stack(list(outputs), dim=-1)
    if method == "avg":
        return stacked.mean(dim=-1)
    return stacked.flatten(start_dim=-2)


def fuse_stream(outputs: Iterable[torch.Tensor], count: int, method: str) -> torch.Tensor:
    """:func:`fuse` of ``count`` member outputs produced one at a time, bit-identical to it.

    For ``cat_interleave`` each output is written into its strided slot of a
    preallocated result as soon as it is produced, so at most one member output
    is alive beside the result (``fuse`` holds all of them plus the stacked
    copy: for a 10-minute clip through ``fusion_cat``, 3 x 123 MB more). The
    other methods collect the outputs and call :func:`fuse`.
    """
    if method != "cat_interleave" or count == 1:
        return fuse(list(outputs), method)
    result, index = None, -1
    for index, output in enumerate(outputs):
        if result is None:
            result = output.new_empty(*output.shape[:-1], output.shape[-1] * count)
        elif output.shape != result.shape[:-1] + (result.shape[-1] // count,):
            raise ConfigError(
                f"fusion 'cat_interleave' needs members of one width and frame count, got "
                f"{tuple(output.shape)} after {tuple(result.shape[:-1])} x {result.shape[-1] // count}"
            )
        result[..., index::count] = output
    if result is None or index != count - 1:
        raise ConfigError(f"fusion expected {count} member outputs")
    return result


def fused_width(widths: Sequence[int], method: str) -> int:
    """Output width of :func:`fuse` for members of the given widths."""
    if len(widths) == 1:
        return widths[0]
    if method == "cat_block":
        return sum(widths)
    if len(set(widths)) != 1:
        raise ConfigError(
            f"fusion {method!r} needs members of one width, got {list(widths)}; set "
            f'"feature_align": "linear" with a "feature_width", or use "cat_block"'
        )
    return widths[0] if method == "avg" else widths[0] * len(widths)
