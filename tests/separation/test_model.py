"""Shapes through every module, the losses against brute force, spectrogram round trips."""

import itertools

import pytest
import torch
import torch.nn.functional as F
from torch_geometric.data import Batch, Data

from pipeline.graphs.store import complete_edges
from pipeline.separation import losses
from pipeline.separation.model import AVSGS, PRESETS, load_separator, save_separator
from pipeline.separation.nn import (
    AudioClassifier,
    ConditionedUNet,
    RecurrentConditioner,
    SceneGraphEncoder,
)
from pipeline.separation.nn.unet import _by_phases, _UpByPhases
from pipeline.separation.spectrogram import (
    SpecConfig,
    apply_mask,
    istft,
    log_freq_magnitude,
    stft,
    to_linear_freq,
    to_log_freq,
)

TINY = dict(hidden=8, channels=8, heads=2, ngf=4, classifier="small", classifier_width=4)


def graphs(sizes=(2, 3, 5), dim=6, n_slots=2):
    torch.manual_seed(0)
    data = []
    for n in sizes:
        y = torch.tensor([[0, -1 if n == 2 else 1]])[:, :n_slots]
        data.append(Data(x=torch.randn(n, dim), edge_index=complete_edges(n), y=y, num_nodes=n))
    return Batch.from_data_list(data)


@pytest.mark.parametrize(
    "kwargs",
    [
        {},
        {"aggr": "max", "readout": "sum", "normalize": False},  # the reference recipe
        {"gat": False},
        {"edgeconv": False},
        {"gru": False},
        {"skip": False},
    ],
)
def test_shapes_through_every_module(kwargs):
    g = graphs()
    model = AVSGS(6, n_classes=4, n_slots=2, **{**TINY, **kwargs})
    mix = torch.rand(2, 1, 128, 128)
    out = model(mix, g, torch.tensor([0, 0, 1]), classify=True)
    assert out["masks"].shape == (3, 3, 1, 128, 128)
    assert ((out["masks"] >= 0) & (out["masks"] <= 1)).all()
    assert out["embeddings"].shape == (3, 3, 8)
    assert out["class_logits"].shape == (3, 3, 4)
    if kwargs.get("normalize", True):
        torch.testing.assert_close(out["embeddings"].norm(dim=-1), torch.ones(3, 3))
    assert set(model.param_groups()) == {"visual", "separator", "classifier"}


def test_layers_one_by_one():
    g = graphs()
    enc = SceneGraphEncoder(6, hidden=8, edge_channels=8, heads=2)
    zeta = enc(g.x, g.edge_index, g.batch)
    assert zeta.shape == (3, 16)
    y = RecurrentConditioner(16, 8, n_outputs=3)(zeta)
    assert y.shape == (3, 3, 8)
    unet = ConditionedUNet(ngf=4, levels=7, cond_channels=8)
    maps = unet.encode(torch.rand(2, 1, 128, 128))
    assert [m.shape[-1] for m in maps] == [64, 32, 16, 8, 4, 2, 1]
    assert maps[-1].shape[1] == 32  # 8 * ngf at the bottleneck
    logits = unet.decode(maps, y.flatten(0, 1), torch.tensor([0, 0, 0, 0, 0, 0, 1, 1, 1]))
    assert logits.shape == (9, 1, 128, 128)
    with pytest.raises(ValueError, match=r"expects \(batch, 1, freq, time\)"):
        unet.encode(torch.rand(2, 128, 128))
    with pytest.raises(ValueError, match="multiples of 128"):
        unet.encode(torch.rand(2, 1, 100, 128))
    assert AudioClassifier(5, "small", 4)(torch.rand(3, 1, 64, 64)).shape == (3, 5)
    assert AudioClassifier(5, "resnet18")(torch.rand(2, 1, 64, 64)).shape == (2, 5)
    with pytest.raises(ValueError, match="multiple of heads"):
        SceneGraphEncoder(6, hidden=9, heads=2)


