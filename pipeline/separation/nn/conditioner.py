"""Recurrent conditioner: one embedding per principal object plus background from a graph's zeta."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class RecurrentConditioner(nn.Module):
    r"""AVSGS's GRU (section 3.2, eq. 1): run :math:`N+1` times on the graph embedding
    :math:`\zeta`, its hidden state keeping track of what it has produced,

    .. math::
        \mathbf{y}_i = \mathrm{GRU}(\zeta; \Delta_{i-1}), \quad i = 1, \dots, N+1.

    With ``gru=False`` (an ablation) a linear map produces the :math:`N+1` embeddings at once.

    Args:
        in_channels: size of :math:`\zeta`.
        channels: embedding size :math:`d`.
        n_outputs: :math:`N+1`.
        normalize: unit-norm embeddings (paper) or raw GRU outputs (released code).
        gru: ablation switch.

    Shapes:
        - **input:** ``zeta (B, in_channels)``
        - **output:** ``y (B, n_outputs, channels)``
    """

    def __init__(
        self,
        in_channels: int,
        channels: int,
        n_outputs: int,
        normalize: bool = True,
        gru: bool = True,
    ):
        super().__init__()
        self.n_outputs, self.normalize = n_outputs, normalize
        self.gru = nn.GRU(in_channels, channels, batch_first=True) if gru else None
        self.linear = None if gru else nn.Linear(in_channels, n_outputs * channels)
        self.channels = channels

    def forward(self, zeta: torch.Tensor) -> torch.Tensor:
        if self.gru is not None:
            y, _ = self.gru(zeta[:, None].expand(-1, self.n_outputs, -1).contiguous())
        else:
            y = self.linear(zeta).view(len(zeta), self.n_outputs, self.channels)
        return F.normalize(y, dim=-1) if self.normalize else y
