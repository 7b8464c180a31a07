"""Every state of a member on every clip of a task, from ONE member pass, kept on disk.

:func:`collect_states` reads a HEAR task folder split by split, runs each
analysed member once per batch through the one member pass
(:func:`hear_gura.member_pass.run_members`, one head per state: one forward
pass through the network gives them all, and a feature cache serves them when
given), and appends each state's rows to its own raw float32 file:

- scene tasks: one row per clip, the state's frames at the ensemble's scene
  hop pooled as the ensemble pools them (``scene_pooling``, mean by default);
  the weighted sum of pooled states is the pooled weighted sum, so a layer mix
  scored here is the mix the HEAR module's scene embedding gives;
- event tasks: one row per frame at the ensemble's timestamp hop (every frame,
  as heareval's prediction runner sees them), with the frame's centre (ms) and
  the labels of the events covering it (heareval's rule,
  :func:`~hear_gura.analysis.fast_probe.frame_labels`).

Cost. Time: one member pass per task (what one ``evaluate`` cell's embedding
step costs), however many states. Memory: a batch holds every state at once,
``batch x frames x width x states x 4`` bytes (HuBERT-xlarge, 49 states, one
120 s clip: 6,000 x 1,280 x 49 x 4 B = 1.5 GB). Disk: ``rows x width x states
x 4`` bytes per member; for event tasks rows are frames, so a task of ``H``
hours at a 20 ms hop is ``180,000 H`` rows (HuBERT-xlarge: 45 GB per hour of
audio; scene tasks: one row per clip, 250 kB per clip). The folder is removed
once the task's probes are done, unless asked to keep it.

Layout: ``<folder>/<member>/<split>.state<i>.f32`` (raw float32, C order),
``<folder>/<member>/<split>.rows.json`` (row count and width per state; files,
and for event tasks timestamps, per row), ``<folder>/record.json`` (identity,
written last: a folder without it is incomplete and is recomputed).
"""

from __future__ import annotations

import json
import shutil
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Sequence, TextIO, Tuple

import numpy as np
import torch

from hear_gura.analysis.fast_probe import SplitArrays, TaskSpec, frame_labels, multi_hot
from hear_gura.atomic import save_json
from hear_gura.errors import HearGuraError

RECORD = "record.json"


class StackedStates:
    """``(rows, states, width)`` over per-state memmaps, read on demand (a numpy-like view).

    ``x[index]`` (an int array) gives ``(len(index), states, width)`` float32; ``np.asarray(x)``
    reads everything. Rows of several of them concatenate with :meth:`concat_rows`.
    """

    def __init__(self, parts: Sequence[Sequence[np.ndarray]]) -> None:
        self.parts = [list(p) for p in parts]  # parts[k][state]: (rows_k, width)
        widths = {a.shape[1] for p in self.parts for a in p}
        if len(widths) != 1:
            raise HearGuraError(f"states of different widths {sorted(widths)} cannot be stacked (weighted sum)")
        self.offsets = np.cumsum([0] + [len(p[0]) for p in self.parts])
        self.shape = (int(self.offsets[-1]), len(self.parts[0]), widths.pop())
        self.size = int(np.prod(self.shape))

    def __len__(self) -> int:
        return self.shape[0]

    def __getitem__(self, index: Any) -> np.ndarray:
        rows = np.arange(len(self))[index]
        out = np.empty((len(rows), self.shape[1], self.shape[2]), dtype=np.float32)
        part = np.searchsorted(self.offsets, rows, side="right") - 1
        for k in np.unique(part):
            mask = part == k
            local = rows[mask] - self.offsets[k]
            for s, array in enumerate(self.parts[k]):
                out[mask, s] = array[local]
        return out

    def __array__(self, dtype: Any = None, copy: Any = None) -> np.ndarray:
        out = self[slice(None)]
        return out if dtype is None else out.astype(dtype)

    @staticmethod
    def concat_rows(items: Sequence["StackedStates"]) -> "StackedStates":
        return StackedStates([p for item in items for p in item.parts])


