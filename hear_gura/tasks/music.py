"""Music tasks rendered by fluidsynth from General MIDI soundfonts (real sampled instruments).

One MIDI file per instrument holds all of that instrument's clips one after
another (each followed by "all sound off" and a gap), is rendered in one
fluidsynth call (float output, no reverb or chorus: deterministic) and sliced.
MIDI time runs at 1 tick = 1 ms. ``ci`` uses TimGM6mb (6 MB); ``full`` adds
FluidR3_GM (Debian package fluid-soundfont-gm, 148 MB).
"""

from __future__ import annotations

import subprocess
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import mido
import numpy as np

from hear_gura.tasks.audio import SAMPLE_RATE, normalize_peak, seconds_to_samples
from hear_gura.tasks.common import (
    TRAINVALTEST,
    Clip,
    Event,
    TaskBuildError,
    TaskPlan,
    TaskSpec,
    fold_names,
    ordered_map,
    partition,
    round_robin,
    task_rng,
)
from hear_gura.tasks.sources import (
    FLUIDR3,
    FLUIDR3_SOUNDFONT,
    FLUIDSYNTH,
    TIMGM,
    TIMGM_SOUNDFONT,
    Requirement,
)

SOUNDFONTS: dict[str, dict[str, Path]] = {
    "ci": {"timgm": TIMGM_SOUNDFONT},
    "full": {"timgm": TIMGM_SOUNDFONT, "fluidr3": FLUIDR3_SOUNDFONT},
}
MUSIC_REQUIREMENTS: dict[str, list[Requirement]] = {"ci": [FLUIDSYNTH, TIMGM], "full": [FLUIDSYNTH, TIMGM, FLUIDR3]}

MELODIC_PROGRAMS = tuple(p for p in range(112) if not 96 <= p < 104)
"""GM programs with a clear pitch: all but synth effects (96-103) and percussion/SFX (112-127)."""
KEYBOARD_PROGRAMS = (0, 1, 2, 3, 4, 5, 6, 7, 16, 17, 18, 19)
"""GM pianos, electric pianos, harpsichord, clavinet and organs."""

_TICKS_PER_BEAT = 1000
_TEMPO = 1_000_000  # microseconds per beat: 1 tick = 1 ms
_GAP_MS = 400  # silence between consecutive clips in one rendering
_ALL_SOUND_OFF = 120  # MIDI controller number


@dataclass(frozen=True)
class Instrument:
    """A soundfont preset: soundfont short name and path, GM program number (0-127)."""

    soundfont: str
    path: Path
    program: int

    @property
    def key(self) -> str:
        """Grouping key (``timgm:000``)."""
        return f"{self.soundfont}:{self.program:03d}"


@dataclass(frozen=True)
class Note:
    """A MIDI note: pitch, velocity (1-127), onset and offset in ms from the clip start."""

    pitch: int
    velocity: int
    start_ms: int
    end_ms: int


def instruments(size: str, programs: Sequence[int]) -> list[Instrument]:
    """Every (soundfont, program) pair of ``size``'s soundfonts, soundfont by soundfont."""
    return [Instrument(name, path, p) for name, path in SOUNDFONTS[size].items() for p in programs]


