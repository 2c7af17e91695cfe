"""The ``scenes`` flavour: a world where the interaction and the 3D motion decide the sound.

Each sounding **principal object** (a :data:`~.classes.PERFORMERS` class: man, woman, child, robot)
holds a **partner** (:data:`~.classes.PARTNERS`: trumpet, violin, microphone, drum) that overlaps
it; the partner decides which of the class's sound variants it makes (its GM program and note
pattern), the class its register. A principal object looks the same whatever it plays, so its box
alone cannot tell its variant; its box and its partner's can. Partners also lie about silent,
elsewhere. A third of the clips have one sounding object, the others two; of those, a share
``same_class_sources`` hold two objects of one class with different partners, which only their
partners tell apart (:func:`clip_kind` spreads the kinds evenly over every split).

Every object moves in 3D: a depth ``z`` in ``[1, far]`` (1 = nearest), drawn at a side ``base /
z`` and painted far to near, so nearer objects occlude (a partner is just behind its principal
object, so the principal's box shows only the principal); a share (``static_fraction``) never moves,
the others move in segments of 2-4 s (sideways, in depth, both, or pausing), bouncing off the
frame and the depth range. A partner moves with its principal object. A
source's dry sound is levelled (:func:`levelled`) and its loudness is then ``1 / z(t)``
(amplitude); with ``speed_of_sound > 0`` its sound also arrives
``(z - 1) / speed_of_sound`` seconds late, which shifts its pitch up while it approaches and down
while it recedes (Doppler).

Per 1-second window each object has a displacement ``(u, v, d)``: ``u, v`` the move of its
centre in tenths of the frame side (``v`` positive downwards), ``d`` its change of depth (positive:
receding), and its direction classes in ASMP's 10- and 28-class schemes (:mod:`pipeline.motion`:
static below ``|u|, |v| < 0.6`` and ``|d| < 0.3``).

Ground truth (``truth/<clip_id>.npz``, ``docs/data-formats.md``): per-frame depth maps, every
object's centre and depth per frame and its box (while enough of it is visible), and the windows'
displacements and classes (read with :mod:`.truth`).
"""

from __future__ import annotations

import dataclasses
import io as _io
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

from pipeline import io, motion
from pipeline.sources.synthetic.audio import STEM_PEAK, STEM_RMS, render_stem
from pipeline.sources.synthetic.classes import PARTNERS, PERFORMERS, Look
from pipeline.sources.synthetic.video import background, sprite

NEAR = 1.0  #: the nearest depth; a sprite is ``base`` pixels wide there, loudness 1
BACKGROUND_DEPTH = (6.0, 3.0)  #: the ground plane's depth at the top and bottom rows
PARTNER_SCALE = 0.7  #: a partner's side, as a share of its principal object's
PARTNER_OFFSET = (0.45, 0.1)  #: a partner's centre from its principal's, in principal sides
PARTNER_BEHIND = 0.01  #: a partner's depth behind its principal object's
ONE_SOURCE = 1 / 3  #: share of the clips with one sounding object (``max_sources: 2``)
GOLDEN = (5**0.5 - 1) / 2
MIN_VISIBLE = 0.3  #: an object with less of its sprite visible has no box in that frame
DEPTH_SCALE = 1000  #: depth maps are stored as uint16 thousandths of a depth unit
UV_UNIT = 0.1  #: u and v are in tenths of the frame side


@dataclasses.dataclass(frozen=True)
class ScenesParams:
    """``source.synthetic.scenes`` (read by the ``scenes`` flavour only).

    Args:
        same_class_sources: share of the two-source clips whose second source is of the first
            one's class (with another partner).
        static_fraction: share of the objects that never move.
        far: the farthest depth (the nearest is 1); a sprite's side and a source's amplitude are
            ``1 / z`` of their nearest values.
        speed_of_sound: in depth units per second; > 0 delays each source by ``(z - 1) / speed``
            (a Doppler shift), 0 leaves it out.
    """

    same_class_sources: float = 0.5
    static_fraction: float = 0.3
    far: float = 2.4
    speed_of_sound: float = 0.0

    def __post_init__(self) -> None:
        if not (0 <= self.same_class_sources <= 1 and 0 <= self.static_fraction <= 1):
            raise ValueError("same_class_sources and static_fraction must lie in [0, 1]")
        if not NEAR < self.far <= 4.0:
            raise ValueError("far must lie in (1, 4]")
        if self.speed_of_sound < 0:
            raise ValueError("speed_of_sound must be >= 0 (0: no Doppler)")


