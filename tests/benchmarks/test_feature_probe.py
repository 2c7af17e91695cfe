"""benchmarks/feature_probe.py on a hand-made graph store whose answers are known."""

import importlib.util

import numpy as np

from pipeline.graphs.store import GraphStore, write_store
from tests.conftest import REPO

spec = importlib.util.spec_from_file_location(
    "feature_probe", REPO / "benchmarks" / "feature_probe.py"
)
feature_probe = importlib.util.module_from_spec(spec)
spec.loader.exec_module(feature_probe)

N_CLASSES = 3


def _graph(rng, clip, split, sounding, context=()):
    """Principal nodes of the sounding classes, context nodes of the given classes, a
    background node; a node's feature is its class one-hot plus a little noise."""
    classes = [*sounding, *context, None]
    x = np.stack(
        [
            (np.eye(N_CLASSES)[c] if c is not None else np.zeros(N_CLASSES))
            + 0.05 * rng.standard_normal(N_CLASSES)
            for c in classes
        ]
    )
    n = len(classes)
    role = [0] * len(sounding) + [1] * len(context) + [2]
    slot = list(range(len(sounding))) + [0] * len(context) + [-1]
    return {
        "clip_id": clip,
        "split": split,
        "label": list(sounding),
        "x": x,
        "box": np.zeros((n, 4)),
        "frame": np.zeros(n),
        "time": np.zeros(n),
        "score": np.ones(n),
        "role": role,
        "slot": slot,
    }


def test_silent_context_counts_clips_whose_context_shows_a_class_that_does_not_sound(tmp_path):
    rng = np.random.default_rng(0)  # the same noise on every run
    graphs = [_graph(rng, f"tr{i}", "train", [i % N_CLASSES]) for i in range(12)]
    graphs += [
        _graph(rng, "te0", "test", [0], context=[1]),  # a silent class beside the sounding one
        _graph(rng, "te1", "test", [1], context=[1]),  # a silent copy of the sounding class
        _graph(rng, "te2", "test", [2]),  # no context
        _graph(rng, "va0", "val", [0, 2], context=[2, 1]),
    ]
    path = tmp_path / "graphs.h5"
    write_store(
        path,
        graphs,
        [],
        {"label_names": ["a", "b", "c"], "features": {"kind": "box_head", "dim": N_CLASSES}},
        N_CLASSES,
        2,
    )
    store = GraphStore(path)
    counts = feature_probe.silent_context(store)
    assert counts == {"train": (12, 0), "test": (3, 1), "val": (1, 1)}
    hit, majority, n = feature_probe.probe(store, "principal")
    assert hit == 1.0 and n == 5 and majority < 1.0
