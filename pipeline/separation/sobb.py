"""Sound of Bounding Boxes (SoBB): a detector-free visual front end for mask separation.

After the paper in ``shared/papers/sound-of-bounding-boxes.txt``: box proposals with no trained
detector (``detect.backend: proposals``: selective search, each box stored with its RGB crop), a
*learned* box encoder and box selector trained end to end through the separation loss, and the
softmax constraint on the masks.

- **Encoder:** a small CNN on each candidate box's crop (with ``crop_size`` 0, e.g. on a
  detector's box features, an MLP instead).
- **Selector:** a score per candidate; slot ``i`` of a video (one per principal object the labels
  name) picks one candidate by straight-through Gumbel-softmax (Jang et al., 2017) in training
  (hard one-hot forward, softmax gradient) and by arg-max in evaluation; a candidate picked by an
  earlier slot is excluded. The picked box's encoding conditions the U-Net.
- **Softmax constraint** (the paper's section D): the masks of all slots of all videos in a
  mixture come from one softmax over their logits, so they sum to 1 in every bin and the
  separated sounds add up to the mixture. An empty slot takes no share.

Candidates are a graph's principal and context nodes (with ``graphs.iou`` 0 and
``graphs.min_score`` 0 under proposals, every proposal of the key frame that touches the top
one). Co-separation loss only (no classes); ``S = N`` outputs per video, no background output.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from pipeline.graphs.roles import Role
from pipeline.separation.base import Separator
from pipeline.separation.baselines import BoxEncoder
from pipeline.separation.nn import ConditionedUNet
from pipeline.separation.nn.unet import mask_logits


def straight_through_gumbel(
    logits: torch.Tensor, valid: torch.Tensor, tau: float, hard_only: bool
) -> torch.Tensor:
    """One-hot picks ``(..., K)`` over the last axis among ``valid`` entries: with Gumbel noise
    and the softmax's gradient (straight through) in training, the arg-max in evaluation
    (``hard_only``)."""
    logits = logits.masked_fill(~valid, float("-inf"))
    if hard_only:
        return F.one_hot(logits.argmax(-1), logits.shape[-1]).to(logits.dtype)
    gumbel = -torch.empty_like(logits).exponential_().log()
    soft = F.softmax((logits + gumbel) / tau, -1)
    hard = F.one_hot(soft.argmax(-1), logits.shape[-1]).to(soft.dtype)
    return hard + soft - soft.detach()


def mixture_softmax(logits: torch.Tensor, present: torch.Tensor, mixture: torch.Tensor):
    """Masks ``(G, S, 1, F, T)`` that sum to 1 over all present slots of each mixture's videos.
    ``logits (G, S, 1, F, T)``, ``present (G, S)`` bool, ``mixture (G,)``."""
    masks = torch.zeros_like(logits)
    for m in torch.unique(mixture):
        rows = (mixture == m).nonzero().flatten()
        block = logits[rows]  # (k, S, 1, F, T)
        keep = present[rows]
        flat = block.masked_fill(~keep[..., None, None, None], float("-inf")).flatten(0, 1)
        soft = torch.softmax(flat, 0).nan_to_num(0.0).view_as(block)
        masks[rows] = soft
    return masks


class SoundOfBoundingBoxes(Separator):
    """The SoBB separator (see the module). Shapes: masks ``(G, N, 1, F, T)``, embeddings
    ``(G, N, d)``."""

    name = "sobb"
    losses = ("coseparation",)

    def __init__(
        self,
        node_channels: int,
        n_slots: int,
        hidden: int = 512,
        channels: int = 512,
        ngf: int = 64,
        levels: int = 7,
        skip: bool = True,
        crop_size: int = 0,
        tau: float = 1.0,
    ):
        super().__init__()
        self.unet = ConditionedUNet(ngf, levels, channels, skip)
        self.n_slots, self.n_outputs, self.tau = n_slots, n_slots, tau
        self.encoder = BoxEncoder(node_channels, hidden, channels, crop_size)
        self.selector = nn.Sequential(nn.Linear(channels, hidden), nn.ReLU(), nn.Linear(hidden, 1))

    def select(self, graphs) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Embeddings ``(G, N, d)``, the one-hot picks ``(G, N, K)`` over each graph's
        candidates (padded to ``K``), and which slots hold an object ``(G, N)``."""
        from torch_geometric.utils import to_dense_batch

        cand = graphs.role != Role.BACKGROUND
        feats, valid = to_dense_batch(
            self.encoder(graphs.x[cand]), graphs.batch[cand], batch_size=graphs.num_graphs
        )  # (G, K, d), (G, K)
        scores = self.selector(feats).squeeze(-1)  # (G, K)
        present = graphs.y[:, : self.n_slots] >= 0  # (G, N)
        picks, free = [], valid.clone()
        for _ in range(self.n_slots):
            # a graph with no candidate left reuses its first (its output is masked anyway)
            free_any = free.any(-1, keepdim=True)
            usable = torch.where(free_any, free, valid)
            pick = straight_through_gumbel(scores, usable, self.tau, not self.training)
            picks.append(pick)
            free = free & (pick.detach() == 0)
        pick = torch.stack(picks, 1)  # (G, N, K)
        return pick @ feats, pick, present

    def encode(self, graphs, mixture):
        y, _, present = self.select(graphs)
        return {"embeddings": y, "present": present}

    def decode(self, mix_mag, encoded, mixture, classify: bool = False):
        """Masks under the softmax constraint (no classifier: ``classify`` has nothing to do)."""
        y = encoded["embeddings"]
        logits = mask_logits(self.unet, mix_mag, y, mixture)
        return {"masks": mixture_softmax(logits, encoded["present"], mixture), "embeddings": y}