@dataclasses.dataclass
class Body:
    """One object of a scene and its path: ``path (T + 1, 3)`` = centre x, y (px) and depth z at
    each frame time (one past the last frame, so that every 1-second window has its end)."""

    name: str
    look: Look
    base: float  # side at depth 1, px
    role: str  # principal | partner | silent
    path: np.ndarray
    follows: int | None = None


def _free_path(rng, n: int, fps: int, frame: int, base: float, static: bool, far: float):
    """A path of ``n`` points for an object of side ``base`` at depth 1 (module docstring)."""
    z = rng.uniform(NEAR, far)
    half = base / (2 * z)
    xy = rng.uniform(half, frame - half, 2)
    path = np.empty((n, 3))
    vel = np.zeros(3)
    left = 0
    for i in range(n):
        if not static and left == 0:
            left = int(rng.uniform(2, 4) * fps)
            kind = rng.choice(["sideways", "depth", "both", "pause"], p=[0.3, 0.3, 0.3, 0.1])
            angle = rng.uniform(0, 2 * np.pi)
            speed = rng.uniform(0.08, 0.25) * frame if kind in ("sideways", "both") else 0.0
            vz = rng.choice([-1, 1]) * rng.uniform(0.5, 1.0) if kind in ("depth", "both") else 0
            vel = np.array([speed * np.cos(angle), speed * np.sin(angle), vz]) / fps
        path[i] = (*xy, z)
        if static:
            continue
        left -= 1
        z += vel[2]
        if not NEAR <= z <= far:
            vel[2] = -vel[2]
            z = float(np.clip(z, NEAR, far))
        xy = xy + vel[:2]
        half = base / (2 * z)
        for axis in range(2):
            if not half <= xy[axis] <= frame - half:
                vel[axis] = -vel[axis]
                xy[axis] = np.clip(xy[axis], half, frame - half)
    return path


def _partner_path(principal: Body, side: float) -> np.ndarray:
    """A partner's path: beside its principal object (scaled by its depth), just behind it, so
    the part of it inside the principal's box is hidden."""
    z = principal.path[:, 2]
    dx, dy = PARTNER_OFFSET
    out = principal.path.copy()
    out[:, 0] += side * dx * principal.base / z
    out[:, 1] += dy * principal.base / z
    out[:, 2] = z + PARTNER_BEHIND
    return out


def clip_kind(index: int, max_sources: int, same_class_sources: float) -> tuple[int, bool]:
    """How many sounding objects clip ``index`` has and whether two share a class: from the
    golden-ratio sequence ``frac(index * 0.618...)``, not the clip's random draws, so that every
    split (a contiguous range of indices) holds each kind in its share (:data:`ONE_SOURCE` one
    source; of the rest, ``same_class_sources`` one class twice) and not a lucky few."""
    u = (index * GOLDEN) % 1.0
    if max_sources == 1 or u < ONE_SOURCE:
        return 1, False
    return 2, (u - ONE_SOURCE) / (1 - ONE_SOURCE) < same_class_sources


def draw_scene(
    rng, params, scenes: ScenesParams, index: int
) -> tuple[list[Body], list[dict[str, Any]]]:
    """Clip ``index``'s bodies and, per sounding object, its class, partner and body indices."""
    names = sorted(PERFORMERS)
    frame, fps = params.size, params.fps
    n = int(round(params.seconds * fps)) + 1
    n_src, same = clip_kind(index, params.max_sources, scenes.same_class_sources)
    sounding = [str(rng.choice(names))]
    if n_src == 2:
        sounding.append(
            sounding[0] if same else str(rng.choice([c for c in names if c != sounding[0]]))
        )
    partners: list[str] = []
    for cls in sounding:  # two objects of one class play two different partners
        options = [p for p in PERFORMERS[cls].partners if p not in partners]
        partners.append(str(rng.choice(options)))

    def base_side() -> float:
        return float(rng.uniform(0.24, 0.32) * frame)

    def static() -> bool:
        return bool(rng.random() < scenes.static_fraction)

    bodies: list[Body] = []
    n_ctx = int(rng.integers(params.min_context, params.max_context + 1))
    silent = []
    if n_ctx and rng.random() < params.same_class_context:
        silent.append(partners[int(rng.integers(len(partners)))])  # "a trumpet on a chair"
    silent += [str(rng.choice(sorted(PARTNERS))) for _ in range(n_ctx - len(silent))]
    for name in silent:
        base = base_side() * PARTNER_SCALE
        path = _free_path(rng, n, fps, frame, base, static(), scenes.far)
        bodies.append(Body(name, PARTNERS[name].look, base, "silent", path))
    sources = []
    for cls, partner in zip(sounding, partners, strict=True):
        base = base_side()
        path = _free_path(rng, n, fps, frame, base, static(), scenes.far)
        bodies.append(Body(cls, PERFORMERS[cls].look, base, "principal", path))
        owner = len(bodies) - 1
        side = float(rng.choice([-1.0, 1.0]))
        bodies.append(
            Body(
                partner,
                PARTNERS[partner].look,
                base * PARTNER_SCALE,
                "partner",
                _partner_path(bodies[owner], side),
                follows=owner,
            )
        )
        sources.append(
            {"class": cls, "partner": partner, "track": owner, "partner_track": owner + 1}
        )
    return bodies, sources


