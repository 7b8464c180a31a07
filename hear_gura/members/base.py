"""The member interface and the factory that builds members from specs."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Dict, Iterator, List, Mapping, Optional, Sequence, Tuple

import torch
import torch.nn.functional as F

from hear_gura.chunking import run_windowed
from hear_gura.errors import ConfigError
from hear_gura.layers import LayerSelection, combine_all
from hear_gura.manifest import Manifest
from hear_gura.timestamps import FrameGrid

if TYPE_CHECKING:  # pragma: no cover
    from hear_gura.identity import CheckpointLocation
    from hear_gura.members.registry import MemberDescription

@dataclass(frozen=True)
class MemberSpec:
    """A member as declared in an ensemble file.

    Attributes:
        name: the member's name inside the ensemble (``hubert``, ``crepe``...).
        type: a registered member kind (:mod:`hear_gura.members.registry`):
            ``hf`` (transformers checkpoint), ``s3prl`` (safe s3prl upstreams),
            ``crepe``, ``pesto``, ``basic_pitch``, ``resemblyzer``, or a kind
            another package registers.
        params: the kind's parameters as the file gives them (each kind's
            ``PARAMS`` declares them; :meth:`resolved_params` fills defaults).
    """

    name: str
    type: str
    params: Dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "MemberSpec":
        """Parse ``{"name": ..., "type": ..., **params}``, checking the params against the kind's declaration.

        Raises:
            ConfigError: not an object with "name" and "type", an unknown type, or
                params the kind does not take (the message lists what it takes).
        """
        from hear_gura.members.registry import known_kinds, resolve_params

        if not isinstance(data, Mapping) or "name" not in data or "type" not in data:
            raise ConfigError(
                f'a member must be an object with "name" and "type" ({", ".join(known_kinds())}), got {data!r}'
            )
        params = {k: v for k, v in data.items() if k not in ("name", "type")}
        spec = cls(name=str(data["name"]), type=str(data["type"]), params=params)
        resolve_params(spec.type, spec.name, params)  # fails here, before anything loads
        return spec

    @property
    def kind(self) -> "type[Member]":
        """The registered class of this member's type."""
        from hear_gura.members.registry import member_class

        return member_class(self.type)

    def resolved_params(self) -> Dict[str, Any]:
        """The params with every default of the member kind filled in (what the member will use)."""
        from hear_gura.members.registry import resolve_params

        return resolve_params(self.type, self.name, self.params)

    def to_dict(self) -> Dict[str, Any]:
        """``{"name", "type", **params}`` with defaults filled in; :meth:`from_dict` reads it back."""
        return {"name": self.name, "type": self.type, **self.resolved_params()}

    def checkpoint(self) -> Optional[str]:
        """The checkpoint id or path the member names (its kind's ``checkpoint_param``), or None."""
        param = self.kind.checkpoint_param
        value = self.params.get(param) if param else None
        return None if value is None else str(value)


@dataclass(frozen=True)
class StateAlias:
    """Every state of one configuration of a kind is, bit for bit, a state of a fuller configuration.

    CREPE's ``states: "embedding"`` (one state) is the last of ``states: "blocks"``
    (five): the same network, the same arithmetic. The feature cache keys both by
    the fuller configuration (:func:`hear_gura.member_pass.cache_entry_key`), so
    features that ``hear-gura layers`` stored for every state serve ``evaluate``'s
    single state, and the other way round.

    Attributes:
        params: the fuller configuration's params (every default filled in).
        states: for each state ``i`` of this configuration, its index in the fuller one.
        num_states: the fuller configuration's number of states.
        key: the fuller configuration's :func:`~hear_gura.model.computation_key`
            (set when a member is built for a feature cache; None before).
    """

    params: Mapping[str, Any]
    states: Tuple[int, ...]
    num_states: int
    key: Optional[str] = None

    def selection(self, own: LayerSelection) -> LayerSelection:
        """A layer choice over this configuration's states as the same choice over the fuller one's."""
        if own.num_states != len(self.states):
            raise ValueError(f"a choice over {own.num_states} states, but the alias maps {len(self.states)}")
        weights = [0.0] * self.num_states
        for index, there in enumerate(self.states):
            weights[there] = own.weights[index]
        return LayerSelection(self.num_states, tuple(weights), own.uniform)


