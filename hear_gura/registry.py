"""The registry of named ensembles: one JSON file per ensemble in ``ensembles/``.

In a checkout the files live in the top-level ``ensembles/`` folder; an
installed package carries them as ``hear_gura/ensembles/`` (setup.py maps one
onto the other). ``$HEAR_GURA_ENSEMBLES`` may name another folder.
"""

from __future__ import annotations

import json
import os
from functools import lru_cache
from pathlib import Path
from typing import List

from hear_gura.ensemble import EnsembleConfig
from hear_gura.errors import ConfigError

ENSEMBLES_ENV = "HEAR_GURA_ENSEMBLES"


def ensembles_dir() -> Path:
    """The folder holding the ensemble files."""
    override = os.environ.get(ENSEMBLES_ENV)
    if override:
        return Path(override)
    here = Path(__file__).resolve().parent
    for candidate in (here / "ensembles", here.parent / "ensembles"):
        if candidate.is_dir():
            return candidate
    raise ConfigError(f"no ensembles folder found beside {here}; reinstall hear_gura")


def available_ensembles() -> List[str]:
    """Names of all declared ensembles, sorted."""
    return sorted(p.stem for p in ensembles_dir().glob("*.json"))


def _read_ensemble_text(name: str) -> str:
    """The text of an ensemble file (raises ConfigError: unknown name)."""
    path = ensembles_dir() / f"{name}.json"
    if not path.is_file():
        raise ConfigError(f"unknown ensemble {name!r}; valid: {', '.join(available_ensembles())}")
    return path.read_text(encoding="utf-8")


@lru_cache(maxsize=256)
def _parse_ensemble(name: str, text: str) -> EnsembleConfig:
    try:
        data = json.loads(text)
    except json.JSONDecodeError as err:
        raise ConfigError(f"ensemble file {ensembles_dir() / (name + '.json')} is not valid JSON: {err}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"ensemble file {ensembles_dir() / (name + '.json')} must hold a JSON object")
    return EnsembleConfig.from_dict(name, data)


def load_ensemble(name: str) -> EnsembleConfig:
    """The configuration an ensemble file declares, as the file reads now (parsed once per content).

    Raises:
        ConfigError: unknown name (the message lists the known ones) or an
            invalid file.
    """
    return _parse_ensemble(name, _read_ensemble_text(name))
