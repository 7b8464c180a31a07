"""Reading and writing files: wav in (soundfile), arrays out atomically."""

from __future__ import annotations

import os
from typing import BinaryIO

import numpy as np
import soundfile as sf
import torch

from hear_gura.atomic import atomic_write
from hear_gura.errors import AudioError
from hear_gura.timestamps import SAMPLE_RATE


def read_wav(path: "str | os.PathLike[str]", resample: bool = False) -> torch.Tensor:
    """A mono 16 kHz clip as a float32 tensor of shape ``(samples,)``.

    Multi-channel files are averaged to mono. Other sample rates raise, unless
    ``resample`` (then torchaudio's band-limited sinc resampler is used).
    """
    try:
        data, rate = sf.read(str(path), dtype="float32", always_2d=True)
    except (RuntimeError, sf.LibsndfileError) as err:
        raise AudioError(f"{path}: cannot read audio ({err})") from None
    audio = torch.from_numpy(data.mean(axis=1) if data.shape[1] > 1 else data[:, 0])
    if rate != SAMPLE_RATE:
        if not resample:
            raise AudioError(
                f"{path} is sampled at {rate} Hz; hear_gura models take {SAMPLE_RATE} Hz. Convert it "
                f"(e.g. `sox in.wav -r {SAMPLE_RATE} out.wav`) or pass --resample"
            )
        import torchaudio.functional

        audio = torchaudio.functional.resample(audio, rate, SAMPLE_RATE)
    return audio.contiguous()


class _Writes:
    """A file seen by numpy as a plain writable object, so it writes through ``write``.

    Given a real file, ``np.save`` uses ``ndarray.tofile``, whose failed writes
    (full disk, file size limit) raise an ``OSError`` without ``errno``;
    through ``write`` they keep it (ENOSPC, EFBIG, ...), so the error can say
    what happened. numpy writes in chunks of at most 16 MiB either way.
    """

    def __init__(self, handle: BinaryIO) -> None:
        self.write = handle.write


def save_npy(path: "str | os.PathLike[str]", array: np.ndarray) -> None:
    """``np.save`` to a temporary file, then rename: readers never see a partial file.

    Raises:
        OSError: the write failed (its ``errno`` says why, e.g. ENOSPC); no file is left.
    """
    atomic_write(path, lambda handle: np.save(_Writes(handle), array, allow_pickle=False))
