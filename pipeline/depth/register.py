"""Registering a clip's per-frame depth maps into one relative depth (``docs/depth.md``).

A monocular network's map is known up to a scale and a shift per frame (MiDaS: affine-invariant
inverse depth), so the frames of one clip disagree. Each frame is aligned to the clip's
**reference frame** (the middle sampled frame) by the least-squares scale ``a > 0`` and shift
``b`` of ``a m_t + b ~ m_ref`` over the pixels that no detected box covers in either frame (the
background, which moves least; all valid pixels when that leaves under a tenth of them). A frame
that gives no positive scale is left as it is, and the fit says so (``a = 1, b = 0``, residual
NaN). The registered maps are then

- ``depth`` (the backend gives depth): the registered maps themselves;
- ``disparity``: mapped to depth through the clip's range: the 1st-99th percentile of the
  registered disparity is spread linearly over the inverse depths ``[1 / ratio, 1]``, so depth
  runs over ``[1, ratio]`` (``depth.disparity_range``; the scale and shift of the reference
  frame itself cannot be known from one image, so the ratio is a prior).
"""

from __future__ import annotations

import numpy as np


def _cells(box: np.ndarray, centres: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The rows and columns of the map pixels whose centres (``centres``, frame px) lie in
    ``box`` (xyxy)."""
    x0, y0, x1, y1 = box
    rows = np.flatnonzero((centres >= y0) & (centres <= y1))
    return rows, np.flatnonzero((centres >= x0) & (centres <= x1))


def background_mask(boxes: np.ndarray, counts: np.ndarray, canvas: int, size: int) -> np.ndarray:
    """``(T, size, size)`` True where no detected box (the first ``counts[t]`` of ``boxes
    (T, K, 4)``, xyxy px of the ``canvas``-px frame) covers a map pixel's centre."""
    t_frames = len(counts)
    centres = (np.arange(size) + 0.5) * canvas / size
    free = np.ones((t_frames, size, size), bool)
    for t in range(t_frames):
        for box in boxes[t, : int(counts[t])]:
            free[t][np.ix_(*_cells(box, centres))] = False
    return free


def fit_frame(m: np.ndarray, ref: np.ndarray, use: np.ndarray) -> tuple[float, float, float]:
    """Least-squares ``(a, b, rms)`` of ``a m + b ~ ref`` over the pixels ``use``; ``(1, 0,
    NaN)`` when there are fewer than 2 of them or the scale is not positive."""
    if use.sum() < 2:
        return 1.0, 0.0, float("nan")
    x, y = m[use].astype(np.float64), ref[use].astype(np.float64)
    a, b = np.linalg.lstsq(np.stack([x, np.ones_like(x)], 1), y, rcond=None)[0]
    if not np.isfinite(a) or a <= 0:
        return 1.0, 0.0, float("nan")
    return float(a), float(b), float(np.sqrt(np.mean((a * x + b - y) ** 2)))


def register(
    maps: np.ndarray, background: np.ndarray, output: str, disparity_range: float
) -> tuple[np.ndarray, np.ndarray]:
    """A clip's registered relative depth ``(T, h, w)`` float32 (NaN where unknown) and each
    frame's fit ``(T, 3)``: scale, shift, RMS residual (in the backend's units) against the
    reference frame. ``maps (T, h, w)``: the backend's; ``background (T, h, w)``:
    :func:`background_mask`; ``output``: ``depth`` or ``disparity``."""
    maps = maps.astype(np.float32)
    finite = np.isfinite(maps)
    counts = finite.reshape(len(maps), -1).sum(1)
    r = len(maps) // 2
    if counts[r] == 0:  # a blank middle frame: the first frame with depth
        r = int(np.argmax(counts > 0))
    fit = np.zeros((len(maps), 3), np.float32)
    out = np.empty_like(maps)
    for t in range(len(maps)):
        valid = finite[t] & finite[r]
        use = valid & background[t] & background[r]
        if use.sum() < 0.1 * valid.sum():
            use = valid
        a, b, rms = fit_frame(maps[t], maps[r], use) if t != r else (1.0, 0.0, 0.0)
        fit[t] = a, b, rms
        out[t] = a * maps[t] + b
    if output == "disparity":
        known = out[np.isfinite(out)]
        if not len(known):
            return out, fit
        lo, hi = np.percentile(known, [1, 99])
        unit = np.clip((out - lo) / (hi - lo), 0.0, 1.0) if hi > lo else np.full_like(out, 0.5)
        inverse = 1.0 / disparity_range + (1.0 - 1.0 / disparity_range) * unit
        out = (1.0 / inverse).astype(np.float32)
    else:
        out[out <= 0] = np.nan
    return out, fit


def box_depth(depth: np.ndarray, boxes: np.ndarray, counts: np.ndarray, canvas: int) -> np.ndarray:
    """The median registered depth in each detected box ``(T, K)`` (NaN for empty slots and
    boxes over no known depth): the map pixels whose centres lie in the box, or the one under
    its centre for a box smaller than a pixel."""
    t_frames, size = len(depth), depth.shape[-1]
    out = np.full(boxes.shape[:2], np.nan, np.float32)
    centres = (np.arange(size) + 0.5) * canvas / size
    for t in range(t_frames):
        for k, box in enumerate(boxes[t, : int(counts[t])]):
            rows, cols = _cells(box, centres)
            if not len(rows) or not len(cols):
                x0, y0, x1, y1 = box
                rows = [min(int((y0 + y1) / 2 * size / canvas), size - 1)]
                cols = [min(int((x0 + x1) / 2 * size / canvas), size - 1)]
            patch = depth[t][np.ix_(rows, cols)]
            if np.isfinite(patch).any():
                out[t, k] = np.nanmedian(patch)
    return out
