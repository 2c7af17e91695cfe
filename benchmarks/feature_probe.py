"""Linear probe: how much does a graph node's feature say about which objects sound in its clip?

For each graph store given, a linear classifier (one logit per class, trained with binary
cross-entropy on the train split, features standardised) reads one node per example and names one
class; we count how often that class is one of the clip's sounding objects on the val and test
splits, beside always guessing the most frequent training class.

- ``principal``: each principal node, against its own object's class.
- ``background``: each clip's background node, against the clip's sounding classes.

Then, with the probe trained on the train split's principal nodes, the clips in which some context
node shows (probability >= 0.5) a class that does not sound in the clip: there a graph's node
features alone do not say which of its objects sounds (``docs/results.md``).

Usage::

    uv run python benchmarks/feature_probe.py                       # the default graph store
    uv run python benchmarks/feature_probe.py data/graphs/graphs.h5 other.h5

Figures: docs/results.md (why the ``frame`` baseline learned nothing).
"""

from __future__ import annotations

import sys
from collections.abc import Callable

import numpy as np
import torch

from pipeline.errors import PipelineError
from pipeline.graphs.roles import Role
from pipeline.graphs.store import GraphStore


def examples(store: GraphStore, role: str) -> tuple[np.ndarray, list[list[int]], np.ndarray]:
    """Features, target classes and split of each example (see the module docstring)."""
    want = Role[role.upper()]  # the role code the graphs stage writes
    feats, targets, splits = [], [], []
    for clip, split in zip(store.clip_ids, store.splits, strict=True):
        g = store.read(clip)
        nodes = np.flatnonzero(g["role"] == want)
        if role == "principal":
            for i in nodes:
                feats.append(g["x"][i])
                targets.append([int(g["label"][g["slot"][i]])])
                splits.append(split)
        elif len(nodes):
            feats.append(g["x"][nodes[0]])
            targets.append([int(v) for v in g["label"] if v >= 0])
            splits.append(split)
    return np.array(feats, dtype=np.float32), targets, np.array(splits)


def fit(
    store: GraphStore, role: str, steps: int = 500
) -> tuple[Callable, np.ndarray, torch.Tensor, np.ndarray]:
    """The probe (raw features to class logits; a linear map of standardised features trained on
    the train split) and the examples' features, multi-hot targets and splits."""
    x, targets, split = examples(store, role)
    n_cls = len(store.label_names)
    y = np.zeros((len(targets), n_cls), np.float32)
    for i, t in enumerate(targets):
        y[i, t] = 1
    train = split == "train"
    mu, sd = x[train].mean(0), x[train].std(0) + 1e-6
    xs, ys = torch.tensor((x - mu) / sd), torch.tensor(y)
    tr = torch.tensor(train)
    torch.manual_seed(0)
    lin = torch.nn.Linear(x.shape[1], n_cls)
    opt = torch.optim.Adam(lin.parameters(), 1e-2, weight_decay=1e-3)
    for _ in range(steps):
        opt.zero_grad()
        torch.nn.functional.binary_cross_entropy_with_logits(lin(xs[tr]), ys[tr]).backward()
        opt.step()

    def logits(features: np.ndarray) -> torch.Tensor:
        with torch.no_grad():
            return lin(torch.tensor((np.asarray(features, np.float32) - mu) / sd))

    return logits, x, ys, split


def probe(store: GraphStore, role: str, steps: int = 500) -> tuple[float, float, int]:
    """(hit rate of the probe, hit rate of the majority class, held-out examples)."""
    logits, x, ys, split = fit(store, role, steps)
    held = split != "train"
    tr, te = torch.tensor(~held), torch.tensor(held)
    pick = logits(x[held]).argmax(1)
    hit = ys[te][torch.arange(int(te.sum())), pick].mean().item()
    majority = ys[te][:, int(ys[tr].mean(0).argmax())].mean().item()
    return hit, majority, int(te.sum())


def silent_context(store: GraphStore) -> dict[str, tuple[int, int]]:
    """Per split: (clips, clips with a context node that the principal-node probe names as a
    class not sounding in the clip)."""
    logits = fit(store, "principal")[0]
    context = Role.CONTEXT
    counts: dict[str, list[int]] = {}
    for clip, split in zip(store.clip_ids, store.splits, strict=True):
        g = store.read(clip)
        sounding = {int(v) for v in g["label"] if v >= 0}
        nodes = np.flatnonzero(g["role"] == context)
        shown = set()
        if len(nodes):
            p = torch.sigmoid(logits(g["x"][nodes]))
            shown = {int(c) for c in p.argmax(1)[p.max(1).values >= 0.5]}
        c = counts.setdefault(split, [0, 0])
        c[0] += 1
        c[1] += bool(shown - sounding)
    return {k: (v[0], v[1]) for k, v in counts.items()}


def main(paths: list[str]) -> None:
    for path in paths or ["data/graphs/graphs.h5"]:
        store = GraphStore(path)
        background = store.attrs.get("background", "")
        for role in ("principal", "background"):
            hit, majority, n = probe(store, role)
            print(
                f"{path} {role} node{f' ({background})' if role == 'background' else ''}: "
                f"the probe's class sounds in {hit:.2f} of {n} held-out examples "
                f"(majority class: {majority:.2f})"
            )
        for split, (n, silent) in silent_context(store).items():
            print(
                f"{path} {split}: {silent} of {n} clips have a context node showing a class "
                "that does not sound in the clip"
            )


if __name__ == "__main__":
    try:
        main(sys.argv[1:])
    except PipelineError as err:  # a missing or foreign store: one line naming it
        sys.exit(f"feature_probe: {err}")
