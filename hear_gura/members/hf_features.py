"""Input features of the spectrogram-fed transformers encoders, computed in torch, batched.

Each function reproduces one transformers feature extractor (configured by a
checkpoint's ``preprocessor_config.json``) on a zero-padded batch, so features
can stay on the GPU. Tested against the extractor itself on the same audio
(``tests/test_hf_architectures.py``; the differences measured there are float
round-off: the extractors compute in float64 and store the FFT as complex64).

- :func:`whisper_log_mel`: ``WhisperFeatureExtractor`` (its own torch path, the
  same operations).
- :func:`kaldi_fbank`: ``ASTFeatureExtractor`` (torchaudio's Kaldi fbank, the
  function the extractor calls; one call per clip).
- :func:`seamless_fbank`: ``SeamlessM4TFeatureExtractor`` (w2v-BERT 2.0):
  Kaldi-style fbank of ``numpy`` in float64, per-mel-bin normalisation over the
  clip, two frames stacked into one.
- :func:`clap_log_mel`: ``ClapFeatureExtractor``'s dB mel spectrogram.
"""

from __future__ import annotations

from typing import Any, List, Optional, Sequence, Tuple

import torch

from hear_gura.timestamps import SAMPLE_RATE


def resample(wav: torch.Tensor, rate: int) -> torch.Tensor:
    """``(batch, samples)`` at 16 kHz -> ``rate`` Hz with ``torchaudio.functional.resample`` (default sinc filter).

    The output has ``ceil(samples * rate / 16000)`` samples; a zero-padded batch
    stays zero-padded (the filter is a convolution), so each clip's first
    :func:`native_length` samples equal its resampling alone.
    """
    if rate == SAMPLE_RATE:
        return wav
    import torchaudio.functional as AF

    return AF.resample(wav, SAMPLE_RATE, rate)


