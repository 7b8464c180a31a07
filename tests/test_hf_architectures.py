"""Every transformers audio architecture the hf member runs equals transformers' own forward pass.

For each ``model_type`` a tiny random checkpoint is written with
``save_pretrained`` (:func:`hear_gura.fixtures.write_tiny_checkpoint`); the
member's states are compared with ``output_hidden_states`` of the model that was
saved (not the member's own copy), on the same input: the feature extractor of
the checkpoint's ``preprocessor_config.json`` applied to the same audio.
Whisper, AST and CLAP keep their real front ends and shrink only the fixed
input length (1 s instead of 30 s / 10.24 s / 10 s) so the tests stay fast.
"""

from __future__ import annotations

import json
import math
from dataclasses import replace

import numpy as np
import pytest
import torch

from conftest import make_audio
from hear_gura.errors import CheckpointError
from hear_gura.fixtures import tiny_checkpoint, write_fixtures
from hear_gura.identity import describe_member
from hear_gura.layers import parse_layer_choice
from hear_gura.manifest import Manifest
from hear_gura.members.base import MemberSpec, build_member

WAVEFORM = ["wav2vec2", "hubert", "wavlm", "data2vec-audio", "unispeech", "unispeech-sat", "wav2vec2-conformer"]
SQUEEZED = ["sew", "sew-d"]
ALL = WAVEFORM + SQUEEZED + ["wav2vec2-bert", "whisper", "audio-spectrogram-transformer", "clap"]
#: Fixed input lengths shrunk to 1 s (the real front ends otherwise).
SMALL = {
    "whisper": dict(max_source_positions=50),
    "audio-spectrogram-transformer": dict(max_length=100),
    "clap": dict(audio_config=dict(spec_size=32, num_mel_bins=8, depths=[1, 1], num_attention_heads=[1, 2],
                                   window_size=4)),
}
EXTRACTOR = {"clap": dict(max_length_s=1)}
TOLERANCE = 1e-5


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """Tiny models gain nothing from a second thread; on a busy 2-core machine its spin-waits cost 10-100x."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


class Tiny:
    """A tiny checkpoint: the saved transformers model, its extractor, its folder and the member built from it."""

    def __init__(self, root, model_type):
        self.model_type = model_type
        self.model, self.extractor = tiny_checkpoint(model_type, 0, extractor=EXTRACTOR.get(model_type),
                                                     **SMALL.get(model_type, {}))
        self.folder = root / model_type
        self.model.save_pretrained(self.folder, safe_serialization=True)
        self.extractor.save_pretrained(self.folder)
        self.spec = MemberSpec("m", "hf", {"checkpoint": str(self.folder)})
        self.member = build_member(self.spec, Manifest(), False)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    root = tmp_path_factory.mktemp("hf_architectures")
    built = {}

    def get(model_type):
        if model_type not in built:
            built[model_type] = Tiny(root, model_type)
        return built[model_type]

    return get


def gura(out):
    """The GURA rule: ``hidden_states[:-1]`` then ``last_hidden_state``."""
    return list(out.hidden_states[:-1]) + [out.last_hidden_state]


def states(member, audio, lengths=None):
    with torch.no_grad():
        return list(member.states(audio, member.num_states - 1, lengths=lengths))


def max_diff(a, b):
    assert a.shape == b.shape, (a.shape, b.shape)
    return (a - b).abs().max().item()


# ------------------------------------------------------------------ references
def reference_waveform(t, audio):
    with torch.no_grad():
        return gura(t.model(audio, output_hidden_states=True))


def reference_w2v_bert(t, audio):
    inputs = t.extractor([a.numpy() for a in audio], sampling_rate=16000, return_tensors="pt")
    with torch.no_grad():
        out = t.model(**inputs, output_hidden_states=True)
    counts = inputs["attention_mask"].sum(-1)
    assert len(set(counts.tolist())) == 1
    return [s[:, : int(counts[0])] for s in gura(out)]


def reference_whisper(t, audio):
    inputs = t.extractor([a.numpy() for a in audio], sampling_rate=16000, return_tensors="pt")
    with torch.no_grad():
        return gura(t.model.model.encoder(inputs["input_features"], output_hidden_states=True))


def reference_ast(t, audio):
    inputs = t.extractor([a.numpy() for a in audio], sampling_rate=16000, return_tensors="pt")
    model = t.model.audio_spectrogram_transformer
    with torch.no_grad():
        out = model(inputs["input_values"], output_hidden_states=True)
    bands, columns = model.embeddings.get_shape(model.config)
    return [s[:, 2:].reshape(s.shape[0], bands, columns, -1).mean(dim=1) for s in gura(out)]


def clap_inputs(t, audio):
    import torchaudio.functional as AF

    native = AF.resample(audio, 16000, t.extractor.sampling_rate)
    inputs = t.extractor([a.numpy() for a in native], sampling_rate=t.extractor.sampling_rate, return_tensors="pt")
    return inputs["input_features"]


def reference_clap(t, audio, features=None):
    """The audio tower's reshaped hidden states and last_hidden_state: mean over frequency rows, pooled in time."""
    config = t.model.config.audio_config
    tower = t.model.audio_model
    features = clap_inputs(t, audio) if features is None else features
    with torch.no_grad():
        out = tower(features, is_longer=torch.zeros(len(audio), 1, dtype=torch.bool), output_hidden_states=True)
    ratio = config.spec_size // config.num_mel_bins
    width = config.patch_embeds_hidden_size * 2 ** (len(config.depths) - 1)
    last = out.last_hidden_state.mean(dim=2).transpose(1, 2)  # (batch, positions, channels)
    positions = last.shape[1]
    result = []
    for s in out.hidden_states[:-1]:  # (batch, C, H, W), rows = ratio chunks x frequency
        b, c, h, w = s.shape
        series = s.reshape(b, c, ratio, h // ratio, w).mean(dim=3).reshape(b, c, ratio * w)
        series = series.reshape(b, c, positions, ratio * w // positions).mean(dim=3).transpose(1, 2)
        result.append(torch.nn.functional.pad(series, (0, width - c)))
    return result + [last]


def reference(t, audio):
    if t.model_type in WAVEFORM + SQUEEZED:
        return reference_waveform(t, audio)
    return {"wav2vec2-bert": reference_w2v_bert, "whisper": reference_whisper,
            "audio-spectrogram-transformer": reference_ast, "clap": reference_clap}[t.model_type](t, audio)


def expected_grid(t, num_samples):
    """Frame count and centres (samples at 16 kHz) derived from the architecture's definition, independently."""
    mt = t.model_type
    if mt in WAVEFORM + SQUEEZED:
        count = int(t.model._get_feat_extract_output_lengths(torch.tensor(num_samples)))  # transformers' own count
        field = 400  # the conv front end: 25 ms
        return count, field / 2 + 320.0 * np.arange(count)
    if mt == "wav2vec2-bert":
        inputs = t.extractor(make_audio(0, samples=num_samples)[0].numpy(), sampling_rate=16000, return_tensors="pt")
        count = int(inputs["attention_mask"].sum())
        return count, (0 + 160 + 400) / 2 + 320.0 * np.arange(count)  # two 25 ms frames 10 ms apart per frame
    if mt == "whisper":
        mel = t.extractor(make_audio(0, samples=num_samples)[0].numpy(), sampling_rate=16000, padding="longest",
                          return_tensors="pt")["input_features"].shape[-1]
        count = -(-mel // 2)  # conv2 has stride 2; mel frame m is centred at sample 160 m
        return count, 320.0 * np.arange(count)
    if mt == "audio-spectrogram-transformer":
        fbank_frames = (num_samples - 400) // 160 + 1
        count = (fbank_frames - 16) // 10 + 1  # patches of 16 frames every 10, all of them inside the clip
        return count, (15 * 160 + 400) / 2 + 1600.0 * np.arange(count)
    # CLAP: 101 mel frames (hop 480 at 48 kHz) stretched to 128 columns (align_corners), 16 positions of 8 columns.
    frames, columns, positions = 101, 128, 16
    span = columns / positions
    centres = ((np.arange(positions) + 0.5) * span - 0.5) * (frames - 1) / (columns - 1) * 160.0
    count = int((centres < num_samples).sum())
    return count, centres[:count]


@pytest.mark.parametrize("model_type", ALL)
def test_states_equal_transformers_hidden_states(tiny, model_type):
    """Every state, layer by layer, equals output_hidden_states (GURA rule) on the same input, to 1e-5."""
    t = tiny(model_type)
    member = t.member
    samples = 16000 if model_type == "whisper" else 8000  # Whisper: a clip of its full input length
    audio = make_audio(0, samples=samples, batch=2, seed=3)
    expected = reference(t, audio)
    if model_type == "wav2vec2-bert":  # the extractor's own features (see test_w2v_bert_features_match_the_extractor)
        inputs = t.extractor([a.numpy() for a in audio], sampling_rate=16000, return_tensors="pt")
        count = int(inputs["attention_mask"].sum(-1)[0])
        with torch.no_grad():
            got = list(member.runner.encode(member, inputs["input_features"][:, :count], [count] * 2,
                                            member.num_states - 1, masked=False))
    else:
        got = states(member, audio)
    assert len(got) == len(expected) == member.num_states
    count = member.frame_grid(samples).count
    for index, (mine, theirs) in enumerate(zip(got, expected)):
        assert mine.shape == (2, count, member.width)
        if model_type in SQUEEZED and index < len(got) - 1:  # pooled states, repeated twice
            pooled = theirs.shape[1]
            assert max_diff(mine[:, 0 : 2 * pooled : 2], theirs) < TOLERANCE
            assert max_diff(mine[:, 1 : 2 * pooled : 2], theirs) < TOLERANCE
            assert not mine[:, 2 * pooled :].any()
            continue
        assert max_diff(mine, theirs[:, :count]) < TOLERANCE, f"{model_type} state {index}"
    assert not torch.equal(got[-2], got[-1])  # the last state is not the one before it


def test_w2v_bert_features_match_the_extractor():
    """Our torch fbank equals SeamlessM4TFeatureExtractor's; the extractor normalises in float32.

    Measured: the log-mel spectra are bit-identical; after the per-bin
    normalisation (float32 in the extractor, float64 here) max abs diff 8.7e-5
    on these clips, where a mel bin's standard deviation is 0.035 (the float32
    rounding of values near 10, divided by it).
    """
    import transformers

    from hear_gura.members.hf_features import seamless_fbank

    extractor = transformers.SeamlessM4TFeatureExtractor()
    audio = make_audio(0, samples=11200, batch=2, seed=3)
    lengths = [11200, 7001]
    ours, counts = seamless_fbank(audio, lengths, extractor)
    for index, length in enumerate(lengths):
        theirs = extractor(audio[index, :length].numpy(), sampling_rate=16000, return_tensors="pt")
        assert counts[index] == int(theirs["attention_mask"].sum())
        count = counts[index]
        assert max_diff(ours[index, :count], theirs["input_features"][0, :count]) < 2e-4
        assert not ours[index, count:].any()


def test_whisper_short_clip_runs_on_its_own_frames(tiny):
    """A clip shorter than the input length: its frames only; state 0 equals the padded reference exactly.

    The padded-to-30 s reference (here 1 s) also attends to the padding's
    frames; measured on the tiny random model: a 0.7 s clip differs by max abs
    7.8e-3 (state 1) and 2.1e-2 (last state), cosine >= 0.99997; a 0.25 s clip
    by 5.7e-2, cosine >= 0.9998 (a trained model attends less uniformly, so
    expect more).
    """
    t = tiny("whisper")
    audio = make_audio(0, samples=11200, seed=3)
    got, expected = states(t.member, audio), reference(t, audio)
    count = t.member.frame_grid(11200).count
    assert got[0].shape[1] == count == 35 < expected[0].shape[1] == 50
    assert max_diff(got[0], expected[0][:, :count]) < TOLERANCE
    for mine, theirs in zip(got[1:], expected[1:]):
        theirs = theirs[:, :count]
        assert 1e-4 < max_diff(mine, theirs) < 0.1
        assert torch.nn.functional.cosine_similarity(mine, theirs, dim=-1).min() > 0.999


@pytest.mark.parametrize("model_type", ALL)
def test_timestamps_are_exact(tiny, model_type):
    t = tiny(model_type)
    for samples in (8000, 5001):
        count, centres = expected_grid(t, samples)
        grid = t.member.frame_grid(samples)
        assert grid.count == count > 0
        assert np.abs(grid.centres_samples().numpy() - centres).max() < 1e-6


@pytest.mark.parametrize("model_type", ALL)
def test_padded_batch_equals_each_clip_alone(tiny, model_type):
    member = tiny(model_type).member
    assert member.supports_padding == (model_type != "wav2vec2-conformer")
    lengths = [8000, 5001, 3200]
    clips = [make_audio(0, samples=n, seed=i)[0] for i, n in enumerate(lengths)]
    batch = torch.stack([torch.nn.functional.pad(c, (0, lengths[0] - len(c))) for c in clips])
    selections = [parse_layer_choice(choice, member.num_states) for choice in ("last", 0, 1)]
    with torch.no_grad():
        together = member.compute(batch, selections, lengths=lengths)
        for i, clip in list(enumerate(clips))[1:]:  # the padded ones
            alone = member.compute(clip[None], selections)
            for a, b in zip(together, alone):
                assert a.grids[i] == b.grids[0]
                assert max_diff(a.clip(i), b.clip(0)) < TOLERANCE


@pytest.mark.parametrize("model_type", ALL)
def test_describe_matches_the_built_member(tiny, model_type):
    t = tiny(model_type)
    described = describe_member(t.spec, Manifest())
    assert replace(described, weights="") == t.member.description()
    assert described.random_weights and described.weights == str(t.folder.resolve())
    assert t.member.sample_rate == described.sample_rate == (48000 if model_type == "clap" else 16000)


@pytest.mark.parametrize("model_type", ["wavlm", "sew-d", "whisper", "clap"])
def test_layers_past_the_deepest_needed_never_run(tiny, model_type):
    member = tiny(model_type).member
    layers = {"clap": lambda m: m.audio_encoder.layers, "sew-d": lambda m: m.encoder.encoder.layer,
              "audio-spectrogram-transformer": lambda m: m.layers,
              "whisper": lambda m: m.layers}.get(model_type, lambda m: m.encoder.layers)(member.model)
    calls = []
    hooks = [layer.register_forward_hook(lambda *_: calls.append(1)) for layer in layers]
    audio = make_audio(0.7, seed=7)
    try:
        with torch.no_grad():
            full = list(member.states(audio, member.num_states - 1))
            calls.clear()
            partial = list(member.states(audio, 1))
    finally:
        for hook in hooks:
            hook.remove()
    assert len(calls) == 1 and len(partial) == 2
    assert torch.equal(partial[0], full[0]) and torch.equal(partial[1], full[1])


def test_clips_longer_than_a_fixed_input(tiny):
    """Whisper and AST go through the windowing (capped at their input length); CLAP cuts 1 s pieces itself."""
    audio = make_audio(0, samples=27000, seed=5)
    for model_type in ("whisper", "audio-spectrogram-transformer", "clap"):
        member = tiny(model_type).member
        member.set_windowing(180 * 16000, 10 * 16000)
        assert member.max_window == member.grid.max_samples or not member.global_context
        with torch.no_grad():
            out = member(audio, parse_layer_choice("last", member.num_states))
        assert out.shape[1] == member.frame_grid(27000).count and torch.isfinite(out).all()
    clap = tiny("clap").member
    head = clap.frame_grid(16000).count
    with torch.no_grad():
        first = clap(audio[:, :16000], parse_layer_choice("last", clap.num_states))
    # The first piece is the clip's first second; only its resampling near 1 s sees the audio after it.
    assert head == 16 and max_diff(out[:, :head], first) < 5e-3


def write_code_checkpoint(folder, marker):
    """A wav2vec2-style checkpoint whose config.json names its own code (``auto_map``); importing it touches MARKER."""
    model, extractor = tiny_checkpoint("wav2vec2", 0)
    model.save_pretrained(folder, safe_serialization=True)
    extractor.save_pretrained(folder)
    config = json.loads((folder / "config.json").read_text())
    config.update(model_type="my-w2v", auto_map={"AutoConfig": "configuration_mine.MyConfig",
                                                  "AutoModel": "modeling_mine.MyModel"})
    (folder / "config.json").write_text(json.dumps(config))
    (folder / "configuration_mine.py").write_text(
        f"import pathlib\npathlib.Path({str(marker)!r}).touch()\n"
        "from transformers import Wav2Vec2Config\n"
        "class MyConfig(Wav2Vec2Config):\n    model_type = 'my-w2v'\n")
    (folder / "modeling_mine.py").write_text(
        "from transformers import Wav2Vec2Model\nfrom .configuration_mine import MyConfig\n"
        "class MyModel(Wav2Vec2Model):\n    config_class = MyConfig\n")


def test_checkpoint_code_runs_only_when_the_ensemble_file_opts_in(tmp_path, monkeypatch):
    import transformers.dynamic_module_utils as dynamic

    monkeypatch.setattr(dynamic, "HF_MODULES_CACHE", str(tmp_path / "modules"))
    marker = tmp_path / "ran"
    folder = tmp_path / "custom"
    write_code_checkpoint(folder, marker)
    refused = MemberSpec("x", "hf", {"checkpoint": str(folder)})
    for attempt in (lambda: build_member(refused, Manifest(), False), lambda: describe_member(refused, Manifest())):
        with pytest.raises(CheckpointError, match=r"ships its own Python code.*\"trust_remote_code\": true"):
            attempt()
    assert not marker.exists()
    spec = MemberSpec("x", "hf", {"checkpoint": str(folder), "trust_remote_code": True})
    member = build_member(spec, Manifest(), False)
    assert marker.exists() and type(member.model).__name__ == "MyModel"
    assert replace(describe_member(spec, Manifest()), weights="") == member.description()
    assert not member.supports_padding
    audio = make_audio(0.5, batch=2, seed=2)
    with torch.no_grad():
        expected = gura(member.model(audio, output_hidden_states=True))
    for mine, theirs in zip(states(member, audio), expected):
        assert torch.equal(mine, theirs)
    assert member.frame_grid(audio.shape[1]).count == expected[-1].shape[1]


def test_fixtures_write_stand_ins_of_every_architecture(tmp_path):
    """`hear-gura fixtures` writes a stand-in for a known checkpoint of each kind, with its real frame grid."""
    ids = ["microsoft/wavlm-large", "facebook/w2v-bert-2.0", "openai/whisper-base",
           "MIT/ast-finetuned-audioset-10-10-0.4593", "laion/clap-htsat-unfused"]
    manifest = Manifest.load(write_fixtures(tmp_path, checkpoint_ids=ids))
    grids = {}
    for checkpoint in ids:
        spec = MemberSpec("m", "hf", {"checkpoint": checkpoint})
        described = describe_member(spec, manifest)
        member = build_member(spec, manifest, False)
        assert replace(described, weights="") == member.description() and described.random_weights
        grids[checkpoint] = member.grid
    assert grids["openai/whisper-base"].max_samples == 30 * 16000
    assert grids["MIT/ast-finetuned-audioset-10-10-0.4593"].max_samples == 1023 * 160 + 400
    clap = grids["laion/clap-htsat-unfused"]
    assert clap.max_samples == 10 * 16000 and math.isclose(clap.hop, 32 * 1000 / 1023 * 160)


def test_unsupported_model_type_is_refused(tmp_path):
    folder = tmp_path / "odd"
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps({"model_type": "speecht5"}))
    with pytest.raises(CheckpointError, match=r"holds a 'speecht5' checkpoint; the hf member runs .*whisper"):
        build_member(MemberSpec("x", "hf", {"checkpoint": str(folder)}), Manifest(), False)


def test_a_model_at_another_rate_gets_resampled_audio(tmp_path):
    """A wav2vec2 checkpoint whose preprocessor says 8 kHz: torchaudio's resampling, the grid in 16 kHz samples."""
    import torchaudio.functional as AF

    model, extractor = tiny_checkpoint("wav2vec2", 0, extractor={"sampling_rate": 8000})
    model.save_pretrained(tmp_path, safe_serialization=True)
    extractor.save_pretrained(tmp_path)
    member = build_member(MemberSpec("m", "hf", {"checkpoint": str(tmp_path)}), Manifest(), False)
    assert (member.sample_rate, member.default_hop, member.receptive_field) == (8000, 640, 799)
    audio = make_audio(0, samples=9001, seed=4)
    expected = reference_waveform(t=type("T", (), {"model": model}), audio=AF.resample(audio, 16000, 8000))
    got = states(member, audio)
    assert member.frame_grid(9001).count == expected[0].shape[1] == (4501 - 400) // 320 + 1
    assert all(max_diff(a, b) < TOLERANCE for a, b in zip(got, expected))
    assert member.frame_grid(799).count == 1 and member.frame_grid(798).count == 0
