"""Shared fixtures: the real metadata copies in ../shared/data and a local HTTP server."""

from __future__ import annotations

import functools
import http.server
import threading
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def tiny_world(**overrides):
    """Settings of a synthetic world small enough for a test (everyday flavour, one worker)."""
    from pipeline.sources.synthetic.world import SyntheticParams

    settings = dict(
        flavour="everyday",
        n_train=3,
        n_val=1,
        n_test=1,
        seconds=2.0,
        fps=4,
        size=96,
        max_sources=2,
        min_context=1,
        max_context=3,
        same_class_context=0.5,
        render_rate=44100,
        workers=1,
    )
    return SyntheticParams(**{**settings, **overrides})


SHARED_DATA = REPO.parent / "shared" / "data"


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The copies of the AudioCaps CSVs and MUSIC lists beside the checkout (never committed)."""
    if not (SHARED_DATA / "audiocaps" / "train.csv").is_file():
        pytest.fail(f"{SHARED_DATA} is missing: tests need ../shared/data beside the checkout")
    return SHARED_DATA


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):  # keep pytest output clean
        pass


@pytest.fixture
def http_server():
    """Start a server on 127.0.0.1 serving a folder; yields ``serve(folder) -> base URL``."""
    servers = []

    def serve(folder: Path) -> str:
        handler = functools.partial(_QuietHandler, directory=str(folder))
        server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        return f"http://127.0.0.1:{server.server_address[1]}"

    yield serve
    for server in servers:
        server.shutdown()
        server.server_close()
