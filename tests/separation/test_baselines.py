"""The baselines (co-separation, frame, audio-only): shapes, what conditions each mask, the
permutation-invariant loss and scoring, and a few real training steps through the train stage."""

import dataclasses

import numpy as np
import pytest
import torch
from torch_geometric.data import Batch, Data

from pipeline.evaluation.run import EvaluateParams, evaluate_all
from pipeline.graphs.store import complete_edges
from pipeline.separation import losses
from pipeline.separation.base import principal_features
from pipeline.separation.baselines import (
    AudioOnly,
    CoSeparation,
    FrameConditioned,
    position_in_mixture,
)
from pipeline.separation.bss import bss_eval
from pipeline.separation.model import (
    SEPARATORS,
    ModelParams,
    build_separator,
    load_separator,
    model_config,
)
from pipeline.separation.sobb import SoundOfBoundingBoxes, mixture_softmax
from pipeline.separation.train import train
from tests.separation.conftest import make_stores
from tests.separation.test_train import PARAMS

TINY = dict(hidden=8, channels=8, ngf=4)


def graphs(dim=6):
    """Three graphs: two objects + context + background; one object + background; one object,
    two context nodes and the background. Node features are distinct integers."""
    torch.manual_seed(0)
    layouts = [([0, 0, 1, 2], [0, 1, 0, -1], [0, 1]), ([0, 2], [0, -1], [2, -1])]
    layouts.append(([1, 0, 1, 2], [0, 0, 0, -1], [1, -1]))
    data, start = [], 0
    for role, slot, y in layouts:
        n = len(role)
        x = torch.arange(start, start + n, dtype=torch.float32)[:, None].repeat(1, dim)
        start += n
        data.append(
            Data(
                x=x,
                edge_index=complete_edges(n),
                role=torch.tensor(role),
                slot=torch.tensor(slot),
                y=torch.tensor([y]),
                num_nodes=n,
            )
        )
    return Batch.from_data_list(data)


def test_principal_features_are_placed_by_slot():
    feats, present = principal_features(graphs(), 2)
    assert present.tolist() == [[True, True], [True, False], [True, False]]
    # graph 0: nodes 0, 1 are slots 0, 1; graph 1: node 4; graph 2: node 7 (after a context node)
    assert feats[:, :, 0].tolist() == [[0.0, 1.0], [4.0, 0.0], [7.0, 0.0]]


def test_positions_in_mixture():
    assert position_in_mixture(torch.tensor([0, 0, 1, 1, 2])).tolist() == [0, 1, 0, 1, 0]


@pytest.mark.parametrize("cls, outputs", [(CoSeparation, 3), (FrameConditioned, 1), (AudioOnly, 1)])
def test_shapes(cls, outputs):
    config = {"node_channels": 6, "n_classes": 4, "n_slots": 2, **TINY, "classifier": "small"}
    config["classifier_width"] = 4
    model = cls(**{k: v for k, v in config.items() if k in model_config_keys(cls)})
    mix = torch.rand(2, 1, 128, 128)
    g = graphs()
    out = model(mix, g, torch.tensor([0, 0, 1]), classify=model.classifier is not None)
    assert out["masks"].shape == (3, outputs, 1, 128, 128)
    assert ((out["masks"] >= 0) & (out["masks"] <= 1)).all()
    assert out["embeddings"].shape == (3, outputs, 8)
    if model.classifier is not None:
        assert out["class_logits"].shape == (3, outputs, 4)
    groups = model.param_groups()
    assert sum(len(v) for v in groups.values()) == len(list(model.parameters()))


def model_config_keys(cls):
    import inspect

    return inspect.signature(cls).parameters


def test_what_conditions_each_mask():
    g = graphs()
    cosep = CoSeparation(6, 4, 2, **TINY, classifier="small", classifier_width=4)
    y = cosep.embed(g, torch.tensor([0, 0, 1]))
    # an empty slot gets the learned embedding; the last output the background node's
    torch.testing.assert_close(y[1, 1], cosep.empty.detach() + 0 * y[1, 1])
    torch.testing.assert_close(y[0, 2], cosep.project(g.x[3]))
    torch.testing.assert_close(y[2, 0], cosep.project(g.x[7]))  # the principal, not context
    frame = FrameConditioned(6, **TINY)
    torch.testing.assert_close(frame.embed(g, None)[:, 0], frame.project(g.x[[3, 5, 9]]))
    audio = AudioOnly(**{k: v for k, v in TINY.items() if k != "hidden"})
    y = audio.embed(None, torch.tensor([0, 0, 1, 1]))
    torch.testing.assert_close(y[:, 0], audio.slots.detach()[[0, 1, 0, 1]] + 0 * y[:, 0])
    with pytest.raises(ValueError, match="at most 2 videos"):
        audio.embed(None, torch.tensor([0, 0, 0]))


def test_frame_on_pixels_learns_from_the_background_nodes_crop_alone():
    g = graphs(dim=3 * 4 * 4)  # the proposals backend: each node is a 3 x 4 x 4 RGB crop
    config = model_config(ModelParams.of("frame", "tiny"), "reference", 48, 4, 2, 4)
    assert config["crop_size"] == 4
    torch.manual_seed(0)
    frame = build_separator("frame", config)
    out = frame(torch.rand(2, 1, 128, 128), g, torch.tensor([0, 0, 1]))
    assert out["masks"].shape == (3, 1, 1, 128, 128) and out["embeddings"].shape == (3, 1, 8)
    frame.eval()
    y = frame.embed(g, None)
    torch.testing.assert_close(y[:, 0], frame.project.net(g.x[[3, 5, 9]].view(3, 3, 4, 4)))
    other = g.clone()
    other.x = other.x.clone()
    other.x[[0, 1, 2]] += 1.0  # objects and context of graph 0: no effect
    torch.testing.assert_close(frame.embed(other, None), y)
    other.x[3] += 1.0  # its background crop: a different embedding
    assert not torch.allclose(frame.embed(other, None)[0], y[0])
    (out["masks"].sum()).backward()
    assert frame.project.net[0].weight.grad.abs().sum() > 0  # the CNN learns
    with pytest.raises(ValueError, match="crop_size 4 needs node features of 3 x 4"):
        FrameConditioned(6, **TINY, crop_size=4)


