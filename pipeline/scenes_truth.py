"""Reading the ``scenes`` world's ground truth (``truth/<clip_id>.npz``, written by
:func:`pipeline.sources.synthetic.scenes.write_truth`; ``docs/data-formats.md``) against what the
pipeline made of a clip: which object, or which sounding object, a box (a graph node's) shows.

Outside ``pipeline/sources`` (which the ``source`` stage depends on as a whole), so the graphs
stage and the benchmarks can read the truth without a change here regenerating the world.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from pipeline.graphs.build import box_iou


def xyxy(boxes: np.ndarray) -> np.ndarray:
    """COCO ``[x, y, w, h]`` boxes ``(..., 4)`` (the truth's ``box``) as ``[x0, y0, x1, y1]``."""
    boxes = np.asarray(boxes)
    return np.concatenate([boxes[..., :2], boxes[..., :2] + boxes[..., 2:]], axis=-1)


def frame_at(truth, time: float, fps: int) -> int:
    """The truth's frame index nearest ``time`` s (the last frame at most)."""
    return min(int(round(time * fps)), truth["box"].shape[1] - 1)


def object_at(
    truth, box: np.ndarray, time: float, fps: int, tracks=None, min_iou: float = 0.5
) -> int | None:
    """The object (a row of the truth's arrays; of ``tracks`` only, when given) whose true box at
    ``time`` s overlaps ``box`` (xyxy) most, if by IoU >= ``min_iou``; None otherwise (an object
    without a box in that frame never matches)."""
    f = frame_at(truth, time, fps)
    tracks = np.arange(len(truth["box"])) if tracks is None else np.asarray(tracks)
    iou = box_iou(np.asarray(box, np.float64)[None], xyxy(truth["box"][tracks, f]))[0]
    best = int(np.argmax(iou))  # a NaN box: IoU 0
    return int(tracks[best]) if iou[best] >= min_iou else None


def source_at(
    clip: dict[str, Any], truth, box: np.ndarray, time: float, fps: int, min_iou: float = 0.5
) -> dict[str, Any] | None:
    """The sounding object (an entry of the clip's ``sources`` in ``world.json``) whose true box
    at ``time`` s overlaps ``box`` (xyxy, e.g. a graph node's) most, if by IoU >= ``min_iou``;
    None otherwise."""
    by_track = {s["track"]: s for s in clip["sources"]}
    track = object_at(truth, box, time, fps, list(by_track), min_iou)
    return None if track is None else by_track[track]