@dataclass(frozen=True)
class StateStore:
    """One member's states on one task, on disk (see the module docstring)."""

    folder: Path
    member: str
    num_states: int

    def _rows(self, split: str) -> Dict[str, Any]:
        return json.loads((self.folder / f"{split}.rows.json").read_text())

    def widths(self, split: str) -> List[int]:
        return [int(w) for _, w in self._rows(split)["shapes"]]

    def state(self, split: str, index: int) -> np.ndarray:
        """State ``index`` of every row of ``split``: a read-only ``(rows, width)`` float32 memmap."""
        rows, width = self._rows(split)["shapes"][index]
        if rows == 0:
            return np.zeros((0, width), dtype=np.float32)
        return np.memmap(self.folder / f"{split}.state{index}.f32", dtype=np.float32, mode="r", shape=(rows, width))

    def stacked(self, split: str) -> StackedStates:
        """Every state of ``split``: ``(rows, states, width)`` (states of one width only)."""
        return StackedStates([[self.state(split, i) for i in range(self.num_states)]])

    def mean(self, split: str) -> np.ndarray:
        """The equal-weight mean of every state (``layers="mean"``: sum, then divide by the count), in memory."""
        total = np.array(self.state(split, 0), dtype=np.float32)
        for i in range(1, self.num_states):
            total += self.state(split, i)
        return total / np.float32(self.num_states)

    def split(self, task: TaskSpec, split: str, x: Any) -> SplitArrays:
        """``split``'s rows with embeddings ``x`` (one state, a mean, or :meth:`stacked`) and their targets."""
        info = self._rows(split)
        labels = info["labels"]
        y = multi_hot(labels, task.label_to_idx)
        if task.embedding_type == "scene":
            return SplitArrays(x, y)
        return SplitArrays(x, y, info["files"], np.asarray(info["timestamps"], dtype=np.float64), info["events"])

    def splits(self, task: TaskSpec, x_of: Any) -> Dict[str, SplitArrays]:
        """Every split, with ``x_of(split)`` as embeddings."""
        return {s: self.split(task, s, x_of(s)) for s in task.split_names}


def features_complete(folder: Path, identity: Mapping[str, Any]) -> bool:
    """Whether ``folder`` holds finished features recorded with ``identity``."""
    from hear_gura.identity import same_identity

    try:
        record = json.loads((folder / RECORD).read_text())
    except (OSError, ValueError):
        return False
    return isinstance(record, dict) and same_identity(record.get("identity"), identity)


def stores(folder: Path, num_states: Mapping[str, int]) -> Dict[str, StateStore]:
    """The stores of finished features (member name -> number of states)."""
    return {m: StateStore(folder / m, m, n) for m, n in num_states.items()}


def state_heads(config: Any, members: Mapping[str, Any]) -> Dict[Tuple[str, int], Any]:
    """One :class:`~hear_gura.model.Head` per (member, state): that member alone, that one state, on its own frames.

    Args:
        config: the resolved :class:`~hear_gura.ensemble.EnsembleConfig` (hops, precision).
        members: name -> built member (or its description: only ``num_states`` and ``width`` are read).
    """
    from hear_gura.model import Head

    heads = {}
    for name, member in members.items():
        alone = config.with_options(members=[name], grid=name, feature_align="none", layers="last")
        for state in range(member.num_states):
            choice = state if member.num_states > 1 else "last"
            heads[(name, state)] = Head.build(alone.with_options(layers={name: choice}), {name: member})
    return heads


