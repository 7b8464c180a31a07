"""The member-kind registry: kinds declare params and describe themselves without weights; plug-ins via entry points."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest
import torch

from conftest import make_audio
from hear_gura.ensemble import EnsembleConfig
from hear_gura.errors import ConfigError
from hear_gura.identity import describe_member, locate_checkpoint
from hear_gura.manifest import Manifest
from hear_gura.members.base import MemberSpec, build_member
from hear_gura.members.registry import ENTRY_POINT_GROUP, known_kinds, member_class
from hear_gura.model import EnsembleModel

README = Path(__file__).resolve().parents[1] / "README.md"


def test_unknown_kind_lists_the_known_ones_and_the_entry_point_group():
    with pytest.raises(ConfigError, match=r"unknown member type 'wavlm_large'.*crepe.*hf.*hear_gura\.members"):
        MemberSpec.from_dict({"name": "x", "type": "wavlm_large"})


def test_bad_params_fail_when_the_file_is_read_with_what_the_kind_takes():
    with pytest.raises(ConfigError, match=r"unknown parameter\(s\) \['hop'\].*'model': 'full' \| 'tiny'"):
        MemberSpec.from_dict({"name": "c", "type": "crepe", "hop": 160})
    with pytest.raises(ConfigError, match=r"'batch_frames' must be a int, got 'many'"):
        MemberSpec.from_dict({"name": "c", "type": "crepe", "batch_frames": "many"})
    with pytest.raises(ConfigError, match=r"'batch_frames' must be a int, got True"):
        MemberSpec.from_dict({"name": "c", "type": "crepe", "batch_frames": True})
    with pytest.raises(ConfigError, match=r"hf member 'h' needs 'checkpoint'"):
        MemberSpec.from_dict({"name": "h", "type": "hf"})
    with pytest.raises(ConfigError, match=r"'model' must be one of \['full', 'tiny'\]"):
        EnsembleConfig.from_dict("e", {"members": [{"name": "c", "type": "crepe", "model": "huge"}]})


def test_defaults_are_filled_from_the_declaration():
    assert MemberSpec.from_dict({"name": "c", "type": "crepe"}).to_dict() == {
        "name": "c", "type": "crepe", "model": "full", "states": "embedding", "batch_frames": 128}
    assert MemberSpec.from_dict({"name": "f", "type": "s3prl", "upstream": "fbank"}).resolved_params() == {
        "upstream": "fbank", "checkpoint": None}


@pytest.mark.parametrize("data", [
    {"name": "c", "type": "crepe", "model": "tiny"},
    {"name": "f", "type": "s3prl", "upstream": "fbank_no_cmvn"},
    {"name": "h", "type": "hf", "checkpoint": "facebook/hubert-xlarge-ll60k"},
    {"name": "s", "type": "s3prl", "upstream": "hf_hubert_custom", "checkpoint": "facebook/hubert-large-ll60k"},
])
def test_description_without_weights_equals_the_built_member(data, manifest):
    spec = MemberSpec.from_dict(data)
    checkpoints = Manifest.load(str(manifest))
    described = describe_member(spec, checkpoints)
    built = build_member(spec, checkpoints, False)
    assert described.to_dict() | {"weights": ""} == built.description().to_dict() | {"weights": ""}
    assert described.random_weights is (spec.type != "crepe" and not spec.kind.weight_free(spec.resolved_params()))


def test_weight_free_s3prl_shapes_are_s3prl_s():
    from s3prl.nn import S3PRLUpstream

    from hear_gura.members.s3prl_upstream import WEIGHT_FREE_SHAPES, WEIGHT_FREE_UPSTREAMS

    assert sorted(WEIGHT_FREE_SHAPES) == sorted(WEIGHT_FREE_UPSTREAMS)
    for upstream, (width, hop) in WEIGHT_FREE_SHAPES.items():
        built = S3PRLUpstream(upstream)
        assert (built.hidden_sizes, built.downsample_rates, built.num_layers) == ([width], [hop], 1), upstream


def test_s3prl_members_on_fixture_checkpoints_are_labelled_random(manifest):
    spec = MemberSpec.from_dict({"name": "s", "type": "s3prl", "upstream": "hf_hubert_custom",
                                 "checkpoint": "facebook/hubert-large-ll60k"})
    assert build_member(spec, Manifest.load(str(manifest)), False).random_weights is True


def test_one_locator_for_every_kind(manifest):
    checkpoints = Manifest.load(str(manifest))
    crepe = locate_checkpoint(MemberSpec.from_dict({"name": "c", "type": "crepe", "model": "tiny"}), checkpoints)
    assert crepe.via == "package" and crepe.path.name == "tiny.pth" and crepe.path.is_file()
    fbank = locate_checkpoint(MemberSpec.from_dict({"name": "f", "type": "s3prl", "upstream": "fbank"}), checkpoints)
    assert fbank.via == "weight-free" and fbank.path is None
    hf = locate_checkpoint(MemberSpec.from_dict({"name": "h", "type": "hf",
                                                 "checkpoint": "facebook/wav2vec2-large-960h-lv60-self"}), checkpoints)
    assert hf.via == "manifest" and (hf.path / "config.json").is_file() and hf.random_weights


def test_fusion_width_mismatch_is_caught_before_any_model_loads(manifest, monkeypatch):
    """avg of members of three widths without feature alignment: refused by the up-front check."""
    import hear_gura.members.base as base
    import hear_gura.model as model
    from hear_gura.harness.grid import build_variants

    def no_loading(*args, **kwargs):
        raise AssertionError("a model was loaded")

    monkeypatch.setattr(base, "build_member", no_loading)
    monkeypatch.setattr(model, "build_member", no_loading)
    with pytest.raises(ConfigError, match=r"fusion 'avg' needs members of one width, got \[48, 2048\]"):
        build_variants(["avg_hubert_crepe"], {"feature_align": ["none"]}, str(manifest))


def _readme_example() -> str:
    text = README.read_text(encoding="utf-8")
    found = re.search(r"<!-- example-kind BEGIN -->\s*```python\n(.*?)```\s*<!-- example-kind END -->", text, re.S)
    assert found, "README.md lacks the example member kind between <!-- example-kind BEGIN/END -->"
    return found.group(1)


def _install_example(folder: Path) -> None:
    """Install the README's example as a distribution would: a module and a dist-info with the entry point."""
    (folder / "hear_gura_logmel.py").write_text(_readme_example(), encoding="utf-8")
    info = folder / "hear_gura_logmel-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: hear-gura-logmel\nVersion: 0.1\n", encoding="utf-8")
    (info / "entry_points.txt").write_text(f"[{ENTRY_POINT_GROUP}]\nlogmel = hear_gura_logmel:LogMel\n",
                                           encoding="utf-8")


