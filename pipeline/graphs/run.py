"""The graphs stage: a scene graph for every clip with usable detections, into one HDF5 store.

The random-crop background node needs the clip's frame and the detector that made the
detections (so its feature lives in the same space as the boxes'); each crop's feature is cached
per clip in a persistent folder, keyed by the detector, the crop settings and the clip's video
bytes, so a killed or re-parametrised run (say a new ``graphs.iou``) does not embed them again,
and a re-cut clip is embedded afresh.

Each clip's principal objects and split come from the download stage's status manifest: it holds
one row per downloaded clip, including the 10 s clips cut from a whole video (MUSIC), which the
labels manifest (one row per video) does not.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

from pipeline import io, media, parts
from pipeline.depth.store import DepthStore, NoDepthMade
from pipeline.detection.detect_backends import crop_side
from pipeline.detection.store import DetectionStore
from pipeline.device import resolve_device
from pipeline.download.store import MediaStore, usable
from pipeline.errors import PipelineError
from pipeline.graphs.build import (
    READS_DEPTH,
    GraphsParams,
    Skip,
    build_graph,
    first_box,
    random_crop,
)
from pipeline.graphs.class_map import ClassMapParams, resolve
from pipeline.graphs.geometry import graph_geometry
from pipeline.graphs.motion_labels import classes, derived_displacements, track
from pipeline.graphs.roles import NAMES as ROLE_NAMES
from pipeline.graphs.roles import Role
from pipeline.graphs.store import write_store

log = logging.getLogger(__name__)


def clip_rng(seed: int, clip_id: str) -> np.random.Generator:
    """A generator for one clip that depends on the seed and the clip id only (not on order)."""
    digest = int.from_bytes(hashlib.sha256(clip_id.encode()).digest()[:8], "little")
    return np.random.default_rng([seed, digest])


class CropEmbedder:
    """Random-crop background nodes: the crop of a sampled frame through the detector's box head,
    cached per clip in ``cache_dir``."""

    def __init__(
        self, checkpoint, store: DetectionStore, media_dir, cache_dir, params, seed, device="cpu"
    ):
        from pipeline.detection.model import load_checkpoint

        # RGB-crop features (proposals): a crop's feature is its pixels too (no detector)
        self.crop = crop_side(store.attrs["features"])
        if self.crop:
            sha, self.model = f"proposals:{self.crop}", None
        else:
            sha = io.sha256_file(checkpoint)
            made_by = store.attrs["detector"]["sha256"]
            if sha != made_by:
                raise PipelineError(
                    f"{checkpoint} is not the detector that made {store.path} "
                    f"(sha256 {sha[:12]} vs {made_by[:12]}); rerun `dvc repro detect`"
                )
            self.model, _ = load_checkpoint(checkpoint)
            self.model.to(device)
        self.device = torch.device(device)
        self.fps = float(store.attrs["params"]["fps"])
        self.media, self.cache_dir = MediaStore(media_dir), Path(cache_dir)
        self.params, self.seed = params, seed
        if self.cache_dir.is_dir():  # half-written crops of a killed run
            io.remove_partial_files(self.cache_dir)
        self.key = json.dumps(
            {"detector": sha, "seed": seed, "crop": [params.crop_min, params.crop_max]},
            sort_keys=True,
        )

    def clip_key(self, clip_id: str) -> str:
        """The cache key of one clip: the settings and the sha256 of its video."""
        video = self.media.video(clip_id)
        if not video.is_file():
            raise media.MediaError(f"{video}: missing")
        return parts.key_of(run=self.key, media=io.sha256_file(video))

    def __call__(self, clip_id: str, n_frames: int) -> dict[str, np.ndarray]:
        key = self.clip_key(clip_id)
        cached = parts.read(self.cache_dir, clip_id, key, ("frame", "box", "x"))
        if cached is not None:
            return cached
        from pipeline.detection.infer import box_features
        from pipeline.detection.proposals import crop_pixels

        frames, _ = media.sample_frames(self.media.video(clip_id), self.fps)
        h, w = frames.shape[1:3]
        t, box = random_crop(
            clip_rng(self.seed, clip_id), min(n_frames, len(frames)), h, w, self.params
        )
        if self.crop:
            x = crop_pixels(frames[t], box[None], self.crop)[0]
        else:
            image = media.to_tensor(frames[t]).to(self.device)
            boxes = torch.from_numpy(box)[None].to(self.device)
            x = box_features(self.model, image, boxes)[0].cpu().numpy()
        out = {"frame": np.int16(t), "box": box, "x": x.astype(np.float16)}
        parts.write(self.cache_dir, clip_id, key, out)
        return out


def nodes_of(
    det: dict[str, np.ndarray], built: dict[str, np.ndarray], background: dict[str, Any]
) -> dict[str, np.ndarray]:
    """The store's node arrays: the built principal / context nodes, then the background node."""
    t, k = built["frame"].astype(int), built["box_index"].astype(int)
    bt = int(background["frame"])
    return {
        "x": np.concatenate([det["features"][t, k], background["x"][None]]),
        "box": np.concatenate([det["boxes"][t, k], background["box"][None]]),
        "frame": np.append(built["frame"], bt),
        "time": np.append(det["times"][t], det["times"][bt]),
        "score": np.append(det["scores"][t, k], background["score"]),
        "role": np.append(built["role"], Role.BACKGROUND),
        "slot": np.append(built["slot"], -1),
    }


