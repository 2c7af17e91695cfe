"""Scene-graph encoder: node MLP -> GATConv -> EdgeConv -> global max || mean pooling."""

from __future__ import annotations

from typing import Literal

import torch
from torch import nn
from torch_geometric.nn import EdgeConv, GATConv, global_max_pool, global_mean_pool


class SceneGraphEncoder(nn.Module):
    r"""The visual half of AVSGS (Chatterjee et al., ICCV 2021, section 3.2 and supplement B.2).

    Node features are projected by an MLP, attended by multi-head graph attention
    (Velickovic et al., 2018) and refined by edge convolution (Wang et al., 2019),

    .. math::
        \mathbf{x}'_i = \square_{j \in \mathcal{N}(i)} h_\Lambda(\mathbf{x}_i \,\|\,
        \mathbf{x}_j - \mathbf{x}_i),

    with :math:`\square` the mean (paper) or max (released code); the graph is read out by
    concatenating global max and mean pooling, :math:`\zeta = \max_i \mathbf{x}'_i \,\|\,
    \operatorname{mean}_i \mathbf{x}'_i`. With ``readout="sum"`` (released code) the GAT output is
    pooled the same way and added to the EdgeConv readout.

    Args:
        in_channels: node feature size (the detector's box-feature size).
        hidden: width after the node MLP, and the GAT's total output width (``heads`` heads of
            ``hidden // heads``).
        edge_channels: EdgeConv output width.
        heads: attention heads.
        aggr: EdgeConv aggregation, ``mean`` or ``max``.
        readout: ``edge`` (pool the EdgeConv output) or ``sum`` (pool GAT and EdgeConv outputs and
            add them; needs ``hidden == edge_channels``).
        gat, edgeconv: ablation switches; a disabled layer is the identity. A node's GAT output
            is a convex combination of its neighbours' messages, so on a fully connected graph
            every node of a graph leaves it nearly the same vector
            (``benchmarks/oversmoothing.py``, ``docs/model.md``).
        edge_dim: edge attributes the GAT reads (ASMP's 2.5D graph: 1, the Chamfer-RBF
            weight; its self-loops get weight 1), or 0. EdgeConv never reads them, as in the
            released code.

    Shapes:
        - **input:** node features ``x (|V|, in_channels)``, ``edge_index (2, |E|)``,
          ``batch (|V|,)``, with ``edge_dim`` also ``edge_attr (|E|, edge_dim)``
        - **output:** ``zeta (B, 2 * edge_channels)``
    """

    def __init__(
        self,
        in_channels: int,
        hidden: int = 512,
        edge_channels: int = 512,
        heads: int = 4,
        aggr: Literal["mean", "max"] = "mean",
        readout: Literal["edge", "sum"] = "edge",
        gat: bool = True,
        edgeconv: bool = True,
        edge_dim: int = 0,
    ):
        super().__init__()
        if hidden % heads:
            raise ValueError(f"hidden ({hidden}) must be a multiple of heads ({heads})")
        if readout == "sum" and hidden != edge_channels:
            raise ValueError(
                "readout 'sum' adds GAT and EdgeConv readouts: hidden == edge_channels"
            )
        if not edgeconv and hidden != edge_channels:
            raise ValueError(
                "without EdgeConv the output width is hidden: set edge_channels = hidden"
            )
        self.readout_mode = readout
        self.mlp = nn.Sequential(nn.Linear(in_channels, hidden), nn.ReLU())
        self.edge_dim = edge_dim
        edge_kw = {"edge_dim": edge_dim, "fill_value": 1.0} if edge_dim else {}
        self.gat = GATConv(hidden, hidden // heads, heads=heads, **edge_kw) if gat else None
        self.edge = (
            EdgeConv(nn.Sequential(nn.Linear(2 * hidden, edge_channels), nn.ReLU()), aggr=aggr)
            if edgeconv
            else None
        )
        self.out_channels = 2 * edge_channels

    def forward(
        self,
        x: torch.Tensor,
        edge_index: torch.Tensor,
        batch: torch.Tensor,
        edge_attr: torch.Tensor | None = None,
    ) -> torch.Tensor:
        return self.encode(x, edge_index, batch, edge_attr)[0]

    def encode(
        self,
        x: torch.Tensor,
        edge_index: torch.Tensor,
        batch: torch.Tensor,
        edge_attr: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, tuple[torch.Tensor, torch.Tensor]]:
        """``zeta (B, out_channels)`` and the node features it is read out from: the GAT's ``h``
        and the EdgeConv's ``g`` ``(|V|, edge_channels)`` (pass them to :meth:`readout` to read
        out any grouping of the nodes)."""
        if bool(self.edge_dim) != (edge_attr is not None):
            raise ValueError(
                f"this encoder reads {self.edge_dim} edge attributes, the graphs have "
                f"{0 if edge_attr is None else edge_attr.shape[-1]}: the graph store's builder "
                "and the model's do not match"
            )
        size = int(batch.max()) + 1 if batch.numel() else 0
        h = self.mlp(x)
        if self.gat is not None:
            h = torch.relu(
                self.gat(h, edge_index, edge_attr) if self.edge_dim else self.gat(h, edge_index)
            )
        g = self.edge(h, edge_index) if self.edge is not None else h
        return self.readout((h, g), batch, size), (h, g)

    def readout(
        self, nodes: tuple[torch.Tensor, torch.Tensor], index: torch.Tensor, size: int
    ) -> torch.Tensor:
        """The graph readout (max || mean, plus the GAT's with ``readout="sum"``) of the nodes
        grouped by ``index (|V|,)`` into ``size`` groups: ``(size, out_channels)``; an empty group
        reads out zeros."""
        h, g = nodes
        out = torch.cat([global_max_pool(g, index, size), global_mean_pool(g, index, size)], -1)
        if self.readout_mode == "sum":
            out = out + torch.cat(
                [global_max_pool(h, index, size), global_mean_pool(h, index, size)], -1
            )
        return out
