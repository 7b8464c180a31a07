"""``hear-gura evaluate`` checks every task folder before any embedding (hear_gura.harness.preflight).

Each case breaks one tiny task (tests/hear_tasks.py) the way a real folder
breaks, and expects one HearGuraError naming the file or label, raised in
seconds with nothing written under ``--out`` (so no embedding started).
Without the preflight these surface after embedding and probe training as a
``KeyError``, an ``AssertionError`` or a libsndfile traceback inside heareval.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Callable, Dict

import numpy as np
import pytest
import soundfile as sf

from hear_gura.cli import main as hear_gura_main
from hear_gura.errors import HearGuraError
from hear_gura.harness.evaluate import evaluate
from hear_gura.harness.scores import discover_tasks
from hear_tasks import SR, write_event_task, write_scene_task

SCENE, EVENT = "tiny_tones-v1-full", "tiny_onsets-v1-full"


@pytest.fixture
def tasks_dir(tmp_path: Path) -> Path:
    """A fresh folder with one scene task (3 folds) and one event task (train/valid/test), 20 clips in all."""
    root = tmp_path / "tasks"
    write_scene_task(root)
    write_event_task(root)
    return root


def first_clip(task: Path, split: str) -> str:
    return next(iter(json.loads((task / f"{split}.json").read_text())))


def edit_labels(task: Path, split: str, change: Callable[[Dict], None]) -> None:
    path = task / f"{split}.json"
    data = json.loads(path.read_text())
    change(data)
    path.write_text(json.dumps(data))


def evaluate_fails(tasks_dir: Path, out: Path) -> str:
    """Run ``evaluate`` and return its error: raised within seconds, before anything is written under ``out``."""
    start = time.perf_counter()
    with pytest.raises(HearGuraError) as info:
        evaluate(tasks_dir, "fbank", out=out, grid_points=1, probe_grid="faster")
    assert time.perf_counter() - start < 5
    assert not out.exists()  # no embeddings/, no command.json, no lock: nothing started
    return str(info.value)


# ------------------------------------------------------------------ labels
def test_a_scene_label_missing_from_the_vocabulary_is_named_with_a_clip_using_it(tasks_dir, tmp_path):
    task = tasks_dir / SCENE
    clip = first_clip(task, "fold01")
    edit_labels(task, "fold01", lambda d: d.__setitem__(clip, ["dog"]))
    message = evaluate_fails(tasks_dir, tmp_path / "out")
    expected = f"label 'dog' is not in labelvocabulary.csv ('noise', 'tone'): 1 clip(s), e.g. fold01.json: {clip}"
    assert expected in message
    assert SCENE in message and EVENT not in message  # only the broken task is listed


def test_an_event_label_missing_from_the_vocabulary_is_named(tasks_dir, tmp_path):
    task = tasks_dir / EVENT
    clip = first_clip(task, "test")
    edit_labels(task, "test", lambda d: d[clip][0].__setitem__("label", "bell"))
    message = evaluate_fails(tasks_dir, tmp_path / "out")
    assert f"label 'bell' is not in labelvocabulary.csv ('tone'): 1 clip(s), e.g. test.json: {clip}" in message


def test_metadata_heareval_cannot_use_is_reported(tasks_dir, tmp_path):
    path = tasks_dir / SCENE / "task_metadata.json"
    meta = json.loads(path.read_text())
    meta["evaluation"] = ["top1_accuracy"]  # heareval: KeyError in available_scores, after embedding
    del meta["sample_duration"]             # heareval: KeyError before its first batch, after loading the model
    path.write_text(json.dumps(meta))
    message = evaluate_fails(tasks_dir, tmp_path / "out")
    assert ("task_metadata.json: evaluation is ['top1_accuracy']; expected a non-empty list of scene-task metrics"
            in message)
    assert "task_metadata.json: sample_duration is missing" in message


# ------------------------------------------------------------------ audio
def _garbage(path: Path) -> None:
    path.write_bytes(b"this is not a wav file " * 20)


def _header_only(path: Path) -> None:
    path.write_bytes(path.read_bytes()[:44])


def _truncated(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[:len(data) // 2])


def _other_rate(path: Path) -> None:
    sf.write(str(path), np.zeros(22050, np.float32), 22050, subtype="PCM_16")


def _stereo(path: Path) -> None:
    sf.write(str(path), np.zeros((SR, 2), np.float32), SR, subtype="PCM_16")


@pytest.mark.parametrize("damage, expected", [
    (Path.unlink, "missing (named in fold02.json)"),                       # heareval: libsndfile "System error"
    (_garbage, "unreadable audio (Error opening 'FILE': Format not recognised.)"),
    (_header_only, "no samples; expected mono 16000 Hz audio"),
    (_truncated, "7989 samples, while 11 other clip(s) have 16000 (sample_duration 1.0 s"),  # heareval: collate error
    (_other_rate, "22050 Hz (resample it to 16000 Hz); expected mono 16000 Hz audio"),  # heareval: bare AssertionError
    (_stereo, "2 channels (mix it down to mono)"),
])
def test_a_missing_corrupt_or_wrong_rate_wav_is_named(tasks_dir, tmp_path, damage, expected):
    task = tasks_dir / SCENE
    clip = first_clip(task, "fold02")
    damage(task / "16000" / "fold02" / clip)
    message = evaluate_fails(tasks_dir, tmp_path / "out")
    assert f"  - 16000/fold02/{clip}: {expected.replace('FILE', clip)}" in message


def test_a_missing_split_folder_is_one_problem_not_one_per_clip(tasks_dir, tmp_path):
    for wav in (tasks_dir / EVENT / "16000" / "valid").iterdir():
        wav.unlink()
    (tasks_dir / EVENT / "16000" / "valid").rmdir()
    message = evaluate_fails(tasks_dir, tmp_path / "out")
    assert f"{EVENT} ({(tasks_dir / EVENT).resolve()}): 1 problem(s)" in message
    assert "16000/valid/ is missing (valid.json names 2 wav(s))" in message


# ------------------------------------------------------------------ all problems at once
def test_every_problem_of_every_task_is_listed_in_one_error_capped_per_task(tasks_dir, tmp_path):
    scene = tasks_dir / SCENE
    wavs = sorted((scene / "16000").glob("*/*.wav"))
    for wav in wavs:  # all 12 clips missing
        wav.unlink()
    clip = first_clip(scene, "fold00")
    edit_labels(scene, "fold00", lambda d: d.__setitem__(clip, ["dog"]))
    event = tasks_dir / EVENT
    _other_rate(event / "16000" / "train" / first_clip(event, "train"))
    message = evaluate_fails(tasks_dir, tmp_path / "out")
    lines = message.splitlines()
    assert lines[0].startswith("2 task folder(s) cannot be evaluated")
    # tasks in name order; per task its problems in reading order (labels, then audio), 10 listed, the rest counted
    assert lines[1] == f"{EVENT} ({event.resolve()}): 1 problem(s)" and "22050 Hz" in lines[2]
    assert lines[3] == f"{SCENE} ({scene.resolve()}): 13 problem(s)"
    assert lines[4].startswith("  - label 'dog' is not in labelvocabulary.csv")
    assert all(line.startswith("  - 16000/fold0") and "missing (named in fold0" in line for line in lines[5:14])
    assert lines[14:] == ["  ... and 3 more"]


# ------------------------------------------------------------------ folders that are not tasks
def test_a_folder_without_metadata_is_noted_not_skipped_silently(tasks_dir, tmp_path, capsys):
    (tasks_dir / "esc50-v1-full" / "16000").mkdir(parents=True)  # e.g. a half-copied official task
    (tasks_dir / ".unfinished.tmp-123").mkdir()                   # an interrupted build: stays silent
    (tasks_dir / "README.txt").write_text("not a folder")
    clip = first_clip(tasks_dir / SCENE, "fold01")
    edit_labels(tasks_dir / SCENE, "fold01", lambda d: d.__setitem__(clip, ["dog"]))
    evaluate_fails(tasks_dir, tmp_path / "out")
    printed = capsys.readouterr().out
    assert f"NOTE: skipped 1 folder(s) of {tasks_dir} without task_metadata.json (not HEAR tasks): esc50-v1-full" \
        in printed
    assert ".unfinished" not in printed and "README" not in printed


def test_the_cli_exits_with_the_listing_before_any_work(tasks_dir, tmp_path):
    clip = first_clip(tasks_dir / SCENE, "fold00")
    (tasks_dir / SCENE / "16000" / "fold00" / clip).unlink()
    out = tmp_path / "out"
    with pytest.raises(SystemExit) as info:
        hear_gura_main(["evaluate", "--tasks-dir", str(tasks_dir), "--ensembles", "fbank", "--out", str(out)])
    assert str(info.value.code).startswith("hear-gura: error: 1 task folder(s) cannot be evaluated")
    assert f"16000/fold00/{clip}: missing" in str(info.value.code)
    assert not out.exists()


# ------------------------------------------------------------------ what passes
def test_official_style_folders_pass_where_the_builder_check_is_stricter(tasks_dir, capsys):
    """Only what heareval needs is required: unsorted vocabulary, extra wavs, other clip lengths per split are fine."""
    from hear_gura.harness.preflight import preflight, task_problems
    from hear_gura.tasks.check import check_task_dir

    task = tasks_dir / EVENT
    (task / "labelvocabulary.csv").write_text("idx,label\n0,tone\n1,bird\n")       # not sorted
    sf.write(str(task / "16000" / "test" / "extra.wav"), np.zeros(SR, np.float32), SR)  # unreferenced
    meta = json.loads((task / "task_metadata.json").read_text())
    meta["sample_duration"] = None  # variable-length clips: heareval embeds them one at a time
    (task / "task_metadata.json").write_text(json.dumps(meta))
    sf.write(str(task / "16000" / "test" / first_clip(task, "test")), np.zeros(SR // 2, np.float32), SR)
    with pytest.raises(ValueError):
        check_task_dir(task)
    assert task_problems(task) == []
    preflight(tasks_dir, discover_tasks(tasks_dir))  # no error, nothing to note
    assert capsys.readouterr().out == ""
