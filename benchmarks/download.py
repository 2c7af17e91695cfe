"""Per-clip overhead and throughput of the download stage against a local HTTP server.

Serves a generated world's clips from 127.0.0.1 and downloads them with 1 and 4 workers, both whole
(a 10 s clip) and as a 4 s window (the partial-download path through ffmpeg), into fresh folders.

Usage: ``uv run python benchmarks/download.py [--clips 24]``; figures go to docs/download.md.
"""

from __future__ import annotations

import argparse
import functools
import http.server
import logging
import shutil
import tempfile
import threading
import time
from pathlib import Path

from pipeline.download.run import DownloadParams, download_all
from pipeline.params import BaseParams
from pipeline.sources.synthetic import download_synthetic
from pipeline.sources.synthetic.world import SyntheticParams

SR = 11025


def main(n_clips: int) -> None:
    logging.basicConfig(level=logging.WARNING)
    tmp = Path(tempfile.mkdtemp(prefix="bench-download-"))
    world = SyntheticParams("everyday", n_clips, 1, 1, 10.0, 8, 256, 2, 2, 4, 0.5, 44100, 2)
    download_synthetic(tmp / "world", world, BaseParams(seed=0, sample_rate=SR))
    served = tmp / "v"
    served.mkdir()
    ids = []
    for mp4 in sorted((tmp / "world" / "media").glob("*.mp4"))[:n_clips]:
        ids.append(mp4.stem.split("_")[0])
        shutil.copy(mp4, served / f"{ids[-1]}.mp4")

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args):
            pass

    class Server(http.server.ThreadingHTTPServer):
        def handle_error(self, request, client_address):
            pass  # ffmpeg closes partial downloads early: a reset connection is expected

    server = Server(("127.0.0.1", 0), functools.partial(Quiet, directory=str(served)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    base = f"http://127.0.0.1:{server.server_address[1]}"
    print(f"{n_clips} clips of 10 s, 256 px, served from {base}\n")
    print("| fetch | workers | wall (s) | clips/s | s per clip per worker |")
    print("|---|---|---|---|---|")
    for label, window in (("whole 10 s clip", (0.0, 10.0)), ("4 s window (partial)", (3.0, 7.0))):
        for workers in (1, 4):
            params = DownloadParams(
                url_template=base + "/{youtube_id}.mp4",
                workers=workers,
                requests_per_second=0,
                timeout=30,
                max_attempts=1,
                backoff=0,
                min_ok_fraction=1.0,
                fps=8,
                size=256,
                min_duration_fraction=0.9,
                cookies=None,
                whole_video_clip_seconds=10,
                whole_video_skip_seconds=10,
            )
            rows = [
                {
                    "clip_id": f"c{i}",
                    "youtube_id": yid,
                    "url": None,
                    "start": window[0],
                    "end": window[1],
                    "split": "train",
                    "principal_objects": [],
                }
                for i, yid in enumerate(ids)
            ]
            out = tmp / f"media-{workers}-{window[0]}"
            t0 = time.perf_counter()
            _, metrics = download_all(rows, params, SR, out, tmp)
            wall = time.perf_counter() - t0
            assert metrics["ok"] == n_clips, metrics
            print(
                f"| {label} | {workers} | {wall:.1f} | {n_clips / wall:.2f} | "
                f"{wall * workers / n_clips:.2f} |"
            )
    server.shutdown()
    shutil.rmtree(tmp)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clips", type=int, default=24)
    main(parser.parse_args().clips)
