"""Basic Pitch's network (Bittner et al., ICASSP 2022) as a torch module, loaded from its ONNX file.

The ``basic-pitch`` wheel ships the trained model as ``nmp.onnx`` (besides a
TensorFlow SavedModel, TFLite and CoreML copies). :class:`BasicPitchNet`
ports that graph op by op, harmonic CQT front end included, and
:meth:`BasicPitchNet.from_onnx` fills it from the file's initializers (parsed
with the ``onnx`` package: data only, no code). Every weight is found by its
role in the graph (shape, the node it feeds), and each convolution's strides,
pads and kernel are checked against the port, so another model file fails
loudly instead of running with misplaced weights.

One window of :data:`WINDOW_SAMPLES` samples at 22,050 Hz gives
:data:`WINDOW_FRAMES` frames, frame ``j`` centred on window sample ``j * 256``:

1. CQT (nnAudio's CQT2010v2 as exported): 9 octaves, each a 256-tap complex
   kernel pair of 36 bins (3 per semitone) on the signal reflect-padded by 128
   and taken every ``256 / 2**k`` samples of the ``k``-times halved signal
   (each halving: a 256-tap low-pass filter, zero padding 127, stride 2);
   bins ordered low to high, the lowest 15 dropped: 309 bins from 27.5 Hz
   (103 semitones), each scaled by its exported factor; magnitude.
2. NormalizedLog: ``10 log10(|X|^2 + 1e-10)``, minus its minimum over the
   window's frames and bins, divided by the new maximum (0 if it is 0); then
   the one-channel BatchNorm (scale and shift).  -> ``cqt (n, 172, 309)``
3. Harmonic stacking: the log-CQT shifted by ``round(36 log2 h)`` bins for
   ``h`` in ``0.5, 1 .. 7`` (zero filled), first 264 bins: ``(n, 8, 172, 264)``.
4. Contour branch: conv 8->8 (3x39, BatchNorm folded in) + ReLU
   -> ``contour_hidden (n, 8, 172, 264)``; conv 8->1 (5x5) + sigmoid
   -> ``contour (n, 172, 264)`` (88 semitones x 3 bins from 27.5 Hz).
5. Note branch: conv 1->32 (7x7, stride 3 along frequency) + ReLU on the
   contour -> ``note_hidden (n, 32, 172, 88)``; conv 32->1 (7x3) + sigmoid
   -> ``note (n, 172, 88)`` (piano keys A0..C8).
6. Onset branch: conv 8->32 (5x5, stride 3 along frequency, BatchNorm folded
   in) + ReLU on the harmonic stack -> ``onset_hidden (n, 32, 172, 88)``;
   conv 33->1 (3x3) + sigmoid on ``[note, onset_hidden]`` -> ``onset (n, 172, 88)``.

(The Keras model's first 32-filter contour conv is dead code: its output is
overwritten, and the exported graph does not hold it.)
"""

from __future__ import annotations

import math
from collections import Counter
from pathlib import Path
from typing import Any, Dict, List, Mapping, Tuple

import torch
import torch.nn.functional as F

from hear_gura.errors import CheckpointError

#: Native sample rate (Hz) and frame hop (samples) of the model.
SAMPLE_RATE = 22050
FFT_HOP = 256
#: Samples of one model input window (basic_pitch.constants.AUDIO_N_SAMPLES = 2 s - one hop).
WINDOW_SAMPLES = SAMPLE_RATE * 2 - FFT_HOP
#: Frames one window gives: (43844 + 2 * 128 - 256) // 256 + 1.
WINDOW_FRAMES = 172
#: CQT layout: bins per octave, octaves computed, bins kept (103 semitones x 3).
BINS_PER_OCTAVE = 36
N_OCTAVES = 9
N_CQT_BINS = 309
KERNEL = 256
#: Harmonic stacking: harmonics, their shifts in bins, bins kept (88 semitones x 3).
HARMONICS = (0.5, 1, 2, 3, 4, 5, 6, 7)
SHIFTS = tuple(int(round(12 * 3 * math.log2(h))) for h in HARMONICS)
N_CONTOUR_BINS = 264
N_NOTE_BINS = 88

#: The 2-D convolutions: name -> (weight shape, stride, padding), as the ONNX graph holds them.
CONVS: Dict[str, Tuple[Tuple[int, int, int, int], Tuple[int, int], Tuple[int, int]]] = {
    "contour_hidden": ((8, 8, 3, 39), (1, 1), (1, 19)),
    "contour_out": ((1, 8, 5, 5), (1, 1), (2, 2)),
    "note_hidden": ((32, 1, 7, 7), (1, 3), (3, 2)),
    "note_out": ((1, 32, 7, 3), (1, 1), (3, 1)),
    "onset_hidden": ((32, 8, 5, 5), (1, 3), (2, 1)),
    "onset_out": ((1, 33, 3, 3), (1, 1), (1, 1)),
}


