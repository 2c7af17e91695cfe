"""A user's own clip list in AudioCaps' CSV column layout, for people who bring their own videos.

Columns: ``youtube_id`` or ``url`` (or both), ``start_time``, ``caption``, and optionally ``split``
(default ``train``) and ``end_time`` (default ``start_time`` + 10 s). No checksum: the file is
yours. A malformed row is logged with its line number, listed in ``<out>/rejected.jsonl`` and
skipped; the good rows go on (the download stage's ``min_ok_fraction`` judges what is left).

A local list must lie inside the repository's ``inputs/`` folder, which the source stage declares
as a DVC dependency, so that editing the list re-runs the pipeline (:func:`check_tracked`).
"""

from __future__ import annotations

import dataclasses
import logging
import urllib.parse
from pathlib import Path

from pipeline import io
from pipeline.params import BaseParams
from pipeline.sources.captions_csv import read_caption_csv
from pipeline.sources.fetch import FetchError, fetch
from pipeline.sources.table import RAW_DIR, Clip

RAW_NAME = "clips.csv"
REJECTED = "rejected.jsonl"
log = logging.getLogger(__name__)


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
    """The good rows' clips; the bad rows are logged and listed in ``<target_dir>/rejected.jsonl``.

    Raises:
        FetchError: no row of the list is usable.
    """
    rejected: list[dict] = []
    clips = read_caption_csv(Path(target_dir) / RAW_DIR / RAW_NAME, "csv", rejected=rejected)
    name = Path(urllib.parse.urlsplit(params.path or "").path).name or RAW_NAME
    for row in rejected:
        log.warning("source.csv.path %s:%d skipped: %s", name, row["line"], row["error"])
    io.write_jsonl(Path(target_dir) / REJECTED, rejected)
    if not clips:
        raise FetchError(f"{name}: none of its {len(rejected)} rows is usable (see the warnings)")
    if rejected:
        log.warning("source csv: %d rows skipped, %d clips kept", len(rejected), len(clips))
    return clips
