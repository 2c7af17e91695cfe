"""MUSIC (Zhao et al., ECCV 2018): YouTube videos of solo and duet instrument performances.

The id lists come from github.com/roudimit/MUSIC_dataset pinned to one commit, each checked by
sha256. The table has one row per *video* (``end`` is None); the download stage cuts each video
into 10 s clips. Splits are drawn here, per video and stratified by category, from ``base.seed``,
so no clip of one video can land in two splits.
"""

from __future__ import annotations

import dataclasses
import json
import random
from collections import defaultdict
from pathlib import Path

from pipeline.params import BaseParams
from pipeline.sources.fetch import FetchError, fetch_pinned
from pipeline.sources.table import RAW_DIR, Clip, clip_id_for, keep_videos

COMMIT = "6f47a09aa1dc596d4dd3eb9c194819832becabc0"
URL = "https://raw.githubusercontent.com/roudimit/MUSIC_dataset/{commit}/{name}"
#: list name -> (file name, sha256) at :data:`COMMIT`.
LISTS = {
    "solo": (
        "MUSIC_solo_videos.json",
        "cddd3e9544cac4b5e5ebd55c2707bad0eb6ad29ebff571afb70a5545d4740304",
    ),
    "duet": (
        "MUSIC_duet_videos.json",
        "f53c60f22d1901b88a15592b55a7e9891ae70016d08fb6f7ec7acd04091cd2e9",
    ),
}


@dataclasses.dataclass(frozen=True)
class MusicParams:
    """``source.music``.

    Args:
        mirror: a local folder or URL holding the MUSIC json lists; null downloads them.
        lists: which lists to use (``solo``, ``duet``).
        val_fraction: share of each category's videos held out for validation.
        test_fraction: share of each category's videos held out for testing.
        ids: null for every video, or a list of YouTube ids to keep (a pilot run; the splits
            are drawn over the whole lists first, so each video keeps its split).
    """

    mirror: str | None
    lists: list[str]
    val_fraction: float
    test_fraction: float
    ids: list[str] | None = None

    def __post_init__(self) -> None:
        unknown = sorted(set(self.lists) - set(LISTS))
        if unknown or not self.lists:
            raise ValueError(f"lists {list(self.lists)}: choose from {sorted(LISTS)}")
        fractions = (self.val_fraction, self.test_fraction)
        if min(fractions) < 0 or sum(fractions) >= 1:
            raise ValueError("val_fraction and test_fraction must be >= 0 with a sum below 1")


def download_music(
    target_dir: str | Path, params: MusicParams, base: BaseParams | None = None
) -> list[dict[str, str]]:
    """Fetch the selected id lists into ``<target_dir>/raw``; returns their provenance."""
    return fetch_pinned(
        dict(LISTS[name] for name in params.lists),
        URL.replace("{commit}", COMMIT),
        Path(target_dir) / RAW_DIR,
        mirror=params.mirror,
        mirror_key="source.music.mirror",
    )


def prepare_music(target_dir: str | Path, params: MusicParams, base: BaseParams) -> list[Clip]:
    """One row per video, its category (duets: both instruments), and a seeded per-video split."""
    categories: dict[str, tuple[str, ...]] = {}
    for name in params.lists:
        file = Path(target_dir) / RAW_DIR / LISTS[name][0]
        try:
            videos = json.loads(file.read_text())["videos"]
        except (json.JSONDecodeError, KeyError, TypeError) as err:
            raise FetchError(f"{file}: not a MUSIC video list ({err})") from err
        for category, ids in sorted(videos.items()):
            for vid in ids:
                # A video listed twice keeps its first category (the lists hold no such case).
                categories.setdefault(vid, tuple(category.split()))
    by_category: dict[tuple[str, ...], list[str]] = defaultdict(list)
    for vid, category in categories.items():
        by_category[category].append(vid)
    rng = random.Random(base.seed)
    split_of: dict[str, str] = {}
    for category in sorted(by_category):
        ids = sorted(by_category[category])
        rng.shuffle(ids)
        n_test = round(len(ids) * params.test_fraction)
        n_val = round(len(ids) * params.val_fraction)
        for i, vid in enumerate(ids):
            split_of[vid] = "test" if i < n_test else "val" if i < n_test + n_val else "train"
    clips = [
        Clip(
            clip_id=clip_id_for(vid, 0.0),
            source="music",
            youtube_id=vid,
            url=None,
            start=0.0,
            end=None,
            split=split_of[vid],
            category=categories[vid],
        )
        for vid in sorted(categories)
    ]
    return keep_videos(clips, params.ids, "source.music.ids")
