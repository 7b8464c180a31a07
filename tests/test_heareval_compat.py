"""heareval and hear-validator run on today's stack through hear_gura.heareval_compat."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import soundfile as sf

from conftest import make_audio

PY = sys.executable


def run_python(code: str) -> str:
    env = dict(os.environ, HF_HUB_OFFLINE="1")
    env.pop("TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD", None)
    result = subprocess.run([PY, "-c", code], capture_output=True, text=True, env=env, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout


def test_tensorflow_stand_in_answers_only_the_torch_checks():
    out = run_python(
        "import hearvalidator\n"
        "import tensorflow as tf, torch\n"
        "from hear_gura.heareval_compat import uses_tensorflow_stand_in\n"
        "print(uses_tensorflow_stand_in(), isinstance(torch.nn.Linear(1, 1), tf.Module), "
        "tf.test.is_gpu_available(cuda_only=False, min_cuda_compute_capability=None) == torch.cuda.is_available())\n"
        "try:\n    tf.random.uniform\nexcept AttributeError as e:\n    print('error:', e)\n"
    )
    first, second = out.strip().splitlines()
    assert first == "True False True"
    assert "TensorFlow is not installed" in second and "pip install tensorflow" in second


def test_tensorflow_stand_in_exists_only_where_heareval_or_hearvalidator_is_imported():
    """Elsewhere `import tensorflow` fails as usual (libraries probing for TensorFlow must see it absent)."""
    out = run_python(
        "import importlib\n"
        "def tf():\n"
        "    try:\n        return importlib.import_module('tensorflow').__version__\n"
        "    except ImportError as e:\n        return type(e).__name__\n"
        "before = tf()\n"
        "import heareval\n"
        "print(before, tf())\n"
    )
    assert out.split() == ["ModuleNotFoundError", "0+hear_gura.stand_in"]


def test_prediction_module_is_patched_on_import_without_a_process_wide_override():
    out = run_python(
        "import os\n"
        "import heareval.predictions.task_predictions as tp\n"
        "print(os.environ.get('TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD'), hasattr(tp.task_predictions_test, '__wrapped__'))\n"
    )
    assert out.split() == ["None", "True"]


def test_only_checkpoints_lightning_wrote_in_the_process_load_fully(tmp_path):
    """heareval reloads its own checkpoints (pickled objects and all); any other file stays weights-only."""
    out = run_python(
        "import argparse, os, pickle, torch\n"
        "import heareval.predictions.task_predictions\n"
        "from lightning_fabric.plugins.io.torch_io import TorchCheckpointIO\n"
        "class Exploit:\n"
        f"    def __reduce__(self):\n        return (os.system, ('touch {tmp_path / 'pwned'}',))\n"
        "def load(path, how):\n"
        "    try:\n        return how(path)\n"
        "    except pickle.UnpicklingError:\n        return 'refused'\n"
        f"own, other = '{tmp_path / 'own.ckpt'}', '{tmp_path / 'other.ckpt'}'\n"
        "TorchCheckpointIO().save_checkpoint({'epoch': 3, 'hparams': argparse.Namespace(lr=0.5)}, own)\n"
        "print(load(own, torch.load)['epoch'], load(own, TorchCheckpointIO().load_checkpoint)['hparams'].lr)\n"
        "torch.save({'state': Exploit()}, other)\n"
        "print(load(other, torch.load), load(other, TorchCheckpointIO().load_checkpoint))\n"
        "torch.save({'state': Exploit()}, own)  # replaced after heareval wrote it\n"
        "print(load(own, torch.load))\n"
    )
    assert out.split() == ["3", "0.5", "refused", "refused", "refused"]
    assert not (tmp_path / "pwned").exists()


def test_startup_hook_imports_no_heavy_module():
    out = run_python("import sys; print(sorted(m for m in ('torch', 'tensorflow', 'heareval') if m in sys.modules))")
    assert out.strip() == "[]"


def write_scene_task(root: Path, clips: int = 6) -> Path:
    task = root / "tones-v1-full"
    labels = {}
    for i in range(clips):
        split = ["train", "valid", "test"][i % 3]
        (task / "16000" / split).mkdir(parents=True, exist_ok=True)
        name = f"clip{i}.wav"
        audio = make_audio(1.0, seed=i)[0].numpy()
        sf.write(task / "16000" / split / name, audio, 16000, subtype="PCM_16")
        labels.setdefault(split, {})[name] = [["low", "high"][i % 2]]
    for split, content in labels.items():
        (task / f"{split}.json").write_text(json.dumps(content))
    (task / "labelvocabulary.csv").write_text("idx,label\n0,high\n1,low\n")
    (task / "task_metadata.json").write_text(json.dumps({
        "task_name": "tones", "version": "v1", "embedding_type": "scene", "prediction_type": "multiclass",
        "split_mode": "trainvaltest", "sample_duration": 1.0, "evaluation": ["top1_acc"], "mode": "full",
        "splits": ["train", "valid", "test"],
    }))
    return task


def test_heareval_embedding_runner_with_model_options(tmp_path, manifest, load):
    """The plain `python3 -m heareval.embeddings.runner` command, with --model-options whose slug is
    long (learned layer weights): heareval's folder is the name the harness expects (fix 4)."""
    from hear_gura.harness.shared_embed import heareval_folder_name
    from hear_gura.heareval_compat import MAX_OPTION_SLUG

    write_scene_task(tmp_path / "tasks")
    states = {n: m.num_states for n, m in load("fusion_cat").members.items() if m.num_states > 1}
    weights = {name: {"weights": [1 / 3 + i / 7 for i in range(count)]} for name, count in states.items()}
    options = {"fusion": "avg", "layers": weights}
    env = dict(os.environ, HF_HUB_OFFLINE="1")
    result = subprocess.run(
        [PY, "-m", "heareval.embeddings.runner", "hear_gura.fusion_cat", "--model", str(manifest),
         "--tasks-dir", str(tmp_path / "tasks"), "--embeddings-dir", str(tmp_path / "emb"),
         "--model-options", json.dumps(options)],
        capture_output=True, text=True, env=env, cwd=tmp_path, timeout=600,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    [out] = list((tmp_path / "emb").glob("hear_gura.fusion_cat*/tones-v1-full"))
    assert out.parent.name == heareval_folder_name("hear_gura.fusion_cat", options)
    assert "avg" in out.parent.name and len(out.parent.name.split("layers=")[1]) == MAX_OPTION_SLUG
    assert (out / ".done.embeddings").exists()
    vectors = sorted((out / "train").glob("*.embedding.npy"))
    assert vectors and all(np.load(v).shape == (32,) for v in vectors)  # fusion avg of 32-wide fixtures


def test_long_option_slugs_are_cut_and_hashed_short_ones_unchanged():
    """49 learned weights (HuBERT-xlarge) make a folder name of ~1,000 characters without fix 4."""
    from slugify import slugify

    from hear_gura.harness.shared_embed import heareval_folder_name
    from hear_gura.heareval_compat import MAX_OPTION_SLUG, short_slug

    def mix(seed):
        return {"layers": {"hubert": {"weights": [(seed + i) / 1000 + 1 / 3 for i in range(49)]}}}

    slugify = getattr(slugify, "__wrapped__", slugify)  # heareval may be imported here already (fix 4 on)
    unpatched = "hear_gura.hubert-layers=" + slugify(str(mix(0)["layers"]))
    assert len(unpatched) > 900
    names = {heareval_folder_name("hear_gura.hubert", mix(seed)) for seed in range(5)}
    assert len(names) == 5 and all(len(n) <= 255 for n in names)
    first = heareval_folder_name("hear_gura.hubert", mix(0))
    assert first.startswith(unpatched[: len("hear_gura.hubert-layers=") + 40])  # the slug's start is kept
    assert heareval_folder_name("hear_gura.fusion_cat", {"fusion": "avg", "layers": "last"}) == (
        "hear_gura.fusion_cat-fusion=avg-layers=last")
    assert short_slug("a" * MAX_OPTION_SLUG) == "a" * MAX_OPTION_SLUG
    long = "a" * (MAX_OPTION_SLUG + 1)
    assert len(short_slug(long)) == MAX_OPTION_SLUG and short_slug(short_slug(long)) == short_slug(long)


def test_compat_module_run_as_a_script_runs_the_prediction_runner():
    """`python -m hear_gura.heareval_compat predictions ...` imports heareval's prediction module once, patched."""
    env = dict(os.environ, HF_HUB_OFFLINE="1")
    result = subprocess.run([PY, "-m", "hear_gura.heareval_compat", "predictions", "--help"],
                            capture_output=True, text=True, env=env, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "--grid-points" in result.stdout and "RecursionError" not in result.stderr
