"""HEAR 2021 module for the ``resemblyzer_basic_pitch`` ensemble (real weights); defined in ensembles/resemblyzer_basic_pitch.json."""

from hear_gura.api import get_scene_embeddings, get_timestamp_embeddings, loader

load_model = loader("resemblyzer_basic_pitch")

__all__ = ["load_model", "get_timestamp_embeddings", "get_scene_embeddings"]
