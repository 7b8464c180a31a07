"""Checkpoint manifests: JSON files mapping checkpoint ids to local paths.

A manifest looks like::

    {
      "facebook/hubert-xlarge-ll60k": "/models/hubert-xlarge-ll60k",
      "facebook/wav2vec2-large-960h-lv60-self": "w2v2-lv60-self"
    }

Relative paths are relative to the manifest's folder. Keys starting with
``_`` are metadata (``hear-gura fixtures`` writes ``"_random_weights": true``).
``load_model(model_file_path)`` takes a manifest; without one, the environment
variable ``HEAR_GURA_MANIFEST`` may name a default. Ids missing from the
manifest fall back to the libraries' own caches and downloads.
"""

from __future__ import annotations

import errno
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, Optional

from hear_gura.errors import CheckpointError

MANIFEST_ENV = "HEAR_GURA_MANIFEST"


@dataclass(frozen=True)
class Manifest:
    """Checkpoint id -> local path, plus where the manifest came from.

    Attributes:
        entries: checkpoint id -> absolute path.
        source: the manifest file, or None for the empty manifest.
        random_weights: True when ``hear-gura fixtures`` wrote it.
        chosen_by: ``argument`` (``model_file_path`` / ``--model``), ``$HEAR_GURA_MANIFEST``,
            or None for the empty manifest.
    """

    entries: Dict[str, Path] = field(default_factory=dict)
    source: Optional[Path] = None
    random_weights: bool = False
    chosen_by: Optional[str] = None

    @classmethod
    def load(cls, path: "str | os.PathLike[str] | None") -> "Manifest":
        """Read a manifest; ``None`` or ``""`` uses ``$HEAR_GURA_MANIFEST`` or none.

        Raises:
            CheckpointError: the file is missing, unreadable, not JSON, or not an
                object of string paths.
        """
        chosen_by = "argument"
        if not path:
            path = os.environ.get(MANIFEST_ENV) or None
            if path is None:
                return cls()
            chosen_by = f"${MANIFEST_ENV}"
        file = Path(path).expanduser()
        hint = (
            "a manifest is a JSON object mapping checkpoint ids to local paths, e.g. "
            '{"facebook/hubert-xlarge-ll60k": "/models/hubert-xlarge-ll60k"}; '
            "`hear-gura fixtures DIR` writes one (DIR/checkpoints.json) for tiny random test checkpoints"
        )
        if file.is_dir():
            raise CheckpointError(f"manifest {file} is a directory; expected a JSON file ({hint})")
        try:
            text = file.read_text(encoding="utf-8")
        except FileNotFoundError:
            raise CheckpointError(f"manifest {file} does not exist ({hint})") from None
        except OSError as err:
            if err.errno == errno.ELOOP:
                raise CheckpointError(
                    f"manifest {file} is a symbolic link loop ({err.strerror}); point it at a JSON file ({hint})"
                ) from None
            raise CheckpointError(f"manifest {file} cannot be read: {err}") from None
        except UnicodeDecodeError as err:
            raise CheckpointError(f"manifest {file} cannot be read: {err}") from None
        try:
            data = json.loads(text)
        except json.JSONDecodeError as err:
            raise CheckpointError(f"manifest {file} is not valid JSON ({err}); {hint}") from None
        if not isinstance(data, dict):
            raise CheckpointError(f"manifest {file} holds a {type(data).__name__}; {hint}")
        entries: Dict[str, Path] = {}
        for key, value in data.items():
            if key.startswith("_"):
                continue
            if not isinstance(value, str) or not value:
                raise CheckpointError(
                    f"manifest {file}: the entry for {key!r} must be a path string, got {value!r}"
                )
            try:
                target = Path(value).expanduser()
                entries[key] = (target if target.is_absolute() else file.parent / target).resolve()
            except (RuntimeError, OSError) as err:  # RuntimeError: a symlink loop (Python < 3.13), or ~user unknown
                loop = getattr(err, "errno", None) == errno.ELOOP or "loop" in str(err).lower()
                what = "is a symbolic link loop" if loop else "cannot be resolved"
                raise CheckpointError(
                    f"manifest {file}: the entry for {key!r} ({value!r}) {what} ({err}); "
                    "point it at the checkpoint folder or remove the entry"
                ) from None
        return cls(entries, file.resolve(), bool(data.get("_random_weights", False)), chosen_by)

    def resolve(self, checkpoint_id: str) -> Optional[Path]:
        """The local path of ``checkpoint_id``, or None when the manifest lacks it.

        Raises:
            CheckpointError: the manifest names a path that does not exist.
        """
        path = self.entries.get(checkpoint_id)
        if path is not None and not path.exists():
            raise CheckpointError(
                f"manifest {self.source} maps {checkpoint_id!r} to {path}, which does not exist; "
                "fix the path or remove the entry"
            )
        return path

    def unloadable_entry(self, checkpoint_id: str, who: str, reason: str) -> str:
        """The message for an entry that exists but holds no loadable checkpoint (what is wrong, how to fix it).

        Args:
            checkpoint_id: a key of :attr:`entries`.
            who: what tried to load it, e.g. ``"member 'hubert'"``.
            reason: the loader's one-line error.
        """
        path = self.entries[checkpoint_id]
        folder = self.source.parent if self.source else None
        outside = folder is not None and folder not in path.parents and path != folder
        where = f" (outside the manifest's folder {folder}: relative entries are relative to it)" if outside else ""
        return (
            f"{who}: manifest {self.source} maps {checkpoint_id!r} to {path}{where}, which is not a checkpoint "
            f"folder: {reason}. Fix the entry: it must name a folder holding config.json and model.safetensors "
            "(or pytorch_model.bin)"
        )

    def describe(self) -> str:
        """Where checkpoints come from, for error messages."""
        return f"manifest {self.source}" if self.source else f"no manifest (neither model_file_path nor ${MANIFEST_ENV})"
