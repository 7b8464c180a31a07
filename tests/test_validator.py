"""hear-validator passes on modules covering every member kind and head path (real subprocess calls, fixture
checkpoints)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from hear_gura.registry import available_ensembles, load_ensemble

VALIDATOR = Path(sys.executable).parent / "hear-validator"


def run_validator(module: str, manifest: Path | None) -> subprocess.CompletedProcess:
    command = [str(VALIDATOR), f"hear_gura.{module}"] + (["-m", str(manifest)] if manifest else [])
    env = dict(os.environ, HF_HUB_OFFLINE="1")
    env.pop("HEAR_GURA_MANIFEST", None)
    return subprocess.run(command, capture_output=True, text=True, env=env, timeout=600)


#: The modules hear-validator runs on, one per member kind and per head path (fusion method, feature and time
#: alignment, pooling, member scaling). Every module only binds its ensemble's name to the one API
#: (test_options.py checks that), so a module adds to this set only when it brings a kind or a path that no
#: module here has: ``test_validated_modules_cover_every_kind_and_head_path`` fails when one does. Validating
#: all of them costs minutes of the suite for the same code. ``fusion_cat`` is here as the README's command.
VALIDATED = ("fusion_cat", "fusion_cat_time", "avg_hubert_wav2vec2", "pesto", "resemblyzer_crepe_basic_pitch_scaled")
#: Validated without a manifest: the modules whose weights are real and ship with a library.
VALIDATED_WITHOUT_MANIFEST = ("crepe", "fbank")


def head_paths(name: str) -> set:
    """What a module exercises: its member kinds and the head options that choose a code path."""
    config = load_ensemble(name)
    paths = {("kind", m.type) for m in config.members}
    if len(config.members) > 1:
        paths |= {("fusion", config.fusion), ("feature_align", config.feature_align),
                  ("time_align", config.time_align), ("scaled", config.member_scale is not None)}
    paths.add(("pooling", config.scene_pooling.split(":")[0]))
    paths.add(("layers", "weighted" if config.layers not in ("last", 0, -1) else "last"))
    return paths


def test_validated_modules_cover_every_kind_and_head_path():
    covered = set().union(*(head_paths(m) for m in VALIDATED + VALIDATED_WITHOUT_MANIFEST))
    for name in available_ensembles():
        missing = head_paths(name) - covered
        assert not missing, f"{name} brings {sorted(missing)}, which no validated module has: add it to VALIDATED"


@pytest.mark.parametrize("module", VALIDATED)
def test_validator_passes_with_fixture_manifest(module, manifest):
    result = run_validator(module, manifest)
    assert result.returncode == 0 and "Looks good!" in result.stdout, result.stdout[-2000:] + result.stderr[-2000:]


@pytest.mark.parametrize("module", VALIDATED_WITHOUT_MANIFEST)
def test_validator_passes_without_manifest_for_real_weight_modules(module):
    result = run_validator(module, None)
    assert result.returncode == 0 and "Looks good!" in result.stdout, result.stdout[-2000:] + result.stderr[-2000:]


def test_validator_without_weights_fails_clearly():
    result = run_validator("hubert", None)
    assert result.returncode != 0
    assert "facebook/hubert-xlarge-ll60k" in result.stderr and "manifest" in result.stderr
