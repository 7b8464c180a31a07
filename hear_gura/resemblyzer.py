"""HEAR 2021 module for the ``resemblyzer`` ensemble (Resemblyzer's GE2E speaker encoder alone, real weights from its wheel); defined in ensembles/resemblyzer.json."""

from hear_gura.api import get_scene_embeddings, get_timestamp_embeddings, loader

load_model = loader("resemblyzer")

__all__ = ["load_model", "get_timestamp_embeddings", "get_scene_embeddings"]