def render_frames(rng, params, bodies: list[Body]):
    """Frames ``(T, S, S, 3)`` uint8, depth maps ``(T, S, S)`` uint16 (thousandths) and each
    body's box per frame: the box of its whole sprite, clipped to the frame (COCO xywh), while at
    least :data:`MIN_VISIBLE` of the sprite is visible, else None."""
    size = params.size
    bg = background(rng, size)
    rows = np.linspace(*BACKGROUND_DEPTH, size, dtype=np.float32)
    bg_depth = np.repeat(rows[:, None], size, axis=1)
    n_frames = len(bodies[0].path) - 1
    frames = np.empty((n_frames, size, size, 3), np.uint8)
    depth = np.empty((n_frames, size, size), np.uint16)
    boxes: list[list[list[float] | None]] = []
    sprites: dict[tuple[Look, int], tuple[np.ndarray, np.ndarray, np.ndarray]] = {}
    for f in range(n_frames):
        img, zbuf = bg.copy(), bg_depth.copy()
        owner = np.full((size, size), -1, np.int16)
        area = np.zeros(len(bodies))
        whole = np.zeros((len(bodies), 4))
        order = sorted(range(len(bodies)), key=lambda k: -bodies[k].path[f, 2])  # far first
        for k in order:
            cx, cy, z = bodies[k].path[f]
            side = max(2, int(round(bodies[k].base / z)))
            key = (bodies[k].look, side)
            if key not in sprites:
                rgb, mask = sprite(bodies[k].look, side)
                ys, xs = np.nonzero(mask)
                sprites[key] = rgb, mask, np.array([xs.min(), ys.min(), xs.max() + 1, ys.max() + 1])
            rgb, mask, extent = sprites[key]
            area[k] = mask.sum()
            x0, y0 = int(round(cx - side / 2)), int(round(cy - side / 2))
            whole[k] = np.clip(extent + (x0, y0, x0, y0), 0, size)
            cx0, cy0 = max(x0, 0), max(y0, 0)
            cx1, cy1 = min(x0 + side, size), min(y0 + side, size)
            if cx0 >= cx1 or cy0 >= cy1:
                continue
            m = mask[cy0 - y0 : cy1 - y0, cx0 - x0 : cx1 - x0]
            img[cy0:cy1, cx0:cx1][m] = rgb[cy0 - y0 : cy1 - y0, cx0 - x0 : cx1 - x0][m]
            zbuf[cy0:cy1, cx0:cx1][m] = z
            owner[cy0:cy1, cx0:cx1][m] = k
        frame_boxes: list[list[float] | None] = []
        for k in range(len(bodies)):
            if np.count_nonzero(owner == k) < MIN_VISIBLE * area[k]:
                frame_boxes.append(None)
                continue
            x0, y0, x1, y1 = (float(v) for v in whole[k])
            frame_boxes.append([x0, y0, x1 - x0, y1 - y0])
        frames[f] = np.clip(img, 0, 255).astype(np.uint8)
        depth[f] = np.round(zbuf * DEPTH_SCALE).astype(np.uint16)
        boxes.append(frame_boxes)
    return frames, depth, boxes


