"""Hugging Face transformers members: wav2vec 2.0 and HuBERT checkpoints."""

from __future__ import annotations

import os
import pickle
import re
from pathlib import Path
from typing import Any, Iterator, Mapping, Optional

import torch

from hear_gura.errors import CheckpointError, ConfigError
from hear_gura.manifest import Manifest
from hear_gura.members.base import Member
from hear_gura.specs import checkpoint_spec
from hear_gura.timestamps import FrameGrid, ssl_frame_count

#: config.model_type -> transformers class name of the bare encoder.
MODEL_CLASSES = {"hubert": "HubertModel", "wav2vec2": "Wav2Vec2Model"}

#: Parameters a checkpoint may lack, or hold unused, without changing inference
#: (used only for masking in training; created only when the config masks).
_UNUSED_AT_INFERENCE = ("masked_spec_embed",)

#: Top-level weight names a checkpoint may hold that the bare encoder never uses:
#: heads saved on top of it. ``lm_head``: CTC (``*ForCTC``, e.g.
#: facebook/wav2vec2-large-960h-lv60-self); ``project_q``, ``project_hid``,
#: ``quantizer``: wav2vec 2.0 pretraining (``Wav2Vec2ForPreTraining``);
#: ``projector``, ``classifier``, ``layer_weights``: ``*ForSequenceClassification``.
#: Any other weight the encoder does not take (e.g. layers beyond the config's
#: ``num_hidden_layers``) is refused.
UNUSED_HEAD_WEIGHTS = ("lm_head", "project_q", "project_hid", "quantizer", "projector", "classifier", "layer_weights")

#: A weight of transformer layer N (``encoder.layers.N.``), group 1 = N.
_LAYER_KEY = re.compile(r"(?:^|\.)encoder\.layers\.(\d+)\.")

#: Marker that ``hear-gura fixtures`` writes into the config of its random checkpoints.
FIXTURE_MARKER = "hear_gura_random_fixture"


def receptive_field_and_hop(kernels: "tuple[int, ...] | list[int]", strides: "tuple[int, ...] | list[int]") -> "tuple[int, int]":
    """Receptive field and hop (samples) of a stack of strided 1-D convolutions."""
    field, hop = 1, 1
    for kernel, stride in zip(kernels, strides):
        field += (kernel - 1) * hop
        hop *= stride
    return field, hop


