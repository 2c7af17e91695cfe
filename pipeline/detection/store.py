"""The detections store (Zarr v3) and the per-clip parts it is merged from.

Layout of ``detections.zarr`` (``docs/data-formats.md``), ``C`` clips, ``T`` frames, ``K`` boxes,
``D`` feature dimensions; one chunk per clip, ``shard_clips`` clips per shard file::

    boxes     (C, T, K, 4) float32   xyxy pixels of the canonical video frame
    scores    (C, T, K)    float32
    labels    (C, T, K)    int16     detector class ids (index into attrs class_names), -1 = none
    features  (C, T, K, D) float16   each box's feature (attrs features: what it is)
    counts    (C, T)       int16     boxes kept per frame (the first counts[c, t] slots are valid)
    times     (C, T)       float32   frame times (s) in the clip; NaN past the clip's end
    attrs: schema_version, clip_ids, class_names, detector (architecture, sha256), params,
           features ({kind: box_head | rgb_crop, dim, crop}; pipeline.detection.detect_backends),
           skipped (clip id -> why it has no detections)

Parts: while detecting, each clip is written to ``<parts>/<clip_id>.npz`` (atomically) with a key
of the detector, the params and the clip's video bytes (:func:`clip_key`); a rerun skips clips
whose part has the current key, so a re-cut clip (a new ``download.size``, replaced media) is
detected again. The store is built from the parts in one pass, into a temporary folder renamed
into place.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from pipeline import parts, zarr_store
from pipeline.errors import PipelineError

SCHEMA_VERSION = 2  # 2: the features attribute (kind, dim, crop)
FIELDS = ("boxes", "scores", "labels", "features", "counts", "times")


class StoreError(PipelineError, ValueError):
    """A detections store that cannot be read as it is."""


def empty_frames(t: int, k: int, dim: int) -> dict[str, np.ndarray]:
    """The ``FIELDS`` arrays but ``times`` of ``t`` frames with no box yet: ``k`` box slots,
    ``dim``-d features, labels -1."""
    return {
        "boxes": np.zeros((t, k, 4), np.float32),
        "scores": np.zeros((t, k), np.float32),
        "labels": np.full((t, k), -1, np.int16),
        "features": np.zeros((t, k, dim), np.float16),
        "counts": np.zeros(t, np.int16),
    }


def write_part(
    parts_dir: str | Path, clip_id: str, result: dict[str, np.ndarray], key: str
) -> None:
    """Write one clip's detections (``FIELDS`` arrays for its frames) atomically."""
    parts.write(parts_dir, clip_id, key, {k: result[k] for k in FIELDS})


def read_part(parts_dir: str | Path, clip_id: str, key: str) -> dict[str, np.ndarray] | None:
    """A clip's part if it exists, is readable and was made with ``key``; else None."""
    return parts.read(parts_dir, clip_id, key, FIELDS)


def part_frames(parts_dir: str | Path, clip_id: str) -> int:
    """Frames in a clip's part, reading only its ``counts`` (npz members load lazily)."""
    with np.load(Path(parts_dir) / f"{clip_id}.npz", allow_pickle=False) as z:
        return len(z["counts"])


def build_store(
    path: str | Path,
    parts_dir: str | Path,
    clip_ids: list[str],
    keys: dict[str, str],
    attrs: dict[str, Any],
    n_frames: int,
    max_boxes: int,
    feature_dim: int,
    shard_clips: int = 100,
) -> None:
    """Merge the parts of ``clip_ids`` (in this order; ``keys``: each one's part key) into a new
    store at ``path``."""
    fields = {
        "boxes": ((n_frames, max_boxes, 4), "float32", 0.0),
        "scores": ((n_frames, max_boxes), "float32", 0.0),
        "labels": ((n_frames, max_boxes), "int16", -1),
        "features": ((n_frames, max_boxes, feature_dim), "float16", 0.0),
        "counts": ((n_frames,), "int16", 0),
        "times": ((n_frames,), "float32", np.nan),
    }

    def clip_arrays(cid: str) -> dict[str, np.ndarray]:
        part = read_part(parts_dir, cid, keys[cid])
        if part is None:
            raise StoreError(f"{parts_dir}/{cid}.npz: missing or stale part; rerun detect")
        return part

    zarr_store.write(
        path,
        clip_ids,
        {**attrs, "schema_version": SCHEMA_VERSION},
        fields,
        clip_arrays,
        shard_clips,
    )


class DetectionStore(zarr_store.ClipStore):
    """Read access to a detections store, one clip at a time."""

    def __init__(self, path: str | Path):
        super().__init__(path, "detections store", "detect", SCHEMA_VERSION, StoreError)

    @property
    def class_names(self) -> list[str]:
        return list(self.attrs["class_names"])

    def read(self, clip_id: str) -> dict[str, np.ndarray]:
        """One clip's arrays, trimmed to its frames."""
        out = self.read_arrays(clip_id, FIELDS)
        valid = ~np.isnan(out["times"])
        return {k: v[valid] for k, v in out.items()}


def params_key(detector_sha256: str | None, params: dict[str, Any]) -> str:
    """What every part must have been made with to be reused: the detector and the params."""
    return parts.key_of(detector=detector_sha256, params=params)


def clip_key(key: str, media_sha256: str) -> str:
    """One clip's part key: :func:`params_key` and the sha256 of the video it was made from."""
    return parts.key_of(run=key, media=media_sha256)
