"""Per-clip Zarr v3 stores (detections, depth): arrays whose first axis is the clip, one chunk per
clip and ``shard_clips`` clips per shard file, written in one pass from per-clip results into a
temporary folder renamed into place, and read one clip at a time with the errors every store
reader gives (missing, unreadable, of another schema, damaged)."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import zarr
from tqdm import tqdm

# name -> (shape of one clip's array, dtype, fill value)
Fields = dict[str, tuple[tuple[int, ...], str, Any]]


def write(
    path: str | Path,
    clip_ids: list[str],
    attrs: dict[str, Any],
    fields: Fields,
    clip_arrays: Callable[[str], dict[str, np.ndarray]],
    shard_clips: int = 100,
) -> None:
    """A new store at ``path`` of ``clip_ids`` (in this order): ``clip_arrays(clip_id)`` gives
    each clip's arrays, which may be shorter than ``fields``' shapes along their first axis (the
    rest keeps the fill value). ``attrs`` gains ``clip_ids``."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    n = len(clip_ids)
    group = zarr.open_group(str(tmp), mode="w", zarr_format=3)
    group.attrs.update({**attrs, "clip_ids": list(clip_ids)})
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
        for name, (shape, dtype, fill) in fields.items()
    }
    for start in tqdm(range(0, n, shard), desc="store", unit="shard", mininterval=2):
        ids = clip_ids[start : start + shard]
        block = {name: np.full((len(ids), *s), f, dtype=d) for name, (s, d, f) in fields.items()}
        for i, cid in enumerate(ids):
            for name, value in clip_arrays(cid).items():
                block[name][i, : len(value)] = value
        for name, arr in arrays.items():
            arr[start : start + len(ids)] = block[name]
    shutil.rmtree(path, ignore_errors=True)
    tmp.rename(path)


class ClipStore:
    """Read access to a store that :func:`write` made, one clip at a time.

    Args:
        what: the store's name in errors (``detections store``).
        stage: the DVC stage that makes it.
        version: the ``schema_version`` this code reads.
        error: the exception class raised.
    """

    def __init__(self, path: str | Path, what: str, stage: str, version: int, error: type):
        self.path, self.what, self.stage, self.error = Path(path), what, stage, error
        if not (self.path / "zarr.json").is_file():
            raise error(f"{self.path}: no {what} here; run `dvc repro {stage}`")
        try:
            self.group = zarr.open_group(str(self.path), mode="r")
            found = self.group.attrs.get("schema_version")
        except Exception as err:  # a corrupt zarr.json: zarr raises several kinds
            raise error(
                f"{self.path}: not a readable {what} ({type(err).__name__}: {err}); "
                f"delete it and rebuild it with `dvc repro -f {stage}`"
            ) from None
        if found != version:
            raise error(
                f"{self.path}: {what} schema_version {found!r}, this code reads "
                f"{version}; rebuild it with `dvc repro -f {stage}`"
            )
        self.attrs = dict(self.group.attrs)
        self.clip_ids: list[str] = list(self.attrs["clip_ids"])
        self.index = {c: i for i, c in enumerate(self.clip_ids)}

    def __contains__(self, clip_id: str) -> bool:
        return clip_id in self.index

    def read_arrays(self, clip_id: str, names: tuple[str, ...]) -> dict[str, np.ndarray]:
        """One clip's arrays ``names``, whole (padding included)."""
        if clip_id not in self.index:
            raise KeyError(f"{clip_id} is not in {self.path}")
        i = self.index[clip_id]
        try:
            return {name: np.asarray(self.group[name][i]) for name in names}
        except Exception as err:  # a corrupt or missing shard: zarr raises several kinds
            raise self.error(
                f"{self.path}: clip {clip_id} (index {i}) cannot be read "
                f"({type(err).__name__}: {str(err)[:200]}); the store is damaged: delete it and "
                f"rebuild it with `dvc repro -f {self.stage}`"
            ) from None
