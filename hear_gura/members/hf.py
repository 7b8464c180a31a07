"""Hugging Face transformers members: any transformers audio encoder, by ``config.model_type``.

The architectures and how each runs are records in
:mod:`hear_gura.members.hf_families` (one per ``model_type``); their state
generators are in :mod:`hear_gura.members.hf_encoders`, their spectrogram
inputs in :mod:`hear_gura.members.hf_features`.
"""

from __future__ import annotations

import os
import pickle
import re
from pathlib import Path
from typing import Any, Iterator, Mapping, Optional, Tuple

import torch

from hear_gura.errors import CheckpointError
from hear_gura.manifest import Manifest
from hear_gura.members.base import Member
from hear_gura.members.hf_families import (
    BASE_PREFIXES, FAMILIES, REMOTE, UNUSED_HEAD_WEIGHTS, Family, Grid, build_config, build_extractor, clap_layout,
    receptive_field_and_hop, supported_types,
)
from hear_gura.members.registry import MemberDescription, Param, register_member
from hear_gura.specs import checkpoint_spec
from hear_gura.timestamps import FrameGrid

#: config.model_type -> transformers class name of the bare encoder (every supported architecture).
MODEL_CLASSES = {model_type: family.model_class for model_type, family in FAMILIES.items()}

#: Parameters a checkpoint may lack, or hold unused, without changing inference
#: (used only for masking in training; created only when the config masks).
_UNUSED_AT_INFERENCE = ("masked_spec_embed",)

#: A weight of transformer layer N (``encoder.layers.N.``), group 1 = N.
_LAYER_KEY = re.compile(r"(?:^|\.)encoder\.layers?\.(\d+)\.")

#: Marker that ``hear-gura fixtures`` writes into the config of its random checkpoints.
FIXTURE_MARKER = "hear_gura_random_fixture"

__all__ = ["HFMember", "FIXTURE_MARKER", "MODEL_CLASSES", "UNUSED_HEAD_WEIGHTS", "checkpoint_shape",
           "receptive_field_and_hop", "read_json_config"]


def read_json_config(path: Path) -> "dict[str, Any]":
    """A JSON file (``config.json``, ``preprocessor_config.json``) as a plain dict ({} when absent or unreadable)."""
    import json

    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def choose_family(name: str, source: Any, config_dict: Mapping[str, Any], trust_remote_code: bool,
                  checkpoint_id: Optional[str] = None) -> Family:
    """The :class:`~hear_gura.members.hf_families.Family` that runs a checkpoint, from its ``config.json``.

    Raises:
        CheckpointError: it ships its own code and the member does not opt in
            (:func:`refuse_checkpoint_code`), or its model type is not supported.
    """
    if config_dict.get("auto_map"):
        if trust_remote_code:
            return REMOTE
        refuse_checkpoint_code(name, checkpoint_id or str(source), source, config_dict)
    model_type = config_dict.get("model_type")
    family = FAMILIES.get(model_type) if isinstance(model_type, str) else None
    if family is None:
        raise CheckpointError(
            f"member {name!r}: {source} holds a {model_type!r} checkpoint; the hf member runs {supported_types()} "
            "(a config.json \"model_type\" that transformers' own classes load)"
        )
    return family


def describe_checkpoint(name: str, config_dict: Mapping[str, Any], preprocessor: Mapping[str, Any],
                        trust_remote_code: bool, source: Any) -> Tuple[Family, Any, Any, Grid]:
    """Family, config, feature extractor and frame grid of a checkpoint, from its two JSON files (no weights).

    Raises:
        CheckpointError: unsupported, code-shipping without opt-in, or an invalid config.
    """
    family = choose_family(name, source, config_dict, trust_remote_code)
    try:
        config = build_config(family, config_dict)
        extractor = build_extractor(family, preprocessor)
        grid = family.grid(config, extractor)
    except CheckpointError as err:
        text = str(err)
        raise CheckpointError(text if text.startswith("member ") else f"member {name!r}: {source}: {text}") from None
    return family, config, extractor, grid


