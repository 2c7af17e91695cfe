"""The download stage against a local HTTP server: every way a clip can fail, and resuming."""

import dataclasses
import http.server
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from pipeline import media
from pipeline.download.fetch import ensure_ffmpeg_on_path
from pipeline.download.run import DownloadParams, check_enough, download_all
from pipeline.download.urls import RejectedInput, clip_url
from pipeline.errors import PipelineError
from pipeline.params import BaseParams
from pipeline.sources.synthetic import download_synthetic
from tests.conftest import REPO, tiny_world

SR = 11025
WORLD = tiny_world(
    n_train=4, seconds=6.0, size=64, max_sources=1, max_context=1, same_class_context=0.0
)


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    """Generated clips under <root>/v/<youtube_id>.mp4, plus broken files, behind a server that
    counts requests, stalls on /stall/ and answers slowly on /slow/."""
    root = tmp_path_factory.mktemp("served")
    world = root / "world"
    download_synthetic(world, WORLD, BaseParams(seed=3, sample_rate=SR))
    (root / "v").mkdir()
    for mp4 in sorted((world / "media").glob("*.mp4")):
        shutil.copy(mp4, root / "v" / f"{mp4.stem.split('_')[0]}.mp4")
    first = sorted((root / "v").glob("*.mp4"))[0].read_bytes()
    (root / "v" / "notmediaxxx.mp4").write_text("<html>this is not a video</html>\n" * 50)
    (root / "v" / "truncatedxx.mp4").write_bytes(first[: len(first) // 3])
    requests = Counter()

    class Handler(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *a, **kw):
            super().__init__(*a, directory=str(root), **kw)

        def log_message(self, *args):
            pass

        def do_GET(self):
            requests[self.path] += 1
            if self.path.startswith("/stall/"):
                self.send_response(200)
                self.send_header("Content-Type", "video/mp4")
                self.send_header("Content-Length", "1000000")
                self.end_headers()
                self.wfile.write(b"\0" * 100)
                self.wfile.flush()
                deadline = time.monotonic() + 8  # bounded: the server stops by itself
                while time.monotonic() < deadline and not stop.is_set():
                    time.sleep(0.05)
                return
            if self.path.startswith("/slow/"):
                time.sleep(0.4)
                self.path = self.path[len("/slow") :]
            super().do_GET()

    stop = threading.Event()
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    base = f"http://127.0.0.1:{server.server_address[1]}"
    ids = sorted(p.stem for p in (root / "v").glob("syn*.mp4"))
    yield {"base": base, "root": root, "world": world, "ids": ids, "requests": requests}
    stop.set()
    server.shutdown()
    server.server_close()


def _params(base, **kw):
    defaults = dict(
        url_template=base + "/v/{youtube_id}.mp4",
        workers=2,
        requests_per_second=0,
        timeout=1.5,
        max_attempts=2,
        backoff=0.05,
        min_ok_fraction=0.0,
        fps=4,
        size=64,
        min_duration_fraction=0.9,
        cookies=None,
        whole_video_clip_seconds=2.0,
        whole_video_skip_seconds=2.0,
    )
    return DownloadParams(**{**defaults, **kw})


def _row(clip_id, yid=None, start=0.0, end=6.0, url=None, split="train"):
    return {
        "clip_id": clip_id,
        "youtube_id": yid,
        "url": url,
        "start": start,
        "end": end,
        "split": split,
        "principal_objects": ["bell"],
        "source": "test",
    }


def _by_id(rows):
    return {r["clip_id"]: r for r in rows}


def test_yt_dlp_finds_the_wheel_ffmpeg_for_partial_downloads(monkeypatch):
    from yt_dlp.downloader.external import FFmpegFD

    monkeypatch.setenv("PATH", "/usr/bin:/bin")
    ensure_ffmpeg_on_path.cache_clear()
    folder = ensure_ffmpeg_on_path()
    assert shutil.which("ffmpeg") == str(Path(folder) / "ffmpeg")
    assert os.path.realpath(shutil.which("ffmpeg")) == os.path.realpath(media.ffmpeg_exe())
    assert FFmpegFD.available()


def test_normal_clip_and_window_cut(served, tmp_path):
    yid = served["ids"][0]
    rows = [_row("full", yid), _row("window", yid, start=2.0, end=5.0)]
    out, metrics = download_all(rows, _params(served["base"]), SR, tmp_path / "media", tmp_path)
    by = _by_id(out)
    assert by["full"]["status"] == "ok" and by["window"]["status"] == "ok", out
    assert by["full"]["duration"] == pytest.approx(6.0, abs=0.01)
    assert by["window"]["duration"] == pytest.approx(3.0, abs=0.01)
    audio, rate = sf.read(tmp_path / "media" / "window" / "audio.wav", dtype="float32")
    assert rate == SR and sf.info(tmp_path / "media" / "window" / "audio.wav").subtype == "PCM_16"
    reference = media.decode_audio(served["root"] / "v" / f"{yid}.mp4", SR)
    # The window starts 2 s in: its first samples are the source's samples from 2 s on.
    corr = np.corrcoef(audio[:2000], reference[2 * SR : 2 * SR + 2000])[0, 1]
    assert corr > 0.99
    assert abs(audio[0] - reference[2 * SR]) < 0.02
    frames = media.decode_frames(tmp_path / "media" / "window" / "video.mp4")
    assert frames.shape[1:] == (64, 64, 3) and abs(len(frames) - 12) <= 1
    assert metrics["ok"] == 2 and metrics["ok_fraction"] == 1.0


def test_every_failure_is_recorded_and_the_run_goes_on(served, tmp_path):
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        dead = sock.getsockname()[1]
    base = served["base"]
    rows = [
        _row("ok", served["ids"][1]),
        _row("missing", "gone0000000"),
        _row("refused", url=f"http://127.0.0.1:{dead}/a.mp4"),
        _row("stall", url=f"{base}/stall/x.mp4"),
        _row("notmedia", "notmediaxxx"),
        _row("truncated", "truncatedxx"),
        _row("short", served["ids"][2], start=0.0, end=10.0),
        _row("hostile", "../../etc/pa"),
        _row("shell", "abc;rm -rf "),
        _row("ftp", url="ftp://127.0.0.1/x.mp4"),
        _row("climb", url="../../secret.mp4"),
    ]
    t0 = time.monotonic()
    out, metrics = download_all(rows, _params(base), SR, tmp_path / "media", tmp_path)
    assert time.monotonic() - t0 < 60
    by = _by_id(out)
    assert by["ok"]["status"] == "ok"
    assert (by["missing"]["status"], by["missing"]["reason"]) == ("unavailable", "http 404")
    assert by["missing"]["attempts"] == 1  # gone for good: not retried
    assert (by["refused"]["status"], by["refused"]["reason"]) == ("failed", "network")
    assert by["refused"]["attempts"] == 2
    assert (by["stall"]["status"], by["stall"]["reason"]) == ("failed", "timeout")
    assert by["notmedia"]["status"] == "failed" and by["notmedia"]["reason"] in (
        "not media",
        "unsupported url",
    )
    # A truncated mp4 (moov first) decodes up to the cut: what is left is too short to keep.
    assert (by["truncated"]["status"], by["truncated"]["reason"]) == ("failed", "short")
    assert "of a 6.00 s window" in by["truncated"]["error"]
    assert (by["short"]["status"], by["short"]["reason"]) == ("failed", "short")
    assert "got 6.00 s of a 10.00 s window" in by["short"]["error"]
    for cid in ("hostile", "shell", "ftp", "climb"):
        assert (by[cid]["status"], by[cid]["reason"]) == ("failed", "rejected"), by[cid]
    assert "not an 11-character YouTube id" in by["shell"]["error"]
    assert not any(
        p.name == "audio.wav" for p in (tmp_path / "media").rglob("*") if p.parent.name != "ok"
    )
    assert metrics["reasons"]["failed: rejected"] == 4
    with pytest.raises(PipelineError, match="only 1 of 11 clips are usable"):
        check_enough(metrics, _params(base, min_ok_fraction=0.5))


def test_hostile_ids_and_urls_never_reach_a_fetch(tmp_path):
    template = "https://www.youtube.com/watch?v={youtube_id}"
    assert clip_url({"youtube_id": "r1nicOVtvkQ"}, template, tmp_path).endswith("v=r1nicOVtvkQ")
    for rec in (
        {"youtube_id": "$(reboot)xx"},
        {"youtube_id": "a" * 12},
        {"youtube_id": None},
        {"url": "http://x/a.mp4;ls"},
        {"url": "javascript:alert(1)"},
        {"url": "file:///etc/../etc/passwd"},
        {"url": "/etc/passwd"},
        {"url": "http:///nohost.mp4"},
    ):
        with pytest.raises(RejectedInput):
            clip_url(rec, template, tmp_path)


def test_whole_videos_are_cut_into_consecutive_clips_after_a_skip(served, tmp_path):
    yid = served["ids"][3]
    rows = [_row(f"{yid}_0", yid, end=None, split="test")]
    out, _ = download_all(rows, _params(served["base"]), SR, tmp_path / "media", tmp_path)
    assert [(r["clip_id"], r["start"], r["status"]) for r in out] == [
        (f"{yid}_2", 2.0, "ok"),
        (f"{yid}_4", 4.0, "ok"),
    ]
    assert all(r["parent"] == f"{yid}_0" and r["split"] == "test" for r in out)
    before = served["requests"][f"/v/{yid}.mp4"]
    again, _ = download_all(rows, _params(served["base"]), SR, tmp_path / "media", tmp_path)
    assert again == out and served["requests"][f"/v/{yid}.mp4"] == before


def test_killed_mid_way_then_resumed(served, tmp_path):
    rows = [_row(f"c{i}", yid) for i, yid in enumerate(served["ids"])]
    manifest = tmp_path / "manifest.jsonl"
    manifest.write_text("".join(json.dumps(r) + "\n" for r in rows))
    media_dir = tmp_path / "media"
    params = _params(served["base"] + "/slow", workers=1)
    script = (
        "import json, sys; from pipeline.download.run import download_all, DownloadParams\n"
        f"p = DownloadParams(**json.loads({json.dumps(json.dumps(dataclasses.asdict(params)))}))\n"
        f"rows = [json.loads(l) for l in open({str(manifest)!r})]\n"
        f"download_all(rows, p, {SR}, {str(media_dir)!r}, {str(tmp_path)!r})\n"
    )
    proc = subprocess.Popen([sys.executable, "-c", script], cwd=REPO)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        done = [p for p in media_dir.glob("c*/status.json")]
        if len(done) >= 2:
            break
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    complete = sorted(p.parent.name for p in media_dir.glob("c*/status.json"))
    assert 2 <= len(complete) < len(rows), "the kill should land mid-way"
    counts = Counter(served["requests"])
    out, metrics = download_all(rows, _params(served["base"] + "/slow"), SR, media_dir, tmp_path)
    assert metrics["ok"] == len(rows)
    for cid in complete:  # complete before the kill: never fetched again
        yid = served["ids"][int(cid[1:])]
        assert served["requests"][f"/slow/v/{yid}.mp4"] == counts[f"/slow/v/{yid}.mp4"]
    for r in out:
        folder = media_dir / r["clip_id"]
        assert sf.info(folder / "audio.wav").frames == 6 * SR
        assert media.decode_frames(folder / "video.mp4").shape[1:] == (64, 64, 3)
    assert not list((media_dir / ".tmp").glob("*"))


def test_a_corrupted_complete_clip_is_fetched_again(served, tmp_path):
    rows = [_row("c", served["ids"][0])]
    download_all(rows, _params(served["base"]), SR, tmp_path / "media", tmp_path)
    wav = tmp_path / "media" / "c" / "audio.wav"
    wav.write_bytes(wav.read_bytes()[:100])  # not the recorded size: not trusted
    out, _ = download_all(rows, _params(served["base"]), SR, tmp_path / "media", tmp_path)
    assert out[0]["status"] == "ok" and sf.info(wav).frames == 6 * SR
    # Other canonical settings: the clip is cut again, never reused as it was.
    out, _ = download_all(rows, _params(served["base"], size=48), SR, tmp_path / "media", tmp_path)
    assert media.probe(tmp_path / "media" / "c" / "video.mp4")["size"] == (48, 48)
    assert out[0]["canonical"] == {"sample_rate": SR, "fps": 4, "size": 48}
