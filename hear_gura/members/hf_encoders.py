"""State generators of the transformers audio encoders (one runner per encoder structure).

Every runner yields states ``0 .. deepest`` one at a time, running the same
modules and operations as transformers' forward pass (tested equal to its
``output_hidden_states``, ``tests/test_hf_architectures.py``) but lazily: a
consumer holds one state at a time and layers past ``deepest`` never run.

With ``lengths`` (a zero-padded batch), each runner that supports padding
masks exactly what running each clip alone would not see: padded frames are
zeroed where transformers zeroes them, masked out of attention (and of
convolution modules where the model has one), so each clip's frames equal its
run alone (to float round-off).

Runners receive the member (:class:`hear_gura.members.hf.HFMember`): its
``model`` (the encoder module), ``config``, ``extractor`` (the feature
extractor of ``preprocessor_config.json``), ``grid`` and ``num_states``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable, Dict, Iterator, List, Optional, Sequence

import torch
import torch.nn.functional as F

from hear_gura.errors import CheckpointError
from hear_gura.members import hf_features as feats

if TYPE_CHECKING:  # pragma: no cover
    from hear_gura.members.hf import HFMember

States = Iterator[torch.Tensor]


def attention_mask(config: Any, hidden: torch.Tensor, valid: torch.Tensor) -> Any:
    """The attention mask transformers builds from a 2-D ``valid`` mask for this config."""
    try:
        from transformers.masking_utils import create_bidirectional_mask
    except ImportError:  # transformers 4.x
        from transformers.modeling_attn_mask_utils import _prepare_4d_attention_mask

        return _prepare_4d_attention_mask(valid.long(), hidden.dtype)
    return create_bidirectional_mask(config=config, inputs_embeds=hidden, attention_mask=valid.long())


def _counts(member: "HFMember", wav: torch.Tensor, lengths: Optional[torch.Tensor]) -> List[int]:
    sizes = [int(n) for n in lengths] if lengths is not None else [wav.shape[-1]] * wav.shape[0]
    return [member.grid.count(n) for n in sizes]


def _no_adapter(config: Any) -> None:
    if getattr(config, "add_adapter", False):
        raise CheckpointError(
            "its config has add_adapter = true: the adapter on top of the encoder changes the frame rate of the "
            "last state only; use the checkpoint without the adapter (add_adapter = false)"
        )


class Runner:
    """How one encoder structure turns a 16 kHz batch into states."""

    def check(self, config: Any, extractor: Any) -> None:
        """Refuse a config / preprocessor config this runner cannot run exactly (CheckpointError saying why)."""

    def supports_padding(self, config: Any) -> bool:
        """Whether a zero-padded batch with lengths gives each clip's frames as alone."""
        return True

    def states(self, member: "HFMember", wav: torch.Tensor, deepest: int, lengths: Optional[torch.Tensor]) -> States:
        raise NotImplementedError


