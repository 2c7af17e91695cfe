"""The scene-graph store (HDF5): writer, reader, and PyG ``Data`` / ``Batch`` access.

Layout of ``graphs.h5`` (``docs/data-formats.md``): the nodes of all graphs concatenated, graph
``g`` owning rows ``offset[g]:offset[g + 1]``, so one graph is one contiguous slice of each array
(no group per graph). ``G`` graphs, ``M`` nodes in all, ``D`` feature dimensions, ``N`` slots::

    nodes/x          (M, D)  float16   detector box-head feature of the node's box
    nodes/box        (M, 4)  float32   xyxy pixels of the canonical video frame
    nodes/frame      (M,)    int16     sampled-frame index (detections store)
    nodes/time       (M,)    float32   that frame's time in the clip, s
    nodes/score      (M,)    float32   detector score (0 for a random-crop background)
    nodes/role       (M,)    int8      0 principal, 1 context, 2 background
    nodes/slot       (M,)    int8      principal slot of a principal / context node, -1 background
    graphs/clip_id   (G,)    str       sorted
    graphs/split     (G,)    str
    graphs/offset    (G+1,)  int64
    graphs/label     (G, N)  int16     label id (attrs label_names) of each slot, -1 = no object

and with a 2.5D builder (attrs ``builder.name`` ``asmp25d``; ``E`` directed edges in all, graph
``g`` owning ``edge_offset[g]:edge_offset[g + 1]``, in :func:`complete_edges` order)::

    nodes/pos        (M, 3)  float32   pseudo-3D position (pipeline.graphs.geometry); NaN unknown
    edges/distance   (E,)    float32   Chamfer distance of the two nodes' point sets; NaN unknown
    edges/weight     (E,)    float32   RBF edge weight in [0, 1] (never NaN)
    graphs/edge_offset (G+1,) int64

and with motion labels (attrs ``motion.labels`` ``derived`` or ``truth``; ``W`` 1 s windows)::

    graphs/displacement (G, N, W, 3) float32   each slot's (u, v, d) per window; NaN unknown
    graphs/direction10  (G, N, W)    int8      ASMP's 10-class direction; -1 unknown / no slot
    graphs/direction28  (G, N, W)    int8      the 28-class direction; -1 unknown / no slot
    skipped/clip_id, skipped/split, skipped/reason, skipped/object   (S,) str
    attrs: schema_version, feature_dim, max_principal, label_names, roles, background,
           params, class_map, detector, features (the detection store's: what the node
           features are), detections, builder ({name, params}), depth (the depth store's
           backend and params, 2.5D only) (JSON strings where nested)

Edge indices are not stored: a graph is fully connected, built on read (:func:`complete_edges`);
the reader hands the edge weights on as PyG ``edge_attr (E, 1)``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import torch

from pipeline import io
from pipeline.errors import PipelineError
from pipeline.hdf5 import open_store

SCHEMA_VERSION = 3  # 2: the features attribute, from the detection store; 3: builder, geometry
NODE_FIELDS = {
    "x": np.float16,
    "box": np.float32,
    "frame": np.int16,
    "time": np.float32,
    "score": np.float32,
    "role": np.int8,
    "slot": np.int8,
}
GEOMETRY_FIELDS = ("pos", "distance", "weight")  # the 2.5D builder's, per node / per edge
SKIPPED_FIELDS = ("clip_id", "split", "reason", "object")
_STR = h5py.string_dtype()


class GraphStoreError(PipelineError, ValueError):
    """A graph store that cannot be read as it is."""


def write_store(
    path: str | Path,
    graphs: list[dict[str, Any]],
    skipped: list[dict[str, str]],
    attrs: dict[str, Any],
    feature_dim: int,
    max_principal: int,
) -> None:
    """Write the store atomically.

    Args:
        graphs: per graph ``clip_id``, ``split``, ``label`` (slot label ids) and the
            ``NODE_FIELDS`` arrays, one row per node; with a 2.5D builder also ``pos (n, 3)``,
            ``distance`` and ``weight`` ``(n (n - 1),)`` (all graphs or none).
        skipped: per skipped clip ``clip_id``, ``split``, ``reason``, ``object``.
        attrs: provenance, with ``label_names`` and ``features`` (what the node features are:
            ``{"kind": "box_head" | "rgb_crop", "dim", ["crop"]}``); dicts and lists are stored
            as JSON strings.
    """
    missing = {"label_names", "features"} - set(attrs)
    if missing:
        raise ValueError(f"a graph store needs the attrs {sorted(missing)}")
    graphs = sorted(graphs, key=lambda g: g["clip_id"])
    sizes = [len(g["role"]) for g in graphs]
    offset = np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)
    label = np.full((len(graphs), max_principal), -1, np.int16)
    for i, g in enumerate(graphs):
        label[i, : len(g["label"])] = g["label"]
    with io.atomic_path(path) as tmp, h5py.File(tmp, "w") as f:
        for name, dtype in NODE_FIELDS.items():
            width = {"x": (feature_dim,), "box": (4,)}.get(name, ())
            parts = [np.asarray(g[name], dtype).reshape(-1, *width) for g in graphs]
            data = np.concatenate(parts) if parts else np.zeros((0, *width), dtype)
            f.create_dataset(f"nodes/{name}", data=data)
        f.create_dataset("graphs/clip_id", data=[g["clip_id"] for g in graphs], dtype=_STR)
        f.create_dataset("graphs/split", data=[g["split"] for g in graphs], dtype=_STR)
        f.create_dataset("graphs/offset", data=offset)
        f.create_dataset("graphs/label", data=label)
        if graphs and "weight" in graphs[0]:
            _write_geometry(f, graphs)
        if graphs and "displacement" in graphs[0]:
            _write_motion(f, graphs, max_principal)
        skipped = sorted(skipped, key=lambda s: s["clip_id"])
        for key in SKIPPED_FIELDS:
            f.create_dataset(f"skipped/{key}", data=[s[key] for s in skipped], dtype=_STR)
        f.attrs["schema_version"] = SCHEMA_VERSION
        f.attrs["feature_dim"] = feature_dim
        f.attrs["max_principal"] = max_principal
        for key, value in attrs.items():
            f.attrs[key] = (
                json.dumps(value, sort_keys=True) if isinstance(value, dict | list) else value
            )


def _write_geometry(f: h5py.File, graphs: list[dict[str, Any]]) -> None:
    """The 2.5D builder's node positions and edge distances and weights."""
    f.create_dataset("nodes/pos", data=np.concatenate([g["pos"] for g in graphs]), dtype="f4")
    for name in ("distance", "weight"):
        f.create_dataset(
            f"edges/{name}", data=np.concatenate([g[name] for g in graphs]), dtype="f4"
        )
    sizes = [len(g["weight"]) for g in graphs]
    f.create_dataset("graphs/edge_offset", data=np.concatenate([[0], np.cumsum(sizes)]))