@dataclass(frozen=True)
class MemberFeatures:
    """What a member computed for a batch, with the frame grid of every clip.

    Attributes:
        values: ``(batch, frames, width)`` float features, zero-padded past each clip's frames.
        grids: one :class:`~hear_gura.timestamps.FrameGrid` per clip: ``grids[i].count``
            valid frames, centred at ``grids[i].centres_ms()``.
    """

    values: torch.Tensor
    grids: Tuple[FrameGrid, ...]

    def clip(self, index: int) -> torch.Tensor:
        """Clip ``index``'s valid frames, ``(grids[index].count, width)``."""
        return self.values[index, : self.grids[index].count]

    def every(self, step: int, grids: Sequence[FrameGrid]) -> "MemberFeatures":
        """Every ``step``-th frame, as the features at ``step`` times the hop (``grids``: theirs, per clip)."""
        frames = max(g.count for g in grids)
        return MemberFeatures(self.values[:, ::step][:, :frames], tuple(grids))

    def rows(self, indices: Sequence[int]) -> torch.Tensor:
        """The valid frames of clips of ONE length, stacked: ``(len(indices), count, width)``."""
        count = self.grids[indices[0]].count
        if any(self.grids[i].count != count for i in indices):
            raise ValueError("rows() takes clips of one frame count")
        if len(indices) == self.values.shape[0] and count == self.values.shape[1]:
            return self.values
        return self.values[list(indices), :count]


