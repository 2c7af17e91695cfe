"""benchmarks/synthetic_world.py's scenes probes on signals whose answers are known."""

import importlib.util

import numpy as np

from tests.conftest import REPO

spec = importlib.util.spec_from_file_location(
    "synthetic_world", REPO / "benchmarks" / "synthetic_world.py"
)
synthetic_world = importlib.util.module_from_spec(spec)
spec.loader.exec_module(synthetic_world)
SR = synthetic_world.SR


def test_level_features_see_a_source_approach_and_recede():
    rng = np.random.default_rng(0)
    noise = rng.standard_normal(3 * SR).astype(np.float32) * 0.1
    gain = np.concatenate([np.full(SR, 0.5), np.linspace(0.5, 1.0, SR), np.linspace(1.0, 0.5, SR)])
    f = synthetic_world.level_features((noise * gain).astype(np.float32), 3)
    assert abs(f[0, 0]) < 1.0 and abs(f[0, 1]) < 1.0  # steady: about 0 dB/s
    assert f[1, 0] > 4 and f[2, 0] < -4  # 1 / z from 2 to 1: +6 dB over the second
    assert f[1, 1] > 2 and f[2, 1] < -2  # second half against first half
    assert f[1, 2] > 4 and f[2, 2] < -4  # end against start


def test_fit_score_beats_the_majority_only_where_the_features_carry_the_label():
    rng = np.random.default_rng(0)
    y = rng.choice(["a", "b", "c"], 300)
    informative = np.eye(3)[np.searchsorted(["a", "b", "c"], y)] + 0.1 * rng.standard_normal(
        (300, 3)
    )
    train = np.arange(300) < 200
    acc, majority = synthetic_world.fit_score(informative, y, train)
    assert acc > 0.95 and majority < 0.5
    acc, _ = synthetic_world.fit_score(rng.standard_normal((300, 3)), y, train)
    assert acc < 0.5
    skewed = np.where(np.arange(300) % 5 == 0, "rare", "common")  # always "common": recall 0.5
    recall, majority = synthetic_world.fit_score(rng.standard_normal((300, 3)), skewed, train, True)
    assert majority == 0.8 and recall < 0.7
