"""HEAR 2021 module for the ``pesto`` ensemble (PESTO alone, real weights from the pesto-pitch wheel); defined in ensembles/pesto.json."""

from hear_gura.api import get_scene_embeddings, get_timestamp_embeddings, loader

load_model = loader("pesto")

__all__ = ["load_model", "get_timestamp_embeddings", "get_scene_embeddings"]