def test_the_readme_example_kind_plugs_in_through_its_entry_point(tmp_path, monkeypatch):
    import torchaudio

    assert len(_readme_example().strip().splitlines()) <= 32
    assert "logmel" not in known_kinds()
    _install_example(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    assert "logmel" in known_kinds()
    config = EnsembleConfig.from_dict("mine", {"members": [
        {"name": "mel", "type": "logmel", "n_mels": 24},
        {"name": "crepe", "type": "crepe", "model": "tiny"}],
        "fusion": "cat_block", "grid": "mel", "time_align": "frame_ratio", "feature_align": "none"})
    assert member_class("logmel").__module__ == "hear_gura_logmel"
    spec = config.members[0]
    assert describe_member(spec, Manifest()).width == 24
    model = EnsembleModel(config, Manifest())
    audio = make_audio(1.0)
    embeddings, timestamps = model.timestamp_embeddings(audio)
    mel = torchaudio.transforms.MelSpectrogram(16000, n_fft=400, hop_length=160, n_mels=24, center=False)
    expected = torch.log(mel(audio) + 1e-6).transpose(1, 2)
    assert embeddings.shape == (1, 98, 24 + 256)
    torch.testing.assert_close(embeddings[..., :24], expected, rtol=0, atol=1e-6)
    torch.testing.assert_close(timestamps[0, :2], torch.tensor([12.5, 22.5]))
    sys.modules.pop("hear_gura_logmel", None)
