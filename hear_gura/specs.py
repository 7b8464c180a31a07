"""Checkpoint specifications: one record per known pretrained transformers audio checkpoint.

Adding a checkpoint is a data change here, not new code. A record gives the
``config.json`` fields that decide the member's shape (so ``describe`` works
before the weights are on this machine) and the shape of its tiny stand-in:
``hear-gura fixtures`` (:mod:`hear_gura.fixtures`) writes, for every
checkpoint an ensemble uses, a random model of the same architecture that
keeps the real front end and input features (so frame counts are the real
ones) and shrinks the widths and depths.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any, Dict, Mapping, Optional, Tuple

#: Convolutional feature encoder of wav2vec 2.0 / HuBERT: 20 ms hop, 25 ms window.
CONV_KERNEL: Tuple[int, ...] = (10, 3, 3, 3, 3, 2, 2)
CONV_STRIDE: Tuple[int, ...] = (5, 2, 2, 2, 2, 2, 2)


@dataclass(frozen=True)
class FixtureShape:
    """Shape of the tiny random-initialised stand-in written by ``hear-gura fixtures``."""

    hidden_size: int
    num_layers: int
    num_heads: int = 2
    intermediate_size: int = 64
    conv_dim: int = 32
    pos_conv_kernel: int = 16
    pos_conv_groups: int = 4


@dataclass(frozen=True)
class CheckpointSpec:
    """A pretrained Hugging Face speech checkpoint.

    Attributes:
        checkpoint_id: Hugging Face hub id, also the key in a manifest.
        short: short name used in the GURA paper (H-xl, H-l, W).
        model_type: ``config.model_type`` the checkpoint must declare.
        hidden_size: width of every hidden state (real checkpoint).
        num_layers: transformer layers L; L + 1 hidden states are selectable.
        saved_head: class the checkpoint was saved from (the CTC head is unused).
        pretrained_on_normalized_audio: whether pretraining normalised the waveform
            (zero mean, unit variance); the GURA presets feed raw audio anyway.
        source: where the real weights come from.
        fixture: shape of the tiny stand-in.
        config: the real ``config.json``'s other fields that decide the shape
            (names as transformers spells them; None: ``hidden_size`` and
            ``num_hidden_layers``).
        preprocessor: the real ``preprocessor_config.json``'s fields that decide
            the input (the extractor's defaults otherwise).
    """

    checkpoint_id: str
    short: str
    model_type: str
    hidden_size: int
    num_layers: int
    saved_head: str
    pretrained_on_normalized_audio: bool
    source: str
    fixture: FixtureShape = field(default_factory=lambda: FixtureShape(32, 2))
    config: Optional[Mapping[str, Any]] = None
    preprocessor: Mapping[str, Any] = field(default_factory=dict)

    def config_dict(self) -> Dict[str, Any]:
        """The shape-deciding part of the real ``config.json`` (what ``describe`` reads)."""
        fields = {"hidden_size": self.hidden_size, "num_hidden_layers": self.num_layers} if self.config is None \
            else dict(self.config)
        return {"model_type": self.model_type, **fields}


_HUBERT_LARGE = CheckpointSpec(
    checkpoint_id="facebook/hubert-large-ll60k",
    short="H-l",
    model_type="hubert",
    hidden_size=1024,
    num_layers=24,
    saved_head="HubertModel",
    pretrained_on_normalized_audio=True,
    source="https://huggingface.co/facebook/hubert-large-ll60k",
    # H-l and W share one width in the fixtures (avg_hubert_wav2vec2 needs it).
    fixture=FixtureShape(hidden_size=32, num_layers=3),
)

CHECKPOINTS: Dict[str, CheckpointSpec] = {
    spec.checkpoint_id: spec
    for spec in (
        replace(
            _HUBERT_LARGE,
            checkpoint_id="facebook/hubert-xlarge-ll60k",
            short="H-xl",
            hidden_size=1280,
            num_layers=48,
            source="https://huggingface.co/facebook/hubert-xlarge-ll60k",
            # Another width than H-l/W, so feature-axis resampling is exercised.
            fixture=FixtureShape(hidden_size=48, num_layers=4, num_heads=4, intermediate_size=96),
        ),
        _HUBERT_LARGE,
        replace(
            _HUBERT_LARGE,
            checkpoint_id="facebook/wav2vec2-large-960h-lv60-self",
            short="W",
            model_type="wav2vec2",
            saved_head="Wav2Vec2ForCTC",
            source="https://huggingface.co/facebook/wav2vec2-large-960h-lv60-self",
            fixture=FixtureShape(hidden_size=32, num_layers=2),
        ),
        # Other architectures the hf member runs (not in any preset ensemble yet).
        CheckpointSpec("microsoft/wavlm-large", "WavLM-L", "wavlm", 1024, 24, "WavLMModel", True,
                       "https://huggingface.co/microsoft/wavlm-large"),
        CheckpointSpec("facebook/w2v-bert-2.0", "w2v-BERT", "wav2vec2-bert", 1024, 24, "Wav2Vec2BertModel", False,
                       "https://huggingface.co/facebook/w2v-bert-2.0"),
        CheckpointSpec("openai/whisper-base", "Whisper-B", "whisper", 512, 6, "WhisperForConditionalGeneration",
                       False, "https://huggingface.co/openai/whisper-base",
                       config={"d_model": 512, "encoder_layers": 6, "num_mel_bins": 80, "max_source_positions": 1500}),
        CheckpointSpec("MIT/ast-finetuned-audioset-10-10-0.4593", "AST", "audio-spectrogram-transformer", 768, 12,
                       "ASTForAudioClassification", False,
                       "https://huggingface.co/MIT/ast-finetuned-audioset-10-10-0.4593",
                       config={"hidden_size": 768, "num_hidden_layers": 12, "num_mel_bins": 128, "max_length": 1024,
                               "patch_size": 16, "frequency_stride": 10, "time_stride": 10}),
        CheckpointSpec("laion/clap-htsat-unfused", "CLAP", "clap", 768, 4, "ClapModel", False,
                       "https://huggingface.co/laion/clap-htsat-unfused",
                       config={"audio_config": {"depths": [2, 2, 6, 2], "patch_embeds_hidden_size": 96,
                                                "spec_size": 256, "num_mel_bins": 64, "enable_fusion": False}}),
    )
}


def checkpoint_spec(checkpoint_id: str) -> CheckpointSpec | None:
    """The spec of a known checkpoint id, or None for a checkpoint we know nothing about."""
    return CHECKPOINTS.get(checkpoint_id)
