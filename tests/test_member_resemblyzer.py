"""The resemblyzer member equals Resemblyzer's own mel features and VoiceEncoder on the same audio."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

from conftest import make_audio
from hear_gura.errors import ConfigError
from hear_gura.identity import locate_checkpoint
from hear_gura.layers import parse_layer_choice
from hear_gura.manifest import Manifest
from hear_gura.members.base import MemberSpec, build_member

resemblyzer = pytest.importorskip("resemblyzer")
from resemblyzer import audio as library_audio  # noqa: E402
from resemblyzer import hparams  # noqa: E402

ENSEMBLE = Path(__file__).resolve().parents[1] / "ensembles" / "resemblyzer.json"


@pytest.fixture(scope="module")
def member():
    return build_member(MemberSpec("speaker", "resemblyzer", {}), Manifest(), False)


@pytest.fixture(scope="module")
def encoder():
    return resemblyzer.VoiceEncoder(device="cpu", verbose=False).eval()


def library_mel(wav: torch.Tensor) -> torch.Tensor:
    """``resemblyzer.audio.wav_to_mel_spectrogram`` of one clip, ``(1, frames, 40)``."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # librosa warns that n_fft=400 exceeds clips under 400 samples
        return torch.from_numpy(library_audio.wav_to_mel_spectrogram(wav.numpy()))[None]


