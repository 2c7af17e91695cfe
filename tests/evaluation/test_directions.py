"""Direction-of-motion accuracy: the labelled windows cut from separated audio, the probes, the
majority floor, and the evaluate stage's figures and report with motion labels."""

from types import SimpleNamespace

import numpy as np
import pytest
import torch

from pipeline import motion
from pipeline.evaluation.directions import (
    DirectionParams,
    Samples,
    accuracy,
    majority,
    predict,
    train_probe,
)
from pipeline.evaluation.report import write_report
from pipeline.evaluation.run import EvaluateParams, evaluate_all
from pipeline.graphs.store import GraphStore
from pipeline.separation.spectrogram import SpecConfig
from tests.separation.conftest import with_directions

CFG = SpecConfig()


def test_every_class_has_its_own_name():
    for scheme, n in ((10, 8), (28, 26)):
        names = [motion.direction_name(c, scheme) for c in range(scheme)]
        assert names[0] == "static" and names[-1] == "other"
        assert len(set(names[1:-1])) == n  # every direction told apart
        assert motion.direction_name(-1, scheme) == motion.direction_name(None, scheme) == "?"
    # the names follow the vectors: right is u > 0, down is v > 0, away is d > 0
    right = motion.direction_class(np.array([2.0, 0, 0]), 28)
    up_toward = motion.direction_class(np.array([0, -2.0, -1.0]), 28)
    assert motion.direction_name(int(right), 28) == "→"
    assert motion.direction_name(int(up_toward), 28) == "↑ toward"
    assert motion.direction_name(int(motion.direction_class(np.array([1.0, 1, 1]), 10)), 10) == (
        "↘ away"
    )


def _graphs(direction10, direction28):
    """A one-clip store's motion arrays, as :class:`GraphStore` holds them."""
    return SimpleNamespace(
        motion={"direction10": direction10[None], "direction28": direction28[None]},
        index={"c": 0},
    )


def test_labelled_windows_of_real_slots_inside_the_audio():
    d10 = np.array([[1, -1, 0, 2, 3, 4], [-1] * 6], np.int8)  # slot 1: no label at all
    d28 = np.array([[5, -1, 0, 9, 11, 13], [-1] * 6], np.int8)
    wav = np.random.default_rng(0).normal(size=(3, int(4.5 * CFG.sample_rate))).astype(np.float32)
    s = Samples()
    s.add(_graphs(d10, d28), "c", wav, CFG, tag=(7, 1))
    # windows 0, 2, 3 of slot 0 (1 has no label; 4 and 5 reach past 4.5 s)
    assert [k for k in s.keys] == [((7, 1), 0, 0), ((7, 1), 0, 2), ((7, 1), 0, 3)]
    assert s.targets[10] == [1, 0, 2] and s.targets[28] == [5, 0, 9]
    cols = round(CFG.sample_rate / CFG.hop)
    assert s.tensor().shape == (3, 1, CFG.log_bins, cols)
    # the window is the slot's own audio: a silent slot 0 gives the log's floor everywhere
    quiet = wav.copy()
    quiet[0] = 0
    q = Samples()
    q.add(_graphs(d10, d28), "c", quiet, CFG)
    assert q.keys[0][0] == "c" and float(q.tensor().std()) < 1e-4 < float(s.tensor().std())


def _toy(n, rng, tag):
    """Windows whose class is whether the level rises (1), falls (2) or holds (0)."""
    s = Samples()
    for i in range(n):
        c = int(rng.integers(3))
        ramp = {0: np.zeros(43), 1: np.linspace(-3, 3, 43), 2: np.linspace(3, -3, 43)}[c]
        spec = rng.normal(size=(1, CFG.log_bins, 43)) * 0.5 + ramp
        s.specs.append(torch.tensor(spec, dtype=torch.float32))
        for scheme in (10, 28):
            s.targets[scheme].append(c)
        s.keys.append((f"{tag}{i // 4}", 0, i % 4))
    return s


