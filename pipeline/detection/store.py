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

import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import zarr
from tqdm import tqdm

from pipeline import io
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
    path = Path(parts_dir) / f"{clip_id}.npz"
    with io.atomic_path(path) as tmp, tmp.open("wb") as fh:
        np.savez(fh, key=np.array(key), **{k: result[k] for k in FIELDS})


def read_part(parts_dir: str | Path, clip_id: str, key: str) -> dict[str, np.ndarray] | None:
    """A clip's part if it exists, is readable and was made with ``key``; else None."""
    path = Path(parts_dir) / f"{clip_id}.npz"
    if not path.is_file():
        return None
    try:
        with np.load(path, allow_pickle=False) as z:
            if str(z["key"]) != key:
                return None
            return {k: z[k] for k in FIELDS}
    except (OSError, ValueError, KeyError):
        return None


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
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    n = len(clip_ids)
    group = zarr.open_group(str(tmp), mode="w", zarr_format=3)
    group.attrs.update({**attrs, "schema_version": SCHEMA_VERSION, "clip_ids": list(clip_ids)})
    shapes = {
        "boxes": ((n_frames, max_boxes, 4), "float32", 0.0),
        "scores": ((n_frames, max_boxes), "float32", 0.0),
        "labels": ((n_frames, max_boxes), "int16", -1),
        "features": ((n_frames, max_boxes, feature_dim), "float16", 0.0),
        "counts": ((n_frames,), "int16", 0),
        "times": ((n_frames,), "float32", np.nan),
    }
    shard = max(1, min(shard_clips, n))
    arrays = {
        name: group.create_array(
            name,
            shape=(n, *shape),
            dtype=dtype,
            chunks=(1, *shape),
            shards=(shard, *shape),
            fill_value=fill,
        )
        for name, (shape, dtype, fill) in shapes.items()
    }
    for start in tqdm(range(0, n, shard), desc="store", unit="shard", mininterval=2):
        ids = clip_ids[start : start + shard]
        block = {name: np.full((len(ids), *s), f, dtype=d) for name, (s, d, f) in shapes.items()}
        for i, cid in enumerate(ids):
            part = read_part(parts_dir, cid, keys[cid])
            if part is None:
                raise StoreError(f"{parts_dir}/{cid}.npz: missing or stale part; rerun detect")
            t = len(part["counts"])
            for name in FIELDS:
                block[name][i, :t] = part[name]
        for name, arr in arrays.items():
            arr[start : start + len(ids)] = block[name]
    shutil.rmtree(path, ignore_errors=True)
    tmp.rename(path)


class DetectionStore:
    """Read access to a detections store, one clip at a time."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        if not (self.path / "zarr.json").is_file():
            raise StoreError(f"{self.path}: no detections store here; run `dvc repro detect`")
        try:
            self.group = zarr.open_group(str(self.path), mode="r")
            version = self.group.attrs.get("schema_version")
        except Exception as err:  # a corrupt zarr.json: zarr raises several kinds
            raise StoreError(
                f"{self.path}: not a readable detections store ({type(err).__name__}: {err}); "
                "delete it and rebuild it with `dvc repro -f detect`"
            ) from None
        if version != SCHEMA_VERSION:
            raise StoreError(
                f"{self.path}: detections store schema_version {version!r}, this code reads "
                f"{SCHEMA_VERSION}; rebuild it with `dvc repro -f detect`"
            )
        self.attrs = dict(self.group.attrs)
        self.clip_ids: list[str] = list(self.attrs["clip_ids"])
        self.index = {c: i for i, c in enumerate(self.clip_ids)}

    @property
    def class_names(self) -> list[str]:
        return list(self.attrs["class_names"])

    def read(self, clip_id: str) -> dict[str, np.ndarray]:
        """One clip's arrays, trimmed to its frames."""
        if clip_id not in self.index:
            raise KeyError(f"{clip_id} is not in {self.path}")
        i = self.index[clip_id]
        try:
            out = {name: np.asarray(self.group[name][i]) for name in FIELDS}
        except Exception as err:  # a corrupt or missing shard: zarr raises several kinds
            raise StoreError(
                f"{self.path}: clip {clip_id} (index {i}) cannot be read "
                f"({type(err).__name__}: {str(err)[:200]}); the store is damaged: delete it and "
                "rebuild it with `dvc repro -f detect`"
            ) from None
        valid = ~np.isnan(out["times"])
        return {k: v[valid] for k, v in out.items()}


def params_key(detector_sha256: str | None, params: dict[str, Any]) -> str:
    """What every part must have been made with to be reused: the detector and the params."""
    return json.dumps({"detector": detector_sha256, "params": params}, sort_keys=True)


def clip_key(key: str, media_sha256: str) -> str:
    """One clip's part key: :func:`params_key` and the sha256 of the video it was made from."""
    return json.dumps({"run": key, "media": media_sha256}, sort_keys=True)