class HFMember(Member):
    """A transformers ``HubertModel`` / ``Wav2Vec2Model``.

    Params (from the ensemble file): ``checkpoint``: a hub id (resolved through
    the manifest, then the Hugging Face cache / hub) or a local folder.

    States follow :mod:`hear_gura.layers`: ``hidden_states[:-1]`` then
    ``last_hidden_state``, which is the transformers 4.x tuple on every
    version (5.x ends its tuple with layer L *before* the final LayerNorm).
    """

    def __init__(
        self, name: str, params: Mapping[str, Any], manifest: Manifest, normalize_waveform: bool
    ) -> None:
        super().__init__(name, normalize_waveform)
        unknown = set(params) - {"checkpoint"}
        if unknown or "checkpoint" not in params:
            raise ConfigError(f'hf member {name!r} takes exactly {{"checkpoint": ID_OR_PATH}}, got {dict(params)}')
        self.checkpoint_id = str(params["checkpoint"])
        self.model = load_hf_encoder(name, self.checkpoint_id, manifest)
        config = self.model.config
        self.num_states = config.num_hidden_layers + 1
        self.width = config.hidden_size
        self.receptive_field, self.default_hop = receptive_field_and_hop(config.conv_kernel, config.conv_stride)
        self.random_weights = bool(getattr(config, FIXTURE_MARKER, False))
        # Group-normalised front ends (base models) mix padding into valid frames.
        self.supports_padding = config.feat_extract_norm == "layer"

    def frame_grid(self, num_samples: int, hop: Optional[int] = None) -> FrameGrid:
        count = ssl_frame_count(num_samples, self.receptive_field, self.default_hop)
        return FrameGrid(count, self.receptive_field / 2, self.default_hop)

    def states(
        self, wav: torch.Tensor, deepest: int, hop: Optional[int] = None, lengths: Optional[torch.Tensor] = None
    ) -> Iterator[torch.Tensor]:
        """States 0 .. ``deepest``, computed layer by layer.

        The same modules and operations as the transformers forward pass (tested
        equal to its ``hidden_states`` / ``last_hidden_state``), but lazily: a
        consumer holds one state at a time, and layers past ``deepest`` never run.
        With ``lengths``, padded frames are zeroed before the positional
        convolution and masked out of attention, as transformers does with an
        ``attention_mask``.
        """
        model = self.model
        features = self._conv_features(wav).transpose(1, 2)
        projected = model.feature_projection(features)
        hidden = projected[0] if isinstance(projected, tuple) else projected
        encoder = model.encoder
        attention_mask = None
        if lengths is not None:
            counts = torch.tensor([self.frame_grid(int(n)).count for n in lengths], device=hidden.device)
            valid = torch.arange(hidden.shape[1], device=hidden.device)[None, :] < counts[:, None]
            hidden = hidden.masked_fill(~valid[..., None], 0.0)
            attention_mask = _attention_mask(model.config, hidden, valid)
        stable = bool(model.config.do_stable_layer_norm)
        hidden = hidden + encoder.pos_conv_embed(hidden)
        if not stable:
            hidden = encoder.layer_norm(hidden)
        yield hidden
        last = self.num_states - 1
        for index, layer in enumerate(encoder.layers[:deepest], start=1):
            output = layer(hidden, attention_mask=attention_mask)
            hidden = output[0] if isinstance(output, tuple) else output
            yield encoder.layer_norm(hidden) if stable and index == last else hidden


    #: Frames per piece of the convolutional front end (~10 s): bounds its memory.
    conv_chunk_frames = 500

    def _conv_features(self, wav: torch.Tensor) -> torch.Tensor:
        """The CNN front end, ``(batch, 512, frames)``, in pieces of ``conv_chunk_frames`` frames.

        Its first layer alone holds 512 x N / 5 floats (400 MB for 60 s); run in
        pieces it holds ~70 MB whatever the length. Exact: each frame depends only
        on its own 400 samples, and the ``layer`` front end normalises each frame
        alone (a ``group`` front end normalises over time, so it runs whole).
        """
        extractor = self.model.feature_extractor
        total = self.frame_grid(wav.shape[-1]).count
        if not self.supports_padding or total <= self.conv_chunk_frames:
            return extractor(wav)
        pieces = []
        for start in range(0, total, self.conv_chunk_frames):
            stop = min(total, start + self.conv_chunk_frames)
            first = start * self.default_hop
            pieces.append(extractor(wav[:, first : first + self.samples_for_frames(stop - start)]))
        return torch.cat(pieces, dim=-1)


def _attention_mask(config: Any, hidden: torch.Tensor, valid: torch.Tensor) -> Any:
    """The attention mask transformers builds from a 2-D ``valid`` mask for this config."""
    try:
        from transformers.masking_utils import create_bidirectional_mask
    except ImportError:  # transformers 4.x
        from transformers.modeling_attn_mask_utils import _prepare_4d_attention_mask

        return _prepare_4d_attention_mask(valid.long(), hidden.dtype)
    return create_bidirectional_mask(config=config, inputs_embeds=hidden, attention_mask=valid.long())


def _resolve(name: str, checkpoint_id: str, manifest: Manifest) -> "str | Path":
    """Where to load ``checkpoint_id`` from: manifest path, local folder, or the hub id."""
    path = manifest.resolve(checkpoint_id)
    if path is not None:
        if not (path / "config.json").is_file():
            what = "a file" if path.is_file() else "a folder without config.json"
            raise CheckpointError(manifest.unloadable_entry(checkpoint_id, f"member {name!r}", f"it is {what}"))
        return path
    local = Path(checkpoint_id).expanduser()
    if local.is_dir():
        return local
    return checkpoint_id