class Member(torch.nn.Module, ABC):
    """An upstream network giving frame features from a 16 kHz waveform.

    Subclasses set, in ``__init__``:

    - ``num_states``: selectable hidden states (``L + 1`` for an L-layer transformer).
    - ``width``: features per frame.
    - ``receptive_field``: samples one output frame needs; shorter clips are rejected.
    - ``default_hop``: samples between frames.
    - ``hop_is_configurable``: whether :meth:`forward` accepts another hop (CREPE).
    - ``supports_padding``: whether a zero-padded batch with ``lengths`` gives each
      clip's frames as if it ran alone (else the model batches equal lengths only).
    - ``global_context``: whether a frame depends on the whole clip (self-attention);
      such members process clips longer than ``max_window`` samples in windows.
    - ``frames_are_local``: whether frame ``i`` at hop ``h`` is exactly frame ``i * h / h0``
      at hop ``h0`` when ``h0`` divides ``h`` (each frame sees only its own window, frames
      centred at ``i * hop``); a pass then computes the finest hop and subsamples the others.
    - ``random_weights``: True for ``hear-gura fixtures`` checkpoints.

    Declared by each kind (the class registered with
    :func:`~hear_gura.members.registry.register_member`):

    - ``PARAMS``: its parameters (:class:`~hear_gura.members.registry.Param`).
    - ``checkpoint_param``: the param naming a checkpoint to locate (``"checkpoint"``), or None.
    - :meth:`packaged_weights` / :meth:`weight_free`: weights inside an installed package, or none at all.
    - :meth:`describe`: all of the above shape facts without loading weights.

    Set by whoever builds the member (:class:`~hear_gura.model.EnsembleModel`,
    :class:`~hear_gura.shared.StudyPass`):

    - ``compute_dtype``: the precision it runs at (the ensemble's ``dtype`` option).
    - ``computation_key``: the identity of what it computes (kind, checkpoint
      content, params, waveform normalisation, windowing, dtype), or None;
      needed by the feature cache (:mod:`hear_gura.member_pass`).
    - ``cache_alias``: :meth:`state_alias` of its params with the fuller
      configuration's key, or None; ``cache_description``: that configuration
      in words, for ``hear-gura cache info``.
    """

    kind: ClassVar[str] = ""
    PARAMS: ClassVar[Mapping[str, Any]] = {}
    checkpoint_param: ClassVar[Optional[str]] = None

    num_states: int
    width: int
    receptive_field: int
    default_hop: int
    hop_is_configurable: bool = False
    supports_padding: bool = True
    global_context: bool = True
    frames_are_local: bool = False
    random_weights: bool = False
    compute_dtype: str = "float32"
    computation_key: Optional[str] = None
    #: Set with ``computation_key`` when the kind's :meth:`state_alias` names a fuller configuration.
    cache_alias: Optional[StateAlias] = None
    #: Set with ``computation_key``: kind and params of the configuration the cache keys it by (readable).
    cache_description: Optional[Dict[str, Any]] = None
    #: A short name per state, or None where states are numbered layers (see MemberDescription).
    state_names: Optional[Tuple[str, ...]] = None

    def __init__(self, name: str, normalize_waveform: bool = False) -> None:
        super().__init__()
        self.name = name
        self.normalize_waveform = normalize_waveform
        self.max_window: Optional[int] = None
        self.window_overlap = 0

    @classmethod
    def packaged_weights(cls, params: Mapping[str, Any]) -> Optional[Path]:
        """The weight file an installed package ships for these params (found without loading it), or None."""
        return None

    @classmethod
    def weight_free(cls, params: Mapping[str, Any]) -> bool:
        """Whether these params compute features from the waveform alone (no weights to locate)."""
        return False

    @classmethod
    def state_alias(cls, params: Mapping[str, Any]) -> Optional[StateAlias]:
        """The fuller configuration whose states these params' states are, bit for bit, or None (the default).

        Declare one only where the arithmetic is the same, not merely close: the
        feature cache then serves one configuration's states from the other's.
        """
        return None

    @classmethod
    def describe(cls, name: str, params: Mapping[str, Any], location: "CheckpointLocation") -> "MemberDescription":
        """Width, states, hop, receptive field, sample rate and random-or-not, WITHOUT loading weights.

        Args:
            name: the member's name in its ensemble (for messages).
            params: resolved params (:meth:`MemberSpec.resolved_params`).
            location: where its weights are (:func:`hear_gura.identity.locate_checkpoint`).
        Raises:
            CheckpointError: a shape fact that only the checkpoint holds cannot be read.
        """
        raise NotImplementedError(f"member kind {cls.kind!r} does not describe itself")

    def description(self) -> "MemberDescription":
        """The built member's shape facts (what :meth:`describe` must predict)."""
        from hear_gura.members.registry import MemberDescription

        return MemberDescription(
            kind=self.kind, width=self.width, num_states=self.num_states, default_hop=self.default_hop,
            receptive_field=self.receptive_field, sample_rate=getattr(self, "sample_rate", 16000),
            random_weights=self.random_weights, hop_is_configurable=self.hop_is_configurable,
            state_names=self.state_names,
        )

    def set_windowing(self, max_window: Optional[int], overlap: int) -> None:
        """Process clips longer than ``max_window`` samples in windows overlapping by ``overlap`` samples."""
        self.max_window, self.window_overlap = max_window, overlap

    def samples_for_frames(self, count: int) -> int:
        """The fewest samples that give ``count`` frames (``count >= 1``)."""
        return (count - 1) * self.default_hop + self.receptive_field

    @abstractmethod
    def frame_grid(self, num_samples: int, hop: Optional[int] = None) -> FrameGrid:
        """The frames :meth:`forward` gives for a clip of ``num_samples`` samples."""

    @abstractmethod
    def states(
        self, wav: torch.Tensor, deepest: int, hop: Optional[int] = None, lengths: Optional[torch.Tensor] = None
    ) -> Iterator[torch.Tensor]:
        """Hidden states ``0 .. deepest`` of a batch.

        Args:
            wav: ``(batch, samples)`` float32, already normalised if asked for.
            deepest: the deepest state needed.
            hop: frame hop in samples (configurable members only).
            lengths: ``(batch,)`` valid samples per clip of a zero-padded batch
                (members with ``supports_padding``); None when all are full length.
        Returns:
            ``deepest + 1`` tensors of shape ``(batch, frames, width)``, in order
            (a generator may compute them one by one).
        """

    def forward(
        self,
        wav: torch.Tensor,
        layers: LayerSelection,
        hop: Optional[int] = None,
        lengths: Optional[torch.Tensor] = None,
    ) -> torch.Tensor:
        """Frame features of a batch.

        Args:
            wav: ``(batch, samples)`` float32 at 16 kHz.
            layers: which states to combine (see :mod:`hear_gura.layers`).
            hop: frame hop in samples (configurable members only).
            lengths: valid samples per clip of a zero-padded batch, or None.
        Returns:
            ``(batch, frame_grid(samples).count, width)`` float32; with ``lengths``,
            clip ``i``'s frames are the first ``frame_grid(lengths[i]).count``.
        """
        return self.forward_many(wav, [layers], hop, lengths)[0]

    def compute(
        self,
        wav: torch.Tensor,
        selections: Sequence[LayerSelection],
        hop: Optional[int] = None,
        lengths: Optional[Sequence[int]] = None,
    ) -> List[MemberFeatures]:
        """:meth:`forward_many`, each output with the frame grid of every clip (lengths travel with the tensors).

        Args:
            wav: ``(batch, samples)`` float32 at 16 kHz, zero-padded past ``lengths``.
            selections: layer choices, all computed in ONE pass through the network.
            hop: frame hop in samples (configurable members only).
            lengths: valid samples per clip, or None when all are ``samples`` long. A
                member without ``supports_padding`` runs one batch per distinct length.
        Returns:
            one :class:`MemberFeatures` per selection.
        """
        batch, samples = wav.shape
        sizes = [int(n) for n in lengths] if lengths is not None else [samples] * batch
        grids = tuple(self.frame_grid(size, hop) for size in sizes)
        if all(size == samples for size in sizes):
            outputs = self.forward_many(wav, selections, hop)
            return [MemberFeatures(x, grids) for x in outputs]
        if self.supports_padding:
            outputs = self.forward_many(wav, selections, hop, torch.tensor(sizes, device=wav.device))
            return [MemberFeatures(x, grids) for x in outputs]
        frames = max(g.count for g in grids)
        values = [None] * len(selections)
        for size in dict.fromkeys(sizes):
            rows = [i for i, n in enumerate(sizes) if n == size]
            for k, x in enumerate(self.forward_many(wav[rows, :size], selections, hop)):
                if values[k] is None:
                    values[k] = x.new_zeros((batch, frames, x.shape[-1]))
                values[k][rows, : x.shape[1]] = x
        return [MemberFeatures(x, grids) for x in values]

    def forward_many(
        self,
        wav: torch.Tensor,
        selections: Sequence[LayerSelection],
        hop: Optional[int] = None,
        lengths: Optional[torch.Tensor] = None,
    ) -> List[torch.Tensor]:
        """:meth:`forward` for several layer choices from ONE pass through the network."""
        if hop is not None and hop != self.default_hop and not self.hop_is_configurable:
            raise ConfigError(f"member {self.name!r} has a fixed hop of {self.default_hop} samples")
        if lengths is not None and not self.supports_padding:
            raise ConfigError(f"member {self.name!r} cannot run zero-padded batches; batch clips of one length")
        if self.normalize_waveform:
            wav = normalize(wav, lengths)  # over the whole clip, before any windowing
        deepest = max(s.deepest for s in selections)
        if not self.global_context or self.max_window is None or wav.shape[-1] <= self.max_window:
            return combine_all(selections, self.states(wav, deepest, hop, lengths))
        if lengths is None:
            return self._windowed(wav, selections, hop)
        count = self.frame_grid(wav.shape[-1], hop).count  # long clips of a padded batch: one by one
        per_clip = [self._windowed(wav[i : i + 1, : int(n)], selections, hop) for i, n in enumerate(lengths)]
        return [
            torch.cat([F.pad(clip[k], (0, 0, 0, count - clip[k].shape[1])) for clip in per_clip])
            for k in range(len(selections))
        ]

    def _windowed(
        self, wav: torch.Tensor, selections: Sequence[LayerSelection], hop: Optional[int]
    ) -> List[torch.Tensor]:
        total = self.frame_grid(wav.shape[-1], hop).count
        window_frames = max(1, (self.max_window - self.receptive_field) // self.default_hop + 1)
        overlap_frames = min(self.window_overlap // self.default_hop, window_frames - 1)
        deepest = max(s.deepest for s in selections)
        stitched = run_windowed(
            lambda piece: torch.cat(combine_all(selections, self.states(piece, deepest, hop)), dim=-1),
            wav, total, self.default_hop, self.samples_for_frames, window_frames, overlap_frames,
        )
        return list(stitched.split(self.width, dim=-1))


def normalize(wav: torch.Tensor, lengths: Optional[torch.Tensor] = None, eps: float = 1e-7) -> torch.Tensor:
    """Zero mean, unit variance per clip, as Wav2Vec2FeatureExtractor(do_normalize=True).

    Args:
        wav: ``(batch, samples)``.
        lengths: valid samples per clip of a zero-padded batch; statistics use
            those samples only and the padding stays zero.
    """
    if lengths is None:
        mean = wav.mean(dim=-1, keepdim=True)
        var = wav.var(dim=-1, keepdim=True, unbiased=False)
        return (wav - mean) / torch.sqrt(var + eps)
    valid = (torch.arange(wav.shape[-1], device=wav.device)[None, :] < lengths[:, None]).to(wav.dtype)
    count = lengths.to(wav.dtype)[:, None]
    mean = (wav * valid).sum(dim=-1, keepdim=True) / count
    var = (((wav - mean) * valid) ** 2).sum(dim=-1, keepdim=True) / count
    return (wav - mean) / torch.sqrt(var + eps) * valid


def build_member(spec: MemberSpec, manifest: Manifest, normalize_waveform: bool) -> Member:
    """Build and load the member a spec declares, through its registered kind (weights loaded once, eval mode)."""
    member = spec.kind(spec.name, spec.resolved_params(), manifest, normalize_waveform)
    return member.eval().requires_grad_(False)
