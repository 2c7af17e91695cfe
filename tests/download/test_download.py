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

from pipeline import io, media
from pipeline.download.fetch import ensure_ffmpeg_on_path
from pipeline.download.run import DownloadParams, check_enough, download_all
from pipeline.download.urls import RejectedInput, clip_url
from pipeline.errors import PipelineError
from pipeline.params import BaseParams
from pipeline.sources.synthetic import download_synthetic
from tests.conftest import REPO, start_server, tiny_world

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
            if self.path.startswith("/to-file/"):  # a redirect to a local file
                self.send_response(302)
                self.send_header("Location", (root / "v" / f"{ids[0]}.mp4").as_uri())
                self.end_headers()
                return
            if self.path.startswith("/page/"):  # a web page whose video is a local file
                body = f'<html><video src="{(root / "v" / f"{ids[0]}.mp4").as_uri()}">'
                body = (body + "</video></html>").encode()
                self.send_response(200)
                self.send_header("Content-Type", "text/html")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)
                return
            if self.path.startswith(("/endless/", "/drip/")):  # no length, never ends
                self.send_response(200)
                self.send_header("Content-Type", "video/mp4")
                self.end_headers()
                drip = self.path.startswith("/drip/")
                deadline = time.monotonic() + 10  # bounded: the server stops by itself
                try:
                    while time.monotonic() < deadline and not stop.is_set():
                        self.wfile.write(b"\0" if drip else b"\0" * 65536)
                        self.wfile.flush()
                        if drip:
                            time.sleep(0.3)
                except OSError:  # the client was killed
                    pass
                return
            super().do_GET()

    ids = sorted(p.stem for p in (root / "v").glob("syn*.mp4"))
    stop = threading.Event()
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    base = start_server(server)
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
    # 3 s: a bare failure that takes 90% of the timeout counts as one, and a loaded machine (the
    # suite runs two workers) can spend 1.4 s on a fetch that fails for another reason
    out, metrics = download_all(rows, _params(base, timeout=3.0), SR, tmp_path / "media", tmp_path)
    assert time.monotonic() - t0 < 90
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
    url, recorded = clip_url({"youtube_id": "r1nicOVtvkQ"}, template, tmp_path)
    assert url == recorded and url.endswith("v=r1nicOVtvkQ")
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
    # nothing half-written is left inside the output, and no stored path names this checkout
    assert not list(media_dir.rglob("*.tmp")) and not (media_dir / ".tmp").exists()
    for path in [*media_dir.rglob("*.json")]:
        assert str(tmp_path) not in path.read_text(), path


def test_a_corrupted_complete_clip_is_fetched_again(served, tmp_path):
    rows = [_row("c", served["ids"][0])]
    download_all(rows, _params(served["base"]), SR, tmp_path / "media", tmp_path)
    wav = tmp_path / "media" / "c" / "audio.wav"
    good = wav.read_bytes()
    wav.write_bytes(good[:100])  # not the recorded size: not trusted
    out, _ = download_all(rows, _params(served["base"]), SR, tmp_path / "media", tmp_path)
    assert out[0]["status"] == "ok" and sf.info(wav).frames == 6 * SR
    before = served["requests"][f"/v/{served['ids'][0]}.mp4"]
    wav.write_bytes(good[:-1000] + b"\x7f" * 1000)  # the recorded size, other bytes
    out, _ = download_all(rows, _params(served["base"]), SR, tmp_path / "media", tmp_path)
    assert wav.read_bytes() == good and out[0]["audio_sha256"] == io.sha256_file(wav)
    assert served["requests"][f"/v/{served['ids'][0]}.mp4"] > before  # fetched again
    # Other canonical settings: the clip is cut again, never reused as it was.
    out, _ = download_all(rows, _params(served["base"], size=48), SR, tmp_path / "media", tmp_path)
    assert media.probe(tmp_path / "media" / "c" / "video.mp4")["size"] == (48, 48)
    assert out[0]["canonical"] == {"sample_rate": SR, "fps": 4, "size": 48}


def test_hostile_downloads_are_each_their_clips_failure(served, tmp_path, monkeypatch):
    base, yid = served["base"], served["ids"][0]
    rows = [
        _row("ok", yid),
        _row("redirect", url=f"{base}/to-file/x.mp4"),
        _row("page", url=f"{base}/page/watch.html"),
        _row("endless", url=f"{base}/endless/x.mp4", end=None),  # a whole video: written out
        _row("drip", url=f"{base}/drip/x.mp4"),
        _row("local", url=(served["root"] / "v" / f"{yid}.mp4").as_uri()),
        _row("boom", yid, start=1.0),
    ]
    import pipeline.download.run as run

    real = run.clip_url

    def clip_url(record, *a, **kw):  # an error nobody foresaw, in one clip
        if record["clip_id"] == "boom":
            raise KeyError("something unforeseen")
        return real(record, *a, **kw)

    monkeypatch.setattr(run, "clip_url", clip_url)
    # deadline: past the fetch child's start-up on a loaded machine (the drip server stops at 10 s)
    params = _params(base, max_attempts=1, timeout=5.0, max_bytes=3_000_000, deadline=8.0)
    t0 = time.monotonic()
    out, metrics = download_all(rows[1:], params, SR, tmp_path / "media", tmp_path)
    assert time.monotonic() - t0 < 60
    # the good clip beside them, without the tight deadline a loaded machine could miss
    good, _ = download_all(rows[:1], _params(base), SR, tmp_path / "media", tmp_path)
    by = _by_id([*good, *out])
    assert by["ok"]["status"] == "ok" and metrics["ok"] == 0
    for cid in ("redirect", "page"):  # a local file behind a remote URL: never ingested
        assert by[cid]["status"] == "failed", by[cid]
        assert not (tmp_path / "media" / cid / "audio.wav").exists()
    assert by["endless"]["reason"] == "too large", by["endless"]
    assert by["drip"]["reason"] in ("deadline", "too large"), by["drip"]
    assert by["local"]["reason"] == "rejected"
    assert "download.allow_local_files" in by["local"]["error"]
    assert (by["boom"]["reason"], by["boom"]["status"]) == ("error", "failed")
    assert "something unforeseen" in by["boom"]["error"]
    assert not list((tmp_path / "media.partial").glob("*"))  # scratch emptied
    allowed, _ = download_all(
        [rows[5]], _params(base, allow_local_files=True), SR, tmp_path / "m2", tmp_path
    )
    assert allowed[0]["status"] == "ok"


