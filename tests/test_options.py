"""Options (heareval's --model-options) ablate members, layers, fusion, alignment and pooling."""

from __future__ import annotations

import importlib
from pathlib import Path

import pytest
import torch

from conftest import make_audio
from hear_gura.registry import available_ensembles, ensembles_dir, load_ensemble

AUDIO = make_audio(1.0, batch=2, seed=11)


def test_every_ensemble_file_has_a_module_that_only_binds_its_name():
    package = Path(importlib.import_module("hear_gura").__file__).parent
    for name in available_ensembles():
        module = importlib.import_module(f"hear_gura.{name}")
        assert module.load_model.__name__ == "load_model"
        source = (package / f"{name}.py").read_text()
        assert f'loader("{name}")' in source and "def " not in source
    assert {"avg", "cat", "fusion_cat", "fusion_avg", "fusion_cat_time", "avg_hubert_crepe", "avg_hubert_wav2vec2",
            "cat_hubert_wav2vec2", "cat_wav2vec2_crepe", "fusion_hubert", "fusion_wav2vec2", "hubert", "wav2vec2",
            "crepe", "fbank"} <= set(available_ensembles())
    assert ensembles_dir().name == "ensembles"


def test_fusion_option_changes_widths_and_values(load):
    cat = load("fusion_cat")
    avg = load("fusion_cat", fusion="avg")
    assert (cat.timestamp_embedding_size, avg.timestamp_embedding_size) == (96, 32)
    e_cat, _ = cat.timestamp_embeddings(AUDIO)
    e_avg, _ = avg.timestamp_embeddings(AUDIO)
    # avg of the three members == mean of each interleaved triple
    assert torch.allclose(e_avg, e_cat.reshape(2, -1, 32, 3).mean(dim=-1), atol=1e-6)


def test_layers_option_matches_the_named_ensemble(load):
    """fusion_cat with layers=last is cat; cat with layers=mean is fusion_cat."""
    a, _ = load("fusion_cat", layers="last").timestamp_embeddings(AUDIO)
    b, _ = load("cat").timestamp_embeddings(AUDIO)
    assert torch.equal(a, b)
    c, _ = load("cat", layers="mean").timestamp_embeddings(AUDIO)
    d, _ = load("fusion_cat").timestamp_embeddings(AUDIO)
    assert torch.equal(c, d)


def test_per_member_layers_and_weights(load):
    model = load("fusion_cat", layers={"hubert": 2, "wav2vec2": {"weights": [1, 1, 2]}})
    assert model.layer_selections["hubert"].indices == (2,)
    assert model.layer_selections["wav2vec2"].weights == (1.0, 1.0, 2.0)
    model.timestamp_embeddings(AUDIO)


def test_members_option_drops_and_reorders(load):
    model = load("fusion_cat", members=["wav2vec2", "hubert"])
    assert list(model.members) == ["wav2vec2", "hubert"] and model.timestamp_embedding_size == 64
    crepe_only = load("fusion_cat", members=["crepe"], grid="crepe")
    e, ts = crepe_only.timestamp_embeddings(AUDIO)
    assert e.shape == (2, 21, 2048) and ts[0, 1].item() == 50.0


def test_members_option_adds_an_s3prl_upstream(load):
    model = load(
        "fusion_wav2vec2",
        members=["wav2vec2", {"name": "mfcc", "type": "s3prl", "upstream": "mfcc"}],
        fusion="cat_block",
    )
    e, _ = model.timestamp_embeddings(AUDIO)
    assert e.shape == (2, 49, 32 + model.members["mfcc"].width)


def test_time_align_centre_differs_from_frame_ratio(load):
    a, _ = load("cat_wav2vec2_crepe").timestamp_embeddings(AUDIO)
    b, _ = load("cat_wav2vec2_crepe", time_align="centre").timestamp_embeddings(AUDIO)
    assert a.shape == b.shape and not torch.allclose(a, b)
    # wav2vec2 features (even positions of the interleave) are untouched by time alignment
    assert torch.equal(a[..., 0::2], b[..., 0::2])


def test_normalize_and_pooling_and_hop_options(load):
    base = load("fusion_cat")
    normed = load("fusion_cat", normalize_waveform=True)
    assert not torch.allclose(base.timestamp_embeddings(AUDIO)[0], normed.timestamp_embeddings(AUDIO)[0])
    grouped = load("fusion_cat", scene_pooling="groups:3")
    assert grouped.scene_embedding_size == 3 * 96 and grouped.scene_embeddings(AUDIO).shape == (2, 288)
    fine = load("crepe", crepe_scene_hop_ms=50)
    e, _ = load("crepe").timestamp_embeddings(AUDIO)
    assert torch.allclose(fine.scene_embeddings(AUDIO), e.mean(dim=1), atol=1e-6)


