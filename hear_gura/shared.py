"""A study's member pass: many ensemble variants, each distinct member loaded once and run once per batch.

A study (several ensembles, an option grid) mostly repeats member
computations: ``cat``, ``fusion_cat``, ``avg`` and ``hubert`` all run
HuBERT-xlarge; every variant of a fusion or layer grid runs the same members.
:class:`StudyPass` builds each distinct member once, keyed by
:func:`hear_gura.model.computation_key` (kind, checkpoint *content*, params,
normalisation, windowing, precision), gives every variant a
:class:`~hear_gura.model.Head` over those shared networks, and computes each
distinct ``(member, hop, layer selection)`` once per batch
(:func:`hear_gura.member_pass.run_members`). Each variant's output is its own
:class:`~hear_gura.model.EnsembleModel`'s (bit-identical where the same
operations run on the same batch, which is the case for every option here).
Variants that change a member (``normalize_waveform``, ``dtype``, windowing,
``members``) simply get their own computation of it.
"""

from __future__ import annotations

from collections import Counter
from typing import TYPE_CHECKING, Any, Dict, List, Mapping, Optional, Sequence, Tuple

import torch

from hear_gura.ensemble import EnsembleConfig
from hear_gura.manifest import Manifest
from hear_gura.member_pass import HeadRequest, run_members
from hear_gura.members.base import Member
from hear_gura.model import (
    Head, InferenceModule, build_config_member, computation_key, pool_scene_frames, stack_timestamp_frames,
)
from hear_gura.timestamps import SAMPLE_RATE
from hear_gura.validation import check_audio

if TYPE_CHECKING:  # pragma: no cover
    from hear_gura.feature_cache import FeatureCache


class StudyPass(InferenceModule):
    """The variants of a study over one pass of their distinct members.

    Args:
        configs: one resolved :class:`~hear_gura.ensemble.EnsembleConfig` per variant.
        manifest: where the checkpoints are.
        cache: optional per-clip feature cache (members are keyed for it).
    Attributes:
        networks: computation key -> member network (each loaded once).
        heads: one per variant; ``variant_members[i]`` maps variant ``i``'s member
            names to the shared networks.
        counts: member forward passes run so far, by computation key.
        sample_rate: 16000 (what heareval reads).
    Raises:
        ConfigError / CheckpointError: as :class:`~hear_gura.model.EnsembleModel` would, for any variant.
    """

    sample_rate = SAMPLE_RATE

    def __init__(self, configs: Sequence[EnsembleConfig], manifest: Manifest,
                 cache: Optional["FeatureCache"] = None) -> None:
        super().__init__()
        if not configs:
            raise ValueError("a study needs at least one variant")
        self.configs = list(configs)
        self.networks = torch.nn.ModuleDict()
        self.heads: List[Head] = []
        self.variant_members: List[Dict[str, Member]] = []
        for config in self.configs:
            members: Dict[str, Member] = {}
            for spec in config.members:
                key = computation_key(spec, config, manifest)
                if key not in self.networks:
                    self.networks[key] = build_config_member(spec, config, manifest, key)
                members[spec.name] = self.networks[key]
            self.heads.append(Head.build(config, members))
            self.variant_members.append(members)
        self.min_samples = max(m.receptive_field for m in self.networks.values())
        self.cache = cache
        self.counts: Counter = Counter()
        self.eval()

    @classmethod
    def of_variants(cls, variants: Sequence[Tuple[str, Mapping[str, Any]]], manifest: Manifest,
                    cache: Optional["FeatureCache"] = None) -> "StudyPass":
        """A study of ``(ensemble name, load_model options)`` pairs."""
        from hear_gura.registry import load_ensemble

        return cls([load_ensemble(name).with_options(**dict(options)) for name, options in variants], manifest, cache)

    def _frames(self, audio: torch.Tensor, scene: bool):
        requests = [HeadRequest(head, members, scene) for head, members in zip(self.heads, self.variant_members)]
        with torch.no_grad():
            return run_members(requests, audio, cache=self.cache, counts=self.counts)

    def timestamp_embeddings(self, audio: torch.Tensor) -> List[Tuple[torch.Tensor, torch.Tensor]]:
        """Per variant: HEAR timestamp embeddings ``(B, T_v, D_v)`` and timestamps ``(B, T_v)`` in ms."""
        audio = check_audio(audio, self.min_samples, self.device())
        return [stack_timestamp_frames(frames, audio.device) for frames in self._frames(audio, scene=False)]

    def scene_embeddings(self, audio: torch.Tensor) -> List[torch.Tensor]:
        """Per variant: HEAR scene embeddings ``(B, scene width_v)``."""
        audio = check_audio(audio, self.min_samples, self.device())
        return [pool_scene_frames(frames, head.scene_groups)
                for frames, head in zip(self._frames(audio, scene=True), self.heads)]

    def sizes(self) -> List[Dict[str, int]]:
        """Per variant: its timestamp and scene embedding widths."""
        return [{"timestamp": h.timestamp_embedding_size, "scene": h.scene_embedding_size} for h in self.heads]
