"""How true is the 2.5D graph's geometry? (the scenes world, against its ground truth)

For every graph node whose box shows one of the world's objects (IoU >= 0.5 with the object's
true box in the node's frame; ``truth/<clip_id>.npz``), the object's true 3D centre is its true
image centre back-projected at its true depth with the same camera as the graphs'. Then, over the
pairs of nodes of one graph that show two different objects:

- the Spearman rank correlation of the graph's Chamfer distance (and of the distance between the
  nodes' positions) with the true distance of the two centres, pooled over all pairs and as the
  mean over graphs;
- the share of nodes whose heaviest edge leads to the truly nearest object;
- each node's depth (its position's z) against the true depth: rank correlation, and the median
  relative error after one least-squares scale per clip (relative depth has no unit).

Each row is one way of making the depth: ``oracle`` (the rendered depth, registered), ``relative``
(the rendered depth as disparity under a random scale and shift per frame, registered back: what
a monocular network gives at best), and ``relative, per frame`` (the same, each frame mapped to
depth on its own, with no registration across frames). Timings: the depth stage and the graph
geometry per clip, and a CPU stand-in for a MiDaS-sized network per frame, projected to ASIW's
7,676 clips.

Usage::

    uv run python benchmarks/depth_geometry.py [--data data] [--out /tmp/depth-geometry]

It reads the default pipeline's outputs (``dvc repro`` first) and writes its depth stores under
``--out``. Figures: docs/depth.md.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import time
from pathlib import Path

import numpy as np
import yaml

from pipeline.depth import register as reg
from pipeline.depth.run import DepthParams, depth_all
from pipeline.depth.store import DepthStore
from pipeline.detection.store import DetectionStore
from pipeline.download.store import read_status
from pipeline.graphs.geometry import Asmp25dParams, focal, graph_geometry
from pipeline.graphs.store import GraphStore
from pipeline.params import parse
from pipeline.scenes_truth import frame_at, object_at

ASIW_CLIPS = 7207 + 147 + 322  # AVSGS's train / val / test lists


def spearman(a: np.ndarray, b: np.ndarray) -> float:
    """Spearman's rank correlation (average ranks not needed: continuous values)."""
    if len(a) < 3:
        return float("nan")
    ra, rb = np.argsort(np.argsort(a)), np.argsort(np.argsort(b))
    return float(np.corrcoef(ra, rb)[0, 1])


def true_centres(truth, objects: list[int | None], times, fps: int, size: int, fov: float):
    """Each matched node's object's true 3D centre ``(n, 3)`` (NaN rows for unmatched)."""
    f, c = focal(size, fov), size / 2
    out = np.full((len(objects), 3), np.nan)
    for i, (k, t) in enumerate(zip(objects, times, strict=True)):
        if k is None:
            continue
        x, y, z = truth["path"][k, frame_at(truth, float(t), fps)]
        out[i] = (x - c) * z / f, (y - c) * z / f, z
    return out


def score(graphs: GraphStore, depth: DepthStore, world: Path, fps: int, geo: Asmp25dParams):
    """The figures of one depth store (module docstring)."""
    pairs_est, pairs_pos, pairs_true, per_graph, nearest = [], [], [], [], []
    z_est, z_true, z_rel = [], [], []
    seconds = 0.0
    for cid in graphs.clip_ids:
        g = graphs.read(cid)
        with np.load(world / "truth" / f"{cid}.npz") as z:
            truth = {k: z[k] for k in ("box", "path")}
        objects = [
            object_at(truth, b, float(t), fps) for b, t in zip(g["box"], g["time"], strict=True)
        ]
        centres = true_centres(truth, objects, g["time"], fps, depth.frame_size, geo.fov)
        maps = depth.read(cid)["depth"] if cid in depth else None
        started = time.perf_counter()
        est = graph_geometry(g["box"], g["frame"], maps, depth.frame_size, geo)
        seconds += time.perf_counter() - started
        n = len(objects)
        dist = np.zeros((n, n))
        weight = np.eye(n)
        off = ~np.eye(n, dtype=bool)
        dist[off], weight[off] = est["distance"], est["weight"]
        ours, theirs, pos = [], [], []
        for i in range(n):
            for j in range(i + 1, n):
                if objects[i] is None or objects[j] is None or objects[i] == objects[j]:
                    continue
                ours.append(dist[i, j])
                pos.append(np.linalg.norm(est["pos"][i] - est["pos"][j]))
                theirs.append(np.linalg.norm(centres[i] - centres[j]))
        pairs_est += ours
        pairs_pos += pos
        pairs_true += theirs
        if len(ours) >= 3:
            per_graph.append(spearman(np.array(ours), np.array(theirs)))
        for i in range(n):
            others = [j for j in range(n) if j != i and objects[j] not in (None, objects[i])]
            if objects[i] is None or len(others) < 2:
                continue
            true_d = [np.linalg.norm(centres[i] - centres[j]) for j in others]
            heaviest = others[int(np.argmax(weight[i, others]))]
            nearest.append(heaviest == others[int(np.argmin(true_d))])
        matched = [i for i in range(n) if objects[i] is not None]
        if matched and np.isfinite(est["pos"][matched, 2]).all():
            a, b = est["pos"][matched, 2], centres[matched, 2]
            scale = float(a @ b / (a @ a))
            z_est += list(a)
            z_true += list(b)
            z_rel += list(np.abs(scale * a - b) / b)
    return {
        "pairs": len(pairs_true),
        "chamfer_spearman": round(spearman(np.array(pairs_est), np.array(pairs_true)), 3),
        "position_spearman": round(spearman(np.array(pairs_pos), np.array(pairs_true)), 3),
        "chamfer_spearman_per_graph": round(float(np.nanmean(per_graph)), 3),
        "heaviest_edge_is_nearest": round(float(np.mean(nearest)), 3),
        "nodes": len(z_true),
        "depth_spearman": round(spearman(np.array(z_est), np.array(z_true)), 3),
        "depth_median_relative_error": round(float(np.median(z_rel)), 3),
        "geometry_ms_per_graph": round(1000 * seconds / len(graphs), 2),
    }