# ------------------------------------------------------------------ waveform
class Wav2Vec2Runner(Runner):
    """wav2vec2, hubert, data2vec-audio, unispeech(-sat) (and, with :meth:`layer_call`, wavlm).

    Conv front end (in pieces, :meth:`HFMember._conv_features`), feature
    projection, positional convolution, then the layers; stable-layer-norm
    models apply the encoder's final LayerNorm to the last state only.
    """

    def check(self, config: Any, extractor: Any) -> None:
        _no_adapter(config)

    def supports_padding(self, config: Any) -> bool:
        # Group-normalised front ends (base models) mix padding into valid frames;
        # data2vec-audio normalises each frame of every conv layer (LayerNorm).
        return getattr(config, "feat_extract_norm", "layer") == "layer"

    @staticmethod
    def positions(embed: Any, hidden: torch.Tensor, valid: Optional[torch.Tensor]) -> torch.Tensor:
        """The convolutional positional embedding; with ``valid``, a stack of conv layers (data2vec-audio)
        re-zeroes padded frames between layers, as each layer's zero padding does for a clip alone."""
        layers = getattr(embed, "layers", None)
        if valid is None or layers is None:
            return embed(hidden)
        keep = valid[:, None, :].to(hidden.dtype)  # (batch, 1, frames)
        state = hidden.transpose(1, 2)
        for layer in layers:
            state = layer(state) * keep
        return state.transpose(1, 2)

    def layer_call(self, member: "HFMember", mask2d: Optional[torch.Tensor],
                   mask: Any) -> Callable[[int, Any, torch.Tensor], torch.Tensor]:
        def call(index: int, layer: Any, hidden: torch.Tensor) -> torch.Tensor:
            output = layer(hidden, attention_mask=mask)
            return output[0] if isinstance(output, tuple) else output

        return call

    def states(self, member: "HFMember", wav: torch.Tensor, deepest: int, lengths: Optional[torch.Tensor]) -> States:
        model = member.model
        counts = _counts(member, wav, lengths)
        features = member._conv_features(feats.resample(wav, member.grid.sample_rate)).transpose(1, 2)
        projected = model.feature_projection(features)
        hidden = projected[0] if isinstance(projected, tuple) else projected
        encoder = model.encoder
        mask = valid = None
        if lengths is not None:
            valid = feats.valid_mask(counts, hidden.shape[1], hidden.device)
            hidden = hidden.masked_fill(~valid[..., None], 0.0)
            mask = attention_mask(model.config, hidden, valid)
        stable = bool(getattr(model.config, "do_stable_layer_norm", False))
        hidden = hidden + self.positions(encoder.pos_conv_embed, hidden, valid)
        if not stable:
            hidden = encoder.layer_norm(hidden)
        yield hidden
        last = member.num_states - 1
        call = self.layer_call(member, valid, mask)
        for index, layer in enumerate(encoder.layers[:deepest], start=1):
            hidden = call(index, layer, hidden)
            yield encoder.layer_norm(hidden) if stable and index == last else hidden


class WavLMRunner(Wav2Vec2Runner):
    """WavLM: the first layer computes a relative position bias that every later layer takes."""

    def layer_call(self, member: "HFMember", mask2d: Optional[torch.Tensor],
                   mask: Any) -> Callable[[int, Any, torch.Tensor], torch.Tensor]:
        stable = bool(getattr(member.config, "do_stable_layer_norm", False))
        bias: Dict[str, Any] = {"value": None}

        def call(index: int, layer: Any, hidden: torch.Tensor) -> torch.Tensor:
            extra = {} if stable else {"index": index - 1}
            hidden, bias["value"] = layer(hidden, attention_mask=mask2d, position_bias=bias["value"], **extra)
            return hidden

        return call


class ConformerRunner(Runner):
    """wav2vec2-conformer: no positional convolution; relative / rotary embeddings for every layer; final LayerNorm."""

    def check(self, config: Any, extractor: Any) -> None:
        _no_adapter(config)

    def supports_padding(self, config: Any) -> bool:
        return False  # its depthwise convolution module does not mask padded frames

    def states(self, member: "HFMember", wav: torch.Tensor, deepest: int, lengths: Optional[torch.Tensor]) -> States:
        model = member.model
        hidden, _ = model.feature_projection(member._conv_features(feats.resample(wav, member.grid.sample_rate))
                                             .transpose(1, 2))
        encoder = model.encoder
        yield hidden
        positions = encoder.embed_positions(hidden) if encoder.embed_positions is not None else None
        last = member.num_states - 1
        for index, layer in enumerate(encoder.layers[:deepest], start=1):
            hidden = layer(hidden, attention_mask=None, relative_position_embeddings=positions)
            yield encoder.layer_norm(hidden) if index == last else hidden


