"""Any s3prl upstream by name (from the ``espnet-s3prl`` distribution, import name ``s3prl``)."""

from __future__ import annotations

import difflib
import logging
from pathlib import Path
from typing import Any, Iterator, Mapping, Optional

import torch

from hear_gura.errors import CheckpointError, ConfigError
from hear_gura.manifest import Manifest
from hear_gura.members.base import Member
from hear_gura.members.registry import MemberDescription, Param, register_member
from hear_gura.timestamps import SAMPLE_RATE, FrameGrid


#: Upstreams that compute features from the waveform alone: they read no file but
#: s3prl's own packaged YAML settings, so they take no ``checkpoint``.
WEIGHT_FREE_UPSTREAMS = ("fbank", "fbank_no_cmvn", "linear", "mel", "mfcc", "spectrogram")

#: (width, hop in samples) of each weight-free upstream's one state, as espnet-s3prl 2026.5 builds it
#: (tested against s3prl): :meth:`S3PRLMember.describe` reads it without importing s3prl (~7 s).
WEIGHT_FREE_SHAPES = {"fbank": (240, 160), "fbank_no_cmvn": (240, 160), "linear": (201, 160), "mel": (80, 160),
                      "mfcc": (39, 160), "spectrogram": (257, 160)}

#: Upstreams that read a transformers checkpoint (a folder, or a hub id) through the
#: stock ``HubertModel`` / ``Wav2Vec2Model`` and ``Wav2Vec2FeatureExtractor``
#: classes: JSON configs, weights as safetensors or through transformers'
#: ``torch.load(weights_only=True)``; no Auto class, so no checkpoint code
#: (``auto_map``) is ever imported. They need a ``checkpoint``.
TRANSFORMERS_UPSTREAMS = ("hf_hubert_custom", "hf_wav2vec2_custom")

#: The s3prl upstreams a member may name: audited to load no checkpoint code.
SAFE_UPSTREAMS = WEIGHT_FREE_UPSTREAMS + TRANSFORMERS_UPSTREAMS

#: Why the other upstreams are refused, by the s3prl module that builds them.
#: Checked on espnet-s3prl 2026.5: any upstream that reads a checkpoint other
#: than through transformers does so with ``torch.load`` (pickle), and many then
#: ``eval()`` strings from the checkpoint's config, which ``weights_only=True``
#: does not prevent.
_REFUSAL_REASONS = {
    "distiller": "unpickles its checkpoint with torch.load(weights_only=False) and eval()s its "
    "extractor_conv_feature_layers string",
    "mockingjay": "unpickles its checkpoint with torch.load(weights_only=False)",
    "tera": "unpickles its checkpoint with torch.load(weights_only=False) (mockingjay's loader)",
    "audio_albert": "unpickles its checkpoint with torch.load(weights_only=False) (mockingjay's loader)",
    "roberta": "unpickles its checkpoint with torch.load(weights_only=False)",
    **{
        family: "eval()s strings from its checkpoint's config (conv_feature_layers), so even a weights-only "
        "checkpoint runs code"
        for family in ("wav2vec2", "hubert", "wavlm", "data2vec", "lighthubert", "multires_hubert", "wav2vec",
                       "vq_wav2vec", "unispeech_sat")
    },
}
_DEFAULT_REFUSAL = (
    "reads its weights with torch.load or other loaders that hear_gura has not audited (unpickling that "
    "TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD or an explicit weights_only=False turns into code execution)"
)


def available_upstreams() -> "list[str]":
    """Every name s3prl lists (``fbank``, ``hf_hubert_custom``, ``wav2vec2_local``...); see :data:`SAFE_UPSTREAMS`."""
    # s3prl warns at import that the optional ESPnet package is absent; it is not needed here.
    logging.getLogger("s3prl.upstream.espnet_hubert.expert").setLevel(logging.ERROR)
    from s3prl.nn import S3PRLUpstream

    return sorted(S3PRLUpstream.available_names())


def refuse_unsafe_upstream(name: str, upstream: str) -> None:
    """Refuse an s3prl upstream outside :data:`SAFE_UPSTREAMS`, before s3prl reads any file.

    Raises:
        CheckpointError: saying what its loader does and which upstreams are safe.
    """
    if upstream in SAFE_UPSTREAMS:
        return
    from s3prl import hub

    module = getattr(getattr(hub, upstream, None), "__module__", "") or "s3prl"
    if module.startswith("s3prl.upstream."):
        reason = _REFUSAL_REASONS.get(module.split(".")[2], _DEFAULT_REFUSAL)
        why = f"its loader ({module}) {reason}, so a checkpoint could run code"
    else:
        why = f"s3prl lists it, but it is {module}'s, not an upstream model hear_gura has audited"
    raise CheckpointError(
        f"member {name!r}: s3prl upstream {upstream!r} is refused, as hear_gura never runs checkpoint code: "
        f"{why}. Safe s3prl upstreams: "
        f"weight-free {', '.join(WEIGHT_FREE_UPSTREAMS)}; {' / '.join(TRANSFORMERS_UPSTREAMS)} with a "
        'transformers checkpoint folder; for HuBERT / wav2vec 2.0 weights use an "hf" member '
        '({"type": "hf", "checkpoint": ID_OR_FOLDER})'
    )