def _warn_unmapped(clip_ids, labels, resolved, map_name: str) -> None:
    """Name the principal objects that the class map gives no detector class (their clips are
    skipped; the metrics count them per object)."""
    unmapped = sorted(
        {o for c in clip_ids for o in labels[c]["principal_objects"] if not resolved["ids"].get(o)}
    )
    if unmapped:
        log.warning(
            "graphs: class_map.%s gives no detector class for %s (their clips get no graph)",
            map_name,
            ", ".join(unmapped),
        )


def clip_graph(
    cid, row, det, ids, params: GraphsParams, embed, depth=None, world=None
) -> dict[str, Any]:
    """One clip's graph (``clip_id``, ``split``, ``objects`` and the node fields), or the record
    of why it has none (``clip_id``, ``split``, ``reason``, ``object``). ``depth``: the depth
    store, when the builder (``asmp25d``: the graph gains its geometry) or the motion labels
    (``derived``) read it; ``world``: the scenes world (:class:`World`) for ``truth`` labels."""
    built = build_graph(det, row["principal_objects"], ids, params)
    if isinstance(built, Skip):
        return {"clip_id": cid, "split": row["split"], **built._asdict()}
    if embed is not None:
        try:
            background = {**embed(cid, len(det["counts"])), "score": 0.0}
        except media.MediaError as err:
            log.warning("graphs: %s skipped: %s", cid, str(err).splitlines()[-1][:200])
            return {"clip_id": cid, "split": row["split"], "reason": "unreadable", "object": ""}
    else:
        t, k = first_box(det)  # a clip with a principal box has a first box
        background = {
            "frame": t,
            "x": det["features"][t, k],
            "box": det["boxes"][t, k],
            "score": det["scores"][t, k],
        }
    nodes = nodes_of(det, built, background)
    stored = depth.read(cid) if depth is not None and cid in depth else None
    if params.builder in READS_DEPTH:
        maps = None if stored is None else stored["depth"]
        nodes.update(
            graph_geometry(nodes["box"], nodes["frame"], maps, depth.frame_size, params.asmp25d)
        )
    objects = row["principal_objects"][: params.max_principal]
    if params.motion.labels != "none":
        nodes.update(slot_motion(cid, det, built, objects, ids, params, stored, depth, world))
    return {"clip_id": cid, "split": row["split"], "objects": objects, **nodes}


class World:
    """The scenes world's ground truth, for ``graphs.motion.labels: truth``."""

    def __init__(self, source: str | Path | None):
        meta = Path(source or "") / "meta.json"
        if source is None or not meta.is_file():
            raise PipelineError(
                "graphs.motion.labels truth needs the synthetic scenes world (--source with "
                "meta.json); use labels: derived for other sources"
            )
        params = json.loads(meta.read_text())["params"]
        if params.get("flavour") != "scenes":
            raise PipelineError(
                f"graphs.motion.labels truth needs the scenes world, the source is "
                f"{params.get('flavour') or 'not synthetic'}: use labels: derived"
            )
        self.dir, self.fps = Path(source), int(params["fps"])
        world = json.loads((self.dir / "world.json").read_text())
        self.clips = {c["clip_id"]: c for c in world["clips"]}

    def displacements(self, cid: str, box: np.ndarray, time: float) -> np.ndarray | None:
        """The true ``(W, 3)`` displacements of the sounding object ``box`` shows, or None."""
        from pipeline.scenes_truth import source_at

        path = self.dir / "truth" / f"{cid}.npz"
        if cid not in self.clips or not path.is_file():
            return None
        with np.load(path) as z:
            truth = {k: z[k] for k in ("box", "displacement")}
        source = source_at(self.clips[cid], truth, box, time, self.fps)
        return None if source is None else truth["displacement"][source["track"]]


