"""The pesto member equals pesto-pitch's own inference (``pesto.predict``, its model's modules) on the same audio."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from conftest import make_audio
from hear_gura.errors import CheckpointError, ConfigError
from hear_gura.identity import locate_checkpoint
from hear_gura.layers import parse_layer_choice
from hear_gura.manifest import Manifest
from hear_gura.members.base import MemberSpec, build_member

pesto = pytest.importorskip("pesto")
from pesto.utils import reduce_activations  # noqa: E402

ENSEMBLE = Path(__file__).resolve().parents[1] / "ensembles" / "pesto.json"
#: Output bin of the first of the encoder's 219 CQT bins: MIDI 21 (A0) x 3 bins, less the centring bin, plus the crop.
OFFSET = 3 * 21 - 1 + 16


@pytest.fixture(scope="module")
def member():
    return build_member(MemberSpec("pesto", "pesto", {}), Manifest(), False)


@pytest.fixture(scope="module")
def library():
    """pesto-pitch's model at its default 10 ms hop, for 16 kHz input."""
    return pesto.load_model("mir-1k_g7", 10.0, sampling_rate=16000)


def padded_batch(clips):
    lengths = [len(c) for c in clips]
    wav = torch.zeros(len(clips), max(lengths))
    for i, clip in enumerate(clips):
        wav[i, : len(clip)] = clip
    return wav, torch.tensor(lengths)


def test_activations_and_timestamps_equal_pesto_predict_on_a_padded_batch(member, library):
    clips = [make_audio(0.2, seed=1)[0], make_audio(0.13, seed=2)[0]]
    wav, lengths = padded_batch(clips)
    with torch.no_grad():
        states = list(member.states(wav, 9, lengths=lengths))
        # pesto.predict on clip 0; on clip 1, the same model's forward (predict without reloading it)
        timesteps, pitch, _, activations = pesto.predict(clips[0], 16000, convert_to_freq=False)
        expected = [(timesteps, pitch, activations)]
        pitch, _, _, activations = library(clips[1], sr=16000, return_activations=True)
        expected.append((torch.arange(len(pitch)) * library.hop_size, pitch, activations))
    assert len(states) == member.num_states == 10
    assert all(s.shape == (2, 21, 384) for s in states)
    for i, (clip, (timesteps, pitch, activations)) in enumerate(zip(clips, expected)):
        grid = member.frame_grid(len(clip))
        assert grid.count == len(timesteps) == 1 + len(clip) // 160
        assert torch.equal(grid.centres_ms(), timesteps.float())  # 0, 10, 20 ... ms
        # Measured: 0.0 (the same kernels and modules, one clip at a time like pesto.predict on a
        # 1-D clip; a zero-padded batch pads each clip at its own end). pesto's own output moves
        # by up to 4e-5 between a clip alone and in a batch: its softmax is nearly one-hot, so
        # float noise in the CQT's quietest bins shows.
        assert (states[9][i, : grid.count] - activations).abs().max().item() < 1e-5
        assert (reduce_activations(states[9][i, : grid.count]) - pitch).abs().max().item() < 1e-4
        for state in states:
            assert not state[i, grid.count:].any()


def test_every_state_equals_the_library_modules_own_activations(member, library):
    """States 0-7: the channel mean of the library's tensors, on the output's pitch axis; 8: rolled logits."""
    encoder, captured = library.encoder, {}

    def keep(key, pre=False):
        if pre:
            return lambda module, args: captured.__setitem__(key, args[0].clone())
        return lambda module, args, output: captured.__setitem__(key, output.clone())

    hooks = [
        encoder.register_forward_pre_hook(keep(0, pre=True)),
        encoder.conv1.register_forward_hook(keep(1)),
        encoder.prefilt_layers[1].register_forward_pre_hook(keep(2, pre=True)),  # after prefilt 0 + residual
        encoder.conv_layers.register_forward_pre_hook(keep(3, pre=True)),  # after prefilt 1 + residual
        *[encoder.conv_layers[i].register_forward_hook(keep(4 + k)) for k, i in enumerate((2, 5, 8, 11))],
        encoder.fc.register_forward_hook(keep(8)),
    ]
    wav = make_audio(0.15, seed=3)
    try:
        with torch.no_grad():
            _, _, _, activations = library(wav[0], sr=16000, return_activations=True)
            got = list(member.states(wav, 9))
    finally:
        for hook in hooks:
            hook.remove()
    roll = -round(library.shift.item() * 3)
    assert roll == -20 and captured[0].shape == (16, 1, 219) and captured[7].shape == (16, 3, 219)
    expected = [F.pad(captured[k].mean(dim=1), (OFFSET, 384 - OFFSET - 219)) for k in range(8)]
    expected += [captured[8].roll(roll, -1), activations]
    for k in range(10):
        # Measured: 0.0 for every state.
        scale = max(1.0, expected[k].abs().max().item())
        assert (got[k][0] - expected[k]).abs().max().item() < 1e-5 * scale, k
    with torch.no_grad():
        for deepest in (0, 1):  # stopping early gives the same first states
            assert all(torch.equal(a, b) for a, b in zip(member.states(wav, deepest), got[: deepest + 1]))


