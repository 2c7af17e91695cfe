"""Train a detector on a COCO-format box-annotation folder, and score it (mAP@0.5).

The folder holds ``<split>.json`` in COCO's detection layout whose images are frames of videos:
``file_name`` names the video (relative to the folder's parent) and ``frame_index`` the frame (the
synthetic source writes such a folder; ``docs/data-formats.md``). Plain image files (no
``frame_index``) are read as images.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image
from tqdm import tqdm

from pipeline import media
from pipeline.errors import PipelineError

log = logging.getLogger(__name__)


class AnnotationError(PipelineError, ValueError):
    """A box-annotation folder that cannot be used."""


@dataclasses.dataclass
class FrameSet:
    """Frames with their boxes: ``images[i]`` uint8 ``(H, W, 3)``, ``boxes[i]`` xyxy ``(n, 4)``
    float32, ``labels[i]`` ``(n,)`` int64 (1-based, COCO category order)."""

    images: list[np.ndarray]
    boxes: list[np.ndarray]
    labels: list[np.ndarray]
    class_names: list[str]


def load_frames(folder: str | Path, split: str, stride: int = 1) -> FrameSet:
    """Read ``<folder>/<split>.json`` and decode the annotated frames (every ``stride``-th)."""
    folder = Path(folder)
    path = folder / f"{split}.json"
    if not path.is_file():
        raise AnnotationError(f"{path}: no COCO annotation file for split {split!r}")
    coco = json.loads(path.read_text())
    cats = sorted(coco["categories"], key=lambda c: c["id"])
    cat_index = {c["id"]: i + 1 for i, c in enumerate(cats)}
    per_image = defaultdict(list)
    for a in coco["annotations"]:
        per_image[a["image_id"]].append(a)
    by_file = defaultdict(list)
    for im in coco["images"]:
        if im.get("frame_index", 0) % stride == 0:
            by_file[im["file_name"]].append(im)
    out = FrameSet([], [], [], [c["name"] for c in cats])
    for file_name, images in tqdm(
        sorted(by_file.items()), desc=f"frames {split}", unit="file", mininterval=2
    ):
        src = folder.parent / file_name
        if "frame_index" in images[0]:
            frames = media.decode_frames(src)
        else:
            frames = [np.asarray(Image.open(src).convert("RGB"))]
        for im in sorted(images, key=lambda i: i.get("frame_index", 0)):
            anns = per_image.get(im["id"], [])
            boxes = np.array(
                [
                    [
                        a["bbox"][0],
                        a["bbox"][1],
                        a["bbox"][0] + a["bbox"][2],
                        a["bbox"][1] + a["bbox"][3],
                    ]
                    for a in anns
                ],
                np.float32,
            )
            out.images.append(frames[im.get("frame_index", 0)])
            out.boxes.append(boxes.reshape(-1, 4))
            out.labels.append(np.array([cat_index[a["category_id"]] for a in anns], np.int64))
    if not out.images:
        raise AnnotationError(f"{path}: no annotated frames")
    return out


def train_detector(
    model: torch.nn.Module,
    frames: FrameSet,
    *,
    iterations: int,
    batch_size: int,
    lr: float,
    seed: int,
    eval_fn=None,
    eval_every: int = 0,
) -> list[dict[str, float]]:
    """Train for a fixed number of iterations (reproducible, unlike a time budget).

    Returns:
        the learning curve: ``{"iteration", "minutes", "loss", ["map50"]}`` rows.
    """
    gen = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=lr, weight_decay=1e-4)
    warmup = max(1, iterations // 20)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda i: min(1.0, (i + 1) / warmup) * 0.5 * (1 + math.cos(math.pi * i / iterations))
    )
    n = len(frames.images)
    curve = []
    t0 = time.perf_counter()
    model.train()
    bar = tqdm(range(1, iterations + 1), desc="detector", unit="it", mininterval=2)
    running = None
    for it in bar:
        idx = torch.randint(n, (batch_size,), generator=gen).tolist()
        flips = torch.rand(batch_size, generator=gen) < 0.5
        images, targets = [], []
        for i, flip in zip(idx, flips.tolist(), strict=True):
            img = media.to_tensor(frames.images[i])
            boxes = torch.from_numpy(frames.boxes[i]).clone()
            if flip:
                w = img.shape[-1]
                img = img.flip(-1)
                boxes[:, [0, 2]] = w - boxes[:, [2, 0]]
            images.append(img)
            targets.append({"boxes": boxes, "labels": torch.from_numpy(frames.labels[i])})
        losses = model(images, targets)
        loss = sum(losses.values())
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        value = float(loss.detach())
        running = value if running is None else 0.9 * running + 0.1 * value
        bar.set_postfix(loss=f"{running:.3f}", refresh=False)
        if eval_fn is not None and eval_every and (it % eval_every == 0 or it == iterations):
            row = {"iteration": it, "minutes": (time.perf_counter() - t0) / 60, "loss": running}
            row["map50"] = eval_fn(model)
            model.train()
            curve.append(row)
            log.info("detector iteration %d: loss %.3f, mAP@0.5 %.3f", it, running, row["map50"])
    model.eval()
    return curve


def iou_matrix(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU of xyxy boxes ``(n, 4)`` x ``(m, 4)`` -> ``(n, m)``."""
    if len(a) == 0 or len(b) == 0:
        return np.zeros((len(a), len(b)))
    x0 = np.maximum(a[:, None, 0], b[None, :, 0])
    y0 = np.maximum(a[:, None, 1], b[None, :, 1])
    x1 = np.minimum(a[:, None, 2], b[None, :, 2])
    y1 = np.minimum(a[:, None, 3], b[None, :, 3])
    inter = np.clip(x1 - x0, 0, None) * np.clip(y1 - y0, 0, None)
    area = lambda z: (z[:, 2] - z[:, 0]) * (z[:, 3] - z[:, 1])  # noqa: E731
    return inter / (area(a)[:, None] + area(b)[None, :] - inter)


