"""Mix-and-separate data: seeded pairs of clips, their audio windows and their scene graphs.

Sample ``k`` of a run is drawn from a generator seeded by ``(seed, k)`` alone, so the data of a
step does not depend on the number of loader workers or processes, and a resumed run sees exactly
the samples an uninterrupted one would.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from pipeline.graphs.store import GraphStore
from pipeline.separation.audio_store import AudioStore


def clip_labels(graphs: GraphStore, clip_ids: list[str]) -> dict[str, frozenset[int]]:
    """Each clip's set of slot labels."""
    return {
        c: frozenset(int(v) for v in graphs.labels[graphs.index[c]] if v >= 0) for c in clip_ids
    }


def draw_pair(
    rng: np.random.Generator,
    clip_ids: list[str],
    labels: dict[str, frozenset[int]],
    tries: int = 100,
) -> tuple[str, str]:
    """Two different clips, with no label in common when such a partner turns up within ``tries``
    draws (otherwise any other clip)."""
    a = clip_ids[int(rng.integers(len(clip_ids)))]
    b = a
    for _ in range(tries):
        b = clip_ids[int(rng.integers(len(clip_ids)))]
        if b != a and not labels[a] & labels[b]:
            return a, b
    while b == a and len(clip_ids) > 1:
        b = clip_ids[int(rng.integers(len(clip_ids)))]
    return a, b


def draw_start(rng: np.random.Generator, n_samples: int, window: int) -> int:
    return int(rng.integers(0, max(1, n_samples - window + 1)))


class MixtureDataset(torch.utils.data.Dataset):
    """Item ``k``: two clips' audio windows ``wav (2, window)`` and their graphs.

    Args:
        graphs, audio: the stores.
        clip_ids: the clips to draw from (one split), each with a graph and audio.
        window: samples per clip window.
        seed: with ``k``, seeds everything about item ``k`` (a tuple: training and validation
            draw from different streams, ``(base.seed, 0)`` and ``(base.seed, 1)``).
        length: items (steps x batch size).
    """

    def __init__(
        self,
        graphs: GraphStore,
        audio: AudioStore,
        clip_ids: list[str],
        window: int,
        seed: tuple[int, ...],
        length: int,
    ):
        missing = [c for c in clip_ids if c not in audio]
        if missing:
            raise ValueError(
                f"{len(missing)} clips have a graph but no audio (first: {missing[0]})"
            )
        if len(clip_ids) < 2:
            raise ValueError(f"mix-and-separate needs at least 2 clips, got {len(clip_ids)}")
        self.graphs, self.audio = graphs, audio
        self.clip_ids = sorted(clip_ids)
        self.labels = clip_labels(graphs, self.clip_ids)
        self.window, self.seed, self.length = window, seed, length

    def __len__(self) -> int:
        return self.length

    def pair(self, k: int) -> dict[str, Any]:
        """Item ``k``'s clips and window starts (no audio read)."""
        rng = np.random.default_rng([*self.seed, k])
        a, b = draw_pair(rng, self.clip_ids, self.labels)
        starts = [draw_start(rng, self.audio.length(c), self.window) for c in (a, b)]
        return {"clip_ids": [a, b], "starts": starts}

    def __getitem__(self, k: int) -> dict[str, Any]:
        return load_item(self.graphs, self.audio, self.pair(k), self.window)


def load_item(
    graphs: GraphStore, audio: AudioStore, pair: dict[str, Any], window: int
) -> dict[str, Any]:
    """Audio ``wav (2, window)`` and graphs of a pair ``{"clip_ids", "starts"}``."""
    wav = np.stack(
        [audio.read(c, s, window) for c, s in zip(pair["clip_ids"], pair["starts"], strict=True)]
    )
    return {
        "wav": torch.from_numpy(wav),
        "graphs": [graphs.data(c) for c in pair["clip_ids"]],
        "clip_ids": pair["clip_ids"],
        "starts": torch.tensor(pair["starts"], dtype=torch.int64),
    }


def collate(items: list[dict[str, Any]]) -> dict[str, Any]:
    """``wav (B, 2, window)``; ``graphs`` a PyG batch of the ``2B`` videos in mixture order;
    ``mixture (2B,)`` the mixture of each video; ``starts (B, 2)`` each window's first sample in
    its clip."""
    from torch_geometric.data import Batch

    return {
        "wav": torch.stack([it["wav"] for it in items]),
        "graphs": Batch.from_data_list([g for it in items for g in it["graphs"]]),
        "mixture": torch.arange(len(items), device="cpu").repeat_interleave(2),
        "clip_ids": [it["clip_ids"] for it in items],
        "starts": torch.stack([it["starts"] for it in items]),
    }


def validation_pairs(
    graphs: GraphStore, audio: AudioStore, clip_ids: list[str], n: int, window: int, seed: int
) -> list[dict[str, Any]]:
    """A fixed list of ``n`` validation mixtures (pairs and window starts), seeded; the same
    inputs give the same list."""
    data = MixtureDataset(graphs, audio, clip_ids, window, (seed, 1), n)
    return [data.pair(k) for k in range(n)]
