"""HEAR 2021 module for the ``resemblyzer_basic_pitch_scaled`` ensemble (real weights, members balanced by ``member_scale``); defined in ensembles/resemblyzer_basic_pitch_scaled.json."""

from hear_gura.api import get_scene_embeddings, get_timestamp_embeddings, loader

load_model = loader("resemblyzer_basic_pitch_scaled")

__all__ = ["load_model", "get_timestamp_embeddings", "get_scene_embeddings"]