def checkpoint_shape(name: str, location: Any, trust_remote_code: bool = False) -> "dict[str, Any]":
    """Width, states, hop, receptive field, native rate and random-or-not of a transformers checkpoint, without weights.

    From the located folder's ``config.json`` and ``preprocessor_config.json``;
    for a known hub id that is not on this machine, from its record in
    :mod:`hear_gura.specs`.

    Raises:
        CheckpointError: neither is available, or the checkpoint cannot run (see :func:`describe_checkpoint`).
    """
    config_dict = read_json_config(location.path / "config.json") if location.path is not None else {}
    preprocessor = read_json_config(location.path / "preprocessor_config.json") if config_dict else {}
    random = bool(location.random_weights)
    if not config_dict:
        spec = checkpoint_spec(str(location.checkpoint))
        if spec is None:
            raise CheckpointError(
                f"member {name!r}: checkpoint {location.checkpoint!r} is not on this machine "
                f"({location.path or 'not in the manifest, not a local folder, not in the Hugging Face cache'}), "
                "so its shape is unknown; give a manifest (--model / $HEAR_GURA_MANIFEST) that maps it to a local folder"
            )
        config_dict, preprocessor = spec.config_dict(), dict(spec.preprocessor)
    random = random or bool(config_dict.get(FIXTURE_MARKER))
    family, config, _, grid = describe_checkpoint(name, config_dict, preprocessor, trust_remote_code,
                                                  location.path or location.checkpoint)
    return {"width": family.width(config), "num_states": family.num_states(config), "hop": grid.hop,
            "receptive_field": grid.receptive_field, "sample_rate": grid.sample_rate, "random_weights": random,
            "family": family}