def slot_motion(cid, det, built, objects, ids, params, stored, depth, world) -> dict:
    """Each slot's ``displacement (N, W, 3)`` and ``direction10`` / ``direction28`` ``(N, W)``
    (:mod:`pipeline.graphs.motion_labels`; NaN / -1 where unknown)."""
    n_windows = int(np.floor(float(det["times"][-1]))) + 1
    disp = np.full((len(objects), n_windows, 3), np.nan)
    principal = np.flatnonzero(built["role"] == Role.PRINCIPAL)
    for s, i in enumerate(principal):
        t, k = int(built["frame"][i]), int(built["box_index"][i])
        if params.motion.labels == "truth":
            true = world.displacements(cid, det["boxes"][t, k], float(det["times"][t]))
            if true is not None:
                w = min(n_windows, len(true))
                disp[s, :w] = true[:w]
            continue
        tracked = track(det, t, k, ids[objects[s]], params.motion.track_iou)
        box_depth = None if stored is None else stored["box_depth"]
        disp[s] = derived_displacements(det, tracked, box_depth, depth.frame_size, n_windows)
    return {"displacement": disp.astype(np.float32), **classes(disp, params.motion)}


def open_depth(path: str | Path | None, store: DetectionStore) -> DepthStore:
    """The depth store (for the 2.5D builder or derived motion labels), checked to be of these
    detections."""
    if path is None:
        raise PipelineError("graphs.builder asmp25d and motion.labels derived need --depth")
    depth = DepthStore(path)
    made_from = depth.attrs["detections"]
    here = {"detector": store.attrs["detector"], "params": store.attrs["params"]}
    if json.dumps(made_from, sort_keys=True) != json.dumps(here, sort_keys=True):
        raise PipelineError(
            f"{path} was made from other detections than {store.path}; run `dvc repro depth`"
        )
    return depth


def build_all(
    detections: str | Path,
    status: list[dict[str, Any]],
    params: GraphsParams,
    class_map: ClassMapParams,
    out: str | Path,
    *,
    seed: int,
    detector: str | Path | None = None,
    media_dir: str | Path | None = None,
    cache_dir: str | Path | None = None,
    depth: str | Path | None = None,
    source: str | Path | None = None,
    device: str = "auto",
) -> tuple[dict[str, Any], list[dict[str, int]]]:
    """Build and write the graph store; returns the metrics and the graph-size histogram rows.

    ``status``: the download stage's rows (clip id, split, principal objects of every clip).
    ``detector``, ``media_dir`` and ``cache_dir`` are needed for ``background: random_crop``;
    ``depth`` (the depth store) is needed for ``builder: asmp25d`` and ``motion.labels:
    derived``, ``source`` (the scenes world) for ``motion.labels: truth``; ``device`` is
    ``base.device``.
    """
    torch.set_num_threads(params.threads)
    store = DetectionStore(detections)
    resolved = resolve(class_map, store.class_names)
    labels = usable(status)
    missing = [c for c in store.clip_ids if c not in labels]
    if missing:
        raise PipelineError(
            f"{len(missing)} clips of {store.path} are not ok in the download status manifest "
            f"(first: {missing[0]}); the detections and the downloads are out of step: run "
            "`dvc repro`"
        )
    _warn_unmapped(store.clip_ids, labels, resolved, class_map.name)
    embed = None
    if params.background == "random_crop":
        if detector is None or media_dir is None or cache_dir is None:
            raise PipelineError("graphs.background random_crop needs --detector, --media, --cache")
        embed = CropEmbedder(
            detector, store, media_dir, cache_dir, params, seed, resolve_device(device)
        )
    reads_depth = params.builder in READS_DEPTH or params.motion.labels == "derived"
    depth_store, no_motion = None, None
    if reads_depth:
        try:
            depth_store = open_depth(depth, store)
        except NoDepthMade as err:  # the source has none: only the labels may go without
            if params.builder in READS_DEPTH or not err.source_without_depth:
                raise
            no_motion = f"no depth for derived motion labels: {err}"
            log.warning("graphs: no motion labels made (%s)", no_motion)
            params = dataclasses.replace(
                params, motion=dataclasses.replace(params.motion, labels="none")
            )
    world = World(source) if params.motion.labels == "truth" else None
    graphs, skipped = [], []
    for cid in tqdm(store.clip_ids, desc="graphs", unit="clip", mininterval=2):
        graph = clip_graph(
            cid, labels[cid], store.read(cid), resolved["ids"], params, embed, depth_store, world
        )
        (skipped if "reason" in graph else graphs).append(graph)
    if not graphs:
        reasons = Counter(s["reason"] for s in skipped)
        raise PipelineError(f"graphs: no clip has a graph (skipped: {dict(reasons)})")
    label_names = sorted({o for g in graphs for o in g["objects"]})
    for g in graphs:
        g["label"] = [label_names.index(o) for o in g.pop("objects")]
    write_store(
        out,
        graphs,
        skipped,
        attrs={
            "label_names": label_names,
            "roles": list(ROLE_NAMES),
            "background": params.background,
            "params": dataclasses.asdict(params),
            "seed": seed,
            "class_map": resolved,
            "detector": store.attrs["detector"],
            "features": store.attrs["features"],
            "detections": {
                "schema_version": store.attrs["schema_version"],
                "params": store.attrs["params"],
            },
            "builder": {"name": params.builder, **builder_params(params)},
            **(
                {"depth": {k: depth_store.attrs[k] for k in ("backend", "output", "params")}}
                if depth_store is not None
                else {}
            ),
            "motion": dataclasses.asdict(params.motion),
        },
        feature_dim=store.group["features"].shape[-1],
        max_principal=params.max_principal,
    )
    metrics, sizes = summarize(graphs, skipped, len(store.clip_ids))
    if params.builder in READS_DEPTH:
        metrics["geometry"] = geometry_summary(graphs, depth_store)
    if params.motion.labels != "none":
        metrics["motion"] = motion_summary(graphs)
    elif no_motion:
        metrics["motion"] = {"skipped": no_motion}
    log.info(
        "graphs: %d graphs, %d clips skipped (%s)",
        len(graphs),
        len(skipped),
        ", ".join(f"{k}: {v}" for k, v in metrics["skipped_per_reason"].items()) or "none",
    )
    return metrics, sizes


