"""Console progress for heareval's prediction runner, read from the lines it writes anyway.

heareval's probe on an event task can train for an hour or more on a CPU, and its
own output (Lightning's per-batch bars) goes to the cell's log only. This reads
the markers heareval and :mod:`hear_gura.harness.probe_run` write
(``hear_gura probe run: seed S``, heareval's ``Grid point i of n`` and
``Training split j of m`` log lines, Lightning's ``Epoch E:`` bars) and turns
them into a few console lines: one whenever a new training starts, and at most
one per :data:`EPOCH_EVERY_S` seconds while a training runs.

Nothing here changes what heareval runs or what it writes to the log.
"""

from __future__ import annotations

import re
import time
from typing import Callable, Optional

#: Seconds between two "still training" lines of one training.
EPOCH_EVERY_S = 60.0

_SEED = re.compile(r"hear_gura probe run: seed (\d+)")
_GRID = re.compile(r"Grid point (\d+) of (\d+)")
_SPLIT = re.compile(r"Training split (\d+) of (\d+)")
_EPOCH = re.compile(r"(?:^|\s|\x1b\[A)Epoch (\d+):")


def duration_text(seconds: float) -> str:
    """How the harness's console writes a duration: ``"42 s"``, ``"12 min 05 s"`` or ``"1 h 03 min"``."""
    minutes, secs = divmod(int(round(seconds)), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min" if hours else f"{minutes} min {secs:02d} s" if minutes else f"{secs} s"


class ProbeProgress:
    """Feed it heareval's output line by line; it returns a console line when there is news, else None.

    Args:
        clock: seconds, monotonic (``time.perf_counter``; a test passes its own).
        epoch_every_s: at most one epoch line per this many seconds within a training.
    """

    def __init__(self, clock: Callable[[], float] = time.perf_counter, epoch_every_s: float = EPOCH_EVERY_S) -> None:
        self.clock = clock
        self.epoch_every_s = epoch_every_s
        self.start = clock()
        self.seed: Optional[str] = None
        self.training: Optional[str] = None
        self.said_at = self.start

    def _line(self, text: str) -> str:
        self.said_at = self.clock()
        seed = f" (seed {self.seed})" if self.seed is not None else ""
        return f"heareval probe{seed}: {text}, {duration_text(self.said_at - self.start)} into the probe step"

    def feed(self, line: str) -> Optional[str]:
        """The console line this output line calls for, or None."""
        found = _SEED.search(line)
        if found:
            self.seed, self.training = found.group(1), None
            return None
        found = _GRID.search(line)
        if found:
            self.training = f"grid point {found.group(1)} of {found.group(2)}"
            return self._line(f"training {self.training}")
        found = _SPLIT.search(line)
        if found:
            self.training = f"test split {found.group(1)} of {found.group(2)}"
            return self._line(f"training for {self.training} with the best grid point")
        found = _EPOCH.search(line)
        if found and self.training is not None and self.clock() - self.said_at >= self.epoch_every_s:
            return self._line(f"{self.training}, epoch {found.group(1)}")
        return None
