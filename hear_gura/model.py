"""The ensemble model: members, alignment, fusion and pooling, as one torch Module.

The work splits in two: *members* turn audio into frame features (the costly
part), and a :class:`Head` turns member features into embeddings (layer
choice, feature and time alignment, fusion, pooling: cheap). An
:class:`EnsembleModel` has one head; :class:`~hear_gura.shared.SharedPass`
runs several heads (the variants of an ablation grid) over one member pass.
"""

from __future__ import annotations

import contextlib
import warnings
from collections import Counter
from dataclasses import dataclass
from typing import ContextManager, Dict, Iterator, List, Mapping, Optional, Sequence, Tuple

import torch

from hear_gura.align import align_time, resample_features
from hear_gura.ensemble import EnsembleConfig
from hear_gura.errors import ConfigError
from hear_gura.fusion import fuse_stream, fused_width
from hear_gura.layers import LayerSelection, parse_layer_choice
from hear_gura.manifest import Manifest
from hear_gura.members.base import Member, build_member
from hear_gura.pooling import parse_pooling, pool
from hear_gura.timestamps import SAMPLE_RATE, FrameGrid
from hear_gura.validation import check_audio

ClipFrames = List[Tuple[torch.Tensor, FrameGrid]]


def target_width(config: EnsembleConfig, widths: Dict[str, int]) -> Optional[int]:
    """The width every member is resampled to, or None when features are not aligned."""
    if config.feature_align == "none" or len(widths) == 1:
        return None
    width = config.feature_width
    return widths[width] if isinstance(width, str) else int(width)


def embedding_sizes(config: EnsembleConfig, widths: Dict[str, int]) -> Tuple[int, int]:
    """(timestamp, scene) embedding widths for members of the given widths."""
    target = target_width(config, widths)
    timestamp = int(fused_width([target or w for w in widths.values()], config.fusion))
    return timestamp, parse_pooling(config.scene_pooling) * timestamp


@dataclass(frozen=True)
class Head:
    """Everything after the members: layer choices, alignment, fusion, pooling."""

    config: EnsembleConfig
    selections: Dict[str, LayerSelection]
    grid_name: str
    target_width: Optional[int]
    timestamp_embedding_size: int
    scene_embedding_size: int
    scene_groups: int

    @classmethod
    def build(cls, config: EnsembleConfig, members: Mapping[str, Member]) -> "Head":
        """The head a config describes, checked against the members' shapes."""
        selections = {}
        for name, member in members.items():
            choice = config.layer_choice(name)
            if member.num_states == 1 and not config.layers_by_member:
                choice = "last"  # a global choice addresses multi-layer members only
            try:
                selections[name] = parse_layer_choice(choice, member.num_states)
            except ConfigError as err:
                raise ConfigError(f"member {name!r}: {err}") from None
        widths = {n: m.width for n, m in members.items()}
        timestamp, scene = embedding_sizes(config, widths)
        return cls(config, selections, config.grid or config.member_names[0], target_width(config, widths),
                   timestamp, scene, parse_pooling(config.scene_pooling))


