"""Download every candidate clip of the labels manifest, resumably, recording every failure.

The media folder (a persistent DVC output) and the status manifest are laid out by
:mod:`pipeline.download.store`; this stage also keeps::

    <media>/.videos/<id>.json        whole videos (MUSIC): the clips cut from each
    <media>.partial/                 scratch for downloads in flight (beside the output, not in
                                     it), emptied at every start

A clip counts as complete only when its ``status.json`` says ``ok`` and both files exist with the
recorded sizes and sha256, so a stage killed at any moment, or a file damaged since, leaves
nothing that a rerun would trust wrongly. Every start also removes the temporary files that an
atomic write killed half-way leaves (``.*.tmp``), so the output's hash never depends on a kill.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import shutil
import threading
import time
import urllib.parse
import urllib.request
import uuid
from collections import Counter
from concurrent.futures import ThreadPoolExecutor, as_completed
from pathlib import Path
from typing import Any

import soundfile as sf
from tqdm import tqdm

from pipeline import io, media
from pipeline.download.fetch import FetchFailed, fetch, fetch_isolated
from pipeline.download.store import MediaStore
from pipeline.download.urls import RejectedInput, check_template, clip_url
from pipeline.errors import PipelineError
from pipeline.sources.table import clip_id_for

log = logging.getLogger(__name__)

#: Failures that another attempt cannot fix.
NO_RETRY = {"rejected", "short", "no audio", "no video"}


class DownloadError(PipelineError, RuntimeError):
    """Too few clips are usable to go on."""


@dataclasses.dataclass(frozen=True)
class DownloadParams:
    """``download``.

    Args:
        url_template: URL of a clip without its own ``url``, with ``{youtube_id}``.
        workers: clips fetched at once.
        requests_per_second: remote fetches started per second, over all workers (0: no limit);
            local ``file://`` media is not limited.
        timeout: socket and ffmpeg read timeout, seconds.
        max_attempts: attempts per clip and run; failed clips are retried on every rerun.
        backoff: seconds before the second attempt, doubling after each.
        min_ok_fraction: the stage fails when fewer clips than this share are ok.
        fps, size: the canonical video's frame rate and frame side (px).
        min_duration_fraction: a clip shorter than this share of its window is ``failed: short``.
        cookies: a cookies.txt for YouTube (signed-in or age-restricted videos), or null.
        whole_video_clip_seconds: whole videos (MUSIC) are cut into clips this long ...
        whole_video_skip_seconds: ... after skipping this much of their start.
        allow_local_files: fetch ``file://`` URLs and local paths named by the clip list (and
            links to local files that yt-dlp finds in a fetched page); off, they are recorded as
            ``failed: rejected``. The source's own relative media (the synthetic world) is always
            read.
        max_bytes: a fetch that writes more than this is killed: ``failed: too large``.
        deadline: a fetch that takes longer than this, seconds, is killed: ``failed: deadline``.
    """

    url_template: str
    workers: int
    requests_per_second: float
    timeout: float
    max_attempts: int
    backoff: float
    min_ok_fraction: float
    fps: int
    size: int
    min_duration_fraction: float
    cookies: str | None
    whole_video_clip_seconds: float
    whole_video_skip_seconds: float
    allow_local_files: bool = False
    max_bytes: int = 2**30
    deadline: float = 600.0

    def __post_init__(self) -> None:
        check_template(self.url_template)
        if self.max_bytes < 1 or self.deadline <= 0:
            raise ValueError("max_bytes must be >= 1 and deadline > 0")
        if self.workers < 1 or self.max_attempts < 1:
            raise ValueError("workers and max_attempts must be >= 1")
        if not 0 <= self.min_ok_fraction <= 1 or not 0 < self.min_duration_fraction <= 1:
            raise ValueError("min_ok_fraction must lie in [0, 1], min_duration_fraction in (0, 1]")
        if self.timeout <= 0 or self.whole_video_clip_seconds <= 0:
            raise ValueError("timeout and whole_video_clip_seconds must be > 0")


class RateLimiter:
    """Spaces the starts of fetches ``1 / per_second`` apart, over all threads."""

    def __init__(self, per_second: float):
        self.interval = 1.0 / per_second if per_second > 0 else 0.0
        self.next = 0.0
        self.lock = threading.Lock()

    def wait(self) -> None:
        with self.lock:
            now = time.monotonic()
            start = max(now, self.next)
            self.next = start + self.interval
        time.sleep(max(0.0, start - now))


@dataclasses.dataclass
class Downloader:
    """Downloads the clips of one manifest into ``media_dir``."""

    params: DownloadParams
    sample_rate: int
    media_dir: Path
    source_dir: Path

    def __post_init__(self) -> None:
        self.limiter = RateLimiter(self.params.requests_per_second)
        self.store = MediaStore(self.media_dir)
        self.scratch = self.media_dir.with_name(f"{self.media_dir.name}.partial")
        self.fetches: Counter[str] = Counter()  # url -> fetches this run (for the summary)

    # -- status records -------------------------------------------------------------------
    def status_path(self, clip_id: str) -> Path:
        return self.store.status(clip_id)

    def read_status(self, clip_id: str) -> dict[str, Any] | None:
        path = self.status_path(clip_id)
        if not path.is_file():
            return None
        try:
            return json.loads(path.read_text())
        except (json.JSONDecodeError, OSError):
            return None

    @property
    def canonical(self) -> dict[str, Any]:
        """The settings a complete clip must have been cut with to be trusted."""
        return {"sample_rate": self.sample_rate, "fps": self.params.fps, "size": self.params.size}

    @staticmethod
    def source_sha256(job: dict[str, Any]) -> str | None:
        """The SHA-256 of a job's local media file (a ``file://`` URL: the synthetic world's
        media, a user's local files), None for a remote URL."""
        parts = urllib.parse.urlsplit(job["fetch_url"])
        if parts.scheme != "file":
            return None
        path = Path(urllib.request.url2pathname(parts.path))
        return io.sha256_file(path) if path.is_file() else None

    def complete(self, clip_id: str, job: dict[str, Any]) -> dict[str, Any] | None:
        """The clip's ok record if it was cut from what ``job`` names (the same URL, window and,
        for a local file, the same bytes) with the current settings, and its files are there as
        recorded, else None. The record returned carries the job's labels and split (a new
        labels manifest does not refetch anything, and its labels reach the status rows)."""
        rec = self.read_status(clip_id)
        if not rec or rec.get("status") != "ok" or rec.get("canonical") != self.canonical:
            return None
        if rec.get("url") != job["recorded_url"] or (
            job.get("source_sha256") and rec.get("source_sha256") != job["source_sha256"]
        ):
            log.info("download: %s: its source changed since it was cut; cutting it again", clip_id)
            return None
        if job.get("end") is not None and (rec["start"], rec["end"]) != (job["start"], job["end"]):
            return None
        for path, kind in (
            (self.store.audio(clip_id), "audio"),
            (self.store.video(clip_id), "video"),
        ):
            if not path.is_file() or path.stat().st_size != rec.get(f"{kind}_bytes"):
                return None
            if io.sha256_file(path) != rec.get(f"{kind}_sha256"):
                log.warning("download: %s changed since it was cut; fetching it again", path)
                return None
        fresh = {k: job.get(k) for k in ("principal_objects", "split", "youtube_id")}
        if any(rec.get(k) != v for k, v in fresh.items()):
            rec = self._write_status({**rec, **fresh})
        return rec

    def _record(self, base: dict[str, Any], **fields: Any) -> dict[str, Any]:
        rec = {
            "clip_id": base["clip_id"],
            "parent": base.get("parent", base["clip_id"]),
            "youtube_id": base.get("youtube_id"),
            "split": base["split"],
            "principal_objects": base.get("principal_objects", []),
            "start": base["start"],
            "end": base.get("end"),
            "url": base.get("recorded_url", base.get("url")),
            "source_sha256": base.get("source_sha256"),
            "status": "failed",
            "reason": None,
            "error": None,
            "attempts": 0,
            "duration": None,
            "audio_bytes": None,
            "video_bytes": None,
            "audio_sha256": None,
            "video_sha256": None,
            "canonical": self.canonical,
        }
        rec.update(fields)
        return rec

    def _write_status(self, rec: dict[str, Any]) -> dict[str, Any]:
        io.write_json(self.status_path(rec["clip_id"]), rec)
        return rec

    # -- one clip -----------------------------------------------------------------------------
    def _cut(self, src: Path, offset: float, target: dict[str, Any], attempts: int) -> dict:
        """Cut one clip out of a fetched file, verify it, and mark it complete."""
        seconds = target["end"] - target["start"]
        streams = media.probe(src)
        for key, reason in (("sample_rate", "no audio"), ("size", "no video")):
            if key not in streams:
                raise FetchFailed("failed", reason, f"the fetched media has {reason} track")
        cid = target["clip_id"]
        audio, video = self.store.audio(cid), self.store.video(cid)
        audio.parent.mkdir(parents=True, exist_ok=True)
        with io.atomic_path(audio) as wav, io.atomic_path(video) as mp4:
            media.cut_clip(
                src,
                offset,
                seconds,
                wav,
                mp4,
                sample_rate=self.sample_rate,
                fps=self.params.fps,
                size=self.params.size,
            )
            info = sf.info(str(wav))
            duration = info.frames / info.samplerate
            if info.samplerate != self.sample_rate or duration < (
                self.params.min_duration_fraction * seconds
            ):
                raise FetchFailed(
                    "failed", "short", f"got {duration:.2f} s of a {seconds:.2f} s window"
                )
            probed = media.probe(mp4)
            if probed.get("size") != (self.params.size, self.params.size):
                raise FetchFailed("failed", "not media", f"video decodes as {probed}")
        return self._write_status(
            self._record(
                target,
                status="ok",
                attempts=attempts,
                duration=round(duration, 4),
                audio_bytes=audio.stat().st_size,
                video_bytes=video.stat().st_size,
                audio_sha256=io.sha256_file(audio),
                video_sha256=io.sha256_file(video),
            )
        )

    def _attempts(self, job: dict[str, Any], work) -> list[dict[str, Any]]:
        """Run ``work(tmp_dir, attempt)`` up to max_attempts times with backoff; record failures."""
        previous = self.read_status(job["clip_id"]) or {}
        last: FetchFailed | None = None
        for attempt in range(1, self.params.max_attempts + 1):
            tmp = self.scratch / f"{job['clip_id']}-{uuid.uuid4().hex[:8]}"
            tmp.mkdir(parents=True)
            if not job["fetch_url"].startswith("file:"):  # the limit protects remote servers
                self.limiter.wait()
            try:
                return work(tmp, attempt)
            except FetchFailed as err:
                last = err
            except media.MediaError as err:
                last = FetchFailed("failed", "not media", str(err))
            except Exception as err:  # anything else is this clip's failure, not the stage's
                log.warning("download: %s: %s: %s", job["clip_id"], type(err).__name__, err)
                last = FetchFailed("failed", "error", f"{type(err).__name__}: {err}")
            finally:
                shutil.rmtree(tmp, ignore_errors=True)
            if last.status == "unavailable" or last.reason in NO_RETRY:
                break
            if attempt < self.params.max_attempts:
                time.sleep(self.params.backoff * 2 ** (attempt - 1))
        assert last is not None
        return [
            self._write_status(
                self._record(
                    job,
                    status=last.status,
                    reason=last.reason,
                    error=last.error[-2000:],
                    attempts=previous.get("attempts", 0) + attempt,
                )
            )
        ]

    def _fetch(
        self, url: str, tmp: Path, window: tuple[float, float] | None, own: bool = False
    ) -> tuple[Path, float]:
        """Fetch ``url`` (only ``window`` of it for http(s)); returns the file and the window's
        offset inside it. ``own``: the source stage's own media (a relative path inside the source
        folder), fetched in this process: no server to guard against."""
        self.fetches[url] += 1
        if own:
            kw = dict(timeout=self.params.timeout, allow_file_urls=True)
            return fetch(url, tmp, window=None, **kw), (window[0] if window else 0.0)
        partial = window is not None and urllib.parse.urlsplit(url).scheme in ("http", "https")
        kw = dict(
            timeout=self.params.timeout,
            cookies=self.params.cookies,
            # yt-dlp opens file:// only for a local URL that clip_url let through; a remote page
            # that redirects or links to a local file is refused
            allow_file_urls=urllib.parse.urlsplit(url).scheme == "file",
            max_bytes=self.params.max_bytes,
            deadline=self.params.deadline,
        )
        if partial:
            try:
                got = fetch_isolated(url, tmp, window=window, **kw)
                media.probe(got)  # a server without range requests leaves a broken cut
                return got, 0.0
            except FetchFailed as err:
                # ffmpeg's bare exit code says nothing; fetching the whole file lets our own
                # decoder say what is wrong (or succeed where the format cannot be cut remotely).
                if err.reason != "download error":
                    raise
            except media.MediaError:
                log.info("download: %s could not be cut remotely; fetching it whole", url)
            shutil.rmtree(tmp)  # the broken cut: the whole file goes into a clean folder
            tmp.mkdir()
        return fetch_isolated(url, tmp, window=None, **kw), (window[0] if window else 0.0)

    def clip(self, job: dict[str, Any]) -> list[dict[str, Any]]:
        """Download one windowed clip (AudioCaps, synthetic, a user's CSV)."""
        if done := self.complete(job["clip_id"], job):
            return [done]
        previous = self.read_status(job["clip_id"])
        if previous and previous["status"] == "unavailable":  # gone for good
            return [previous]

        def work(tmp: Path, attempt: int):
            own = not urllib.parse.urlsplit(job["recorded_url"]).scheme
            src, offset = self._fetch(job["fetch_url"], tmp, (job["start"], job["end"]), own)
            return [self._cut(src, offset, job, attempt)]

        return self._attempts(job, work)

    def whole_video(self, job: dict[str, Any]) -> list[dict[str, Any]]:
        """Download a whole video once and cut it into consecutive clips (MUSIC's protocol)."""
        index = self.media_dir / ".videos" / f"{job['clip_id']}.json"
        if index.is_file():
            ids = json.loads(index.read_text())["clips"]
            done = [self.complete(c, job) for c in ids]
            if all(done):
                return done
        previous = self.read_status(job["clip_id"])
        if previous and previous["status"] == "unavailable":
            return [previous]
        step = self.params.whole_video_clip_seconds
        skip = self.params.whole_video_skip_seconds

        def work(tmp: Path, attempt: int):
            src, _ = self._fetch(job["fetch_url"], tmp, None)
            duration = media.probe(src)["duration"]
            starts = []
            while skip + (len(starts) + 1) * step <= duration + 1e-6:
                starts.append(skip + len(starts) * step)
            if not starts:
                raise FetchFailed(
                    "failed", "short", f"{duration:.1f} s video; needs {skip + step:.0f} s"
                )
            out = []
            for start in starts:
                target = {
                    **job,
                    "clip_id": clip_id_for(job["youtube_id"], start),
                    "parent": job["clip_id"],
                    "start": start,
                    "end": start + step,
                }
                out.append(
                    self.complete(target["clip_id"], target)
                    or self._cut(src, start, target, attempt)
                )
            io.write_json(index, {"clips": [r["clip_id"] for r in out], "duration": duration})
            self.status_path(job["clip_id"]).unlink(missing_ok=True)  # an earlier failure
            return out

        return self._attempts(job, work)

    def job(self, record: dict[str, Any]) -> list[dict[str, Any]]:
        job = dict(record)
        try:
            job["fetch_url"], job["recorded_url"] = clip_url(
                record, self.params.url_template, self.source_dir, self.params.allow_local_files
            )
        except RejectedInput as err:
            return [self._write_status(self._record(job, reason="rejected", error=str(err)))]
        job["source_sha256"] = self.source_sha256(job)
        return self.whole_video(job) if job.get("end") is None else self.clip(job)

    def safe_job(self, record: dict[str, Any]) -> list[dict[str, Any]]:
        """:meth:`job`, with any exception recorded as the clip's failure (never the stage's)."""
        try:
            return self.job(record)
        except Exception as err:
            log.warning("download: %s: %s: %s", record["clip_id"], type(err).__name__, err)
            rec = self._record(record, reason="error", error=f"{type(err).__name__}: {err}")
            try:
                return [self._write_status(rec)]
            except OSError:
                return [rec]


