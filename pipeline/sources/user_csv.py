"""A user's own clip list in AudioCaps' CSV column layout, for people who bring their own videos.

Columns: ``youtube_id`` or ``url`` (or both), ``start_time``, ``caption``, and optionally ``split``
(default ``train``) and ``end_time`` (default ``start_time`` + 10 s). No checksum: the file is
yours.
"""

from __future__ import annotations

import dataclasses
import urllib.parse
from pathlib import Path

from pipeline import io
from pipeline.params import BaseParams
from pipeline.sources.captions_csv import read_caption_csv
from pipeline.sources.fetch import FetchError, fetch
from pipeline.sources.table import RAW_DIR, Clip

RAW_NAME = "clips.csv"


@dataclasses.dataclass(frozen=True)
class CsvParams:
    """``source.csv``.

    Args:
        path: the clip list, a local path or an http(s)/file URL; required when ``source.name`` is
            ``csv``.
    """

    path: str | None


def download_csv(
    target_dir: str | Path, params: CsvParams, base: BaseParams | None = None
) -> list[dict[str, str]]:
    """Copy the user's list into ``<target_dir>/raw`` (so the output records what was read)."""
    raw_dir = Path(target_dir) / RAW_DIR
    if params.path is None:
        raise FetchError("source.csv.path is null: set it to your clip list (a CSV file)")
    parts = urllib.parse.urlsplit(params.path)
    if parts.scheme in ("http", "https", "file"):
        name = Path(parts.path).name
        return [fetch(name, params.path, raw_dir / RAW_NAME, sha256=None)]
    path = Path(params.path)
    if not path.is_file():
        raise FetchError(
            f"{path}: clip list not found; set source.csv.path to an existing CSV file"
        )
    io.write_bytes(raw_dir / RAW_NAME, path.read_bytes())
    return [{"name": path.name, "from": str(path), "sha256": io.sha256_file(path)}]


def prepare_csv(
    target_dir: str | Path, params: CsvParams, base: BaseParams | None = None
) -> list[Clip]:
    return read_caption_csv(Path(target_dir) / RAW_DIR / RAW_NAME, source="csv")