def test_the_gat_reads_edge_weights_and_edgeconv_does_not():
    g = graphs()
    weights = torch.rand(g.edge_index.shape[1], 1)
    torch.manual_seed(0)
    enc = SceneGraphEncoder(6, hidden=8, edge_channels=8, heads=2, edge_dim=1).eval()
    z = enc(g.x, g.edge_index, g.batch, weights)
    assert z.shape == (3, 16)
    assert not torch.allclose(z, enc(g.x, g.edge_index, g.batch, weights.flip(0)))
    # without the GAT nothing reads the weights: EdgeConv ignores them, as the released code
    no_gat = SceneGraphEncoder(6, hidden=8, edge_channels=8, heads=2, gat=False, edge_dim=1)
    torch.testing.assert_close(
        no_gat(g.x, g.edge_index, g.batch, weights),
        no_gat(g.x, g.edge_index, g.batch, weights.flip(0)),
    )
    with pytest.raises(ValueError, match="reads 1 edge attributes, the graphs have 0"):
        enc(g.x, g.edge_index, g.batch)
    # through the whole separator, trained end to end on weighted graphs
    g.edge_attr = weights
    model = AVSGS(6, n_classes=3, n_slots=2, edge_dim=1, **TINY)
    out = model(torch.rand(2, 1, 128, 128), g, torch.tensor([0, 0, 1]))
    out["masks"].mean().backward()
    assert model.encoder.gat.lin_edge.weight.grad.abs().sum() > 0


def decode_by_concatenation(unet, maps, cond, index):
    """The decoder as the paper draws it: every up-convolution reads the concatenation of its
    input and the encoder's map, gathered for each embedding."""
    inner = maps[-1].index_select(0, index)
    h = torch.cat([inner, cond[:, :, None, None].expand(-1, -1, *inner.shape[-2:])], 1)
    for k, layer in enumerate(unet.up):
        h = layer(h)
        level = unet.levels - 2 - k
        if unet.skip and level >= 0:
            h = torch.cat([h, maps[level].index_select(0, index)], 1)
    return h


def zero_in_exact_arithmetic(unet):
    """The biases of the convolutions right before a batch norm, which removes them: their
    gradients are zero but for rounding."""
    names = set()
    for name, module in unet.named_modules():
        if isinstance(module, torch.nn.Sequential):
            for i, (a, b) in enumerate(itertools.pairwise(module)):
                if isinstance(b, torch.nn.BatchNorm2d) and getattr(a, "bias", None) is not None:
                    names.add(f"{name}.{i}.bias")
    return names


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("skip", [True, False])
def test_the_decoder_convolves_each_mixtures_part_once_with_the_same_result(dtype, skip):
    torch.manual_seed(0)
    unet = ConditionedUNet(ngf=4, levels=7, cond_channels=8, skip=skip).to(dtype).train()
    mix = torch.rand(3, 1, 128, 128, dtype=dtype)
    cond = torch.randn(10, 8, dtype=dtype, requires_grad=True)
    index = torch.tensor([0, 0, 2, 1, 1, 1, 2, 0, 2, 2])  # uneven, unordered: any gather
    weight = torch.rand(10, 1, 128, 128, dtype=dtype)
    results = []
    for decode in (unet.decode, lambda m, c, i: decode_by_concatenation(unet, m, c, i)):
        unet.zero_grad()
        cond.grad = None
        out = decode(unet.encode(mix), cond, index)  # batch norm: the same batch statistics
        (out * weight).sum().backward()
        grads = {"output": out.detach(), "cond": cond.grad.clone()}
        results.append(grads | {n: p.grad.clone() for n, p in unet.named_parameters()})
    new, old = results
    # Sums in another order: equal to rounding, relative to each tensor's largest entry; the
    # gradients that are zero in exact arithmetic are rounding, small against the largest.
    rel, zero = (1e-9, 1e-12) if dtype == torch.float64 else (2e-4, 1e-3)
    noise = zero_in_exact_arithmetic(unet)
    scale = max(float(g.abs().max()) for g in old.values())
    assert noise
    for name in old.keys() - noise:
        assert (new[name] - old[name]).abs().max() <= rel * old[name].abs().max(), name
    for name in noise:
        assert new[name].abs().max() <= zero * scale, name


