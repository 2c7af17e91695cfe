"""Fetch small pinned metadata files from their public address or from a mirror.

A mirror is a local folder, or an ``http(s)://`` / ``file://`` URL of a folder, that holds the same
files under the same names: it is how offline machines and tests run the real code path. Each file
is checked against its pinned sha256 *before* it is written, so a wrong or corrupt file never lands.
"""

from __future__ import annotations

import hashlib
import logging
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

from pipeline import io
from pipeline.errors import PipelineError

log = logging.getLogger(__name__)

_URL_SCHEMES = ("http", "https", "file")


class FetchError(PipelineError, RuntimeError):
    """A metadata file that could not be fetched or did not match its checksum."""


def _read_url(url: str, timeout: float, attempts: int) -> bytes:
    scheme = urllib.parse.urlsplit(url).scheme
    if scheme not in _URL_SCHEMES:
        raise FetchError(f"{url}: unsupported URL scheme {scheme!r} (use http, https or file)")
    last: Exception | None = None
    for attempt in range(1, attempts + 1):
        try:
            with urllib.request.urlopen(url, timeout=timeout) as resp:  # noqa: S310 (scheme checked)
                return resp.read()
        except urllib.error.HTTPError as err:
            if err.code < 500:  # 4xx: retrying will not help
                raise FetchError(f"could not download {url}: HTTP {err.code} {err.reason}") from err
            last = err
        except (urllib.error.URLError, TimeoutError, ConnectionError) as err:
            last = err
            if scheme == "file":
                break
        if attempt < attempts:
            time.sleep(min(2.0**attempt, 10.0))
    raise FetchError(f"could not download {url} after {attempts} attempt(s): {last}")


def locate(name: str, url: str, mirror: str | None) -> str:
    """Where ``name`` is read from: ``url`` itself, or ``mirror``'s copy of it."""
    if mirror is None:
        return url
    if urllib.parse.urlsplit(mirror).scheme in _URL_SCHEMES:
        return mirror.rstrip("/") + "/" + urllib.parse.quote(name)
    return str(Path(mirror) / name)


def fetch(
    name: str,
    url: str,
    dest: str | Path,
    *,
    sha256: str | None,
    mirror: str | None = None,
    mirror_key: str = "mirror",
    timeout: float = 60.0,
    attempts: int = 3,
) -> dict[str, str]:
    """Fetch one file to ``dest``, checking its sha256 before anything is written.

    Args:
        name: the file's name, as found in a mirror.
        url: its pinned public address (used when ``mirror`` is None).
        dest: where to write it.
        sha256: the expected hex digest, or None for an unpinned file (a user's own list).
        mirror: a local folder or a folder URL holding ``name``.
        mirror_key: the params key of the mirror, named in error messages.

    Returns:
        provenance: ``{"name", "from", "sha256"}``.

    Raises:
        FetchError: a missing file, a network error, or a checksum mismatch (nothing is written).
    """
    where = locate(name, url, mirror)
    if mirror is not None and urllib.parse.urlsplit(mirror).scheme not in _URL_SCHEMES:
        path = Path(where)
        if not path.is_file():
            raise FetchError(
                f"{path}: not found in the mirror folder; put {name} there, or set "
                f"{mirror_key}: null to download it from {url}"
            )
        data = path.read_bytes()
    else:
        log.info("downloading %s", where)
        data = _read_url(where, timeout=timeout, attempts=attempts)
    digest = hashlib.sha256(data).hexdigest()
    if sha256 is not None and digest != sha256:
        raise FetchError(
            f"{where}: sha256 {digest} does not match the pinned {sha256}; this is not the "
            f"expected {name} (a changed or corrupt copy), so nothing was written. Replace it with "
            f"the file from {url}."
        )
    io.write_bytes(dest, data)
    return {"name": name, "from": where, "sha256": digest}


def fetch_pinned(
    files: dict[str, str],
    url: str,
    raw_dir: str | Path,
    *,
    mirror: str | None,
    mirror_key: str,
) -> list[dict[str, str]]:
    """Fetch several sha256-pinned files (name -> sha256) into ``raw_dir``.

    ``url`` is the public address with ``{name}`` for each file's name."""
    return [
        fetch(
            name,
            url.format(name=name),
            Path(raw_dir) / name,
            sha256=sha,
            mirror=mirror,
            mirror_key=mirror_key,
        )
        for name, sha in files.items()
    ]