def test_a_probe_learns_what_the_windows_hold_and_the_majority_is_the_floor():
    rng = np.random.default_rng(0)
    train, test = _toy(240, rng, "a"), _toy(90, rng, "b")
    params = DirectionParams(train_pairs=1, steps=60, batch_size=32, lr=0.003)
    probe = train_probe(train, 28, params, seed=0, device="cpu")
    assert accuracy(predict(probe, test.tensor()), test.target(28)) > 0.9
    top, floor = majority(train, test, 28)
    assert top in (0, 1, 2) and floor == accuracy(torch.full((90,), top), test.target(28)) < 0.5


@pytest.fixture(scope="module")
def labelled_eval(trained, tmp_path_factory):
    """The evaluate fixture's stores with slot 0 of every clip labelled (clip i: class 1 + i % 2
    in both schemes)."""

    def label(i, slots):
        d10, d28 = np.full((slots, 7), -1, np.int8), np.full((slots, 7), -1, np.int8)
        d10[0], d28[0] = 1 + i % 2, 1 + i % 2
        return d10, d28

    out = tmp_path_factory.mktemp("direval") / "graphs.h5"
    return with_directions(trained / "graphs.h5", out, 7, label)


def test_evaluate_scores_directions_and_reports_them(trained, labelled_eval, tmp_path):
    params = EvaluateParams(
        n_pairs=6, batch_size=4, within_clip=False, report_examples=1, threads=1,
        direction=DirectionParams(train_pairs=3, steps=4, batch_size=8),
    )  # fmt: skip
    result = evaluate_all(trained / "model.pt", labelled_eval, trained / "audio.h5", params, seed=0)
    d = result["metrics"]["direction"]
    assert d["test_samples"] > 0 and d["train_samples"] > 0 and d["clean_test_samples"] > 0
    for scheme in ("10", "28"):
        assert d[scheme]["source"] == "probe"  # AVSGS has no direction network of its own
        assert 0 <= d[scheme]["accuracy"] <= 1 and 0 <= d[scheme]["clean"] <= 1
        assert d[scheme]["majority"] > 0 and 0 <= d[scheme]["clean_majority"] <= 1
    windows = result["examples"][0]["directions"]
    assert windows and {r["slot"] for r in windows} == {0}  # slot 1 has no label
    assert all(r["true28"] >= 1 and 0 <= r["pred28"] < 28 for r in windows)
    page = write_report(
        tmp_path / "report", result["metrics"], result["examples"], GraphStore(labelled_eval),
        None, None,
    )  # fmt: skip
    text = page.read_text()
    assert "Direction of motion" in text and "majority vote" in text
    assert motion.direction_name(windows[0]["true28"], 28) in text


def test_without_labels_there_is_no_direction_score(trained):
    params = EvaluateParams(
        n_pairs=2, batch_size=4, within_clip=False, report_examples=0, threads=1
    )
    result = evaluate_all(
        trained / "model.pt", trained / "graphs.h5", trained / "audio.h5", params, seed=0
    )
    assert "direction" not in result["metrics"]


@pytest.mark.parametrize("weight", [0.05, 0.0])
def test_asmp_is_scored_by_its_own_network_unless_it_never_learned(
    trained, labelled_eval, tmp_path, weight
):
    import dataclasses

    from pipeline.separation.model import ModelParams
    from pipeline.separation.train import train
    from tests.evaluation.conftest import TRAIN

    train(
        labelled_eval, trained / "audio.h5", dataclasses.replace(TRAIN, steps=1, val_every=1),
        ModelParams.of("asmp", "tiny", directions=10, direction_weight=weight), seed=0,
        sample_rate=11025, state_path=tmp_path / "state.pt", model_out=tmp_path / "model.pt",
        live_dir=tmp_path / "live",
    )  # fmt: skip
    params = EvaluateParams(
        n_pairs=3, batch_size=4, within_clip=False, report_examples=0, threads=1,
        direction=DirectionParams(train_pairs=2, steps=2, batch_size=8),
    )  # fmt: skip
    model = tmp_path / "model.pt"
    result = evaluate_all(model, labelled_eval, trained / "audio.h5", params, seed=0)
    d = result["metrics"]["direction"]
    assert d["10"]["source"] == ("head" if weight else "probe") and d["28"]["source"] == "probe"
