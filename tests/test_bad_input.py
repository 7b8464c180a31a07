"""Bad audio, manifests and names raise errors that say what was expected and how to fix it."""

from __future__ import annotations

import ctypes
import json
import os
import resource
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from conftest import hear_gura_in_process, make_audio
from hear_gura.api import get_scene_embeddings, get_timestamp_embeddings, load_ensemble_model
from hear_gura.errors import AudioError, CheckpointError, ConfigError, HearGuraError


@pytest.fixture(scope="module")
def model(load):
    return load("fusion_cat")


@pytest.mark.parametrize(
    "audio,match",
    [
        (torch.zeros(16000), r"2-D.*audio\[None\]"),
        (torch.zeros(2, 1, 16000), r"2-D.*channel"),
        (torch.zeros(2, 16000, dtype=torch.int16), r"floating point.*32768"),
        (torch.zeros(0, 16000), "empty"),
        (torch.zeros(2, 0), "empty"),
        (np.zeros((2, 16000), dtype=np.float32), "torch.from_numpy"),
        (torch.zeros(2, 399), r"at least 400"),
    ],
)
def test_bad_audio(model, audio, match):
    for api in (get_timestamp_embeddings, get_scene_embeddings):
        with pytest.raises(AudioError, match=match):
            api(audio, model)


@pytest.mark.parametrize("value", [float("nan"), float("inf"), -float("inf")])
def test_non_finite_audio_names_the_clip(model, value):
    audio = make_audio(0.5, batch=3)
    audio[1, 100] = value
    with pytest.raises(AudioError, match=r"NaN or inf in clip\(s\) \[1\]"):
        get_timestamp_embeddings(audio, model)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a second device")
def test_audio_on_another_device(model):
    with pytest.raises(AudioError, match="model.to"):
        get_timestamp_embeddings(make_audio(0.5).cuda(), model)


def test_device_check_is_made(model):
    """Without a GPU, exercise the check with the meta device."""
    with pytest.raises(AudioError, match="is on meta but the model is on cpu"):
        get_timestamp_embeddings(torch.zeros(1, 16000, device="meta"), model)


def test_float64_audio_is_accepted_as_float32(model):
    audio = make_audio(0.5)
    a, _ = get_timestamp_embeddings(audio.double(), model)
    b, _ = get_timestamp_embeddings(audio, model)
    assert a.dtype == torch.float32 and torch.equal(a, b)


@pytest.mark.parametrize("samples,frames", [(400, 1), (719, 1), (720, 2), (1679, 4), (1680, 5)])
def test_shortest_clips_give_frames(load, samples, frames):
    """400 samples (25 ms) is the shortest valid clip; the 5-group pooling does not crash below 5 frames."""
    audio = make_audio(0, samples=samples)
    model = load("fusion_cat_time")
    embeddings, timestamps = get_timestamp_embeddings(audio, model)
    assert embeddings.shape == (1, frames, model.timestamp_embedding_size)
    assert get_scene_embeddings(audio, model).shape == (1, model.scene_embedding_size)


def test_crepe_alone_takes_any_clip_of_one_sample(load):
    model = load("crepe")
    embeddings, timestamps = get_timestamp_embeddings(make_audio(0, samples=1), model)
    assert embeddings.shape == (1, 1, 2048) and timestamps.tolist() == [[0.0]]


def test_model_must_come_from_load_model():
    with pytest.raises(HearGuraError, match="load_model"):
        get_timestamp_embeddings(torch.zeros(1, 16000), torch.nn.Linear(1, 1))


# ---------------------------------------------------------------- manifests
def test_missing_manifest(tmp_path):
    with pytest.raises(CheckpointError, match="does not exist.*checkpoint ids to local paths"):
        load_ensemble_model("hubert", str(tmp_path / "nope.json"))


def test_manifest_not_json(tmp_path):
    path = tmp_path / "m.json"
    path.write_text("{not json")
    with pytest.raises(CheckpointError, match="not valid JSON"):
        load_ensemble_model("hubert", str(path))


def test_manifest_not_an_object(tmp_path):
    path = tmp_path / "m.json"
    path.write_text("[1, 2]")
    with pytest.raises(CheckpointError, match="holds a list"):
        load_ensemble_model("hubert", str(path))


def test_manifest_unreadable(tmp_path):
    path = tmp_path / "m.json"
    path.write_bytes(b"\xff\xfe\x00bad")
    with pytest.raises(CheckpointError, match="cannot be read"):
        load_ensemble_model("hubert", str(path))


def test_manifest_is_a_directory(tmp_path):
    with pytest.raises(CheckpointError, match="is a directory"):
        load_ensemble_model("hubert", str(tmp_path))


