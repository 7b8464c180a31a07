"""Tiny random-initialised checkpoints for tests and demos (``hear-gura fixtures DIR``).

No pretrained wav2vec 2.0 / HuBERT weights can be downloaded on an offline
machine, so this writes, for every checkpoint id any ensemble uses, a tiny
model of the same architecture with the real convolutional front end (real
frame counts), saved with transformers' own ``save_pretrained`` in the real
on-disk format (``config.json`` + ``model.safetensors``, the CTC checkpoint
with its head like the real one, plus ``preprocessor_config.json`` so s3prl's
``hf_*_custom`` upstreams load it too). ``DIR/checkpoints.json`` is the
manifest. These weights are RANDOM: every config carries
``hear_gura_random_fixture: true`` and the manifest ``"_random_weights": true``,
and models built from them say so.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path
from typing import Dict, Iterable, List

import torch

from hear_gura.atomic import save_json
from hear_gura.members.hf import FIXTURE_MARKER
from hear_gura.registry import available_ensembles, load_ensemble
from hear_gura.specs import CONV_KERNEL, CONV_STRIDE, CheckpointSpec, checkpoint_spec

MANIFEST_NAME = "checkpoints.json"


def checkpoint_ids_in_use(ensembles: Iterable[str] | None = None) -> List[str]:
    """Checkpoint ids of the ``hf`` members of the given (default: all) ensembles."""
    ids: List[str] = []
    for name in ensembles or available_ensembles():
        for member in load_ensemble(name).members:
            checkpoint = member.params.get("checkpoint")
            if member.type == "hf" and checkpoint not in ids:
                ids.append(str(checkpoint))
    return ids


def _tiny_model(spec: CheckpointSpec, seed: int) -> torch.nn.Module:
    """A randomly initialised tiny model of the spec's architecture and saved class."""
    import transformers

    shape = spec.fixture
    config_class = {"hubert": transformers.HubertConfig, "wav2vec2": transformers.Wav2Vec2Config}[spec.model_type]
    config = config_class(
        hidden_size=shape.hidden_size,
        num_hidden_layers=shape.num_layers,
        num_attention_heads=shape.num_heads,
        intermediate_size=shape.intermediate_size,
        conv_dim=(shape.conv_dim,) * len(CONV_KERNEL),
        conv_kernel=CONV_KERNEL,
        conv_stride=CONV_STRIDE,
        conv_bias=True,
        feat_extract_norm="layer",
        do_stable_layer_norm=True,
        num_conv_pos_embeddings=shape.pos_conv_kernel,
        num_conv_pos_embedding_groups=shape.pos_conv_groups,
        vocab_size=32,
    )
    setattr(config, FIXTURE_MARKER, True)
    torch.manual_seed(seed)
    model = getattr(transformers, spec.saved_head)(config)
    with torch.no_grad():
        # Default init leaves LayerNorms at identity; perturb them so tests can
        # tell states before and after a LayerNorm apart.
        for module in model.modules():
            if isinstance(module, torch.nn.LayerNorm):
                module.weight.add_(0.2 * torch.randn_like(module.weight))
                module.bias.add_(0.1 * torch.randn_like(module.bias))
    return model.eval()


def write_fixtures(directory: "str | os.PathLike[str]", seed: int = 0) -> Path:
    """Write tiny checkpoints for every checkpoint id in use, and the manifest.

    Args:
        directory: output folder (created; existing checkpoints are replaced).
        seed: RNG seed; the same seed writes the same weights.
    Returns:
        the manifest path, ``directory / "checkpoints.json"``.
    """
    import transformers

    out = Path(directory)
    out.mkdir(parents=True, exist_ok=True)
    manifest: Dict[str, object] = {
        "_random_weights": True,
        "_note": "tiny RANDOM-initialised stand-ins written by `hear-gura fixtures`: not pretrained models",
    }
    for index, checkpoint_id in enumerate(checkpoint_ids_in_use()):
        spec = checkpoint_spec(checkpoint_id)
        if spec is None:
            raise ValueError(f"no fixture shape known for {checkpoint_id!r}; add it to hear_gura/specs.py")
        folder = checkpoint_id.replace("/", "--")
        staging = Path(tempfile.mkdtemp(prefix=f".{folder}.", dir=out))
        staging.chmod(0o755)
        _tiny_model(spec, seed + index).save_pretrained(staging, safe_serialization=True)
        transformers.Wav2Vec2FeatureExtractor(
            feature_size=1, sampling_rate=16000, padding_value=0.0, do_normalize=True, return_attention_mask=True
        ).save_pretrained(staging)
        target = out / folder
        if target.exists():
            shutil.rmtree(target)
        staging.rename(target)
        manifest[checkpoint_id] = folder
    path = out / MANIFEST_NAME
    save_json(path, manifest)
    return path
