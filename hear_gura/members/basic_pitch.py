"""Spotify's Basic Pitch (ICASSP 2022) as a member: the wheel's ``nmp.onnx`` run as a torch port.

The ``basic-pitch`` wheel (installed WITHOUT its dependencies: no TensorFlow)
ships the trained model; :mod:`hear_gura.members.basic_pitch_net` ports its
graph, harmonic CQT front end included, and loads the weights from the ONNX
file's initializers. The file is found with ``importlib.util.find_spec``:
basic_pitch itself is never imported.

Input, as ``basic_pitch.inference.run_inference`` prepares it:

- 16 kHz -> 22,050 Hz with soxr's ``soxr_hq`` (what ``librosa.load(path,
  sr=22050)`` does; librosa's own call, bit for bit), on the CPU, then cut or
  zero-padded to librosa's ``ceil(N * 22050 / 16000)`` samples ``L``.
- 3,840 zeros (15 frames) in front, windows of 43,844 samples (2 s less one
  hop), 172 frames each; the first and last 15 frames of every window are
  dropped and the remaining 142 concatenated.

Windowing (param ``windowing``):

- ``"aligned"`` (default): a window every 142 x 256 = 36,352 samples, so the
  kept frames tile the clip exactly: frame ``k`` is centred at sample
  ``k * 256`` at 22,050 Hz, ``ceil(L / 256)`` frames.
- ``"basic_pitch"``: basic-pitch 0.4.0's own windows, every 36,164 samples,
  and its count ``floor(L * 86 / 22050)``: its frame-level output, value for
  value. Its 142 kept frames span 188 samples more than its window hop, so its
  frame ``k`` lies ``188 * (k // 142)`` samples (8.5 ms per 1.64 s) before
  ``k * 256``: the timestamps drift (spotify/basic-pitch#190). Both choices
  give the same first 142 frames.

Frames: ``FrameGrid(count, 0, 256 * 16000 / 22050)``: a fractional hop of
185.76 samples at 16 kHz (11.61 ms).

States (param ``states``), each ``(batch, frames, width)``, flattened per frame
channel-major (index ``c * bins + f``) and zero-padded at the end to the widest:

=====  ================  ========================================  =====
index  name              what                                      width
=====  ================  ========================================  =====
0      cqt               log-CQT after the BatchNorm, 309 bins      309
1      contour_hidden    ReLU(conv 3x39) on the harmonic stack     8x264
2      contour           contour posteriorgram, 3 bins/semitone     264
3      note_hidden       ReLU(conv 7x7) on the contour             32x88
4      note              note posteriorgram, 88 keys                 88
5      onset_hidden      ReLU(conv 5x5) on the harmonic stack      32x88
6      onset             onset posteriorgram, 88 keys                88
7      outputs           [note, onset, contour] concatenated        440
=====  ================  ========================================  =====

``"all"`` (default): those 8 states, width 2,816. ``"outputs"``: contour,
note, onset and outputs (states 2, 4, 6, 7), width 440 (no padding in the last).
The last state holds everything ``run_inference`` returns.

Each window is normalised on its own (min and max of its log-CQT), so frames
depend on their whole 2-second window: zero padding past a clip's end changes
its last window, so padded batches are not supported (the base class batches
equal lengths).
"""

from __future__ import annotations

import functools
import importlib.util
import math
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Dict, Iterator, List, Mapping, Optional, Tuple

import torch
import torch.nn.functional as F

from hear_gura.errors import CheckpointError, ConfigError
from hear_gura.manifest import Manifest
from hear_gura.members.base import Member
from hear_gura.members.basic_pitch_net import (
    FFT_HOP,
    N_CONTOUR_BINS,
    N_CQT_BINS,
    N_NOTE_BINS,
    SAMPLE_RATE,
    WINDOW_FRAMES,
    WINDOW_SAMPLES,
    BasicPitchNet,
)
from hear_gura.members.registry import MemberDescription, Param, register_member
from hear_gura.timestamps import SAMPLE_RATE as HEAR_RATE
from hear_gura.timestamps import FrameGrid

INSTALL = "pip install --no-deps basic-pitch==0.4.0"
#: The model file inside the basic_pitch package.
ONNX_FILE = Path("saved_models") / "icassp_2022" / "nmp.onnx"
#: basic_pitch.inference.run_inference: 30 overlapping frames, half dropped at each end of a window.
OVERLAP_FRAMES = 30
EDGE = OVERLAP_FRAMES // 2
KEPT_FRAMES = WINDOW_FRAMES - OVERLAP_FRAMES
#: Window hop in samples at 22,050 Hz: basic-pitch's (drifting) and the aligned one.
WINDOW_HOPS = {"basic_pitch": WINDOW_SAMPLES - OVERLAP_FRAMES * FFT_HOP, "aligned": KEPT_FRAMES * FFT_HOP}
#: basic_pitch.constants.ANNOTATIONS_FPS (22050 // 256, rounded down), used by its frame count.
ANNOTATIONS_FPS = SAMPLE_RATE // FFT_HOP
#: Frame hop in samples at 16 kHz (fractional).
HOP_16K = FFT_HOP * HEAR_RATE / SAMPLE_RATE

