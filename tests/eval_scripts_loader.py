"""The tests' one way to import an ``eval_scripts/NAME.py`` module (eval_scripts is not a package)."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

ROOT = Path(__file__).resolve().parents[1]


def load_script(name: str) -> ModuleType:
    """An ``eval_scripts/NAME.py`` module, freshly executed (its folder's sibling imports resolve as it does)."""
    spec = importlib.util.spec_from_file_location(f"eval_scripts_{name}", ROOT / "eval_scripts" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
