"""The download stage's output as every later stage reads it: the media folder and the status
manifest (``docs/data-formats.md``).

Layout::

    <media>/<clip_id>/audio.wav      mono 16-bit PCM at base.sample_rate
    <media>/<clip_id>/video.mp4      H.264, download.fps, download.size x download.size
    <media>/<clip_id>/status.json    the clip's record, written last
    status.jsonl                     one record per clip of the labels manifest (and per 10 s
                                     clip cut from a whole video), sorted by clip id

A record holds ``schema_version``, ``clip_id``, ``parent``, ``youtube_id``, ``split``,
``principal_objects``, ``start``, ``end``, ``url``, ``status`` (``ok`` | ``unavailable`` |
``failed``), ``reason``, ``error``, ``attempts``, ``duration``, the files' sizes and sha256, and
the ``canonical`` settings they were cut with. Readers take a clip's split and principal objects
from it (the labels manifest has one row per video, not per cut clip).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pipeline import io
from pipeline.errors import PipelineError

SCHEMA_VERSION = 1
AUDIO, VIDEO, STATUS = "audio.wav", "video.mp4", "status.json"


class MediaStore:
    """Paths of the downloaded clips' files."""

    def __init__(self, root: str | Path):
        self.root = Path(root)

    def folder(self, clip_id: str) -> Path:
        return self.root / clip_id

    def audio(self, clip_id: str) -> Path:
        return self.root / clip_id / AUDIO

    def video(self, clip_id: str) -> Path:
        return self.root / clip_id / VIDEO

    def status(self, clip_id: str) -> Path:
        return self.root / clip_id / STATUS


def write_status(path: str | Path, records: list[dict[str, Any]]) -> None:
    """The status manifest (atomically), each record stamped with the schema version."""
    io.write_jsonl(path, [{"schema_version": SCHEMA_VERSION, **r} for r in records])


def read_status(path: str | Path) -> list[dict[str, Any]]:
    """The status manifest's records; a manifest of another schema is refused by name."""
    path = Path(path)
    if not path.is_file():
        raise PipelineError(f"{path}: no download status manifest here; run `dvc repro download`")
    records = list(io.read_jsonl(path))
    for line, rec in enumerate(records, 1):
        if rec.get("schema_version") != SCHEMA_VERSION:
            raise PipelineError(
                f"{path}, line {line}: status record schema {rec.get('schema_version')!r}, this "
                f"code reads {SCHEMA_VERSION}; rerun `dvc repro download` (complete clips are kept)"
            )
    return records


def usable(records: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """The records of the clips that downloaded (``status`` ok), by clip id."""
    return {r["clip_id"]: r for r in records if r["status"] == "ok"}
