"""No checkpoint runs code: pickles, eval()'d config strings and a checkpoint's own Python are refused."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from hear_gura.errors import CheckpointError, ConfigError
from hear_gura.manifest import Manifest
from hear_gura.members.base import MemberSpec, build_member

HXL = "facebook/hubert-xlarge-ll60k"  # fixture: HubertModel, 4 layers
W = "facebook/wav2vec2-large-960h-lv60-self"  # fixture: Wav2Vec2ForCTC, 2 layers


def fixture_dir(manifest: Path, checkpoint_id: str) -> Path:
    return manifest.parent / json.loads(manifest.read_text())[checkpoint_id]


class _Exploit:
    """Unpickling it runs ``touch MARKER``."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def write_evil_checkpoint(upstream: str, path: Path, marker: Path) -> None:
    """A checkpoint whose loading by ``upstream`` runs ``touch MARKER`` (on the code before this fix)."""
    if upstream == "wav2vec2_local":
        # Plain dicts and strings: a weights-only load accepts it, and s3prl then
        # eval()s conv_feature_layers.
        torch.save({
            "task_cfg": {"normalize": False},
            "model_cfg": {"conv_feature_layers": f"__import__('os').system('touch {marker}') or [(8, 10, 5)]"},
            "model_weight": {},
        }, path)
    else:
        torch.save({"Config": _Exploit(marker), "config": _Exploit(marker)}, path)


@pytest.mark.parametrize("upstream", ["distiller_local", "mockingjay_local", "wav2vec2_local", "apc_local"])
def test_s3prl_loaders_that_unpickle_or_eval_a_checkpoint_are_refused(upstream, tmp_path, monkeypatch):
    """Named through a manifest; even with torch's weights-only default switched off process-wide."""
    monkeypatch.setenv("TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD", "1")
    marker = tmp_path / "pwned"
    write_evil_checkpoint(upstream, tmp_path / "evil.ckpt", marker)
    (tmp_path / "m.json").write_text(json.dumps({"my-upstream": "evil.ckpt"}))
    spec = MemberSpec("x", "s3prl", {"upstream": upstream, "checkpoint": "my-upstream"})
    with pytest.raises(CheckpointError, match=f"{upstream}' is refused, as hear_gura never runs checkpoint code"):
        build_member(spec, Manifest.load(tmp_path / "m.json"), False)
    assert not marker.exists()


def test_s3prl_upstreams_that_download_pickles_are_refused_without_a_checkpoint():
    with pytest.raises(CheckpointError, match=r"'distilhubert' is refused.*weights_only=False.*Safe s3prl upstreams"):
        build_member(MemberSpec("x", "s3prl", {"upstream": "distilhubert"}), Manifest(), False)


def test_weight_free_s3prl_upstream_takes_no_checkpoint(manifest):
    with pytest.raises(ConfigError, match="'fbank_no_cmvn' has no weights and takes no checkpoint"):
        build_member(MemberSpec("x", "s3prl", {"upstream": "fbank_no_cmvn", "checkpoint": HXL}),
                     Manifest.load(manifest), False)


def write_code_shipping_checkpoint(folder: Path, marker: Path, model_type: str = "evil") -> None:
    """A folder whose config.json names its own Python (``auto_map``); importing that code touches MARKER."""
    folder.mkdir(exist_ok=True)
    config = json.loads((folder / "config.json").read_text()) if (folder / "config.json").exists() else {}
    config.update(model_type=model_type, auto_map={"AutoConfig": "configuration_evil.EvilConfig",
                                                   "AutoModel": "modeling_evil.EvilModel"})
    (folder / "config.json").write_text(json.dumps(config))
    code = (f"import pathlib\npathlib.Path({str(marker)!r}).touch()\n"
            "from transformers import PretrainedConfig\n"
            f"class EvilConfig(PretrainedConfig):\n    model_type = {model_type!r}\n")
    for name in ("configuration_evil.py", "modeling_evil.py"):
        (folder / name).write_text(code)


def test_checkpoint_shipping_its_own_code_is_refused_without_a_prompt(tmp_path):
    """transformers would ask on the terminal whether to run it; answering yes must not run it either."""
    marker = tmp_path / "pwned"
    write_code_shipping_checkpoint(tmp_path / "evil", marker)
    env = dict(os.environ, HF_HUB_OFFLINE="1", HF_MODULES_CACHE=str(tmp_path / "modules"))
    code = (
        "from hear_gura.errors import CheckpointError\n"
        "from hear_gura.manifest import Manifest\n"
        "from hear_gura.members.base import MemberSpec, build_member\n"
        "try:\n"
        f"    build_member(MemberSpec('x', 'hf', {{'checkpoint': {str(tmp_path / 'evil')!r}}}), Manifest(), False)\n"
        "except CheckpointError as err:\n"
        "    print('CheckpointError:', err)\n"
    )
    result = subprocess.run([sys.executable, "-c", code], input="y\n" * 5, capture_output=True, text=True,
                            env=env, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "Do you wish to run the custom code" not in result.stdout + result.stderr
    assert not marker.exists()
    assert "CheckpointError:" in result.stdout
    assert "ships its own Python code" in result.stdout and "hear_gura never imports or runs code" in result.stdout
    assert "configuration_evil.EvilConfig" in result.stdout and "'evil'" in result.stdout


def test_known_architecture_with_its_own_code_is_refused(tmp_path, manifest):
    """A "hubert" config naming its own classes: the stock class may not be the model its authors meant."""
    folder = tmp_path / "custom"
    shutil.copytree(fixture_dir(manifest, HXL), folder)
    write_code_shipping_checkpoint(folder, tmp_path / "pwned", model_type="hubert")
    with pytest.raises(CheckpointError, match=r"is a 'hubert' checkpoint that ships its own Python code"):
        build_member(MemberSpec("x", "hf", {"checkpoint": str(folder)}), Manifest(), False)
    assert not (tmp_path / "pwned").exists()


@pytest.mark.parametrize("checkpoint_id, declared, held", [(HXL, 2, 4), (W, 1, 2)])
def test_config_declaring_fewer_layers_than_the_weights_is_refused(checkpoint_id, declared, held, tmp_path, manifest):
    """Instead of a silently truncated model (W's fixture is a CTC checkpoint: its lm_head is allowed)."""
    folder = tmp_path / "truncated"
    shutil.copytree(fixture_dir(manifest, checkpoint_id), folder)
    config = json.loads((folder / "config.json").read_text())
    config["num_hidden_layers"] = declared
    (folder / "config.json").write_text(json.dumps(config))
    with pytest.raises(CheckpointError, match=(
        f"the weights hold layers the config does not declare \\(config.json declares num_hidden_layers = "
        f"{declared}, the weights hold {held} layers\\)"
    )):
        build_member(MemberSpec("x", "hf", {"checkpoint": str(folder)}), Manifest(), False)