def test_manifest_path_that_does_not_exist(tmp_path):
    path = tmp_path / "m.json"
    path.write_text(json.dumps({"facebook/hubert-xlarge-ll60k": "missing-dir"}))
    with pytest.raises(CheckpointError, match="does not exist; fix the path"):
        load_ensemble_model("hubert", str(path))


def test_manifest_pointing_to_the_wrong_architecture(tmp_path, manifest):
    entries = json.loads(manifest.read_text())
    wrong = {"facebook/hubert-xlarge-ll60k": str(manifest.parent / entries["facebook/wav2vec2-large-960h-lv60-self"])}
    path = tmp_path / "m.json"
    path.write_text(json.dumps(wrong))
    with pytest.raises(CheckpointError, match="holds a 'wav2vec2' checkpoint.*must be a 'hubert'"):
        load_ensemble_model("hubert", str(path))


def test_checkpoint_lacking_weights_is_refused(tmp_path, manifest):
    """A checkpoint of the right type but another shape must not be completed with random weights."""
    entries = json.loads(manifest.read_text())
    large = manifest.parent / entries["facebook/hubert-large-ll60k"]
    path = tmp_path / "m.json"
    path.write_text(json.dumps({"facebook/hubert-xlarge-ll60k": str(large)}))
    # Same architecture, other widths: loads fine (the config travels with the weights) ...
    assert load_ensemble_model("hubert", str(path)).timestamp_embedding_size == 32
    # ... but a folder whose weights miss tensors is refused.
    broken = tmp_path / "broken"
    shutil.copytree(large, broken)
    from safetensors.torch import load_file, save_file

    tensors = load_file(broken / "model.safetensors")
    dropped = [k for k in tensors if "encoder.layers.0." in k]
    save_file({k: v for k, v in tensors.items() if k not in dropped}, broken / "model.safetensors", metadata={"format": "pt"})
    path.write_text(json.dumps({"facebook/hubert-large-ll60k": str(broken)}))
    with pytest.raises(CheckpointError, match="refusing to fill them with random values"):
        load_ensemble_model("hubert", str(path), members=[{"name": "hubert", "type": "hf", "checkpoint": "facebook/hubert-large-ll60k"}])


