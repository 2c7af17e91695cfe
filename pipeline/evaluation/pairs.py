"""The fixed, seeded list of test pairs: two test clips with no principal-object class in common.

All such pairs are enumerated in sorted order and ``n`` are drawn without replacement from a
generator seeded by ``base.seed``, so the same clips and seed give the same list on any machine.
The list is written as a DVC output, so every reported number names the pairs it was measured on.
"""

from __future__ import annotations

import itertools
from typing import Any

import numpy as np


def test_pairs(labels: dict[str, list[str]], n: int, seed: int) -> list[dict[str, Any]]:
    """``n`` pairs (fewer if fewer exist) of clips whose label sets are disjoint.

    Args:
        labels: clip id -> its principal objects (the clips to draw from).
        n: pairs wanted.
        seed: the generator's seed.

    Returns:
        ``[{"pair": i, "clip_ids": [a, b], "labels": [[...], [...]]}, ...]`` in draw order.
    """
    ids = sorted(labels)
    candidates = [
        (a, b) for a, b in itertools.combinations(ids, 2) if not set(labels[a]) & set(labels[b])
    ]
    rng = np.random.default_rng([seed, 2])  # stream 2: training uses 0, validation 1
    take = rng.choice(len(candidates), size=min(n, len(candidates)), replace=False)
    return [
        {"pair": i, "clip_ids": list(candidates[k]), "labels": [labels[c] for c in candidates[k]]}
        for i, k in enumerate(take.tolist())
    ]
