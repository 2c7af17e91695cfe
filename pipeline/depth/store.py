"""The depth store (Zarr v3): writer and reader.

Layout of ``depth.zarr`` (``docs/data-formats.md``), ``C`` clips, ``T`` sampled frames (the
detections store's), ``K`` box slots, maps of ``S x S`` over the canonical frame::

    depth      (C, T, S, S) float16   registered relative depth (larger is farther; NaN unknown)
    box_depth  (C, T, K)    float16   median depth in each detected box (NaN: empty slot)
    fit        (C, T, 3)    float32   registration per frame: scale, shift, RMS residual
    times      (C, T)       float32   frame times (s), as in the detections store; NaN past the end
    attrs: schema_version, used, clip_ids, backend (what made the maps), output (depth |
           disparity), params, frame_size (canonical px), detections (detector sha256, params),
           skipped (clip id -> why it has no depth)

A store with ``used: false`` holds no clip and no array: nothing reads depth (``graphs.builder:
avsgs`` and ``graphs.motion.labels`` not ``derived``), and ``reason`` says so.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from pipeline import zarr_store
from pipeline.errors import PipelineError

SCHEMA_VERSION = 1
FIELDS = ("depth", "box_depth", "fit", "times")


class DepthStoreError(PipelineError, ValueError):
    """A depth store that cannot be read as it is."""


class NoDepthMade(DepthStoreError):
    """A depth store that holds no depth; ``source_without_depth``: because the source has none
    for the backend (the ``oracle`` off the scenes world), where only the motion labels asked."""

    def __init__(self, message: str, source_without_depth: bool = False):
        super().__init__(message)
        self.source_without_depth = source_without_depth


def write_unused(path: str | Path, reason: str, *, source_without_depth: bool = False) -> None:
    """A store of no clips that says why none was made."""
    attrs = {
        "schema_version": SCHEMA_VERSION,
        "used": False,
        "reason": reason,
        "source_without_depth": source_without_depth,
    }
    zarr_store.write(path, [], attrs, {}, dict)


def write_store(
    path: str | Path,
    clip_ids: list[str],
    clip_arrays,
    attrs: dict[str, Any],
    n_frames: int,
    max_boxes: int,
    size: int,
    shard_clips: int,
) -> None:
    """Write the store: ``clip_arrays(clip_id)`` gives each clip's ``FIELDS`` arrays."""
    fields = {
        "depth": ((n_frames, size, size), "float16", np.nan),
        "box_depth": ((n_frames, max_boxes), "float16", np.nan),
        "fit": ((n_frames, 3), "float32", np.nan),
        "times": ((n_frames,), "float32", np.nan),
    }
    attrs = {**attrs, "schema_version": SCHEMA_VERSION, "used": True}
    zarr_store.write(path, clip_ids, attrs, fields, clip_arrays, shard_clips)


class DepthStore(zarr_store.ClipStore):
    """Read access to a depth store, one clip at a time."""

    def __init__(self, path: str | Path):
        super().__init__(path, "depth store", "depth", SCHEMA_VERSION, DepthStoreError)
        if not self.attrs.get("used"):
            raise NoDepthMade(
                f"{self.path} holds no depth ({self.attrs.get('reason')}); it is made by "
                "`dvc repro depth` when graphs.builder (asmp25d) or graphs.motion.labels "
                "(derived) reads depth",
                bool(self.attrs.get("source_without_depth")),
            )

    @property
    def frame_size(self) -> int:
        return int(self.attrs["frame_size"])

    @property
    def skipped(self) -> dict[str, str]:
        return dict(self.attrs.get("skipped", {}))

    def read(self, clip_id: str) -> dict[str, np.ndarray]:
        """One clip's arrays, trimmed to its frames, as float32."""
        out = self.read_arrays(clip_id, FIELDS)
        valid = ~np.isnan(out["times"])
        return {k: v[valid].astype(np.float32) for k, v in out.items()}