@register_member("s3prl")
class S3PRLMember(Member):
    """An s3prl upstream: all of its hidden states, as s3prl returns them.

    Params: ``upstream``: an s3prl name from :data:`SAFE_UPSTREAMS` (weight-free
    ``fbank``, ``mfcc``..., or ``hf_hubert_custom`` / ``hf_wav2vec2_custom``);
    ``checkpoint``: for the ``hf_*_custom`` upstreams, a checkpoint id resolved
    through the manifest, or a path. The other s3prl upstreams are refused: their
    loaders unpickle checkpoints or ``eval()`` strings from them (see
    :func:`refuse_unsafe_upstream`). ``hf_*_custom`` upstreams normalise the
    waveform themselves.

    Frames: s3prl gives ``ceil(N / hop)`` frames; frame ``k`` is taken as centred
    at sample ``k * hop + hop / 2``. Clips shorter than 400 samples (a 25 ms
    analysis window) are rejected.

    Padded batches are not used: s3prl fills the last frames of a short clip
    differently alone (repeating its last frame) than in a padded batch (zeros),
    so the model batches equal lengths only.
    """

    PARAMS = {
        "upstream": Param((str,), doc=f"an s3prl upstream name ({', '.join(SAFE_UPSTREAMS)})"),
        "checkpoint": Param((str,), None, doc="hf_*_custom: a transformers checkpoint id or folder"),
    }
    checkpoint_param = "checkpoint"
    supports_padding = False

    @classmethod
    def weight_free(cls, params: Mapping[str, Any]) -> bool:
        return params.get("upstream") in WEIGHT_FREE_UPSTREAMS

    @classmethod
    def describe(cls, name: str, params: Mapping[str, Any], location: Any) -> MemberDescription:
        """Weight-free upstreams from :data:`WEIGHT_FREE_SHAPES`; ``hf_*_custom`` from their ``config.json``."""
        upstream = str(params["upstream"])
        random = bool(location.random_weights)
        if upstream in WEIGHT_FREE_UPSTREAMS:
            (width, hop), states = WEIGHT_FREE_SHAPES[upstream], 1
        else:
            from hear_gura.members.hf import checkpoint_shape

            shape = checkpoint_shape(name, location)
            hop, states, width = shape["hop"], shape["num_states"], shape["width"]
            random = random or shape["random_weights"]
        return MemberDescription(
            kind=cls.kind, width=int(width), num_states=int(states), default_hop=int(hop), receptive_field=400,
            sample_rate=SAMPLE_RATE, random_weights=random,
            weights="weight-free" if upstream in WEIGHT_FREE_UPSTREAMS else str(location.path or location.checkpoint),
        )

    def __init__(
        self, name: str, params: Mapping[str, Any], manifest: Manifest, normalize_waveform: bool
    ) -> None:
        super().__init__(name, normalize_waveform)
        from s3prl.nn import S3PRLUpstream

        upstream = str(params["upstream"])
        names = available_upstreams()
        if upstream not in names:
            close = difflib.get_close_matches(upstream, SAFE_UPSTREAMS, n=5)
            raise ConfigError(
                f"member {name!r}: unknown s3prl upstream {upstream!r}"
                + (f"; did you mean {', '.join(close)}?" if close else "")
                + f" (usable here: {', '.join(SAFE_UPSTREAMS)})"
            )
        refuse_unsafe_upstream(name, upstream)
        checkpoint = params.get("checkpoint")
        if upstream in WEIGHT_FREE_UPSTREAMS and checkpoint is not None:
            raise ConfigError(
                f"member {name!r}: s3prl upstream {upstream!r} has no weights and takes no checkpoint; "
                f"remove \"checkpoint\": {checkpoint!r}"
            )
        if upstream in TRANSFORMERS_UPSTREAMS and checkpoint is None:
            raise ConfigError(
                f"member {name!r}: s3prl upstream {upstream!r} needs \"checkpoint\": a transformers checkpoint id "
                "(resolved through the manifest) or folder"
            )
        path = None
        if checkpoint is not None:
            from hear_gura.identity import locate_checkpoint
            from hear_gura.members.base import MemberSpec
            from hear_gura.members.hf import FIXTURE_MARKER, read_json_config

            location = locate_checkpoint(MemberSpec(name, "s3prl", dict(params)), manifest)
            path = str(location.path) if location.path is not None else str(checkpoint)
            config = read_json_config(Path(path) / "config.json")
            self.random_weights = bool(config.get(FIXTURE_MARKER)) or location.random_weights
        try:
            self.upstream = S3PRLUpstream(upstream, path_or_url=path)
        except Exception as err:  # s3prl raises assorted types for bad checkpoints
            raise CheckpointError(
                f"member {name!r}: s3prl could not build upstream {upstream!r}"
                + (f" from {path}" if path else "")
                + f": {type(err).__name__}: {err}"
            ) from None
        self.upstream_name = upstream
        rates = set(self.upstream.downsample_rates)
        if len(rates) != 1:
            raise ConfigError(f"member {name!r}: s3prl upstream {upstream!r} has layers at several frame rates {rates}")
        self.default_hop = rates.pop()
        self.num_states = self.upstream.num_layers
        self.width = self.upstream.hidden_sizes[-1]
        self.receptive_field = 400

    def samples_for_frames(self, count: int) -> int:
        return count * self.default_hop

    def frame_grid(self, num_samples: int, hop: Optional[int] = None) -> FrameGrid:
        count = -(-num_samples // self.default_hop)
        return FrameGrid(count, self.default_hop / 2, self.default_hop)

    def states(
        self, wav: torch.Tensor, deepest: int, hop: Optional[int] = None, lengths: Optional[torch.Tensor] = None
    ) -> Iterator[torch.Tensor]:
        if lengths is None:
            lengths = torch.full((wav.shape[0],), wav.shape[-1], dtype=torch.long, device=wav.device)
        hidden, _ = self.upstream(wav, lengths)
        widths = {h.shape[-1] for h in hidden[: deepest + 1]}
        if len(widths) != 1:
            raise ConfigError(
                f"member {self.name!r}: the chosen layers of {self.upstream_name!r} differ in width {sorted(widths)}; "
                "choose layers of one width"
            )
        yield from hidden[: deepest + 1]
