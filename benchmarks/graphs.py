"""The graph store's write and random-read times, at ASIW's scale and feature width.

Builds a store of ``n`` graphs with 2-12 nodes each (ASIW-like: two principal objects, a few
context nodes, one background) and 2048-d features (a ResNet-50 box head), then reads graphs at
random as numpy arrays, as PyG ``Data``, and as a ``Batch`` of 16.

Usage: ``uv run python benchmarks/graphs.py [n]``; figures go to docs/graphs.md.
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from pipeline.graphs.store import GraphStore, write_store


def fake_graphs(n: int, dim: int, rng: np.random.Generator) -> list[dict]:
    graphs = []
    for i in range(n):
        m = int(rng.integers(2, 13))
        graphs.append(
            {
                "clip_id": f"clip{i:06d}",
                "split": "train",
                "label": [0, 1],
                "x": rng.normal(size=(m, dim)).astype(np.float16),
                "box": rng.uniform(0, 256, (m, 4)).astype(np.float32),
                "frame": np.zeros(m, np.int16),
                "time": np.zeros(m, np.float32),
                "score": np.ones(m, np.float32),
                "role": np.array([0, 0] + [1] * (m - 3) + [2], np.int8)[:m],
                "slot": np.zeros(m, np.int8),
            }
        )
    return graphs


def main(n: int = 10_000, dim: int = 2048) -> None:
    rng = np.random.default_rng(0)
    graphs = fake_graphs(n, dim, rng)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "graphs.h5"
        t0 = time.perf_counter()
        write_store(path, graphs, [], {"label_names": ["a", "b"]}, dim, 2)
        write_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        store = GraphStore(path)
        open_s = time.perf_counter() - t0
        ids = list(rng.choice(store.clip_ids, 2000))
        store.read(ids[0])
        t0 = time.perf_counter()
        for cid in ids:
            store.read(cid)
        read_ms = (time.perf_counter() - t0) / len(ids) * 1e3
        store.data(ids[0])  # imports torch_geometric
        t0 = time.perf_counter()
        for cid in ids[:500]:
            store.data(cid)
        data_ms = (time.perf_counter() - t0) / 500 * 1e3
        t0 = time.perf_counter()
        for i in range(0, 800, 16):
            store.batch(ids[i : i + 16])
        batch_ms = (time.perf_counter() - t0) / 50 * 1e3
        size_mb = path.stat().st_size / 2**20
    print(f"graphs: {n}, feature dim {dim}, nodes {sum(len(g['role']) for g in graphs)}")
    print(
        f"write: {write_s:.2f} s, file {size_mb:.0f} MiB, "
        f"open (index into memory): {open_s * 1e3:.0f} ms"
    )
    print(f"random read, numpy arrays: {read_ms:.3f} ms/graph")
    print(f"random read, PyG Data (with complete edges): {data_ms:.3f} ms/graph")
    print(f"random Batch of 16: {batch_ms:.2f} ms")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 10_000)
