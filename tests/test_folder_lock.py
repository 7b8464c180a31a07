"""hear_gura.folder_lock: one writer at a time in an output folder (evaluate) or an embedding folder (a probe run)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from hear_gura.folder_lock import FolderBusy, exclusive
from hear_gura.harness.probe_run import LOCK_FILE, exclusive_outputs
from hear_tasks import SCENE
from test_harness import run_cli


def test_a_second_holder_is_refused_with_the_callers_advice_and_the_lock_frees_on_exit(tmp_path):
    lock = tmp_path / ".x.lock"
    with exclusive(lock, "busy: wait"):
        with pytest.raises(FolderBusy, match="busy: wait"):
            with exclusive(lock, "busy: wait"):
                pass
    with exclusive(lock, "busy: wait"):  # released: taken again
        pass


def test_evaluate_refuses_an_output_folder_another_evaluate_writes_before_running_anything(tasks_dir, tmp_path):
    out = tmp_path / "results"
    out.mkdir()
    with exclusive(out / ".evaluate.lock", "held by this test"):
        with pytest.raises(FolderBusy, match="another hear-gura evaluate is writing to"):
            run_cli(["evaluate", "--tasks-dir", str(tasks_dir), "--tasks", SCENE, "--ensembles", "fbank",
                     "--out", str(out), "--grid-points", "1", "--probe-grid", "faster"])
    assert not (out / "embeddings").exists() and not (out / "cells").exists()


def test_a_probe_run_holds_its_embedding_folder(tmp_path: Path):
    (tmp_path / "task_metadata.json").write_text(json.dumps({}))
    with exclusive_outputs(tmp_path):
        assert (tmp_path / LOCK_FILE).exists()
        with pytest.raises(FolderBusy, match="another heareval probe run"):
            with exclusive_outputs(tmp_path):
                pass
