"""Opening a versioned HDF5 store for reading, with the errors every store reader gives."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

import h5py


@contextlib.contextmanager
def open_store(
    path: str | Path, version: int, what: str, stage: str, error: type[Exception]
) -> Iterator[h5py.File]:
    """Open ``path`` read-only after checking it exists and has ``schema_version == version``.

    Raises:
        error: naming the file and the ``dvc repro`` that makes (or remakes) it.
    """
    path = Path(path)
    if not path.is_file():
        raise error(f"{path}: no {what} here; run `dvc repro {stage}`")
    try:
        with h5py.File(path, "r") as f:
            found = f.attrs.get("schema_version")
            found = None if found is None else int(found)
            if found != version:
                raise error(
                    f"{path}: {what} schema_version {found!r}, this code reads {version}; "
                    f"rebuild it with `dvc repro -f {stage}`"
                )
            yield f
    except OSError as err:
        raise error(f"{path}: not a readable HDF5 file ({err})") from err
