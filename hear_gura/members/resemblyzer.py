"""Resemblyzer's GE2E speaker encoder (``VoiceEncoder``) as a frame-level member.

The network (``resemblyzer/voice_encoder.py``): a 40-band mel power
spectrogram (25 ms windows, 10 ms hop, at 16 kHz) goes through three
stacked 256-unit LSTM layers; the utterance embedding is
``relu(linear(h_T))`` of the last layer's final output ``h_T``, L2-normalised.
The weights are the package's ``pretrained.pt`` (a plain dict: ``step``,
``model_state``, ``optimizer_state``), read with ``torch.load(weights_only=True)``;
``resemblyzer`` itself is never imported, so only the wheel's file is needed.

States (all ``(batch, frames, 256)``, one frame per mel frame, every 10 ms):

- ``0, 1, 2``: the per-frame outputs of LSTM layers 1, 2, 3 (values in ``(-1, 1)``).
- ``3``: ``relu(linear(.))`` of layer 3's output, L2-normalised per frame: frame
  ``t`` is exactly what ``VoiceEncoder.forward`` returns for the mel frames
  ``0 .. t`` (the embedding of the clip so far). An all-zero ReLU output stays
  zero (the library would divide by zero and give NaN).

The mel input is not a state: it is 40 wide (zero-padding it to 256 would be
arbitrary) and in power units (tens to hundreds on loud audio, unbounded), so
it would swamp ``"mean"`` and the other layer averages; the ``fbank`` member
already offers filterbank features.

Features are computed as ``resemblyzer.audio.wav_to_mel_spectrogram`` computes
them (``librosa.feature.melspectrogram(y, sr=16000, n_fft=400, hop_length=160,
n_mels=40)``: periodic Hann window, ``center=True`` with zero padding, power
2, Slaney mel filters, no log), but in torch, so the member runs on any device
and in batches: the STFT in float64 as librosa's (it multiplies the float32
frames by a float64 window) then rounded to complex64, the power and the
filter bank product in float32. The filter bank is librosa's bit for bit;
the features match the library's function within a relative 1e-6 (tested).

Not part of the member: ``resemblyzer.preprocess_wav``'s volume normalisation
(an increase-only gain to -30 dBFS per clip) and its voice-activity trimming
(webrtcvad in 30 ms windows; cutting long silences out would break the time
axis). The member sees the waveform as given (``normalize_waveform``
still applies when the ensemble asks for it). Nor is ``embed_utterance``'s
averaging over 1.6 s partial utterances: the LSTM runs over the whole clip.

Frame ``i`` is the STFT window centred at sample ``160 * i`` (``1 + N // 160``
frames, as librosa gives), but the LSTM is causal: frame ``i`` depends on
every sample up to ``160 * i + 200``. So a zero-padded batch gives each clip's
frames as alone (the padding is the zeros librosa's ``center=True`` adds), and
``global_context`` is True: clips longer than ``max_window_seconds`` (default
180 s, longer than any HEAR 2021 clip) restart the LSTM in each window. The
first window's kept frames stay exact; later ones differ (measured on a 30 s
test clip in 10 s windows overlapping by 2.5 s: up to 0.002 in layer 1,
1.1 in layer 3, 0.34 in the embedding). Memory grows only linearly with the
clip, so windowing is never needed for memory; the LSTM steps frame by
frame, 100 steps per second of audio: on one CPU thread a 20 s clip took
2.3 s of CPU time, a batch of four such clips 3 s (measured).
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import TYPE_CHECKING, Any, Dict, Iterator, Mapping, Optional

import numpy as np
import torch
import torch.nn.functional as F

from hear_gura.errors import CheckpointError, ConfigError
from hear_gura.manifest import Manifest
from hear_gura.members.base import Member
from hear_gura.members.registry import MemberDescription, Param, register_member
from hear_gura.timestamps import FrameGrid, padded_frame_count

if TYPE_CHECKING:  # pragma: no cover
    from hear_gura.identity import CheckpointLocation

#: ``resemblyzer/hparams.py``: 16 kHz, 25 ms windows, 10 ms hop, 40 mel bands, 3 x 256 LSTM, 256 embedding.
SAMPLE_RATE = 16000
N_FFT = 400
HOP = 160
N_MELS = 40
HIDDEN = 256
NUM_LAYERS = 3
EMBEDDING = 256
NUM_STATES = NUM_LAYERS + 1
#: Short names of the states, in order.
STATE_NAMES = tuple(f"lstm{i}" for i in range(1, NUM_LAYERS + 1)) + ("embedding",)
INSTALL = "pip install --no-deps Resemblyzer==0.1.4"


def mel_filterbank() -> np.ndarray:
    """``librosa.filters.mel(sr=16000, n_fft=400, n_mels=40)`` (Slaney scale and norm), bit for bit.

    The same float64 arithmetic as librosa 0.11, without importing librosa.

    Returns:
        ``(40, 201)`` float32: mel band x FFT bin.
    """
    f_sp, min_log_hz = 200.0 / 3, 1000.0
    min_log_mel, logstep = min_log_hz / f_sp, np.log(6.4) / 27.0
    max_mel = min_log_mel + np.log(SAMPLE_RATE / 2 / min_log_hz) / logstep
    mels = np.linspace(0.0, max_mel, N_MELS + 2)
    mel_f = f_sp * mels
    log_t = mels >= min_log_mel
    mel_f[log_t] = min_log_hz * np.exp(logstep * (mels[log_t] - min_log_mel))
    ramps = np.subtract.outer(mel_f, np.fft.rfftfreq(n=N_FFT, d=1.0 / SAMPLE_RATE))
    fdiff = np.diff(mel_f)
    weights = np.zeros((N_MELS, 1 + N_FFT // 2), dtype=np.float32)
    for i in range(N_MELS):
        weights[i] = np.maximum(0, np.minimum(-ramps[i] / fdiff[i], ramps[i + 2] / fdiff[i + 1]))
    weights *= (2.0 / (mel_f[2 : N_MELS + 2] - mel_f[:N_MELS]))[:, np.newaxis]
    return weights


class MelSpectrogram(torch.nn.Module):
    """``resemblyzer.audio.wav_to_mel_spectrogram`` in torch, batched.

    Input ``(batch, samples)`` float32 at 16 kHz; output ``(batch, 1 + samples // 160, 40)``
    float32 mel power (no log). Runs in float32/float64 even under autocast.
    """

    def __init__(self) -> None:
        super().__init__()
        self.register_buffer("window", torch.hann_window(N_FFT, periodic=True, dtype=torch.float64), persistent=False)
        self.register_buffer("basis", torch.from_numpy(mel_filterbank()), persistent=False)

    def forward(self, wav: torch.Tensor) -> torch.Tensor:
        with torch.autocast(device_type=wav.device.type, enabled=False):
            spectrum = torch.stft(
                wav.to(torch.float64), N_FFT, HOP, window=self.window, center=True, pad_mode="constant",
                return_complex=True,
            ).to(torch.complex64)
            power = spectrum.abs().pow_(2)  # (batch, 201, frames) float32
            return torch.matmul(self.basis, power).transpose(1, 2)


def _weights_path() -> Optional[Path]:
    found = importlib.util.find_spec("resemblyzer")  # finds the package without importing it
    if found is None or not found.submodule_search_locations:
        return None
    path = Path(list(found.submodule_search_locations)[0]) / "pretrained.pt"
    return path if path.is_file() else None


@register_member("resemblyzer")
class ResemblyzerMember(Member):
    """Resemblyzer 0.1.4's speaker encoder: 4 states of 256 per 10 ms frame (see the module docstring).

    No params: the weights are the package's ``pretrained.pt``, the hop is fixed
    at 160 samples (10 ms), the first frame is centred at sample 0.
    """

    PARAMS: Dict[str, Param] = {}
    checkpoint_param = None

    hop_is_configurable = False
    supports_padding = True  # causal LSTM; zero padding = librosa's centre padding (tested)
    global_context = True  # a frame depends on every earlier frame: long clips are windowed
    frames_are_local = False

    @classmethod
    def packaged_weights(cls, params: Mapping[str, Any]) -> Optional[Path]:
        """``resemblyzer/pretrained.pt`` of the installed package, or None (found without importing it)."""
        return _weights_path()

    @classmethod
    def describe(cls, name: str, params: Mapping[str, Any], location: "CheckpointLocation") -> MemberDescription:
        """Shape facts from constants of the architecture (nothing is loaded)."""
        path = location.path if location is not None and location.path is not None else _weights_path()
        return MemberDescription(
            kind=cls.kind, width=EMBEDDING, num_states=NUM_STATES, default_hop=HOP, receptive_field=1,
            sample_rate=SAMPLE_RATE, random_weights=False, hop_is_configurable=False,
            weights=f"Resemblyzer's pretrained.pt ({path or 'Resemblyzer not installed: ' + INSTALL})",
            state_names=STATE_NAMES,
        )

    def __init__(
        self, name: str, params: Mapping[str, Any], manifest: Optional[Manifest] = None,
        normalize_waveform: bool = False,
    ) -> None:
        super().__init__(name, normalize_waveform)
        if params:
            raise ConfigError(f"resemblyzer member {name!r} takes no params, got {dict(params)}")
        path = _weights_path()
        if path is None:
            raise CheckpointError(f"resemblyzer member {name!r} needs the weights that ship in the Resemblyzer "
                                  f"wheel (resemblyzer/pretrained.pt); install it with: {INSTALL}")
        self.weights_path = path
        self.features = MelSpectrogram()
        self.layers = torch.nn.ModuleList(
            torch.nn.LSTM(N_MELS if i == 0 else HIDDEN, HIDDEN, batch_first=True) for i in range(NUM_LAYERS)
        )
        self.linear = torch.nn.Linear(HIDDEN, EMBEDDING)
        self._load(path)
        self.num_states = NUM_STATES
        self.state_names = STATE_NAMES
        self.width = EMBEDDING
        self.receptive_field = 1  # any clip >= 1 sample gives 1 + N // 160 frames, as librosa does
        self.default_hop = HOP
        self.sample_rate = SAMPLE_RATE
        self.random_weights = False

    def _load(self, path: Path) -> None:
        """Load ``model_state`` of ``pretrained.pt``: ``lstm.*_l{i}`` into layer ``i``, ``linear.*``."""
        try:
            checkpoint = torch.load(path, map_location="cpu", weights_only=True)
            state = checkpoint["model_state"]
        except (OSError, RuntimeError, KeyError, TypeError) as err:
            raise CheckpointError(f"Resemblyzer weights {path} could not be read ({err}); reinstall: "
                                  f"{INSTALL} --force-reinstall") from None
        converted = {}
        for i in range(NUM_LAYERS):
            for kind in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"):
                converted[f"layers.{i}.{kind}_l0"] = state.get(f"lstm.{kind}_l{i}")
        converted["linear.weight"] = state.get("linear.weight")
        converted["linear.bias"] = state.get("linear.bias")
        missing = sorted(k for k, v in converted.items() if v is None)
        if missing:
            raise CheckpointError(f"Resemblyzer weights {path} lack {missing}; expected Resemblyzer 0.1.4's "
                                  f"3 x 256 LSTM encoder ({INSTALL} --force-reinstall)")
        try:
            self.load_state_dict(converted, strict=True)
        except RuntimeError as err:
            raise CheckpointError(f"Resemblyzer weights {path} do not fit a 3 x 256 LSTM encoder: {err}") from None

    def frame_grid(self, num_samples: int, hop: Optional[int] = None) -> FrameGrid:
        """``1 + N // 160`` frames, frame ``i`` centred at sample ``160 * i`` (librosa, ``center=True``)."""
        if hop not in (None, HOP):
            raise ConfigError(f"resemblyzer member {self.name!r} has a fixed hop of {HOP} samples, got {hop}")
        return FrameGrid(padded_frame_count(num_samples, HOP), 0.0, HOP)

    def states(
        self, wav: torch.Tensor, deepest: int, hop: Optional[int] = None, lengths: Optional[torch.Tensor] = None
    ) -> Iterator[torch.Tensor]:
        """LSTM layers 1..3 per frame, then the L2-normalised embedding of each prefix; see the module docstring.

        Args:
            wav: ``(batch, samples)`` float32 at 16 kHz.
            deepest: the last state to compute (0..3).
            lengths: valid samples per clip of a zero-padded batch; frames past
                clip ``i``'s ``1 + lengths[i] // 160`` are set to zero.
        Yields:
            ``deepest + 1`` tensors ``(batch, 1 + samples // 160, 256)``.
        """
        self.frame_grid(wav.shape[-1], hop)
        valid = None
        if lengths is not None:
            counts = torch.div(lengths.to(wav.device), HOP, rounding_mode="floor") + 1
            frames = padded_frame_count(wav.shape[-1], HOP)
            valid = (torch.arange(frames, device=wav.device)[None, :] < counts[:, None])[..., None]
        for state in self.encode(self.features(wav), deepest):
            yield state if valid is None else state.masked_fill(~valid, 0.0)

    def encode(self, mel: torch.Tensor, deepest: int = NUM_STATES - 1) -> Iterator[torch.Tensor]:
        """States ``0 .. deepest`` of mel frames, as ``VoiceEncoder`` computes them.

        Args:
            mel: ``(batch, frames, 40)`` mel power, e.g. :class:`MelSpectrogram`'s output or
                ``resemblyzer.audio.wav_to_mel_spectrogram(wav)[None]``.
            deepest: the last state to compute (0..3); later layers never run.
        Yields:
            ``(batch, frames, 256)``: LSTM layers 1, 2, 3, then ``relu(linear(.))`` L2-normalised.
        """
        hidden = mel
        for index in range(deepest + 1):
            if index < NUM_LAYERS:
                hidden, _ = self.layers[index](hidden)
                yield hidden
            else:
                yield F.normalize(F.relu(self.linear(hidden)), dim=-1, eps=1e-12)
