"""Atomic file writes: a temporary file beside the target, then a rename.

Readers never see a partial file, and an interrupted write leaves no file a
rerun would trust. Standard library only (the evaluation harness imports it).
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any, BinaryIO, Callable


def _default_file_mode() -> int:
    """The permissions ``open(path, "w")`` would give a new file: 0o666 less the process umask."""
    mask = os.umask(0)
    os.umask(mask)
    return 0o666 & ~mask


def atomic_write(path: "str | os.PathLike[str]", write: Callable[[BinaryIO], Any]) -> None:
    """Call ``write(handle)`` on a temporary file in ``path``'s folder, then rename it to ``path``.

    The file gets the permissions a plain ``open`` would give it (``mkstemp``'s
    temporary files are owner-only, 0o600).
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            write(handle)
        os.chmod(tmp, _default_file_mode())
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def save_json(path: "str | os.PathLike[str]", data: Any) -> None:
    """Write ``data`` as indented JSON, atomically."""
    text = (json.dumps(data, indent=2, default=str) + "\n").encode("utf-8")
    atomic_write(path, lambda handle: handle.write(text))