class BasicPitchNet(torch.nn.Module):
    """The ``nmp`` model: ``(n, 43844)`` audio windows at 22,050 Hz -> posteriorgrams and hidden layers.

    Buffers (filled by :meth:`from_onnx`): ``cqt_kernels (72, 1, 256)`` (36 real
    then 36 imaginary), ``lowpass (1, 1, 256)``, ``cqt_scale (309,)``,
    ``bn_scale``/``bn_shift`` (scalars); one ``Conv2d`` per entry of :data:`CONVS`.
    """

    def __init__(self) -> None:
        super().__init__()
        self.register_buffer("cqt_kernels", torch.zeros(2 * BINS_PER_OCTAVE, 1, KERNEL))
        self.register_buffer("lowpass", torch.zeros(1, 1, KERNEL))
        self.register_buffer("cqt_scale", torch.zeros(N_CQT_BINS))
        self.register_buffer("bn_scale", torch.zeros(()))
        self.register_buffer("bn_shift", torch.zeros(()))
        self.convs = torch.nn.ModuleDict({
            name: torch.nn.Conv2d(shape[1], shape[0], shape[2:], stride=stride, padding=padding)
            for name, (shape, stride, padding) in CONVS.items()
        })

    # ------------------------------------------------------------------ network
    def log_cqt(self, audio: torch.Tensor) -> torch.Tensor:
        """Steps 1-2: ``(n, 43844)`` -> the normalised log-CQT after BatchNorm, ``(n, 172, 309)``.

        The 1-D convolutions stay ``conv1d`` as in the graph: the log of tiny
        magnitudes amplifies rounding, and a matrix-product low-pass filter
        (5x faster) moved the posteriorgrams up to 3e-4 away from onnxruntime's.
        """
        x = audio[:, None, :]
        octaves: List[torch.Tensor] = []
        for k in range(N_OCTAVES):
            if k:
                x = F.conv1d(F.pad(x, (KERNEL // 2 - 1, KERNEL // 2 - 1)), self.lowpass, stride=2)
            padded = F.pad(x, (KERNEL // 2, KERNEL // 2), mode="reflect")
            octaves.append(F.conv1d(padded, self.cqt_kernels, stride=FFT_HOP >> k))  # (n, 72, 172)
        both = torch.stack(octaves[::-1], dim=1).unflatten(2, (2, BINS_PER_OCTAVE))  # (n, 9, 2, 36, 172)
        scale = self.cqt_scale[:, None]
        real = both[:, :, 0].flatten(1, 2)[:, -N_CQT_BINS:] * scale
        imag = both[:, :, 1].flatten(1, 2)[:, -N_CQT_BINS:] * scale
        magnitude = torch.sqrt(real * real + imag * imag).transpose(1, 2)  # (n, 172, 309)
        decibels = torch.log(magnitude * magnitude + 1e-10) * 0.4342944622039795 * 10.0
        shifted = decibels - decibels.amin(dim=(1, 2), keepdim=True)
        peak = shifted.amax(dim=(1, 2), keepdim=True)
        normalised = torch.where(peak == 0, torch.zeros_like(shifted), shifted / peak)
        return normalised * self.bn_scale + self.bn_shift

    @staticmethod
    def harmonic_stack(cqt: torch.Tensor) -> torch.Tensor:
        """Step 3: ``(n, frames, 309)`` -> ``(n, 8, frames, 264)``, channel ``i`` shifted by ``SHIFTS[i]`` bins."""
        low, high = -min(SHIFTS), max(SHIFTS) + N_CONTOUR_BINS - N_CQT_BINS
        padded = F.pad(cqt, (low, max(high, 0)))
        return torch.stack([padded[..., low + s : low + s + N_CONTOUR_BINS] for s in SHIFTS], dim=1)

    def forward(self, audio: torch.Tensor) -> Dict[str, torch.Tensor]:
        """All outputs of a batch of windows.

        Args:
            audio: ``(n, 43844)`` float32 at 22,050 Hz.
        Returns:
            ``cqt (n, 172, 309)``, ``contour_hidden (n, 8, 172, 264)``, ``contour (n, 172, 264)``,
            ``note_hidden (n, 32, 172, 88)``, ``note (n, 172, 88)``, ``onset_hidden (n, 32, 172, 88)``,
            ``onset (n, 172, 88)``; posteriorgrams in [0, 1].
        """
        if audio.dim() != 2 or audio.shape[1] != WINDOW_SAMPLES:
            raise ValueError(f"BasicPitchNet takes (windows, {WINDOW_SAMPLES}) audio, got {tuple(audio.shape)}")
        conv = self.convs
        with torch.autocast(audio.device.type, enabled=False):  # the log-CQT in float32 even under autocast
            cqt = self.log_cqt(audio.float())
        stack = self.harmonic_stack(cqt).contiguous(memory_format=torch.channels_last)  # 4x faster 3x39 conv on CPU
        contour_hidden = F.relu(conv["contour_hidden"](stack))
        contour = torch.sigmoid(conv["contour_out"](contour_hidden))
        note_hidden = F.relu(conv["note_hidden"](contour))
        note = torch.sigmoid(conv["note_out"](note_hidden))
        onset_hidden = F.relu(conv["onset_hidden"](stack))
        onset = torch.sigmoid(conv["onset_out"](torch.cat([note, onset_hidden], dim=1)))
        return {
            "cqt": cqt, "contour_hidden": contour_hidden, "contour": contour[:, 0],
            "note_hidden": note_hidden, "note": note[:, 0], "onset_hidden": onset_hidden, "onset": onset[:, 0],
        }

    # ------------------------------------------------------------------ loading
    @classmethod
    def from_onnx(cls, path: Path) -> "BasicPitchNet":
        """The network with the weights of Basic Pitch's ``nmp.onnx`` (parsed as data; nothing executed).

        Raises:
            CheckpointError: the file is missing, unreadable, or not the graph this port mirrors.
        """
        try:
            import onnx
            from onnx import numpy_helper
        except ImportError:
            raise CheckpointError("reading Basic Pitch's nmp.onnx needs the onnx package: "
                                  "pip install onnx==1.23.2") from None
        try:
            graph = onnx.load(str(path)).graph
        except Exception as err:  # noqa: BLE001 - any parse failure means an unusable file
            raise CheckpointError(f"Basic Pitch model {path} could not be read ({err}); "
                                  "reinstall it: pip install --no-deps basic-pitch==0.4.0") from None
        tensors = {t.name: torch.from_numpy(numpy_helper.to_array(t).copy()) for t in graph.initializer}
        net = cls()
        try:
            net._load_graph(graph, tensors, onnx.helper.get_attribute_value)
        except (KeyError, ValueError, IndexError) as err:
            raise CheckpointError(f"{path} is not the Basic Pitch ICASSP 2022 graph this port mirrors: {err}") from None
        return net.eval()

    def _load_graph(self, graph: Any, tensors: Mapping[str, torch.Tensor], attribute: Any) -> None:
        consumers: Dict[str, List[Any]] = {}
        for node in graph.node:
            for name in node.input:
                consumers.setdefault(name, []).append(node)

        def attrs(node: Any) -> Dict[str, Any]:
            return {a.name: attribute(a) for a in node.attribute}

        def only(values: List[str], what: str) -> str:
            distinct = set(values)
            if len(distinct) != 1:
                raise ValueError(f"expected one {what} initializer, found {len(distinct)}")
            return distinct.pop()

        convs = [n for n in graph.node if n.op_type == "Conv" and n.input[1] in tensors]
        real, imag, lowpass = [], [], []
        for node in convs:
            shape = tuple(tensors[node.input[1]].shape)
            if shape == (BINS_PER_OCTAVE, 1, 1, KERNEL):
                negated = any(c.op_type == "Neg" for c in consumers.get(node.output[0], []))
                (imag if negated else real).append(node.input[1])
            elif shape == (1, 1, 1, KERNEL):
                lowpass.append(node.input[1])
        if len(real) != N_OCTAVES or len(imag) != N_OCTAVES or len(lowpass) != N_OCTAVES - 1:
            raise ValueError(f"expected {N_OCTAVES} CQT octaves, found {len(real)} real / {len(imag)} imaginary "
                             f"kernels and {len(lowpass)} low-pass filters")
        kernels = [tensors[only(real, "real CQT kernel")], tensors[only(imag, "imaginary CQT kernel")]]
        self.cqt_kernels.copy_(torch.cat(kernels)[:, :, 0])
        self.lowpass.copy_(tensors[only(lowpass, "low-pass filter")][:, :, 0])

        def initializer(op: str, shape: Tuple[int, ...]) -> torch.Tensor:
            found = [n.input[1] for n in graph.node if n.op_type == op and n.input[1] in tensors
                     and tuple(tensors[n.input[1]].shape) == shape]
            return tensors[only(found, f"{op} {list(shape)}")]

        self.cqt_scale.copy_(initializer("Mul", (N_CQT_BINS, 1, 1)).flatten())
        self.bn_scale.copy_(initializer("Mul", (1,))[0])
        self.bn_shift.copy_(initializer("Add", (1,))[0])

        for name, (shape, stride, padding) in CONVS.items():
            nodes = [n for n in convs if tuple(tensors[n.input[1]].shape) == shape]
            if len(nodes) != 1:
                raise ValueError(f"expected one Conv with weights {list(shape)} ({name}), found {len(nodes)}")
            node = nodes[0]
            got = attrs(node)
            want = {"strides": list(stride), "pads": [padding[0], padding[1], padding[0], padding[1]],
                    "kernel_shape": list(shape[2:]), "group": 1, "dilations": [1, 1]}
            if {k: got.get(k) for k in want} != want:
                raise ValueError(f"Conv {name}: attributes {got} differ from the port's {want}")
            self.convs[name].weight.data.copy_(tensors[node.input[1]])
            self.convs[name].bias.data.copy_(tensors[node.input[2]])
        counts = Counter(n.op_type for n in graph.node)
        if counts["Sigmoid"] != 3 or counts["Log"] != 1 or counts["Sqrt"] != 1:
            raise ValueError(f"unexpected op counts {dict(counts)}")