def test_permutation_invariant_coseparation_takes_the_better_assignment():
    torch.manual_seed(0)
    masks = torch.rand(4, 1, 1, 8, 8)
    target = torch.rand(4, 1, 8, 8)
    mix = torch.rand(4, 1, 8, 8)
    swapped = target.view(2, 2, 1, 8, 8).flip(1).flatten(0, 1)
    loss = losses.coseparation_pit(masks, target, mix)
    torch.testing.assert_close(loss, losses.coseparation_pit(masks, swapped, mix))
    w = torch.log1p(mix).clamp(1e-3, 10)
    direct = (w * (masks.sum(1) - target).abs()).flatten(1).mean(1).view(2, 2).mean(1)
    crossed = (w * (masks.sum(1) - swapped).abs()).flatten(1).mean(1).view(2, 2).mean(1)
    torch.testing.assert_close(loss, torch.minimum(direct, crossed).mean())


def test_permuted_scoring_finds_swapped_estimates():
    rng = np.random.default_rng(0)
    refs = rng.normal(size=(2, 8000))
    ests = refs[::-1] + 0.01 * rng.normal(size=(2, 8000))
    fixed = bss_eval(refs, ests)
    best = bss_eval(refs, ests, permute=True)
    assert best["order"].tolist() == [1, 0]
    assert best["sdr"].min() > 30 > fixed["sdr"].max()


def test_unknown_separator_is_refused():
    with pytest.raises(Exception, match="not a separator"):
        ModelParams.of("nope", "tiny")
    assert set(SEPARATORS) == {"avsgs", "asmp", "coseparation", "frame", "audio_only", "sobb"}


@pytest.fixture(scope="module")
def stores(tmp_path_factory):
    return make_stores(tmp_path_factory.mktemp("baselines"), n_train=6, n_test=4, seconds=7.0)


@pytest.mark.parametrize("name", ["coseparation", "frame", "audio_only", "sobb"])
def test_each_baseline_trains_and_is_scored_by_the_same_stages(name, stores, tmp_path):
    params = dataclasses.replace(PARAMS, recipe="reference")
    model = ModelParams.of(name, "tiny")
    metrics = train(
        stores[0],
        stores[1],
        params,
        model,
        seed=0,
        sample_rate=11025,
        state_path=tmp_path / "state.pt",
        model_out=tmp_path / "model.pt",
    )
    assert metrics["steps"] == 4 and np.isfinite(metrics["val_sdr"])
    separator, meta = load_separator(tmp_path / "model.pt")
    assert separator.name == name and meta["step"] == metrics["best_step"]
    evaluated = evaluate_all(
        tmp_path / "model.pt",
        stores[0],
        stores[1],
        EvaluateParams(n_pairs=2, batch_size=4, within_clip=False, report_examples=1, threads=1),
        seed=0,
    )
    assert evaluated["metrics"]["n_pairs"] >= 1


@pytest.mark.parametrize("crop", [0, 4])
def test_sobb_selects_one_box_per_object_and_its_masks_share_the_mixture(crop):
    g = graphs(dim=3 * crop * crop if crop else 6)
    torch.manual_seed(0)
    model = SoundOfBoundingBoxes(g.x.shape[1], 2, **TINY, crop_size=crop)
    mix = torch.rand(2, 1, 128, 128)
    mixture = torch.tensor([0, 0, 1])
    out = model(mix, g, mixture)
    masks = out["masks"]
    assert masks.shape == (3, 2, 1, 128, 128) and out["embeddings"].shape == (3, 2, 8)
    # the softmax constraint: the present slots of a mixture's videos sum to 1, empty ones are 0
    torch.testing.assert_close(masks[0].sum(0) + masks[1, 0], torch.ones(1, 128, 128))
    assert (masks[1, 1] == 0).all() and (masks[2, 1] == 0).all()
    torch.testing.assert_close(masks[2, 0], torch.ones(1, 128, 128))
    # one candidate per slot among the graph's non-background nodes, never the same twice
    _, pick, present = model.select(g)
    assert present.tolist() == [[True, True], [True, False], [True, False]]
    assert pick.shape == (3, 2, 3)  # at most 3 candidates: the background node is none
    torch.testing.assert_close(pick.sum(-1), torch.ones(3, 2))
    assert pick[0, 0].argmax() != pick[0, 1].argmax()
    assert pick[1, :, 1:].sum() == 0  # graph 1 has one candidate: the padding is never picked
    # evaluation picks the arg-max; training samples, with the selector's gradient straight through
    model.eval()
    assert torch.equal(model.select(g)[1], model.select(g)[1])
    model.train()
    y, pick, _ = model.select(g)
    (y.sum() + pick.sum()).backward()
    assert model.selector[-1].weight.grad.abs().sum() > 0


def test_mixture_softmax_with_one_video_per_mixture():
    logits = torch.randn(2, 2, 1, 4, 4)
    masks = mixture_softmax(logits, torch.tensor([[True, True], [True, False]]), torch.arange(2))
    torch.testing.assert_close(masks[0].sum(0), torch.ones(1, 4, 4))
    torch.testing.assert_close(masks[1, 0], torch.ones(1, 4, 4))