def collect_states(
    task_path: Path, task: TaskSpec, config: Any, members: Mapping[str, torch.nn.Module], folder: Path,
    identity: Mapping[str, Any], batch_size: int = 8, device: str = "cpu", stream: Optional[TextIO] = None,
    cache: Optional[Any] = None,
) -> Dict[str, StateStore]:
    """One pass of ``members`` over every clip of a task, every state of each kept in ``folder``.

    The pass is :func:`hear_gura.member_pass.run_members` with one head per
    (member, state) (:func:`state_heads`): each member runs once per batch
    for all its states, and with ``cache`` its features come from (or go to) a
    feature cache, as in ``hear-gura evaluate --feature-cache``.

    Args:
        task_path: the HEAR task folder (``<split>.json``, ``16000/<split>/*.wav``).
        task: its :class:`TaskSpec`.
        config: the resolved :class:`~hear_gura.ensemble.EnsembleConfig` (hops, pooling).
        members: name -> built member (:func:`hear_gura.model.build_config_member`), on ``device``.
        folder: where the states go (replaced).
        identity: recorded in ``record.json``, written last.
        batch_size: clips per batch (zero-padded; every member supports lengths or batches equal lengths).
        stream: progress lines (default stderr).
        cache: a :class:`~hear_gura.feature_cache.FeatureCache`, or None.
    Returns:
        member name -> :class:`StateStore`.
    """
    from hear_gura.audio_io import read_wav
    from hear_gura.member_pass import HeadRequest, run_members
    from hear_gura.model import pad_clips
    from hear_gura.pooling import parse_pooling, pool

    stream = stream or sys.stderr
    if folder.exists():
        shutil.rmtree(folder)
    where = torch.device(device)
    if where.type == "cuda" and where.index is None:  # the device the members' weights report
        where = torch.device("cuda", torch.cuda.current_device())
    scene = task.embedding_type == "scene"
    groups = parse_pooling(config.scene_pooling)
    min_samples = max(m.receptive_field for m in members.values())
    out = {name: StateStore(folder / name, name, m.num_states) for name, m in members.items()}
    heads = state_heads(config, members)
    requests = [HeadRequest(head, {name: members[name]}, scene) for (name, _), head in heads.items()]
    start = said = time.perf_counter()
    for split in task.split_names:
        labelled = json.loads((task_path / f"{split}.json").read_text(encoding="utf-8"))
        files = list(labelled)
        info = {name: {"shapes": [[0, 0] for _ in range(m.num_states)], "files": [], "labels": [],
                       "timestamps": [], "events": labelled if not scene else None} for name, m in members.items()}
        handles: Dict[Tuple[str, int], Any] = {}
        for name in members:
            (folder / name).mkdir(parents=True, exist_ok=True)
        try:
            for first in range(0, len(files), batch_size):
                names = files[first:first + batch_size]
                clips = [read_wav(task_path / "16000" / split / f).to(where) for f in names]
                audio, lengths = pad_clips(clips, min_samples, where)
                with torch.no_grad():
                    outputs = run_members(requests, audio, lengths, cache=cache)
                for (name, state), per_clip in zip(heads, outputs):
                    rows = [pool(frames[None].float(), groups)[0] if scene else frames.float() for frames, _ in per_clip]
                    block = torch.cat([r[None] for r in rows] if scene else rows).cpu().numpy()
                    if (name, state) not in handles:
                        handles[(name, state)] = open(folder / name / f"{split}.state{state}.f32", "wb")
                    handles[(name, state)].write(np.ascontiguousarray(block, dtype=np.float32).tobytes())
                    shape = info[name]["shapes"][state]
                    shape[0], shape[1] = shape[0] + block.shape[0], block.shape[1]
                    if state:
                        continue
                    record = info[name]
                    for file, (_, grid) in zip(names, per_clip):
                        if scene:
                            record["files"].append(file)
                            record["labels"].append([str(x) for x in labelled[file]])
                        else:
                            stamps = grid.centres_ms().double().tolist()
                            record["files"] += [file] * len(stamps)
                            record["timestamps"] += stamps
                            record["labels"] += frame_labels(labelled[file], stamps)
                del outputs
                done = min(first + batch_size, len(files))
                if done < len(files) and time.perf_counter() - said < 10:
                    continue
                said = time.perf_counter()
                print(f"    {task.name} [{split}] {done}/{len(files)} clips through {', '.join(members)} "
                      f"({time.perf_counter() - start:.1f} s)", file=stream, flush=True)
        finally:
            for handle in handles.values():
                handle.close()
        for name in members:
            save_json(folder / name / f"{split}.rows.json", info[name])
    save_json(folder / RECORD, {"identity": dict(identity), "seconds": round(time.perf_counter() - start, 2),
                                "members": {n: m.num_states for n, m in members.items()}})
    return out
