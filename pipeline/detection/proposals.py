"""Detector-free box proposals (``detect.backend: proposals``), after *Sound of Bounding Boxes*:
class-agnostic boxes from selective search (OpenCV contrib; no model file, no training), each
stored with its pixels (an RGB crop resized to ``crop x crop``, flattened, in [0, 1]) as its
feature, so a separator can learn its own visual encoder end to end (``model.name: sobb``).

Selective search runs on the frame scaled so its longer side is ``side`` px (its cost grows with
the pixel count); the boxes are mapped back to the frame. Boxes are kept in selective search's
order (its hierarchical grouping puts region merges first), after dropping boxes under
``MIN_AREA`` or over ``MAX_AREA`` of the frame, and near-duplicates; a box's score is
``1 - rank / max_boxes``, so every stage that ranks by score keeps that order.
"""

from __future__ import annotations

import numpy as np

from pipeline.detection.store import empty_frames

CLASS_NAMES = ["__background__", "proposal"]  # as a torchvision detector numbers them
MIN_AREA, MAX_AREA = 0.005, 0.9  # fractions of the frame


def _cv2():
    try:
        import cv2
    except ImportError as err:  # pragma: no cover - a dependency of the project
        raise ImportError(
            "detect.backend proposals needs opencv-contrib-python-headless (`uv sync`)"
        ) from err
    if not hasattr(cv2, "ximgproc"):
        raise ImportError(
            "cv2 has no ximgproc: another OpenCV wheel shadows opencv-contrib-python-headless; "
            "uninstall opencv-python / opencv-python-headless"
        )
    return cv2


def iou_matrix(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU of xyxy boxes ``a (n, 4)`` and ``b (m, 4)``."""
    lt = np.maximum(a[:, None, :2], b[None, :, :2])
    rb = np.minimum(a[:, None, 2:], b[None, :, 2:])
    inter = np.clip(rb - lt, 0, None).prod(-1)
    area = lambda x: (x[:, 2] - x[:, 0]) * (x[:, 3] - x[:, 1])  # noqa: E731
    return inter / (area(a)[:, None] + area(b)[None] - inter + 1e-9)


def propose(frame: np.ndarray, max_boxes: int, side: int = 128, dedupe: float = 0.9) -> np.ndarray:
    """Up to ``max_boxes`` xyxy boxes ``(k, 4)`` float32 in ``frame``'s pixels (``(H, W, 3)``
    uint8 RGB), in selective search's order."""
    cv2 = _cv2()
    cv2.setNumThreads(1)  # the stage parallelises over processes, not inside OpenCV
    h, w = frame.shape[:2]
    scale = min(1.0, side / max(h, w))
    small = cv2.resize(frame, (max(1, round(w * scale)), max(1, round(h * scale))))
    ss = cv2.ximgproc.segmentation.createSelectiveSearchSegmentation()
    ss.setBaseImage(cv2.cvtColor(small, cv2.COLOR_RGB2BGR))
    ss.switchToSelectiveSearchFast()
    rects = ss.process().astype(np.float32) / scale  # x, y, w, h
    boxes = np.concatenate([rects[:, :2], rects[:, :2] + rects[:, 2:]], 1)
    boxes = np.clip(boxes, 0, [w, h, w, h]).astype(np.float32)
    area = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1]) / (h * w)
    boxes = boxes[(area >= MIN_AREA) & (area <= MAX_AREA)]
    kept: list[int] = []
    for i in range(len(boxes)):
        if len(kept) == max_boxes:
            break
        if not kept or iou_matrix(boxes[i : i + 1], boxes[kept]).max() < dedupe:
            kept.append(i)
    return boxes[kept].reshape(-1, 4)


def crop_pixels(frame: np.ndarray, boxes: np.ndarray, size: int) -> np.ndarray:
    """Each box's pixels resized to ``size x size``, channels first and flattened: ``(k, 3 *
    size * size)`` float32 in [0, 1]."""
    cv2 = _cv2()
    h, w = frame.shape[:2]
    out = np.zeros((len(boxes), 3, size, size), np.float32)
    for i, (x0, y0, x1, y1) in enumerate(np.asarray(boxes, np.float64)):
        x0, y0 = int(np.clip(np.floor(x0), 0, w - 1)), int(np.clip(np.floor(y0), 0, h - 1))
        x1, y1 = int(np.clip(np.ceil(x1), x0 + 1, w)), int(np.clip(np.ceil(y1), y0 + 1, h))
        crop = cv2.resize(frame[y0:y1, x0:x1], (size, size), interpolation=cv2.INTER_AREA)
        out[i] = crop.transpose(2, 0, 1) / 255.0
    return out.reshape(len(boxes), -1)


def propose_frames(frames: np.ndarray, max_boxes: int, crop: int, side: int) -> dict:
    """The detection store's fields for frames ``(T, H, W, 3)``: boxes, scores, labels (all 1:
    ``CLASS_NAMES[1]``), pixel features, counts; padded to ``max_boxes``."""
    t, k, dim = len(frames), max_boxes, 3 * crop * crop
    out = empty_frames(t, k, dim)
    for i, frame in enumerate(frames):
        boxes = propose(frame, max_boxes, side)
        n = len(boxes)
        out["boxes"][i, :n] = boxes
        out["scores"][i, :n] = 1.0 - np.arange(n) / max_boxes
        out["labels"][i, :n] = 1
        out["features"][i, :n] = crop_pixels(frame, boxes, crop).astype(np.float16)
        out["counts"][i] = n
    return out
