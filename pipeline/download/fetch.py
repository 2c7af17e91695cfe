"""Fetch media with the yt-dlp Python API, and classify what went wrong.

yt-dlp's check for ffmpeg ignores its ``ffmpeg_location`` option for partial downloads
(``download_ranges``), so :func:`ensure_ffmpeg_on_path` exposes the imageio-ffmpeg binary as
``ffmpeg`` on ``PATH`` through a symlink in a private folder.

:func:`fetch_isolated` runs one :func:`fetch` in a child process (``python -m
pipeline.download.fetch``) and watches it: the child and its ffmpeg are killed when the clip's
files pass ``max_bytes`` (an endless body) or the fetch passes its ``deadline`` (a slow drip
that never trips the socket timeout), and the clip is recorded as failed with that reason.
"""

from __future__ import annotations

import contextlib
import functools
import json
import logging
import os
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from pipeline import io, media

#: Messages that mean the video is gone for good: recorded as ``unavailable``, not retried.
_GONE = [
    (re.compile(r"HTTP Error (404|410)"), "http {0}"),
    (re.compile(r"HTTP Error (401|403)"), "http {0}"),
    (re.compile(r"private video", re.I), "private"),
    (re.compile(r"(has been|was) removed|terminated|no longer available", re.I), "removed"),
    (
        re.compile(r"video unavailable|is not available|not available in your country", re.I),
        "unavailable",
    ),
    (re.compile(r"sign in to confirm your age|members-only|join this channel", re.I), "restricted"),
]
_lock = threading.Lock()
log = logging.getLogger(__name__)


class _Logger:
    """Routes yt-dlp's messages to logging (its errors are recorded in the status manifest)."""

    def debug(self, msg: str) -> None:
        log.debug(msg)

    info = warning = error = debug


class FetchFailed(RuntimeError):
    """A fetch that did not produce a file: ``status`` is ``unavailable`` or ``failed``."""

    def __init__(self, status: str, reason: str, error: str):
        super().__init__(error)
        self.status, self.reason, self.error = status, reason, error


@functools.cache
def ensure_ffmpeg_on_path() -> str:
    """Put the imageio-ffmpeg binary on ``PATH`` as ``ffmpeg``; returns the folder."""
    with _lock:
        folder = Path(tempfile.mkdtemp(prefix="avsgs-ffmpeg-"))
        (folder / "ffmpeg").symlink_to(media.ffmpeg_exe())
        os.environ["PATH"] = f"{folder}{os.pathsep}{os.environ.get('PATH', '')}"
        return str(folder)


def classify(message: str, elapsed: float = 0.0, timeout: float = float("inf")) -> FetchFailed:
    """Map a yt-dlp error message to ``unavailable`` (gone) or ``failed`` (may work later).

    ffmpeg (partial downloads) reports a read timeout only as an exit code, so a bare failure that
    took the whole ``timeout`` is classified as ``timeout``."""
    for pattern, reason in _GONE:
        if m := pattern.search(message):
            return FetchFailed("unavailable", reason.format(*m.groups()), message)
    low = message.lower()
    if "timed out" in low or "timeout" in low:
        reason = "timeout"
    elif "refused" in low or "connection" in low or "network" in low or "resolve" in low:
        reason = "network"
    elif "file://" in low and "disabled" in low or "enable-file-urls" in low:
        return FetchFailed("failed", "rejected", f"a local file was refused: {message}")
    elif "unsupported url" in low:
        reason = "unsupported url"
    elif elapsed >= 0.9 * timeout:
        reason = "timeout"
    else:
        reason = "download error"
    return FetchFailed("failed", reason, message)


