"""PESTO (self-supervised pitch estimation) through pesto-pitch's shipped weights.

PESTO (Riou et al., ISMIR 2023; package ``pesto-pitch`` 2.0.1, LGPL-3.0)
estimates pitch from a constant-Q transform. Its inference,
``pesto.predict(x, sr=16000)``, does, per clip:

1. **HCQT at the input's own rate.** PESTO has no fixed sample rate: it builds
   its CQT kernels for the ``sr`` it is given, so a 16 kHz clip is NOT
   resampled. One harmonic, 251 bins at 3 per semitone from A0 (27.5 Hz,
   bins centred), ``gamma = 7`` (so 4,096-sample kernels at 16 kHz), as a
   strided ``Conv1d`` with ``hop = round(hop_ms * sr / 1000)`` samples (160 for
   its 10 ms) on the clip reflect-padded by 2,048 samples each side: frame
   ``i`` is centred at sample ``i * hop``, ``1 + N // hop`` frames.
2. **Log magnitude**, ``20 log10(max(|c|, eps))``, then (in place, while it
   computes the voicing confidence) multiplied by ``ln(10) / 10``, and cropped
   to bins 16..234 (219 bins): the encoder's input.
3. **Encoder** (``pesto.model.Resnet1d``, each frame on its own, time is the
   batch axis): LayerNorm over the 219 bins; ``conv1`` (1 -> 40 channels,
   kernel 39 along frequency, LeakyReLU 0.3); two residual ``prefilt_layers``
   (40 -> 40, kernel 39); four 1x1 ``conv_layers`` (40 -> 30 -> 30 -> 10 -> 3,
   LeakyReLU); flattened (3 x 219 = 657) into ``fc``, a Toeplitz (shift-
   equivariant) linear layer to 384 logits; softmax.
4. The softmax is rolled by ``-round(shift * 3)`` bins (``shift``, a calibrated
   buffer: 6.678 semitones, so 20 bins): ``activations`` (384 = 128 MIDI
   semitones x 3; bin ``b`` is MIDI pitch ``b / 3``), which the library reduces
   to a pitch (``alwa``) per frame.

This member runs the library's own modules (``HarmonicCQT``'s kernels,
``Resnet1d`` with the checkpoint's weights, loaded with
``torch.load(weights_only=True)``) step by step and keeps the activations.
**States** (``num_states = 10``, ``width = 384``), per frame:

=====  ===============================================================  ================
state  tensor in PESTO                                                  shape per frame
=====  ===============================================================  ================
0      encoder input: the cropped, scaled log-magnitude CQT             1 x 219
1      ``encoder.conv1`` output (after its LeakyReLU)                   40 x 219
2      after ``encoder.prefilt_layers[0]`` (+ its residual)             40 x 219
3      after ``encoder.prefilt_layers[1]`` (+ its residual)             40 x 219
4-7    after each LeakyReLU of ``encoder.conv_layers``                  30, 30, 10, 3 x 219
8      ``encoder.fc`` logits, rolled as the activations are             384
9      ``activations``: what ``pesto.predict`` returns                  384
=====  ===============================================================  ================

States 0-7 are made 384 wide by averaging over channels (a 219-bin profile
along frequency) and placing CQT bin ``k`` (of the 219) at index ``78 + k``,
the output bin of the same pitch (bin ``j`` of the 251 is MIDI
``21 + (j - 1) / 3``; 78 = 3 x 21 - 1 + 16), zeros elsewhere: every state lies
on the activations' pitch axis, so layers can be averaged.

**Hop**: the ``hop_ms`` param (the library's ``step_size``; default 10 ms,
160 samples), fixed per member. Frame ``i`` is centred at ``i * hop``
samples, as the library's ``timesteps`` (``i * hop_ms``) say.

**Clips of up to 2,048 samples (128 ms).** The library's reflect padding fails
on them (``Padding size should be less than the corresponding input
dimension``); this member pads them by repeated reflection (numpy's
``np.pad(mode="reflect")``), which equals the library's padding whenever the
library runs. Any clip of at least 1 sample gives ``1 + N // hop`` frames.
"""

from __future__ import annotations

import importlib.util
import math
from pathlib import Path
from typing import Any, Dict, Iterator, List, Mapping, Optional

import torch
import torch.nn.functional as F

from hear_gura.errors import CheckpointError, ConfigError
from hear_gura.manifest import Manifest
from hear_gura.members.base import Member
from hear_gura.members.registry import MemberDescription, Param, register_member
from hear_gura.timestamps import SAMPLE_RATE, FrameGrid, padded_frame_count

