"""Tiny graph and audio stores for separator tests: 8 train and 2 val clips of tones."""

import numpy as np
import pytest
import soundfile as sf

from pipeline.graphs.store import write_store
from pipeline.separation.audio_store import pack_audio

RATE = 11025
FREQS = [220.0, 660.0, 1500.0]  # one tone per class


def make_stores(root, n_train=8, n_val=2, dim=8, seconds=6.5, n_test=0, silent=()):
    """Graph and audio stores of tone clips; clip ``i`` sounds class ``i % 3`` (odd ``i``) or
    classes ``i % 3`` and ``(i + 1) % 3`` (even ``i``); ``root/stems/<clip>.wav`` holds one channel
    per tone; clips in ``silent`` are all zeros."""
    rng = np.random.default_rng(0)
    graphs, wavs = [], {}
    (root / "stems").mkdir(exist_ok=True)
    t = np.arange(int(seconds * RATE)) / RATE
    for i in range(n_train + n_val + n_test):
        cid = f"clip{i:02d}"
        label = [i % 3] if i % 2 else [i % 3, (i + 1) % 3]
        n = len(label) + 1 + i % 3
        role = np.array([0] * len(label) + [1] * (i % 3) + [2], np.int8)
        x = rng.normal(size=(n, dim)).astype(np.float16)
        x[: len(label), : len(label)] += 3 * np.eye(len(label))[:, : len(label)]
        graphs.append(
            {
                "clip_id": cid,
                "split": "train" if i < n_train else "val" if i < n_train + n_val else "test",
                "label": label,
                "x": x,
                "box": np.zeros((n, 4), np.float32),
                "frame": np.zeros(n, np.int16),
                "time": np.zeros(n, np.float32),
                "score": np.ones(n, np.float32),
                "role": role,
                "slot": np.array(list(range(len(label))) + [0] * (i % 3) + [-1], np.int8),
            }
        )
        tones = np.stack([0.3 * np.sin(2 * np.pi * FREQS[c] * t + i) for c in label], 1)
        if cid in silent:
            tones[:] = 0
        sf.write(root / "stems" / f"{cid}.wav", tones.astype(np.float32), RATE, subtype="FLOAT")
        wave = tones.sum(1)
        path = root / f"{cid}.wav"
        sf.write(path, (wave * 32767 / max(1.0, np.abs(wave).max())).astype(np.int16), RATE)
        wavs[cid] = path
    write_store(
        root / "graphs.h5",
        graphs,
        [],
        {"label_names": ["a", "b", "c"], "features": {"kind": "box_head", "dim": dim}},
        dim,
        2,
    )
    pack_audio(wavs, root / "audio.h5", RATE)
    return root / "graphs.h5", root / "audio.h5"


def with_directions(graphs_path, out, windows, label):
    """A copy of a tone graph store at ``out`` with motion labels: ``label(i, slots)`` gives clip
    ``i``'s ``direction10`` and ``direction28`` ``(slots, windows)`` (-1: unknown)."""
    from pipeline.graphs.store import GraphStore

    store = GraphStore(graphs_path)
    graphs = []
    for cid in store.clip_ids:
        g = store.read(cid)
        slots = int((g["label"] >= 0).sum())
        d10, d28 = label(int(cid[-2:]), slots)
        graphs.append(
            {**{k: g[k] for k in ("x", "box", "frame", "time", "score", "role", "slot")},
             "clip_id": cid, "split": store.splits[store.index[cid]],
             "label": [int(v) for v in g["label"] if v >= 0],
             "displacement": np.zeros((slots, windows, 3), np.float32),
             "direction10": d10, "direction28": d28}
        )  # fmt: skip
    attrs = {k: store.attrs[k] for k in ("label_names", "features")}
    write_store(out, graphs, [], attrs, store.attrs["feature_dim"], 2)
    return out


@pytest.fixture(scope="session")
def stores(tmp_path_factory):
    return make_stores(tmp_path_factory.mktemp("sep"))
