"""The built-in synthetic world: seeded clips that exercise every stage offline.

Each clip of the ``everyday`` and ``instruments`` flavours shows a textured background,
1..``max_sources`` *sounding* objects, each overlapped by a player sprite (the visible context that
makes it sound), and several *silent* context objects, some of the same class as a sounding one.
The ``scenes`` flavour (:mod:`.scenes`) adds interactions that decide the sound, depth and motion.
Each sounding object plays its class's sound; the clip's audio
is the sum of those stems. Everything derives from ``(base.seed, clip index)``, so the same seed
gives the same bytes and any number of workers gives the same world.

Written into the source folder (``docs/data-formats.md``)::

    media/<clip_id>.mp4            H.264 + AAC (mono, base.sample_rate)
    stems/<clip_id>.wav            16-bit, one channel per sounding object (order of world.json)
    annotations/<split>.json       COCO boxes for every frame (detector training and scoring)
    world.json                     per clip: sounding objects, their tracks and stem channels
    truth/<clip_id>.npz            scenes: depth maps, paths, boxes, motion per 1 s window
    raw/<split>.csv                captions in AudioCaps' CSV layout (everyday flavour)
"""

from __future__ import annotations

import dataclasses
import json
import logging
import multiprocessing
import tempfile
from pathlib import Path
from typing import Any, Literal

import numpy as np
import soundfile as sf
from tqdm import tqdm

from pipeline import io, media
from pipeline.sources.synthetic import scenes
from pipeline.sources.synthetic.audio import render_stem
from pipeline.sources.synthetic.classes import (
    CONNECTORS,
    FLAVOURS,
    PARTNERS,
    PLAYER,
    PLAYER_LOOK,
    WorldClass,
)
from pipeline.sources.synthetic.scenes import ScenesParams
from pipeline.sources.synthetic.video import Track, background, render, sprite, step

log = logging.getLogger(__name__)

SPLITS = ("train", "val", "test")
CAPTIONS_PER_CLIP = {"train": 1, "val": 5, "test": 5}  # as in AudioCaps


@dataclasses.dataclass(frozen=True)
class SyntheticParams:
    """``source.synthetic``.

    Args:
        flavour: ``everyday`` (ASIW principal objects, captions mined by ``labels``),
            ``instruments`` (MUSIC's 11 instruments, labelled by category like MUSIC) or
            ``scenes`` (interactions, depth and motion decide the sound: :mod:`.scenes`;
            labelled by category, which can name one class twice).
        n_train, n_val, n_test: clips per split.
        seconds, fps, size: clip duration (s), frame rate, and frame width = height (px).
        max_sources: sounding objects per clip are drawn uniformly from 1..max_sources.
        min_context, max_context: silent context objects per clip.
        same_class_context: chance that a silent copy of a sounding object's class is added
            (``scenes``: of a sounding object's partner).
        render_rate: rate the soundfont is rendered at before resampling to base.sample_rate.
        workers: processes generating clips (the world does not depend on it).
        scenes: the ``scenes`` flavour's own settings.
    """

    flavour: Literal["everyday", "instruments", "scenes"]
    n_train: int
    n_val: int
    n_test: int
    seconds: float
    fps: int
    size: int
    max_sources: int
    min_context: int
    max_context: int
    same_class_context: float
    render_rate: int
    workers: int
    scenes: ScenesParams = ScenesParams()

    def __post_init__(self) -> None:
        checks = {
            "n_train, n_val and n_test must be >= 1": min(self.n_train, self.n_val, self.n_test)
            >= 1,
            "seconds must be > 0": self.seconds > 0,
            "fps must be >= 1": self.fps >= 1,
            "size must be >= 64 (sprites are 16-24% of it)": self.size >= 64,
            "max_sources must be 1 or 2": self.max_sources in (1, 2),
            "0 <= min_context <= max_context": 0 <= self.min_context <= self.max_context,
            "same_class_context must lie in [0, 1]": 0 <= self.same_class_context <= 1,
            "render_rate must be >= 22050": self.render_rate >= 22050,
            "workers must be >= 1": self.workers >= 1,
        }
        for message, ok in checks.items():
            if not ok:
                raise ValueError(message)

    def split_of(self, index: int) -> str:
        if index < self.n_train:
            return "train"
        return "val" if index < self.n_train + self.n_val else "test"

    @property
    def n_clips(self) -> int:
        return self.n_train + self.n_val + self.n_test


