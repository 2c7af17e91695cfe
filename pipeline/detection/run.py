"""The detect stage: sampled frames of every usable clip through the detector, into the store.

Runs as one process or under ``torchrun``: each rank takes a disjoint share of the clips
(``clips[rank::world]``) and writes per-clip parts; after a barrier, rank 0 merges every part into
one store, so the store does not depend on the number of processes.
"""

from __future__ import annotations

import dataclasses
import json
import logging
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from tqdm import tqdm

from pipeline import io, media
from pipeline.detection.detect_backends import DETECT_BACKENDS
from pipeline.detection.store import (
    build_store,
    clip_key,
    params_key,
    part_frames,
    read_part,
    write_part,
)
from pipeline.device import resolve_device
from pipeline.distributed import rank_and_world
from pipeline.download.store import MediaStore, usable
from pipeline.errors import PipelineError

log = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class DetectParams:
    """``detect``.

    Args:
        fps: frames sampled per second of clip.
        max_boxes: boxes kept per frame (the most confident).
        min_score: boxes below this score are dropped.
        batch_size: frames per detector batch.
        threads: torch CPU threads per process (pinned: results depend on it).
        shard_clips: clips per Zarr shard file.
        backend: ``detector`` (the detector stage's checkpoint: classes, scores, box-head
            features) or ``proposals`` (selective search, no detector: class-agnostic boxes
            with their pixels as features; :mod:`pipeline.detection.proposals`).
        crop: ``proposals``: side of each box's stored RGB crop (feature ``3 * crop**2``).
        proposal_side: ``proposals``: selective search runs on the frame scaled to this
            longer side.
    """

    fps: float
    max_boxes: int
    min_score: float
    batch_size: int
    threads: int
    shard_clips: int
    backend: Literal["detector", "proposals"] = "detector"
    crop: int = 24
    proposal_side: int = 128

    def __post_init__(self) -> None:
        if self.fps <= 0 or self.max_boxes < 1 or self.batch_size < 1 or self.shard_clips < 1:
            raise ValueError("fps must be > 0; max_boxes, batch_size, shard_clips >= 1")
        if self.crop < 4 or self.proposal_side < 32:
            raise ValueError("crop must be >= 4 and proposal_side >= 32")

    def record(self) -> dict[str, Any]:
        """The settings that shape the store (recorded in it and keying its parts): the
        proposal settings only with the proposals backend."""
        out = dataclasses.asdict(self)
        if self.backend == "detector":
            for key in ("backend", "crop", "proposal_side"):
                out.pop(key)
        return out


def detect_clip(backend, video: Path, params: DetectParams) -> dict[str, np.ndarray]:
    """The ``FIELDS`` arrays of one clip, ``(T, K, ...)``, padded to ``max_boxes``."""
    frames, times = media.sample_frames(video, params.fps)
    return {**backend.detect(frames), "times": times}


def detect_all(
    status_rows: list[dict[str, Any]],
    media_dir: str | Path,
    checkpoint: str | Path,
    params: DetectParams,
    store_path: str | Path,
    parts_dir: str | Path,
    device: str = "auto",
) -> dict[str, Any] | None:
    """Detect every ``ok`` clip; returns the metrics on rank 0 (None on other ranks).
    ``device``: ``base.device``."""
    torch.set_num_threads(params.threads)
    rank, world = rank_and_world()
    backend = DETECT_BACKENDS[params.backend](params, checkpoint, resolve_device(device, rank))
    key = params_key(backend.made_by["sha256"], params.record())
    if rank == 0 and Path(parts_dir).is_dir():  # half-written parts of a killed run
        io.remove_partial_files(parts_dir)
    ok = sorted(usable(status_rows))
    videos = MediaStore(media_dir)
    failed: dict[str, str] = {}
    keys: dict[str, str] = {}  # each clip's part key (video hashed once per run and rank)
    done = 0
    mine = ok[rank::world]
    for cid in tqdm(mine, desc=f"detect[{rank}]", unit="clip", mininterval=2, disable=rank > 0):
        video = videos.video(cid)
        if not video.is_file():
            failed[cid] = f"{video} is missing"
            log.warning("detect: %s skipped: %s", cid, failed[cid])
            continue
        ck = keys[cid] = clip_key(key, io.sha256_file(video))
        if read_part(parts_dir, cid, ck) is not None:
            done += 1
            continue
        try:
            result = detect_clip(backend, video, params)
        except media.MediaError as err:  # a corrupt video: recorded and skipped
            failed[cid] = str(err).splitlines()[-1][:300]
            log.warning("detect: %s skipped: %s", cid, failed[cid])
            continue
        write_part(parts_dir, cid, result, ck)
    io.write_json(Path(parts_dir) / f"failed.rank{rank}.json", failed)
    if world > 1:
        torch.distributed.barrier()
    if rank != 0:
        return None
    for r in range(world):
        failed.update(io_json(Path(parts_dir) / f"failed.rank{r}.json"))
    for c in ok:  # other ranks' clips
        if c not in keys and c not in failed:
            keys[c] = clip_key(key, io.sha256_file(videos.video(c)))
    stored = [c for c in ok if c not in failed]
    metrics = merge(backend, params, store_path, parts_dir, stored, keys, failed)
    log.info(
        "detect: %d clips stored, %d skipped (%d reused from an earlier run)",
        metrics["clips"],
        len(failed),
        done,
    )
    return {**metrics, "skipped": len(failed), "skipped_clips": dict(sorted(failed.items()))}


def merge(backend, params: DetectParams, store_path, parts_dir, stored, keys, skipped) -> dict:
    """Every stored clip's part into one store, with what made it, what its features are and
    which clips were skipped (and why)."""
    if not stored:
        raise PipelineError("detect: no clip could be read; see the warnings above")
    n_frames = max(part_frames(parts_dir, c) for c in stored)  # build_store reads them whole
    build_store(
        store_path,
        parts_dir,
        stored,
        keys,
        attrs={
            "class_names": backend.class_names,
            "detector": backend.made_by,
            "features": backend.features,
            "params": params.record(),
            "skipped": skipped,
        },
        n_frames=n_frames,
        max_boxes=params.max_boxes,
        feature_dim=backend.features["dim"],
        shard_clips=params.shard_clips,
    )
    return {
        "clips": len(stored),
        "frames_per_clip": n_frames,
        "feature_dim": backend.features["dim"],
    }


def io_json(path: Path) -> dict:
    return json.loads(path.read_text()) if path.is_file() else {}
