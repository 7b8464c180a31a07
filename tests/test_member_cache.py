"""The feature cache inside the member pass: a later study or embed over the same members runs no member."""

from __future__ import annotations

import subprocess
from collections import Counter
from pathlib import Path

import soundfile as sf
import torch

from conftest import hear_gura_in_process, make_audio
from hear_gura.feature_cache import FeatureCache
from hear_gura.manifest import Manifest
from hear_gura.shared import StudyPass


def test_a_second_study_over_the_same_members_is_served_from_the_cache(tmp_path, manifest, load):
    audio = make_audio(1.1, batch=2, seed=5)
    first = StudyPass.of_variants([("cat_wav2vec2_crepe", {})], Manifest.load(str(manifest)),
                                  FeatureCache(tmp_path / "cache"))
    first.timestamp_embeddings(audio)
    assert sum(first.counts.values()) == 2 and first.cache.stats.misses > 0

    cache = FeatureCache(tmp_path / "cache")  # as a later run would open it
    later = [("cat_wav2vec2_crepe", {"fusion": "avg", "feature_width": 32}), ("cat_wav2vec2_crepe", {})]
    second = StudyPass.of_variants(later, Manifest.load(str(manifest)), cache)
    outputs = second.timestamp_embeddings(audio)
    assert sum(second.counts.values()) == 0  # no member ran
    assert cache.stats.misses == 0 and cache.stats.hits == 4  # 2 clips x (wav2vec2, crepe)
    for (ensemble, options), (embedding, _) in zip(later, outputs):
        expected, _ = load(ensemble, **options).timestamp_embeddings(audio)
        assert torch.equal(embedding, expected)

    # another member computation (normalised input) is not served by the cache
    third = StudyPass.of_variants([("cat_wav2vec2_crepe", {"normalize_waveform": True})],
                                  Manifest.load(str(manifest)), cache)
    third.timestamp_embeddings(audio)
    assert third.counts and cache.stats.misses > 0


def test_a_corrupt_entry_is_recomputed_never_trusted(tmp_path, manifest, load):
    audio = make_audio(0.8, batch=1, seed=9)
    cache = FeatureCache(tmp_path / "cache")
    StudyPass.of_variants([("fusion_hubert", {})], Manifest.load(str(manifest)), cache).timestamp_embeddings(audio)
    [entry] = [p for p in (tmp_path / "cache").rglob("*.feat")]
    data = bytearray(entry.read_bytes())
    data[-1] ^= 0x01
    entry.write_bytes(bytes(data))
    again = StudyPass.of_variants([("fusion_hubert", {})], Manifest.load(str(manifest)), FeatureCache(tmp_path / "cache"))
    (embedding, _), = again.timestamp_embeddings(audio)
    assert sum(again.counts.values()) == 1 and again.cache.stats.corrupt == 1
    expected, _ = load("fusion_hubert").timestamp_embeddings(audio)
    assert torch.equal(embedding, expected)


def test_embed_with_a_feature_cache_writes_the_bytes_of_a_run_without(tmp_path, manifest, capsys):
    files = []
    for i, seconds in enumerate((0.9, 1.6, 1.2)):
        path = tmp_path / f"c{i}.wav"
        sf.write(path, make_audio(seconds, seed=i)[0].numpy(), 16000, subtype="PCM_16")
        files.append(str(path))

    def embed(out: str, *extra: str) -> subprocess.CompletedProcess:  # three runs, as three commands would be
        return hear_gura_in_process(capsys, "embed", "fusion_cat", *files, "--out", str(tmp_path / out), "--model",
                                    str(manifest), "--batch-size", "2", *extra)

    cache = str(tmp_path / "cache")
    for out, extra in (("warm", ()), ("cached", ("--options", '{"fusion": "avg"}')),
                       ("plain", ("--options", '{"fusion": "avg"}'))):
        result = embed(out, *extra, *(("--feature-cache", cache) if out != "plain" else ()))
        assert result.returncode == 0, result.stderr[-2000:]
        if out == "cached":
            assert " 0 misses" in result.stderr and "100.0 % hit rate" in result.stderr, result.stderr[-1000:]
    names = sorted(p.name for p in (tmp_path / "plain").glob("*.npy"))
    assert len(names) == 9
    for name in names:
        assert (tmp_path / "cached" / name).read_bytes() == (tmp_path / "plain" / name).read_bytes(), name
    counted = Counter(p.parent.parent.name for p in Path(cache).rglob("*.feat"))
    assert len(counted) == 3  # hubert, wav2vec2, crepe at 50 ms (its 250 ms frames are every 5th of those)


def test_crepe_embedding_and_crepe_blocks_share_their_common_state_in_the_cache(tmp_path, manifest, load):
    """``states: "embedding"`` is ``blocks``' conv5, bit for bit (StateAlias): what ``hear-gura layers`` stored
    for the blocks serves ``evaluate``'s embedding and the other way round; other states are not mixed up."""
    audio = make_audio(1.1, batch=2, seed=4)
    crepe = {"name": "crepe", "type": "crepe", "model": "tiny"}
    embedding = {"members": [crepe]}
    blocks = {"members": [{**crepe, "states": "blocks"}], "layers": "last"}

    def study(options: dict, folder: str) -> tuple:
        run = StudyPass.of_variants([("crepe", options)], Manifest.load(str(manifest)), FeatureCache(tmp_path / folder))
        (embeddings, _), = run.timestamp_embeddings(audio)
        return embeddings, sum(run.counts.values()), run.cache.stats

    for first, then in ((blocks, embedding), (embedding, blocks)):
        folder = f"cache-{len(first)}"
        assert study(first, folder)[1] == 1
        served, ran, stats = study(then, folder)
        assert ran == 0 and stats.hits == 2 and stats.misses == 0
        assert torch.equal(served, load("crepe", **then).timestamp_embeddings(audio)[0])
    [(key, described)] = FeatureCache(tmp_path / "cache-1").info()["members"].items()  # the embedding went first
    assert described["description"]["params"]["states"] == "blocks" and described["description"]["hop"] == 800
    assert described["description"]["layers"] == "5:u:0.0,0.0,0.0,0.0,1.0"  # conv5 of the blocks
    conv4 = study({**blocks, "layers": 3}, "cache-2")
    assert conv4[1] == 1 and conv4[2].hits == 0  # another state of the blocks: computed, not the embedding's entry
    assert not torch.equal(conv4[0], served)
