"""AVE, the Audio-Visual Event dataset (Tian et al., ECCV 2018): 4,143 YouTube videos of 10 s in
28 event categories, split 3,339 / 402 / 402; ASMP's second dataset.

The annotations and split files come from github.com/YapengTian/AVE-ECCV18 pinned to one commit,
each checked by sha256: ``Annotations.txt`` (one line per video, ``category&youtube_id&quality&
start&end``, no header: the event's first and last second inside the 10 s video) and
``{train,val,test}_order.h5`` (dataset ``order``: 0-based line numbers of ``Annotations.txt``).
Each line is one clip of the table, ``<youtube_id>_<object>``: ``[0, 10]`` s of ``youtube_id``, its
category mapped to one principal object (:data:`CATEGORIES`), the event's segment kept as
``segment``. 45 videos are annotated twice (one three times), under different categories (man
and woman speaking, two instruments), 18 of them across splits; they stay separate clips, as in
AVE's protocol, so the splits keep their published sizes.

AVE's videos are 10 s cuts whose offset in the YouTube video is not published; the authors
distribute the cut files (``AVE/<youtube_id>.mp4``). Point ``download.url_template`` at a copy
of them (``docs/runbook.md``); the YouTube address gives the video's first 10 s, which is not
AVE's clip.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import h5py
import numpy as np

from pipeline.params import BaseParams
from pipeline.sources.fetch import FetchError, fetch_pinned
from pipeline.sources.table import RAW_DIR, SPLITS, Clip, keep_videos

COMMIT = "93f843fed72fb17394df76330df958b0c2dbde76"
URL = "https://raw.githubusercontent.com/YapengTian/AVE-ECCV18/{commit}/data/{name}"
ANNOTATIONS = "Annotations.txt"
#: name -> sha256 at :data:`COMMIT`.
FILES = {
    ANNOTATIONS: "0d24a9ec5cd4ceb779ebd83d74e83ec8e55c5e468cede3f320fb57346c9dd321",
    "train_order.h5": "a216fcdd02782ba9d10c9ea79116120eb3be467740e58290e1b340d42a590456",
    "val_order.h5": "5692aec0efb30e4efa49a867a902c1993b4c88a7d3ec19879349e540e7a5d9ca",
    "test_order.h5": "f9bb79defc1f784ca5dda9cdd3ee52af6d24ccb399a1cfab6bf0d373f5681076",
}
SECONDS = 10.0

#: AVE category -> (principal object, COCO classes that show it, or None where COCO has none).
#: The objects reuse ASIW's and MUSIC's names where they mean the same thing (``man``, ``bell``,
#: ``violin``); an instrument, a chainsaw and a shofar are shown by the person playing or holding
#: them (COCO has no such class), as MUSIC's instruments are. ``class_map.coco`` in params.yaml
#: holds the same COCO classes (a test keeps the two in step).
CATEGORIES: dict[str, tuple[str, list[str] | None]] = {
    "Accordion": ("accordion", ["person"]),
    "Acoustic guitar": ("acoustic_guitar", ["person"]),
    "Baby cry, infant cry": ("baby", ["person"]),
    "Banjo": ("banjo", ["person"]),
    "Bark": ("dogs", ["dog"]),
    "Bus": ("bus", ["bus"]),
    "Cat": ("cat", ["cat"]),
    "Chainsaw": ("chainsaw", ["person"]),
    "Church bell": ("bell", None),
    "Clock": ("clock", ["clock"]),
    "Female speech, woman speaking": ("woman", ["person"]),
    "Fixed-wing aircraft, airplane": ("airplane", ["airplane"]),
    "Flute": ("flute", ["person"]),
    "Frying (food)": ("frying", None),
    "Goat": ("goat", ["sheep"]),
    "Helicopter": ("helicopter", None),
    "Horse": ("horse", ["horse"]),
    "Male speech, man speaking": ("man", ["person"]),
    "Mandolin": ("mandolin", ["person"]),
    "Motorcycle": ("motorcycle", ["motorcycle"]),
    "Race car, auto racing": ("race_car", ["car"]),
    "Rodents, rats, mice": ("rodents", None),
    "Shofar": ("shofar", ["person"]),
    "Toilet flush": ("toilet", ["toilet"]),
    "Train horn": ("trains", ["train"]),
    "Truck": ("truck", ["truck"]),
    "Ukulele": ("ukulele", ["person"]),
    "Violin, fiddle": ("violin", ["person"]),
}
OBJECT_CATEGORY = {obj: cat for cat, (obj, _) in CATEGORIES.items()}


@dataclasses.dataclass(frozen=True)
class AveParams:
    """``source.ave``.

    Args:
        mirror: a local folder or URL holding ``Annotations.txt`` and the three
            ``*_order.h5``; null downloads them from the pinned public address.
        ids: null for every video, or a list of YouTube ids to keep (a pilot run; each keeps
            its split).
    """

    mirror: str | None = None
    ids: list[str] | None = None


def download_ave(
    target_dir: str | Path, params: AveParams, base: BaseParams | None = None
) -> list[dict[str, str]]:
    """Fetch the annotations and the split orders into ``<target_dir>/raw``; returns their
    provenance."""
    return fetch_pinned(
        FILES,
        URL.replace("{commit}", COMMIT),
        Path(target_dir) / RAW_DIR,
        mirror=params.mirror,
        mirror_key="source.ave.mirror",
    )


def read_annotations(path: Path) -> list[tuple[str, str, str, float, float]]:
    """``(category, youtube_id, quality, start, end)`` per line of ``Annotations.txt``.

    Raises:
        FetchError: a malformed line (named by its number), an unknown category, or a segment
            outside ``[0, 10]`` s.
    """
    rows = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        parts = line.split("&")
        try:
            category, vid, quality, start, end = parts
            segment = (float(start), float(end))
        except ValueError:
            raise FetchError(
                f"{path}, line {number}: {line!r} is not category&youtube_id&quality&start&end"
            ) from None
        if category not in CATEGORIES:
            raise FetchError(
                f"{path}, line {number}: category {category!r} is not one of AVE's 28 "
                f"(pipeline/sources/ave.py)"
            )
        if not 0 <= segment[0] <= segment[1] <= SECONDS or not vid:  # line 27 is [0, 0]
            raise FetchError(f"{path}, line {number}: bad segment or id in {line!r}")
        rows.append((category, vid, quality, *segment))
    return rows


def read_order(path: Path, n_lines: int) -> list[int]:
    """The line indices (0-based) of one split's order file.

    Raises:
        FetchError: a file without an ``order`` dataset or an index outside the annotations.
    """
    try:
        with h5py.File(path, "r") as f:
            order = np.asarray(f["order"][()]).astype(np.int64).ravel()
    except (OSError, KeyError) as err:
        raise FetchError(f"{path}: not an AVE order file with an 'order' dataset ({err})") from err
    bad = order[(order < 0) | (order >= n_lines)]
    if len(bad):
        raise FetchError(
            f"{path}: index {int(bad[0])} is outside {ANNOTATIONS}'s {n_lines} lines (0-based)"
        )
    return order.tolist()


def prepare_ave(target_dir: str | Path, params: AveParams, base: BaseParams | None = None):
    """One clip per annotated video, in the split its order file gives it."""
    raw = Path(target_dir) / RAW_DIR
    rows = read_annotations(raw / ANNOTATIONS)
    split_of: dict[int, str] = {}
    for split in SPLITS:
        for index in read_order(raw / f"{split}_order.h5", len(rows)):
            if index in split_of:
                raise FetchError(
                    f"line {index + 1} of {ANNOTATIONS} is in both the {split_of[index]} and "
                    f"the {split} order"
                )
            split_of[index] = split
    clips = [
        Clip(
            clip_id=f"{vid}_{CATEGORIES[category][0]}",
            source="ave",
            youtube_id=vid,
            url=None,
            start=0.0,
            end=SECONDS,
            split=split_of[i],
            category=(CATEGORIES[category][0],),
            segment=(start, end),
        )
        for i, (category, vid, _, start, end) in enumerate(rows)
        if i in split_of  # a line in no split is not a clip of AVE's protocol
    ]
    return keep_videos(clips, params.ids, "source.ave.ids")
