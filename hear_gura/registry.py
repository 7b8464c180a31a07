"""The registry of named ensembles: one JSON file per ensemble in ``ensembles/``.

In a checkout the files live in the top-level ``ensembles/`` folder; an
installed package carries them as ``hear_gura/ensembles/`` (setup.py maps one
onto the other). ``$HEAR_GURA_ENSEMBLES`` may name another folder.
"""

from __future__ import annotations

import hashlib
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


def _read_ensemble_file(name: str) -> dict:
    """The JSON object an ensemble file declares (raises ConfigError: unknown name, invalid JSON)."""
    path = ensembles_dir() / f"{name}.json"
    if not path.is_file():
        raise ConfigError(f"unknown ensemble {name!r}; valid: {', '.join(available_ensembles())}")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        raise ConfigError(f"ensemble file {path} is not valid JSON: {err}") from None


@lru_cache(maxsize=None)
def load_ensemble(name: str) -> EnsembleConfig:
    """The configuration an ensemble file declares.

    Raises:
        ConfigError: unknown name (the message lists the known ones) or an
            invalid file.
    """
    return EnsembleConfig.from_dict(name, _read_ensemble_file(name))


def ensemble_fingerprint(name: str) -> str:
    """A short hash of what an ensemble file declares (its ``description`` excluded).

    The evaluation harness records it with every cell, so a cell computed under
    an older definition of the ensemble is redone rather than trusted. The file
    is read afresh (not cached): an edit shows at once.
    """
    load_ensemble(name)  # validates the declaration (cached)
    data = _read_ensemble_file(name)
    data.pop("description", None)
    canonical = json.dumps(data, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()[:16]
