"""The baselines AVSGS is compared with, trained and scored by the same stages (``model.name``).

Every separator here shares AVSGS's conditioned U-Net (the same preset, so the comparison varies
the conditioning alone) and its output contract: masks ``(G, S, 1, F, T)`` per video of each
mixture, the embeddings that conditioned them, and optionally class logits. They differ in what
conditions a mask:

- :class:`CoSeparation` (Gao & Grauman, ICCV 2019): one mask per detected principal object,
  conditioned on that object's box feature alone (no graph, no GRU), plus one for the background
  node; the object-consistency classifier as in AVSGS.
- :class:`FrameConditioned` (Sound of Pixels style, Zhao et al., ECCV 2018): one mask per video,
  conditioned on one frame-level feature, the graph's background node. With
  ``graphs.crop_min = graphs.crop_max = 1`` that node is the whole frame. On the proposals
  backend the node is the frame's pixels and a small CNN learns from them, as Sound of Pixels'
  frame network does (a frozen detector's feature of the whole frame names no object:
  docs/baselines.md).
- :class:`AudioOnly`: no vision. Learned embeddings, one per position of a video in its mixture,
  and permutation-invariant training: the co-separation loss takes the better of the two ways to
  assign the outputs to the videos, and scoring takes the better assignment too.

Each is a :class:`~pipeline.separation.base.Separator`: it says which of the losses it can use
(``losses``), and :func:`step.compute_losses` skips the others whatever the switches say.
"""

from __future__ import annotations

from typing import Literal

import torch
from torch import nn

from pipeline.separation.base import Separator, background_features, principal_features
from pipeline.separation.nn import AudioClassifier, ConditionedUNet


def _mlp(cin: int, hidden: int, cout: int) -> nn.Sequential:
    return nn.Sequential(nn.Linear(cin, hidden), nn.ReLU(), nn.Linear(hidden, cout))


class BoxEncoder(nn.Module):
    """A node's feature ``(n, D)`` -> an embedding ``(n, channels)``: an MLP on a detector's box
    feature, or with ``crop_size`` a small CNN learned on the box's RGB crop (the proposals
    backend stores each box as its ``3 x crop_size x crop_size`` pixels)."""

    def __init__(self, node_channels: int, hidden: int, channels: int, crop_size: int = 0):
        super().__init__()
        if 0 < crop_size < 4:
            raise ValueError(f"crop_size must be 0 (features) or >= 4 (pixels), got {crop_size}")
        if crop_size and node_channels != 3 * crop_size**2:
            raise ValueError(
                f"crop_size {crop_size} needs node features of 3 x {crop_size}^2, got "
                f"{node_channels}"
            )
        self.crop_size = crop_size
        if crop_size:
            w = max(8, hidden // 4)
            self.net = nn.Sequential(
                nn.Conv2d(3, w, 3, 1, 1), nn.BatchNorm2d(w), nn.ReLU(), nn.MaxPool2d(2),
                nn.Conv2d(w, 2 * w, 3, 1, 1), nn.BatchNorm2d(2 * w), nn.ReLU(), nn.MaxPool2d(2),
                nn.Conv2d(2 * w, hidden, 3, 1, 1), nn.ReLU(), nn.AdaptiveMaxPool2d(1),
                nn.Flatten(), nn.Linear(hidden, channels),
            )  # fmt: skip
        else:
            self.net = _mlp(node_channels, hidden, channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.crop_size:
            x = x.view(len(x), 3, self.crop_size, self.crop_size)
        return self.net(x)


def position_in_mixture(mixture: torch.Tensor) -> torch.Tensor:
    """Each video's position ``(G,)`` among the videos of its mixture (0 for the first), for
    ``mixture`` grouped (the videos of a mixture adjacent, as every caller orders them)."""
    _, counts = torch.unique_consecutive(mixture, return_counts=True)
    first = torch.cumsum(counts, 0) - counts
    return torch.arange(len(mixture), device=mixture.device) - first.repeat_interleave(counts)


class CoSeparation(Separator):
    """Co-separation (Gao & Grauman, ICCV 2019) on our graphs: slot ``i``'s mask is conditioned on
    its principal object's box feature through an MLP (an empty slot on a learned embedding), the
    last on the background node's; no context nodes, no graph layers, no GRU.

    Shapes: as :class:`~pipeline.separation.model.AVSGS` (``S = N + 1``)."""

    name = "coseparation"

    def __init__(
        self,
        node_channels: int,
        n_classes: int,
        n_slots: int,
        hidden: int = 512,
        channels: int = 512,
        ngf: int = 64,
        levels: int = 7,
        classifier: Literal["resnet18", "small"] = "resnet18",
        classifier_width: int = 16,
        classifier_pool: int = 2,
        skip: bool = True,
    ):
        super().__init__()
        self.unet = ConditionedUNet(ngf, levels, channels, skip)
        self.classifier = AudioClassifier(n_classes, classifier, classifier_width, classifier_pool)
        self.n_slots, self.n_outputs = n_slots, n_slots + 1
        self.project = _mlp(node_channels, hidden, channels)
        self.empty = nn.Parameter(torch.randn(channels) * 0.02)

    def encode(self, graphs, mixture):
        feats, present = principal_features(graphs, self.n_slots)
        objects = torch.where(present[..., None], self.project(feats), self.empty)
        background = self.project(background_features(graphs))[:, None]
        return {"embeddings": torch.cat([objects, background], 1)}


class FrameConditioned(Separator):
    """One mask per video conditioned on a frame-level feature (Sound of Pixels style): the graph's
    background node through an MLP, or with ``crop_size`` (the proposals backend's RGB crops)
    through a CNN learned on its pixels (:class:`BoxEncoder`). Co-separation loss only (no
    per-object classes).

    Shapes: masks ``(G, 1, 1, F, T)``."""

    name = "frame"
    losses = ("coseparation",)

    def __init__(
        self,
        node_channels: int,
        hidden: int = 512,
        channels: int = 512,
        ngf: int = 64,
        levels: int = 7,
        skip: bool = True,
        crop_size: int = 0,
    ):
        super().__init__()
        self.unet = ConditionedUNet(ngf, levels, channels, skip)
        self.n_outputs = 1
        self.project = BoxEncoder(node_channels, hidden, channels, crop_size)

    def encode(self, graphs, mixture):
        return {"embeddings": self.project(background_features(graphs))[:, None]}


class AudioOnly(Separator):
    """No vision: the video at position ``p`` of its mixture gets the learned embedding ``p``;
    trained and scored permutation-invariantly (the assignment of outputs to videos is free).

    Shapes: masks ``(G, 1, 1, F, T)``; mixtures of at most ``positions`` videos."""

    name = "audio_only"
    losses = ("coseparation",)
    permutation_invariant = True

    def __init__(
        self,
        channels: int = 512,
        ngf: int = 64,
        levels: int = 7,
        skip: bool = True,
        positions: int = 2,
    ):
        super().__init__()
        self.unet = ConditionedUNet(ngf, levels, channels, skip)
        self.n_outputs = 1
        self.slots = nn.Parameter(torch.randn(positions, channels))

    def encode(self, graphs, mixture):
        position = position_in_mixture(mixture)
        if int(position.max()) >= len(self.slots):
            raise ValueError(f"audio_only: mixtures of at most {len(self.slots)} videos")
        return {"embeddings": self.slots[position][:, None]}
