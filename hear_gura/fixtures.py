"""Tiny random-initialised checkpoints for tests and demos (``hear-gura fixtures DIR``).

No pretrained weights can be downloaded on an offline machine, so this
writes, for every checkpoint id any ensemble uses, a tiny model of the same
architecture (:func:`tiny_checkpoint`: any ``model_type`` the ``hf`` member
runs) with the real front end and input features (real frame counts), saved
with transformers' own ``save_pretrained`` in the real on-disk format
(``config.json`` + ``model.safetensors``, the class the real checkpoint was
saved from, e.g. the CTC head or Whisper's decoder, plus the matching
``preprocessor_config.json``, which s3prl's ``hf_*_custom`` upstreams read
too). ``DIR/checkpoints.json`` is the manifest. These weights are RANDOM:
every config carries ``hear_gura_random_fixture: true`` and the manifest
``"_random_weights": true``, and models built from them say so.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path
from typing import Any, Dict, Iterable, List, Optional, Tuple

import torch

from hear_gura.atomic import save_json
from hear_gura.members.hf import FIXTURE_MARKER
from hear_gura.registry import available_ensembles, load_ensemble
from hear_gura.specs import CONV_KERNEL, CONV_STRIDE, CheckpointSpec, FixtureShape, checkpoint_spec

MANIFEST_NAME = "checkpoints.json"


def checkpoint_ids_in_use(ensembles: Iterable[str] | None = None) -> List[str]:
    """Checkpoint ids of the ``hf`` members of the given (default: all) ensembles."""
    ids: List[str] = []
    for name in ensembles or available_ensembles():
        for member in load_ensemble(name).members:
            checkpoint = member.params.get("checkpoint")
            if member.type == "hf" and checkpoint not in ids:
                ids.append(str(checkpoint))
    return ids


def _tiny_model(spec: CheckpointSpec, seed: int) -> torch.nn.Module:
    """A randomly initialised tiny model of the spec's architecture and saved class."""
    import transformers

    shape = spec.fixture
    config_class = {"hubert": transformers.HubertConfig, "wav2vec2": transformers.Wav2Vec2Config}[spec.model_type]
    config = config_class(
        hidden_size=shape.hidden_size,
        num_hidden_layers=shape.num_layers,
        num_attention_heads=shape.num_heads,
        intermediate_size=shape.intermediate_size,
        conv_dim=(shape.conv_dim,) * len(CONV_KERNEL),
        conv_kernel=CONV_KERNEL,
        conv_stride=CONV_STRIDE,
        conv_bias=True,
        feat_extract_norm="layer",
        do_stable_layer_norm=True,
        num_conv_pos_embeddings=shape.pos_conv_kernel,
        num_conv_pos_embedding_groups=shape.pos_conv_groups,
        vocab_size=32,
    )
    setattr(config, FIXTURE_MARKER, True)
    torch.manual_seed(seed)
    model = getattr(transformers, spec.saved_head)(config)
    with torch.no_grad():
        # Default init leaves LayerNorms at identity; perturb them so tests can
        # tell states before and after a LayerNorm apart.
        for module in model.modules():
            if isinstance(module, torch.nn.LayerNorm):
                module.weight.add_(0.2 * torch.randn_like(module.weight))
                module.bias.add_(0.1 * torch.randn_like(module.bias))
    return model.eval()


#: Saved class of a stand-in when its spec does not name one: the real checkpoints' usual class.
SAVED_CLASSES = {
    "whisper": "WhisperForConditionalGeneration",
    "audio-spectrogram-transformer": "ASTForAudioClassification",
    "clap": "ClapModel",
}


def _waveform_config(model_type: str, shape: FixtureShape) -> Dict[str, Any]:
    """Tiny config of a wav2vec 2.0-style encoder: the real conv front end, narrow and shallow elsewhere."""
    import transformers

    defaults = getattr(transformers, _config_class(model_type))()
    layers = len(defaults.conv_kernel)
    config: Dict[str, Any] = dict(
        hidden_size=shape.hidden_size, num_hidden_layers=shape.num_layers, num_attention_heads=shape.num_heads,
        intermediate_size=shape.intermediate_size, conv_dim=(shape.conv_dim,) * layers,
        conv_kernel=tuple(defaults.conv_kernel), conv_stride=tuple(defaults.conv_stride), conv_bias=True,
        feat_extract_norm="layer", num_conv_pos_embeddings=shape.pos_conv_kernel,
        num_conv_pos_embedding_groups=shape.pos_conv_groups, vocab_size=32,
    )
    if model_type == "data2vec-audio":  # a stack of positional conv layers
        config.update(num_conv_pos_embeddings=2, conv_pos_kernel_size=5)
    if model_type == "wav2vec2-conformer":
        config.update(conv_depthwise_kernel_size=7)
    if model_type in ("unispeech-sat", "wav2vec2-conformer"):
        config.update(do_stable_layer_norm=True)
    return config