def test_feature_width_option(load):
    model = load("fusion_cat", feature_width=16)
    assert model.timestamp_embedding_size == 48
    assert model.timestamp_embeddings(AUDIO)[0].shape[-1] == 48


def test_gura_presets_do_not_normalise_and_use_gura_hops():
    for name in available_ensembles():
        config = load_ensemble(name)
        assert config.normalize_waveform is False
        assert (config.crepe_timestamp_hop_ms, config.crepe_scene_hop_ms) == (50, 250)
        if config.gura_name:
            assert config.time_align == "frame_ratio"


def test_model_is_a_module_holding_every_weight(load):
    model = load("fusion_cat")
    names = {n.split(".")[1] for n, _ in model.named_parameters()}
    assert names == {"hubert", "wav2vec2", "crepe"}
    assert not model.training and all(not p.requires_grad for p in model.parameters())
    assert isinstance(model.sample_rate, int) and model.sample_rate == 16000
    assert isinstance(model.timestamp_embedding_size, int) and isinstance(model.scene_embedding_size, int)


# ------------------------------------------------ option values that must be refused
@pytest.mark.parametrize("weights,match", [
    ([float("nan"), 1, 1, 1, 1], r"weight 0 is nan"),
    ([1, float("inf"), 1, 1, 1], r"weight 1 is inf"),
    ([1, 1, -1, 1, 1], r"weight 2 is -1\.0"),
    ([1e308, 1e308, 1e308, 1e308, 5e307], r"positive, finite sum"),
    ([0, 0, 0, 0, 0], r"positive, finite sum"),
])
def test_non_finite_or_negative_layer_weights_are_refused(weights, match):
    """NaN weights used to give an all-NaN embedding and exit 0."""
    from hear_gura.errors import ConfigError
    from hear_gura.layers import parse_layer_choice

    with pytest.raises(ConfigError, match=match):
        parse_layer_choice({"weights": weights}, 5)


def test_non_finite_option_values_are_refused_by_load_model(load):
    """heareval passes --model-options through json.loads, which reads NaN and Infinity."""
    from hear_gura.errors import ConfigError

    for options, name in [({"layers": {"weights": [float("nan")] + [1.0] * 4}}, r"layers\.weights\[0\] = nan"),
                          ({"max_window_seconds": float("inf")}, r"max_window_seconds = inf"),
                          ({"window_overlap_seconds": float("nan")}, r"window_overlap_seconds = nan")]:
        with pytest.raises(ConfigError, match=name + r".*not finite"):
            load("fusion_hubert", **options)


def test_large_raw_layer_weights_do_not_overflow_float32_states():
    from hear_gura.layers import parse_layer_choice

    states = [torch.full((2, 3), float(i + 1)) for i in range(5)]
    out = parse_layer_choice({"weights": [0, 1e300, 3e300, 0, 0]}, 5).combine(iter(states))
    assert torch.allclose(out, (states[1] + 3 * states[2]) / 4)


def test_layers_for_members_with_one_state_are_refused(load):
    """CREPE and fbank have one state: a layer choice for them other than "last" asks for layers they lack."""
    from hear_gura.errors import ConfigError

    with pytest.raises(ConfigError, match=r"member 'crepe' has one state.*got 'mean'.*remove 'crepe'"):
        load("fusion_cat", layers={"hubert": "mean", "crepe": "mean"})
    with pytest.raises(ConfigError, match=r"member 'crepe' has one state.*got 2"):
        load("fusion_cat", layers={"crepe": 2})
    with pytest.raises(ConfigError, match=r"layers 'mean' has nothing to choose from.*crepe"):
        load("crepe", layers="mean")
    with pytest.raises(ConfigError, match=r"layers '1:' has nothing to choose from.*fbank"):
        load("fbank", layers="1:")
    # still accepted: "last" (or 0 / -1) for them, a global choice beside multi-layer members,
    # and a subset of a declared ensemble inheriting its declared layers ("mean" in fusion_cat)
    load("fusion_cat", layers={"crepe": "last", "hubert": 1})
    load("crepe", layers=0)
    assert load("fusion_cat", layers="0:2").layer_selections["crepe"].indices == (0,)
    load("fusion_cat", members=["crepe"], grid="crepe")


def test_feature_width_is_bounded():
    """A typo in feature_width gave a 5.9 GB embedding for a 1 s clip."""
    from hear_gura.errors import ConfigError

    base = load_ensemble("fusion_cat")
    with pytest.raises(ConfigError, match=r"feature_width 10,000,000 is above the limit of 65,536"):
        base.with_options(feature_width=10_000_000)
    assert base.with_options(feature_width=65_536).feature_width == 65_536  # generous for real models