#: State name -> width, in order, for each ``states`` choice.
STATES: Dict[str, Tuple[Tuple[str, int], ...]] = {
    "all": (("cqt", N_CQT_BINS), ("contour_hidden", 8 * N_CONTOUR_BINS), ("contour", N_CONTOUR_BINS),
            ("note_hidden", 32 * N_NOTE_BINS), ("note", N_NOTE_BINS), ("onset_hidden", 32 * N_NOTE_BINS),
            ("onset", N_NOTE_BINS), ("outputs", 2 * N_NOTE_BINS + N_CONTOUR_BINS)),
    "outputs": (("contour", N_CONTOUR_BINS), ("note", N_NOTE_BINS), ("onset", N_NOTE_BINS),
                ("outputs", 2 * N_NOTE_BINS + N_CONTOUR_BINS)),
}
#: The posteriorgrams the last state concatenates, in order.
OUTPUTS = ("note", "onset", "contour")


def packaged_onnx() -> Optional[Path]:
    """basic-pitch's ``nmp.onnx`` (found without importing basic_pitch), or None if it is not installed."""
    found = importlib.util.find_spec("basic_pitch")
    if found is None or not found.origin:
        return None
    path = Path(found.origin).parent / ONNX_FILE
    return path if path.is_file() else None


def resampled_length(num_samples: int) -> int:
    """Samples at 22,050 Hz of a 16 kHz clip, as librosa.resample(fix=True) computes them (float ceil)."""
    return int(math.ceil(num_samples * (SAMPLE_RATE / HEAR_RATE)))


@functools.lru_cache(maxsize=2)
def parsed_weights(path: str, mtime_ns: int) -> Dict[str, torch.Tensor]:
    """The weights of an ``nmp.onnx`` as a state dict, parsed once per file version (members copy them)."""
    return BasicPitchNet.from_onnx(Path(path)).state_dict()