INSTALL = "pip install pesto-pitch==2.0.1"

#: The checkpoints this member runs, with the constants of their architecture
#: (as pesto-pitch 2.0.1's ``weights/<model>.ckpt`` declares them). The wheel also
#: ships ``mir-1k``, but pesto 2.0.1 cannot load it: its prefiltering layer's
#: keys do not match ``Resnet1d`` and ``load_model`` leaves that layer (and the
#: voicing classifier) at random initialisation, so it is not offered.
MODELS: Dict[str, Dict[str, Any]] = {
    "mir-1k_g7": {
        "hcqt": {"harmonics": [1], "fmin": 27.5, "fmax": None, "bins_per_semitone": 3, "n_bins": 251,
                 "center_bins": True, "gamma": 7, "center": True},
        "encoder": {"n_chan_input": 1, "n_chan_layers": [40, 30, 30, 10, 3], "n_prefilt_layers": 3,
                    "prefilt_kernel_size": 39, "residual": True, "n_bins_in": 219, "output_dim": 384,
                    "activation_fn": "leaky", "a_lrelu": 0.3, "p_dropout": 0.2},
        "crop": {"min_steps": -16, "max_steps": 16},
    },
}
DEFAULT_MODEL = "mir-1k_g7"
#: Frames per encoder call: bounds memory (40 x 219 floats a frame per layer, 36 MB at 1,024 frames).
#: The encoder's result for a frame does not depend on the other frames of its call (measured).
BATCH_FRAMES = 1024
#: Frames per CQT convolution of a clip (41 s at 10 ms; its im2col buffer is 16 KB a frame). The
#: library convolves a whole clip at once: clips up to this long get its exact arithmetic.
CQT_FRAMES = 4096
#: The library's ``ToLogMagnitude`` floor.
_EPS = torch.finfo(torch.float32).eps
#: Globals of the checkpoint's pickle that are neither tensors nor plain data: its
#: Lightning ``hparams`` hold omegaconf containers. Each is read as an inert
#: :class:`_Opaque` (its pickled state kept as data; no omegaconf code runs).
_CHECKPOINT_GLOBALS = (
    "omegaconf.listconfig.ListConfig", "omegaconf.dictconfig.DictConfig", "omegaconf.base.Metadata",
    "omegaconf.base.ContainerMetadata", "omegaconf.nodes.AnyNode", "typing.Any", "collections.defaultdict",
    "builtins.list", "builtins.dict", "builtins.int",
)


class _Opaque:
    """Stands in for a non-tensor object of a checkpoint's pickle: keeps its arguments and state, runs nothing."""

    def __init__(self, *args: Any) -> None:
        self.args = args

    def __setstate__(self, state: Any) -> None:
        self.state = state


def pesto_weights(model: str) -> Optional[Path]:
    """pesto-pitch's shipped ``weights/<model>.ckpt`` (found without importing pesto), or None if not installed."""
    found = importlib.util.find_spec("pesto")
    if found is None or not found.origin:
        return None
    return Path(found.origin).parent / "weights" / f"{model}.ckpt"


def load_checkpoint(path: Path) -> Dict[str, Any]:
    """A PESTO Lightning checkpoint read with ``torch.load(weights_only=True)``.

    The omegaconf objects of its ``hparams`` come back as inert :class:`_Opaque`
    stand-ins; any other global is refused by torch's weights-only unpickler.

    Raises:
        CheckpointError: the file is missing, unreadable, or not a PESTO checkpoint.
    """
    stubs = [(type(name.rsplit(".", 1)[1], (_Opaque,), {}), name) for name in _CHECKPOINT_GLOBALS]
    try:
        with torch.serialization.safe_globals(stubs):
            checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise CheckpointError(f"PESTO weights {path} are missing; reinstall pesto-pitch ({INSTALL})") from None
    except Exception as err:  # noqa: BLE001 - any unpickling failure means a bad file
        first = str(err).strip().splitlines()[-1] if str(err).strip() else type(err).__name__
        raise CheckpointError(f"PESTO weights {path} could not be loaded safely ({first}); "
                              f"reinstall pesto-pitch ({INSTALL})") from None
    if not isinstance(checkpoint, dict) or not {"state_dict", "hparams", "hcqt_params"} <= set(checkpoint):
        raise CheckpointError(f"{path} is not a PESTO checkpoint (no state_dict / hparams / hcqt_params); "
                              f"reinstall pesto-pitch ({INSTALL})")
    return checkpoint