def read_checkpoint_config(name: str, checkpoint_id: str, source: "str | Path", how_to_supply: str,
                           manifest: Manifest) -> "dict[str, Any]":
    """``config.json`` of a checkpoint as plain JSON: transformers' Auto classes never see it.

    Raises:
        CheckpointError: it cannot be found or read.
    """
    import transformers

    try:
        config_dict, _ = transformers.PretrainedConfig.get_config_dict(str(source))
    except (OSError, ValueError) as err:
        offline = " (HF_HUB_OFFLINE is set)" if os.environ.get("HF_HUB_OFFLINE") else ""
        if checkpoint_id in manifest.entries:
            reason = str(err).splitlines()[0]
            raise CheckpointError(manifest.unloadable_entry(checkpoint_id, f"member {name!r}", reason)) from None
        raise CheckpointError(
            f"member {name!r}: checkpoint {checkpoint_id!r} is not in {manifest.describe()} and could not be "
            f"loaded from {source}{offline}: {str(err).splitlines()[0]}. To fix: {how_to_supply}"
        ) from None
    if not isinstance(config_dict, dict):
        raise CheckpointError(
            f"member {name!r}: the config.json of {checkpoint_id!r} at {source} holds a "
            f"{type(config_dict).__name__}, not a JSON object. To fix: {how_to_supply}"
        )
    return config_dict


def refuse_checkpoint_code(name: str, checkpoint_id: str, source: "str | Path", config_dict: Mapping[str, Any]) -> None:
    """Refuse a checkpoint whose ``config.json`` names its own Python code (``auto_map``).

    Such a folder or hub repo ships ``*.py`` files that transformers' Auto
    classes would import (asking on a terminal first, or outright with
    ``trust_remote_code=True``). hear_gura never imports checkpoint code and
    never asks: it loads only the stock transformers classes in
    :data:`MODEL_CLASSES`.

    Raises:
        CheckpointError: ``config.json`` has an ``auto_map``.
    """
    auto_map = config_dict.get("auto_map")
    if not auto_map:
        return
    model_type = config_dict.get("model_type")
    code = sorted({str(v) for v in auto_map.values()}) if isinstance(auto_map, Mapping) else [str(auto_map)]
    kind = (
        f"a {model_type!r} checkpoint" if model_type in MODEL_CLASSES
        else f"a checkpoint of model type {model_type!r}, which transformers does not know,"
    )
    raise CheckpointError(
        f"member {name!r}: {source} is {kind} that ships its own Python code (config.json \"auto_map\": "
        f"{', '.join(code)}). hear_gura never imports or runs code from a checkpoint, and does not ask. "
        f"Use a checkpoint of a supported architecture ({' or '.join(MODEL_CLASSES)}) saved with transformers' "
        f"own classes (a config.json without \"auto_map\"), and point the manifest entry for {checkpoint_id!r} at it"
    )


