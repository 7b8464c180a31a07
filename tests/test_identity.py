"""The identity of a result (hear_gura.identity): what is hashed, what is compared, what is remembered."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

from hear_gura.ensemble import EnsembleConfig
from hear_gura.identity import (
    DigestMemo, differences, ensemble_identity, file_digest, path_digest, same_identity, task_digest, versions,
)
from hear_gura.manifest import Manifest
from hear_gura.registry import available_ensembles, load_ensemble


@pytest.mark.parametrize("name", available_ensembles())
def test_to_dict_round_trips_through_from_dict_with_every_default_filled_in(name):
    config = load_ensemble(name)
    data = config.to_dict()
    again = EnsembleConfig.from_dict(None, data)
    assert again.to_dict() == data
    assert EnsembleConfig.from_dict(name, json.loads(json.dumps(data))).to_dict() == data  # through JSON text
    assert data["grid"] in again.member_names and isinstance(data["window_overlap_seconds"], float)
    for member in data["members"]:
        if member["type"] == "crepe":
            assert {"model", "batch_frames"} <= set(member)  # the member's own defaults too
    # a config with the defaults spelled out is the same config as one relying on them
    spelled = config.with_options(window_overlap_seconds=config.overlap_seconds, grid=data["grid"])
    assert spelled.to_dict() == data


def test_a_file_edited_in_place_is_hashed_again_even_with_its_size_and_mtime_restored(tmp_path):
    path = tmp_path / "weights.bin"
    path.write_bytes(b"a" * 4096)
    first = file_digest(path)
    stat = path.stat()
    path.write_bytes(b"b" * 4096)
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))  # same size, same mtime: only ctime tells
    assert path.stat().st_size == stat.st_size and path.stat().st_mtime_ns == stat.st_mtime_ns
    assert file_digest(path) != first
    path.write_bytes(b"a" * 4096)
    assert file_digest(path) == first


def test_digests_are_remembered_on_disk_by_path_size_and_times(tmp_path):
    db = tmp_path / "cache" / "digests.sqlite"
    path = tmp_path / "clip.wav"
    path.write_bytes(b"\x00" * 100)
    memo = DigestMemo(db)
    key = DigestMemo._key(path.absolute(), path.stat())
    memo.store([(key, "f" * 64)])
    assert DigestMemo(db).lookup(key) == "f" * 64  # a new process finds it
    changed = (key[0], key[1] + 1, key[2], key[3])
    assert DigestMemo(db).lookup(changed) is None
    unwritable = DigestMemo(Path("/proc/hear_gura_cannot_write_here/d.sqlite"))  # falls back to memory
    unwritable.store([(key, "e" * 64)])
    assert unwritable.lookup(key) == "e" * 64


def test_a_folder_digest_covers_names_and_bytes_and_skips_hidden_files(tmp_path):
    folder = tmp_path / "ckpt"
    folder.mkdir()
    (folder / "config.json").write_text("{}")
    (folder / "model.safetensors").write_bytes(b"123")
    digest = path_digest(folder)
    shutil.copytree(folder, tmp_path / "copy")
    assert path_digest(tmp_path / "copy") == digest  # content, not place
    (folder / ".cache").mkdir()
    (folder / ".cache" / "lock").write_text("x")
    assert path_digest(folder) == digest
    (folder / "model.safetensors").rename(folder / "other.safetensors")
    assert path_digest(folder) != digest
    with pytest.raises(OSError):
        path_digest(tmp_path / "missing")


def test_a_task_digest_covers_clip_bytes(tmp_path):
    task = tmp_path / "t"
    (task / "16000" / "train").mkdir(parents=True)
    (task / "task_metadata.json").write_text('{"task_name": "t"}')
    (task / "16000" / "train" / "a.wav").write_bytes(b"RIFF" + b"\x01" * 60)
    first = task_digest(task)
    (task / "16000" / "train" / "a.wav").write_bytes(b"RIFF" + b"\x00" * 60)  # silence of the same size
    assert task_digest(task) != first


def test_ensemble_identity_compares_contents_and_records_places(manifest, tmp_path):
    config = load_ensemble("fusion_hubert")
    identity = ensemble_identity(config, Manifest.load(str(manifest)))
    assert identity["provable"] and identity["random_weights"]
    assert identity["members"]["hubert"]["via"] == "manifest"
    assert identity["manifest"]["source"] == str(manifest.resolve())
    assert identity["versions"]["hear_gura"] == versions()["hear_gura"]
    assert same_identity(json.loads(json.dumps(identity)), identity)

    copied = tmp_path / "copied"
    shutil.copytree(manifest.parent, copied)
    elsewhere = ensemble_identity(config, Manifest.load(str(copied / manifest.name)))
    assert elsewhere["members"]["hubert"]["path"] != identity["members"]["hubert"]["path"]
    assert same_identity(identity, elsewhere) and differences(identity, elsewhere) == []

    changed = ensemble_identity(config.with_options(layers="last"), Manifest.load(str(manifest)))
    assert not same_identity(identity, changed) and differences(identity, changed) == ["ensemble configuration"]

    older = json.loads(json.dumps(identity))
    older["versions"]["torch"] = "1.0.0"
    assert differences(older, identity) == [f"versions of torch (1.0.0 -> {identity['versions']['torch']})"]
    assert differences(None, identity) == ["no identity recorded (written by an older hear_gura)"]


def test_weights_that_are_not_on_this_machine_make_an_identity_that_is_never_trusted():
    identity = ensemble_identity(load_ensemble("fusion_hubert"), Manifest())  # no manifest, no hub cache
    assert identity["members"]["hubert"]["content"] is None and not identity["provable"]
    assert not same_identity(identity, identity)
    assert "not on this machine" in differences(identity, identity)[0]
    crepe = ensemble_identity(load_ensemble("crepe"), Manifest())
    assert crepe["provable"] and crepe["members"]["crepe"]["via"] == "package" and not crepe["random_weights"]
    fbank = ensemble_identity(load_ensemble("fbank"), Manifest())
    assert fbank["provable"] and fbank["members"]["fbank"]["content"] == "weight-free"
