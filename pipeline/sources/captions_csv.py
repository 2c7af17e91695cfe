"""Read caption lists in AudioCaps' CSV column layout into clips.

AudioCaps v1 rows are ``audiocap_id,youtube_id,start_time,caption``; a user's own list may name a
``url`` instead of (or besides) ``youtube_id``, and may add ``split`` and ``end_time``. Rows of the
same video window are grouped into one clip with all its captions, in file order.
"""

from __future__ import annotations

import csv
import hashlib
import math
import re
import urllib.parse
from collections.abc import Iterable
from pathlib import Path

from pipeline.errors import PipelineError
from pipeline.sources.table import SPLITS, Clip, clip_id_for

#: AudioCaps clips are 10 s windows of AudioSet videos.
CLIP_SECONDS = 10.0
YOUTUBE_ID = re.compile(r"^[A-Za-z0-9_-]{11}$")
_MAX_REPORTED = 20


class CaptionCsvError(PipelineError, ValueError):
    """Malformed rows in a caption CSV; the message lists them with their line numbers."""


def _number(text: str, what: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not math.isfinite(value) or value < 0:
        raise ValueError(f"{what} {text!r} is not a non-negative number")
    return value


def _url_key(url: str) -> str:
    """A filesystem-safe id for a URL-addressed video: its file stem, made safe, plus a hash."""
    stem = Path(urllib.parse.urlsplit(url).path).stem or "clip"
    safe = re.sub(r"[^A-Za-z0-9_-]+", "-", stem).strip("-")[:40] or "clip"
    return f"{safe}-{hashlib.sha1(url.encode()).hexdigest()[:8]}"


def _check_header(path: Path, header: list[str]) -> list[str]:
    missing = [c for c in ("start_time", "caption") if c not in header]
    if not ({"youtube_id", "url"} & set(header)):
        missing.append("youtube_id or url")
    if missing:
        raise CaptionCsvError(
            f"{path}:1: header {header} lacks column(s) {', '.join(missing)} "
            "(expected AudioCaps' layout: youtube_id or url, start_time, caption[, split])"
        )
    return header


def _parse_row(row: dict, header: list[str], split: str | None, default_split: str) -> tuple:
    """One row's ``(youtube_id, url, start, end, caption, split)``; a ``ValueError`` says what
    is wrong with it."""
    if None in row or any(v is None for v in row.values()):
        raise ValueError(f"expected {len(header)} fields")
    yid = (row.get("youtube_id") or "").strip() or None
    url = (row.get("url") or "").strip() or None
    if yid is None and url is None:
        raise ValueError("needs a youtube_id or a url")
    if yid is not None and not YOUTUBE_ID.match(yid):
        raise ValueError(f"youtube_id {yid!r} is not an 11-character YouTube id")
    if url is not None and urllib.parse.urlsplit(url).scheme not in ("http", "https", "file"):
        raise ValueError(f"url {url!r} is not an http(s) or file URL")
    start = _number(row["start_time"].strip(), "start_time")
    end_text = (row.get("end_time") or "").strip()
    end = _number(end_text, "end_time") if end_text else start + CLIP_SECONDS
    if end <= start:
        raise ValueError(f"end_time {end:g} is not after start_time {start:g}")
    caption = row["caption"].strip()
    if not caption:
        raise ValueError("empty caption")
    row_split = split or (row.get("split") or "").strip() or default_split
    if row_split not in SPLITS:
        raise ValueError(f"split {row_split!r} not in {SPLITS}")
    return yid, url, start, end, caption, row_split


def read_caption_csv(
    path: str | Path,
    source: str,
    split: str | None = None,
    default_split: str = "train",
    rejected: list[dict] | None = None,
) -> list[Clip]:
    """Parse one caption CSV into clips.

    Args:
        path: the CSV file.
        source: the ``source`` field of the clips.
        split: the split of every row (AudioCaps: from the file name); None reads a ``split``
            column when present, else uses ``default_split``.
        rejected: given, a malformed row is appended to it (``{"line", "error"}``) and skipped
            while the good rows go on (a user's list); None, any malformed row raises (a pinned
            list such as AudioCaps').

    Raises:
        CaptionCsvError: a bad header; or, without ``rejected``, listing every malformed row
            with its line number (up to 20).
    """
    path = Path(path)
    errors: list[str] = []
    groups: dict[tuple[str, float], dict] = {}
    with path.open(newline="", encoding="utf-8") as fh:
        reader = csv.DictReader(fh)
        header = _check_header(path, reader.fieldnames or [])
        for row in reader:
            line = reader.line_num
            try:
                yid, url, start, end, caption, row_split = _parse_row(
                    row, header, split, default_split
                )
            except ValueError as err:
                errors.append(f"{path}:{line}: {err}")
                if rejected is not None:
                    rejected.append({"line": line, "error": str(err)})
                continue
            key = (yid or url, start)
            group = groups.setdefault(
                key,
                {"youtube_id": yid, "url": url, "end": end, "split": row_split, "captions": []},
            )
            if group["split"] != row_split:
                errors.append(
                    f"{path}:{line}: clip {key} is in splits {group['split']} and {row_split}"
                )
                if rejected is not None:
                    rejected.append({"line": line, "error": errors[-1].split(": ", 1)[1]})
                continue
            group["captions"].append(caption)
    if errors and rejected is None:
        more = (
            f"\n... and {len(errors) - _MAX_REPORTED} more" if len(errors) > _MAX_REPORTED else ""
        )
        raise CaptionCsvError(
            f"{len(errors)} malformed row(s) in {path}; fix or remove them:\n"
            + "\n".join(errors[:_MAX_REPORTED])
            + more
        )
    return [
        Clip(
            clip_id=clip_id_for(g["youtube_id"] or _url_key(g["url"]), start),
            source=source,
            youtube_id=g["youtube_id"],
            url=g["url"],
            start=start,
            end=g["end"],
            split=g["split"],
            captions=tuple(g["captions"]),
        )
        for (_, start), g in groups.items()
    ]


def merge_splits(parts: Iterable[list[Clip]]) -> list[Clip]:
    """Concatenate the clips of several files, refusing a clip id that appears twice."""
    out: dict[str, Clip] = {}
    for clips in parts:
        for clip in clips:
            if clip.clip_id in out:
                raise CaptionCsvError(
                    f"clip {clip.clip_id} appears in splits "
                    f"{out[clip.clip_id].split} and {clip.split}"
                )
            out[clip.clip_id] = clip
    return list(out.values())