MOTION_FIELDS = ("displacement", "direction10", "direction28")


def _write_motion(f: h5py.File, graphs: list[dict[str, Any]], max_principal: int) -> None:
    """Each slot's displacement and direction classes per window, padded to the most windows."""
    n_windows = max(g["displacement"].shape[1] for g in graphs)
    disp = np.full((len(graphs), max_principal, n_windows, 3), np.nan, np.float32)
    cls = {n: np.full(disp.shape[:3], -1, np.int8) for n in MOTION_FIELDS[1:]}
    for i, g in enumerate(graphs):
        slots, w = g["displacement"].shape[:2]
        disp[i, :slots, :w] = g["displacement"]
        for name, arr in cls.items():
            arr[i, :slots, :w] = g[name]
    f.create_dataset("graphs/displacement", data=disp)
    for name, arr in cls.items():
        f.create_dataset(f"graphs/{name}", data=arr)


def complete_edges(n: int, device: torch.device | str = "cpu") -> torch.Tensor:
    """``edge_index (2, n * (n - 1))`` of the complete directed graph on ``n`` nodes, no self
    loops, sources in order: ``[[0, 0, ..., 1, ...], [1, 2, ..., 0, ...]]``."""
    nodes = torch.arange(n, device=device)
    src, dst = torch.meshgrid(nodes, nodes, indexing="ij")
    keep = src != dst
    return torch.stack([src[keep], dst[keep]])