def average_precision(
    detections: list[dict[str, np.ndarray]], truths: FrameSet, iou: float = 0.5
) -> dict[str, Any]:
    """COCO-style AP at one IoU threshold (101-point interpolation), per class and their mean
    over the classes that have ground truth."""
    per_class = {}
    for c in range(1, len(truths.class_names) + 1):
        scores, hits, n_true = [], [], 0
        for det, gt_boxes, gt_labels in zip(detections, truths.boxes, truths.labels, strict=True):
            gt = gt_boxes[gt_labels == c]
            n_true += len(gt)
            keep = det["labels"] == c
            boxes, sc = det["boxes"][keep], det["scores"][keep]
            order = np.argsort(-sc, kind="stable")
            used = np.zeros(len(gt), bool)
            ious = iou_matrix(boxes[order], gt)
            for k, j in enumerate(order):
                scores.append(sc[j])
                if len(gt):
                    cand = np.where(~used, ious[k], -1.0)
                    best = int(np.argmax(cand))
                    if cand[best] >= iou:
                        used[best] = True
                        hits.append(True)
                        continue
                hits.append(False)
        if n_true == 0:
            continue
        order = np.argsort(-np.array(scores), kind="stable")
        tp = np.cumsum(np.array(hits, float)[order]) if hits else np.zeros(0)
        fp = np.cumsum(1 - np.array(hits, float)[order]) if hits else np.zeros(0)
        recall = tp / n_true
        precision = tp / np.maximum(tp + fp, 1e-9)
        precision = np.maximum.accumulate(precision[::-1])[::-1] if len(precision) else precision
        ap = 0.0
        for r in np.linspace(0, 1, 101):
            above = precision[recall >= r]
            ap += (above.max() if len(above) else 0.0) / 101
        per_class[truths.class_names[c - 1]] = float(ap)
    return {
        "map": float(np.mean(list(per_class.values()))) if per_class else 0.0,
        "per_class": per_class,
    }


@torch.no_grad()
def predict(model: torch.nn.Module, images: list[np.ndarray], batch_size: int = 16) -> list[dict]:
    """Run the detector; returns per image ``{"boxes", "scores", "labels"}`` numpy arrays."""
    model.eval()
    out = []
    for i in range(0, len(images), batch_size):
        for r in model([media.to_tensor(im) for im in images[i : i + batch_size]]):
            out.append({k: v.numpy() for k, v in r.items()})
    return out
