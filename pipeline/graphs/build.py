"""One clip's visual scene graph from its detections (AVSGS section 3.2, supplement B).

For each principal object of the clip (its labels, in order, up to ``max_principal`` slots):

- the **principal node**: among the detector classes the object maps to, the most confident box
  over all sampled frames (ties: the earliest frame, then the detector's order); its frame is the
  object's **key frame**. A box already taken by an earlier slot is not taken again, so two
  objects that map to one class (``baby`` and ``man`` -> COCO ``person``) get two boxes. An
  object named ``m`` times (two men, labelled by category) takes its ``m`` boxes from one frame,
  the one whose ``m``-th best box of its classes is the most confident, so that they are ``m``
  objects and not one object in two frames (when no frame shows ``m``, each slot takes its best
  box, as above);
- its **context nodes**: the other boxes of the key frame whose IoU with the principal box is
  strictly above ``iou`` and whose score is strictly above ``min_score``, the most confident first,
  at most ``max_context``. A box that is a principal node itself is not repeated as context.

plus one **background node** per clip (made by the caller: a random crop embedded by the same box
head, or the first box of the first frame). Edges are not stored: every graph is fully connected
(:func:`pipeline.graphs.store.complete_edges`).

A clip none of whose boxes shows one of its principal objects has no graph: :func:`build_graph`
returns a :class:`Skip` naming the object and the reason (``unmapped``: the class map gives it no
detector class; ``not_detected``: no box of its classes scores above ``min_score``).

Shapes: ``T`` frames, ``K`` box slots, ``D`` feature dimensions; a detections dict holds
``boxes (T, K, 4)``, ``scores (T, K)``, ``labels (T, K)``, ``features (T, K, D)``, ``counts (T,)``,
``times (T,)`` as :class:`pipeline.detection.store.DetectionStore` reads them.
"""

from __future__ import annotations

import dataclasses
from typing import Literal, NamedTuple

import numpy as np

from pipeline.graphs.geometry import Asmp25dParams
from pipeline.graphs.motion_labels import MotionParams
from pipeline.graphs.roles import Role

# graph builders: ``avsgs`` (the nodes and a complete graph, as the paper) and ``asmp25d`` (the
# same nodes, with pseudo-3D positions and Chamfer-RBF edge weights from the depth store:
# pipeline.graphs.geometry)
BUILDERS = ("avsgs", "asmp25d")
READS_DEPTH = frozenset({"asmp25d"})


@dataclasses.dataclass(frozen=True)
class GraphsParams:
    """``graphs``.

    Args:
        max_principal: principal-object slots per clip (N; 2 in the paper); later objects of a
            clip's labels are dropped.
        iou: a key-frame box is context of a principal box when their IoU is strictly above this.
        min_score: boxes scoring at or below this are not nodes (principal or context).
        max_context: context nodes per principal object, the most confident first.
        background: ``random_crop`` (the paper: a seeded random crop of a random sampled frame,
            embedded by the detector's own box head) or ``first_box`` (the reference code: the
            first box of the first frame that has one).
        crop_min, crop_max: side of the random crop as a fraction of the frame's side.
        threads: torch CPU threads for embedding the crops.
        builder: ``avsgs`` (:data:`BUILDERS`) or ``asmp25d``: the same nodes, and each edge
            weighted by how near its two objects are in 3D (the depth stage's store;
            :mod:`pipeline.graphs.geometry`); its settings are ``asmp25d``.
        asmp25d: the 2.5D graph's geometry.
        motion: each principal object's direction-of-motion labels per 1 s window
            (:mod:`pipeline.graphs.motion_labels`).
    """

    max_principal: int
    iou: float
    min_score: float
    max_context: int
    background: Literal["random_crop", "first_box"]
    crop_min: float
    crop_max: float
    threads: int
    builder: Literal["avsgs", "asmp25d"] = "avsgs"
    asmp25d: Asmp25dParams = Asmp25dParams()
    motion: MotionParams = MotionParams()

    def __post_init__(self) -> None:
        if self.max_principal < 1 or self.max_context < 0 or self.threads < 1:
            raise ValueError("max_principal and threads must be >= 1, max_context >= 0")
        if not 0.0 <= self.iou < 1.0:
            raise ValueError("iou must be in [0, 1)")
        if not 0.0 < self.crop_min <= self.crop_max <= 1.0:
            raise ValueError("need 0 < crop_min <= crop_max <= 1")


class Skip(NamedTuple):
    """Why a clip has no graph: ``reason`` (``unmapped`` | ``not_detected``) and the object."""

    reason: str
    object: str