def test_missing_checkpoint_offline_names_member_id_and_fix(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.delenv("HEAR_GURA_MANIFEST", raising=False)
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    with pytest.raises(CheckpointError) as info:
        load_ensemble_model("hubert")
    text = str(info.value)
    assert "member 'hubert'" in text and "facebook/hubert-xlarge-ll60k" in text
    assert "manifest" in text and "hear-gura fixtures" in text


def test_manifest_from_environment(monkeypatch, manifest):
    monkeypatch.setenv("HEAR_GURA_MANIFEST", str(manifest))
    assert load_ensemble_model("hubert").random_weights


# -------------------------------------------------------- names and options
def test_unknown_ensemble_lists_valid_names():
    with pytest.raises(ConfigError, match="unknown ensemble 'fusion_kat'; valid: .*fusion_cat"):
        load_ensemble_model("fusion_kat")


def test_unknown_option_lists_valid_options(manifest):
    with pytest.raises(ConfigError, match=r"unknown option\(s\) 'fussion'.*valid: .*fusion"):
        load_ensemble_model("fusion_cat", str(manifest), fussion="avg")


@pytest.mark.parametrize(
    "options,match",
    [
        ({"fusion": "sum"}, "valid: avg, cat_interleave, cat_block"),
        ({"time_align": "nearest"}, "valid: frame_ratio, centre"),
        ({"feature_align": "pca"}, "valid: linear, none"),
        ({"scene_pooling": "max"}, "valid"),
        ({"layers": "first"}, "expected"),
        ({"layers": 99}, "out of range"),
        ({"members": ["hubert", "whisper"]}, "unknown member 'whisper'; valid: hubert, wav2vec2, crepe"),
        ({"grid": "crepe2"}, "valid: hubert, wav2vec2, crepe"),
        ({"feature_width": 0}, "positive int or a member name"),
        ({"crepe_timestamp_hop_ms": 0}, "positive whole number"),
        ({"members": ["hubert", "crepe"]}, "grid 'wav2vec2' is not a member"),
        ({"feature_align": "none"}, "feature_align"),
        ({"normalize_waveform": {"bert": True}}, "unknown members"),
    ],
)
def test_invalid_option_values(manifest, options, match):
    with pytest.raises(ConfigError, match=match):
        load_ensemble_model("fusion_cat", str(manifest), **options)


# ------------------------------------------- manifests: loops and entries that escape
def test_manifest_entry_that_is_a_symlink_loop_names_the_entry(tmp_path):
    (tmp_path / "a").symlink_to(tmp_path / "b")
    (tmp_path / "b").symlink_to(tmp_path / "a")
    path = tmp_path / "m.json"
    path.write_text(json.dumps({"facebook/hubert-xlarge-ll60k": "a"}))
    with pytest.raises(CheckpointError, match=r"entry for 'facebook/hubert-xlarge-ll60k' \('a'\) is a symbolic link"):
        load_ensemble_model("hubert", str(path))


def test_manifest_that_is_a_symlink_loop(tmp_path):
    (tmp_path / "m.json").symlink_to(tmp_path / "n.json")
    (tmp_path / "n.json").symlink_to(tmp_path / "m.json")
    with pytest.raises(CheckpointError, match=r"m\.json is a symbolic link loop"):
        load_ensemble_model("hubert", str(tmp_path / "m.json"))


@pytest.mark.parametrize("target,what", [("../..", "a folder without config.json"), ("../../x.txt", "a file")])
def test_manifest_entry_escaping_its_folder_says_what_is_wrong(tmp_path, target, what):
    """It used to say the id "is not in manifest" although the manifest maps it."""
    folder = tmp_path / "a" / "b"
    folder.mkdir(parents=True)
    (tmp_path / "x.txt").write_text("not a checkpoint")
    path = folder / "m.json"
    path.write_text(json.dumps({"facebook/hubert-xlarge-ll60k": target}))
    with pytest.raises(CheckpointError) as info:
        load_ensemble_model("hubert", str(path))
    text = str(info.value)
    assert "is not in" not in text
    assert f"maps 'facebook/hubert-xlarge-ll60k' to {(folder / target).resolve()}" in text
    assert f"outside the manifest's folder {folder}" in text and f"it is {what}" in text and "config.json" in text


# ------------------------------------------------------------ hear-gura embed
HEAR_GURA = str(Path(sys.executable).parent / "hear-gura")


def run_cli(*args: str, preexec_fn=None, **env_vars: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "HEAR_GURA_MANIFEST"}
    env.update(HF_HUB_OFFLINE="1", **env_vars)
    return subprocess.run([HEAR_GURA, *args], capture_output=True, text=True, env=env, timeout=600,
                          preexec_fn=preexec_fn)


def write_wav(path: Path, seconds: float = 1.0) -> Path:
    sf.write(str(path), make_audio(seconds)[0].numpy(), 16000, subtype="PCM_16")
    return path


def assert_clean_error(result: subprocess.CompletedProcess, *needles: str) -> None:
    assert result.returncode != 0 and "Traceback" not in result.stderr, result.stderr
    assert any(line.startswith("hear-gura: error:") for line in result.stderr.splitlines()), result.stderr
    for needle in needles:
        assert needle in result.stderr, (needle, result.stderr)


def test_embed_names_every_bad_input_before_loading_models(tmp_path):
    """fusion_hubert cannot load here (offline, no manifest): the input check must come first."""
    good = write_wav(tmp_path / "good.wav")
    sf.write(str(tmp_path / "empty.wav"), np.zeros(0, dtype=np.float32), 16000)
    (tmp_path / "corrupt.wav").write_bytes(b"RIFF\x24\x00\x00\x00WAVEjunk" + bytes(20))
    (tmp_path / "folder").mkdir()
    (tmp_path / "loop.wav").symlink_to(tmp_path / "loop2.wav")
    (tmp_path / "loop2.wav").symlink_to(tmp_path / "loop.wav")
    bad = [tmp_path / n for n in ("empty.wav", "corrupt.wav", "folder", "loop.wav")]
    result = run_cli("embed", "fusion_hubert", str(good), *map(str, bad), "--out", str(tmp_path / "out"),
                     HF_HOME=str(tmp_path / "hf"))
    assert_clean_error(result, "4 input file(s) cannot be embedded", f"{bad[0]}: holds no samples",
                       f"{bad[1]}: not a readable audio file", f"{bad[2]}: is a directory",
                       f"{bad[3]}: is a symbolic link loop")
    assert "checkpoint" not in result.stderr and not (tmp_path / "out").exists()


def test_embed_refuses_an_out_that_is_a_file_or_under_one(tmp_path, capsys):
    wav = write_wav(tmp_path / "a.wav")
    (tmp_path / "taken").write_text("")
    for out, expected in ((tmp_path / "taken", f"--out {tmp_path / 'taken'} is an existing file"),
                          (tmp_path / "taken" / "sub", "which is not a folder")):
        assert_clean_error(hear_gura_in_process(capsys, "embed", "fusion_hubert", str(wav), "--out", str(out)), expected)


def _honour_file_permissions() -> None:
    """In the child, before exec: make root subject to file permissions, as any user is.

    Drops CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH and CAP_FOWNER from the
    capability bounding set (``prctl(PR_CAPBSET_DROP)``), so the program root
    runs next lacks them; it still owns the test's files.
    """
    if os.geteuid() != 0:
        return
    libc = ctypes.CDLL(None, use_errno=True)
    for capability in (1, 2, 3):
        if libc.prctl(24, capability, 0, 0, 0) != 0:
            raise OSError(ctypes.get_errno(), "prctl(PR_CAPBSET_DROP) failed")


def test_embed_refuses_a_read_only_out_before_loading_models(tmp_path):
    wav = write_wav(tmp_path / "a.wav")
    read_only = tmp_path / "ro"
    read_only.mkdir()
    read_only.chmod(0o555)
    try:
        for out in (read_only, read_only / "new"):
            result = run_cli("embed", "fusion_hubert", str(wav), "--out", str(out),
                             preexec_fn=_honour_file_permissions, HF_HOME=str(tmp_path / "hf"))
            assert_clean_error(result, f"--out {out}", "not writable")
            assert "checkpoint" not in result.stderr
        assert list(read_only.iterdir()) == []
    finally:
        read_only.chmod(0o755)


def test_embed_refuses_non_finite_options_naming_them(tmp_path, capsys):
    wav = write_wav(tmp_path / "a.wav")
    for text, name in [('{"max_window_seconds": Infinity}', "max_window_seconds = inf"),
                       ('{"layers": {"weights": [1, NaN, 1, 1, 1]}}', "layers.weights[1] = nan"),
                       ('{"window_overlap_seconds": -1e999}', "window_overlap_seconds = -inf")]:
        result = hear_gura_in_process(capsys, "embed", "crepe", str(wav), "--out", str(tmp_path / "out"),
                                      "--options", text)
        assert_clean_error(result, name, "non-finite")
    assert not (tmp_path / "out").exists()


def _file_size_limit(limit: int):
    """A preexec_fn: writes past ``limit`` bytes fail with EFBIG, as on a full disk (no signal, no root)."""

    def apply() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    return apply


def test_embed_on_a_full_disk_leaves_nothing_half_written(tmp_path, manifest):
    wavs = [str(write_wav(tmp_path / f"clip{i}.wav", seconds)) for i, seconds in enumerate((3.0, 0.5))]
    out = tmp_path / "out"
    # Room for the probe (4 KiB) and the short clip's files, not for the long clip's embedding (~19 KB).
    result = run_cli("embed", "fusion_hubert", *wavs, "--out", str(out), "--model", str(manifest), "--quiet",
                     "--batch-size", "1", preexec_fn=_file_size_limit(12_000))
    assert_clean_error(result, f"cannot write {out / 'clip0.embedding.npy'}", "file size limit",
                       "Nothing is half-written")
    assert sorted(p.name for p in out.iterdir()) == [], "the long clip comes first; nothing of it may remain"
    # Too little room even for the probe: refused before the models load.
    result = run_cli("embed", "fusion_hubert", *wavs, "--out", str(tmp_path / "out2"), "--quiet",
                     preexec_fn=_file_size_limit(1_000), HF_HOME=str(tmp_path / "hf"))
    assert_clean_error(result, "cannot take new files", "file size limit")
    assert "checkpoint" not in result.stderr and not (tmp_path / "out2").exists()


def test_evaluate_stopped_by_an_error_does_not_leave_command_json_running(tmp_path):
    """Any error inside the run (here: a cell's result path taken by a folder) ends as "failed", with the error."""
    from hear_gura.cli import main
    from hear_gura.harness.grid import build_variants
    from hear_tasks import write_scene_task

    task = write_scene_task(tmp_path / "tasks")
    out = tmp_path / "out"
    [variant] = build_variants(["fbank"], {})
    blocker = out / "cells" / variant.slug / f"{task.name}.json"
    blocker.mkdir(parents=True)
    with pytest.raises(SystemExit) as info:
        main(["evaluate", "--tasks-dir", str(tmp_path / "tasks"), "--ensembles", "fbank", "--out", str(out),
              "--grid-points", "1", "--probe-grid", "faster"])
    assert "evaluation stopped" in str(info.value.code) and str(blocker) in str(info.value.code)
    command = json.loads((out / "command.json").read_text())
    assert command["status"] == "failed" and str(blocker) in command["error"] and command["finished_at"]
