"""One writer at a time: an exclusive lock on a file, held for a ``with`` block (released on exit or death)."""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Iterator

from hear_gura.errors import HearGuraError


class FolderBusy(HearGuraError):
    """Another process holds the lock: it is writing where this one would."""


@contextlib.contextmanager
def exclusive(lock_file: Path, busy: str) -> Iterator[None]:
    """Hold an exclusive, non-blocking ``flock`` on ``lock_file`` (created) for the block.

    Args:
        lock_file: the lock's file, in the folder it guards.
        busy: the message of :class:`FolderBusy` when another process holds it (what to do instead).
    Raises:
        FolderBusy: another process holds the lock. Not POSIX (no ``fcntl``): nothing is locked.
    """
    try:
        import fcntl
    except ImportError:  # not POSIX: no lock
        yield
        return
    with open(lock_file, "w") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise FolderBusy(busy) from None
        yield
