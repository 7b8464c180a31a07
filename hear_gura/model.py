"""The ensemble model: members, alignment, fusion and pooling, as one torch Module.

The work splits in two: *members* turn audio into frame features (the costly
part), and a :class:`Head` turns member features into embeddings (layer
choice, feature and time alignment, fusion, pooling: cheap);
:mod:`hear_gura.member_pass` runs one over the other. An
:class:`EnsembleModel` is a member pass with one head;
:class:`~hear_gura.shared.StudyPass` runs many heads (every variant of a
study, across ensembles) over one pass of their distinct members.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Dict, List, Mapping, Optional, Sequence, Tuple

import torch

from hear_gura.ensemble import EnsembleConfig
from hear_gura.errors import ConfigError
from hear_gura.fusion import fused_width
from hear_gura.identity import digest_of, locate_checkpoint, member_identity
from hear_gura.layers import LayerSelection, parse_layer_choice
from hear_gura.manifest import Manifest
from hear_gura.member_pass import ClipFrames, HeadRequest, run_members
from hear_gura.members.base import Member, MemberSpec, build_member
from hear_gura.pooling import parse_pooling, pool
from hear_gura.timestamps import SAMPLE_RATE
from hear_gura.validation import check_audio

if TYPE_CHECKING:  # pragma: no cover
    from hear_gura.feature_cache import FeatureCache
    from hear_gura.members.registry import MemberDescription

__all__ = ["ClipFrames", "EnsembleModel", "Head", "build_config_member", "computation_key", "embedding_sizes"]


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
    def build(cls, config: EnsembleConfig, members: Mapping[str, "Member | MemberDescription"]) -> "Head":
        """The head a config describes, checked against the members' shapes.

        ``members``: built members, or their descriptions (no weights loaded:
        :func:`hear_gura.identity.describe_member`); only ``width`` and
        ``num_states`` are read.

        Raises:
            ConfigError: a layer choice does not fit its member: out of range,
                a per-member choice other than ``"last"`` for a member with one
                state (CREPE, fbank), or a ``layers`` option given to an ensemble
                none of whose members has more than one state.
        """
        check_layers_have_layers(config, {name: member.num_states for name, member in members.items()})
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


#: Layer choices that pick the one state of a single-state member (anything else asks for layers it lacks).
_ONE_STATE_CHOICES = ("last", 0, -1)


def _picks_the_only_state(choice: object) -> bool:
    return not isinstance(choice, bool) and any(choice == c and type(choice) is type(c) for c in _ONE_STATE_CHOICES)


def check_layers_have_layers(config: EnsembleConfig, num_states: Mapping[str, int]) -> None:
    """Refuse layer choices addressed to members that have no layers to choose from.

    A per-member choice (``{"crepe": "mean"}``) for a one-state member must be
    ``"last"`` (or 0 / -1). A global choice applies to multi-layer members only;
    when no member has more than one state it has nothing to apply to, and is
    refused unless it is ``"last"`` or what the ensemble file declares (so
    ``members=["crepe"]`` on ``fusion_cat``, which declares ``"mean"``, still loads).
    """
    single = [name for name, states in num_states.items() if states == 1]
    if config.layers_by_member:
        for name in single:
            if name in config.layers and not _picks_the_only_state(config.layers[name]):
                raise ConfigError(
                    f"member {name!r} has one state (no layers to choose from), so its layer choice must be "
                    f"\"last\", got {config.layers[name]!r}; remove {name!r} from the layers option"
                )
        return
    if len(single) < len(num_states) or _picks_the_only_state(config.layers):
        return
    from hear_gura.registry import load_ensemble

    try:
        declared = load_ensemble(config.name).layers
    except ConfigError:  # not a named ensemble: only "last" is the default
        declared = "last"
    if config.layers != declared:
        raise ConfigError(
            f"layers {config.layers!r} has nothing to choose from: no member of {config.name!r} has more than "
            f"one state ({', '.join(single)} each have one); drop the layers option or add a multi-layer member"
        )


def computation_key(spec: MemberSpec, config: EnsembleConfig, manifest: Manifest) -> str:
    """The identity of what a member computes in an ensemble (no weights loaded; checkpoints hashed once).

    Its kind and params with every default filled in, the CONTENT of its
    checkpoint (not the id or path: the same weights under two names are one
    member), whether its waveform is normalised, its windowing of long clips and
    its precision. Two members with equal keys give equal features, so a study
    loads and runs such a member once (hop and layer selection are chosen per
    call, see :mod:`hear_gura.member_pass`).
    """
    found = member_identity(locate_checkpoint(spec, manifest))
    params = spec.resolved_params()
    if found["content"] is not None:
        params.pop("checkpoint", None)
    return digest_of({
        "type": spec.type, "params": params, "content": found["content"],
        "normalize_waveform": config.normalizes(spec.name),
        "window_samples": [int(config.max_window_seconds * SAMPLE_RATE), int(config.overlap_seconds * SAMPLE_RATE)],
        "dtype": config.dtype,
    })[:32]


def build_config_member(spec: MemberSpec, config: EnsembleConfig, manifest: Manifest,
                        key: Optional[str] = None) -> Member:
    """Build and load one member as ``config`` uses it: normalisation, windowing, precision (eval mode)."""
    member = build_member(spec, manifest, config.normalizes(spec.name))
    member.set_windowing(int(config.max_window_seconds * SAMPLE_RATE), int(config.overlap_seconds * SAMPLE_RATE))
    member.compute_dtype = config.dtype
    member.computation_key = key
    if key is None:
        return member
    params = spec.resolved_params()
    alias = spec.kind.state_alias(params)
    if alias is not None:  # the feature cache keys its states by the fuller configuration's key
        fuller = MemberSpec(spec.name, spec.type, dict(alias.params))
        member.cache_alias = replace(alias, key=computation_key(fuller, config, manifest))
        params = dict(alias.params)
    member.cache_description = {"kind": spec.type, "params": params, "dtype": config.dtype,
                                "normalize_waveform": config.normalizes(spec.name)}
    return member


class InferenceModule(torch.nn.Module):
    """A module that embeds only: it stays in eval mode and says where its weights are."""

    def train(self, mode: bool = True) -> "InferenceModule":
        """Keep the model in eval mode whatever ``mode``: it is for inference only.

        Training mode would switch on the members' dropout (measured: outputs
        change by up to 7.1), so ``model.train()`` followed by embedding gives the
        eval-mode embeddings. ``model.training`` stays False.
        """
        super().train(False)
        return self

    def device(self) -> Optional[torch.device]:
        """Device of the weights (None for weight-free ensembles such as fbank)."""
        for parameter in self.parameters():
            return parameter.device
        return None


class EnsembleModel(InferenceModule):
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

    def __init__(self, config: EnsembleConfig, manifest: Manifest, with_keys: bool = False) -> None:
        """Args:
            config: the resolved ensemble.
            manifest: where checkpoints are.
            with_keys: also compute each member's :func:`computation_key` (hashes its
                checkpoint once), which a feature cache needs.
        """
        super().__init__()
        self.config = config
        self.members = torch.nn.ModuleDict({
            spec.name: build_config_member(spec, config, manifest,
                                           computation_key(spec, config, manifest) if with_keys else None)
            for spec in config.members
        })
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

    def frames(
        self, audio: torch.Tensor, scene: bool, lengths: Optional[Sequence[int]] = None
    ) -> ClipFrames:
        """Fused frames of a batch (see :func:`hear_gura.member_pass.run_members`)."""
        return run_members([HeadRequest(self.head, self.members, scene)], audio, lengths)[0]

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
        self, clips: Sequence[torch.Tensor], cache: Optional["FeatureCache"] = None,
        counts: Optional[Counter] = None,
    ) -> List[Tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
        """Embed clips of any lengths in one zero-padded batch, timestamp and scene outputs in ONE member pass.

        Members with a fixed hop (SSL models, fbank) run once for both outputs;
        CREPE runs at its two hops. The numbers are those of two separate passes
        (the same operations on the same inputs).

        Args:
            clips: 1-D float tensors of samples at 16 kHz, on the model's device.
            cache: per-clip member features on disk (the model must have been built ``with_keys``).
            counts: if given, counts the member forward passes run (by member name).
        Returns:
            per clip: timestamp embeddings ``(T_i, D)``, timestamps ``(T_i,)`` in
            ms, and the scene embedding ``(scene_embedding_size,)``; the same as
            the HEAR functions give for each clip alone (to float round-off).
        """
        audio, lengths = pad_clips(clips, self.min_samples, self.device())
        requests = [HeadRequest(self.head, self.members, scene=False), HeadRequest(self.head, self.members, scene=True)]
        with torch.no_grad():
            timestamp_frames, scene_frames = run_members(requests, audio, lengths, cache=cache, counts=counts)
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
