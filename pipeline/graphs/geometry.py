"""Pseudo-3D geometry of a scene graph's nodes (ASMP's 2.5D graph; ``docs/depth.md``).

Each node's box is lifted into 3D from its frame's registered depth map with a pinhole camera: a
grid of ``points x points`` cell centres over the box, each back-projected at the depth under it,

.. math::
    X = (u - c)\\,z / f, \\quad Y = (v - c)\\,z / f, \\quad Z = z, \\qquad
    f = \\frac{S / 2}{\\tan(\\mathrm{fov} / 2)}, \\quad c = S / 2,

for the canonical ``S x S`` frame (the camera's horizontal and vertical field of view is ``fov``).
Two nodes are as far apart as the symmetric Chamfer distance of their point sets: the mean
Euclidean (not squared) distance from each point to the nearest point of the other set, averaged
over both directions. Distances become edge weights by ASMP's RBF (:func:`rbf_weights`).

Depth may be missing (a clip the depth stage skipped, a box over no valid depth): such a node has
an empty point set, NaN position and NaN distances; its edges weigh 0, and a graph with no
distance at all weighs every edge 1, as the released code does.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Literal

import numpy as np


@dataclasses.dataclass(frozen=True)
class Asmp25dParams:
    """``graphs.asmp25d``: the 2.5D graph's geometry.

    Args:
        fov: the assumed camera's field of view across the canonical frame, degrees.
        points: each box is sampled on a ``points x points`` grid (its point set).
        percentile: the RBF's bandwidth is this percentile of the graph's nonzero distances
            (the released code: 50 in training, 25 in its evaluation command).
        rbf: ``normalised`` (the percentile of the distances divided by the largest, the scale
            the kernel divides by) or ``reference`` (the released code's: the percentile of the
            raw distances, whatever their unit).
    """

    fov: float = 60.0
    points: int = 6
    percentile: float = 50.0
    rbf: Literal["normalised", "reference"] = "normalised"

    def __post_init__(self) -> None:
        if not 0.0 < self.fov < 180.0:
            raise ValueError("graphs.asmp25d.fov must be in (0, 180) degrees")
        if self.points < 1:
            raise ValueError("graphs.asmp25d.points must be >= 1")
        if not 0.0 < self.percentile <= 100.0:
            raise ValueError("graphs.asmp25d.percentile must be in (0, 100]")


def focal(size: float, fov: float) -> float:
    """The focal length (px) of a ``size``-px frame seen under ``fov`` degrees."""
    return size / 2.0 / math.tan(math.radians(fov) / 2.0)


def backproject(
    depth: np.ndarray, box: np.ndarray, frame_size: int, fov: float, points: int
) -> np.ndarray:
    """The pseudo-3D point set ``(P, 3)`` of ``box`` (xyxy px of the canonical frame): a
    ``points x points`` grid of cell centres over the box, at the depth of the map's pixel under
    each (``depth (h, w)`` covers the frame at its own scale); NaN depths are left out."""
    h, w = depth.shape
    x0, y0, x1, y1 = np.clip(np.asarray(box, np.float64), 0.0, frame_size)
    steps = (np.arange(points) + 0.5) / points
    u = x0 + (x1 - x0) * steps
    v = y0 + (y1 - y0) * steps
    uu, vv = np.meshgrid(u, v, indexing="xy")
    col = np.clip((uu * w / frame_size).astype(int), 0, w - 1)
    row = np.clip((vv * h / frame_size).astype(int), 0, h - 1)
    z = depth[row, col].astype(np.float64)
    keep = np.isfinite(z) & (z > 0)
    f, c = focal(frame_size, fov), frame_size / 2.0
    z = z[keep]
    return np.stack([(uu[keep] - c) * z / f, (vv[keep] - c) * z / f, z], -1)


def position(points: np.ndarray, box: np.ndarray, frame_size: int, fov: float) -> np.ndarray:
    """A node's position ``(3,)``: its box's centre back-projected at the median depth of its
    point set ``points (P, 3)`` (:func:`backproject`); NaN for an empty set."""
    if not len(points):
        return np.full(3, np.nan)
    f, c = focal(frame_size, fov), frame_size / 2.0
    z = float(np.median(points[:, 2]))
    u, v = (box[0] + box[2]) / 2.0, (box[1] + box[3]) / 2.0
    return np.array([(u - c) * z / f, (v - c) * z / f, z])


def chamfer(a: np.ndarray, b: np.ndarray) -> float:
    """Symmetric mean Chamfer distance of point sets ``a (n, 3)`` and ``b (m, 3)``; NaN when
    either is empty."""
    if not len(a) or not len(b):
        return math.nan
    d = np.linalg.norm(a[:, None, :] - b[None, :, :], axis=-1)
    return float((d.min(1).mean() + d.min(0).mean()) / 2.0)


def pairwise_chamfer(sets: list[np.ndarray]) -> np.ndarray:
    """``(n, n)`` Chamfer distances of ``n`` point sets: symmetric, 0 on the diagonal (also for
    an empty set), NaN between an empty set and any other."""
    n = len(sets)
    out = np.zeros((n, n))
    for i in range(n):
        for j in range(i + 1, n):
            out[i, j] = out[j, i] = chamfer(sets[i], sets[j])
    return out


def rbf_weights(
    distance: np.ndarray, percentile: float, rbf: Literal["normalised", "reference"]
) -> np.ndarray:
    r"""ASMP's edge weights ``(n, n)`` from Chamfer distances ``D (n, n)``:

    .. math::
        w_{ij} = \exp\!\left(-\frac{D_{ij} / D_{\max}}{p}\right), \qquad w_{ii} = 1,

    ``p`` the ``percentile`` of the nonzero distances (divided by ``D_max`` with
    ``normalised``, raw with ``reference``; ``p = 1`` where that is 0). NaN distances weigh 0; a
    graph with no finite nonzero distance weighs every edge 1. Never NaN."""
    n = len(distance)
    off = ~np.eye(n, dtype=bool)
    known = off & np.isfinite(distance)
    positive = known & (distance > 0)
    if not positive.any():
        return np.ones((n, n))
    d_max = float(distance[positive].max())
    scaled = np.where(known, distance, 0.0) / d_max
    p = float(np.percentile((scaled if rbf == "normalised" else distance)[positive], percentile))
    w = np.exp(-scaled / (p if p > 0 else 1.0))
    w = np.where(known, w, 0.0)
    np.fill_diagonal(w, 1.0)
    return w


def graph_geometry(
    boxes: np.ndarray,
    frames: np.ndarray,
    depth: np.ndarray | None,
    frame_size: int,
    params: Asmp25dParams,
) -> dict[str, np.ndarray]:
    """One graph's geometry from its nodes' ``boxes (n, 4)`` and sampled-frame indices
    ``frames (n,)``, and the clip's registered depth maps ``depth (T, h, w)`` (None: the clip has
    no depth): ``pos (n, 3)``, and per directed edge of the complete graph
    (:func:`pipeline.graphs.store.complete_edges` order) ``distance (n (n - 1),)`` and
    ``weight``."""
    n = len(boxes)
    if depth is None:
        sets = [np.zeros((0, 3))] * n
        pos = np.full((n, 3), np.nan)
    else:
        args = (frame_size, params.fov, params.points)
        sets = [backproject(depth[int(t)], b, *args) for b, t in zip(boxes, frames, strict=True)]
        pos = np.stack(
            [position(s, b, frame_size, params.fov) for s, b in zip(sets, boxes, strict=True)]
        )
    distance = pairwise_chamfer(sets)
    weight = rbf_weights(distance, params.percentile, params.rbf)
    off = ~np.eye(n, dtype=bool)  # row-major: the complete_edges order
    return {
        "pos": pos.astype(np.float32),
        "distance": distance[off].astype(np.float32),
        "weight": weight[off].astype(np.float32),
    }
