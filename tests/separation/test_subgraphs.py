"""AVSGS with ``model.subgraphs``: GRU recurrence ``i`` reads its own sub-graph's embedding."""

import pytest
import torch
from torch_geometric.data import Batch, Data

from pipeline.graphs.roles import Role
from pipeline.graphs.store import complete_edges
from pipeline.separation.model import AVSGS
from pipeline.separation.nn import RecurrentConditioner

TINY = dict(hidden=8, channels=8, heads=2, ngf=4, classifier="small", classifier_width=4)
REFERENCE = dict(aggr="max", readout="sum", normalize=False)
P, C, B = Role.PRINCIPAL, Role.CONTEXT, Role.BACKGROUND


def graph(roles, slots, labels, dim=6, seed=0):
    g = torch.Generator().manual_seed(seed)
    n = len(roles)
    return Data(
        x=torch.randn(n, dim, generator=g),
        edge_index=complete_edges(n),
        role=torch.tensor(roles),
        slot=torch.tensor(slots),
        y=torch.tensor([labels]),
        num_nodes=n,
    )


def two_objects(seed=0):
    """Object 0 with two context nodes, object 1 with one, and the background node."""
    return graph([P, C, C, P, C, B], [0, 0, 0, 1, 1, -1], [2, 3], seed=seed)


def one_object(seed=1):
    """Object 0 with one context node and the background; slot 1 is empty."""
    return graph([C, P, B], [0, 0, -1], [1, -1], seed=seed)


def model(**kwargs):
    torch.manual_seed(0)
    return AVSGS(6, n_classes=5, n_slots=2, **{**TINY, **REFERENCE, "subgraphs": True, **kwargs})


def swap_objects(d):
    d = d.clone()
    d.slot = torch.where(d.slot >= 0, 1 - d.slot, d.slot)
    d.y = d.y.flip(1)
    return d


def test_each_output_reads_its_own_objects_nodes():
    m = model().eval()
    batch = Batch.from_data_list([two_objects(), one_object()])
    _, nodes = m.encoder.encode(batch.x, batch.edge_index, batch.batch)
    parts = m.subgraph_embeddings(batch, nodes)
    assert parts.shape == (2, 3, m.encoder.out_channels + 8)
    h, g = nodes

    def expected(index, anchor):  # the readout of these nodes (max || mean, GAT's added) || anchor
        pool = [torch.cat([f[index].amax(0), f[index].mean(0)]) for f in (g, h)]
        return torch.cat([pool[0] + pool[1], g[anchor]])

    torch.testing.assert_close(parts[0, 0], expected([0, 1, 2], 0))
    torch.testing.assert_close(parts[0, 1], expected([3, 4], 3))
    torch.testing.assert_close(parts[0, 2], expected([5], 5))
    torch.testing.assert_close(parts[1, 0], expected([6, 7], 7))
    torch.testing.assert_close(parts[1, 1], m.empty)  # no object in slot 1
    torch.testing.assert_close(parts[1, 2], expected([8], 8))


def test_swapping_the_objects_swaps_what_the_outputs_read():
    m = model().eval()
    batch = Batch.from_data_list([two_objects()])
    swapped = Batch.from_data_list([swap_objects(two_objects())])
    with torch.no_grad():
        parts = m.subgraph_embeddings(
            batch, m.encoder.encode(batch.x, batch.edge_index, batch.batch)[1]
        )
        parts_sw = m.subgraph_embeddings(
            swapped, m.encoder.encode(swapped.x, swapped.edge_index, swapped.batch)[1]
        )
        torch.testing.assert_close(parts_sw, parts[:, [1, 0, 2]])
        assert not torch.allclose(m.embed(batch), m.embed(swapped), atol=1e-4)
        # the paper's AVSGS (eq. 1) reads the pooled graph alone: it cannot tell the two apart
        paper = model(subgraphs=False).eval()
        torch.testing.assert_close(paper.embed(batch), paper.embed(swapped))


def test_node_order_does_not_change_the_embeddings():
    m = model().eval()
    d = two_objects()
    perm = torch.tensor([5, 3, 0, 4, 2, 1])
    shuffled = Data(
        x=d.x[perm],
        edge_index=complete_edges(len(perm)),
        role=d.role[perm],
        slot=d.slot[perm],
        y=d.y,
        num_nodes=len(perm),
    )
    with torch.no_grad():
        a = m.embed(Batch.from_data_list([d, one_object()]))
        b = m.embed(Batch.from_data_list([shuffled, one_object()]))
    torch.testing.assert_close(a, b)


@pytest.mark.parametrize("kwargs", [{}, {"gru": False}, {"gat": False}, {"edgeconv": False}])
def test_it_trains_end_to_end_with_the_ablations(kwargs):
    m = model(**kwargs)
    batch = Batch.from_data_list([two_objects(), one_object()])
    out = m(torch.rand(1, 1, 128, 128), batch, torch.tensor([0, 0]), classify=True)
    assert out["masks"].shape == (2, 3, 1, 128, 128)
    assert out["class_logits"].shape == (2, 3, 5)
    out["masks"].mean().backward()
    assert m.empty.grad is not None and m.empty.grad.abs().sum() > 0  # the empty slot learns
    assert m.encoder.mlp[0].weight.grad.abs().sum() > 0


def test_a_context_node_without_an_object_is_refused():
    m = model()
    bad = Batch.from_data_list([graph([P, C, B], [0, -1, -1], [1, -1])])
    with pytest.raises(ValueError, match="node slots"):
        m.embed(bad)
    too_many = Batch.from_data_list([graph([P, C, B], [0, 2, -1], [1, -1])])
    with pytest.raises(ValueError, match="node slots"):
        m.embed(too_many)


def test_the_conditioner_reads_one_input_per_output():
    zeta, s = torch.randn(2, 16), torch.randn(2, 3, 16)
    with pytest.raises(ValueError, match=r"reads \(batch, 3, features\), got \(2, 16\)"):
        RecurrentConditioner(16, 8, 3, per_output=True)(zeta)
    with pytest.raises(ValueError, match=r"reads \(batch, features\)"):
        RecurrentConditioner(16, 8, 3)(s)
    with pytest.raises(ValueError, match=r"got \(2, 2, 16\)"):
        RecurrentConditioner(16, 8, 3, per_output=True)(s[:, :2])
    gru = RecurrentConditioner(16, 8, 3, per_output=True)
    y = gru(s)
    assert y.shape == (2, 3, 8)
    # the first output depends on the first input alone; the later ones remember the earlier
    s2 = s.clone()
    s2[:, 1:] += 1
    torch.testing.assert_close(gru(s2)[:, 0], y[:, 0])
    s3 = s.clone()
    s3[:, 0] += 1
    assert not torch.allclose(gru(s3)[:, 1], y[:, 1])
    linear = RecurrentConditioner(16, 8, 3, gru=False, per_output=True)
    torch.testing.assert_close(linear(s2)[:, 0], linear(s)[:, 0])
    torch.testing.assert_close(linear(s3)[:, 1:], linear(s)[:, 1:])  # no memory without the GRU


def test_an_empty_group_reads_out_zeros():
    m = model()
    h, g = torch.randn(4, 8), torch.randn(4, 8)
    out = m.encoder.readout((h, g), torch.tensor([0, 0, 2, 2]), 3)
    assert out.shape == (3, 16)
    assert (out[1] == 0).all()
