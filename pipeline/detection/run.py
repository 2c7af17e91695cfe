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
from pipeline.detection.infer import detect_with_features
from pipeline.detection.model import load_checkpoint
from pipeline.detection.proposals import CLASS_NAMES, propose_frames
from pipeline.detection.store import (
    build_store,
    clip_key,
    empty_frames,
    params_key,
    part_frames,
    read_part,
    write_part,
)
from pipeline.detection.train import to_tensor
from pipeline.device import model_device, resolve_device
from pipeline.distributed import rank_and_world
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


def sample_frames(video: Path, fps: float) -> tuple[np.ndarray, np.ndarray]:
    """Frames of ``video`` at ``fps`` (nearest decoded frame) and their times (s)."""
    frames = media.decode_frames(video)
    src_fps = media.probe(video).get("fps") or fps
    n = max(1, int(np.floor(len(frames) / src_fps * fps + 1e-6)))
    times = np.arange(n) / fps
    index = np.minimum(np.round(times * src_fps).astype(int), len(frames) - 1)
    return frames[index], times.astype(np.float32)


def detect_clip(model, video: Path, params: DetectParams) -> dict[str, np.ndarray]:
    """The ``FIELDS`` arrays of one clip, ``(T, K, ...)``, padded to ``max_boxes`` (``model``
    None: the proposals backend); frames go to the model's device, results come back to the
    CPU."""
    frames, times = sample_frames(video, params.fps)
    if params.backend == "proposals":
        found = propose_frames(frames, params.max_boxes, params.crop, params.proposal_side)
        return {**found, "times": times}
    k = params.max_boxes
    t = len(frames)
    dim = model.roi_heads.box_head.fc7.out_features
    out = {**empty_frames(t, k, dim), "times": times}
    device = model_device(model)
    for s in range(0, t, params.batch_size):
        dets = detect_with_features(
            model, [to_tensor(f).to(device) for f in frames[s : s + params.batch_size]]
        )
        for j, det in enumerate(dets):
            det = {key: v.cpu() for key, v in det.items()}
            keep = (det["scores"] >= params.min_score).nonzero().flatten()[:k]
            n = len(keep)
            out["boxes"][s + j, :n] = det["boxes"][keep].numpy()
            out["scores"][s + j, :n] = det["scores"][keep].numpy()
            out["labels"][s + j, :n] = det["labels"][keep].numpy()
            out["features"][s + j, :n] = det["features"][keep].numpy().astype(np.float16)
            out["counts"][s + j] = n
    return out


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
    if params.backend == "proposals":
        model, sha = None, None
        meta = {"class_names": CLASS_NAMES, "architecture": "selective_search"}
        dim = 3 * params.crop**2
    else:
        model, meta = load_checkpoint(checkpoint)
        model.to(resolve_device(device, rank))
        sha = io.sha256_file(checkpoint)
        dim = model.roi_heads.box_head.fc7.out_features
    key = params_key(sha, params.record())
    if rank == 0 and Path(parts_dir).is_dir():  # half-written parts of a killed run
        io.remove_partial_files(parts_dir)
    ok = sorted(r["clip_id"] for r in status_rows if r["status"] == "ok")
    mine = ok[rank::world]
    failed: dict[str, str] = {}
    keys: dict[str, str] = {}  # each clip's part key (video hashed once per run and rank)
    done = 0
    for cid in tqdm(mine, desc=f"detect[{rank}]", unit="clip", mininterval=2, disable=rank > 0):
        video = Path(media_dir) / cid / "video.mp4"
        if not video.is_file():
            failed[cid] = f"{video} is missing"
            log.warning("detect: %s skipped: %s", cid, failed[cid])
            continue
        ck = keys[cid] = clip_key(key, io.sha256_file(video))
        if read_part(parts_dir, cid, ck) is not None:
            done += 1
            continue
        try:
            result = detect_clip(model, video, params)
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
    stored = [c for c in ok if c not in failed]
    if not stored:
        raise PipelineError("detect: no clip could be read; see the warnings above")
    n_frames = max(part_frames(parts_dir, c) for c in stored)  # build_store reads them whole
    for c in stored:  # other ranks' clips
        if c not in keys:
            keys[c] = clip_key(key, io.sha256_file(Path(media_dir) / c / "video.mp4"))
    build_store(
        store_path,
        parts_dir,
        stored,
        keys,
        attrs={
            "class_names": meta["class_names"],
            "detector": {"architecture": meta["architecture"], "sha256": sha},
            "params": params.record(),
            "skipped": failed,
        },
        n_frames=n_frames,
        max_boxes=params.max_boxes,
        feature_dim=dim,
        shard_clips=params.shard_clips,
    )
    log.info(
        "detect: %d clips stored, %d skipped (%d reused from an earlier run)",
        len(stored),
        len(failed),
        done,
    )
    return {
        "clips": len(stored),
        "skipped": len(failed),
        "frames_per_clip": n_frames,
        "feature_dim": dim,
        "skipped_clips": dict(sorted(failed.items())),
    }


def io_json(path: Path) -> dict:
    return json.loads(path.read_text()) if path.is_file() else {}