def builder_params(params: GraphsParams) -> dict[str, Any]:
    """The builder's own settings (``params`` of the builder record): none for ``avsgs``."""
    if params.builder == "asmp25d":
        return {"params": dataclasses.asdict(params.asmp25d)}
    return {}


def geometry_summary(graphs: list[dict[str, Any]], depth: DepthStore) -> dict[str, Any]:
    """The 2.5D graphs' ``geometry`` metrics: graphs without depth, and the edge weights."""
    weight = np.concatenate([g["weight"] for g in graphs])
    known = np.concatenate([np.isfinite(g["distance"]) for g in graphs])
    return {
        "graphs_without_depth": sum(g["clip_id"] not in depth for g in graphs),
        "edges": int(len(weight)),
        "edges_with_distance": round(float(known.mean()), 4) if len(known) else 0.0,
        "weight_mean": round(float(weight.mean()), 4) if len(weight) else 0.0,
        "weight_median": round(float(np.median(weight)), 4) if len(weight) else 0.0,
    }


def motion_summary(graphs: list[dict[str, Any]]) -> dict[str, Any]:
    """The labels' ``motion`` metrics: windows of real slots with a label, and the share of
    each 10-class label among them."""
    d10 = np.concatenate([g["direction10"].ravel() for g in graphs])
    known = d10[d10 >= 0]
    shares = np.bincount(known, minlength=10) / max(len(known), 1)
    return {
        "windows": int(len(d10)),
        "labelled": round(float(len(known) / max(len(d10), 1)), 4),
        "static": round(float(shares[0]), 4),
        "direction10_shares": [round(float(x), 4) for x in shares[:9]],
    }


def summarize(
    graphs: list[dict[str, Any]], skipped: list[dict[str, str]], n_clips: int
) -> tuple[dict[str, Any], list[dict[str, int]]]:
    """``metrics/graphs.json`` and the histogram of graph sizes (nodes -> graphs)."""
    nodes = np.array([len(g["role"]) for g in graphs])
    context = np.concatenate(
        [
            np.bincount(g["slot"][g["role"] == Role.CONTEXT], minlength=len(g["label"]))
            for g in graphs
        ]
    )
    per_class: dict[str, Counter] = {}
    for s in skipped:
        per_class.setdefault(s["reason"], Counter())[s["object"]] += 1
    hist = Counter(nodes.tolist())
    sizes = [
        {"nodes": n, "graphs": hist.get(n, 0)}
        for n in range(int(nodes.min()), int(nodes.max()) + 1)
    ]
    return {
        "clips": n_clips,
        "graphs": len(graphs),
        "graphs_per_split": dict(sorted(Counter(g["split"] for g in graphs).items())),
        "nodes_per_graph": {
            "mean": round(float(nodes.mean()), 3),
            "median": float(np.median(nodes)),
            "min": int(nodes.min()),
            "max": int(nodes.max()),
        },
        "context_per_principal": {
            "mean": round(float(context.mean()), 3),
            "max": int(context.max()),
            "none": round(float((context == 0).mean()), 3),  # share with no context node
        },
        "slots_per_graph": round(float(np.mean([len(g["label"]) for g in graphs])), 3),
        "skipped": len(skipped),
        "skipped_per_reason": dict(sorted(Counter(s["reason"] for s in skipped).items())),
        "skipped_per_class": {r: dict(sorted(c.items())) for r, c in sorted(per_class.items())},
    }, sizes