def _config_class(model_type: str) -> str:
    from hear_gura.members.hf_families import FAMILIES

    return {"clap": "ClapConfig"}.get(model_type, FAMILIES[model_type].config_class)


def tiny_config(model_type: str, shape: FixtureShape = FixtureShape(32, 2), **overrides: Any) -> Any:
    """A tiny transformers config of ``model_type`` (any type the hf member runs), ``overrides`` applied.

    Waveform encoders keep the real convolutional front end; Whisper, AST and
    CLAP keep their real input features unless ``overrides`` shrink the fixed
    input length (``max_source_positions``, ``max_length``, ``spec_size``).
    """
    import transformers

    width, layers, heads, inner = shape.hidden_size, shape.num_layers, shape.num_heads, shape.intermediate_size
    if model_type == "wav2vec2-bert":
        config: Dict[str, Any] = dict(hidden_size=width, num_hidden_layers=layers, num_attention_heads=heads,
                                      intermediate_size=inner, conv_depthwise_kernel_size=7, vocab_size=32)
    elif model_type == "whisper":
        config = dict(d_model=width, encoder_layers=layers, decoder_layers=1, encoder_attention_heads=heads,
                      decoder_attention_heads=heads, encoder_ffn_dim=inner, decoder_ffn_dim=inner, vocab_size=64,
                      max_target_positions=16, pad_token_id=0, bos_token_id=1, eos_token_id=2,
                      decoder_start_token_id=3, suppress_tokens=[], begin_suppress_tokens=[])
    elif model_type == "audio-spectrogram-transformer":
        config = dict(hidden_size=width, num_hidden_layers=layers, num_attention_heads=heads,
                      intermediate_size=inner, num_labels=3)
    elif model_type == "clap":
        audio = dict(patch_embeds_hidden_size=8, depths=[1] * 4, num_attention_heads=[1, 2, 4, 8], hidden_size=64,
                     projection_dim=8)
        audio.update(overrides.pop("audio_config", {}))
        audio["hidden_size"] = audio["patch_embeds_hidden_size"] * 2 ** (len(audio["depths"]) - 1)
        text = dict(hidden_size=8, num_hidden_layers=1, num_attention_heads=1, intermediate_size=8, vocab_size=32,
                    projection_dim=8)
        config = dict(audio_config=audio, text_config=text, projection_dim=8)
    else:
        config = _waveform_config(model_type, shape)
    config.update(overrides)
    built = getattr(transformers, _config_class(model_type))(**config)
    setattr(built, FIXTURE_MARKER, True)
    return built


def tiny_extractor(model_type: str, config: Any, **overrides: Any) -> Any:
    """The feature extractor of a tiny checkpoint: the real one, fitted to the config's fixed input length."""
    import transformers

    if model_type == "whisper":
        seconds = int(config.max_source_positions) * 2 * 160 // 16000
        kwargs: Dict[str, Any] = dict(feature_size=config.num_mel_bins, chunk_length=seconds)
        return transformers.WhisperFeatureExtractor(**{**kwargs, **overrides})
    if model_type == "audio-spectrogram-transformer":
        return transformers.ASTFeatureExtractor(num_mel_bins=config.num_mel_bins, max_length=config.max_length,
                                                **overrides)
    if model_type == "clap":
        # laion's fused checkpoints take 4 stacked mel inputs ("fusion"), the unfused ones one ("rand_trunc").
        truncation = "fusion" if config.audio_config.enable_fusion else "rand_trunc"
        kwargs = dict(feature_size=config.audio_config.num_mel_bins, truncation=truncation)
        return transformers.ClapFeatureExtractor(**{**kwargs, **overrides})
    if model_type == "wav2vec2-bert":
        return transformers.SeamlessM4TFeatureExtractor(**overrides)
    kwargs = dict(feature_size=1, sampling_rate=16000, padding_value=0.0, do_normalize=True, return_attention_mask=True)
    return transformers.Wav2Vec2FeatureExtractor(**{**kwargs, **overrides})


def _perturb(model: torch.nn.Module) -> None:
    """Move LayerNorms (and BatchNorm statistics) off identity, so tests tell states before and after them apart."""
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, torch.nn.LayerNorm) and module.weight is not None:
                module.weight.add_(0.2 * torch.randn_like(module.weight))
                module.bias.add_(0.1 * torch.randn_like(module.bias))
            elif isinstance(module, (torch.nn.BatchNorm1d, torch.nn.BatchNorm2d)):
                module.running_mean.add_(0.1 * torch.randn_like(module.running_mean))
                module.running_var.mul_(1 + 0.2 * torch.rand_like(module.running_var))