def native_length(num_samples: int, rate: int) -> int:
    """Samples at ``rate`` Hz that :func:`resample` gives for ``num_samples`` samples at 16 kHz."""
    return num_samples if rate == SAMPLE_RATE else -(-num_samples * rate // SAMPLE_RATE)


def whisper_log_mel(wav: torch.Tensor, extractor: Any) -> torch.Tensor:
    """Whisper's log-mel spectrogram of a zero-padded batch, ``(batch, n_mels, samples // hop_length)``.

    Exactly ``WhisperFeatureExtractor._torch_extract_fbank_features`` (centred
    STFT, the extractor's mel filters, log10, each clip floored at its maximum
    minus 8, ``(x + 4) / 4``), without dithering. The maximum is taken over the
    whole row; zero padding only adds frames at the floor, so it is the clip's.

    Args:
        wav: ``(batch, samples)`` float32 at the extractor's rate.
        extractor: a ``transformers.WhisperFeatureExtractor``.
    """
    window = torch.hann_window(extractor.n_fft, device=wav.device)
    stft = torch.stft(wav.float(), extractor.n_fft, extractor.hop_length, window=window, return_complex=True)
    magnitudes = (stft[..., :-1].abs() ** 2).contiguous()
    filters = torch.from_numpy(extractor.mel_filters).to(wav.device, torch.float32)
    log_spec = torch.clamp(filters.T @ magnitudes, min=1e-10).log10()
    peak = log_spec.max(dim=2, keepdim=True)[0].max(dim=1, keepdim=True)[0]
    return (torch.maximum(log_spec, peak - 8.0) + 4.0) / 4.0


def kaldi_fbank(wav: torch.Tensor, lengths: Sequence[int], extractor: Any, frames: int) -> torch.Tensor:
    """AST's input: Kaldi fbank of each clip, zero-padded (or cut) to ``frames``, normalised; ``(batch, frames, mels)``.

    What ``ASTFeatureExtractor`` does per clip: ``torchaudio.compliance.kaldi.fbank``
    (Hanning window, 25 ms / 10 ms, ``num_mel_bins``) of the raw waveform, zero
    frames appended up to ``max_length``, then ``(x - mean) / (2 * std)`` when
    ``do_normalize``.
    """
    import torchaudio.compliance.kaldi as kaldi

    rows = []
    for index, length in enumerate(lengths):
        fbank = kaldi.fbank(wav[index : index + 1, : int(length)].float(), sample_frequency=extractor.sampling_rate,
                            window_type="hanning", num_mel_bins=extractor.num_mel_bins)
        fbank = torch.nn.functional.pad(fbank[:frames], (0, 0, 0, max(0, frames - fbank.shape[0])))
        rows.append(fbank)
    features = torch.stack(rows)
    if getattr(extractor, "do_normalize", True):
        features = (features - extractor.mean) / (extractor.std * 2)
    return features


def _frames(wav: torch.Tensor, frame_length: int, hop: int) -> torch.Tensor:
    """``(batch, samples)`` -> ``(batch, frames, frame_length)`` without padding (Kaldi's ``snip_edges``)."""
    return wav.unfold(-1, frame_length, hop)


def seamless_fbank(wav: torch.Tensor, lengths: Sequence[int], extractor: Any) -> Tuple[torch.Tensor, List[int]]:
    """w2v-BERT 2.0's input: ``(batch, frames, stride * mels)`` and the valid stacked frames of each clip.

    ``SeamlessM4TFeatureExtractor`` in torch, float64: the waveform times 2^15,
    400-sample frames every 160 samples (no padding), DC offset removed,
    pre-emphasis 0.97, Povey window, 512-point power spectrum, the extractor's
    Kaldi mel filters, floor 1.19e-7, natural log; each mel bin normalised over
    the clip's frames (mean, variance with ddof = 1, + 1e-7); ``stride``
    consecutive frames stacked. A clip with an odd frame count keeps its last
    frame in the statistics but not as a stacked frame (the extractor pads it
    and masks the stacked frame out).

    Returns:
        features, float32, zero past each clip's frames; per clip, its number of stacked frames.
    """
    stride = int(extractor.stride)
    scaled = wav.double() * (2 ** 15)
    frames = _frames(scaled, 400, 160)  # (batch, K, 400)
    frames = frames - frames.mean(dim=-1, keepdim=True)
    emphasised = torch.cat([frames[..., :1] * (1 - 0.97), frames[..., 1:] - 0.97 * frames[..., :-1]], dim=-1)
    window = torch.from_numpy(extractor.window).to(wav.device, torch.float64)
    # numpy's spectrogram stores the FFT as complex64 before squaring: round as it does.
    spectrum = torch.fft.rfft(emphasised * window, n=512).to(torch.complex64).to(torch.complex128).abs() ** 2
    filters = torch.from_numpy(extractor.mel_filters).to(wav.device, torch.float64)
    log_mel = torch.log(torch.clamp(spectrum @ filters, min=1.192092955078125e-07))  # (batch, K, mels)
    batch, _, mels = log_mel.shape
    counts = [max(0, (int(n) - 400) // 160 + 1) for n in lengths]
    stacked = max(c // stride for c in counts)
    out = log_mel.new_zeros((batch, stacked, stride * mels))
    for index, count in enumerate(counts):
        clip = log_mel[index, :count]
        clip = (clip - clip.mean(0)) / torch.sqrt(clip.var(0, unbiased=True) + 1e-7)
        keep = (count // stride) * stride
        out[index, : count // stride] = clip[:keep].reshape(count // stride, stride * mels)
    return out.float(), [c // stride for c in counts]


def clap_log_mel(wav: torch.Tensor, extractor: Any, filters: Any) -> torch.Tensor:
    """CLAP's dB mel spectrogram of full-length rows, ``(batch, frames, mels)``, float32.

    ``ClapFeatureExtractor._np_extract_fbank_features`` in torch, float64:
    centred (reflect-padded) frames of ``fft_window_size`` every ``hop_length``,
    periodic Hann window, power spectrum, ``filters`` (the extractor's HTK mel
    filters for ``truncation="fusion"``, else its Slaney ones), floor 1e-10,
    ``10 * log10``.

    Args:
        wav: ``(batch, max_samples)`` at the extractor's rate, already repeated /
            padded as the extractor's ``padding`` says.
    """
    from transformers.audio_utils import window_function

    size, hop = int(extractor.fft_window_size), int(extractor.hop_length)
    window = torch.from_numpy(window_function(size, "hann")).to(wav.device, torch.float64)
    stft = torch.stft(wav.double(), size, hop, window=window, center=True, pad_mode="reflect", return_complex=True)
    power = stft.abs() ** 2  # (batch, bins, frames)
    mel = torch.from_numpy(filters).to(wav.device, torch.float64).T @ power
    return (10.0 * torch.log10(torch.clamp(mel, min=1e-10))).transpose(1, 2).float()


def clap_fill(clip: torch.Tensor, max_samples: int, padding: str) -> torch.Tensor:
    """One clip of at most ``max_samples`` samples, filled to ``max_samples`` as ``ClapFeatureExtractor`` pads.

    ``repeatpad``: the clip repeated ``int(max / len)`` times, then zeros;
    ``repeat``: repeated and cut to the maximum; otherwise (``pad``): zeros.
    """
    length = clip.shape[-1]
    if length < max_samples and length > 0:
        if padding == "repeat":
            clip = clip.repeat(int(max_samples / length) + 1)[:max_samples]
        elif padding == "repeatpad":
            clip = clip.repeat(int(max_samples / length))
    return torch.nn.functional.pad(clip, (0, max_samples - clip.shape[-1]))


def valid_mask(counts: Sequence[int], frames: int, device: Optional[torch.device] = None) -> torch.Tensor:
    """``(batch, frames)`` bool: frame ``j`` of clip ``i`` is valid when ``j < counts[i]``."""
    counts_t = torch.as_tensor(list(counts), device=device)
    return torch.arange(frames, device=device)[None, :] < counts_t[:, None]
