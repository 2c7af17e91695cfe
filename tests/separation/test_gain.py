"""``train.gain``: each training clip scaled by a random gain before mixing (the released code's
audio augmentation), drawn per item so a run stays reproducible and resumable."""

import dataclasses

import numpy as np
import pytest
import torch

from pipeline.graphs.store import GraphStore
from pipeline.params import ParamsError, parse
from pipeline.separation.audio_store import AudioStore
from pipeline.separation.data import MixtureDataset, validation_pairs
from pipeline.separation.train import TrainParams
from tests.separation.test_train import PARAMS, _run, _weights


def _datasets(stores, gain):
    graphs, audio = GraphStore(stores[0]), AudioStore(stores[1])
    ids = graphs.ids("train")
    return (
        MixtureDataset(graphs, audio, ids, 1000, (0, 0), 20),
        MixtureDataset(graphs, audio, ids, 1000, (0, 0), 20, gain),
    )


def test_a_gain_range_scales_each_window_and_changes_nothing_else(stores):
    plain, scaled = _datasets(stores, (0.5, 1.5))
    gains = []
    for k in range(20):
        p, s = plain.pair(k), scaled.pair(k)
        assert "gains" not in p  # at its default the items are the clips' own levels
        assert s["clip_ids"] == p["clip_ids"] and s["starts"] == p["starts"]
        assert s == scaled.pair(k)  # keyed by the item, like the pair and the starts
        assert all(0.5 <= g <= 1.5 for g in s["gains"])
        gains += s["gains"]
        a, b = plain[k]["wav"].numpy(), scaled[k]["wav"].numpy()
        np.testing.assert_allclose(b, a * np.asarray(s["gains"], np.float32)[:, None], rtol=1e-6)
    assert np.std(gains) > 0.2  # drawn, not a constant (uniform on [0.5, 1.5]: 0.29)
    # a range of one value scales by that value
    _, fixed = _datasets(stores, (2.0, 2.0))
    np.testing.assert_allclose(fixed[3]["wav"].numpy(), 2 * plain[3]["wav"].numpy(), rtol=1e-6)


def test_validation_mixtures_are_never_scaled(stores):
    graphs, audio = GraphStore(stores[0]), AudioStore(stores[1])
    pairs = validation_pairs(graphs, audio, graphs.ids("val"), 3, 1000, 0)
    assert all(set(p) == {"clip_ids", "starts"} for p in pairs)


@pytest.mark.parametrize("gain", [(0.0, 1.0), (1.5, 0.5), (1.0,), (-1.0, 1.0)])
def test_a_bad_gain_range_is_refused(stores, gain):
    with pytest.raises(
        ValueError, match=r"gain must be a range \[low, high\] with 0 < low <= high"
    ):
        _datasets(stores, gain)
    section = {**dataclasses.asdict(PARAMS), "gain": list(gain)}
    with pytest.raises(
        ParamsError, match=r"params.yaml: train: gain must be a range \[low, high\]"
    ):
        parse(TrainParams, section, "train")


def test_a_gain_range_trains_other_weights_and_does_not_resume_a_state_without_it(stores, tmp_path):
    assert _run(stores, tmp_path, "plain", stop_after=2) is None
    # naming the default range is the same run: the state resumes
    same = dataclasses.replace(PARAMS, gain=(1.0, 1.0))
    assert _run(stores, tmp_path, "plain", params=same)["resumed_at_step"] == 2
    # a range is another run: it starts afresh and trains other weights
    scaled = dataclasses.replace(PARAMS, gain=(0.5, 1.5))
    (tmp_path / "scaled.state.pt").write_bytes((tmp_path / "plain.state.pt").read_bytes())
    assert _run(stores, tmp_path, "scaled", params=scaled)["resumed_at_step"] == 0
    a, b = _weights(tmp_path / "plain.state.pt"), _weights(tmp_path / "scaled.state.pt")
    assert not torch.equal(a["unet.up.6.1.weight"], b["unet.up.6.1.weight"])