@register_member("hf")
class HFMember(Member):
    """Any transformers audio encoder: wav2vec2, hubert, wavlm, data2vec-audio, unispeech(-sat), sew(-d),
    wav2vec2-conformer, wav2vec2-bert, whisper (encoder), audio-spectrogram-transformer, clap (audio tower).

    Params (from the ensemble file): ``checkpoint``: a hub id (resolved through
    the manifest, then the Hugging Face cache) or a local folder;
    ``trust_remote_code``: opt in to checkpoints that ship their own Python
    code (see :func:`load_hf_encoder`).

    The architecture comes from ``config.json``'s ``model_type``; the input
    features from ``preprocessor_config.json`` (resampled from 16 kHz when the
    model's rate differs); the states, hop and receptive field from the
    family record (:mod:`hear_gura.members.hf_families`, whose table says which
    tensors the states are). For HuBERT / wav2vec 2.0 the states follow
    :mod:`hear_gura.layers`: ``hidden_states[:-1]`` then ``last_hidden_state``,
    which is the transformers 4.x tuple on every version (5.x ends its tuple
    with layer L *before* the final LayerNorm).
    """

    PARAMS = {
        "checkpoint": Param((str,), doc="a hub id (resolved through the manifest) or a local folder"),
        "trust_remote_code": Param((bool,), False, doc="run a checkpoint's own Python code (config.json auto_map): "
                                   "it then runs in this process; only from local files"),
    }
    checkpoint_param = "checkpoint"

    @classmethod
    def describe(cls, name: str, params: Mapping[str, Any], location: Any) -> MemberDescription:
        shape = checkpoint_shape(name, location, bool(params.get("trust_remote_code", False)))
        return MemberDescription(
            kind=cls.kind, width=shape["width"], num_states=shape["num_states"], default_hop=shape["hop"],
            receptive_field=shape["receptive_field"], sample_rate=shape["sample_rate"],
            random_weights=shape["random_weights"], weights=str(location.path or location.checkpoint),
        )

    def __init__(
        self, name: str, params: Mapping[str, Any], manifest: Manifest, normalize_waveform: bool
    ) -> None:
        super().__init__(name, normalize_waveform)
        self.checkpoint_id = str(params["checkpoint"])
        trust = bool(params.get("trust_remote_code", False))
        model, self.family, self.config, self.extractor = load_hf_encoder(name, self.checkpoint_id, manifest, trust)
        self.model = model
        self.runner = _runner(self.family)
        self.grid = self.family.grid(self.config, self.extractor)
        self.num_states, self.width = self.family.num_states(self.config), self.family.width(self.config)
        self.layout = clap_layout(self.config, self.extractor) if self.family.runner == "clap" else None
        self.receptive_field, self.default_hop = self.grid.receptive_field, self.grid.hop
        self.sample_rate = self.grid.sample_rate
        self.random_weights = bool(getattr(self.config, FIXTURE_MARKER, False))
        self.supports_padding = self.runner.supports_padding(self.config)
        # CLAP windows itself (10 s pieces, a fractional hop); the others through Member's windowing.
        self.global_context = self.family.runner != "clap"
        if self.global_context and not float(self.default_hop).is_integer():
            raise CheckpointError(
                f"member {name!r}: at 16 kHz its frame hop is {self.default_hop} samples, not a whole number, so "
                "long clips cannot be windowed on its frame grid; use a checkpoint whose rate divides its hop"
            )

    def set_windowing(self, max_window: Optional[int], overlap: int) -> None:
        """As :meth:`Member.set_windowing`, the window capped at the longest input the model takes in one pass.

        Fixed-length models (Whisper: 30 s, AST: 10.24 s) see at most that much;
        when the cap applies, the overlap is cut to at most a quarter of it.
        """
        longest = self.grid.max_samples if self.global_context else None
        if longest is not None and (max_window is None or max_window > longest):
            max_window, overlap = longest, min(overlap, longest // 4)
        super().set_windowing(max_window, overlap)

    def frame_grid(self, num_samples: int, hop: Optional[int] = None) -> FrameGrid:
        return FrameGrid(self.grid.count(num_samples), self.grid.first_centre, self.default_hop)

    def states(
        self, wav: torch.Tensor, deepest: int, hop: Optional[int] = None, lengths: Optional[torch.Tensor] = None
    ) -> Iterator[torch.Tensor]:
        """States 0 .. ``deepest``, computed layer by layer (:mod:`hear_gura.members.hf_encoders`).

        The same modules and operations as the transformers forward pass (tested
        equal to its ``hidden_states`` / ``last_hidden_state``), but lazily: a
        consumer holds one state at a time, and layers past ``deepest`` never run.
        With ``lengths``, padded frames are zeroed before the positional
        convolution and masked out of attention, as transformers does with an
        ``attention_mask``. Checkpoints with their own code run one full forward.
        """
        return self.runner.states(self, wav, deepest, lengths)

    #: Frames per piece of the convolutional front end (~10 s): bounds its memory.
    conv_chunk_frames = 500

    def _conv_features(self, wav: torch.Tensor) -> torch.Tensor:
        """The CNN front end, ``(batch, 512, frames)``, in pieces of ``conv_chunk_frames`` frames (16 kHz models).

        Its first layer alone holds 512 x N / 5 floats (400 MB for 60 s); run in
        pieces it holds ~70 MB whatever the length. Exact: each frame depends only
        on its own 400 samples, and the ``layer`` front end normalises each frame
        alone (a ``group`` front end normalises over time, so it runs whole).
        """
        extractor = self.model.feature_extractor
        total = self.frame_grid(wav.shape[-1]).count
        resampled = self.grid.sample_rate != 16000  # wav is at the native rate: run whole
        if resampled or not self.supports_padding or total <= self.conv_chunk_frames:
            return extractor(wav)
        pieces = []
        for start in range(0, total, self.conv_chunk_frames):
            stop = min(total, start + self.conv_chunk_frames)
            first = start * self.default_hop
            pieces.append(extractor(wav[:, first : first + self.samples_for_frames(stop - start)]))
        return torch.cat(pieces, dim=-1)


def _runner(family: Family) -> Any:
    from hear_gura.members.hf_encoders import RUNNERS

    return RUNNERS[family.runner]


def _resolve(name: str, checkpoint_id: str, manifest: Manifest) -> "str | Path":
    """Where to load ``checkpoint_id`` from (:func:`hear_gura.identity.locate_checkpoint`), else the hub id.

    Raises:
        CheckpointError: the manifest entry is not a folder with ``config.json``.
    """
    from hear_gura.identity import locate_checkpoint
    from hear_gura.members.base import MemberSpec

    location = locate_checkpoint(MemberSpec(name, "hf", {"checkpoint": checkpoint_id}), manifest)
    if location.via == "manifest" and location.path is not None and not (location.path / "config.json").is_file():
        path = location.path
        what = "a file" if path.is_file() else "a folder without config.json"
        raise CheckpointError(manifest.unloadable_entry(checkpoint_id, f"member {name!r}", f"it is {what}"))
    return location.path if location.path is not None else checkpoint_id


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
    ``trust_remote_code=True``). Unless the member opts in
    (``"trust_remote_code": true``), hear_gura never imports checkpoint code and
    never asks: it loads only the stock transformers classes of
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
        f"{', '.join(code)}). hear_gura never imports or runs code from a checkpoint unless the ensemble file "
        "opts in, and does not ask. Use a checkpoint of a supported architecture "
        f"({supported_types()}) saved with transformers' own classes (a config.json without \"auto_map\"), and "
        f"point the manifest entry for {checkpoint_id!r} at it; or, if you trust that code, opt in with "
        "\"trust_remote_code\": true on the member in the ensemble file (the code then runs in this process, "
        "from local files only)"
    )


def _preprocessor_config(source: "str | Path") -> "dict[str, Any]":
    """``preprocessor_config.json`` of a local checkpoint folder ({} when none: the extractor's defaults)."""
    folder = Path(str(source))
    return read_json_config(folder / "preprocessor_config.json") if folder.is_dir() else {}