def plain(value: Any) -> Any:
    """A checkpoint value with its omegaconf stand-ins (:class:`_Opaque`) turned into plain lists, dicts and scalars."""
    if isinstance(value, _Opaque):
        state = getattr(value, "state", None)
        if isinstance(state, dict) and "_val" in state:
            return plain(state["_val"])
        if isinstance(state, dict) and "_content" in state:
            return plain(state["_content"])
        return None
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    return value


def check_architecture(path: Path, checkpoint: Mapping[str, Any], model: str) -> None:
    """Raise CheckpointError unless the checkpoint declares :data:`MODELS` ``[model]``'s architecture."""
    arch = MODELS[model]
    hparams = plain(checkpoint["hparams"])
    encoder = hparams.get("encoder") if isinstance(hparams, dict) else None
    declared = {
        "hcqt": plain(checkpoint["hcqt_params"]),
        "crop": hparams.get("pitch_shift") if isinstance(hparams, dict) else None,
        "encoder": {k: v for k, v in encoder.items() if k in arch["encoder"]} if isinstance(encoder, dict) else None,
    }
    expected = {"hcqt": arch["hcqt"], "crop": arch["crop"], "encoder": arch["encoder"]}
    if declared != expected:
        raise CheckpointError(f"{path} declares {declared}, but {model!r} of pesto-pitch 2.0.1 is {expected}; "
                              f"reinstall pesto-pitch ({INSTALL})")


def reflect_pad(x: torch.Tensor, pad: int) -> torch.Tensor:
    """``x`` ``(samples,)`` reflect-padded by ``pad`` each side: ``(samples + 2 * pad,)``.

    ``F.pad(mode="reflect")`` (what PESTO's CQT convolution does) when
    ``pad < samples``; for shorter clips, repeated reflection (numpy's
    ``np.pad(mode="reflect")``), where the library raises.
    """
    n = x.shape[-1]
    if pad < n:
        return F.pad(x[None, None], (pad, pad), mode="reflect")[0, 0]
    if n == 1:
        return x.expand(n + 2 * pad).clone()
    period = 2 * (n - 1)
    index = torch.arange(-pad, n + pad, device=x.device).remainder(period)
    return x[torch.where(index < n, index, period - index)]