def test_training_mode_does_not_change_embeddings(load):
    """Dropout in training mode changed outputs by up to 7.1: embeddings always come from eval mode."""
    model = load("fusion_cat", fusion="cat_interleave")  # a fresh model: the cached one stays untouched
    expected, _ = model.timestamp_embeddings(AUDIO)
    scene = model.scene_embeddings(AUDIO)
    model.train()
    assert not model.training and not any(m.training for m in model.modules())
    assert torch.equal(model.timestamp_embeddings(AUDIO)[0], expected)
    model.members["hubert"].model.train()  # a submodule switched by hand is put back too
    assert torch.equal(model.scene_embeddings(AUDIO), scene)
    clip = model.embed_clips([AUDIO[0]])[0][0]
    assert torch.allclose(clip, expected[0], atol=1e-5)


def test_member_scale_multiplies_one_block_before_fusion(load):
    """cat_block with {"wav2vec2": 2.5}: that member's block is 2.5 x the unscaled one, the others untouched."""
    plain = load("fusion_cat", fusion="cat_block", feature_align="none")
    scaled = load("fusion_cat", fusion="cat_block", feature_align="none", member_scale={"wav2vec2": 2.5})
    a, ta = plain.timestamp_embeddings(AUDIO)
    b, tb = scaled.timestamp_embeddings(AUDIO)
    widths = [m.width for m in plain.members.values()]
    blocks_a, blocks_b = torch.split(a, widths, dim=-1), torch.split(b, widths, dim=-1)
    for name, x, y in zip(plain.members, blocks_a, blocks_b):
        expected = x * 2.5 if name == "wav2vec2" else x
        assert torch.allclose(y, expected, rtol=1e-6, atol=0) and (name == "wav2vec2") != torch.equal(x, y)
    assert torch.equal(ta, tb)
    sa, sb = plain.scene_embeddings(AUDIO), scaled.scene_embeddings(AUDIO)
    assert torch.allclose(torch.split(sb, widths, dim=-1)[1], 2.5 * torch.split(sa, widths, dim=-1)[1], rtol=1e-5)


def test_member_scale_of_one_is_the_default_and_the_same_identity():
    config = load_ensemble("fusion_cat")
    ones = config.with_options(member_scale={"hubert": 1.0, "wav2vec2": 1, "crepe": 1.0})
    assert config.to_dict() == ones.to_dict()
    assert config.to_dict()["member_scale"] == {"hubert": 1.0, "wav2vec2": 1.0, "crepe": 1.0}
    assert config.with_options(member_scale={"crepe": 0.5}).to_dict() != config.to_dict()


@pytest.mark.parametrize("value, match", [
    ({"nope": 2.0}, "unknown members"),
    ({"crepe": 0}, "positive finite"),
    ({"crepe": -1.0}, "positive finite"),
    ({"crepe": True}, "positive finite"),
    ({"crepe": "2"}, "positive finite"),
    ([2.0, 1.0], "must be an object"),
])
def test_bad_member_scale_is_refused_before_loading(value, match):
    from hear_gura.errors import ConfigError

    with pytest.raises(ConfigError, match=match):
        load_ensemble("fusion_cat").with_options(member_scale=value)


def test_measured_member_scales_balance_the_members(manifest):
    """After applying the factors it measures, every member's block has a spread of 1 on the same clips."""
    from hear_gura.manifest import Manifest
    from hear_gura.member_scale import measure_member_scales
    from hear_gura.model import EnsembleModel

    clips = [make_audio(0.5 + 0.1 * i, seed=20 + i)[0] for i in range(6)]  # different lengths: padded batches
    config = load_ensemble("fusion_cat")
    before = measure_member_scales(config, clips, Manifest.load(manifest), batch_size=4)
    assert list(before) == ["hubert", "wav2vec2", "crepe"]
    assert sum(m["share_of_variance"] for m in before.values()) == pytest.approx(1.0)
    factors = {name: m["factor"] for name, m in before.items()}
    assert len(set(factors.values())) == 3  # the members differ in scale, so the test can fail
    after_config = config.with_options(member_scale=factors)
    after = measure_member_scales(after_config, clips, Manifest.load(manifest), batch_size=4)
    # measure_member_scales sets member_scale aside, so measure the scaled blocks through the model itself
    model = EnsembleModel(after_config.with_options(fusion="cat_block", feature_align="none"), Manifest.load(manifest))
    scenes = torch.stack([s for _, _, s in model.embed_clips(clips)]).double()
    widths = [m["width"] for m in after.values()]
    for name, block in zip(after, torch.split(scenes, widths, dim=1)):
        assert float(block.std(dim=0).pow(2).mean().sqrt()) == pytest.approx(1.0, rel=1e-3), name
    assert after == before  # the measurement itself ignores member_scale


def test_too_few_clips_for_member_scales_is_an_error(manifest):
    from hear_gura.errors import ConfigError
    from hear_gura.manifest import Manifest
    from hear_gura.member_scale import measure_member_scales

    with pytest.raises(ConfigError, match="at least 2 clips"):
        measure_member_scales(load_ensemble("fusion_cat"), [make_audio(0.5)[0]], Manifest.load(manifest))