class GraphStore:
    """Random access to a graph store. Everything but the node features is read into memory on
    open; the features are read per graph from a file handle that opens lazily in each process, so
    a store can be handed to ``DataLoader`` workers."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        with open_store(self.path, SCHEMA_VERSION, "graph store", "graphs", GraphStoreError) as f:
            self.attrs = {k: _attr(v) for k, v in f.attrs.items()}
            self.clip_ids = [s.decode() for s in f["graphs/clip_id"][()]]
            self.splits = [s.decode() for s in f["graphs/split"][()]]
            self.offset = f["graphs/offset"][()]
            self.labels = f["graphs/label"][()]
            # all but the features are a few bytes per node: keep them in memory, so a random
            # graph costs one HDF5 read
            self.small = {k: f[f"nodes/{k}"][()] for k in NODE_FIELDS if k != "x"}
            # the 2.5D builder's geometry: a few bytes per node and edge, kept in memory too
            self.geometry = (
                {
                    "pos": f["nodes/pos"][()],
                    "distance": f["edges/distance"][()],
                    "weight": f["edges/weight"][()],
                    "edge_offset": f["graphs/edge_offset"][()],
                }
                if "edges" in f
                else None
            )
            self.motion = (
                {k: f[f"graphs/{k}"][()] for k in MOTION_FIELDS}
                if "graphs/displacement" in f
                else None
            )
            columns = [[s.decode() for s in f[f"skipped/{k}"][()]] for k in SKIPPED_FIELDS]
            self.skipped = [
                dict(zip(SKIPPED_FIELDS, row, strict=True)) for row in zip(*columns, strict=True)
            ]
        self.index = {c: i for i, c in enumerate(self.clip_ids)}
        self._file: h5py.File | None = None

    @property
    def label_names(self) -> list[str]:
        return list(self.attrs["label_names"])

    @property
    def crop_side(self) -> int:
        """The side of the RGB crops that the node features are (``features`` kind
        ``rgb_crop``: the proposals backend), or 0 for a detector's box-head features."""
        features = self.attrs["features"]
        return int(features["crop"]) if features["kind"] == "rgb_crop" else 0

    @property
    def edge_dim(self) -> int:
        """Edge attributes per edge: 1 (the 2.5D builder's weights) or 0."""
        return 0 if self.geometry is None else 1

    def __len__(self) -> int:
        return len(self.clip_ids)

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_file": None}  # each worker opens its own handle

    def ids(self, split: str | None = None) -> list[str]:
        """Clip ids with a graph, of one split or all."""
        return [c for c, s in zip(self.clip_ids, self.splits, strict=True) if split in (None, s)]

    def read(self, clip_id: str) -> dict[str, np.ndarray]:
        """One graph's node arrays (``NODE_FIELDS``), its slot ``label (N,)``; from a 2.5D
        builder's store ``pos (n, 3)`` and the edges' ``distance`` and ``weight``; with motion
        labels each slot's ``displacement (N, W, 3)``, ``direction10`` and ``direction28``
        ``(N, W)``."""
        if clip_id not in self.index:
            raise KeyError(f"{clip_id} has no graph in {self.path}")
        if self._file is None:
            self._file = h5py.File(self.path, "r")
        g = self.index[clip_id]
        lo, hi = int(self.offset[g]), int(self.offset[g + 1])
        out = {"x": self._file["nodes/x"][lo:hi]}
        out.update({name: arr[lo:hi] for name, arr in self.small.items()})
        out["label"] = self.labels[g]
        if self.motion is not None:
            out.update({k: v[g] for k, v in self.motion.items()})
        if self.geometry is not None:
            out["pos"] = self.geometry["pos"][lo:hi]
            e0, e1 = self.geometry["edge_offset"][g : g + 2]
            out["distance"] = self.geometry["distance"][e0:e1]
            out["weight"] = self.geometry["weight"][e0:e1]
        return out

    def data(self, clip_id: str):
        """One graph as a ``torch_geometric.data.Data``: ``x (n, D)`` float32, ``edge_index``
        (complete), ``box``, ``frame``, ``time``, ``score``, ``role``, ``slot`` per node, and
        ``y (1, N)`` slot labels, ``clip_id``; from a 2.5D builder's store also ``pos (n, 3)``
        and ``edge_attr (E, 1)``, the edge weights; with motion labels ``direction10`` and
        ``direction28`` ``(1, N, W)``."""
        from torch_geometric.data import Data  # slow import: only where graphs are used

        a = self.read(clip_id)
        n = len(a["role"])
        extra = {}
        if "direction10" in a:  # (1, N, W): a batch stacks them (G, N, W)
            for scheme in (10, 28):
                labels = a[f"direction{scheme}"].astype(np.int64)
                extra[f"direction{scheme}"] = torch.from_numpy(labels)[None]
        if "weight" in a:
            extra["pos"] = torch.from_numpy(a["pos"])
            extra["edge_attr"] = torch.from_numpy(a["weight"])[:, None]
        return Data(
            x=torch.from_numpy(a["x"].astype(np.float32)),
            edge_index=complete_edges(n),
            box=torch.from_numpy(a["box"]),
            frame=torch.from_numpy(a["frame"].astype(np.int64)),
            time=torch.from_numpy(a["time"]),
            score=torch.from_numpy(a["score"]),
            role=torch.from_numpy(a["role"].astype(np.int64)),
            slot=torch.from_numpy(a["slot"].astype(np.int64)),
            y=torch.from_numpy(a["label"].astype(np.int64))[None],
            clip_id=clip_id,
            num_nodes=n,
            **extra,
        )

    def batch(self, clip_ids: list[str]):
        """Several graphs as one PyG ``Batch`` (``batch`` maps nodes to graphs, ``y (B, N)``)."""
        from torch_geometric.data import Batch

        return Batch.from_data_list([self.data(c) for c in clip_ids])

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None


def _attr(value: Any) -> Any:
    if isinstance(value, str) and value[:1] in ("[", "{"):
        return json.loads(value)
    if isinstance(value, np.generic):
        return value.item()
    return value
