"""Shared test fixtures: tiny checkpoints written once per session, short generated audio."""

from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # before transformers is imported
if "HEAR_GURA_CACHE_DIR" not in os.environ:  # file digests of this run only, not the user's cache
    import tempfile

    os.environ["HEAR_GURA_CACHE_DIR"] = tempfile.mkdtemp(prefix="hear_gura_test_cache_")
if os.environ.get("PYTEST_XDIST_WORKER"):
    # `make test` runs two workers on two cores: one thread each, inherited by
    # the subprocesses (hear-validator, heareval) the tests start.
    os.environ["OMP_NUM_THREADS"] = "1"
else:
    # One thread count for this process and the subprocesses it starts (tests compare their bytes: a sum's order
    # follows the threads): an exported OMP_NUM_THREADS, else at most two.
    os.environ.setdefault("OMP_NUM_THREADS", str(max(1, min(2, os.cpu_count() or 1))))

from pathlib import Path

import pytest
import torch

torch.set_num_threads(int(os.environ["OMP_NUM_THREADS"]))


def make_audio(seconds: float, batch: int = 1, seed: int = 0, samples: int | None = None) -> torch.Tensor:
    """Deterministic test audio ``(batch, samples)`` at 16 kHz: harmonic tones plus noise, in [-1, 1]."""
    generator = torch.Generator().manual_seed(seed)
    n = samples if samples is not None else int(round(seconds * 16000))
    t = torch.arange(n, dtype=torch.float64) / 16000
    clips = []
    for b in range(batch):
        f0 = 110 * 2 ** (torch.rand((), generator=generator, dtype=torch.float64) * 3)
        tone = sum(torch.sin(2 * torch.pi * k * f0 * t) / k for k in range(1, 5))
        noise = torch.randn(n, generator=generator, dtype=torch.float64)
        clips.append(0.4 * tone + 0.1 * noise)
    return torch.stack(clips).clamp(-1, 1).float()


def hear_gura_in_process(capsys: pytest.CaptureFixture, *args: str) -> "subprocess.CompletedProcess[str]":
    """``hear-gura ARGS`` run in this process (no interpreter start-up and imports per call), reported as a
    subprocess run would be: the exit status, stdout, and stderr with ``sys.exit``'s message. Any other exception
    propagates and fails the test. For checks that need no process of their own (no limits, no environment)."""
    import subprocess

    from hear_gura.cli import main

    code, message = 0, ""
    capsys.readouterr()
    try:
        main(list(args))
    except SystemExit as exit:
        code = exit.code if isinstance(exit.code, int) else 1
        message = "" if isinstance(exit.code, int) or exit.code is None else f"{exit.code}\n"
    captured = capsys.readouterr()
    return subprocess.CompletedProcess(list(args), code, captured.out, captured.err + message)


@pytest.fixture(scope="session")
def manifest(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The manifest of tiny random checkpoints for every checkpoint id in use."""
    from hear_gura.fixtures import write_fixtures

    return write_fixtures(tmp_path_factory.mktemp("fixtures"))


@pytest.fixture(scope="session")
def load(manifest: Path):
    """``load(ensemble, **options)``: an EnsembleModel on the fixture checkpoints (cached without options)."""
    from hear_gura.api import load_ensemble_model

    cache = {}

    def load_model(ensemble: str, **options):
        if options:
            return load_ensemble_model(ensemble, str(manifest), **options)
        if ensemble not in cache:
            cache[ensemble] = load_ensemble_model(ensemble, str(manifest))
        return cache[ensemble]

    return load_model


@pytest.fixture(scope="session")
def tasks_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Two tiny HEAR tasks (tests/hear_tasks.py): a 3-fold scene task and a trainvaltest event task."""
    from hear_tasks import write_event_task, write_scene_task

    root = tmp_path_factory.mktemp("hear_tasks")
    write_scene_task(root)
    write_event_task(root)
    return root