@register_member("pesto")
class PestoMember(Member):
    """PESTO ``mir-1k_g7`` with its shipped weights; 10 states 384 wide, every ``hop_ms`` (default 10 ms).

    Params: ``model``: the shipped checkpoint (``mir-1k_g7``); ``hop_ms``: the
    frame hop in milliseconds, the library's ``step_size`` (a whole number of
    samples at 16 kHz: 10 ms is 160). The hop is the member's own: an
    ensemble's ``crepe_*_hop_ms`` options do not change it
    (``hop_is_configurable`` is False), so timestamp and scene embeddings come
    from one pass at ``hop_ms``.

    States: see the module docstring. Each frame is computed from its own
    4,096-sample CQT window: a zero-padded batch with ``lengths`` gives each
    clip's frames as alone (each clip is convolved on its own, reflect-padded
    at its own end; the encoder treats frames independently); frames past a
    clip's count are zero.

    Speed: the encoder's two 40 x 40 x 39 prefiltering convolutions dominate,
    about 28 M multiply-adds a frame, 2.8 G a second of audio at 10 ms.
    """

    PARAMS = {
        "model": Param((str,), DEFAULT_MODEL, tuple(MODELS), "pesto-pitch's shipped checkpoint"),
        "hop_ms": Param((float,), 10.0, doc="default frame hop (ms; a whole number of samples at 16 kHz)"),
    }
    checkpoint_param = None
    hop_is_configurable = False  # set by the hop_ms param, not by the ensemble's CREPE hops
    supports_padding = True
    global_context = False  # each frame sees only its own 4,096-sample CQT window
    # Frame i at hop k*h equals frame k*i at hop h only to float round-off: the CQT convolution's
    # float noise depends on its stride, and the near one-hot softmax shows it (up to ~1e-4).
    frames_are_local = False
    sample_rate = SAMPLE_RATE  # PESTO builds its CQT for the input's rate: no resampling

    #: Encoder input, conv1, 2 prefilt layers, 4 conv layers, fc logits, activations.
    NUM_STATES = 10
    #: Short names of the states, in order (the module docstring's table).
    STATE_NAMES = ("cqt", "conv1", "prefilter1", "prefilter2", "conv_a", "conv_b", "conv_c", "conv_d", "fc_logits",
                   "activations")
    WIDTH = 384

    @classmethod
    def packaged_weights(cls, params: Mapping[str, Any]) -> Optional[Path]:
        return pesto_weights(str(params["model"]))

    @classmethod
    def describe(cls, name: str, params: Mapping[str, Any], location: Any) -> MemberDescription:
        return MemberDescription(
            kind=cls.kind, width=cls.WIDTH, num_states=cls.NUM_STATES, default_hop=hop_samples(name, params["hop_ms"]),
            receptive_field=1, sample_rate=SAMPLE_RATE, random_weights=False, hop_is_configurable=False,
            weights=f"pesto-pitch's weights/{params['model']}.ckpt ({location.path or 'pesto-pitch not installed'})",
            state_names=cls.STATE_NAMES,
        )

    def __init__(self, name: str, params: Mapping[str, Any], manifest: Manifest, normalize_waveform: bool) -> None:
        super().__init__(name, normalize_waveform)
        model = params["model"]
        if model not in MODELS:
            raise ConfigError(f"pesto member {name!r}: model must be one of {list(MODELS)}, got {model!r}")
        self.model_name = model
        self.default_hop = hop_samples(name, params["hop_ms"])
        self.num_states = self.NUM_STATES
        self.state_names = self.STATE_NAMES
        self.width = self.WIDTH
        self.receptive_field = 1
        arch = MODELS[model]
        self.crop = (arch["crop"]["max_steps"], arch["hcqt"]["n_bins"] + arch["crop"]["min_steps"])
        bins_per_semitone = arch["hcqt"]["bins_per_semitone"]
        #: Output index of cropped CQT bin 0: its MIDI pitch (A0 = 21, less the centring bin) times 3.
        self.offset = 21 * bins_per_semitone - (bins_per_semitone - 1) // 2 + self.crop[0]
        self._build(name, model)

    def _build(self, name: str, model: str) -> None:
        path = pesto_weights(model)
        if path is None:
            raise CheckpointError(f"pesto member {name!r} needs pesto-pitch, which is not installed; {INSTALL}")
        try:
            from pesto.model import Resnet1d
            from pesto.utils.hcqt import HarmonicCQT
        except ImportError as err:
            raise CheckpointError(f"pesto member {name!r}: pesto-pitch cannot be imported ({err}); {INSTALL}") from None
        checkpoint = load_checkpoint(path)
        check_architecture(path, checkpoint, model)
        arch = MODELS[model]
        hcqt = HarmonicCQT(sr=SAMPLE_RATE, hop_length=self.default_hop, **arch["hcqt"])
        cqt = hcqt.cqt_kernels[0]
        self.register_buffer("cqt_weight", cqt.conv.weight.detach().clone())  # (2 * bins, 1, kernel): real, -imag
        self.register_buffer("cqt_scale", cqt.sqrt_lengths.detach().clone())  # (bins, 1): librosa normalisation
        self.kernel_width = int(cqt.kernel_width)
        self.n_bins = int(cqt.n_bins)
        self.encoder = Resnet1d(**{**arch["encoder"], "n_chan_layers": list(arch["encoder"]["n_chan_layers"])})
        state = checkpoint["state_dict"]
        encoder_state = {k[len("encoder."):]: v for k, v in state.items() if k.startswith("encoder.")}
        try:
            self.encoder.load_state_dict(encoder_state, strict=True)
        except RuntimeError as err:
            raise CheckpointError(f"pesto member {name!r}: {path} does not fit PESTO's encoder ({err}); "
                                  f"reinstall pesto-pitch ({INSTALL})") from None
        self.encoder.eval()
        shift = state.get("shift")
        if not isinstance(shift, torch.Tensor) or shift.numel() != 1:
            raise CheckpointError(f"pesto member {name!r}: {path} has no 'shift' buffer; reinstall ({INSTALL})")
        self.roll = -round(float(shift) * arch["hcqt"]["bins_per_semitone"])

    def frame_grid(self, num_samples: int, hop: Optional[int] = None) -> FrameGrid:
        hop = hop or self.default_hop
        return FrameGrid(padded_frame_count(num_samples, hop), 0.0, hop)

    def log_cqt(self, padded: torch.Tensor, first: int, count: int, hop: int) -> torch.Tensor:
        """Frames ``first .. first + count - 1`` of a clip's encoder input, as PESTO computes it.

        Args:
            padded: ``(samples + kernel_width,)`` the clip reflect-padded (:func:`reflect_pad`).
        Returns:
            ``(count, 1, 219)``: cropped ``20 log10(max(|CQT|, eps)) * ln(10) / 10``.
        """
        piece = padded[first * hop: (first + count - 1) * hop + self.kernel_width]
        cqt = F.conv1d(piece[None, None], self.cqt_weight, stride=hop).view(1, 2, self.n_bins, -1)
        cqt *= self.cqt_scale
        magnitude = torch.view_as_complex(cqt.permute(0, 2, 3, 1).contiguous()).abs()  # (1, bins, count)
        x = magnitude.clamp_(min=_EPS).log10_().mul_(20).permute(2, 0, 1)  # (count, 1, bins)
        x = x.mul_(math.log(10) / 10.0)  # pesto.model.PESTO.forward scales in place before the encoder
        return x[..., self.crop[0]: self.crop[1]]

    def encoder_states(self, x: torch.Tensor, deepest: int) -> List[torch.Tensor]:
        """States ``0 .. deepest`` of frames' encoder inputs ``x`` ``(frames, 1, 219)``, each ``(frames, 384)``."""
        enc = self.encoder
        right = self.width - self.offset - x.shape[-1]
        profiles = [x.mean(dim=1)]
        if deepest >= 1:
            h = enc.conv1(enc.layernorm(x))
            profiles.append(h.mean(dim=1))
            for layer in enc.prefilt_layers:
                if len(profiles) > deepest:
                    break
                h = layer(h) + h if enc.residual else layer(h)
                profiles.append(h.mean(dim=1))
            for j in range(0, len(enc.conv_layers), 3):
                if len(profiles) > deepest:
                    break
                h = enc.conv_layers[j: j + 3](h)
                profiles.append(h.mean(dim=1))
        out = [F.pad(p, (self.offset, right)) for p in profiles[: deepest + 1]]
        if deepest >= len(out):
            logits = enc.fc(enc.flatten(h))
            out.append(logits.roll(self.roll, -1))
            if deepest >= len(out):
                out.append(enc.final_norm(logits).roll(self.roll, -1))
        return out

    def states(
        self, wav: torch.Tensor, deepest: int, hop: Optional[int] = None, lengths: Optional[torch.Tensor] = None
    ) -> Iterator[torch.Tensor]:
        if not 0 <= deepest < self.num_states:
            raise ConfigError(f"pesto member {self.name!r} has states 0..{self.num_states - 1}, asked for {deepest}")
        hop = int(hop or self.default_hop)
        batch, samples = wav.shape
        sizes = [int(n) for n in lengths] if lengths is not None else [samples] * batch
        frames = padded_frame_count(samples, hop)
        inputs, rows = [], []  # every valid frame's encoder input, and its row in (batch * frames)
        for clip, size in enumerate(sizes):
            padded = reflect_pad(wav[clip, :size], self.kernel_width // 2)
            count = padded_frame_count(size, hop)
            for first in range(0, count, CQT_FRAMES):
                n = min(CQT_FRAMES, count - first)
                inputs.append(self.log_cqt(padded, first, n, hop))
                rows.append(torch.arange(clip * frames + first, clip * frames + first + n, device=wav.device))
        x, row = torch.cat(inputs), torch.cat(rows)
        outputs = [wav.new_zeros(batch * frames, self.width) for _ in range(deepest + 1)]
        for first in range(0, x.shape[0], BATCH_FRAMES):  # frames of all clips, BATCH_FRAMES per encoder call
            chunk = slice(first, first + BATCH_FRAMES)
            for out, state in zip(outputs, self.encoder_states(x[chunk], deepest)):
                out[row[chunk]] = state
        for out in outputs:
            yield out.view(batch, frames, self.width)


def hop_samples(name: str, hop_ms: Any) -> int:
    """``hop_ms`` in samples at 16 kHz (what pesto computes, ``int(hop_ms * sr / 1000 + 0.5)``).

    Raises:
        ConfigError: not a positive whole number of samples (so the library's
            timestamps, ``k * hop_ms``, would not be the frames' centres).
    """
    samples = float(hop_ms) * SAMPLE_RATE / 1000
    if not samples >= 1 or abs(samples - round(samples)) > 1e-9:
        raise ConfigError(f"pesto member {name!r}: hop_ms must be a positive multiple of 1/16 ms (a whole number "
                          f"of samples at 16 kHz), e.g. 10 or 5, got {hop_ms!r}")
    return int(samples + 0.5)
