"""Sounds of the synthetic world, rendered from the General MIDI soundfont ``pretty-midi`` ships.

Notes are rendered by ``tinysoundfont`` at ``render_rate`` (44.1 kHz) and resampled to the
pipeline's sample rate with a polyphase filter: rendering directly at 11 kHz aliases badly.

Shapes: a stem is ``(n_samples,)`` float32.
"""

from __future__ import annotations

import functools
import math
from fractions import Fraction
from pathlib import Path

import numpy as np
from scipy.signal import resample_poly

from pipeline.sources.synthetic.classes import Sound

#: Target RMS of every stem (about -20 dBFS) ...
STEM_RMS = 0.1
#: ... unless its peak would pass this, so that two sources never clip when summed.
STEM_PEAK = 0.45


@functools.cache
def soundfont_path() -> Path:
    """The General MIDI soundfont (TimGM6mb.sf2) inside the ``pretty-midi`` wheel."""
    import pretty_midi

    path = Path(pretty_midi.__file__).parent / "TimGM6mb.sf2"
    if not path.is_file():
        raise FileNotFoundError(f"{path}: the pretty-midi wheel ships no soundfont; reinstall it")
    return path


def note_events(
    sound: Sound, rng: np.random.Generator, seconds: float
) -> list[tuple[float, float, int, int]]:
    """``(onset, duration, key, velocity)`` events filling ``seconds`` with the class's pattern."""
    low, high = sound.register
    short, long = sound.note_seconds
    events = []
    t = float(rng.uniform(0, 0.3))
    if sound.pattern == "melody":
        key = int(rng.integers(low, high + 1))
        while t < seconds:
            dur = float(rng.uniform(short, long))
            events.append((t, dur, key, int(rng.integers(70, 111))))
            # A random walk in the register: melodies, not random pitch clouds.
            key = int(np.clip(key + rng.choice([-5, -4, -3, -2, -1, 1, 2, 3, 4, 5]), low, high))
            t += dur + float(rng.choice([0.0, 0.0, 0.05, 0.15]))
    elif sound.pattern == "ticks":
        key = int(rng.integers(low, high - 4))
        period = float(rng.uniform(0.4, 0.6))
        i = 0
        while t < seconds:
            events.append((t, 0.1, key + 4 * (i % 2), 100))
            t += period
            i += 1
    elif sound.pattern == "ring":
        key = int(rng.integers(low, high + 1))
        while t < seconds:
            ring = float(rng.uniform(short, long))
            end = min(t + ring, seconds)
            while t < end:
                events.append((t, 0.06, key, 110))
                t += 0.08
            t = end + float(rng.uniform(0.6, 1.2))
    elif sound.pattern == "sustain":
        while t < seconds:
            dur = float(rng.uniform(short, long))
            events.append((t, dur, int(rng.integers(low, high + 1)), int(rng.integers(80, 121))))
            t += dur + float(rng.uniform(0.0, 0.4))
    else:
        raise ValueError(f"unknown sound pattern {sound.pattern!r}")
    return events


def render_events(sound: Sound, events, seconds: float, render_rate: int) -> np.ndarray:
    """Render events on the GM ``sound.program`` to mono float32 at ``render_rate``."""
    import tinysoundfont

    synth = tinysoundfont.Synth(samplerate=render_rate)
    sfid = synth.sfload(str(soundfont_path()))
    synth.program_select(0, sfid, 0, sound.program)
    n_total = int(round(seconds * render_rate))
    out = np.zeros(n_total, np.float32)
    timeline = sorted(
        [(on, 1, key, vel) for on, dur, key, vel in events]
        + [(on + dur, 0, key, 0) for on, dur, key, vel in events]
    )
    pos = 0
    for when, is_on, key, vel in timeline:
        stop = min(int(round(when * render_rate)), n_total)
        if stop > pos:
            buf = np.frombuffer(synth.generate(stop - pos), dtype=np.float32)
            out[pos:stop] = buf.reshape(-1, 2).mean(axis=1)
            pos = stop
        if pos >= n_total:
            break
        if is_on:
            synth.noteon(0, key, vel)
        else:
            synth.noteoff(0, key)
    if pos < n_total:
        out[pos:] = np.frombuffer(synth.generate(n_total - pos), np.float32).reshape(-1, 2).mean(1)
    return out


def resample(x: np.ndarray, from_rate: int, to_rate: int) -> np.ndarray:
    """Polyphase resampling (anti-aliased) between integer rates."""
    if from_rate == to_rate:
        return x.astype(np.float32)
    ratio = Fraction(to_rate, from_rate)
    return resample_poly(x, ratio.numerator, ratio.denominator).astype(np.float32)


def render_stem(
    sound: Sound,
    rng: np.random.Generator,
    seconds: float,
    sample_rate: int,
    render_rate: int = 44100,
) -> np.ndarray:
    """One source's audio: a fresh random melody or pattern, normalised to :data:`STEM_RMS`
    (or to :data:`STEM_PEAK` where its peak is higher)."""
    events = note_events(sound, rng, seconds)
    hi = render_events(sound, events, seconds, render_rate)
    x = resample(hi, render_rate, sample_rate)[: int(round(seconds * sample_rate))]
    rms = math.sqrt(float(np.mean(x.astype(np.float64) ** 2)))
    if rms < 1e-6:
        raise RuntimeError(f"GM program {sound.program} rendered silence")
    gain = min(STEM_RMS / rms, STEM_PEAK / float(np.abs(x).max()))
    return (x * gain).astype(np.float32)