def run_members(
    members: Mapping[str, Member], heads: Sequence[Head], audio: torch.Tensor, scene: bool,
    lengths: Optional[Sequence[int]],
) -> List[ClipFrames]:
    """Fused frames of a batch for every head, each member run once per distinct hop.

    Args:
        members: the member networks.
        heads: one per output variant (all over these members).
        audio: ``(batch, samples)`` float32 at 16 kHz (validated); with
            ``lengths``, clip ``i`` is ``audio[i, :lengths[i]]``, the rest zeros.
        scene: use each head's scene CREPE hop instead of its timestamp hop.
        lengths: valid samples per clip, or None when all are full length.
    Returns:
        per head, per clip: ``(frames_i, timestamp width)`` and its frame grid.
        Clip ``i`` gets the same result as when run alone (to float round-off):
        members that support padding see one padded batch, the others one batch
        per distinct length.
    """
    batch, samples = audio.shape
    sizes = list(lengths) if lengths is not None else [samples] * batch
    padded = lengths is not None and any(n != samples for n in sizes)
    groups: Dict[int, List[int]] = {}
    for index, size in enumerate(sizes):
        groups.setdefault(size, []).append(index)
    size_tensor = torch.tensor(sizes, device=audio.device) if padded else None

    def member_hop(member: Member, head: Head) -> Optional[int]:
        return head.config.hop_samples(scene) if member.hop_is_configurable else None

    # 1. Each member once per distinct hop, with every layer choice the heads need.
    features: Dict[Tuple[str, Optional[int], LayerSelection, int], torch.Tensor] = {}
    for name, member in members.items():
        for hop in dict.fromkeys(member_hop(member, head) for head in heads):
            selections = list(dict.fromkeys(h.selections[name] for h in heads if member_hop(member, h) == hop))
            if padded and not member.supports_padding:
                for size, rows in groups.items():
                    outputs = member.forward_many(audio[rows, :size], selections, hop)
                    features.update({(name, hop, s, size): x for s, x in zip(selections, outputs)})
                continue
            outputs = member.forward_many(audio, selections, hop, size_tensor)
            for selection, whole in zip(selections, outputs):
                for size, rows in groups.items():
                    count = member.frame_grid(size, hop).count
                    features[(name, hop, selection, size)] = whole[rows, :count] if padded else whole

    # 2. Per head: feature alignment, time alignment, fusion. A member's features
    # are released after the last head that needs them (long clips: memory).
    def feature_key(name: str, head: Head, size: int) -> Tuple[str, Optional[int], LayerSelection, int]:
        return name, member_hop(members[name], head), head.selections[name], size

    uses = Counter(feature_key(name, head, size) for head in heads for name in members for size in groups)

    def aligned_features(head: Head, size: int, target: FrameGrid) -> Iterator[torch.Tensor]:
        for name, member in members.items():
            key = _, hop, _, _ = feature_key(name, head, size)
            x = features[key]
            uses[key] -= 1
            if uses[key] == 0:
                del features[key]
            if head.target_width is not None:
                x = resample_features(x, head.target_width)
            yield align_time(x, member.frame_grid(size, hop), target, head.config.time_align).float()
            del x

    results = []
    for head in heads:
        grid_member = members[head.grid_name]
        grid_hop = member_hop(grid_member, head)
        frames: ClipFrames = [None] * batch  # type: ignore[list-item]
        for size, rows in groups.items():
            target = grid_member.frame_grid(size, grid_hop)
            fused = fuse_stream(aligned_features(head, size, target), len(members), head.config.fusion)
            for position, row in enumerate(rows):
                frames[row] = (fused[position], target)
        results.append(frames)
    return results


def precision(dtype: str, device: torch.device) -> ContextManager[None]:
    """Autocast to the ``dtype`` option (a no-op for float32)."""
    if dtype == "float32":
        return contextlib.nullcontext()
    if device.type == "cpu":
        warnings.warn(
            f"dtype={dtype} on CPU: CPUs without {dtype} units run it far slower than float32 "
            "(measured ~200x for bfloat16 matmuls on AVX2); it is meant for GPUs",
            stacklevel=3,
        )
    return torch.autocast(device_type=device.type, dtype=getattr(torch, dtype))


