"""The depth stage: each clip's sampled frames (the detections store's) through a depth backend,
registered into one relative depth per clip, into the depth store.

The backend's raw maps are saved per clip in a persistent parts folder, keyed by the backend, the
map size, the sampled frames' rate and the clip's input (video or rendered depth) bytes, so a
killed run resumes and a new detector (new boxes, so a new registration) does not run the network
again: registration and the per-box depths are made from the parts when the store is written.

Only a graph builder that reads depth (``asmp25d``) needs the stage; with ``avsgs`` it writes a
store that says so and reads nothing.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from tqdm import tqdm

from pipeline import io, parts
from pipeline.depth.backends import (
    BACKENDS,
    DepthError,
    FileParams,
    MidasParams,
    NoDepth,
    NotThisWorld,
    OracleParams,
)
from pipeline.depth.register import background_mask, box_depth, register
from pipeline.depth.store import write_store, write_unused
from pipeline.detection.store import DetectionStore
from pipeline.device import resolve_device
from pipeline.download.store import MediaStore, usable

log = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class DepthParams:
    """``depth``.

    Args:
        backend: ``oracle`` (the scenes world's rendered depth), ``midas`` (``torch.hub``) or
            ``file`` (a TorchScript model); its settings are the section of that name.
        size: maps are stored at ``size x size`` over the canonical frame.
        disparity_range: the far / near depth ratio a clip's disparity is spread over
            (:mod:`pipeline.depth.register`); unused for a backend that gives depth.
        shard_clips: clips per Zarr shard file.
        threads: torch CPU threads.
    """

    backend: Literal["oracle", "midas", "file"]
    size: int
    disparity_range: float
    shard_clips: int
    threads: int
    oracle: OracleParams
    midas: MidasParams
    file: FileParams

    def __post_init__(self) -> None:
        if self.size < 4 or self.disparity_range <= 1.0 or self.shard_clips < 1:
            raise ValueError("depth.size must be >= 4, disparity_range > 1, shard_clips >= 1")


def depth_all(
    status_rows: list[dict[str, Any]],
    detections: str | Path,
    media_dir: str | Path,
    source_dir: str | Path | None,
    params: DepthParams,
    out: str | Path,
    parts_dir: str | Path,
    *,
    needed_by: str | None,
    seed: int,
    device: str = "auto",
    optional: bool = False,
) -> dict[str, Any]:
    """Make the depth store; returns the metrics. ``needed_by``: what reads the depth (the
    graph builder, the motion labels), or None (then the store says no depth was made and
    nothing is read). ``optional``: what reads it can go without (the motion labels), so the
    ``oracle`` backend on a source without rendered depth writes a store that says why, with a
    warning, instead of stopping a real dataset's run."""
    Path(parts_dir).mkdir(parents=True, exist_ok=True)
    if needed_by is None:
        write_unused(out, "neither graphs.builder nor graphs.motion.labels reads depth")
        return {"used": False}
    torch.set_num_threads(params.threads)
    store = DetectionStore(detections)
    fps = float(store.attrs["params"]["fps"])
    try:
        backend = BACKENDS[params.backend](
            getattr(params, params.backend),
            source=Path(source_dir) if source_dir else None,
            seed=seed,
            device=resolve_device(device),
            fps=fps,
        )
    except DepthError as err:
        if not (optional and isinstance(err, NotThisWorld)):
            raise DepthError(f"{err} (depth is made because {needed_by} reads it)") from err
        reason = f"{err}; {needed_by} goes without"
        log.warning("depth: none made: %s", reason)
        write_unused(out, reason, source_without_depth=True)
        return {"used": False, "reason": reason}
    rows = usable(status_rows)
    videos = MediaStore(media_dir)
    io.remove_partial_files(parts_dir)  # half-written parts of a killed run
    run_key = parts.key_of(backend=backend.made_by, size=params.size)
    keys, skipped, made = {}, {}, 0
    started = time.perf_counter()
    for cid in tqdm(store.clip_ids, desc="depth", unit="clip", mininterval=2):
        canvas = int(rows[cid]["canonical"]["size"]) if cid in rows else None
        video = videos.video(cid)
        try:
            if canvas is None:
                raise NoDepth("not ok in the download status manifest (run `dvc repro`)")
            given = backend.input_file(cid, video)
            if not given.is_file():
                raise NoDepth(f"{given} is missing")
            # the frames are detect's: its fps decides which (and how many) a part holds
            key = parts.key_of(run=run_key, input=io.sha256_file(given), canvas=canvas, fps=fps)
            if parts.read(parts_dir, cid, key, ("maps",)) is None:
                times = store.read(cid)["times"]
                maps = backend.maps(cid, video, times, params.size, canvas)
                parts.write(parts_dir, cid, key, {"maps": maps.astype(np.float16)})
                made += 1
            keys[cid] = (key, canvas)
        except NoDepth as err:
            skipped[cid] = str(err)[:300]
            log.warning("depth: %s skipped: %s", cid, skipped[cid])
    seconds = time.perf_counter() - started
    done = [c for c in store.clip_ids if c in keys]
    if not done:
        first = next(iter(skipped.items()), ("-", "no clip"))
        raise DepthError(f"depth: no clip has depth (first: {first[0]}: {first[1]})")
    canvases = {keys[c][1] for c in done}
    if len(canvases) > 1:
        raise DepthError(f"depth: clips of several canonical sizes {sorted(canvases)}")
    fits = []

    def clip_arrays(cid: str) -> dict[str, np.ndarray]:
        det = store.read(cid)
        maps = parts.read(parts_dir, cid, keys[cid][0], ("maps",))["maps"]
        canvas = keys[cid][1]
        free = background_mask(det["boxes"], det["counts"], canvas, params.size)
        depth, fit = register(maps, free, backend.output, params.disparity_range)
        fits.append(fit)
        return {
            "depth": depth.astype(np.float16),
            "box_depth": box_depth(depth, det["boxes"], det["counts"], canvas),
            "fit": fit,
            "times": det["times"],
        }

    n_frames, max_boxes = store.group["times"].shape[1], store.group["scores"].shape[2]
    write_store(
        out,
        done,
        clip_arrays,
        attrs={
            "backend": backend.made_by,
            "output": backend.output,
            "params": {"size": params.size, "disparity_range": params.disparity_range},
            "frame_size": canvases.pop(),
            "detections": {
                "detector": store.attrs["detector"],
                "params": store.attrs["params"],
            },
            "skipped": dict(sorted(skipped.items())),
        },
        n_frames=n_frames,
        max_boxes=max_boxes,
        size=params.size,
        shard_clips=params.shard_clips,
    )
    fit = np.concatenate(fits)
    log.info("depth: %d clips (%d computed, %d skipped)", len(done), made, len(skipped))
    return {
        "used": True,
        "backend": params.backend,
        "output": backend.output,
        "clips": len(done),
        "computed": made,
        "skipped": len(skipped),
        "skipped_clips": dict(sorted(skipped.items())),
        "registration": {
            "frames": len(fit),
            "unaligned": int(np.isnan(fit[:, 2]).sum()),  # no positive scale: left as it was
            "median_scale": round(float(np.median(fit[:, 0])), 4),
            "median_rms": round(float(np.nanmedian(fit[:, 2])), 4),
        },
        "seconds_per_clip": round(seconds / max(made, 1), 4),
    }
