"""One member pass: each distinct member computation runs once per batch, for every head that needs it.

The work of an embedding splits in two: *members* turn audio into frame
features (the costly part), and *heads* (:class:`hear_gura.model.Head`: layer
choice, feature and time alignment, fusion) turn member features into
embeddings (cheap). :func:`run_members` takes any number of
:class:`HeadRequest` s, one per output wanted (an ensemble's timestamp
embeddings, its scene embeddings, every variant of a study...), and computes
each distinct ``(member network, hop, layer selection)`` once:

- an :class:`~hear_gura.model.EnsembleModel` is a member pass with one head
  (two requests for ``embed_clips``: timestamp and scene outputs from one pass,
  where only CREPE's hop differs);
- a :class:`~hear_gura.shared.StudyPass` is a member pass with many heads over
  the distinct members of several ensembles.

Member networks are shared between requests by object identity: two heads
whose members are the same network objects share their computations. Each
member runs under its own precision (its ``dtype``), each head under its
config's; for a single ensemble both are the same, so the arithmetic is the
same as one autocast around everything.

An optional :class:`~hear_gura.feature_cache.FeatureCache` stores each clip's
member features under the member's ``computation_key`` plus the hop, the layer
selection and the clip's content hash: a batch whose every clip is cached runs
no member at all.
"""

from __future__ import annotations

import contextlib
import warnings
from collections import Counter
from dataclasses import dataclass
from typing import (
    TYPE_CHECKING, Any, ContextManager, Dict, Iterable, Iterator, List, Mapping, Optional, Sequence, Tuple,
)

import torch

from hear_gura.align import align_time, resample_features
from hear_gura.fusion import fuse_stream
from hear_gura.identity import digest_of
from hear_gura.layers import LayerSelection
from hear_gura.members.base import Member, MemberFeatures
from hear_gura.timestamps import FrameGrid

if TYPE_CHECKING:  # pragma: no cover
    from hear_gura.feature_cache import FeatureCache
    from hear_gura.model import Head

#: Per clip of a batch: its fused frames ``(frames_i, width)`` and their grid.
ClipFrames = List[Tuple[torch.Tensor, FrameGrid]]
_FeatureKey = Tuple[int, Optional[int], LayerSelection]


def precision(dtype: str, device: torch.device) -> ContextManager[None]:
    """Autocast to the ``dtype`` option (a no-op for float32)."""
    if dtype == "float32":
        return contextlib.nullcontext()
    if device.type == "cpu":
        warnings.warn(
            f"dtype={dtype} on CPU: CPUs without {dtype} units emulate it, far slower than float32 "
            "(eval_scripts/bench-cpu-precision.json has measured speeds); it is meant for GPUs",
            stacklevel=3,
        )
    return torch.autocast(device_type=device.type, dtype=getattr(torch, dtype))


@dataclass(frozen=True)
class HeadRequest:
    """One output wanted from a member pass.

    Attributes:
        head: the head (layer choices, alignment, fusion) of one ensemble variant.
        members: the head's member names -> networks. Heads that name the same
            network object share its computations.
        scene: use the config's scene CREPE hop (else its timestamp hop).
    """

    head: "Head"
    members: Mapping[str, Member]
    scene: bool = False

    def hop(self, name: str) -> Optional[int]:
        """The hop (samples) member ``name`` runs at for this request; None for fixed-hop members."""
        member = self.members[name]
        return self.head.config.hop_samples(self.scene) if member.hop_is_configurable else None


def force_eval(modules: Iterable[torch.nn.Module]) -> None:
    """Put every module (and submodule) in eval mode: dropout in training mode would make embeddings random."""
    for module in modules:
        if any(m.training for m in module.modules()):
            module.eval()


def selection_text(selection: LayerSelection) -> str:
    """A stable text of a layer selection, for cache keys."""
    return f"{selection.num_states}:{'u' if selection.uniform else 'w'}:{','.join(repr(w) for w in selection.weights)}"


