"""The hear-gura command: list, fixtures, embed."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import soundfile as sf

from conftest import hear_gura_in_process, make_audio
from hear_gura.registry import available_ensembles

HEAR_GURA = str(Path(sys.executable).parent / "hear-gura")


def run(*args: str, cwd: Path | None = None, **env_vars: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, HF_HUB_OFFLINE="1", **env_vars)
    return subprocess.run([HEAR_GURA, *args], capture_output=True, text=True, env=env, cwd=cwd, timeout=600)


def test_list_table_and_names():
    names = run("list", "--names")
    assert names.returncode == 0 and names.stdout.split() == available_ensembles()
    table = run("list").stdout
    assert "| hear_gura.fusion_cat " in table and "GURA Fuse Cat H+w+C" in table and "3072 / 3072" in table
    assert "3072 / 15360" in table and "1280 / 1280" in table and "2048 / 2048" in table


def test_fixtures_are_deterministic_and_loadable(tmp_path):
    for folder in ("a", "b"):
        assert run("fixtures", str(tmp_path / folder)).returncode == 0
    manifest = json.loads((tmp_path / "a" / "checkpoints.json").read_text())
    assert manifest["_random_weights"] is True
    for checkpoint_id, folder in manifest.items():
        if checkpoint_id.startswith("_"):
            continue
        for name in ("config.json", "model.safetensors", "preprocessor_config.json"):
            a = (tmp_path / "a" / folder / name).read_bytes()
            assert a == (tmp_path / "b" / folder / name).read_bytes(), f"{folder}/{name} differs between runs"


def write_clips(folder: Path, seconds: tuple, prefix: str) -> list:
    """``folder/{prefix}{i}.wav`` for each length (16 kHz PCM16, make_audio with seed i); their paths as str."""
    files = []
    for i, length in enumerate(seconds):
        path = folder / f"{prefix}{i}.wav"
        sf.write(path, make_audio(length, seed=i)[0].numpy(), 16000, subtype="PCM_16")
        files.append(str(path))
    return files


def test_embed_writes_arrays_atomically(tmp_path, manifest):
    files = write_clips(tmp_path, (1.0, 2.3), "clip")
    out = tmp_path / "out"
    result = run("embed", "fusion_cat", *files, "--out", str(out), "--model", str(manifest),
                 "--options", '{"fusion": "cat_block"}', "--quiet")
    assert result.returncode == 0, result.stderr
    assert "RANDOM" in result.stderr
    emb = np.load(out / "clip1.embedding.npy")
    ts = np.load(out / "clip1.timestamps.npy")
    assert emb.shape == ((36800 - 400) // 320 + 1, 32 + 32 + 32) and ts.shape == emb.shape[:1]
    assert np.load(out / "clip1.scene.npy").shape == (96,)
    assert json.loads((out / "config.json").read_text())["config"]["fusion"] == "cat_block"
    assert not list(out.glob(".*tmp"))  # no temporary files left behind
    mask = os.umask(0)
    os.umask(mask)
    modes = {p.name: p.stat().st_mode & 0o777 for p in out.iterdir()}
    assert set(modes.values()) == {0o666 & ~mask}, modes  # what open() gives, not mkstemp's owner-only 0o600


def test_embed_errors_exit_nonzero_with_a_message(tmp_path):
    path = tmp_path / "x.wav"
    sf.write(path, np.zeros(8000, dtype=np.float32), 8000)
    result = run("embed", "crepe", str(path), "--out", str(tmp_path / "o"))
    assert result.returncode != 0 and "8000 Hz" in result.stderr and "--resample" in result.stderr
    result = run("embed", "crepe", str(tmp_path / "missing.wav"), "--out", str(tmp_path / "o"))
    assert result.returncode != 0 and "no such file" in result.stderr
    result = run("embed", "crepe", str(path), "--out", str(tmp_path / "o"), "--options", "[1]")
    assert result.returncode != 0 and "JSON object" in result.stderr


def test_torchrun_two_processes_write_the_same_bytes_as_one(tmp_path, manifest):
    files = write_clips(tmp_path, (0.5, 1.7, 1.0, 0.9, 2.2), "c")
    # tiny fixture members only: the test is the sharding (CREPE full on real weights costs seconds per clip here)
    common = ["embed", "avg_hubert_wav2vec2", *files, "--model", str(manifest), "--batch-size", "2", "--quiet"]
    # torchrun gives each process one thread; bytes are equal at equal thread counts
    # (other counts change float32 summation order: ~1e-6).
    single = run(*common, "--out", str(tmp_path / "one"), OMP_NUM_THREADS="1")
    assert single.returncode == 0, single.stderr
    torchrun = str(Path(sys.executable).parent / "torchrun")
    env = dict(os.environ, HF_HUB_OFFLINE="1", OMP_NUM_THREADS="1")
    sharded = subprocess.run(
        [torchrun, "--nproc-per-node", "2", "--master-port", "29731", "-m", "hear_gura", *common,
         "--out", str(tmp_path / "two")],
        capture_output=True, text=True, env=env, timeout=600,
    )
    assert sharded.returncode == 0, sharded.stderr[-3000:]
    one = sorted(p.name for p in (tmp_path / "one").iterdir())
    assert one == sorted(p.name for p in (tmp_path / "two").iterdir()) and len(one) == 16
    for name in one:
        if name.endswith(".npy"):
            assert (tmp_path / "one" / name).read_bytes() == (tmp_path / "two" / name).read_bytes(), name


def test_one_embed_folder_holds_one_identity_and_says_which(tmp_path, manifest, capsys):
    """A second ensemble into the same --out is refused before any model loads; config.json describes every file."""
    files = write_clips(tmp_path, (0.6, 1.1), "c")
    out = tmp_path / "out"
    first = hear_gura_in_process(capsys, "embed", "fbank", files[0], "--out", str(out), "--quiet")
    assert first.returncode == 0, first.stderr
    record = json.loads((out / "config.json").read_text())
    assert record["ensemble"] == "fbank" and record["status"] == "complete" and record["files"] == ["c0"]
    assert record["identity"]["members"]["fbank"]["content"] == "weight-free" and not record["random_weights"]
    assert record["config"]["window_overlap_seconds"] == record["identity"]["config"]["window_overlap_seconds"]

    # the same identity: adds files
    again = hear_gura_in_process(capsys, "embed", "fbank", files[1], "--out", str(out), "--quiet")
    assert again.returncode == 0, again.stderr
    assert json.loads((out / "config.json").read_text())["files"] == ["c0", "c1"]

    before = {p.name: p.read_bytes() for p in out.iterdir()}
    other = hear_gura_in_process(capsys, "embed", "crepe", files[1], "--out", str(out), "--quiet")
    assert other.returncode != 0 and "already holds embeddings of 'fbank'" in other.stderr, other.stderr
    assert "ensemble configuration" in other.stderr and "Traceback" not in other.stderr
    options = hear_gura_in_process(capsys, "embed", "fbank", files[1], "--out", str(out),
                                   "--options", '{"scene_pooling": "groups:2"}')
    assert options.returncode != 0 and "another identity" in options.stderr
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before  # nothing touched

    stray = tmp_path / "stray"
    stray.mkdir()
    (stray / "x.embedding.npy").write_bytes(b"")
    unknown = hear_gura_in_process(capsys, "embed", "fbank", files[0], "--out", str(stray), "--quiet")
    assert unknown.returncode != 0 and "no config.json" in unknown.stderr