def _safe_clip_id(record: dict[str, Any]) -> bool:
    cid = str(record.get("clip_id", ""))
    return bool(cid) and "/" not in cid and "\\" not in cid and not cid.startswith(".")


def download_all(
    manifest: list[dict[str, Any]],
    params: DownloadParams,
    sample_rate: int,
    media_dir: str | Path,
    source_dir: str | Path,
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Download every clip of ``manifest``; returns (status rows sorted by clip_id, metrics)."""
    media_dir = Path(media_dir)
    media_dir.mkdir(parents=True, exist_ok=True)
    dl = Downloader(params, sample_rate, media_dir, Path(source_dir))
    # leftovers of a killed run: scratch (and, from older versions, scratch inside the output)
    for scratch in (dl.scratch, media_dir / ".tmp"):
        shutil.rmtree(scratch, ignore_errors=True)
    io.remove_partial_files(media_dir)
    rows: list[dict[str, Any]] = []
    bad = [r for r in manifest if not _safe_clip_id(r)]
    for r in bad:  # never used as a folder name
        rows.append(
            dl._record(
                {**r, "clip_id": str(r.get("clip_id")), "start": r.get("start")},
                reason="rejected",
                error="clip_id is not a safe folder name",
            )
        )
    jobs = [r for r in manifest if _safe_clip_id(r)]
    counts: Counter[str] = Counter()
    with (
        ThreadPoolExecutor(params.workers) as pool,
        tqdm(total=len(jobs), desc="download", unit="clip", mininterval=2) as bar,
    ):
        futures = [pool.submit(dl.safe_job, r) for r in jobs]
        for fut in as_completed(futures):
            for rec in fut.result():
                rows.append(rec)
                counts[rec["status"]] += 1
            bar.set_postfix(counts, refresh=False)
            bar.update()
    rows.sort(key=lambda r: r["clip_id"])
    by_reason = Counter(f"{r['status']}: {r['reason']}" for r in rows if r["status"] != "ok")
    n_ok = sum(r["status"] == "ok" for r in rows)
    metrics = {
        "clips": len(rows),
        "ok": n_ok,
        "unavailable": sum(r["status"] == "unavailable" for r in rows),
        "failed": sum(r["status"] == "failed" for r in rows),
        "ok_fraction": round(n_ok / len(rows), 4) if rows else 0.0,
        "reasons": dict(sorted(by_reason.items())),
        "splits": {
            s: sum(r["status"] == "ok" and r["split"] == s for r in rows)
            for s in ("train", "val", "test")
        },
    }
    log.info(
        "download: %d ok, %d unavailable, %d failed of %d clips (%d fetched this run); %s",
        n_ok,
        metrics["unavailable"],
        metrics["failed"],
        len(rows),
        sum(dl.fetches.values()),
        dict(by_reason) or "",
    )
    return rows, metrics


def check_enough(metrics: dict[str, Any], params: DownloadParams) -> None:
    """Raise :class:`DownloadError` when fewer than ``min_ok_fraction`` of the clips are ok."""
    if metrics["ok_fraction"] < params.min_ok_fraction:
        raise DownloadError(
            f"only {metrics['ok']} of {metrics['clips']} clips are usable "
            f"({metrics['ok_fraction']:.1%} < download.min_ok_fraction "
            f"{params.min_ok_fraction:.1%}); reasons: {metrics['reasons']}. Rerun to retry the "
            "failed ones (complete clips are kept), or see docs/download.md"
        )
