"""Shared fixtures: the real metadata copies in ../shared/data and a local HTTP server."""

from __future__ import annotations

import functools
import http.server
import os
import sys
import threading
from pathlib import Path

# The suite runs on several pytest workers, each starting stages with torch threads of its own:
# idle OpenMP threads must sleep rather than spin, or they take another worker's core (a shared
# 2-core machine ran 4x slower with spinning threads). Subprocesses inherit it; the stages keep it
# (pipeline/runtime.py), and the workers' own torch gets the stages' allocator settings.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

from pipeline import runtime  # noqa: E402

runtime.tune_process()

import pytest  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
# tests load stage scripts as modules; their first import is stages/_checkout.py, which a script
# finds beside itself
sys.path.append(str(REPO / "stages"))


def load_stage(name: str):
    """The module of ``stages/<name>.py``, loaded as a module (not ``__main__``: no allocator
    re-exec, no run)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location(f"stage_{name}", REPO / "stages" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def run_stage(name: str, argv: list[str]) -> int:
    """``stages/<name>.py`` with ``argv``, in this process, as its ``__main__`` runs it (less the
    allocator re-exec); returns its exit status. Where a test compares a stage's result with a
    subprocess run (torchrun), this saves a start that costs the imports of torch and PyG. The
    torch thread count a stage sets is put back."""
    import torch

    from pipeline import stage

    module = load_stage(name)
    threads = torch.get_num_threads()
    try:
        return stage.run(name, module.PARAMS, module.add_args, module.body, argv)
    finally:
        torch.set_num_threads(threads)


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


def pytest_collection_modifyitems(config, items):
    """Deal the long tests (``pipeline``: ``dvc repro`` in a copy of the repository, longest
    first; then the other ``slow`` ones) to the heads of the N equal parts of the run order (N:
    the pytest workers), in turn, and fill each part with the short ones. ``--dist worksteal``
    gives each worker one part, run from its head, and an idle worker steals from the tail of
    another's: so each starts on its share of the long tests and all end on short ones (in file
    order all of them fell in one part, one worker's, which ran them one after another)."""
    workers = getattr(config.option, "numprocesses", None)
    parts = workers if isinstance(workers, int) and workers > 1 else 1
    long = [i for i in items if i.get_closest_marker("slow")]
    long.sort(key=lambda i: not i.get_closest_marker("pipeline"))  # stable: file order within
    short = [i for i in items if not i.get_closest_marker("slow")]
    ordered = []
    for k in range(parts):
        heads = long[k::parts]
        size = len(items) * (k + 1) // parts - len(items) * k // parts
        fill = max(size - len(heads), 0) if k < parts - 1 else len(short)
        ordered += heads + short[:fill]
        short = short[fill:]
    items[:] = ordered


SHARED_DATA = REPO.parent / "shared" / "data"


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The copies of the AudioCaps CSVs and MUSIC lists beside the checkout (never committed)."""
    if not (SHARED_DATA / "audiocaps" / "train.csv").is_file():
        pytest.fail(f"{SHARED_DATA} is missing: tests need ../shared/data beside the checkout")
    return SHARED_DATA


def start_server(server: http.server.HTTPServer) -> str:
    """Serve ``server`` from a daemon thread; returns its base URL. It polls for shutdown every
    50 ms (the standard 0.5 s added that much to every test's teardown)."""
    threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True).start()
    return f"http://127.0.0.1:{server.server_address[1]}"


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
        servers.append(server)
        return start_server(server)

    yield serve
    for server in servers:
        server.shutdown()
        server.server_close()


def tiny_model(num_classes=4):
    """An untrained small_fpn detector for 96 px frames whose boxes survive the score filter."""
    import torch

    from pipeline.detection.model import small_fpn

    torch.manual_seed(0)
    model = small_fpn(
        num_classes=num_classes,
        image_size=96,
        widths=(8, 8, 8, 8),
        fpn_channels=8,
        representation=16,
        detections_per_img=5,
    )
    # Untrained heads score everything alike; a positive bias makes boxes survive the filters.
    torch.nn.init.constant_(model.roi_heads.box_predictor.cls_score.bias, 0.0)
    return model.eval()


@pytest.fixture(scope="session")
def tiny_clips(tmp_path_factory):
    """Four tiny clips laid out as the download stage writes them, a status list, and an untrained
    detector checkpoint with classes a, b, c."""
    import shutil

    from pipeline.detection.model import save_checkpoint
    from pipeline.params import BaseParams
    from pipeline.sources.synthetic import download_synthetic

    root = tmp_path_factory.mktemp("det")
    download_synthetic(
        root / "world", tiny_world(n_train=2, max_context=2), BaseParams(seed=0, sample_rate=11025)
    )
    media_dir = root / "media"
    rows = []
    for mp4 in sorted((root / "world" / "media").glob("*.mp4")):
        cid = mp4.stem
        (media_dir / cid).mkdir(parents=True)
        shutil.copy(mp4, media_dir / cid / "video.mp4")
        rows.append({"clip_id": cid, "status": "ok"})
    ckpt = root / "detector.pt"
    arch = {
        "name": "small_fpn",
        "kwargs": {
            "num_classes": 4,
            "image_size": 96,
            "widths": [8, 8, 8, 8],
            "fpn_channels": 8,
            "representation": 16,
            "detections_per_img": 5,
        },
    }
    save_checkpoint(ckpt, tiny_model(), arch, ["__background__", "a", "b", "c"], {"kind": "test"})
    return {"root": root, "media": media_dir, "rows": rows, "ckpt": ckpt}
