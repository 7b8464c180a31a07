"""Batched and padded inference equals running each clip alone."""

from __future__ import annotations

import pytest
import torch

from conftest import make_audio
from hear_gura.errors import ConfigError
from hear_gura.layers import parse_layer_choice
from hear_gura.manifest import Manifest
from hear_gura.members.base import MemberSpec, build_member

# Clip lengths (samples): unequal, including the 400-sample minimum and a repeat.
LENGTHS = [16000, 7001, 400, 23456, 7001]


def clips():
    return [make_audio(0, samples=n, seed=i)[0] for i, n in enumerate(LENGTHS)]


@pytest.mark.parametrize(
    "ensemble,options",
    [("fusion_cat", {}), ("fusion_cat_time", {"normalize_waveform": True}), ("fbank", {}), ("crepe", {})],
)
def test_padded_batch_equals_each_clip_alone(load, ensemble, options):
    model = load(ensemble, **options)
    batched = model.embed_clips(clips())
    for clip, (embedding, timestamps, scene) in zip(clips(), batched):
        alone, alone_ts = model.timestamp_embeddings(clip[None])
        assert embedding.shape == alone[0].shape and torch.equal(timestamps, alone_ts[0])
        assert (embedding - alone[0]).abs().max().item() < 1e-5
        assert (scene - model.scene_embeddings(clip[None])[0]).abs().max().item() < 1e-5


def test_equal_length_batch_equals_each_clip_alone(load):
    model = load("fusion_cat")
    audio = make_audio(1.2, batch=3, seed=9)
    batched, _ = model.timestamp_embeddings(audio)
    for i in range(3):
        alone, _ = model.timestamp_embeddings(audio[i : i + 1])
        assert (batched[i] - alone[0]).abs().max().item() < 1e-5


def test_crepe_frames_of_a_batch_go_through_one_network_call(load):
    model = load("crepe")
    calls = []
    hook = model.members["crepe"].net.register_forward_hook(lambda *_: calls.append(1))
    model.timestamp_embeddings(make_audio(1.0, batch=4))
    hook.remove()
    assert len(calls) == 1  # 4 clips x 21 frames in one batch (< batch_frames = 128)


def test_crepe_batch_frames_bounds_memory_without_changing_the_result():
    audio = make_audio(0.5, batch=2, seed=3)  # 2 x 11 frames at an 800-sample hop
    outputs = []
    for batch_frames in (128, 5):
        member = build_member(MemberSpec("c", "crepe", {"batch_frames": batch_frames}), Manifest(), False)
        with torch.no_grad():
            outputs.append(member(audio, parse_layer_choice("last", 1), hop=800))
    assert torch.equal(outputs[0], outputs[1])  # measured: bit-identical for any batch size
    for bad in (0, -1, 2.5, True, "64"):
        with pytest.raises(ConfigError, match="batch_frames"):
            build_member(MemberSpec("c", "crepe", {"batch_frames": bad}), Manifest(), False)