@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("shape", [(3, 5, 7, 4, 1), (2, 4, 6, 9, 8)])  # (B, in, H, W, out)
def test_an_up_convolution_by_phases_equals_the_transposed_convolution(shape, bias):
    b, cin, h, w, cout = shape
    torch.manual_seed(0)
    x = torch.randn(b, cin, h, w, dtype=torch.float64, requires_grad=True)
    weight = torch.randn(cin, cout, 4, 4, dtype=torch.float64, requires_grad=True)
    beta = torch.randn(cout, dtype=torch.float64, requires_grad=True) if bias else None
    grad = torch.randn(b, cout, 2 * h, 2 * w, dtype=torch.float64)
    results = []
    for up in (_UpByPhases.apply, lambda *a: F.conv_transpose2d(*a, stride=2, padding=1)):
        out = up(x, weight, beta)
        out.backward(grad)
        leaves = [x, weight] + ([beta] if bias else [])
        results.append([out.detach()] + [t.grad.clone() for t in leaves])
        for t in leaves:
            t.grad = None
    for new, old in zip(*results, strict=True):
        assert new.shape == old.shape
        assert (new - old).abs().max() <= 1e-12 * old.abs().max()


def test_the_decoder_takes_the_phase_route_only_where_it_pays():
    unet = ConditionedUNet(ngf=8, levels=7, cond_channels=8)
    routes = [_by_phases(layer[1], torch.zeros(1), layer[1].weight) for layer in unet.up]
    assert routes == [False] * 5 + [True, True]  # the layers to 8 and to 1 channel
    assert not _by_phases(unet.up[-1][1], torch.zeros(1, device="meta"), unet.up[-1][1].weight)


def test_a_single_graph_and_the_graph_encoder_is_permutation_invariant():
    enc = SceneGraphEncoder(6, hidden=8, edge_channels=8, heads=2).eval()
    g = graphs((4,))
    perm = torch.tensor([2, 0, 3, 1])
    z1 = enc(g.x, g.edge_index, g.batch)
    z2 = enc(g.x[perm], g.edge_index, g.batch)
    torch.testing.assert_close(z1, z2, atol=1e-5, rtol=1e-5)


def test_checkpoint_rebuilds_the_model(tmp_path):
    model = AVSGS(6, n_classes=4, n_slots=2, **TINY).eval()
    save_separator(tmp_path / "m.pt", model, {"label_names": ["a", "b", "c"]})
    again, meta = load_separator(tmp_path / "m.pt")
    assert meta["name"] == "avsgs" and meta["label_names"] == ["a", "b", "c"]
    assert meta["config"] == model.config
    g, mix = graphs(), torch.rand(2, 1, 128, 128)
    mixture = torch.tensor([0, 1, 1])
    torch.testing.assert_close(model(mix, g, mixture)["masks"], again(mix, g, mixture)["masks"])


def test_equal_weights_give_equal_checkpoint_bytes(tmp_path):
    """DVC compares md5s: a retrain that reproduces the weights must not rerun what follows."""
    model = AVSGS(6, n_classes=4, n_slots=2, **TINY)
    save_separator(tmp_path / "a.pt", model, {"label_names": ["a"]})
    save_separator(tmp_path / "other-name.pt", model, {"label_names": ["a"]})
    assert (tmp_path / "a.pt").read_bytes() == (tmp_path / "other-name.pt").read_bytes()


def test_presets_match_the_paper_sizes():
    paper = AVSGS(2048, n_classes=15, n_slots=2, **PRESETS["paper"])
    assert paper.unet.down[-1][1].out_channels == 512  # 2 x 2 x 512 bottleneck
    assert paper.conditioner.gru.hidden_size == 512
    assert paper.encoder.mlp[0].out_features == 512
    assert paper.encoder.gat.heads == 4


