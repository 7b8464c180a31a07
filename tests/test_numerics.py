"""Layer choice, feature resampling, time alignment, fusion, pooling and timestamps."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from hear_gura.align import align_time, resample_features
from hear_gura.errors import ConfigError
from hear_gura.fusion import fuse, fuse_stream, fused_width
from hear_gura.layers import parse_layer_choice
from hear_gura.pooling import parse_pooling, pool
from hear_gura.timestamps import FrameGrid, padded_frame_count, ssl_frame_count


def states(n: int = 5, shape=(2, 3, 4)) -> list:
    g = torch.Generator().manual_seed(0)
    return [torch.randn(shape, generator=g) for _ in range(n)]


# ------------------------------------------------------------------ layers
def test_layer_last_mean_index_slice():
    s = states()
    assert torch.equal(parse_layer_choice("last", 5).combine(iter(s)), s[4])
    assert torch.equal(parse_layer_choice(1, 5).combine(iter(s)), s[1])
    assert torch.equal(parse_layer_choice(-2, 5).combine(iter(s)), s[3])
    total = s[0].clone()
    for x in s[1:]:
        total += x
    assert torch.equal(parse_layer_choice("mean", 5).combine(iter(s)), total / 5)
    assert torch.allclose(parse_layer_choice("1:3", 5).combine(iter(s)), (s[1] + s[2]) / 2)
    assert torch.allclose(parse_layer_choice(":2", 5).combine(iter(s)), (s[0] + s[1]) / 2)


def test_layer_weights_are_a_normalised_weighted_sum():
    s = states()
    w = [0.0, 1.0, 3.0, 0.0, 0.0]
    out = parse_layer_choice({"weights": w}, 5).combine(iter(s))
    assert torch.allclose(out, (s[1] + 3 * s[2]) / 4, atol=1e-6)


def test_layer_choice_stops_at_the_deepest_needed_state():
    consumed = []

    def gen():
        for i, x in enumerate(states()):
            consumed.append(i)
            yield x

    parse_layer_choice(2, 5).combine(gen())
    assert consumed == [0, 1, 2]
    assert parse_layer_choice("0:2", 5).deepest == 1


@pytest.mark.parametrize("bad", [5, -6, "first", "3:1", "a:b", {"weights": [1, 2]}, {"weights": [-1, 1, 1, 1, 1]}, True, 1.5])
def test_layer_choice_errors(bad):
    with pytest.raises(ConfigError, match="layer"):
        parse_layer_choice(bad, 5)


# --------------------------------------------------------------- alignment
def test_feature_resampling_2048_to_1024_averages_adjacent_positions():
    x = torch.randn(2, 7, 2048)
    expected = (x[..., 0::2] + x[..., 1::2]) / 2
    assert torch.allclose(resample_features(x, 1024), expected, atol=1e-6)
    assert resample_features(x, 2048) is x


def test_feature_resampling_is_torch_linear_interpolation():
    x = torch.randn(1, 3, 1280)
    assert torch.equal(resample_features(x, 1024), F.interpolate(x, size=1024, mode="linear", align_corners=False))


def test_frame_ratio_time_alignment_is_linear_interpolation_by_count():
    x = torch.randn(1, 21, 8)
    source, target = FrameGrid(21, 0, 800), FrameGrid(49, 200, 320)
    out = align_time(x, source, target, "frame_ratio")
    expected = F.interpolate(x.transpose(1, 2), size=49, mode="linear", align_corners=False).transpose(1, 2)
    assert torch.equal(out, expected)


def test_centre_time_alignment_samples_at_true_frame_centres():
    # A feature that is linear in time is reproduced exactly at the target centres.
    source, target = FrameGrid(21, 0, 800), FrameGrid(49, 200, 320)
    x = source.centres_samples().float()[None, :, None]
    out = align_time(x, source, target, "centre")
    assert torch.allclose(out[0, :, 0], target.centres_samples().float().clamp(max=16000), atol=1e-3)


# ------------------------------------------------------------------ fusion
def test_fusion_rules():
    a, b, c = (torch.full((1, 2, 3), float(v)) + torch.arange(3.0) * 10 for v in (1, 2, 3))
    assert torch.equal(fuse([a, b, c], "avg"), (a + b + c) / 3)
    inter = fuse([a, b, c], "cat_interleave")
    assert inter.shape == (1, 2, 9)
    assert inter[0, 0].tolist() == [1, 2, 3, 11, 12, 13, 21, 22, 23]  # out[3i + m] = member m, feature i
    block = fuse([a, b[..., :2]], "cat_block")
    assert block[0, 0].tolist() == [1, 11, 21, 2, 12]
    assert fused_width([1024, 1024, 1024], "cat_interleave") == 3072
    assert fused_width([1024, 1024], "cat_block") == 2048
    assert fused_width([1280], "avg") == 1280


@pytest.mark.parametrize("method", ["avg", "cat_interleave", "cat_block"])
def test_streamed_fusion_equals_fusion_bit_for_bit(method):
    generator = torch.Generator().manual_seed(0)
    outputs = [torch.randn(2, 7, 5, generator=generator) for _ in range(3)]
    assert torch.equal(fuse_stream(iter(outputs), 3, method), fuse(outputs, method))
    assert torch.equal(fuse_stream(iter(outputs[:1]), 1, method), outputs[0])
    if method == "cat_block":  # any widths
        assert fuse_stream(iter([outputs[0], outputs[1][..., :4]]), 2, method).shape == (2, 7, 9)
    else:
        with pytest.raises(ConfigError):
            fuse_stream(iter([outputs[0], outputs[1][..., :4]]), 2, method)
    if method == "cat_interleave":
        with pytest.raises(ConfigError, match="expected 3"):
            fuse_stream(iter(outputs[:2]), 3, method)


def test_fusion_rejects_mismatched_widths_with_a_fix():
    with pytest.raises(ConfigError, match="feature_align"):
        fuse([torch.zeros(1, 2, 3), torch.zeros(1, 2, 4)], "avg")
    with pytest.raises(ConfigError, match="valid"):
        fuse([torch.zeros(1, 2, 3)], "sum")


# ----------------------------------------------------------------- pooling
def test_k_group_pooling_truncates_and_concatenates():
    x = torch.arange(12.0).reshape(1, 12, 1)  # 12 frames, k = 5: groups of 2, last 2 dropped
    assert pool(x, 5)[0].tolist() == [0.5, 2.5, 4.5, 6.5, 8.5]
    assert pool(x, 1)[0].tolist() == [5.5]


@pytest.mark.parametrize("frames", [1, 2, 4])
def test_k_group_pooling_below_k_frames_repeats_frames(frames):
    x = torch.arange(float(frames)).reshape(1, frames, 1)
    out = pool(x, 5)
    assert out.shape == (1, 5)
    assert out[0].tolist() == [float(g * frames // 5) for g in range(5)]


def test_pooling_parse():
    assert parse_pooling("mean") == 1 and parse_pooling("groups:5") == 5
    for bad in ("max", "groups:0", "groups:x", 3):
        with pytest.raises(ConfigError, match="valid"):
            parse_pooling(bad)


# -------------------------------------------------------------- timestamps
def test_ssl_frame_count_equals_gura_formula_with_integer_ms():
    for n in list(range(400, 20000, 7)) + [16080]:
        assert ssl_frame_count(n) == (n * 1000 // 16000 - 5) // 20
    # The reference's float formula is off by one at N = 16080 (1004.99.. ms):
    assert int(16080 / 16000 * 1000) == 1004 and 16080 * 1000 // 16000 == 1005
    assert ssl_frame_count(16080) == 50 == (16080 - 400) // 320 + 1


def test_timestamps_do_not_drift_over_an_hour():
    n = 3600 * 16000
    grid = FrameGrid(ssl_frame_count(n), 200, 320)
    ms = grid.centres_ms()
    assert grid.count == 179_999
    assert ms[0].item() == 12.5 and ms[-1].item() == 12.5 + 20 * (grid.count - 1)
    diffs = torch.diff(ms.double())
    assert diffs.min().item() == diffs.max().item() == 20.0


def test_padded_frame_count():
    assert padded_frame_count(16000, 800) == 21 and padded_frame_count(1, 800) == 1