def test_clips_shorter_than_the_library_takes(member, library):
    """The library refuses clips of <= 2,048 samples; the member pads them as numpy's reflect does: its
    frames are the library's on the numpy-padded clip (2,080 = 13 hops on the left, 2,048 on the right)."""
    with pytest.raises(RuntimeError, match="Padding size should be less than"):
        library(torch.zeros(2048), sr=16000)
    for samples in (1, 700, 2100):
        wav = make_audio(0, samples=samples, seed=samples)
        with torch.no_grad():
            got = list(member.states(wav, 9))[9][0]
            reflected = torch.from_numpy(np.pad(wav[0].numpy(), (2080, 2048), mode="reflect"))
            expected = library(reflected, sr=16000, return_activations=True)[3][13: 13 + got.shape[0]]
        assert got.shape == (1 + samples // 160, 384) == (member.frame_grid(samples).count, 384)
        assert torch.isfinite(got).all()
        if samples > 1:  # one sample is a constant: every CQT bin is float noise
            # Measured: 8.5e-6 at 700 samples, 0.0 at 2,100 (1.2e-7 at 300, 9e-9 at 1,500): the
            # library convolves a longer input here, and float noise in the quietest CQT bins moves
            # its near one-hot softmax (pesto's own output moves by up to 4e-5 between a clip alone
            # and in a batch), hence the looser bound.
            assert (got - expected).abs().max().item() < 5e-5


def test_hop_ms_is_the_library_step_size():
    member = build_member(MemberSpec("pesto", "pesto", {"hop_ms": 20}), Manifest(), False)
    library = pesto.load_model("mir-1k_g7", 20.0, sampling_rate=16000)
    wav = make_audio(0.3, seed=4)
    with torch.no_grad():
        got = list(member.states(wav, 9))[9][0]
        expected = library(wav[0], sr=16000, return_activations=True)[3]
    assert member.default_hop == 320 and member.frame_grid(4800).centres_ms()[:3].tolist() == [0.0, 20.0, 40.0]
    assert got.shape == expected.shape == (member.frame_grid(4800).count, 384) == (16, 384)
    assert (got - expected).abs().max().item() < 1e-5  # measured: 0.0
    with pytest.raises(ConfigError, match="fixed hop of 320"):
        member(wav, parse_layer_choice("last", 10), hop=160)


def test_description_weights_and_params(member, library):
    spec = MemberSpec.from_dict({"name": "pesto", "type": "pesto"})
    assert spec.resolved_params() == {"model": "mir-1k_g7", "hop_ms": 10.0}
    location = locate_checkpoint(spec, Manifest())
    weights = Path(pesto.__file__).parent / "weights" / "mir-1k_g7.ckpt"
    assert location.via == "package"
    assert location.path == type(member).packaged_weights(spec.resolved_params()) == weights
    description = type(member).describe("pesto", spec.resolved_params(), location)
    assert description.to_dict() == {**member.description().to_dict(), "weights": description.weights}
    assert (description.width, description.num_states, description.default_hop, description.sample_rate) == (
        384, 10, 160, 16000)
    assert not description.hop_is_configurable and member.supports_padding and not member.global_context
    assert type(member).describe("p", {"model": "mir-1k_g7", "hop_ms": 5}, location).default_hop == 80
    with pytest.raises(ConfigError, match="hop_ms must be a positive multiple of 1/16 ms"):
        type(member).describe("p", {"model": "mir-1k_g7", "hop_ms": 10.03}, location)
    with pytest.raises(ConfigError, match=r"'model' must be one of \['mir-1k_g7'\]"):
        MemberSpec.from_dict({"name": "p", "type": "pesto", "model": "mir-1k"})
    ours = dict(member.encoder.named_parameters())
    theirs = dict(library.encoder.named_parameters())
    assert ours.keys() == theirs.keys() and all(torch.equal(ours[k], theirs[k]) for k in ours)
    kernels = library.preprocessor.hcqt_kernels.cqt_kernels[0]
    assert torch.equal(member.cqt_weight, kernels.conv.weight) and torch.equal(member.cqt_scale, kernels.sqrt_lengths)


class _Exploit:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_checkpoints_load_without_running_code(tmp_path, monkeypatch):
    from hear_gura.members.pesto import load_checkpoint

    monkeypatch.setenv("TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD", "1")
    marker = tmp_path / "pwned"
    torch.save({"state_dict": {}, "hparams": _Exploit(marker), "hcqt_params": {}}, tmp_path / "evil.ckpt")
    with pytest.raises(CheckpointError, match="could not be loaded safely.*pip install pesto-pitch==2.0.1"):
        load_checkpoint(tmp_path / "evil.ckpt")
    assert not marker.exists()
    with pytest.raises(CheckpointError, match="are missing; reinstall pesto-pitch"):
        load_checkpoint(tmp_path / "absent.ckpt")


def test_ensemble_file_gives_the_pitch_activations(member):
    from hear_gura.api import get_scene_embeddings, get_timestamp_embeddings, load_ensemble_model

    data = json.loads(ENSEMBLE.read_text())
    assert "LGPL-3.0" in data["description"] and data["members"] == [{"name": "pesto", "type": "pesto"}]
    model = load_ensemble_model("pesto")
    wav = make_audio(0.3, seed=5)
    embeddings, timestamps = get_timestamp_embeddings(wav, model)
    assert embeddings.shape == (1, 31, 384) and model.timestamp_embedding_size == 384
    assert timestamps[0, :3].tolist() == [0.0, 10.0, 20.0]
    with torch.no_grad():
        expected = list(member.states(wav, 9))[9]
    assert (embeddings - expected).abs().max().item() < 1e-6
    scene = get_scene_embeddings(wav, model)  # the mean of the same 10 ms frames: the hop is the member's own
    assert scene.shape == (1, 384) and (scene - expected.mean(dim=1)).abs().max().item() < 1e-6