@pytest.mark.parametrize("n", [1, 2, 3])
def test_pit_equals_brute_force(n):
    torch.manual_seed(n)
    s, c, g = n + 1, 6, 5
    logits = torch.randn(g, s, c)
    targets = torch.randint(0, c, (g, s))
    got = losses.pit_cross_entropy(logits, targets, losses.permutations(s))
    logp = torch.log_softmax(logits, -1)
    for v in range(g):
        brute = min(
            -sum(logp[v, perm[k], targets[v, k]] for k in range(s))
            for perm in itertools.permutations(range(s))
        )
        torch.testing.assert_close(got[v], brute)
    fixed = losses.permutations(s, fix_last=True)
    assert len(fixed) == len(list(itertools.permutations(range(n)))) and (fixed[:, -1] == n).all()
    assert (losses.pit_cross_entropy(logits, targets, fixed) >= got - 1e-6).all()


def test_orthogonality_losses():
    y = torch.eye(4)[None, :3].repeat(2, 1, 1)  # 3 orthogonal embeddings per video
    assert losses.orthogonality_pairs(y) == 0
    assert losses.orthogonality_batch_cosine(y) == 0
    same = torch.ones(1, 3, 4) / 2  # unit vectors, all equal
    assert losses.orthogonality_pairs(same) == pytest.approx(6.0)  # 6 ordered pairs of cos 1
    assert losses.orthogonality_batch_cosine(same) == pytest.approx(1.0)


def test_coseparation_losses():
    masks = torch.full((2, 3, 1, 4, 4), 1 / 3)
    ibm = torch.ones(2, 1, 4, 4)
    assert losses.coseparation_binary(masks, ibm) == pytest.approx(0.0, abs=1e-6)
    assert losses.coseparation_binary(masks, 1 - ibm) == pytest.approx(1.0)
    assert losses.coseparation_ratio(masks, ibm, torch.zeros(2, 1, 4, 4)) == pytest.approx(
        0, abs=1e-6
    )


def test_spectrogram_geometry_and_round_trips():
    cfg = SpecConfig()
    wav = torch.randn(2, cfg.samples) * 0.1
    spec = stft(wav, cfg)
    assert spec.shape == (2, 512, 256) and cfg.frames == 256
    torch.testing.assert_close(istft(spec, cfg, cfg.samples), wav, atol=1e-5, rtol=1e-4)
    _, mag = log_freq_magnitude(wav, cfg)
    assert mag.shape == (2, 1, 256, 256)
    ones = torch.ones(2, 1, 256, 256)
    torch.testing.assert_close(to_linear_freq(ones, cfg), torch.ones(2, 1, 512, 256))
    torch.testing.assert_close(apply_mask(spec, ones, cfg, cfg.samples), wav, atol=1e-5, rtol=1e-4)
    # the log axis reads low bins densely: row 0 is linear bin 0, the last row the last bin
    lin = torch.arange(512.0)[None, None, :, None].expand(1, 1, 512, 4)
    warped = to_log_freq(lin, cfg)[0, 0, :, 0]
    assert warped[0] == 0 and warped[-1] == pytest.approx(511, abs=1e-3)
    assert (warped.diff() >= 0).all()
    with pytest.raises(ValueError, match=r"\(batch, samples\)"):
        stft(wav[0], cfg)


def test_a_missing_or_foreign_checkpoint_is_refused_by_name(tmp_path):
    from pipeline.errors import PipelineError

    with pytest.raises(
        PipelineError, match=r"none\.pt: no separator checkpoint here; run `dvc repro train`"
    ):
        load_separator(tmp_path / "none.pt")
    torch.save({"schema_version": 0}, tmp_path / "old.pt")
    with pytest.raises(
        PipelineError, match=r"old\.pt: separator checkpoint schema 0, this code reads 2"
    ):
        load_separator(tmp_path / "old.pt")
