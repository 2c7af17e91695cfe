"""``source.name: synthetic``: the built-in world that runs everywhere (see :mod:`.world`).

``download`` generates the world into the source folder; ``prepare`` reads it back through the same
code as the real sources: the everyday flavour's captions through AudioCaps' CSV reader, the
instruments flavour's categories like MUSIC's lists. Each clip's ``url`` is its mp4, relative to the
source folder.
"""

from __future__ import annotations

import csv
import dataclasses
import json
from pathlib import Path

from pipeline import io
from pipeline.params import BaseParams
from pipeline.sources.captions_csv import merge_splits, read_caption_csv
from pipeline.sources.synthetic.world import SPLITS, SyntheticParams, generate_world
from pipeline.sources.table import RAW_DIR, Clip

__all__ = ["SyntheticParams", "download_synthetic", "prepare_synthetic"]

WORLD_FILE = "world.json"


def _media_url(clip_id: str) -> str:
    return f"media/{clip_id}.mp4"


def download_synthetic(
    target_dir: str | Path, params: SyntheticParams, base: BaseParams
) -> list[dict[str, str]]:
    """Generate the world, and write its captions as AudioCaps-layout CSVs under ``raw/``."""
    target_dir = Path(target_dir)
    clips = generate_world(params, base.seed, base.sample_rate, target_dir)
    provenance = [
        {"name": WORLD_FILE, "from": "generated", "sha256": io.sha256_file(target_dir / WORLD_FILE)}
    ]
    if params.flavour != "everyday":
        return provenance
    for split in SPLITS:
        path = target_dir / RAW_DIR / f"{split}.csv"
        with io.atomic_path(path) as tmp, tmp.open("w", newline="", encoding="utf-8") as fh:
            writer = csv.writer(fh)
            writer.writerow(["audiocap_id", "youtube_id", "start_time", "caption"])
            for clip in (c for c in clips if c["split"] == split):
                for k, caption in enumerate(clip["captions"]):
                    audiocap_id = int(clip["youtube_id"][3:]) * 10 + k
                    writer.writerow([audiocap_id, clip["youtube_id"], 0, caption])
        provenance.append({"name": path.name, "from": "generated", "sha256": io.sha256_file(path)})
    return provenance


def prepare_synthetic(
    target_dir: str | Path, params: SyntheticParams, base: BaseParams | None = None
) -> list[Clip]:
    """The clip table of a generated world."""
    target_dir = Path(target_dir)
    world = json.loads((target_dir / WORLD_FILE).read_text())
    if params.flavour == "everyday":
        clips = merge_splits(
            read_caption_csv(target_dir / RAW_DIR / f"{s}.csv", source="synthetic", split=s)
            for s in SPLITS
        )
        return [
            dataclasses.replace(c, url=_media_url(c.clip_id), end=c.start + params.seconds)
            for c in clips
        ]
    return [
        Clip(
            clip_id=c["clip_id"],
            source="synthetic",
            youtube_id=c["youtube_id"],
            url=_media_url(c["clip_id"]),
            start=0.0,
            end=params.seconds,
            split=c["split"],
            category=tuple(s["class"] for s in c["sources"]),
        )
        for c in world["clips"]
    ]
