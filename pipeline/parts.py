"""Per-clip parts: a stage's result for one clip, saved as ``<folder>/<clip_id>.npz`` with the key
it was made with, so that a killed or re-parametrised run redoes only the clips whose key changed.

A key is a string (JSON of what the result depends on: the model's sha256, the params, the clip's
media sha256). A part is written atomically; one that is missing, unreadable, half written or of
another key reads as None, and the clip is made again.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from pipeline import io


def key_of(**what: Any) -> str:
    """A part key: the JSON of ``what``, keys sorted."""
    return json.dumps(what, sort_keys=True)


def write(folder: str | Path, clip_id: str, key: str, arrays: dict[str, np.ndarray]) -> None:
    """Save one clip's ``arrays`` with ``key``, atomically."""
    with io.atomic_path(Path(folder) / f"{clip_id}.npz") as tmp, tmp.open("wb") as fh:
        np.savez(fh, key=np.array(key), **arrays)


def read(
    folder: str | Path, clip_id: str, key: str, names: tuple[str, ...]
) -> dict[str, np.ndarray] | None:
    """One clip's arrays ``names`` if its part exists, is readable and was made with ``key``."""
    path = Path(folder) / f"{clip_id}.npz"
    if not path.is_file():
        return None
    try:
        with np.load(path, allow_pickle=False) as z:
            if str(z["key"]) != key:
                return None
            return {k: z[k] for k in names}
    except (OSError, ValueError, KeyError, EOFError):
        return None  # unreadable or of another layout: make it again