def youtube_id_of(index: int) -> str:
    """An 11-character id in YouTube's alphabet, so synthetic clips pass the same checks."""
    return f"syn{index:08d}"


def detector_classes(flavour: str) -> list[str]:
    """The box-annotation categories of a flavour: its object classes, then the player (or, in
    ``scenes``, the partners)."""
    if flavour == "scenes":
        return [*sorted(FLAVOURS[flavour]), *sorted(PARTNERS)]
    return [*sorted(FLAVOURS[flavour]), PLAYER]


def _captions(classes: list[WorldClass], n: int, rng: np.random.Generator) -> list[str]:
    out = []
    for _ in range(n):
        phrases = [str(rng.choice(c.phrases)) for c in classes]
        rng.shuffle(phrases)
        text = phrases[0]
        for p in phrases[1:]:
            text += str(rng.choice(CONNECTORS)) + p
        out.append(text[0].upper() + text[1:])
    return out


def _new_track(name, look, size, frame, rng, sounding):
    xy = rng.uniform(0, frame - size, 2)
    angle = rng.uniform(0, 2 * np.pi)
    speed = rng.uniform(0.3, 1.2) * frame / 256
    rgb, mask = sprite(look, size)
    return Track(name, rgb, mask, xy, speed * np.array([np.cos(angle), np.sin(angle)]), sounding)


def _draw_scene(rng, params: SyntheticParams, world) -> tuple[list[Track], list[dict]]:
    """The clip's objects: 1..max_sources sounding ones, silent context objects (a silent copy of
    a sounding class with chance ``same_class_context``), and a player on top of each sounding
    object. Returns the tracks and, per sounding object, its class and track indices."""
    names = sorted(world)
    n_src = int(rng.integers(1, params.max_sources + 1))
    sounding = [str(c) for c in rng.choice(names, size=n_src, replace=False)]
    n_ctx = int(rng.integers(params.min_context, params.max_context + 1))
    silent = []
    if n_ctx and rng.random() < params.same_class_context:
        silent.append(sounding[int(rng.integers(n_src))])  # "a guitar kept against a wall"
    silent += [str(rng.choice(names)) for _ in range(n_ctx - len(silent))]
    size = params.size
    lo, hi = int(0.16 * size), int(0.24 * size)
    tracks: list[Track] = [
        _new_track(n, world[n].look, int(rng.integers(lo, hi + 1)), size, rng, False)
        for n in silent
    ]
    sources = []
    for name in sounding:
        obj = _new_track(name, world[name].look, int(rng.integers(lo, hi + 1)), size, rng, True)
        tracks.append(obj)
        sources.append({"class": name, "track": len(tracks) - 1})
    for src in sources:  # players on top, overlapping their object by about half
        obj = tracks[src["track"]]
        player = _new_track(PLAYER, PLAYER_LOOK, int(obj.size * 0.85), size, rng, False)
        player.follows = src["track"]
        side = rng.choice([-1.0, 1.0])
        player.offset = np.array([side * 0.5 * obj.size, 0.25 * obj.size])
        player.xy = obj.xy + player.offset
        src["player_track"] = len(tracks)
        tracks.append(player)
    return tracks, sources


def _render_video(rng, params: SyntheticParams, tracks: list[Track]):
    """Frames ``(T, size, size, 3)`` uint8 of the moving tracks over a drawn background, and
    each frame's boxes."""
    size = params.size
    bg = background(rng, size)
    n_frames = int(round(params.seconds * params.fps))
    frames = np.empty((n_frames, size, size, 3), np.uint8)
    boxes = []
    for f in range(n_frames):
        if f:
            step(tracks, size)
        frames[f], frame_boxes = render(bg, tracks)
        boxes.append(frame_boxes)
    return frames, boxes