def load_hf_encoder(
    name: str, checkpoint_id: str, manifest: Manifest, trust_remote_code: bool = False
) -> Tuple[torch.nn.Module, Family, Any, Any]:
    """Load the bare encoder of a checkpoint in float32, in eval mode, with its config and feature extractor.

    No checkpoint code runs unless the member opts in: ``config.json`` is read
    as JSON and a checkpoint naming its own Python code (``auto_map``) is refused
    before transformers sees it; the model is built by the stock class of its
    family (:data:`~hear_gura.members.hf_families.FAMILIES`; never an Auto
    class, ``trust_remote_code=False``); weights load as safetensors, or through
    ``torch.load(weights_only=True)`` for ``pytorch_model.bin`` (transformers'
    own safe loader), so no pickled code runs. A checkpoint lacking encoder
    weights is refused rather than silently completed with random ones, and one
    holding weights the encoder would not use (e.g. more layers than its config
    declares) rather than silently truncated; only the family's unused heads
    (:data:`UNUSED_HEAD_WEIGHTS`; Whisper's decoder, CLAP's text tower...) may
    be left over.

    With ``trust_remote_code`` (the ensemble file's explicit opt-in), a
    checkpoint with an ``auto_map`` is loaded by ``transformers.AutoModel`` with
    ``trust_remote_code=True`` and ``local_files_only=True``: its code runs in
    this process, but is never downloaded at load time (a hub id must already be
    in the Hugging Face cache). Its frame grid must be declared by its config
    (``conv_kernel`` / ``conv_stride``), its input is the waveform, and its
    states come from one forward pass with ``output_hidden_states`` (no early
    stop, no padded batches).

    Returns:
        ``(encoder, family, config, feature_extractor)``; ``config`` is the
        loaded encoder's (CLAP: its audio tower's).
    Raises:
        CheckpointError: the checkpoint cannot be found, ships its own code
            without the opt-in, is of another architecture than the member
            expects, is not supported, lacks weights or holds weights the encoder
            does not use.
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
    family = choose_family(name, source, config_dict, trust_remote_code, checkpoint_id)
    model_type = config_dict.get("model_type")
    spec = checkpoint_spec(checkpoint_id)
    if spec is not None and family is not REMOTE and model_type != spec.model_type:
        raise CheckpointError(
            f"member {name!r}: {source} holds a {model_type!r} checkpoint, but {checkpoint_id!r} "
            f"must be a {spec.model_type!r} checkpoint; fix the manifest entry"
        )
    try:
        config = build_config(family, config_dict)
        extractor = build_extractor(family, _preprocessor_config(source))
        family.grid(config, extractor)  # a frame grid can be made
        _runner(family).check(config, extractor)
    except CheckpointError as err:
        raise CheckpointError(f"member {name!r}: the checkpoint {checkpoint_id!r} at {source}: {err}") from None
    verbosity, bars = hf_logging.get_verbosity(), hf_logging.is_progress_bar_enabled()
    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    try:
        if family is REMOTE:
            model, info = transformers.AutoModel.from_pretrained(
                str(source), dtype=torch.float32, output_loading_info=True, trust_remote_code=True,
                local_files_only=True,
            )
        else:
            model, info = getattr(transformers, family.model_class).from_pretrained(
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
    missing = [k for k in info.get("missing_keys", [])
               if not k.endswith(_UNUSED_AT_INFERENCE) and not k.startswith(family.ignorable_missing)]
    mismatched = info.get("mismatched_keys", [])
    if missing or mismatched:
        raise CheckpointError(
            f"member {name!r}: {source} lacks {len(missing) + len(mismatched)} encoder weights "
            f"(e.g. {(missing + [str(m) for m in mismatched])[:3]}); refusing to fill them with random values. "
            "Is it a checkpoint of the right architecture?"
        )
    refuse_unused_weights(name, source, model.config, info.get("unexpected_keys", []), family.unused_weights)
    encoder = getattr(model, family.encoder_attr) if family.encoder_attr else model
    loaded_config = encoder.config if hasattr(encoder, "config") else model.config
    if config_dict.get(FIXTURE_MARKER):
        setattr(loaded_config, FIXTURE_MARKER, True)
    return encoder.eval(), family, loaded_config, extractor


def refuse_unused_weights(name: str, source: "str | Path", config: Any, unexpected: "list[str] | set[str]",
                          allowed: Tuple[str, ...] = UNUSED_HEAD_WEIGHTS) -> None:
    """Refuse weights the bare encoder would silently drop (the heads in ``allowed`` aside).

    A weight name is matched on its first component after any base-model
    prefix (``model.decoder...`` counts as ``decoder``).

    Raises:
        CheckpointError: e.g. ``config.json`` declares fewer layers than the
            weights hold, which would load a truncated model.
    """
    def head(key: str) -> str:
        parts = key.split(".")
        return parts[1] if len(parts) > 1 and parts[0] in BASE_PREFIXES and parts[1] in allowed else parts[0]

    unused = sorted(k for k in unexpected if head(k) not in allowed and not k.endswith(_UNUSED_AT_INFERENCE))
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
