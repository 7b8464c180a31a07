"""Checks on audio handed to the HEAR API, and on option values; every error says how to fix the input."""

from __future__ import annotations

import math
from typing import List, Mapping, Optional

import torch

from hear_gura.errors import AudioError


def check_audio(audio: object, min_samples: int, device: Optional[torch.device]) -> torch.Tensor:
    """Validate a HEAR audio batch and return it as float32.

    Args:
        audio: expected ``(batch, samples)`` floating-point torch tensor at 16 kHz,
            values roughly in [-1, 1].
        min_samples: the shortest clip every member can embed.
        device: the model's device (None for a model without parameters).
    Returns:
        ``audio`` as float32 (other float dtypes are converted).
    Raises:
        AudioError: wrong type, shape, dtype, device, length, or non-finite values.
    """
    if not isinstance(audio, torch.Tensor):
        raise AudioError(
            f"audio must be a torch.Tensor of shape (batch, samples), got {type(audio).__name__}; "
            "convert a numpy array with torch.from_numpy(array).float()"
        )
    if audio.dim() != 2:
        fix = {
            1: "for one clip pass audio[None] (shape (1, samples))",
            3: "drop the channel axis, e.g. audio.mean(dim=1) for (batch, channels, samples)",
        }.get(audio.dim(), "reshape it to (batch, samples)")
        raise AudioError(f"audio must be 2-D (batch, samples), got shape {tuple(audio.shape)}; {fix}")
    if not audio.is_floating_point():
        raise AudioError(
            f"audio must be floating point in [-1, 1], got {audio.dtype}; for int16 PCM use "
            "audio.float() / 32768"
        )
    batch, samples = audio.shape
    if batch == 0 or samples == 0:
        raise AudioError(f"audio is empty (shape {tuple(audio.shape)}); pass at least one clip of samples")
    if device is not None and audio.device != device:
        raise AudioError(
            f"audio is on {audio.device} but the model is on {device}; move one of them, e.g. "
            f"model.to(audio.device) or audio.to('{device}')"
        )
    audio = audio.to(torch.float32)
    finite = torch.isfinite(audio).all(dim=1)
    if not bool(finite.all()):
        bad = torch.nonzero(~finite).flatten().tolist()
        raise AudioError(
            f"audio holds NaN or inf in clip(s) {bad[:10]}{' ...' if len(bad) > 10 else ''}; "
            "clean the input (e.g. torch.nan_to_num) before embedding"
        )
    if samples < min_samples:
        raise AudioError(
            f"clips have {samples} samples ({samples / 16:.1f} ms at 16 kHz), but this ensemble needs at "
            f"least {min_samples} ({min_samples / 16:.1f} ms: the receptive field of its members); "
            "zero-pad the clips to that length"
        )
    return audio


def non_finite_numbers(value: object, path: str) -> List[str]:
    """Where JSON-like ``value`` holds NaN or an infinity, e.g. ``["layers.weights[0] = nan"]``.

    Python's ``json`` reads ``NaN``, ``Infinity`` and overflowing literals such as
    ``1e999`` as non-finite floats; no option of this package takes one.

    Args:
        value: nested dicts, lists, tuples and scalars (an option value).
        path: the name of ``value`` in messages (an option name).
    Returns:
        ``"path = value"`` for every non-finite float, depth first; empty when all are finite.
    """
    if isinstance(value, float):
        return [] if math.isfinite(value) else [f"{path} = {value}"]
    if isinstance(value, Mapping):
        return [p for key, item in value.items() for p in non_finite_numbers(item, f"{path}.{key}")]
    if isinstance(value, (list, tuple)):
        return [p for index, item in enumerate(value) for p in non_finite_numbers(item, f"{path}[{index}]")]
    return []
