"""HEAR 2021 module for the ``basic_pitch`` ensemble (Basic Pitch alone, real weights from the basic-pitch wheel's nmp.onnx); defined in ensembles/basic_pitch.json."""

from hear_gura.api import get_scene_embeddings, get_timestamp_embeddings, loader

load_model = loader("basic_pitch")

__all__ = ["load_model", "get_timestamp_embeddings", "get_scene_embeddings"]
