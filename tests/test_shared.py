"""One member pass: a study's variants (any ensembles) and embed's two outputs share member computations."""

from __future__ import annotations

import warnings

import torch

from conftest import make_audio
from hear_gura.manifest import Manifest
from hear_gura.shared import StudyPass

VARIANTS = [
    {"fusion": "avg", "layers": "last"},
    {"fusion": "avg", "layers": "mean"},
    {"fusion": "cat_interleave", "layers": "last"},
    {"fusion": "cat_interleave", "layers": {"hubert": 2, "wav2vec2": "mean"}, "scene_pooling": "groups:5",
     "time_align": "centre", "crepe_scene_hop_ms": 100},
]


def count_forwards(networks):
    """``{id(network): calls}``, counted by hooks on each member's first module, and the hooks."""
    calls = {}

    def first_module(member):
        if hasattr(member, "model"):
            return member.model.feature_extractor
        if hasattr(member, "net"):
            return member.net
        return member.upstream

    hooks = []
    for member in networks:
        calls[id(member)] = 0
        hooks.append(first_module(member).register_forward_pre_hook(
            lambda mod, args, key=id(member): calls.__setitem__(key, calls[key] + 1)))
    return calls, hooks


def assert_equal_to_own_models(study, variants, load, audio):
    timestamp = study.timestamp_embeddings(audio)
    scene = study.scene_embeddings(audio)
    for (ensemble, options), (embedding, timestamps), pooled in zip(variants, timestamp, scene):
        own = load(ensemble, **options)
        expected, expected_ts = own.timestamp_embeddings(audio)
        assert torch.equal(timestamps, expected_ts)
        assert torch.equal(embedding, expected), (ensemble, options, (embedding - expected).abs().max())
        assert torch.equal(pooled, own.scene_embeddings(audio)), (ensemble, options)


def test_grid_variants_equal_their_own_models_and_run_each_member_once(load, manifest):
    variants = [("fusion_cat", v) for v in VARIANTS]
    study = StudyPass.of_variants(variants, Manifest.load(str(manifest)))
    assert len(study.networks) == 3  # hubert, wav2vec2, crepe: built once for 4 variants
    audio = make_audio(1.5, batch=2, seed=31)
    calls, hooks = count_forwards(study.networks.values())
    study.timestamp_embeddings(audio)
    assert sorted(calls.values()) == [1, 1, 1]  # one pass for 4 variants
    study.scene_embeddings(audio)
    assert sorted(calls.values()) == [2, 2, 3]  # scene: two distinct CREPE hops
    for hook in hooks:
        hook.remove()
    assert_equal_to_own_models(study, variants, load, audio)
    assert study.sizes()[0] == {"timestamp": 32, "scene": 32} and study.sizes()[3]["scene"] == 5 * 96


def test_a_study_across_ensembles_runs_each_distinct_member_once(load, manifest):
    """cat (H-xl + W + C), avg_hubert_wav2vec2 (H-l + W), fusion_hubert (H-xl), crepe (C): four members, not eight."""
    variants = [("cat", {}), ("avg_hubert_wav2vec2", {}), ("fusion_hubert", {}), ("crepe", {}),
                ("cat", {"fusion": "avg", "feature_width": 32})]
    study = StudyPass.of_variants(variants, Manifest.load(str(manifest)))
    assert len(study.networks) == 4
    audio = make_audio(1.2, batch=2, seed=7)
    calls, hooks = count_forwards(study.networks.values())
    study.timestamp_embeddings(audio)
    assert sorted(calls.values()) == [1, 1, 1, 1]
    assert sum(study.counts.values()) == 4
    for hook in hooks:
        hook.remove()
    assert_equal_to_own_models(study, variants, load, audio)


def test_variants_that_change_a_member_get_their_own_computation_of_it(load, manifest):
    variants = [("fusion_hubert", {}), ("fusion_hubert", {"normalize_waveform": True}),
                ("fusion_hubert", {"layers": "last"})]
    study = StudyPass.of_variants(variants, Manifest.load(str(manifest)))
    assert len(study.networks) == 2  # normalised input is another computation; a layer choice is not
    assert_equal_to_own_models(study, variants, load, make_audio(1.0, batch=1, seed=3))


def test_embed_clips_gives_both_outputs_from_one_member_pass_bit_identical_to_two(load):
    from collections import Counter

    model = load("cat_wav2vec2_crepe")
    clips = [make_audio(seconds, seed=i)[0] for i, seconds in enumerate((1.3, 0.7, 2.1))]
    calls, hooks = count_forwards([model.members["wav2vec2"]])
    counted = Counter()
    together = model.embed_clips(clips, counts=counted)
    for hook in hooks:
        hook.remove()
    assert list(calls.values()) == [1]  # the SSL member's network ran once for both outputs
    assert counted == {"wav2vec2": 1, "crepe": 1}  # CREPE once: its 250 ms frames are every 5th 50 ms frame
    from hear_gura.model import pad_clips, pool

    audio, lengths = pad_clips(clips, model.min_samples, None)
    with torch.no_grad():
        timestamp_frames = model.frames(audio, scene=False, lengths=lengths)
        scene_frames = model.frames(audio, scene=True, lengths=lengths)
    for (embedding, timestamps, scene), (frames, grid), (scene_frame, _) in zip(together, timestamp_frames,
                                                                               scene_frames):
        assert torch.equal(embedding, frames) and torch.equal(timestamps, grid.centres_ms())
        assert torch.equal(scene, pool(scene_frame[None], model.head.scene_groups)[0])


def test_bfloat16_autocast_warns_on_cpu_and_returns_float32(load):
    audio = make_audio(1.0, seed=32)
    reference, _ = load("hubert").timestamp_embeddings(audio)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        low, _ = load("hubert", dtype="bfloat16").timestamp_embeddings(audio)
    assert any("meant for GPUs" in str(w.message) for w in caught)
    assert low.dtype == torch.float32
    cosine = torch.nn.functional.cosine_similarity(low, reference, dim=-1)
    assert cosine.min().item() > 0.99
