"""The clip table: the one schema every source writes and every later stage reads.

Layout of a source folder (see ``docs/data-formats.md``)::

    <out>/clips.jsonl   one JSON object per clip (a :class:`Clip`), sorted by clip_id
    <out>/meta.json     schema_version, source name, counts per split, provenance of the raw files
    <out>/raw/          the raw metadata files as fetched (checked by sha256 where pinned)
"""

from __future__ import annotations

import dataclasses
import json
import re
from collections import Counter
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from pipeline import io
from pipeline.errors import PipelineError

SCHEMA_VERSION = 1
SPLITS = ("train", "val", "test")
CLIPS_FILE = "clips.jsonl"
META_FILE = "meta.json"
RAW_DIR = "raw"

OPTIONAL = {"segment"}  # record keys that may be absent (None)
_CLIP_ID = re.compile(r"^[A-Za-z0-9_-][A-Za-z0-9_.-]*$")


class ClipTableError(PipelineError, ValueError):
    """A clip table that cannot be read or written as it is."""


@dataclasses.dataclass(frozen=True)
class Clip:
    """One row of the clip table.

    Args:
        clip_id: unique, filesystem-safe id (``<youtube_id>_<start>`` for AudioCaps).
        source: the source that produced the row (``audiocaps``, ``music``, ``csv``, ...).
        youtube_id: the YouTube video id, or None when the clip comes from ``url``.
        url: a direct media URL, or None when the download stage builds it from ``youtube_id``.
        start: start of the clip's window in the source video, seconds.
        end: end of the window, seconds; None for a whole video (MUSIC, cut into clips later).
        split: ``train``, ``val`` or ``test``.
        captions: the clip's captions (AudioCaps: 1 for train, 5 for val/test); empty for MUSIC.
        category: the clip's labelled categories (MUSIC instruments, duets two); empty otherwise.
        segment: the labelled event's first and last second in the clip (AVE), or None; left
            out of a record where None, so tables of other sources read and write as before.
    """

    clip_id: str
    source: str
    youtube_id: str | None
    url: str | None
    start: float
    end: float | None
    split: str
    captions: tuple[str, ...] = ()
    category: tuple[str, ...] = ()
    segment: tuple[float, float] | None = None

    def validate(self) -> None:
        """Raise :class:`ClipTableError` when a field breaks the schema."""
        if not _CLIP_ID.match(self.clip_id):
            raise ClipTableError(f"clip_id {self.clip_id!r} is not filesystem-safe")
        if self.split not in SPLITS:
            raise ClipTableError(f"clip {self.clip_id}: split {self.split!r} not in {SPLITS}")
        if self.youtube_id is None and self.url is None:
            raise ClipTableError(f"clip {self.clip_id}: needs a youtube_id or a url")
        if self.start < 0 or (self.end is not None and self.end <= self.start):
            raise ClipTableError(f"clip {self.clip_id}: bad window [{self.start}, {self.end}]")

    def to_record(self) -> dict[str, Any]:
        rec = dataclasses.asdict(self)
        rec["captions"] = list(self.captions)
        rec["category"] = list(self.category)
        if self.segment is None:
            del rec["segment"]
        else:
            rec["segment"] = list(self.segment)
        return rec

    @classmethod
    def from_record(cls, rec: dict[str, Any]) -> Clip:
        fields = {f.name for f in dataclasses.fields(cls)}
        if not fields - OPTIONAL <= set(rec) <= fields:
            raise ClipTableError(f"clip record has keys {sorted(rec)}, expected {sorted(fields)}")
        args = {**rec, "captions": tuple(rec["captions"]), "category": tuple(rec["category"])}
        if rec.get("segment") is not None:
            args["segment"] = tuple(rec["segment"])
        return cls(**args)


def clip_id_for(key: str, start: float) -> str:
    """The clip id of a window starting at ``start`` seconds in video ``key``."""
    return f"{key}_{start:g}"


def write_table(out_dir: str | Path, clips: Iterable[Clip], meta: dict[str, Any]) -> dict[str, Any]:
    """Validate and write a clip table; returns the written ``meta.json`` content.

    Raises:
        ClipTableError: on an invalid row or a duplicated clip id (nothing is written).
    """
    out_dir = Path(out_dir)
    rows = sorted(clips, key=lambda c: c.clip_id)
    seen: set[str] = set()
    for clip in rows:
        clip.validate()
        if clip.clip_id in seen:
            raise ClipTableError(f"duplicate clip_id {clip.clip_id}")
        seen.add(clip.clip_id)
    splits = Counter(c.split for c in rows)
    full_meta = {
        **meta,
        "schema_version": SCHEMA_VERSION,
        "n_clips": len(rows),
        "splits": {s: splits.get(s, 0) for s in SPLITS},
    }
    io.write_jsonl(out_dir / CLIPS_FILE, (c.to_record() for c in rows))
    io.write_json(out_dir / META_FILE, full_meta)
    return full_meta


def read_meta(src_dir: str | Path) -> dict[str, Any]:
    """Read and check ``meta.json`` of a clip table folder."""
    path = Path(src_dir) / META_FILE
    if not path.is_file():
        raise ClipTableError(f"{path}: missing; run the source stage first (dvc repro source)")
    meta = json.loads(path.read_text())
    version = meta.get("schema_version")
    if version != SCHEMA_VERSION:
        raise ClipTableError(
            f"{path}: clip table schema_version {version!r}, this code reads {SCHEMA_VERSION}; "
            "re-run the source stage (dvc repro -f source)"
        )
    return meta


def read_table(src_dir: str | Path) -> list[Clip]:
    """Read a clip table written by :func:`write_table`."""
    read_meta(src_dir)
    path = Path(src_dir) / CLIPS_FILE
    clips = []
    for rec in io.read_jsonl(path):
        clip = Clip.from_record(rec)
        clip.validate()
        clips.append(clip)
    return clips


def keep_videos(clips: list[Clip], ids: list[str] | None, key: str) -> list[Clip]:
    """The clips of the YouTube ids in ``ids`` (the params ``key``), all of them when None: a
    pilot run on a few videos of a source keeps their splits as in the full run.

    Raises:
        ClipTableError: an id that the source does not list.
    """
    if ids is None:
        return clips
    known = {c.youtube_id for c in clips}
    unknown = sorted(set(ids) - known)
    if unknown:
        raise ClipTableError(
            f"{key}: {len(unknown)} id(s) not in the source's lists (first: {unknown[0]}); "
            "fix them or set it to null for every clip"
        )
    wanted = set(ids)
    return [c for c in clips if c.youtube_id in wanted]