def test_url_templates_take_start_and_end_and_a_bad_one_is_one_line(served, tmp_path):
    from pipeline.params import ParamsError, parse

    yid = served["ids"][1]
    template = served["base"] + "/v/{youtube_id}.mp4?from={start:g}&to={end:g}"
    out, _ = download_all(
        [_row("w", yid, start=1.0, end=4.0)],
        _params(served["base"], url_template=template),
        SR,
        tmp_path / "media",
        tmp_path,
    )
    assert out[0]["status"] == "ok" and out[0]["url"].endswith(f"{yid}.mp4?from=1&to=4")
    fields = {k: v for k, v in dataclasses.asdict(_params(served["base"])).items()}
    for bad, says in (
        ("http://h/{video}.mp4", "unknown field(s) video"),
        ("http://h/{youtube_id.mp4", "url_template 'http://h/{youtube_id.mp4'"),
        ("http://h/x.mp4", "no {youtube_id}"),
    ):
        with pytest.raises(ParamsError, match="download: url_template") as err:
            parse(DownloadParams, {**fields, "url_template": bad}, "download")
        assert says in str(err.value) and "\n" not in str(err.value)


def test_a_truncated_wav_is_not_packed_as_a_short_clip(tmp_path):
    from pipeline.separation.audio_store import pack_audio

    for cid, seconds in (("a", 3.0), ("b", 1.0)):
        sf.write(tmp_path / f"{cid}.wav", np.zeros(int(seconds * SR), np.int16), SR)
    clips = {c: tmp_path / f"{c}.wav" for c in "ab"}
    metrics = pack_audio(clips, tmp_path / "a.h5", SR, durations={"a": 3.0, "b": 3.0})
    assert (
        metrics["clips"] == 1
        and "1.000 s decoded, 3.000 s when downloaded" in (metrics["skipped_clips"]["b"])
    )


def test_the_source_folders_own_media_is_recorded_by_its_relative_path(served, tmp_path):
    source = tmp_path / "checkout" / "data" / "source"
    (source / "media").mkdir(parents=True)
    shutil.copy(served["root"] / "v" / f"{served['ids'][0]}.mp4", source / "media" / "x.mp4")
    out, _ = download_all(
        [_row("rel", url="media/x.mp4")], _params(served["base"]), SR, tmp_path / "m", source
    )
    assert out[0]["status"] == "ok" and out[0]["url"] == "media/x.mp4"
    assert str(tmp_path) not in (tmp_path / "m" / "rel" / "status.json").read_text()


def test_a_regenerated_source_is_cut_again_and_new_labels_reach_the_rows(served, tmp_path):
    # the synthetic world regenerated under the same clip ids (another flavour or seed): the
    # media file of the source folder has other bytes, so the clip is cut again
    source = tmp_path / "source"
    (source / "media").mkdir(parents=True)
    first, second = (served["root"] / "v" / f"{i}.mp4" for i in served["ids"][:2])
    shutil.copy(first, source / "media" / "x.mp4")
    row = _row("rel", url="media/x.mp4")
    media_dir = tmp_path / "m"
    out, _ = download_all([row], _params(served["base"]), SR, media_dir, source)
    was = out[0]["video_sha256"]
    assert out[0]["source_sha256"] == io.sha256_file(source / "media" / "x.mp4")
    # new labels (labels.match changed): nothing is cut again, the row carries the new labels
    relabelled = {**row, "principal_objects": ["man", "man"], "split": "val"}
    out, _ = download_all([relabelled], _params(served["base"]), SR, media_dir, source)
    assert out[0]["video_sha256"] == was and out[0]["principal_objects"] == ["man", "man"]
    assert out[0]["split"] == "val"
    assert json.loads((media_dir / "rel" / "status.json").read_text())["split"] == "val"
    shutil.copy(second, source / "media" / "x.mp4")
    out, _ = download_all([row], _params(served["base"]), SR, media_dir, source)
    assert out[0]["status"] == "ok" and out[0]["video_sha256"] != was
    assert out[0]["source_sha256"] == io.sha256_file(second)
