"""Frames of the synthetic world: a textured background and moving procedural sprites.

Shapes: ``(height, width, 3)`` uint8 frames; boxes are COCO ``[x, y, w, h]`` in pixels.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from pipeline.sources.synthetic.classes import Look


def shape_mask(shape: str, size: int) -> np.ndarray:
    """A boolean ``(size, size)`` mask of ``shape`` filling its box."""
    c = (size - 1) / 2
    y, x = np.mgrid[0:size, 0:size].astype(np.float32)
    u, v = (x - c) / (size / 2), (y - c) / (size / 2)  # in [-1, 1]
    r, theta = np.hypot(u, v), np.arctan2(v, u)
    if shape == "circle":
        return r <= 1.0
    if shape == "ring":
        return (r <= 1.0) & (r >= 0.55)
    if shape == "ellipse":
        return (u / 0.65) ** 2 + v**2 <= 1.0
    if shape == "square":
        return (np.abs(u) <= 0.92) & (np.abs(v) <= 0.92)
    if shape == "bar":
        return np.abs(u) <= 0.35
    if shape == "hbar":
        return np.abs(v) <= 0.4
    if shape == "diamond":
        return np.abs(u) + np.abs(v) <= 1.0
    if shape == "triangle":
        return (v >= -1.0) & (v <= 1.0) & (np.abs(u) <= (v + 1.0) / 2)
    if shape == "cross":
        return (np.abs(u) <= 0.3) | (np.abs(v) <= 0.3)
    if shape in ("pentagon", "hexagon"):
        k = 5 if shape == "pentagon" else 6
        sector = np.pi / k
        return r * np.cos(np.mod(theta + np.pi / 2, 2 * sector) - sector) <= np.cos(sector)
    if shape == "star":
        k = 5
        sector = np.pi / k
        frac = np.abs(np.mod(theta + np.pi / 2, 2 * sector) - sector) / sector
        return r <= 0.45 + 0.55 * frac
    if shape == "person":
        head = np.hypot(u, v + 0.62) <= 0.32
        body = (np.abs(u) <= 0.45 - 0.1 * (v < 0)) & (v >= -0.28) & (v <= 1.0)
        return head | body
    raise ValueError(f"unknown shape {shape!r}")


def _pattern(pattern: str, size: int) -> np.ndarray:
    y, x = np.mgrid[0:size, 0:size]
    period = max(4, size // 6)
    if pattern == "solid":
        return np.ones((size, size), np.float32)
    if pattern == "hstripes":
        on = (y // (period // 2)) % 2 == 0
    elif pattern == "vstripes":
        on = (x // (period // 2)) % 2 == 0
    elif pattern == "checker":
        on = ((x // (period // 2)) + (y // (period // 2))) % 2 == 0
    elif pattern == "dots":
        on = np.hypot((x % period) - period / 2, (y % period) - period / 2) > period / 4
    elif pattern == "cross":
        on = ~((np.abs(x - size / 2) < size / 16) | (np.abs(y - size / 2) < size / 16))
    else:
        raise ValueError(f"unknown pattern {pattern!r}")
    return np.where(on, 1.0, 0.45).astype(np.float32)


def sprite(look: Look, size: int) -> tuple[np.ndarray, np.ndarray]:
    """An RGB sprite ``(size, size, 3)`` float32 in [0, 255] and its boolean mask."""
    mask = shape_mask(look.shape, size)
    shade = _pattern(look.pattern, size)
    rgb = np.asarray(look.colour, np.float32)[None, None, :] * shade[..., None]
    # A dark outline keeps the silhouette crisp against any background.
    inner = mask.copy()
    inner[1:-1, 1:-1] = mask[1:-1, 1:-1] & mask[:-2, 1:-1] & mask[2:, 1:-1]
    inner[1:-1, 1:-1] &= mask[1:-1, :-2] & mask[1:-1, 2:]
    rgb[mask & ~inner] = 20.0
    return rgb, mask


def background(rng: np.random.Generator, size: int) -> np.ndarray:
    """A seeded texture: a tinted gradient plus a few sinusoidal gratings and fine noise."""
    y, x = np.mgrid[0:size, 0:size].astype(np.float32) / size
    base = rng.uniform(70, 170, 3).astype(np.float32)
    img = base[None, None, :] + 30 * (x[..., None] - 0.5) * rng.uniform(-1, 1, 3)
    for _ in range(3):
        fx, fy = rng.uniform(2, 9, 2)
        phase = rng.uniform(0, 2 * np.pi)
        img += rng.uniform(6, 16) * np.sin(2 * np.pi * (fx * x + fy * y) + phase)[..., None]
    img += rng.normal(0, 6, img.shape)
    return np.clip(img, 0, 255).astype(np.float32)


@dataclasses.dataclass
class Track:
    """One moving object: its sprite, position of the top-left corner, and velocity (px/frame)."""

    name: str
    rgb: np.ndarray
    mask: np.ndarray
    xy: np.ndarray
    velocity: np.ndarray
    sounding: bool
    follows: int | None = None  # index of the track this one moves with (a player)
    offset: np.ndarray | None = None

    @property
    def size(self) -> int:
        return self.mask.shape[0]


def step(tracks: list[Track], frame_size: int) -> None:
    """Advance every free track by its velocity, bouncing off the frame edges; players follow."""
    for t in tracks:
        if t.follows is not None:
            continue
        t.xy = t.xy + t.velocity
        for axis in range(2):
            hi = frame_size - t.size
            if t.xy[axis] < 0 or t.xy[axis] > hi:
                t.velocity[axis] = -t.velocity[axis]
                t.xy[axis] = np.clip(t.xy[axis], 0, hi)
    for t in tracks:
        if t.follows is not None:
            t.xy = tracks[t.follows].xy + t.offset


def render(bg: np.ndarray, tracks: list[Track]) -> tuple[np.ndarray, list[list[float] | None]]:
    """Paint ``tracks`` in order over ``bg``; returns the uint8 frame and each track's visible box
    (None when it lies wholly outside the frame)."""
    frame = bg.copy()
    h, w = frame.shape[:2]
    boxes: list[list[float] | None] = []
    for t in tracks:
        x0, y0 = (int(round(v)) for v in t.xy)
        x1, y1 = x0 + t.size, y0 + t.size
        cx0, cy0, cx1, cy1 = max(x0, 0), max(y0, 0), min(x1, w), min(y1, h)
        if cx0 >= cx1 or cy0 >= cy1:
            boxes.append(None)
            continue
        m = t.mask[cy0 - y0 : cy1 - y0, cx0 - x0 : cx1 - x0]
        region = frame[cy0:cy1, cx0:cx1]
        region[m] = t.rgb[cy0 - y0 : cy1 - y0, cx0 - x0 : cx1 - x0][m]
        ys, xs = np.nonzero(m)
        if len(xs) == 0:
            boxes.append(None)
            continue
        bx0, by0 = cx0 + xs.min(), cy0 + ys.min()
        boxes.append(
            [float(bx0), float(by0), float(xs.max() - xs.min() + 1), float(ys.max() - ys.min() + 1)]
        )
    return np.clip(frame, 0, 255).astype(np.uint8), boxes
