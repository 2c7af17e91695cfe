"""ASMP: the direction head, its windows and masking, and a few joint training steps."""

import numpy as np
import pytest
import torch

from pipeline.graphs.store import GraphStore
from pipeline.separation.data import MixtureDataset, collate
from pipeline.separation.model import ModelParams, build_separator, model_config
from pipeline.separation.nn import DirectionHead
from pipeline.separation.spectrogram import SpecConfig
from pipeline.separation.step import RECIPES, compute_losses
from tests.separation.conftest import make_stores, with_directions


@pytest.fixture(scope="module")
def labelled(tmp_path_factory):
    """The tiny tone stores, each real slot labelled with a direction per 1 s window (slot 0 of
    clip i: class 1 + i % 4 in the 10-class scheme, 1 + i % 26 in the 28-class one; slot 1 has
    no label in its first windows)."""
    root = tmp_path_factory.mktemp("asmp")
    graphs_path, audio_path = make_stores(root)

    def label(i, slots):
        d10, d28 = np.full((slots, 6), -1, np.int8), np.full((slots, 6), -1, np.int8)
        d10[0], d28[0] = 1 + i % 4, 1 + i % 26
        if slots > 1:
            d10[1, 3:], d28[1, 3:] = 5, 7
        return d10, d28

    return with_directions(graphs_path, graphs_path, 6, label), audio_path


def _model(graphs, directions=28, **options):
    params = ModelParams.of("asmp", "tiny", directions=directions, **options)
    config = model_config(params, "reference", graphs.attrs["feature_dim"], 4, 2)
    torch.manual_seed(0)
    return build_separator("asmp", config)


def _batch(graphs, audio_path, n=2):
    from pipeline.separation.audio_store import AudioStore

    data = MixtureDataset(
        graphs, AudioStore(audio_path), graphs.ids("train"), SpecConfig().samples, (0, 0), n
    )
    return collate([data[k] for k in range(n)])


def test_direction_head_shapes():
    head = DirectionHead(28, "small", 4)
    assert head(torch.rand(5, 1, 256, 43)).shape == (5, 28)
    assert DirectionHead(10, "resnet18")(torch.rand(2, 1, 64, 43)).shape == (2, 10)


def test_each_real_labelled_slot_gets_one_window_inside_its_crop(labelled):
    graphs = GraphStore(labelled[0])
    batch = _batch(graphs, labelled[1])
    model = _model(graphs).eval()
    cfg = SpecConfig()
    per_s = cfg.sample_rate / cfg.hop
    start_s = batch["starts"].reshape(-1).double() / cfg.sample_rate
    out = model(
        torch.rand(2, 1, 256, cfg.frames), batch["graphs"], batch["mixture"],
        windows={"start_s": start_s, "frames_per_s": per_s},
    )  # fmt: skip
    labels = batch["graphs"].direction28  # (4 videos, 2 slots, 6 windows)
    want = []
    for g, start in enumerate(start_s.tolist()):
        for s in range(2):
            for w in range(6):
                c0 = round((w - start) * per_s)
                if labels[g, s, w] >= 0 and c0 >= 0 and c0 + round(per_s) <= cfg.frames:
                    want.append(int(labels[g, s, w]))
                    break
    assert out["direction_targets"].tolist() == want and len(want) >= 4
    assert out["direction_logits"].shape == (len(want), 28)
    assert -1 not in want and 27 not in want  # unknown windows and the filler: never targets


def test_a_few_joint_steps_learn_the_directions(labelled):
    graphs = GraphStore(labelled[0])
    batch = _batch(graphs, labelled[1])
    model = _model(graphs, directions=10, direction_weight=1.0)
    assert {"direction"} <= {n.split(".")[0] for n, _ in model.named_parameters()}
    groups = model.param_groups()
    head = {id(p) for p in model.direction.parameters()}
    assert head <= {id(p) for p in groups["classifier"]}
    assert not head & {id(p) for p in groups["visual"]}
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    first = last = None
    for _ in range(12):
        out = compute_losses(model, batch, RECIPES["reference"], SpecConfig())
        opt.zero_grad()
        out["loss"].backward()
        opt.step()
        first = first if first is not None else float(out["direction"])
        last = float(out["direction"])
    assert last < 0.7 * first
    # the weight 0 ablation: the term is reported and adds nothing
    still = _model(graphs, direction_weight=0.0)
    out = compute_losses(still, batch, RECIPES["reference"], SpecConfig())
    rest = out["consistency"] * 0.05 + out["coseparation"] + out["orthogonality"]
    torch.testing.assert_close(out["loss"], rest)
    assert float(out["direction"]) > 0
    # a checkpoint's recorded arguments rebuild it
    again = build_separator("asmp", model.config)
    assert again.directions == 10 and again.direction_weight == 1.0


def test_asmp_needs_labels_in_the_graph_store(tmp_path):
    graphs_path, audio_path = make_stores(tmp_path)
    graphs = GraphStore(graphs_path)
    batch = _batch(graphs, audio_path)
    with pytest.raises(ValueError, match="graphs.motion.labels"):
        compute_losses(_model(graphs), batch, RECIPES["reference"], SpecConfig())