def test_mel_features_equal_the_library_function(member):
    import librosa

    from hear_gura.members.resemblyzer import mel_filterbank

    assert np.array_equal(mel_filterbank(), librosa.filters.mel(sr=16000, n_fft=400, n_mels=40))
    assert (hparams.sampling_rate, hparams.mel_window_length, hparams.mel_window_step, hparams.mel_n_channels) == (
        16000, 25, 10, 40)
    for samples in (1, 159, 160, 401, 16123):
        wav = make_audio(0, samples=samples, seed=samples)
        got = member.features(wav)
        expected = library_mel(wav[0])
        assert got.shape == expected.shape == (1, 1 + samples // 160, 40)
        assert got.dtype == torch.float32
        # Measured: at most 3.6e-7 relative per value (float64 STFT as librosa, float32 sums).
        torch.testing.assert_close(got, expected, rtol=1e-6, atol=1e-12)


def test_states_equal_voice_encoder_on_the_same_mel_frames(member, encoder):
    mel = library_mel(make_audio(2.0, seed=3)[0])
    with torch.no_grad():
        got = list(member.encode(mel))
        frames, (hidden, _) = encoder.lstm(mel)
        assert len(got) == member.num_states == 4
        assert all(state.shape == (1, 201, 256) for state in got)
        # Measured: 0.0 (the same CPU LSTM kernels, layer by layer).
        assert (got[2] - frames).abs().max().item() < 1e-5
        for t in (0, 7, 100, 200):  # every state at frame t is the library's output on frames 0..t
            _, (hidden, _) = encoder.lstm(mel[:, : t + 1])
            for layer in range(3):
                assert (got[layer][0, t] - hidden[layer, 0]).abs().max().item() < 1e-5
            # Measured: up to 1.3e-7.
            assert (got[3][0, t] - encoder(mel[:, : t + 1])[0]).abs().max().item() < 1e-5
    assert torch.allclose(got[3].norm(dim=-1), torch.ones(1, 201)) and got[3].min() >= 0


def test_states_from_audio_equal_the_library_pipeline(member, encoder):
    wav = make_audio(1.0, batch=2, seed=4)
    with torch.no_grad():
        got = list(member.states(wav, 3))
        for i in range(2):
            mel = library_mel(wav[i])
            frames, (hidden, _) = encoder.lstm(mel)
            assert got[2].shape[1] == mel.shape[1] == member.frame_grid(16000).count == 101
            # Measured: at most 1e-6 (the features differ by ~4e-7 relative).
            assert (got[2][i] - frames[0]).abs().max().item() < 1e-5
            assert (got[3][i, -1] - encoder(mel)[0]).abs().max().item() < 1e-5


def test_frame_grid_follows_librosa_centred_frames(member):
    import librosa

    for samples in (1, 159, 160, 161, 16000, 16159):
        grid = member.frame_grid(samples)
        assert grid.count == library_mel(torch.zeros(samples)).shape[1]
        centres = librosa.frames_to_samples(np.arange(grid.count), hop_length=160)
        assert np.array_equal(grid.centres_samples().numpy(), centres)
    assert member.frame_grid(16000).centres_ms()[:3].tolist() == [0.0, 10.0, 20.0]
    with pytest.raises(ConfigError, match="fixed hop of 160"):
        member.frame_grid(16000, hop=320)


def test_padded_batch_equals_each_clip_alone(member):
    clips = [make_audio(seconds, seed=5 + i)[0] for i, seconds in enumerate((0.5, 1.13, 0.81))]
    lengths = [len(c) for c in clips]
    padded = torch.zeros(3, max(lengths))
    for i, clip in enumerate(clips):
        padded[i, : len(clip)] = clip
    selections = [parse_layer_choice(i, 4) for i in range(4)]
    with torch.no_grad():
        batch = member.compute(padded, selections, lengths=lengths)
        for i, clip in enumerate(clips):
            alone = member.compute(clip[None], selections)
            for k in range(4):
                count = batch[k].grids[i].count
                assert count == alone[k].values.shape[1] == 1 + lengths[i] // 160
                # Measured: at most ~1e-7 (batched vs single matrix products).
                assert (batch[k].clip(i) - alone[k].values[0]).abs().max().item() < 1e-5
                assert not batch[k].values[i, count:].any()


def test_long_clips_restart_the_lstm_per_window(member):
    wav = make_audio(2.5, seed=9)
    last = parse_layer_choice("last", 4)
    with torch.no_grad():
        whole = member(wav, last)
        member.set_windowing(16000, 4000)  # 1 s windows overlapping by 0.25 s
        try:
            windowed = member(wav, last)
        finally:
            member.set_windowing(None, 0)
    assert windowed.shape == whole.shape == (1, 251, 256)
    # The LSTM is causal: the first window's kept frames (0 .. 86) are exact;
    # later windows start from a fresh state, so they differ.
    assert torch.equal(windowed[:, :87], whole[:, :87])
    assert not torch.allclose(windowed[:, 87:], whole[:, 87:])


def test_weights_and_description(member, encoder):
    spec = MemberSpec("speaker", "resemblyzer", {})
    location = locate_checkpoint(spec, Manifest())
    weights = Path(resemblyzer.__file__).parent / "pretrained.pt"
    assert location.path == type(member).packaged_weights({}) == member.weights_path == weights
    description = type(member).describe("speaker", spec.resolved_params(), location)
    assert description.to_dict() == {**member.description().to_dict(), "weights": description.weights}
    assert str(weights) in description.weights
    assert (description.width, description.num_states, description.default_hop) == (256, 4, 160)
    assert not member.frames_are_local and member.global_context and member.supports_padding
    torch.load(weights, map_location="cpu", weights_only=True)  # a plain dict of tensors
    library = dict(encoder.named_parameters())
    for i in range(3):
        for name, value in member.layers[i].named_parameters():
            assert torch.equal(value, library[f"lstm.{name[:-1]}{i}"])
    assert torch.equal(member.linear.weight, library["linear.weight"])
    assert sum(p.numel() for p in member.parameters()) == sum(v.numel() for v in library.values()) == 1_423_616
    with pytest.raises(ConfigError, match="unknown parameter"):
        MemberSpec.from_dict({"name": "speaker", "type": "resemblyzer", "model": "full"})


def test_ensemble_file_gives_the_per_frame_embedding(member):
    from hear_gura.api import get_timestamp_embeddings, load_ensemble_model

    data = json.loads(ENSEMBLE.read_text())
    assert "Apache-2.0" in data["description"] and data["members"] == [{"name": "resemblyzer", "type": "resemblyzer"}]
    model = load_ensemble_model("resemblyzer")
    wav = make_audio(0.5, seed=11)
    embeddings, timestamps = get_timestamp_embeddings(wav, model)
    assert embeddings.shape == (1, 51, 256) and model.timestamp_embedding_size == 256
    assert timestamps[0, :3].tolist() == [0.0, 10.0, 20.0]
    with torch.no_grad():
        expected = list(member.states(wav, 3))[3]
    assert (embeddings - expected).abs().max().item() < 1e-6
