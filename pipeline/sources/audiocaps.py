"""AudioCaps v1 (Kim et al., NAACL 2019): captions of 10 s AudioSet clips.

The three CSVs are fetched from github.com/cdjkim/audiocaps pinned to one commit, each checked by
sha256; ``mirror`` points at a local folder or URL that holds copies for offline use.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

from pipeline.params import BaseParams
from pipeline.sources.captions_csv import merge_splits, read_caption_csv
from pipeline.sources.fetch import fetch_pinned
from pipeline.sources.table import RAW_DIR, Clip, keep_videos

COMMIT = "80fb3ade6d400d4311354a360db25da051a48cc1"
URL = "https://raw.githubusercontent.com/cdjkim/audiocaps/{commit}/dataset/{name}"
#: name -> (split, sha256) of AudioCaps v1 at :data:`COMMIT`.
FILES = {
    "train.csv": ("train", "c0c5223db682b3bf724ce7e7ce58d5b36929f74572e8526a7211f92d2eef7c8e"),
    "val.csv": ("val", "dab1c96641d5f3053ddb99dca3949450da9a75737bda53e11cc0aa8b102be0c3"),
    "test.csv": ("test", "b91c4b7ded2f4f6e7db5b9c4983dc1e1dca3d556f505b61e3fd65cac7e1c638a"),
}


@dataclasses.dataclass(frozen=True)
class AudiocapsParams:
    """``source.audiocaps``.

    Args:
        mirror: a local folder or URL holding train.csv, val.csv and test.csv; null downloads them
            from the pinned public address.
        ids: null for every clip, or a list of YouTube ids to keep (a pilot run; each keeps
            its split).
    """

    mirror: str | None
    ids: list[str] | None = None


def download_audiocaps(
    target_dir: str | Path, params: AudiocapsParams, base: BaseParams | None = None
) -> list[dict[str, str]]:
    """Fetch the three CSVs into ``<target_dir>/raw``; returns their provenance."""
    return fetch_pinned(
        {name: sha for name, (_, sha) in FILES.items()},
        URL.replace("{commit}", COMMIT),
        Path(target_dir) / RAW_DIR,
        mirror=params.mirror,
        mirror_key="source.audiocaps.mirror",
    )


def prepare_audiocaps(
    target_dir: str | Path, params: AudiocapsParams, base: BaseParams | None = None
) -> list[Clip]:
    """One clip per (youtube_id, start_time), with all its captions (of ``params.ids`` only,
    when set)."""
    clips = merge_splits(
        read_caption_csv(Path(target_dir) / RAW_DIR / name, source="audiocaps", split=split)
        for name, (split, _) in FILES.items()
    )
    return keep_videos(clips, params.ids, "source.audiocaps.ids")
