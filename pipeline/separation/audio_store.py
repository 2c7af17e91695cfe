"""The audio store (HDF5): every usable clip's waveform, decoded once, for random windowed reads.

Training mixes random windows of random clip pairs thousands of times; reading them from one
file of concatenated int16 samples costs a slice per window instead of opening and parsing a
file per sample. Layout (``docs/data-formats.md``)::

    audio     (S,)    int16   all clips' samples, concatenated (mono, full scale 32768)
    offset    (C+1,)  int64   clip c owns samples offset[c]:offset[c + 1]
    clip_id   (C,)    str     sorted
    attrs: schema_version, sample_rate
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import soundfile as sf
from tqdm import tqdm

from pipeline import io
from pipeline.errors import PipelineError
from pipeline.hdf5 import open_store

log = logging.getLogger(__name__)

SCHEMA_VERSION = 1


class AudioStoreError(PipelineError, ValueError):
    """An audio store or clip that cannot be read as it is."""


def pack_audio(
    clips: dict[str, Path],
    out: str | Path,
    sample_rate: int,
    durations: dict[str, float] | None = None,
) -> dict[str, Any]:
    """Read each clip's wav (mono int16 at ``sample_rate``) into one store; returns the metrics.

    A clip whose wav is missing, unreadable, at another rate, or (``durations``: the seconds the
    download stage decoded) of another length than was recorded is recorded and left out.
    """
    ids = sorted(clips)
    skipped: dict[str, str] = {}
    kept: list[str] = []
    waves: list[np.ndarray] = []
    for cid in tqdm(ids, desc="audio", unit="clip", mininterval=2):
        try:
            wav, rate = sf.read(clips[cid], dtype="int16", always_2d=True)
        except (sf.LibsndfileError, RuntimeError, OSError) as err:
            skipped[cid] = f"unreadable: {str(err).splitlines()[0][:200]}"
            continue
        if rate != sample_rate:
            skipped[cid] = f"sample rate {rate}, expected {sample_rate}"
            continue
        expected = (durations or {}).get(cid)
        if expected is not None and abs(len(wav) / rate - expected) > 2 / rate:
            skipped[cid] = (
                f"{len(wav) / rate:.3f} s decoded, {expected:.3f} s when downloaded: the file "
                "changed; rerun `dvc repro download` to fetch it again"
            )
            log.warning("audio: %s skipped: %s", cid, skipped[cid])
            continue
        kept.append(cid)
        waves.append(wav[:, 0])
    if not kept:
        raise AudioStoreError(f"no clip's audio could be read ({len(skipped)} skipped)")
    offset = np.concatenate([[0], np.cumsum([len(w) for w in waves])]).astype(np.int64)
    with io.atomic_path(out) as tmp, h5py.File(tmp, "w") as f:
        f.create_dataset("audio", data=np.concatenate(waves))
        f.create_dataset("offset", data=offset)
        f.create_dataset("clip_id", data=kept, dtype=h5py.string_dtype())
        f.attrs["schema_version"] = SCHEMA_VERSION
        f.attrs["sample_rate"] = sample_rate
    lengths = np.diff(offset) / sample_rate
    return {
        "clips": len(kept),
        "skipped": len(skipped),
        "skipped_clips": dict(sorted(skipped.items())),
        "hours": round(float(lengths.sum()) / 3600, 3),
        "seconds_per_clip": {
            "min": round(float(lengths.min()), 3),
            "max": round(float(lengths.max()), 3),
        },
    }


class AudioStore:
    """Windowed reads from an audio store; the file opens lazily in each process."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        with open_store(self.path, SCHEMA_VERSION, "audio store", "audio", AudioStoreError) as f:
            self.sample_rate = int(f.attrs["sample_rate"])
            self.offset = f["offset"][()]
            self.clip_ids = [s.decode() for s in f["clip_id"][()]]
        self.index = {c: i for i, c in enumerate(self.clip_ids)}
        self._file: h5py.File | None = None

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_file": None}

    def __contains__(self, clip_id: str) -> bool:
        return clip_id in self.index

    def length(self, clip_id: str) -> int:
        """Samples in a clip."""
        i = self.index[clip_id]
        return int(self.offset[i + 1] - self.offset[i])

    def read(self, clip_id: str, start: int = 0, length: int | None = None) -> np.ndarray:
        """``length`` samples from ``start`` as float32 in [-1, 1) ``(length,)``, zero-padded past
        the clip's end; the whole clip when ``length`` is None."""
        if clip_id not in self.index:
            raise KeyError(f"{clip_id} is not in {self.path}")
        if self._file is None:
            self._file = h5py.File(self.path, "r")
        i = self.index[clip_id]
        lo, hi = int(self.offset[i]), int(self.offset[i + 1])
        n = hi - lo - start if length is None else length
        out = np.zeros(n, np.float32)
        got = self._file["audio"][lo + start : min(hi, lo + start + n)]
        out[: len(got)] = got / 32768.0
        return out
