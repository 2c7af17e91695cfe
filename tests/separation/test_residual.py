"""``model.residual``: the graph attention layer keeps each node's own feature."""

import torch
from torch_geometric.data import Batch

from pipeline.separation.model import AVSGS
from pipeline.separation.nn import SceneGraphEncoder
from pipeline.separation.train import ModelParams, model_config

from .test_subgraphs import REFERENCE, TINY, one_object, two_objects


def spread(h: torch.Tensor, batch: torch.Tensor) -> float:
    """Mean over graphs of the nodes' spread about their graph's mean, relative to its norm."""
    out = []
    for b in batch.unique():
        v = h[batch == b]
        out.append(float(v.std(0).norm() / v.mean(0).norm()))
    return sum(out) / len(out)


def test_the_residual_is_a_linear_map_of_the_node_added_to_what_it_attends_to():
    torch.manual_seed(0)
    enc = SceneGraphEncoder(6, 8, 8, 2, "max", "sum", residual=True)
    batch = Batch.from_data_list([two_objects(), one_object()])
    x = enc.mlp(batch.x)
    with torch.no_grad():
        full = enc.gat(x, batch.edge_index)
        own = enc.gat.res(x)
        enc.gat.res.weight.zero_()
        attended = enc.gat(x, batch.edge_index)
    torch.testing.assert_close(full, attended + own)
    assert own.abs().sum() > 0


def test_without_the_residual_a_complete_graphs_nodes_come_out_alike():
    # The GAT's output for a node is a convex combination of its neighbours' messages; on a
    # complete graph every node has the same neighbours. The residual keeps them apart.
    batch = Batch.from_data_list([two_objects(seed=s) for s in range(8)])
    spreads = {}
    for residual in (False, True):
        torch.manual_seed(0)
        enc = SceneGraphEncoder(6, 8, 8, 2, "max", "sum", residual=residual)
        with torch.no_grad():
            x = enc.mlp(batch.x)
            spreads[residual] = (
                spread(x, batch.batch),
                spread(enc.gat(x, batch.edge_index), batch.batch),
            )
    (before, plain), (_, kept) = spreads[False], spreads[True]
    assert plain < 0.5 * before
    assert kept > 2 * plain


def test_model_residual_reaches_avsgs_and_is_off_by_default():
    params = dict(name="avsgs", preset="tiny", gat=True, edgeconv=True, gru=True, skip=True)
    assert not ModelParams(**params).residual
    config = model_config(ModelParams(**params, residual=True), "reference", 6, 5, 2)
    assert config["residual"] is True
    m = AVSGS(**config)
    assert m.encoder.gat.res is not None
    assert AVSGS(6, 5, 2, **TINY, **REFERENCE).encoder.gat.res is None
    # at their defaults the later options stay out of the config, so the states and checkpoints
    # trained before they existed keep their key
    default = model_config(ModelParams(**params), "reference", 6, 5, 2)
    assert "residual" not in default and "subgraph_context" not in default
    assert AVSGS(**default).encoder.gat.res is None
    no_context = ModelParams(**params, subgraphs=True, subgraph_context=False)
    assert model_config(no_context, "reference", 6, 5, 2)["subgraph_context"] is False