def load_hf_encoder(name: str, checkpoint_id: str, manifest: Manifest) -> torch.nn.Module:
    """Load the bare encoder of a checkpoint in float32, in eval mode.

    No checkpoint code runs: ``config.json`` is read as JSON and a checkpoint
    naming its own Python code (``auto_map``) is refused before transformers
    sees it; the model is built by the stock class of :data:`MODEL_CLASSES`
    (never an Auto class, ``trust_remote_code=False``); weights load as
    safetensors, or through ``torch.load(weights_only=True)`` for
    ``pytorch_model.bin`` (transformers' own safe loader), so no pickled code
    runs. A checkpoint lacking encoder weights is refused rather than silently
    completed with random ones, and one holding weights the encoder would not
    use (e.g. more layers than its config declares) rather than silently
    truncated; only the heads in :data:`UNUSED_HEAD_WEIGHTS` may be left over.

    Raises:
        CheckpointError: the checkpoint cannot be found, ships its own code, is
            of another architecture than the member expects, lacks weights or
            holds weights the encoder does not use.
    """
    import transformers
    from transformers.utils import logging as hf_logging

    source = _resolve(name, checkpoint_id, manifest)
    how_to_supply = (
        f"supply it with a manifest mapping {checkpoint_id!r} to a local folder holding config.json and "
        "model.safetensors (or pytorch_model.bin), passed as model_file_path / --model or named by "
        "$HEAR_GURA_MANIFEST; or download it while online into the Hugging Face cache; "
        "`hear-gura fixtures DIR` writes tiny RANDOM stand-ins for testing"
    )
    config_dict = read_checkpoint_config(name, checkpoint_id, source, how_to_supply, manifest)
    refuse_checkpoint_code(name, checkpoint_id, source, config_dict)
    model_type = config_dict.get("model_type")
    spec = checkpoint_spec(checkpoint_id)
    expected = spec.model_type if spec else None
    if model_type not in MODEL_CLASSES or (expected and model_type != expected):
        want = expected or " or ".join(MODEL_CLASSES)
        raise CheckpointError(
            f"member {name!r}: {source} holds a {model_type!r} checkpoint, but {checkpoint_id!r} "
            f"must be a {want!r} checkpoint; fix the manifest entry"
        )
    model_class = getattr(transformers, MODEL_CLASSES[model_type])
    try:
        config = model_class.config_class.from_dict(dict(config_dict))
    except (TypeError, ValueError) as err:
        raise CheckpointError(
            f"member {name!r}: the config.json of {checkpoint_id!r} at {source} is not a valid {model_type!r} "
            f"config: {str(err).splitlines()[0]}"
        ) from None
    verbosity, bars = hf_logging.get_verbosity(), hf_logging.is_progress_bar_enabled()
    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    try:
        model, info = model_class.from_pretrained(
            str(source), config=config, dtype=torch.float32, output_loading_info=True, trust_remote_code=False
        )
    except (OSError, ValueError, RuntimeError, pickle.UnpicklingError) as err:
        raise CheckpointError(
            f"member {name!r}: the weights of {checkpoint_id!r} at {source} could not be loaded: "
            f"{str(err).splitlines()[0]}. To fix: {how_to_supply}"
        ) from None
    finally:
        hf_logging.set_verbosity(verbosity)
        if bars:
            hf_logging.enable_progress_bar()
    missing = [k for k in info.get("missing_keys", []) if not k.endswith(_UNUSED_AT_INFERENCE)]
    mismatched = info.get("mismatched_keys", [])
    if missing or mismatched:
        raise CheckpointError(
            f"member {name!r}: {source} lacks {len(missing) + len(mismatched)} encoder weights "
            f"(e.g. {(missing + [str(m) for m in mismatched])[:3]}); refusing to fill them with random values. "
            "Is it a checkpoint of the right architecture?"
        )
    refuse_unused_weights(name, source, config, info.get("unexpected_keys", []))
    return model.eval()


def refuse_unused_weights(name: str, source: "str | Path", config: Any, unexpected: "list[str] | set[str]") -> None:
    """Refuse weights the bare encoder would silently drop (heads of :data:`UNUSED_HEAD_WEIGHTS` aside).

    Raises:
        CheckpointError: e.g. ``config.json`` declares fewer layers than the
            weights hold, which would load a truncated model.
    """
    unused = sorted(
        k for k in unexpected
        if k.split(".")[0] not in UNUSED_HEAD_WEIGHTS and not k.endswith(_UNUSED_AT_INFERENCE)
    )
    if not unused:
        return
    layers = sorted({int(m.group(1)) for m in map(_LAYER_KEY.search, unused) if m})
    declared = int(getattr(config, "num_hidden_layers", 0))
    why = (
        f"the weights hold layers the config does not declare (config.json declares num_hidden_layers = "
        f"{declared}, the weights hold {max(layers) + 1} layers), so the model would be silently truncated; "
        "fix num_hidden_layers in config.json or the manifest entry"
        if layers and min(layers) >= declared else
        "refusing to drop them silently; is config.json the one saved with these weights?"
    )
    raise CheckpointError(
        f"member {name!r}: {source} holds {len(unused)} weights the encoder would not use "
        f"(e.g. {unused[:3]}): {why}"
    )

