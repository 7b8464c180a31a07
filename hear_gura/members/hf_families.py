"""The transformers audio encoders an ``hf`` member runs: one record per ``config.model_type``.

A :class:`Family` says which stock transformers class holds the encoder, which
feature extractor's ``preprocessor_config.json`` describes its input, and which
runner (:mod:`hear_gura.members.hf_encoders`) produces its states. Its
:class:`Grid` (hop, first frame centre, shortest clip, native rate, longest
single pass) is computed from the config and the preprocessor config alone, so
:meth:`hear_gura.members.hf.HFMember.describe` never loads weights.

All sample counts here are at 16 kHz (HEAR's rate) unless called native.

=======================  ===========  =========================================================
model_type               input        states (``deepest + 1`` tensors, ``(batch, frames, width)``)
=======================  ===========  =========================================================
wav2vec2, hubert,        waveform     ``hidden_states[:-1]`` then ``last_hidden_state`` (the
wavlm, data2vec-audio,                GURA rule: on transformers 5 the tuple ends with layer L
unispeech, unispeech-sat,             before the final LayerNorm of stable-layer-norm models)
wav2vec2-conformer
sew, sew-d               waveform     the same; states 0 .. L-1 run at the squeezed rate
                                      (``squeeze_factor`` x the hop) and are repeated to the
                                      front end's frames, the last is the model's own upsampling
wav2vec2-bert            fbank x 2    the same rule (``+ intermediate_ffn`` when configured)
whisper                  log-mel      encoder ``hidden_states[:-1]`` then ``last_hidden_state``,
                                      run on the clip's frames only (positions sliced)
audio-spectrogram-       fbank        the same rule, patch tokens averaged over frequency
transformer                           patches (CLS and distillation tokens dropped)
clap                     log-mel      the audio tower's ``hidden_states`` (patch embedding, each
                                      Swin stage) then ``last_hidden_state``, each averaged over
                                      frequency, pooled to the last stage's time positions, and
                                      zero-padded to the last stage's width
=======================  ===========  =========================================================
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Dict, Mapping, Optional, Tuple

from hear_gura.errors import CheckpointError
from hear_gura.timestamps import SAMPLE_RATE, ssl_frame_count

#: Top-level weight names a checkpoint may hold that a waveform encoder never uses:
#: heads saved on top of it. ``lm_head``: CTC (``*ForCTC``, e.g.
#: facebook/wav2vec2-large-960h-lv60-self); ``project_q``, ``project_hid``,
#: ``quantizer``: wav2vec 2.0 pretraining (``Wav2Vec2ForPreTraining``);
#: ``projector``, ``classifier``, ``layer_weights``: ``*ForSequenceClassification``.
UNUSED_HEAD_WEIGHTS = ("lm_head", "project_q", "project_hid", "quantizer", "projector", "classifier", "layer_weights")

#: Base-model prefixes a saved head class puts before the encoder's weight names.
BASE_PREFIXES = ("model", "wav2vec2", "hubert", "wavlm", "data2vec_audio", "unispeech", "unispeech_sat", "sew",
                 "sew_d", "wav2vec2_conformer", "wav2vec2_bert", "audio_spectrogram_transformer")


@dataclass(frozen=True)
class Grid:
    """Frames of an encoder on 16 kHz audio.

    Attributes:
        hop: samples between frame centres (fractional for CLAP).
        first_centre: centre of frame 0, samples.
        receptive_field: the shortest clip that gives one frame, samples.
        sample_rate: the encoder's native rate (Hz); members resample from 16 kHz.
        max_samples: the longest clip one pass takes (fixed-length inputs: Whisper
            30 s, AST 10.24 s, CLAP 10 s), or None.
        native_field / native_hop: the conv-like grid at the native rate
            (``count = (n - field) // hop + 1``); unused when ``by_centre``.
        by_centre: count the frames whose centre lies inside the clip (CLAP,
            whose input is filled up to a fixed length by repeating the clip).
    """

    hop: float
    first_centre: float
    receptive_field: int
    sample_rate: int = SAMPLE_RATE
    max_samples: Optional[int] = None
    native_field: int = 0
    native_hop: int = 1
    by_centre: bool = False

    def count(self, num_samples: int) -> int:
        """Frames of a clip of ``num_samples`` samples at 16 kHz."""
        if self.by_centre:
            return 0 if num_samples <= self.first_centre else math.ceil((num_samples - self.first_centre) / self.hop)
        native = num_samples if self.sample_rate == SAMPLE_RATE else -(-num_samples * self.sample_rate // SAMPLE_RATE)
        return ssl_frame_count(native, self.native_field, self.native_hop)


def conv_grid(field_native: int, hop_native: int, centre_native: float, rate: int,
              max_native: Optional[int] = None) -> Grid:
    """A :class:`Grid` from a conv-like grid at ``rate`` Hz (``count = (n - field) // hop + 1`` native samples)."""
    scale = SAMPLE_RATE / rate
    shortest = int(math.floor((field_native - 1) * scale)) + 1 if rate != SAMPLE_RATE else field_native
    hop = hop_native * scale
    return Grid(hop=int(hop) if float(hop).is_integer() else hop, first_centre=centre_native * scale,
                receptive_field=shortest, sample_rate=rate,
                max_samples=None if max_native is None else int(math.floor(max_native * scale)),
                native_field=field_native, native_hop=hop_native)


def receptive_field_and_hop(kernels: "tuple[int, ...] | list[int]", strides: "tuple[int, ...] | list[int]") -> "tuple[int, int]":
    """Receptive field and hop (samples) of a stack of strided 1-D convolutions."""
    receptive, hop = 1, 1
    for kernel, stride in zip(kernels, strides):
        receptive += (kernel - 1) * hop
        hop *= stride
    return receptive, hop


# ------------------------------------------------------------------ grids
def _waveform_grid(config: Any, extractor: Any) -> Grid:
    receptive, hop = receptive_field_and_hop(config.conv_kernel, config.conv_stride)
    return conv_grid(receptive, hop, receptive / 2, int(getattr(extractor, "sampling_rate", SAMPLE_RATE)))


def _w2v_bert_grid(config: Any, extractor: Any) -> Grid:
    # 25 ms Kaldi frames every 10 ms, ``stride`` of them stacked into one.
    stride = int(getattr(extractor, "stride", 2))
    receptive = 400 + 160 * (stride - 1)
    return conv_grid(receptive, 160 * stride, receptive / 2, int(extractor.sampling_rate))


def _whisper_grid(config: Any, extractor: Any) -> Grid:
    # Mel frame m is centred at m * hop_length (centred STFT); n samples give n // hop_length
    # mel frames, and conv2 (stride 2) gives ceil(frames / 2) = (n - hop_length) // (2 hop_length) + 1.
    hop = int(extractor.hop_length)
    frames = int(config.max_source_positions) * 2 * hop
    return conv_grid(hop, 2 * hop, 0.0, int(extractor.sampling_rate), min(frames, int(extractor.n_samples)))


def _ast_grid(config: Any, extractor: Any) -> Grid:
    # Kaldi fbank frames (25 ms every 10 ms, no padding), patches of ``patch_size`` frames every ``time_stride``.
    receptive = 400 + 160 * (int(config.patch_size) - 1)
    hop = 160 * int(config.time_stride)
    longest = 400 + 160 * (int(config.max_length) - 1)
    return conv_grid(receptive, hop, receptive / 2, int(extractor.sampling_rate), longest)


def clap_layout(config: Any, extractor: Any) -> Dict[str, Any]:
    """Where CLAP's output positions lie: mel frames in, interpolated width, time positions out.

    The extractor makes ``frames = max_samples // hop_length + 1`` centred mel
    frames; the model stretches them (bicubic, ``align_corners``) to
    ``spec_size * freq_ratio`` columns, folds them into ``freq_ratio`` rows of an
    image, and its last stage has ``positions`` time positions, each covering
    ``width / positions`` consecutive stretched columns.
    """
    ratio = int(config.spec_size) // int(config.num_mel_bins)
    stride = config.patch_stride if isinstance(config.patch_stride, (list, tuple)) else (config.patch_stride,) * 2
    width = int(config.spec_size) * ratio
    columns = int(config.spec_size) // int(stride[1]) // 2 ** (len(config.depths) - 1)
    frames = int(extractor.nb_max_samples) // int(extractor.hop_length) + 1
    return {"ratio": ratio, "width": width, "positions": ratio * columns, "frames": frames}


def _clap_grid(config: Any, extractor: Any) -> Grid:
    layout = clap_layout(config, extractor)
    if layout["frames"] > layout["width"]:
        raise CheckpointError(
            f"CLAP: the preprocessor's {extractor.max_length_s} s give {layout['frames']} mel frames, more than the "
            f"model's input width of {layout['width']} (spec_size x freq_ratio); the preprocessor config does not "
            "match the model"
        )
    native_per_column = (layout["frames"] - 1) / (layout["width"] - 1) * int(extractor.hop_length)
    scale = SAMPLE_RATE / int(extractor.sampling_rate)
    span = layout["width"] / layout["positions"]
    hop = span * native_per_column * scale
    centre = (span - 1) / 2 * native_per_column * scale
    return Grid(hop=hop, first_centre=centre, receptive_field=int(math.floor(centre)) + 1,
                sample_rate=int(extractor.sampling_rate),
                max_samples=int(extractor.nb_max_samples * scale), by_centre=True)


def _clap_width(config: Any) -> int:
    return int(config.patch_embeds_hidden_size) * 2 ** (len(config.depths) - 1)


@dataclass(frozen=True)
class Family:
    """One transformers architecture (``config.model_type``) as an ``hf`` member runs it.

    Attributes:
        model_type: ``config.model_type`` (for CLAP also the audio tower's own type).
        runner: the state generator in :data:`hear_gura.members.hf_encoders.RUNNERS`.
        model_class: the stock transformers class loaded with ``from_pretrained``.
        config_class: its config class.
        extractor_class: the feature extractor class of ``preprocessor_config.json``.
        input_kind: ``waveform``, ``log-mel`` or ``fbank`` (for the README table).
        states: which tensors the states are, in words.
        layerwise: whether states come one layer at a time (early stop past ``deepest``).
        encoder_attr: the encoder module inside the loaded model ("" = the model itself).
        sub_config: the key of the audio tower's config inside ``config.json``.
        unused_weights: top-level weight names the checkpoint may hold that the encoder never uses.
        ignorable_missing: weight-name prefixes the loaded class has but the encoder never uses.
        config_overrides: set on the config before loading (e.g. no Whisper decoder layers).
        grid / width / num_states: from the config and the feature extractor.
    """

    model_type: str
    runner: str
    model_class: str
    config_class: str
    extractor_class: str
    input_kind: str
    states: str
    grid: Any = field(default=_waveform_grid, compare=False, repr=False)
    width: Any = field(default=lambda c: int(c.hidden_size), compare=False, repr=False)
    num_states: Any = field(default=lambda c: int(c.num_hidden_layers) + 1, compare=False, repr=False)
    layerwise: bool = True
    encoder_attr: str = ""
    sub_config: str = ""
    unused_weights: Tuple[str, ...] = UNUSED_HEAD_WEIGHTS
    ignorable_missing: Tuple[str, ...] = ()
    config_overrides: Tuple[Tuple[str, Any], ...] = ()


_GURA_RULE = "hidden_states[:-1], then last_hidden_state"


def _waveform(model_type: str, prefix: str, runner: str = "wav2vec2", states: str = _GURA_RULE) -> Family:
    return Family(model_type, runner, f"{prefix}Model", f"{prefix}Config", "Wav2Vec2FeatureExtractor", "waveform",
                  states)


_SQUEEZED = ("hidden_states[:-1] (at squeeze_factor x the hop, each repeated squeeze_factor times), "
             "then last_hidden_state (the model's upsampling)")

#: model_type -> how the hf member runs it.
FAMILIES: Dict[str, Family] = {f.model_type: f for f in (
    _waveform("wav2vec2", "Wav2Vec2"),
    _waveform("hubert", "Hubert"),
    _waveform("wavlm", "WavLM", runner="wavlm"),
    _waveform("data2vec-audio", "Data2VecAudio"),
    _waveform("unispeech", "UniSpeech"),
    _waveform("unispeech-sat", "UniSpeechSat"),
    _waveform("wav2vec2-conformer", "Wav2Vec2Conformer", runner="conformer"),
    _waveform("sew", "SEW", runner="sew", states=_SQUEEZED),
    _waveform("sew-d", "SEWD", runner="sew-d", states=_SQUEEZED),
    Family("wav2vec2-bert", "w2v-bert", "Wav2Vec2BertModel", "Wav2Vec2BertConfig", "SeamlessM4TFeatureExtractor",
           "fbank (80 Kaldi mel bins, 2 frames stacked)", _GURA_RULE + " (+ 0.5 intermediate_ffn when configured)",
           grid=_w2v_bert_grid),
    Family("whisper", "whisper", "WhisperModel", "WhisperConfig", "WhisperFeatureExtractor", "log-mel",
           "encoder " + _GURA_RULE + ", on the clip's own frames (positional embedding sliced)", grid=_whisper_grid,
           width=lambda c: int(c.d_model), num_states=lambda c: int(c.encoder_layers) + 1, encoder_attr="encoder",
           unused_weights=("decoder", "proj_out"), ignorable_missing=("decoder.",),
           config_overrides=(("decoder_layers", 0),)),
    Family("audio-spectrogram-transformer", "ast", "ASTModel", "ASTConfig", "ASTFeatureExtractor",
           "fbank (Kaldi, fixed length)", _GURA_RULE + ", patch tokens averaged over frequency", grid=_ast_grid,
           unused_weights=("classifier",)),
    Family("clap", "clap", "ClapAudioModelWithProjection", "ClapAudioConfig", "ClapFeatureExtractor",
           "log-mel (48 kHz, fixed 10 s)", "audio tower " + _GURA_RULE + " (patch embedding, each Swin stage), "
           "averaged over frequency, pooled to the last stage's frames, zero-padded to its width", grid=_clap_grid,
           width=_clap_width, num_states=lambda c: len(c.depths) + 1, encoder_attr="audio_model",
           sub_config="audio_config",
           unused_weights=("text_model", "text_projection", "logit_scale_a", "logit_scale_t"),
           ignorable_missing=("audio_projection.",)),
)}
FAMILIES["clap_audio_model"] = Family(
    "clap_audio_model", "clap", "ClapAudioModel", "ClapAudioConfig", "ClapFeatureExtractor",
    FAMILIES["clap"].input_kind, FAMILIES["clap"].states, grid=_clap_grid, width=_clap_width,
    num_states=lambda c: len(c.depths) + 1, unused_weights=())



def supported_types() -> str:
    """The supported model types, for messages."""
    return ", ".join(sorted(FAMILIES))


def audio_config_dict(family: Family, config_dict: Mapping[str, Any]) -> Dict[str, Any]:
    """The encoder's part of ``config.json`` (CLAP: its ``audio_config``)."""
    if family.sub_config:
        sub = config_dict.get(family.sub_config)
        return dict(sub) if isinstance(sub, Mapping) else {}
    return dict(config_dict)


def build_config(family: Family, config_dict: Mapping[str, Any]) -> Any:
    """The transformers config object of the encoder (defaults filled in), without weights.

    Raises:
        CheckpointError: ``config.json`` is not a valid config of that type.
    """
    import transformers

    if family.runner == "remote":
        return _Attributes(config_dict)
    data = {k: v for k, v in audio_config_dict(family, config_dict).items() if k != "auto_map"}
    try:
        config = getattr(transformers, family.config_class).from_dict(data)
    except (TypeError, ValueError, KeyError) as err:
        raise CheckpointError(f"config.json is not a valid {family.model_type!r} config: {str(err).splitlines()[0]}") from None
    for key, value in family.config_overrides:
        setattr(config, key, value)
    return config


def build_extractor(family: Family, preprocessor: Mapping[str, Any]) -> Any:
    """The feature extractor that ``preprocessor_config.json`` configures (its defaults when there is none)."""
    import transformers

    cls = getattr(transformers, family.extractor_class)
    data = {k: v for k, v in preprocessor.items() if k not in ("auto_map", "feature_extractor_type", "processor_class")}
    return cls.from_dict(data) if data else cls()


class _Attributes:
    """A config.json read as attributes (checkpoints with their own code: no transformers class knows it)."""

    def __init__(self, data: Mapping[str, Any]) -> None:
        self.__dict__.update(data)


def _remote_grid(config: Any, extractor: Any) -> Grid:
    """The frame grid of a checkpoint with its own code: it must declare a wav2vec 2.0-style front end.

    Raises:
        CheckpointError: its config.json has no ``conv_kernel`` / ``conv_stride`` (the hop is then unknown).
    """
    if not all(hasattr(config, key) for key in ("conv_kernel", "conv_stride", "hidden_size", "num_hidden_layers")):
        raise CheckpointError(
            "a checkpoint with its own code runs only if its config.json declares a wav2vec 2.0-style front end "
            "(\"conv_kernel\", \"conv_stride\") and \"hidden_size\", \"num_hidden_layers\"; this one does not, "
            "so its frame hop is unknown"
        )
    return _waveform_grid(config, extractor)


#: Checkpoints whose own code is allowed (``trust_remote_code``) run as one forward pass.
REMOTE = Family("(remote code)", "remote", "AutoModel", "AutoConfig", "Wav2Vec2FeatureExtractor", "waveform",
                _GURA_RULE + " of one forward pass with output_hidden_states", grid=_remote_grid, layerwise=False)