def box_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU of every box in ``a (n, 4)`` with every box in ``b (m, 4)`` (xyxy) -> ``(n, m)``;
    boxes that only touch have IoU 0, an empty union gives 0."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    lt = np.maximum(a[:, None, :2], b[None, :, :2])
    rb = np.minimum(a[:, None, 2:], b[None, :, 2:])
    inter = np.clip(rb - lt, 0, None).prod(-1)
    area_a = np.clip(a[:, 2:] - a[:, :2], 0, None).prod(-1)
    area_b = np.clip(b[:, 2:] - b[:, :2], 0, None).prod(-1)
    union = area_a[:, None] + area_b[None, :] - inter
    return np.divide(inter, union, out=np.zeros_like(inter), where=union > 0)


def build_graph(
    det: dict[str, np.ndarray],
    objects: list[str],
    class_ids: dict[str, list[int]],
    params: GraphsParams,
) -> dict[str, np.ndarray] | Skip:
    """The principal and context nodes of one clip, or why it has none.

    Args:
        det: the clip's detections (module docstring).
        objects: the clip's principal objects in label order; the first ``max_principal`` are used.
        class_ids: principal object -> detector class ids (the resolved class map).

    Returns:
        node arrays, one row per node, principal and context nodes slot by slot: ``frame (n,)``
        sampled-frame index, ``box_index (n,)`` index in that frame's boxes, ``role (n,)``,
        ``slot (n,)``; or a :class:`Skip`.
    """
    counts = det["counts"].astype(int)
    valid = np.arange(det["scores"].shape[1])[None, :] < counts[:, None]  # (T, K)
    usable = valid & (det["scores"] > params.min_score)
    taken: set[tuple[int, int]] = set()
    slots: list[tuple[int, int]] = []
    objects = list(objects[: params.max_principal])
    key_frame: dict[str, int | None] = {}
    for obj in objects:
        ids = class_ids.get(obj, [])
        if not ids:
            return Skip("unmapped", obj)
        cand = usable & np.isin(det["labels"], ids)
        for t, k in taken:
            cand[t, k] = False
        if not cand.any():
            return Skip("not_detected", obj)
        if objects.count(obj) > 1:
            if obj not in key_frame:
                key_frame[obj] = _shared_frame(det["scores"], cand, objects.count(obj))
            if key_frame[obj] is not None and cand[key_frame[obj]].any():
                keep = np.zeros_like(cand)
                keep[key_frame[obj]] = cand[key_frame[obj]]
                cand = keep
        score = np.where(cand, det["scores"], -np.inf)
        t, k = np.unravel_index(int(np.argmax(score)), score.shape)  # first max: earliest frame
        taken.add((int(t), int(k)))
        slots.append((int(t), int(k)))
    frame, box_index, role, slot = [], [], [], []
    for s, (t, k) in enumerate(slots):
        frame.append(t), box_index.append(k), role.append(Role.PRINCIPAL), slot.append(s)
        others = np.flatnonzero(usable[t])
        others = others[[(t, int(j)) not in taken for j in others]]
        overlap = box_iou(det["boxes"][t, k][None], det["boxes"][t, others])[0]
        context = others[overlap > params.iou]
        context = context[np.argsort(-det["scores"][t, context], kind="stable")]
        for j in context[: params.max_context]:
            frame.append(t), box_index.append(int(j)), role.append(Role.CONTEXT), slot.append(s)
    return {
        "frame": np.asarray(frame, np.int16),
        "box_index": np.asarray(box_index, np.int16),
        "role": np.asarray(role, np.int8),
        "slot": np.asarray(slot, np.int8),
    }


def _shared_frame(scores: np.ndarray, cand: np.ndarray, m: int) -> int | None:
    """The frame whose ``m``-th best candidate box scores highest (the earliest on ties), or None
    when no frame has ``m`` candidates."""
    ranked = -np.sort(-np.where(cand, scores, -np.inf), axis=1)  # (T, K), best first
    if ranked.shape[1] < m:
        return None
    mth = ranked[:, m - 1]
    return int(np.argmax(mth)) if np.isfinite(mth).any() else None


def random_crop(
    rng: np.random.Generator, n_frames: int, height: int, width: int, params: GraphsParams
) -> tuple[int, np.ndarray]:
    """A sampled-frame index and a crop box ``(4,)`` xyxy inside a ``height x width`` frame."""
    t = int(rng.integers(n_frames))
    side = rng.uniform(params.crop_min, params.crop_max, size=2) * (width, height)
    x0 = rng.uniform(0, width - side[0])
    y0 = rng.uniform(0, height - side[1])
    return t, np.array([x0, y0, x0 + side[0], y0 + side[1]], np.float32)


def first_box(det: dict[str, np.ndarray]) -> tuple[int, int] | None:
    """The reference code's background: (frame, box index) of the first box of the first frame
    that has one; None when the clip has no box at all."""
    frames = np.flatnonzero(det["counts"] > 0)
    return (int(frames[0]), 0) if len(frames) else None
