"""Generated scene rows for the probe tests (test_ridge_probe, test_logistic_probe): 4 classes, a class shifting a
few values of its own, an offset and unequal feature scales, as raw member features have; and a 4-fold task."""

from __future__ import annotations

import numpy as np

from hear_gura.analysis.fast_probe import SplitArrays, TaskSpec

CLASSES = ["a", "b", "c", "d"]
KFOLD = TaskSpec.from_metadata({"task_name": "t", "embedding_type": "scene", "prediction_type": "multiclass",
                                "evaluation": ["top1_acc"], "split_mode": "new_split_kfold",
                                "splits": ["fold00", "fold01", "fold02", "fold03"]}, CLASSES)


def rows(rng: np.random.Generator, n: int, width: int, shift: float = 1.0) -> SplitArrays:
    """``n`` rows, classes in turn; class c adds ``shift`` to values ``3c .. 3c + 2``; feature scales 0.01 .. 10."""
    y = np.arange(n) % 4
    x = rng.standard_normal((n, width))
    for c in range(4):
        x[y == c, 3 * c:3 * c + 3] += shift
    x = (x * np.geomspace(0.01, 10.0, width) + 5.0).astype(np.float32)
    return SplitArrays(x, np.eye(4, dtype=np.float32)[y])