def frame_count(num_samples: int, windowing: str) -> int:
    """Frames of a 16 kHz clip of ``num_samples`` samples (see the module docstring)."""
    length = resampled_length(num_samples)
    if windowing == "basic_pitch":
        return int(math.floor(length * (ANNOTATIONS_FPS / SAMPLE_RATE)))
    return -(-length // FFT_HOP)


def window_count(num_samples: int, windowing: str) -> int:
    """Model windows a clip needs (basic_pitch: ``len(range(0, L + 3840, 36164))``)."""
    if windowing == "basic_pitch":
        return -(-(resampled_length(num_samples) + EDGE * FFT_HOP) // WINDOW_HOPS["basic_pitch"])
    return -(-frame_count(num_samples, windowing) // KEPT_FRAMES)


def resample_to_native(wav: torch.Tensor) -> torch.Tensor:
    """``(batch, N)`` at 16 kHz -> ``(batch, ceil(N * 1.378125))`` at 22,050 Hz, as ``librosa.load`` resamples.

    soxr ``soxr_hq`` on the CPU (all clips as the channels of one call; the same
    values as one call per clip), float32, back on ``wav``'s device.
    """
    try:
        import soxr
    except ImportError:
        raise CheckpointError("Basic Pitch resamples with soxr (librosa's default): pip install soxr==1.1.0") from None
    audio = wav.detach().to("cpu", torch.float32).numpy()
    out = torch.from_numpy(soxr.resample(audio.T, HEAR_RATE, SAMPLE_RATE, quality="soxr_hq").T.copy())
    length = resampled_length(wav.shape[-1])
    out = out[:, :length] if out.shape[-1] >= length else F.pad(out, (0, length - out.shape[-1]))
    return out.to(wav.device)


@contextmanager
def full_float32(device: torch.device) -> Iterator[None]:
    """No TF32 in cuDNN convolutions on CUDA (its 10-bit mantissa would move the log-CQT)."""
    if device.type != "cuda":
        yield
        return
    previous = torch.backends.cudnn.allow_tf32
    torch.backends.cudnn.allow_tf32 = False
    try:
        yield
    finally:
        torch.backends.cudnn.allow_tf32 = previous


@register_member("basic_pitch")
class BasicPitchMember(Member):
    """Basic Pitch's posteriorgrams and hidden layers (see the module docstring); fixed hop of 185.76 samples."""

    PARAMS = {
        "states": Param((str,), "all", tuple(STATES), "all: CQT, hidden layers and posteriorgrams (width 2816); "
                        "outputs: the posteriorgrams only (width 440)"),
        "windowing": Param((str,), "aligned", tuple(WINDOW_HOPS), "aligned: frame k centred at k*256 samples "
                           "(22.05 kHz); basic_pitch: basic-pitch 0.4.0's drifting windows, its values exactly"),
        "batch_windows": Param((int,), 16, doc="2-second windows per network call (memory; equal results to "
                               "float rounding)"),
    }
    checkpoint_param = None
    supports_padding = False  # each window is min/max normalised as a whole
    global_context = False  # the member windows any length itself
    frames_are_local = False

    @classmethod
    def packaged_weights(cls, params: Mapping[str, Any]) -> Optional[Path]:
        return packaged_onnx()

    @classmethod
    def describe(cls, name: str, params: Mapping[str, Any], location: Any) -> MemberDescription:
        states = STATES[params["states"]]
        return MemberDescription(
            kind=cls.kind, width=max(w for _, w in states), num_states=len(states), default_hop=HOP_16K,
            receptive_field=cls.shortest_clip(params["windowing"]), sample_rate=SAMPLE_RATE, random_weights=False,
            hop_is_configurable=False,
            weights=f"basic-pitch's {ONNX_FILE.as_posix()} "
                    f"({location.path or 'basic-pitch not installed: ' + INSTALL})",
            state_names=tuple(n for n, _ in states),
        )

    @staticmethod
    def shortest_clip(windowing: str) -> int:
        """The fewest 16 kHz samples that give one frame (1; 186 with basic-pitch's rounded-down count)."""
        n = 1
        while frame_count(n, windowing) < 1:
            n += 1
        return n

    def __init__(self, name: str, params: Mapping[str, Any], manifest: Manifest, normalize_waveform: bool) -> None:
        super().__init__(name, normalize_waveform)
        if params["batch_windows"] <= 0:
            raise ConfigError(f"basic_pitch member {name!r}: batch_windows must be a positive int, "
                              f"got {params['batch_windows']!r}")
        path = packaged_onnx()
        if path is None:
            raise CheckpointError(f"basic_pitch member {name!r} needs the basic-pitch wheel's model file "
                                  f"{ONNX_FILE.as_posix()}: {INSTALL} (no TensorFlow needed)")
        self.net = BasicPitchNet()
        self.net.load_state_dict(parsed_weights(str(path), path.stat().st_mtime_ns))
        self.windowing = params["windowing"]
        self.batch_windows = params["batch_windows"]
        self.state_names = tuple(n for n, _ in STATES[params["states"]])
        self.num_states = len(self.state_names)
        self.width = max(w for _, w in STATES[params["states"]])
        self.sample_rate = SAMPLE_RATE
        self.default_hop = HOP_16K
        self.receptive_field = self.shortest_clip(self.windowing)

    def frame_grid(self, num_samples: int, hop: Optional[int] = None) -> FrameGrid:
        return FrameGrid(frame_count(num_samples, self.windowing), 0.0, HOP_16K)

    def windows(self, wav: torch.Tensor) -> torch.Tensor:
        """The model's input windows of a batch, ``(batch, windows, 43844)`` at 22,050 Hz (a view)."""
        audio = resample_to_native(wav)
        count = window_count(wav.shape[-1], self.windowing)
        hop = WINDOW_HOPS[self.windowing]
        front = EDGE * FFT_HOP
        end = (count - 1) * hop + WINDOW_SAMPLES - front - audio.shape[-1]
        return F.pad(audio, (front, max(end, 0))).unfold(-1, WINDOW_SAMPLES, hop)[:, :count]

    def states(
        self, wav: torch.Tensor, deepest: int, hop: Optional[int] = None, lengths: Optional[torch.Tensor] = None
    ) -> Iterator[torch.Tensor]:
        batch, samples = wav.shape
        frames = frame_count(samples, self.windowing)
        names = self.state_names[: deepest + 1]
        needed = set(names) | (set(OUTPUTS) if "outputs" in names else set())
        windows = self.windows(wav).reshape(-1, WINDOW_SAMPLES)
        kept: Dict[str, List[torch.Tensor]] = {name: [] for name in needed - {"outputs"}}
        with full_float32(wav.device):
            for first in range(0, windows.shape[0], self.batch_windows):
                out = self.net(windows[first : first + self.batch_windows])
                for name in kept:
                    value = out[name]
                    if value.dim() == 4:  # (n, channels, 172, bins) -> (n, 172, channels * bins)
                        value = value.permute(0, 2, 1, 3).flatten(2)
                    kept[name].append(value[:, EDGE : EDGE + KEPT_FRAMES].float())
        joined = {name: torch.cat(parts).reshape(batch, -1, parts[0].shape[-1])[:, :frames]
                  for name, parts in kept.items()}
        for name in names:
            value = torch.cat([joined[k] for k in OUTPUTS], dim=-1) if name == "outputs" else joined[name]
            yield F.pad(value, (0, self.width - value.shape[-1]))
