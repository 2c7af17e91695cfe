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

    With ``per_output`` (``model.subgraphs``) recurrence :math:`i` reads its own input
    :math:`\mathbf{s}_i`, the embedding of sub-graph :math:`i` (principal object :math:`i` with its
    context nodes; the background node for the last) in place of :math:`\zeta`,
    :math:`\mathbf{y}_i = \mathrm{GRU}(\mathbf{s}_i; \Delta_{i-1})`, as the paper's abstract
    describes the GRU ("at each recurrence, produces an embedding of a sub-graph"); without the GRU
    one linear map is applied to each :math:`\mathbf{s}_i`.

    Args:
        in_channels: size of :math:`\zeta`.
        channels: embedding size :math:`d`.
        n_outputs: :math:`N+1`.
        normalize: unit-norm embeddings (paper) or raw GRU outputs (released code).
        gru: ablation switch.
        per_output: read one input per output instead of :math:`\zeta` for all.

    Shapes:
        - **input:** ``zeta (B, in_channels)``, or with ``per_output`` ``s (B, n_outputs,
          in_channels)``
        - **output:** ``y (B, n_outputs, channels)``
    """

    def __init__(
        self,
        in_channels: int,
        channels: int,
        n_outputs: int,
        normalize: bool = True,
        gru: bool = True,
        per_output: bool = False,
    ):
        super().__init__()
        self.n_outputs, self.normalize, self.per_output = n_outputs, normalize, per_output
        self.gru = nn.GRU(in_channels, channels, batch_first=True) if gru else None
        outputs = 1 if per_output else n_outputs  # per output: one map applied to each input
        self.linear = None if gru else nn.Linear(in_channels, outputs * channels)
        self.channels = channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        want = 3 if self.per_output else 2
        if x.dim() != want or (self.per_output and x.shape[1] != self.n_outputs):
            shape = (
                f"(batch, {self.n_outputs}, features)" if self.per_output else "(batch, features)"
            )
            raise ValueError(f"this conditioner reads {shape}, got {tuple(x.shape)}")
        if self.per_output:
            y = self.gru(x.contiguous())[0] if self.gru is not None else self.linear(x)
        elif self.gru is not None:
            y, _ = self.gru(x[:, None].expand(-1, self.n_outputs, -1).contiguous())
        else:
            y = self.linear(x).view(len(x), self.n_outputs, self.channels)
        return F.normalize(y, dim=-1) if self.normalize else y