def render_clips(instrument: Instrument, clips: Sequence[Sequence[Note]], clip_ms: int) -> list[np.ndarray]:
    """Render each note list as one ``clip_ms``-long clip played on ``instrument`` (16 kHz float32).

    All clips go into one MIDI file, ``clip_ms + 400`` ms apart, with all
    sound cut at the end of each clip so none bleeds into the next.
    """
    slot = clip_ms + _GAP_MS
    messages: list[tuple[int, int, mido.Message]] = []  # (time ms, order, message)
    for i, notes in enumerate(clips):
        base = i * slot
        for n in notes:
            messages.append((base + n.start_ms, 1, mido.Message("note_on", note=n.pitch, velocity=n.velocity)))
            messages.append((base + min(n.end_ms, clip_ms), 0, mido.Message("note_off", note=n.pitch, velocity=0)))
        messages.append((base + clip_ms + 1, 2, mido.Message("control_change", control=_ALL_SOUND_OFF, value=0)))
    messages.sort(key=lambda m: (m[0], m[1], m[2].bytes()))
    track = mido.MidiTrack()
    track.append(mido.MetaMessage("set_tempo", tempo=_TEMPO, time=0))
    track.append(mido.Message("program_change", program=instrument.program, time=0))
    now = 0
    for time_ms, _, message in messages:
        track.append(message.copy(time=time_ms - now))
        now = time_ms
    track.append(mido.MetaMessage("end_of_track", time=_GAP_MS))
    midi = mido.MidiFile(ticks_per_beat=_TICKS_PER_BEAT)
    midi.tracks.append(track)
    audio = _fluidsynth(midi, instrument.path)
    n = seconds_to_samples(clip_ms / 1000)
    starts = [seconds_to_samples(i * slot / 1000) for i in range(len(clips))]
    needed = starts[-1] + n
    if len(audio) < needed:
        audio = np.pad(audio, (0, needed - len(audio)))
    return [audio[s : s + n].copy() for s in starts]


def _fluidsynth(midi: mido.MidiFile, soundfont: Path) -> np.ndarray:
    """Render ``midi`` with ``soundfont``: mono float32 at 16 kHz (no reverb, no chorus)."""
    with tempfile.TemporaryDirectory(prefix="hear_gura_midi_") as tmp:
        path = Path(tmp) / "in.mid"
        midi.save(path)
        args = ["fluidsynth", "-ni", "-q", "-R", "0", "-C", "0", "-g", "0.5", "-r", str(SAMPLE_RATE)]
        args += ["-O", "float", "-T", "raw", "-F", "/dev/stdout", str(soundfont), str(path)]
        result = subprocess.run(args, capture_output=True, check=False)
    if result.returncode != 0 or not result.stdout:
        raise TaskBuildError(f"fluidsynth failed on {soundfont}: {result.stderr.decode(errors='replace').strip()}")
    stereo = np.frombuffer(result.stdout, dtype="<f4").reshape(-1, 2)
    return stereo.mean(axis=1).astype(np.float32)


def _audible(audio: np.ndarray, what: str) -> np.ndarray:
    if float(np.max(np.abs(audio))) < 1e-4:
        raise TaskBuildError(f"fluidsynth rendered silence for {what}")
    return audio


def covers(instrument: Instrument, pitches: Sequence[int]) -> bool:
    """True when ``instrument`` sounds (peak >= -60 dBFS at velocity 100) at every one of ``pitches``.

    Soundfont presets only map samples to part of the keyboard (FluidR3's
    tuba stops at MIDI 72, for one); elsewhere they are silent.
    """
    audios = render_clips(instrument, [[Note(p, 100, 0, 150)] for p in pitches], 250)
    return all(float(np.max(np.abs(a))) >= 1e-3 for a in audios)


def choose_instruments(candidates: Sequence[Instrument], pitches: Sequence[int], count: int) -> list[Instrument]:
    """The first ``count`` of ``candidates`` (in order) that sound at every one of ``pitches``."""
    chosen: list[Instrument] = []
    for instrument, ok in zip(candidates, ordered_map(lambda inst: covers(inst, pitches), candidates), strict=True):
        if ok:
            chosen.append(instrument)
            if len(chosen) == count:
                return chosen
    raise TaskBuildError(
        f"only {len(chosen)} of {len(candidates)} soundfont presets sound over "
        f"MIDI {pitches[0]}-{pitches[-1]}; need {count}"
    )


# --------------------------------------------------------------------------- NSynth-like pitch


@dataclass(frozen=True)
class PitchSize:
    """Pitch-task size: MIDI pitch range (inclusive), instruments drawn, clip length (s)."""

    pitch_min: int
    pitch_max: int
    instruments: int
    duration: float
    fractions: tuple[float, float, float]


PITCH_SIZES = {
    "ci": PitchSize(pitch_min=48, pitch_max=71, instruments=4, duration=0.4, fractions=(0.5, 0.25, 0.25)),
    "full": PitchSize(pitch_min=21, pitch_max=108, instruments=48, duration=4.0, fractions=(0.7, 0.15, 0.15)),
}


