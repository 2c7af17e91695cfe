"""Direction-of-motion classes of a source's 3D displacement, as ASMP labels them
(``shared/ASMP.md`` section 4.1, from the authors' released code).

A displacement ``(u, v, d)`` is one source's motion over a window: ``u, v`` in the image plane,
``d`` in depth. The authors' units and sign conventions are not documented; the thresholds below
are theirs, so a producer of displacements (the synthetic world, a flow + depth estimator) must
scale its own to match what it means by "static".

- **static**: every component below its threshold (``|u| < 0.60``, ``|v| < 0.60``, ``|d| <
  0.30``): class 0 in the 10- and 28-class schemes.
- **10 classes**: 0 static; 1-8 the octants of ``sign(u, v, d)`` in the order ``+++, -++, --+,
  +-+, ++-, -+-, ---, +--`` (a zero component counts as +); 9 the "background/extra" filler that
  the released code gives the scene node and padding (never a real object's target).
- **28 classes**: 0 static; 1-26 the directions of ``{-1, 0, 1}^3`` without the origin, in the
  released code's order (:data:`DIRECTIONS_26`), the label being the direction of largest cosine
  with the displacement; 27 the filler.
- **8 classes**: the octant alone, no static class (``class - 1`` of the 10-class scheme; the
  released code's order for this setting is not recorded, so ours is the 10-class one).
"""

from __future__ import annotations

import numpy as np

STATIC_UV, STATIC_D = 0.60, 0.30
SCHEMES = (8, 10, 28)
FILLER = {10: 9, 28: 27}  # the "background/extra" class: scene node and padding

# sign(u, v, d) octants, classes 1-8 of the 10-class scheme
OCTANTS = np.array(
    [(1, 1, 1), (-1, 1, 1), (-1, -1, 1), (1, -1, 1), (1, 1, -1), (-1, 1, -1), (-1, -1, -1),
     (1, -1, -1)]
)  # fmt: skip
# classes 1-26 of the 28-class scheme, as (u, v, d) before normalisation
DIRECTIONS_26 = np.array(
    [(0, 0, 1), (0, 1, 0), (1, 0, 0), (0, 0, -1), (0, -1, 0), (-1, 0, 0), (0, 1, 1), (1, 1, 0),
     (1, 0, 1), (0, 1, -1), (1, -1, 0), (1, 0, -1), (-1, 1, 0), (-1, 0, 1), (0, -1, 1),
     (0, -1, -1), (-1, -1, 0), (-1, 0, -1), (1, 1, 1), (-1, 1, 1), (-1, -1, 1), (1, -1, 1),
     (1, 1, -1), (-1, 1, -1), (-1, -1, -1), (1, -1, -1)]
)  # fmt: skip


def is_static(
    disp: np.ndarray, static_uv: float = STATIC_UV, static_d: float = STATIC_D
) -> np.ndarray:
    """Whether each displacement ``(..., 3)`` is below every threshold."""
    disp = np.asarray(disp, dtype=np.float64)
    return (np.abs(disp[..., :2]) < static_uv).all(-1) & (np.abs(disp[..., 2]) < static_d)


def direction_class(
    disp: np.ndarray, scheme: int = 28, static_uv: float = STATIC_UV, static_d: float = STATIC_D
) -> np.ndarray:
    """The class ``(...,)`` int64 of each displacement ``(..., 3)`` in the 8-, 10- or 28-class
    scheme (see the module), static below ``static_uv`` / ``static_d`` (the released code's
    thresholds by default)."""
    if scheme not in SCHEMES:
        raise ValueError(f"direction scheme must be one of {SCHEMES}, got {scheme}")
    disp = np.asarray(disp, dtype=np.float64)
    if disp.shape[-1:] != (3,):
        raise ValueError(f"displacements must be (..., 3) (u, v, d), got {disp.shape}")
    if scheme == 28:
        units = DIRECTIONS_26 / np.linalg.norm(DIRECTIONS_26, axis=1, keepdims=True)
        moving = 1 + np.argmax(disp @ units.T, axis=-1)  # the cosine's sign and order: norm-free
    else:
        signs = np.where(disp >= 0, 1, -1)
        moving = 1 + np.argmax((signs[..., None, :] == OCTANTS).all(-1), axis=-1)
        if scheme == 8:
            return (moving - 1).astype(np.int64)
    return np.where(is_static(disp, static_uv, static_d), 0, moving).astype(np.int64)


_ARROWS = {(1, 0): "→", (1, 1): "↘", (0, 1): "↓", (-1, 1): "↙", (-1, 0): "←", (-1, -1): "↖",
           (0, -1): "↑", (1, -1): "↗", (0, 0): ""}  # fmt: skip


def direction_name(cls: int | None, scheme: int = 28) -> str:
    """A class as text for people: an arrow for the image-plane part (``v`` down), ``away`` /
    ``toward`` for depth, ``static``; ``?`` for an unknown (-1 or None) class, ``other`` for the
    filler."""
    if cls is None or cls < 0:
        return "?"
    if cls == 0:
        return "static"
    if cls == FILLER.get(scheme):
        return "other"
    u, v, d = (OCTANTS if scheme == 10 else DIRECTIONS_26)[cls - 1]
    depth = {1: "away", -1: "toward", 0: ""}[int(d)]
    return " ".join(p for p in (_ARROWS[(int(u), int(v))], depth) if p)