class EnsembleModel(torch.nn.Module):
    """A HEAR 2021 model: ``load_model`` returns one, the API functions take one.

    Attributes:
        sample_rate: 16000 (Hz).
        timestamp_embedding_size: width of timestamp embeddings.
        scene_embedding_size: width of scene embeddings.
        config: the resolved :class:`~hear_gura.ensemble.EnsembleConfig`.
        members: the member networks (every weight, CREPE's included, is a
            parameter of this module, so ``.to(device)`` moves them all).
        head: layer choices, alignment, fusion and pooling (:class:`Head`).
        random_weights: True when any member uses ``hear-gura fixtures`` weights.
    """

    sample_rate = SAMPLE_RATE

    def __init__(self, config: EnsembleConfig, manifest: Manifest) -> None:
        super().__init__()
        self.config = config
        self.members = torch.nn.ModuleDict(
            {spec.name: build_member(spec, manifest, config.normalizes(spec.name)) for spec in config.members}
        )
        for member in self.members.values():
            member.set_windowing(
                int(config.max_window_seconds * SAMPLE_RATE), int(config.overlap_seconds * SAMPLE_RATE)
            )
        self.head = Head.build(config, self.members)
        self.timestamp_embedding_size = self.head.timestamp_embedding_size
        self.scene_embedding_size = self.head.scene_embedding_size
        self.min_samples = max(m.receptive_field for m in self.members.values())
        self.random_weights = any(m.random_weights for m in self.members.values())
        self.eval()

    @property
    def layer_selections(self) -> Dict[str, LayerSelection]:
        """The parsed layer choice of each member."""
        return self.head.selections

    def device(self) -> Optional[torch.device]:
        """Device of the weights (None for weight-free ensembles such as fbank)."""
        for parameter in self.parameters():
            return parameter.device
        return None

    def frames(
        self, audio: torch.Tensor, scene: bool, lengths: Optional[Sequence[int]] = None
    ) -> ClipFrames:
        """Fused frames of a batch (see :func:`run_members`)."""
        with precision(self.config.dtype, audio.device):
            return run_members(self.members, [self.head], audio, scene, lengths)[0]

    def timestamp_embeddings(self, audio: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        """HEAR ``get_timestamp_embeddings``: ``(B, T, D)`` float32 and ``(B, T)`` ms."""
        audio = check_audio(audio, self.min_samples, self.device())
        with torch.no_grad():
            return stack_timestamp_frames(self.frames(audio, scene=False), audio.device)

    def scene_embeddings(self, audio: torch.Tensor) -> torch.Tensor:
        """HEAR ``get_scene_embeddings``: ``(B, scene_embedding_size)`` float32."""
        audio = check_audio(audio, self.min_samples, self.device())
        with torch.no_grad():
            return pool_scene_frames(self.frames(audio, scene=True), self.head.scene_groups)

    def embed_clips(
        self, clips: Sequence[torch.Tensor]
    ) -> List[Tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
        """Embed clips of any lengths in one zero-padded batch.

        Args:
            clips: 1-D float tensors of samples at 16 kHz, on the model's device.
        Returns:
            per clip: timestamp embeddings ``(T_i, D)``, timestamps ``(T_i,)`` in
            ms, and the scene embedding ``(scene_embedding_size,)``; the same as
            the HEAR functions give for each clip alone (to float round-off).
        """
        audio, lengths = pad_clips(clips, self.min_samples, self.device())
        with torch.no_grad():
            timestamp_frames = self.frames(audio, scene=False, lengths=lengths)
            scene_frames = self.frames(audio, scene=True, lengths=lengths)
        return [
            (embedding, grid.centres_ms().to(audio.device), pool(scene[None], self.head.scene_groups)[0])
            for (embedding, grid), (scene, _) in zip(timestamp_frames, scene_frames)
        ]

    def extra_repr(self) -> str:
        weights = "RANDOM fixture weights, " if self.random_weights else ""
        return (
            f"ensemble={self.config.name!r}, {weights}timestamp_embedding_size={self.timestamp_embedding_size}, "
            f"scene_embedding_size={self.scene_embedding_size}"
        )


def pad_clips(
    clips: Sequence[torch.Tensor], min_samples: int, device: Optional[torch.device]
) -> Tuple[torch.Tensor, List[int]]:
    """Validate 1-D clips and zero-pad them into ``(batch, max samples)``; returns the lengths too."""
    checked = [
        check_audio(c[None] if isinstance(c, torch.Tensor) and c.dim() == 1 else c, min_samples, device)[0]
        for c in clips
    ]
    return torch.nn.utils.rnn.pad_sequence(checked, batch_first=True), [c.shape[-1] for c in checked]


def stack_timestamp_frames(frames: ClipFrames, device: torch.device) -> Tuple[torch.Tensor, torch.Tensor]:
    """Equal-length clips' frames as HEAR outputs: ``(B, T, D)`` and ``(B, T)`` ms."""
    embeddings = torch.stack([f for f, _ in frames])
    timestamps = frames[0][1].centres_ms().to(device).expand(len(frames), -1)
    return embeddings, timestamps


def pool_scene_frames(frames: ClipFrames, groups: int) -> torch.Tensor:
    """Equal-length clips' scene-hop frames pooled: ``(B, groups * D)``."""
    return pool(torch.stack([f for f, _ in frames]), groups)