def tiny_checkpoint(model_type: str, seed: int = 0, shape: FixtureShape = FixtureShape(32, 2),
                    saved_class: Optional[str] = None, extractor: Optional[Dict[str, Any]] = None,
                    **overrides: Any) -> Tuple[torch.nn.Module, Any]:
    """A random tiny model of ``model_type`` (saved class ``saved_class``) and its feature extractor.

    Args:
        model_type: any ``config.model_type`` the hf member runs.
        seed: RNG seed; the same seed gives the same weights.
        shape: widths and depths.
        saved_class: the transformers class to build (default: the real checkpoints' usual class).
        extractor: feature extractor overrides.
        overrides: config overrides (see :func:`tiny_config`).
    """
    import transformers

    from hear_gura.members.hf_families import FAMILIES

    config = tiny_config(model_type, shape, **overrides)
    cls = saved_class or SAVED_CLASSES.get(model_type) or FAMILIES[model_type].model_class
    torch.manual_seed(seed)
    model = getattr(transformers, cls)(config).eval()
    _perturb(model)
    return model, tiny_extractor(model_type, config, **(extractor or {}))


def write_tiny_checkpoint(folder: "str | os.PathLike[str]", model_type: str, seed: int = 0, **kwargs: Any) -> Path:
    """:func:`tiny_checkpoint` saved with ``save_pretrained`` (weights, config, preprocessor config) in ``folder``."""
    model, extractor = tiny_checkpoint(model_type, seed, **kwargs)
    folder = Path(folder)
    model.save_pretrained(folder, safe_serialization=True)
    extractor.save_pretrained(folder)
    return folder


def _spec_checkpoint(spec: CheckpointSpec, seed: int) -> Tuple[torch.nn.Module, Any]:
    """The stand-in of a known checkpoint: its real shape-deciding fields, the fixture's widths and depths."""
    config = {k: v for k, v in (spec.config or {}).items() if k not in ("hidden_size", "num_hidden_layers",
                                                                           "d_model", "encoder_layers")}
    if spec.model_type == "clap":
        audio = {k: v for k, v in config.pop("audio_config", {}).items() if k not in ("patch_embeds_hidden_size",)}
        audio["depths"] = [1] * len(audio.get("depths", [1] * 4))
        audio["num_attention_heads"] = [2 ** i for i in range(len(audio["depths"]))]
        config["audio_config"] = audio
    return tiny_checkpoint(spec.model_type, seed, spec.fixture, saved_class=spec.saved_head, **config)


def write_fixtures(directory: "str | os.PathLike[str]", seed: int = 0,
                   checkpoint_ids: Optional[Iterable[str]] = None) -> Path:
    """Write tiny checkpoints for every checkpoint id in use (or those given), and the manifest.

    Args:
        directory: output folder (created; existing checkpoints are replaced).
        seed: RNG seed; the same seed writes the same weights.
        checkpoint_ids: known ids (:mod:`hear_gura.specs`) to write; default:
            those of every ``hf`` member of every ensemble.
    Returns:
        the manifest path, ``directory / "checkpoints.json"``.
    """
    import transformers

    out = Path(directory)
    out.mkdir(parents=True, exist_ok=True)
    manifest: Dict[str, object] = {
        "_random_weights": True,
        "_note": "tiny RANDOM-initialised stand-ins written by `hear-gura fixtures`: not pretrained models",
    }
    for index, checkpoint_id in enumerate(checkpoint_ids_in_use() if checkpoint_ids is None else checkpoint_ids):
        spec = checkpoint_spec(checkpoint_id)
        if spec is None:
            raise ValueError(f"no fixture shape known for {checkpoint_id!r}; add it to hear_gura/specs.py")
        folder = checkpoint_id.replace("/", "--")
        staging = Path(tempfile.mkdtemp(prefix=f".{folder}.", dir=out))
        staging.chmod(0o755)
        if spec.model_type in ("hubert", "wav2vec2"):  # the GURA reference tests depend on these bytes
            _tiny_model(spec, seed + index).save_pretrained(staging, safe_serialization=True)
            transformers.Wav2Vec2FeatureExtractor(
                feature_size=1, sampling_rate=16000, padding_value=0.0, do_normalize=True, return_attention_mask=True
            ).save_pretrained(staging)
        else:
            model, extractor = _spec_checkpoint(spec, seed + index)
            model.save_pretrained(staging, safe_serialization=True)
            extractor.save_pretrained(staging)
        target = out / folder
        if target.exists():
            shutil.rmtree(target)
        staging.rename(target)
        manifest[checkpoint_id] = folder
    path = out / MANIFEST_NAME
    save_json(path, manifest)
    return path