def _render_audio(rng, params: SyntheticParams, world, sources, sample_rate: int):
    """The sounding objects' stems ``(L, n_src)`` int16 at random gains (+-3 dB) and their
    mixture ``(L,)`` int16."""
    n_samples = int(round(params.seconds * sample_rate))
    stems = np.stack(
        [
            render_stem(
                world[s["class"]].sound, rng, params.seconds, sample_rate, params.render_rate
            )[:n_samples]
            for s in sources
        ],
        axis=1,
    )
    gains = 10 ** (rng.uniform(-3, 3, len(sources)) / 20)
    stems_q = np.round(np.clip(stems * gains, -1, 1) * 32767).astype(np.int16)
    mixture = stems_q.astype(np.int32).sum(axis=1).clip(-32768, 32767).astype(np.int16)
    return stems_q, mixture


def _make_flat(rng, params: SyntheticParams, sample_rate: int, index: int) -> dict[str, Any]:
    """One clip of the ``everyday`` or ``instruments`` flavour (2-D sprites, players)."""
    world = FLAVOURS[params.flavour]
    tracks, sources = _draw_scene(rng, params, world)
    frames, boxes = _render_video(rng, params, tracks)
    stems_q, mixture = _render_audio(rng, params, world, sources, sample_rate)
    return {
        "frames": frames,
        "boxes": boxes,
        "stems": stems_q,
        "mixture": mixture,
        "sources": [
            {"class": s["class"], "track": s["track"], "player_track": s["player_track"]}
            for s in sources
        ],
        "tracks": [
            {
                "class": t.name,
                "sounding": t.sounding,
                "role": "player"
                if t.follows is not None
                else ("principal" if t.sounding else "silent"),
            }
            for t in tracks
        ],
        "truth": None,
    }


def _make_scene(rng, params: SyntheticParams, sample_rate: int, index: int) -> dict[str, Any]:
    """One clip of the ``scenes`` flavour (:mod:`.scenes`)."""
    bodies, sources = scenes.draw_scene(rng, params, params.scenes, index)
    frames, depth, boxes = scenes.render_frames(rng, params, bodies)
    stems_q, mixture = scenes.render_audio(rng, params, params.scenes, bodies, sources, sample_rate)
    truth = scenes.truth(bodies, boxes, depth, params)
    for s in sources:
        s["variant"] = s["partner"]
        s["direction10"] = truth["direction10"][s["track"]].tolist()
        s["direction28"] = truth["direction28"][s["track"]].tolist()
    sounding = {s["track"] for s in sources}
    return {
        "frames": frames,
        "boxes": boxes,
        "stems": stems_q,
        "mixture": mixture,
        "sources": sources,
        "tracks": [
            {"class": b.name, "sounding": k in sounding, "role": b.role, "follows": b.follows}
            for k, b in enumerate(bodies)
        ],
        "truth": truth,
    }


def generate_clip(
    index: int, params: SyntheticParams, seed: int, sample_rate: int, out_dir: Path
) -> dict[str, Any]:
    """Generate clip ``index`` into ``out_dir`` (media, stems, scenes' truth) and return its
    annotations."""
    rng = np.random.default_rng([seed, index])
    split = params.split_of(index)
    clip_key = youtube_id_of(index)
    make = _make_scene if params.flavour == "scenes" else _make_flat
    clip = make(rng, params, sample_rate, index)

    clip_id = f"{clip_key}_0"
    media_path = out_dir / "media" / f"{clip_id}.mp4"
    stem_path = out_dir / "stems" / f"{clip_id}.wav"
    with tempfile.TemporaryDirectory() as tmp:
        wav = Path(tmp) / "mix.wav"
        sf.write(wav, clip["mixture"], sample_rate, subtype="PCM_16")
        with io.atomic_path(media_path) as tmp_mp4:
            media.encode_mp4(tmp_mp4, clip["frames"], params.fps, wav)
    with io.atomic_path(stem_path) as tmp_wav:
        sf.write(tmp_wav, clip["stems"], sample_rate, subtype="PCM_16", format="WAV")
    if clip["truth"] is not None:
        scenes.write_truth(out_dir / "truth" / f"{clip_id}.npz", clip["truth"])

    world = FLAVOURS[params.flavour]
    captions = (
        _captions([world[s["class"]] for s in clip["sources"]], CAPTIONS_PER_CLIP[split], rng)
        if params.flavour == "everyday"
        else []
    )
    return {
        "clip_id": clip_id,
        "youtube_id": clip_key,
        "split": split,
        "sources": [{**s, "stem_channel": k} for k, s in enumerate(clip["sources"])],
        "tracks": clip["tracks"],
        "captions": captions,
        "boxes": clip["boxes"],
        "n_frames": len(clip["frames"]),
    }


