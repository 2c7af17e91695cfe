"""Draw a few frames of a generated world with their COCO boxes (``docs/synthetic-world.png``).

Usage: ``uv run python -m pipeline.sources.synthetic.figure data/source docs/synthetic-world.png``
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from PIL import Image, ImageDraw

from pipeline import media


def draw(source_dir: Path, out: Path, n_clips: int = 4, frames=(0, 40, 79)) -> None:
    """A grid: one row per clip, one column per frame; sounding boxes green, players and
    partners blue, silent objects grey, each labelled with its class."""
    coco = json.loads((source_dir / "annotations" / "train.json").read_text())
    names = {c["id"]: c["name"] for c in coco["categories"]}
    by_image: dict[int, list] = {}
    for a in coco["annotations"]:
        by_image.setdefault(a["image_id"], []).append(a)
    clip_ids = sorted({im["clip_id"] for im in coco["images"]})[:n_clips]
    size = coco["images"][0]["width"]
    grid = Image.new("RGB", (size * len(frames), size * len(clip_ids)), "white")
    for row, clip_id in enumerate(clip_ids):
        video = media.decode_frames(source_dir / "media" / f"{clip_id}.mp4")
        images = {im["frame_index"]: im for im in coco["images"] if im["clip_id"] == clip_id}
        for col, f in enumerate(frames):
            img = Image.fromarray(video[f])
            pen = ImageDraw.Draw(img)
            for a in by_image.get(images[f]["id"], []):
                x, y, w, h = a["bbox"]
                name = names[a["category_id"]]
                colour = {"principal": (0, 220, 0), "silent": (160, 160, 160)}.get(
                    a["role"], (40, 90, 255)
                )
                pen.rectangle([x, y, x + w - 1, y + h - 1], outline=colour, width=2)
                pen.text((x + 2, y + 1), name, fill=colour)
            grid.paste(img, (col * size, row * size))
    out.parent.mkdir(parents=True, exist_ok=True)
    grid.save(out)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("source_dir", type=Path)
    parser.add_argument("out", type=Path)
    parser.add_argument("--clips", type=int, default=4)
    args = parser.parse_args()
    draw(args.source_dir, args.out, args.clips)
