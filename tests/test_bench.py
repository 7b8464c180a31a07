"""eval_scripts/bench.py reports no speed-up, writes no figures and exits non-zero when hear_gura's side fails."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
HXL = "facebook/hubert-xlarge-ll60k"
W = "facebook/wav2vec2-large-960h-lv60-self"


def test_bench_fails_without_a_speedup_when_hear_gura_fails(tmp_path):
    """hear_gura refuses a wav2vec2 folder under the HuBERT id (wrong architecture); the naive side loads it."""
    from hear_gura.fixtures import write_fixtures

    manifest = write_fixtures(tmp_path / "checkpoints" / "layers-2")  # bench.py's cache folder for --layers 2
    entries = json.loads(manifest.read_text())
    entries[HXL] = entries[W]
    manifest.write_text(json.dumps(entries))
    figures = tmp_path / "bench.json"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    result = subprocess.run(
        [sys.executable, str(ROOT / "eval_scripts" / "bench.py"), "--layers", "2", "--cases", "a",
         "--ensembles", "hubert", "--checkpoints", str(tmp_path / "checkpoints"), "--json", str(figures)],
        capture_output=True, text=True, env=env, timeout=300,
    )
    assert "naive_s=" in result.stdout, result.stdout + result.stderr  # the naive side did run
    assert result.returncode != 0, result.stdout
    assert "speedup" not in result.stdout
    assert "hear_gura failed" in result.stderr and "hubert.batch16x4s" in result.stderr
    assert not figures.exists()