def _job(args):
    return generate_clip(*args)


def _coco(clips: list[dict[str, Any]], params: SyntheticParams) -> dict[str, Any]:
    classes = detector_classes(params.flavour)
    cat_id = {name: i + 1 for i, name in enumerate(classes)}
    images, annotations = [], []
    for clip in clips:
        for f, frame_boxes in enumerate(clip["boxes"]):
            image_id = len(images) + 1
            images.append(
                {
                    "id": image_id,
                    "file_name": f"media/{clip['clip_id']}.mp4",
                    "clip_id": clip["clip_id"],
                    "frame_index": f,
                    "time": f / params.fps,
                    "width": params.size,
                    "height": params.size,
                }
            )
            for track, box in enumerate(frame_boxes):
                if box is None:
                    continue
                info = clip["tracks"][track]
                annotations.append(
                    {
                        "id": len(annotations) + 1,
                        "image_id": image_id,
                        "category_id": cat_id[info["class"]],
                        "bbox": box,
                        "area": box[2] * box[3],
                        "iscrowd": 0,
                        "track_id": track,
                        "sounding": info["sounding"],
                        "role": info["role"],
                    }
                )
    return {
        "info": {"description": "AVSGS pipeline synthetic world", "flavour": params.flavour},
        "images": images,
        "annotations": annotations,
        "categories": [{"id": cat_id[n], "name": n} for n in classes],
    }


def generate_world(
    params: SyntheticParams, seed: int, sample_rate: int, out_dir: str | Path
) -> list[dict[str, Any]]:
    """Generate every clip, then the COCO annotations, ``world.json`` and caption CSVs.

    Returns:
        per clip: clip_id, youtube_id, split, sources, captions.
    """
    out_dir = Path(out_dir)
    jobs = [(i, params, seed, sample_rate, out_dir) for i in range(params.n_clips)]
    bar = dict(total=len(jobs), desc="synthetic clips", unit="clip", mininterval=2)
    if params.workers > 1:
        ctx = multiprocessing.get_context("spawn")
        with ctx.Pool(params.workers) as pool:
            clips = list(tqdm(pool.imap(_job, jobs), **bar))
    else:
        clips = [_job(j) for j in tqdm(jobs, **bar)]
    for split in SPLITS:
        part = [c for c in clips if c["split"] == split]
        io.write_text(out_dir / "annotations" / f"{split}.json", _json_compact(_coco(part, params)))
    summary = [
        {k: c[k] for k in ("clip_id", "youtube_id", "split", "sources", "tracks", "captions")}
        for c in clips
    ]
    io.write_json(
        out_dir / "world.json",
        {
            "flavour": params.flavour,
            "seed": seed,
            "sample_rate": sample_rate,
            "fps": params.fps,
            "size": params.size,
            "seconds": params.seconds,
            "classes": sorted(FLAVOURS[params.flavour]),
            "detector_classes": detector_classes(params.flavour),
            **(
                {"partners": sorted(PARTNERS), "scenes": dataclasses.asdict(params.scenes)}
                if params.flavour == "scenes"
                else {}
            ),
            "clips": summary,
        },
    )
    return summary


def _json_compact(obj: Any) -> str:
    return json.dumps(obj, separators=(",", ":"), sort_keys=True) + "\n"
