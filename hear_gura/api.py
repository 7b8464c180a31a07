"""The HEAR 2021 API, written once. ``hear_gura/<ensemble>.py`` files bind a name to it."""

from __future__ import annotations

from typing import Any, Callable, Tuple

import torch

from hear_gura.errors import HearGuraError
from hear_gura.manifest import Manifest
from hear_gura.model import EnsembleModel
from hear_gura.registry import load_ensemble

__all__ = ["loader", "load_ensemble_model", "get_timestamp_embeddings", "get_scene_embeddings"]


def load_ensemble_model(ensemble: str, model_file_path: str = "", with_keys: bool = False,
                        **options: Any) -> EnsembleModel:
    """Build a named ensemble.

    Args:
        ensemble: a name from ``ensembles/`` (``hear-gura list --names``).
        model_file_path: a checkpoint manifest (JSON: checkpoint id -> local
            path); empty uses ``$HEAR_GURA_MANIFEST``, then the libraries'
            caches and downloads.
        **options: overrides of the ensemble's options (heareval's
            ``--model-options``), e.g. ``fusion="avg"``, ``layers="mean"``.
        with_keys: compute each member's computation key (for a feature cache).
    Returns:
        an :class:`EnsembleModel` in eval mode on the CPU.
    """
    config = load_ensemble(ensemble).with_options(**options)
    return EnsembleModel(config, Manifest.load(model_file_path), with_keys=with_keys)


def loader(ensemble: str) -> Callable[..., EnsembleModel]:
    """The ``load_model`` function of a HEAR module bound to ``ensemble``."""

    def load_model(model_file_path: str = "", **options: Any) -> EnsembleModel:
        return load_ensemble_model(ensemble, model_file_path, **options)

    load_model.__doc__ = f"Load the {ensemble!r} ensemble; see hear_gura.api.load_ensemble_model."
    load_model.__qualname__ = load_model.__name__ = "load_model"
    return load_model


def _as_model(model: object) -> EnsembleModel:
    if not isinstance(model, EnsembleModel):
        raise HearGuraError(
            f"model must be what hear_gura's load_model returned, got {type(model).__name__}"
        )
    return model


def get_timestamp_embeddings(audio: torch.Tensor, model: EnsembleModel) -> Tuple[torch.Tensor, torch.Tensor]:
    """Frame embeddings and their centres.

    Args:
        audio: ``(batch, samples)`` float32 at 16 kHz, on the model's device.
        model: from ``load_model``.
    Returns:
        embeddings ``(batch, frames, model.timestamp_embedding_size)`` float32 and
        timestamps ``(batch, frames)`` in ms (frame centres), on the audio's device.
    """
    return _as_model(model).timestamp_embeddings(audio)


def get_scene_embeddings(audio: torch.Tensor, model: EnsembleModel) -> torch.Tensor:
    """One embedding per clip: ``(batch, model.scene_embedding_size)`` float32."""
    return _as_model(model).scene_embeddings(audio)
