"""Over-smoothing: how alike do a trained AVSGS's graph layers make the nodes of one graph?

Every scene graph is fully connected (``docs/graphs.md``). PyG's ``GATConv`` without its residual
gives each node a convex combination of its neighbours' messages, and on a complete graph every
node has the same neighbours, so one layer can make a graph's nodes nearly equal: its objects are
then no longer told apart, whatever the GRU or the sub-graph readout does after it. This script
measures that on a checkpoint and a graph store, after each layer of the encoder:

- ``cosine``: the mean cosine similarity between two nodes of one graph;
- ``spread``: the norm of the nodes' standard deviation about their graph's mean, over the norm of
  that mean (0: all nodes equal).

Both are means over the graphs of a split with at least two nodes.

Usage::

    uv run python benchmarks/oversmoothing.py                                  # the default run
    uv run python benchmarks/oversmoothing.py data/train/model.pt data/graphs/graphs.h5 test

Figures: docs/model.md ("The GAT's residual").
"""

from __future__ import annotations

import sys

import torch
import torch.nn.functional as F

from pipeline.errors import PipelineError
from pipeline.graphs.store import GraphStore
from pipeline.separation.model import AVSGS, load_separator


def layers(model: AVSGS, batch) -> dict[str, torch.Tensor]:
    """Node features ``(|V|, D)`` of ``batch`` at the input and after each encoder layer (an
    ablated layer is left out)."""
    enc = model.encoder
    _, (h, g) = enc.encode(batch.x, batch.edge_index, batch.batch)
    out = {"input": batch.x, "mlp": enc.mlp(batch.x)}
    if enc.gat is not None:
        out["gat"] = h
    if enc.edge is not None:
        out["edgeconv"] = g
    return out


def alike(x: torch.Tensor, batch: torch.Tensor) -> tuple[float, float]:
    """Mean within-graph cosine between two nodes, and mean relative spread (module docstring)."""
    cos, spread = [], []
    for b in batch.unique():
        v = x[batch == b]
        if len(v) < 2:
            continue
        u = F.normalize(v, dim=-1)
        n = len(u)
        cos.append(float(((u @ u.T).sum() - n) / (n * n - n)))
        spread.append(float(v.std(0).norm() / v.mean(0).norm().clamp_min(1e-12)))
    if not cos:
        raise PipelineError("no graph with two or more nodes in this split")
    return sum(cos) / len(cos), sum(spread) / len(spread)


@torch.no_grad()
def measure(model_path: str, graphs_path: str, split: str) -> dict[str, tuple[float, float]]:
    model, _ = load_separator(model_path)
    if not isinstance(model, AVSGS):
        raise PipelineError(f"{model_path}: a {model.name} model has no graph encoder to measure")
    store = GraphStore(graphs_path)
    ids = store.ids(split)
    if not ids:
        raise PipelineError(f"{graphs_path}: no {split} graphs")
    batch = store.batch(ids)
    return {name: alike(x, batch.batch) for name, x in layers(model, batch).items()}


def main(argv: list[str]) -> None:
    model_path, graphs_path, split = (argv + ["", "", ""])[:3]
    model_path = model_path or "data/train/model.pt"
    graphs_path = graphs_path or "data/graphs/graphs.h5"
    split = split or "test"
    print(f"{model_path} on the {split} graphs of {graphs_path}")
    print(f"{'layer':<10} {'cosine':>8} {'spread':>8}")
    for name, (cos, spread) in measure(model_path, graphs_path, split).items():
        print(f"{name:<10} {cos:8.3f} {spread:8.3f}")


if __name__ == "__main__":
    main(sys.argv[1:])
