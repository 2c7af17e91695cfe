"""Detector speed on this CPU, and the detections store's write and read times.

1. Frames per second (inference with per-box features, batch 8) for the trained detector
   (``data/detector/detector.pt``, or a freshly initialised ``small_fpn`` if absent) and for
   torchvision's ResNet-50 FPN Faster R-CNN (random weights: speed does not depend on them) at
   256 px and 480 px input.
2. Zarr store: building it from per-clip parts, and reading one clip at random.

Usage: ``uv run python benchmarks/detection.py``; figures go to docs/detection.md.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from pipeline.detection.infer import detect_with_features
from pipeline.detection.model import load_checkpoint, resnet50_fpn, small_fpn
from pipeline.detection.store import DetectionStore, build_store, write_part

torch.set_num_threads(2)


def fps(model, size: int, n_batches: int = 3, batch: int = 8) -> float:
    model.eval()
    images = [torch.rand(3, size, size) for _ in range(batch)]
    detect_with_features(model, images)  # warm-up
    t0 = time.perf_counter()
    for _ in range(n_batches):
        detect_with_features(model, images)
    return n_batches * batch / (time.perf_counter() - t0)


def store_times(n_clips: int = 1000, frames: int = 20, boxes: int = 20, dim: int = 1024) -> dict:
    tmp = Path(tempfile.mkdtemp(prefix="bench-store-"))
    rng = np.random.default_rng(0)
    ids = [f"clip{i:05d}" for i in range(n_clips)]
    part = {
        "boxes": rng.random((frames, boxes, 4), np.float32),
        "scores": rng.random((frames, boxes), np.float32),
        "labels": rng.integers(0, 10, (frames, boxes)).astype(np.int16),
        "features": rng.random((frames, boxes, dim)).astype(np.float16),
        "counts": np.full(frames, boxes, np.int16),
        "times": np.arange(frames, dtype=np.float32) / 2,
    }
    for cid in ids:
        write_part(tmp / "parts", cid, part, "k")
    t0 = time.perf_counter()
    keys = dict.fromkeys(ids, "k")
    build_store(tmp / "d.zarr", tmp / "parts", ids, keys, {"class_names": []}, frames, boxes, dim)
    write = time.perf_counter() - t0
    store = DetectionStore(tmp / "d.zarr")
    order = rng.permutation(ids)[:200]
    t0 = time.perf_counter()
    for cid in order:
        store.read(str(cid))
    read = (time.perf_counter() - t0) / len(order)
    t0 = time.perf_counter()  # what DVC pays to hash the store as an output
    subprocess.run([sys.executable, "-m", "dvc", "init", "--no-scm", "-q"], cwd=tmp, check=True)
    subprocess.run([sys.executable, "-m", "dvc", "add", "-q", "d.zarr"], cwd=tmp, check=True)
    dvc_add = time.perf_counter() - t0
    files = sum(1 for p in (tmp / "d.zarr").rglob("*") if p.is_file())
    size = sum(p.stat().st_size for p in (tmp / "d.zarr").rglob("*") if p.is_file())
    return {
        "clips": n_clips,
        "write_s": write,
        "read_ms": read * 1000,
        "dvc_add_s": dvc_add,
        "files": files,
        "mb": size / 2**20,
    }


def main() -> None:
    ckpt = Path("data/detector/detector.pt")
    trained = load_checkpoint(ckpt)[0] if ckpt.is_file() else small_fpn(num_classes=10)
    size = trained.transform.min_size
    print("| model | input | frames/s (2 threads, batch 8) |")
    print("|---|---|---|")
    print(f"| trained small_fpn | {size[0]} px | {fps(trained, 256):.1f} |")
    for px in (256, 480):
        model = resnet50_fpn(num_classes=91, image_size=px)
        print(f"| ResNet-50 FPN | {px} px | {fps(model, px, n_batches=1):.2f} |")
    s = store_times()
    print(
        f"\nZarr store, {s['clips']} clips x 20 frames x 20 boxes x 1024-d float16: "
        f"built from parts in {s['write_s']:.1f} s, {s['files']} files, {s['mb']:.0f} MB; "
        f"one clip read at random in {s['read_ms']:.1f} ms; `dvc add` (hash + cache) "
        f"{s['dvc_add_s']:.1f} s"
    )


if __name__ == "__main__":
    main()