class SqueezedRunner(Runner):
    """SEW and SEW-D: the transformer runs at ``squeeze_factor`` times the front end's hop.

    States 0 .. L-1 (pooled) are repeated ``squeeze_factor`` times to the front
    end's frames; the last is the model's own upsampling. Frames past
    ``squeeze_factor * (frames // squeeze_factor)`` are zero, as in the model's
    last state. A padded batch pools each clip's mask to ``frames //
    squeeze_factor`` frames (transformers' max-pooling keeps one more for odd
    counts, which makes its padded batch differ from the clip alone).
    """

    def __init__(self, deberta: bool) -> None:
        self.deberta = deberta

    def supports_padding(self, config: Any) -> bool:
        return getattr(config, "feat_extract_norm", "group") == "layer"

    def states(self, member: "HFMember", wav: torch.Tensor, deepest: int, lengths: Optional[torch.Tensor]) -> States:
        model, config = member.model, member.config
        counts = _counts(member, wav, lengths)
        hidden = model.layer_norm(member._conv_features(feats.resample(wav, member.grid.sample_rate)).transpose(1, 2))
        if model.project_features:
            hidden = model.feature_projection(hidden)
        batch, frames, _ = hidden.shape
        if lengths is not None:
            hidden = hidden.masked_fill(~feats.valid_mask(counts, frames, hidden.device)[..., None], 0.0)
        squeeze = int(config.squeeze_factor)
        encoder = model.encoder
        transposed = hidden.transpose(1, 2)
        positions = encoder.pos_conv_embed(transposed)
        pooled = encoder.pool(transposed)
        width = min(positions.shape[-1], pooled.shape[-1])
        hidden = (pooled[..., :width] + positions[..., :width]).transpose(1, 2)
        pooled_counts = [c // squeeze for c in counts]
        valid = feats.valid_mask(pooled_counts, width, hidden.device)
        keep = feats.valid_mask([c * squeeze for c in pooled_counts], frames, hidden.device)[..., None]

        def spread(state: torch.Tensor) -> torch.Tensor:
            state = state.repeat_interleave(squeeze, dim=1)[:, :frames]
            return F.pad(state, (0, 0, 0, frames - state.shape[1])) * keep

        def upsampled(state: torch.Tensor) -> torch.Tensor:
            state = encoder.upsample(state)[:, :frames]
            return F.pad(state, (0, 0, 0, frames - state.shape[1])) * keep

        last = member.num_states - 1
        if not self.deberta:
            mask = attention_mask(config, hidden, valid) if lengths is not None else None
            hidden = encoder.layer_norm(hidden)
            yield spread(hidden)
            for index, layer in enumerate(encoder.layers[:deepest], start=1):
                hidden = layer(hidden, attention_mask=mask)
                yield upsampled(hidden) if index == last else spread(hidden)
            return
        stack = encoder.encoder  # SEWDTransformerEncoder (DeBERTa-v2 disentangled attention)
        input_mask = valid.long()
        mask = stack.get_attention_mask(input_mask)
        relative = stack.get_rel_pos(hidden)
        embeddings = stack.get_rel_embedding()
        yield spread(hidden)
        first, current = hidden, hidden
        for index, layer in enumerate(stack.layer[:deepest], start=1):
            recorded = layer(current, mask, query_states=None, relative_pos=relative, rel_embeddings=embeddings)
            current = recorded
            if index == 1 and stack.conv is not None:  # transformers records the layer's output before this conv
                current = stack.conv(first, recorded, input_mask)
            yield upsampled(current) if index == last else spread(recorded)


# -------------------------------------------------------------- spectrogram
class W2VBertRunner(Runner):
    """w2v-BERT 2.0: stacked Kaldi fbank (:func:`~hear_gura.members.hf_features.seamless_fbank`), conformer layers."""

    def check(self, config: Any, extractor: Any) -> None:
        _no_adapter(config)

    def states(self, member: "HFMember", wav: torch.Tensor, deepest: int, lengths: Optional[torch.Tensor]) -> States:
        sizes = [int(n) for n in lengths] if lengths is not None else [wav.shape[-1]] * wav.shape[0]
        features, counts = feats.seamless_fbank(feats.resample(wav, member.grid.sample_rate),
                                                [feats.native_length(n, member.grid.sample_rate) for n in sizes],
                                                member.extractor)
        return self.encode(member, features, counts, deepest, masked=lengths is not None)

    def encode(self, member: "HFMember", features: torch.Tensor, counts: Sequence[int], deepest: int,
               masked: bool) -> States:
        """States from input features ``(batch, frames, stride * mels)``; ``masked``: clips of ``counts`` frames."""
        model = member.model
        hidden, _ = model.feature_projection(features)
        encoder = model.encoder
        mask = conv_mask = None
        if masked:
            valid = feats.valid_mask(counts, hidden.shape[1], hidden.device)
            hidden = hidden.masked_fill(~valid[..., None], 0.0)
            mask, conv_mask = attention_mask(model.config, hidden, valid), valid.long()
        yield hidden
        positions = encoder.embed_positions(hidden) if encoder.embed_positions is not None else None
        last = member.num_states - 1
        for index, layer in enumerate(encoder.layers[:deepest], start=1):
            hidden = layer(hidden, attention_mask=mask, relative_position_embeddings=positions,
                           conv_attention_mask=conv_mask)
            if index == last and model.intermediate_ffn is not None:
                yield hidden + 0.5 * model.intermediate_ffn(hidden)
            else:
                yield hidden


class WhisperRunner(Runner):
    """Whisper's encoder on the clip's own frames.

    The log-mel spectrogram is computed on the clip followed by zeros (as the
    extractor's padding to 30 s gives), far enough that the two convolutions
    of every kept frame see exactly what they see in the 30 s input; then only
    the clip's frames (``grid.count``) enter the transformer, with the first
    ``count`` rows of the positional embedding. The padded-to-30 s reference
    also attends to the frames of the padding: that is the one difference
    (measured in the tests); a 30 s clip is identical.
    """

    def states(self, member: "HFMember", wav: torch.Tensor, deepest: int, lengths: Optional[torch.Tensor]) -> States:
        encoder, extractor = member.model, member.extractor
        counts = _counts(member, wav, lengths)
        wav = feats.resample(wav, member.grid.sample_rate)
        count = max(counts)
        needed = min(int(extractor.n_samples), 2 * int(extractor.hop_length) * (count + 2))
        wav = F.pad(wav, (0, max(0, needed - wav.shape[-1])))[:, :needed]
        mel = feats.whisper_log_mel(wav, extractor)
        hidden = F.gelu(encoder.conv1(mel))
        hidden = F.gelu(encoder.conv2(hidden)).permute(0, 2, 1)[:, :count]
        hidden = hidden + encoder.embed_positions.weight[:count]
        mask = None
        if lengths is not None and min(counts) < count:
            mask = attention_mask(encoder.config, hidden, feats.valid_mask(counts, count, hidden.device))
        yield hidden
        last = member.num_states - 1
        for index, layer in enumerate(encoder.layers[:deepest], start=1):
            hidden = layer(hidden, mask)
            yield encoder.layer_norm(hidden) if index == last else hidden


class ASTRunner(Runner):
    """Audio Spectrogram Transformer: fixed-length fbank; frames = patch columns, averaged over frequency patches."""

    def check(self, config: Any, extractor: Any) -> None:
        if int(getattr(extractor, "max_length", config.max_length)) != int(config.max_length):
            raise CheckpointError(
                f"its preprocessor pads to {extractor.max_length} fbank frames but the model's position embeddings "
                f"take {config.max_length} (config max_length); the preprocessor config does not match the model"
            )

    def states(self, member: "HFMember", wav: torch.Tensor, deepest: int, lengths: Optional[torch.Tensor]) -> States:
        model, config = member.model, member.config
        sizes = [int(n) for n in lengths] if lengths is not None else [wav.shape[-1]] * wav.shape[0]
        count = max(member.grid.count(n) for n in sizes)
        rate = member.grid.sample_rate
        features = feats.kaldi_fbank(feats.resample(wav, rate), [feats.native_length(n, rate) for n in sizes],
                                     member.extractor, int(config.max_length))
        hidden = model.embeddings(features)
        bands, columns = model.embeddings.get_shape(config)

        def frames(state: torch.Tensor) -> torch.Tensor:
            return state[:, 2:].reshape(state.shape[0], bands, columns, -1).mean(dim=1)[:, :count]

        yield frames(hidden)
        last = member.num_states - 1
        for index, layer in enumerate(model.layers[:deepest], start=1):
            hidden = layer(hidden, None)
            yield frames(model.layernorm(hidden)) if index == last else frames(hidden)


class ClapRunner(Runner):
    """CLAP's audio tower (HTS-AT): fixed 10 s log-mel inputs at 48 kHz, one state per Swin stage.

    Each clip is resampled to 48 kHz and cut into pieces of ``positions``
    frames (``positions * hop`` samples, the piece start rounded to the nearest
    48 kHz sample); each piece is filled to 10 s as the extractor pads
    (``repeatpad``: the piece repeated, then zeros) and runs alone. The
    extractor's fusion of random crops for clips over 10 s is never used
    (``is_longer`` is false for every piece), so the output is deterministic.
    """

    def states(self, member: "HFMember", wav: torch.Tensor, deepest: int, lengths: Optional[torch.Tensor]) -> States:
        extractor, grid = member.extractor, member.grid
        encoder = member.model.audio_encoder
        rate, fill = int(extractor.sampling_rate), int(extractor.nb_max_samples)
        positions = member.layout["positions"]
        sizes = [int(n) for n in lengths] if lengths is not None else [wav.shape[-1]] * wav.shape[0]
        native = feats.resample(wav, rate)
        rows, places = [], []
        for clip, size in enumerate(sizes):
            end = feats.native_length(size, rate)
            for piece in range(-(-grid.count(size) // positions)):
                start = int(round(piece * positions * grid.hop * rate / 16000))
                rows.append(feats.clap_fill(native[clip, start : min(end, start + fill)], fill, extractor.padding))
                places.append((clip, piece))
        filters = extractor.mel_filters if extractor.truncation == "fusion" else extractor.mel_filters_slaney
        mel = feats.clap_log_mel(torch.stack(rows), extractor, filters)[:, None]
        total = max(grid.count(n) for n in sizes)
        for state in self._stages(member, encoder, mel, deepest):
            out = state.new_zeros((len(sizes), -(-total // positions) * positions, member.width))
            for row, (clip, piece) in enumerate(places):
                out[clip, piece * positions : (piece + 1) * positions] = state[row]
            yield out[:, :total]

    def _stages(self, member: "HFMember", encoder: Any, mel: torch.Tensor, deepest: int) -> States:
        hidden = encoder.batch_norm(mel.transpose(1, 3)).transpose(1, 3)
        longer = torch.zeros(0, dtype=torch.long, device=mel.device) if encoder.enable_fusion else None
        hidden = encoder.patch_embed(encoder.reshape_mel2img(hidden), longer)
        yield self._frames(member, hidden, encoder.input_resolutions[0])
        last = member.num_states - 1
        for index, stage in enumerate(encoder.layers[:deepest], start=1):
            hidden, _, dims = stage(hidden, encoder.input_resolutions[index - 1], False, False)
            state = encoder.norm(hidden) if index == last else hidden
            yield self._frames(member, state, (dims[-2], dims[-1]))

    @staticmethod
    def _frames(member: "HFMember", tokens: torch.Tensor, dims: Sequence[int]) -> torch.Tensor:
        """``(rows, H * W, C)`` tokens -> ``(rows, positions, width)``: mean over frequency, pooled over time."""
        ratio, positions = member.layout["ratio"], member.layout["positions"]
        rows, (height, width), channels = tokens.shape[0], dims, tokens.shape[-1]
        grid = tokens.reshape(rows, ratio, height // ratio, width, channels).mean(dim=2)
        series = grid.reshape(rows, ratio * width, channels)
        series = series.reshape(rows, positions, ratio * width // positions, channels).mean(dim=2)
        return F.pad(series, (0, member.width - channels))


class RemoteRunner(Runner):
    """A checkpoint with its own code (``trust_remote_code``): one forward pass, the GURA rule on its outputs."""

    def supports_padding(self, config: Any) -> bool:
        return False

    def states(self, member: "HFMember", wav: torch.Tensor, deepest: int, lengths: Optional[torch.Tensor]) -> States:
        output = member.model(feats.resample(wav, member.grid.sample_rate), output_hidden_states=True)
        states = list(output.hidden_states[:-1]) + [output.last_hidden_state]
        yield from states[: deepest + 1]


#: Family.runner -> runner.
RUNNERS: Dict[str, Runner] = {
    "wav2vec2": Wav2Vec2Runner(),
    "wavlm": WavLMRunner(),
    "conformer": ConformerRunner(),
    "sew": SqueezedRunner(deberta=False),
    "sew-d": SqueezedRunner(deberta=True),
    "w2v-bert": W2VBertRunner(),
    "whisper": WhisperRunner(),
    "ast": ASTRunner(),
    "clap": ClapRunner(),
    "remote": RemoteRunner(),
}