def distance_effects(
    stem: np.ndarray, z_frames: np.ndarray, fps: int, sample_rate: int, speed_of_sound: float
) -> np.ndarray:
    """A source heard from its path: amplitude ``1 / z(t)`` and, with ``speed_of_sound > 0``, a
    delay of ``(z(t) - 1) / speed_of_sound`` s (linear interpolation; a Doppler shift)."""
    t = np.arange(len(stem)) / sample_rate
    z = np.interp(t, np.arange(len(z_frames)) / fps, z_frames)
    out = stem.astype(np.float64)
    if speed_of_sound > 0:
        out = np.interp(t - (z - NEAR) / speed_of_sound, t, out, left=0.0)
    return (out * NEAR / z).astype(np.float32)


def levelled(x: np.ndarray, sample_rate: int, seconds: float = 0.5) -> np.ndarray:
    """``x`` with its slow loudness flattened: divided by its RMS envelope over ``seconds``
    (floored at a tenth of the whole stem's RMS, so rests stay quiet), then brought back to the
    stem's RMS and peak limits. A source's loudness is then its distance's (:func:`render_audio`),
    not its notes' dynamics."""
    x = x.astype(np.float64)
    n = max(1, int(seconds * sample_rate))
    power = np.convolve(x**2, np.ones(n) / n, mode="same")
    rms = np.sqrt(np.mean(x**2))
    y = x / np.maximum(np.sqrt(power), 0.1 * rms)
    y *= min(STEM_RMS / np.sqrt(np.mean(y**2)), STEM_PEAK / np.abs(y).max())
    return y.astype(np.float32)


def render_audio(rng, params, scenes: ScenesParams, bodies, sources, sample_rate: int):
    """Stems ``(L, n_src)`` int16 heard from each source's path, and their sum ``(L,)`` int16."""
    n_samples = int(round(params.seconds * sample_rate))
    stems = []
    for s in sources:
        sound = PERFORMERS[s["class"]].sound(PARTNERS[s["partner"]])
        dry = render_stem(sound, rng, params.seconds, sample_rate, params.render_rate)[:n_samples]
        dry = levelled(dry, sample_rate)
        path = bodies[s["track"]].path[:, 2]
        stems.append(distance_effects(dry, path, params.fps, sample_rate, scenes.speed_of_sound))
    stems_q = np.round(np.clip(np.stack(stems, axis=1), -1, 1) * 32767).astype(np.int16)
    mixture = stems_q.astype(np.int32).sum(axis=1).clip(-32768, 32767).astype(np.int16)
    return stems_q, mixture


def displacements(path: np.ndarray, fps: int, frame: int, seconds: float) -> np.ndarray:
    """``(W, 3)`` displacement ``(u, v, d)`` of a path over each whole 1-second window."""
    ends = np.arange(int(seconds) + 1) * fps
    moved = np.diff(path[ends], axis=0)
    return np.column_stack([moved[:, :2] / (UV_UNIT * frame), moved[:, 2]])


def truth(bodies: list[Body], boxes, depth: np.ndarray, params) -> dict[str, np.ndarray]:
    """The arrays of ``truth/<clip_id>.npz`` (``docs/data-formats.md``)."""
    n_frames = len(boxes)
    box = np.full((len(bodies), n_frames, 4), np.nan, np.float32)
    for f, frame_boxes in enumerate(boxes):
        for k, b in enumerate(frame_boxes):
            if b is not None:
                box[k, f] = b
    disp = np.stack(
        [displacements(b.path, params.fps, params.size, params.seconds) for b in bodies]
    )
    return {
        "depth": depth,
        "path": np.stack([b.path for b in bodies]).astype(np.float32),
        "box": box,
        "displacement": disp.astype(np.float32),
        "direction10": motion.direction_class(disp, 10).astype(np.int8),
        "direction28": motion.direction_class(disp, 28).astype(np.int8),
    }


def write_truth(path: Path, arrays: dict[str, np.ndarray]) -> None:
    """An ``.npz`` (``numpy.load`` reads it) whose bytes depend on the arrays only: fixed member
    times, deflate-compressed, written atomically."""
    with io.atomic_path(path) as tmp, zipfile.ZipFile(tmp, "w") as zf:
        for name, array in arrays.items():
            buf = _io.BytesIO()
            np.lib.format.write_array(buf, np.ascontiguousarray(array), allow_pickle=False)
            info = zipfile.ZipInfo(f"{name}.npy", date_time=(1980, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED
            zf.writestr(info, buf.getvalue())