def build_nsynth_like_pitch(size: str, seed: int) -> TaskPlan:
    """NSynth-like pitch classification of single notes; splits disjoint by instrument.

    Each chosen instrument (a preset that sounds over the whole range) plays
    every pitch of the range once (note held for 3/4 of the clip, then
    released); labels are MIDI pitch numbers.
    """
    cfg = PITCH_SIZES[size]
    name = "nsynth_like_pitch"
    rng = task_rng(seed, name)
    pool = instruments(size, MELODIC_PROGRAMS)
    pitches = list(range(cfg.pitch_min, cfg.pitch_max + 1))
    chosen = choose_instruments([pool[i] for i in rng.permutation(len(pool))], pitches, cfg.instruments)
    split_of = {
        inst.key: split
        for split, group in partition(chosen, TRAINVALTEST, cfg.fractions, rng).items()
        for inst in group
    }
    clip_ms = round(cfg.duration * 1000)
    plans = [(inst, [Note(p, int(rng.integers(50, 128)), 0, int(clip_ms * 0.75)) for p in pitches]) for inst in chosen]
    spec = TaskSpec(
        name=name,
        embedding_type="scene",
        prediction_type="multiclass",
        split_mode="trainvaltest",
        sample_duration=cfg.duration,
        evaluation=("pitch_acc", "chroma_acc"),
        group_key="instrument",
        description="NSynth-like pitch of single notes rendered by fluidsynth from GM soundfonts; instrument-disjoint",
        extra={"pitch_range_min": cfg.pitch_min, "pitch_range_max": cfg.pitch_max},
    )

    def render(job: tuple[int, tuple[Instrument, list[Note]]]) -> list[Clip]:
        index, (inst, notes) = job
        r = task_rng(seed, name, index)
        audios = render_clips(inst, [[n] for n in notes], clip_ms)
        return [
            Clip(
                split_of[inst.key],
                normalize_peak(_audible(a, f"{inst.key} pitch {n.pitch}"), float(r.uniform(-12, -1))),
                [str(n.pitch)],
                [inst.key],
            )
            for a, n in zip(audios, notes, strict=True)
        ]

    clips = (clip for batch in ordered_map(render, enumerate(plans)) for clip in batch)
    return TaskPlan(spec, [str(p) for p in pitches], len(chosen) * len(pitches), clips)


# --------------------------------------------------------------------------- Maestro-like onsets

CHORDS = ((0, 4, 7), (0, 3, 7), (0, 4, 7, 10), (0, 3, 7, 10), (0, 7), (0, 12), (0, 4, 7, 12))
"""Chord shapes in semitones above the root: major, minor, sevenths, fifth, octave, major with octave."""


@dataclass(frozen=True)
class OnsetSize:
    """Onset-task size: MIDI pitch range (inclusive), instruments, clips per instrument, clip length (s)."""

    pitch_min: int
    pitch_max: int
    instruments: int
    per_instrument: int
    duration: float
    nfolds: int = 5


# full: 60 clips x 30 s = 0.5 h, 12 clips (4 instruments) per fold. The cost
# of an onset task is its probe, not its embeddings: HEAR's Maestro fixes 50
# epochs over every frame, trained 6 times (2 grid points on the first fold,
# then the 4 other folds), which on 2 CPU cores takes about 1 h per hour of
# audio for the fbank floor (100 frames/s) and more for CREPE (2048 values per
# 50 ms). 0.5 h keeps a full crepe + fbank run of this task near 1.5 h.
ONSET_SIZES = {
    "ci": OnsetSize(pitch_min=60, pitch_max=71, instruments=5, per_instrument=2, duration=3.0),
    "full": OnsetSize(pitch_min=21, pitch_max=108, instruments=20, per_instrument=3, duration=30.0),
}