def fetch(
    url: str,
    dest_dir: str | Path,
    *,
    window: tuple[float, float] | None,
    timeout: float,
    cookies: str | None = None,
    allow_file_urls: bool = False,
) -> Path:
    """Download ``url`` into ``dest_dir`` with yt-dlp; returns the file.

    Args:
        window: ``(start, end)`` seconds to fetch only that part (ffmpeg does the cut); the file
            then starts at ``start``. None fetches the whole media.
        timeout: socket timeout, and ffmpeg's read timeout for partial downloads, seconds.
        allow_file_urls: let yt-dlp open ``file://`` URLs. Off, a redirect to a local file or
            a fetched page whose media link is a local file is refused.

    Raises:
        FetchFailed: classified by :func:`classify`.
    """
    import yt_dlp
    from yt_dlp.utils import download_range_func

    ensure_ffmpeg_on_path()
    dest_dir = Path(dest_dir)
    opts = {
        "outtmpl": str(dest_dir / "source.%(ext)s"),
        "format": "bv*+ba/b",
        "quiet": True,
        "logger": _Logger(),
        "no_warnings": True,
        "noprogress": True,
        "noplaylist": True,
        "socket_timeout": timeout,
        "retries": 0,
        "fragment_retries": 0,
        "extractor_retries": 0,
        "enable_file_urls": allow_file_urls,
        "overwrites": True,
        "ffmpeg_location": media.ffmpeg_exe(),
        "external_downloader_args": {"ffmpeg_i": ["-rw_timeout", str(int(timeout * 1e6))]},
    }
    if cookies:
        opts["cookiefile"] = cookies
    if window is not None:
        opts["download_ranges"] = download_range_func(None, [window])
    t0 = time.monotonic()
    try:
        with yt_dlp.YoutubeDL(opts) as ydl:
            info = ydl.extract_info(url, download=True)
    except yt_dlp.utils.DownloadError as err:
        raise classify(str(err), time.monotonic() - t0, timeout) from err
    except OSError as err:  # a socket error that escaped yt-dlp's own handling
        raise classify(f"{type(err).__name__}: {err}", time.monotonic() - t0, timeout) from err
    files = [d.get("filepath") for d in (info or {}).get("requested_downloads", [])]
    files = [Path(f) for f in files if f and Path(f).is_file()]
    if not files:
        raise FetchFailed("failed", "no file", f"yt-dlp reported no file for {url}")
    return files[0]


def _folder_bytes(folder: Path) -> int:
    total = 0
    for path in folder.rglob("*"):
        with contextlib.suppress(OSError):  # renamed while we looked
            total += path.stat().st_size if path.is_file() else 0
    return total


def fetch_isolated(
    url: str, dest_dir: str | Path, *, max_bytes: int, deadline: float, poll: float = 0.2, **kw
) -> Path:
    """:func:`fetch` (``kw``: its keyword arguments) in a child process, killed past
    ``max_bytes`` written to ``dest_dir`` or past ``deadline`` seconds.

    Raises:
        FetchFailed: as :func:`fetch`, or ``failed: too large`` / ``failed: deadline``.
    """
    dest_dir = Path(dest_dir)
    window = kw.pop("window", None)
    request = {"url": url, "dest_dir": str(dest_dir), "window": list(window) if window else None}
    request.update(kw)
    result, stderr_path = dest_dir / "result.json", dest_dir / "stderr.txt"
    with stderr_path.open("wb") as stderr:  # a file, not a pipe: a chatty child never blocks
        child = subprocess.Popen(  # an argument list, never a shell
            [sys.executable, "-m", "pipeline.download.fetch", json.dumps(request), str(result)],
            stdout=subprocess.DEVNULL,
            stderr=stderr,
            start_new_session=True,  # its own process group: ffmpeg goes down with it
        )
    t0 = time.monotonic()
    killed: FetchFailed | None = None
    while child.poll() is None:
        time.sleep(poll)
        if _folder_bytes(dest_dir) > max_bytes:
            killed = FetchFailed(
                "failed", "too large", f"{url}: more than download.max_bytes={max_bytes} bytes"
            )
        elif time.monotonic() - t0 > deadline:
            killed = FetchFailed(
                "failed",
                "deadline",
                f"{url}: not fetched within download.deadline={deadline:g} s",
            )
        if killed:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(child.pid, signal.SIGKILL)
            child.wait()
            raise killed
    if not result.is_file():
        stderr = stderr_path.read_text(errors="replace")
        tail = stderr.strip().splitlines()[-1:] or [f"exit status {child.returncode}"]
        raise FetchFailed("failed", "error", f"the fetch process died: {tail[0][:500]}")
    out = json.loads(result.read_text())
    if "file" in out:
        return Path(out["file"])
    raise FetchFailed(out["status"], out["reason"], out["error"])


def _main(argv: list[str]) -> int:
    """The child of :func:`fetch_isolated`: one fetch, its outcome as JSON in ``argv[1]``."""
    request, result = json.loads(argv[0]), Path(argv[1])
    window = request.pop("window")
    window = tuple(window) if window else None
    try:
        path = fetch(request.pop("url"), request.pop("dest_dir"), window=window, **request)
        out: dict = {"file": str(path)}
    except FetchFailed as err:
        out = {"status": err.status, "reason": err.reason, "error": err.error}
    except Exception as err:  # anything else is this clip's failure, never the stage's
        out = {"status": "failed", "reason": "error", "error": f"{type(err).__name__}: {err}"}
    io.write_json(result, out)
    return 0


if __name__ == "__main__":
    sys.exit(_main(sys.argv[1:]))
