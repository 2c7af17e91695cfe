"""Each principal object's direction of motion per 1-second window (ASMP's labels;
``docs/depth.md``, "Motion labels").

ASMP labels each sounding object's motion in a window by a displacement ``(u, v, d)`` from
optical flow and registered depth, and that by a direction class (:mod:`pipeline.motion`); the
released code ships the displacements precomputed and does not say how they were made. Ours,
``graphs.motion.labels``:

- ``derived``: the principal box is **tracked** across the sampled frames from its key frame,
  forwards and backwards, each step to the box of the object's detector classes that overlaps
  the last one most (IoU at least ``track_iou``; the track ends where none does). Over window
  ``w`` (``[w, w + 1)`` s) the displacement is the change of the tracked box's centre, in tenths
  of the canonical frame's side (``u`` rightwards, ``v`` downwards), and of its median registered
  depth (``d``, away from the camera; the depth store's ``box_depth``), from the sampled frame
  nearest ``w`` to the one nearest ``w + 1`` (the last frame for the last window), per second.
  A window the track does not cover, or without depth, has no label.
- ``truth``: the synthetic ``scenes`` world's own displacements (``truth/<clip_id>.npz``) of the
  sounding object that the principal box shows (IoU >= 0.5 in its key frame), in the same units:
  the labels' ceiling, and a label source for the synthetic world.

Classes in both schemes (10 and 28), static below ``static_uv`` (both ``u`` and ``v``) and
``static_d``; -1 where a window has no label. The filler class (9, 27) is never a label.
"""

from __future__ import annotations

import dataclasses
from typing import Literal

import numpy as np

from pipeline import motion

UV_UNIT = 0.1  # u and v are in tenths of the frame side (the scenes world's unit)


@dataclasses.dataclass(frozen=True)
class MotionParams:
    """``graphs.motion``: the direction-of-motion labels of each principal object.

    Args:
        labels: ``none``, ``derived`` (tracked boxes and the depth store) or ``truth`` (the
            scenes world's).
        static_uv, static_d: a window is static when ``|u|`` and ``|v|`` are below
            ``static_uv`` and ``|d|`` below ``static_d`` (the released code's 0.6 and 0.3).
        track_iou: a box continues a track when its IoU with the track's last box is at least
            this.
    """

    labels: Literal["none", "derived", "truth"] = "none"
    static_uv: float = motion.STATIC_UV
    static_d: float = motion.STATIC_D
    track_iou: float = 0.1

    def __post_init__(self) -> None:
        if self.static_uv <= 0 or self.static_d <= 0 or not 0 < self.track_iou <= 1:
            raise ValueError("static_uv and static_d must be > 0, track_iou in (0, 1]")


def track(
    det: dict[str, np.ndarray], t0: int, k0: int, class_ids: list[int], min_iou: float
) -> np.ndarray:
    """The box index ``(T,)`` of the object in each sampled frame (-1 where the track is lost),
    from box ``k0`` of frame ``t0``."""
    from pipeline.graphs.build import box_iou  # build holds MotionParams: import at call time

    counts = det["counts"].astype(int)
    out = np.full(len(counts), -1, np.int64)
    out[t0] = k0
    for step in (1, -1):
        t, k = t0, k0
        while 0 <= t + step < len(counts):
            t_next = t + step
            cand = np.flatnonzero(np.isin(det["labels"][t_next, : counts[t_next]], class_ids))
            if not len(cand):
                break
            iou = box_iou(det["boxes"][t, k][None], det["boxes"][t_next, cand])[0]
            if iou.max() < min_iou:
                break
            t, k = t_next, int(cand[int(np.argmax(iou))])
            out[t] = k
    return out


def derived_displacements(
    det: dict[str, np.ndarray],
    tracked: np.ndarray,
    box_depth: np.ndarray | None,
    frame_size: int,
    n_windows: int,
) -> np.ndarray:
    """``(n_windows, 3)`` displacements of a tracked box (module docstring; NaN where unknown).
    ``box_depth (T, K)``: the depth store's median depth per box, or None (``d`` unknown)."""
    times = det["times"].astype(np.float64)
    idx = np.arange(len(tracked))
    ok = tracked >= 0
    k = np.where(ok, tracked, 0)
    boxes = det["boxes"][idx, k].astype(np.float64)
    centre = (boxes[:, :2] + boxes[:, 2:]) / 2 / (UV_UNIT * frame_size)
    z = box_depth[idx, k].astype(np.float64) if box_depth is not None else np.full(len(k), np.nan)
    where = np.column_stack([centre, z])
    where[~ok] = np.nan
    out = np.full((n_windows, 3), np.nan)
    for w in range(n_windows):
        a = int(np.argmin(np.abs(times - w)))
        b = int(np.argmin(np.abs(times - (w + 1))))
        if b <= a or times[a] > w + 0.5:
            continue
        out[w] = (where[b] - where[a]) / (times[b] - times[a])
    return out


def classes(disp: np.ndarray, params: MotionParams) -> dict[str, np.ndarray]:
    """``direction10`` and ``direction28`` ``(...,)`` int8 of displacements ``(..., 3)``; -1
    where a displacement is not known."""
    known = np.isfinite(disp).all(-1)
    safe = np.where(known[..., None], disp, 0.0)
    return {
        f"direction{n}": np.where(
            known, motion.direction_class(safe, n, params.static_uv, params.static_d), -1
        ).astype(np.int8)
        for n in (10, 28)
    }