def run_members(
    requests: Sequence[HeadRequest],
    audio: torch.Tensor,
    lengths: Optional[Sequence[int]] = None,
    cache: Optional["FeatureCache"] = None,
    counts: Optional[Counter] = None,
) -> List[ClipFrames]:
    """Fused frames of a batch for every request, each distinct member computation run once.

    Args:
        requests: the outputs wanted.
        audio: ``(batch, samples)`` float32 at 16 kHz (validated); with
            ``lengths``, clip ``i`` is ``audio[i, :lengths[i]]``, the rest zeros.
        lengths: valid samples per clip, or None when all are full length.
        cache: per-clip member features on disk (members need a ``computation_key``).
        counts: if given, ``counts[member label] += 1`` per forward pass run (for benchmarks).
    Returns:
        per request, per clip: ``(frames_i, width)`` and its frame grid. Clip
        ``i`` gets the same result as when run alone (to float round-off):
        members that support padding see one padded batch, the others one batch
        per distinct length.
    """
    networks: Dict[int, Member] = {}
    for request in requests:
        networks.update({id(m): m for m in request.members.values()})
    force_eval(networks.values())
    batch, samples = audio.shape
    sizes = [int(n) for n in lengths] if lengths is not None else [samples] * batch
    groups: Dict[int, List[int]] = {}
    for index, size in enumerate(sizes):
        groups.setdefault(size, []).append(index)

    # 1. Each network once per distinct hop, with every layer choice any request needs.
    wanted: Dict[Tuple[int, Optional[int]], List[LayerSelection]] = {}
    for request in requests:
        for name, member in request.members.items():
            selections = wanted.setdefault((id(member), request.hop(name)), [])
            if request.head.selections[name] not in selections:
                selections.append(request.head.selections[name])
    clip_keys = _clip_keys(audio, sizes) if cache is not None else None
    features: Dict[_FeatureKey, MemberFeatures] = {}
    for (ident, hop), selections in sorted(wanted.items(), key=lambda item: (item[0][0], item[0][1] or 0)):
        member = networks[ident]
        finer = _finer_hop(member, hop, selections, wanted, features)
        if finer is not None:  # frame-local member: every k-th frame of a pass at a hop k times finer
            grids = [member.frame_grid(size, hop) for size in sizes]
            features.update({(ident, hop, s): features[(ident, finer, s)].every(hop // finer, grids)
                             for s in selections})
            continue
        cached = _from_cache(cache, member, hop, selections, sizes, clip_keys, audio.device) if cache else None
        if cached is None:
            if counts is not None:
                counts[member.name if member.computation_key is None else member.computation_key] += 1
            with precision(member.compute_dtype, audio.device):
                cached = member.compute(audio, selections, hop, sizes if lengths is not None else None)
            if cache is not None:
                _to_cache(cache, member, hop, selections, cached, clip_keys)
        features.update({(ident, hop, s): out for s, out in zip(selections, cached)})

    # 2. Per request: feature alignment, time alignment, member scale, fusion, per group of equal-length clips.
    # Features are released after the last request that needs them (long clips: memory).
    def feature_key(request: HeadRequest, name: str) -> _FeatureKey:
        return id(request.members[name]), request.hop(name), request.head.selections[name]

    uses = Counter(feature_key(r, name) for r in requests for name in r.members for _ in groups)

    def aligned_features(request: HeadRequest, rows: List[int], target: FrameGrid) -> Iterator[torch.Tensor]:
        head = request.head
        for name in request.members:
            key = feature_key(request, name)
            computed = features[key]
            x = computed.rows(rows)
            uses[key] -= 1
            if uses[key] == 0:
                del features[key]
            if head.target_width is not None:
                x = resample_features(x, head.target_width)
            x = align_time(x, computed.grids[rows[0]], target, head.config.time_align).float()
            scale = head.config.scale_of(name)
            yield x if scale == 1.0 else x * scale
            del x, computed

    results = []
    for request in requests:
        head = request.head
        grid_key = feature_key(request, head.grid_name)
        frames: ClipFrames = [None] * batch  # type: ignore[list-item]
        with precision(head.config.dtype, audio.device):
            for size, rows in groups.items():
                target = features[grid_key].grids[rows[0]]  # the grid member's frames are the output frames
                fused = fuse_stream(aligned_features(request, rows, target), len(request.members), head.config.fusion)
                for position, row in enumerate(rows):
                    frames[row] = (fused[position], target)
        results.append(frames)
    return results


def _finer_hop(
    member: Member, hop: Optional[int], selections: Sequence[LayerSelection],
    wanted: Mapping[Tuple[int, Optional[int]], Sequence[LayerSelection]],
    computed: Mapping[_FeatureKey, MemberFeatures],
) -> Optional[int]:
    """A hop already computed for this member that divides ``hop`` (with every selection needed), or None."""
    if not member.frames_are_local or hop is None:
        return None
    for ident, finer in wanted:
        if (ident == id(member) and finer is not None and finer < hop and hop % finer == 0
                and all((ident, finer, s) in computed for s in selections)
                and member.frame_grid(1, finer).first_centre == member.frame_grid(1, hop).first_centre == 0):
            return finer
    return None


# --------------------------------------------------------------- feature cache
def _clip_keys(audio: torch.Tensor, sizes: Sequence[int]) -> List[str]:
    from hear_gura.feature_cache import clip_key

    return [clip_key(audio[i, :size].detach().float().cpu().contiguous()) for i, size in enumerate(sizes)]


def cache_identity(member: Member, hop: Optional[int], selection: LayerSelection) -> Dict[str, Any]:
    """What the cache key of one member computation digests: the member's identity, its hop and layer selection.

    A member whose kind declares a :class:`~hear_gura.members.base.StateAlias`
    (CREPE's ``embedding``) is keyed as the fuller configuration with the same
    choice of its states, so either configuration's entries serve the other.
    """
    if member.computation_key is None:
        raise ValueError(f"member {member.name!r} has no computation_key: it cannot use a feature cache")
    key, alias = member.computation_key, member.cache_alias
    if alias is not None and alias.key is not None:
        key, selection = alias.key, alias.selection(selection)
    return {"member": key, "hop": hop, "layers": selection_text(selection)}


def cache_entry_key(member: Member, hop: Optional[int], selection: LayerSelection) -> str:
    """The feature cache's key of one member computation (:func:`cache_identity`, digested)."""
    return digest_of(cache_identity(member, hop, selection))


def _from_cache(
    cache: "FeatureCache", member: Member, hop: Optional[int], selections: Sequence[LayerSelection],
    sizes: Sequence[int], clip_keys: Sequence[str], device: torch.device,
) -> Optional[List[MemberFeatures]]:
    """This computation from the cache when EVERY clip of the batch is there (with the frame count its grid says); else None."""
    grids = tuple(member.frame_grid(size, hop) for size in sizes)
    frames = max(g.count for g in grids)
    found = []
    for selection in selections:
        key = cache_entry_key(member, hop, selection)
        clips = []
        for grid, clip in zip(grids, clip_keys):
            entry = cache.get(key, clip)
            if entry is None or entry.shape[0] != grid.count:
                return None
            clips.append(entry)
        values = clips[0].new_zeros((len(clips), frames, clips[0].shape[-1]))
        for row, entry in enumerate(clips):
            values[row, : entry.shape[0]] = entry
        found.append(MemberFeatures(values.to(device), grids))
    return found


def _to_cache(
    cache: "FeatureCache", member: Member, hop: Optional[int], selections: Sequence[LayerSelection],
    computed: Sequence[MemberFeatures], clip_keys: Sequence[str],
) -> None:
    for selection, output in zip(selections, computed):
        identity = cache_identity(member, hop, selection)
        key = digest_of(identity)
        if member.cache_description is not None:  # what `hear-gura cache info` shows for the key
            cache.describe_member(key, {**member.cache_description, "hop": hop, "layers": identity["layers"]})
        for row, clip in enumerate(clip_keys):
            cache.put(key, clip, output.clip(row).detach().cpu())