def random_sequence(rng: np.random.Generator, pitch_min: int, pitch_max: int, clip_ms: int) -> list[Note]:
    """A keyboard-like sequence of single notes (a random walk) and chords filling ``clip_ms``.

    Inter-onset intervals are 100-500 ms, durations 100-800 ms; a pitch is
    never struck again while it still sounds.
    """
    notes: list[Note] = []
    t = int(rng.integers(50, 300))
    previous = int(rng.integers(pitch_min, pitch_max + 1))
    while t < clip_ms - 150:
        if rng.random() < 0.35:
            shape = CHORDS[int(rng.integers(0, len(CHORDS)))]
            root = int(rng.integers(pitch_min, max(pitch_min, pitch_max - shape[-1]) + 1))
            pitches = [root + s for s in shape if root + s <= pitch_max]
        else:
            previous = int(np.clip(previous + rng.integers(-5, 6), pitch_min, pitch_max))
            pitches = [previous]
        sounding = {n.pitch for n in notes if n.end_ms > t}
        for p in pitches:
            if p not in sounding:
                end = min(clip_ms, t + int(rng.integers(100, 801)))
                notes.append(Note(p, int(rng.integers(40, 111)), t, end))
        t += int(rng.integers(100, 501))
    return notes


def build_maestro_like_onset(size: str, seed: int) -> TaskPlan:
    """Maestro-like note transcription of keyboard sequences with chords; folds disjoint by instrument.

    Event labels are MIDI pitches with note-on / note-off times (ms). As in
    HEAR's Maestro, early stopping uses the loss and one post-processing setting.
    """
    cfg = ONSET_SIZES[size]
    name = "maestro_like_onset"
    rng = task_rng(seed, name)
    folds = fold_names(cfg.nfolds)
    pool = instruments(size, KEYBOARD_PROGRAMS)
    pitches = list(range(cfg.pitch_min, cfg.pitch_max + 1))
    chosen = choose_instruments([pool[i] for i in rng.permutation(len(pool))], pitches, cfg.instruments)
    fold_of = {inst.key: fold for fold, group in round_robin(chosen, folds, rng).items() for inst in group}
    clip_ms = round(cfg.duration * 1000)
    plans = [
        (inst, [random_sequence(rng, cfg.pitch_min, cfg.pitch_max, clip_ms) for _ in range(cfg.per_instrument)])
        for inst in chosen
    ]
    spec = TaskSpec(
        name=name,
        embedding_type="event",
        prediction_type="multilabel",
        split_mode="new_split_kfold",
        nfolds=cfg.nfolds,
        sample_duration=cfg.duration,
        evaluation=("event_onset_50ms_fms", "event_onset_offset_50ms_20perc_fms"),
        group_key="instrument",
        description="Maestro-like transcription of keyboard sequences with chords rendered by fluidsynth",
        extra={
            "use_scoring_for_early_stopping": False,
            "evaluation_params": {
                "event_postprocessing_grid": {"median_filter_ms": [150], "min_duration": [50]},
                "task_specific_param_grid": {"max_epochs": [50], "check_val_every_n_epoch": [1]},
            },
        },
    )

    def render(job: tuple[int, tuple[Instrument, list[list[Note]]]]) -> list[Clip]:
        index, (inst, sequences) = job
        r = task_rng(seed, name, index)
        audios = render_clips(inst, sequences, clip_ms)
        return [
            Clip(
                fold_of[inst.key],
                normalize_peak(_audible(a, f"{inst.key} sequence"), float(r.uniform(-12, -1))),
                [Event(str(n.pitch), n.start_ms, n.end_ms) for n in notes],
                [inst.key],
            )
            for a, notes in zip(audios, sequences, strict=True)
        ]

    clips = (clip for batch in ordered_map(render, enumerate(plans)) for clip in batch)
    return TaskPlan(spec, [str(p) for p in pitches], cfg.instruments * cfg.per_instrument, clips)


BUILDERS = {"nsynth_like_pitch": build_nsynth_like_pitch, "maestro_like_onset": build_maestro_like_onset}
REQUIREMENTS = {name: MUSIC_REQUIREMENTS for name in BUILDERS}
"""Task name -> size -> what it needs installed."""
