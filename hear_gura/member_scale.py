"""How large each member's features are in a concatenation, and the ``member_scale`` that balances them.

heareval's probe standardises nothing (``embedding_norm`` is the identity in
its grids), so in a concatenation the member whose values vary most from clip
to clip dominates the probe's first layer. :func:`measure_member_scales`
measures, on some clips, each member's block of the scene embedding (frames at
the scene hop, mean over frames: ``(clips, width_m)``):

- ``spread``: the root mean square over the block's features of their standard
  deviation across clips (so ``width x spread^2`` is the block's variance);
- ``share_of_variance``: the block's share of the concatenation's variance;
- ``factor``: ``1 / spread``, the ``member_scale`` that gives every member's
  features a spread of 1 (rounded to 4 significant digits).

The factors are fixed numbers in an ensemble file, like learned layer weights:
measure them on clips that are not scored (another task's), and the HEAR module
stays one fixed function of the audio.
"""

from __future__ import annotations

import math
from typing import Any, Callable, Dict, Optional, Sequence

import torch

from hear_gura.ensemble import EnsembleConfig
from hear_gura.errors import ConfigError
from hear_gura.manifest import Manifest

__all__ = ["measure_member_scales", "round_significant"]


def round_significant(value: float, digits: int = 4) -> float:
    """``value`` rounded to ``digits`` significant digits (readable factors in JSON)."""
    if value == 0 or not math.isfinite(value):
        return value
    return round(value, digits - 1 - int(math.floor(math.log10(abs(value)))))


def measure_member_scales(
    config: EnsembleConfig,
    clips: Sequence[torch.Tensor],
    manifest: Optional[Manifest] = None,
    batch_size: int = 16,
    progress: Optional[Callable[[int, int], None]] = None,
) -> Dict[str, Dict[str, Any]]:
    """Per member of ``config``: ``width``, ``spread``, ``share_of_variance`` and ``factor`` (see the module).

    Args:
        config: the ensemble; its own ``fusion``, ``feature_align`` and
            ``member_scale`` are set aside (members are measured unscaled,
            block by block, at their own widths).
        clips: at least 2 clips, 1-D float32 tensors of samples at 16 kHz, of any lengths.
        batch_size: clips per member pass (zero-padded batches).
        progress: called with (clips done, clips) after each batch.
    Returns:
        ``{member: {"width", "spread", "share_of_variance", "factor"}}`` in member order.
    Raises:
        ConfigError: fewer than 2 clips, or a member whose features do not vary
            across the clips (no factor can balance it).
    """
    from hear_gura.member_pass import HeadRequest, run_members
    from hear_gura.model import EnsembleModel, pad_clips

    if len(clips) < 2:
        raise ConfigError(f"measuring member scales needs at least 2 clips (a spread across clips), got {len(clips)}")
    unscaled = config.with_options(fusion="cat_block", feature_align="none", member_scale=None)
    model = EnsembleModel(unscaled, manifest or Manifest())
    pooled = []
    for start in range(0, len(clips), batch_size):
        audio, lengths = pad_clips(clips[start:start + batch_size], model.min_samples, model.device())
        with torch.no_grad():
            (frames,) = run_members([HeadRequest(model.head, model.members, scene=True)], audio, lengths)
        pooled += [f.mean(dim=0) for f, _ in frames]
        if progress is not None:
            progress(min(start + batch_size, len(clips)), len(clips))
    embeddings = torch.stack(pooled).double()  # (clips, sum of widths)
    widths = [model.members[name].width for name in unscaled.member_names]
    if sum(widths) != embeddings.shape[1]:
        raise ConfigError(f"member widths {widths} do not add up to the embedding width {embeddings.shape[1]}")
    result: Dict[str, Dict[str, Any]] = {}
    for name, block in zip(unscaled.member_names, torch.split(embeddings, widths, dim=1)):
        spread = float(block.std(dim=0).pow(2).mean().sqrt())
        if not spread > 0:
            raise ConfigError(f"member {name!r}: its features do not vary across these {len(clips)} clips; "
                              "measure on clips that differ")
        result[name] = {"width": block.shape[1], "spread": spread, "variance": block.shape[1] * spread ** 2,
                        "factor": round_significant(1.0 / spread)}
    total = sum(m["variance"] for m in result.values())
    for m in result.values():
        m["share_of_variance"] = m.pop("variance") / total
    return result