def per_frame(store: Path, out: Path, params: DepthParams) -> None:
    """A copy of a registered relative store with every frame mapped to depth on its own (no
    registration across frames), from the same raw parts."""
    import zarr

    src = DepthStore(store)
    group = zarr.open_group(str(out), mode="w", zarr_format=3)
    group.attrs.update(src.attrs)
    arr = group.create_array(
        "depth", shape=src.group["depth"].shape, dtype="float16", fill_value=np.nan
    )
    for name in ("box_depth", "fit", "times"):
        group.create_array(name, data=np.asarray(src.group[name]))
    for i, cid in enumerate(src.clip_ids):
        raw = np.load(store.parent / "parts_relative" / f"{cid}.npz")["maps"].astype(np.float32)
        frames = [
            reg.register(m[None], np.ones((1, *m.shape), bool), "disparity",
                         params.disparity_range)[0][0]
            for m in raw
        ]  # fmt: skip
        arr[i, : len(frames)] = np.stack(frames).astype(np.float16)


def network_proxy_ms() -> float:
    """CPU milliseconds per 256 px frame of a stand-in of MiDaS_small's size: torchvision's
    EfficientNet-B3 trunk (MiDaS_small is an EfficientNet-Lite3 encoder and a light decoder;
    no weights are needed to time it)."""
    import torch
    from torchvision.models import efficientnet_b3

    torch.set_num_threads(2)
    net = efficientnet_b3().features.eval()
    x = torch.rand(4, 3, 256, 256)
    with torch.inference_mode():
        net(x)
        started = time.perf_counter()
        for _ in range(3):
            net(x)
    return 1000 * (time.perf_counter() - started) / 12


def main(data: Path, out: Path) -> None:
    params = yaml.safe_load(Path("params.yaml").read_text())
    depth_params = parse(DepthParams, params["depth"], "depth")
    geo = parse(Asmp25dParams, params["graphs"]["asmp25d"], "graphs.asmp25d")
    fps = int(params["source"]["synthetic"]["fps"])
    graphs = GraphStore(data / "graphs" / "graphs.h5")  # the default graphs' nodes
    status = read_status(data / "download" / "status.jsonl")
    det = data / "detect" / "detections.zarr"
    clips = len(DetectionStore(det).clip_ids)
    rows, timing = {}, {}
    for name, relative in (("oracle", False), ("relative", True)):
        p = dataclasses.replace(
            depth_params,
            backend="oracle",
            oracle=dataclasses.replace(depth_params.oracle, relative=relative),
        )
        store = out / f"{name}.zarr"
        started = time.perf_counter()
        depth_all(
            status, det, data / "download" / "media", data / "source", p, store,
            out / f"parts_{name}", needed_by="asmp25d", seed=0, device="cpu",
        )  # fmt: skip
        timing[f"depth_stage_{name}_s"] = round(time.perf_counter() - started, 1)
        rows[name] = score(graphs, DepthStore(store), data / "source", fps, geo)
    per_frame(out / "relative.zarr", out / "per_frame.zarr", depth_params)
    rows["relative, per frame"] = score(
        graphs, DepthStore(out / "per_frame.zarr"), data / "source", fps, geo
    )
    proxy = network_proxy_ms()
    n_frames = DetectionStore(det).group["times"].shape[1]
    timing.update(
        clips=clips,
        frames_per_clip=n_frames,
        network_proxy_ms_per_frame_cpu=round(proxy, 1),
        asiw_network_cpu_hours=round(ASIW_CLIPS * n_frames * proxy / 3.6e6, 1),
        asiw_geometry_cpu_minutes=round(
            ASIW_CLIPS * rows["oracle"]["geometry_ms_per_graph"] / 6e4, 1
        ),
    )
    print(json.dumps({"rows": rows, "timing": timing}, indent=2))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=Path("data"))
    parser.add_argument("--out", type=Path, default=Path("/tmp/depth-geometry"))
    args = parser.parse_args()
    main(args.data, args.out)
