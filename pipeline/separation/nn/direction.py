"""ASMP's direction network: a source's direction of motion from its separated spectrogram."""

from __future__ import annotations

from typing import Literal

import torch
from torch import nn

from pipeline.separation.nn.classifier import AudioClassifier


class DirectionHead(nn.Module):
    r"""The Direction Prediction Network of ASMP (NeurIPS 2022; ``shared/ASMP.md`` 2.7): the log
    separated spectrogram of one source over its 1 s window, through a 1-channel trunk (the
    released code: ResNet-18, ``arch="resnet18"``; ``small`` for CPU-sized runs, as
    :class:`AudioClassifier`), then ``Linear -> BatchNorm -> LeakyReLU(0.2) -> Linear`` to
    ``n_classes`` logits (10 or 28, the filler class included as in the released code, which
    never makes it a target). The released head also batch-normalises its logits; ours does not.

    Shapes:
        - **input:** ``(K, 1, F, cols)``
        - **output:** logits ``(K, n_classes)``
    """

    def __init__(
        self,
        n_classes: int,
        arch: Literal["resnet18", "small"] = "resnet18",
        width: int = 16,
        pool: int = 2,
        features: int = 256,
    ):
        super().__init__()
        self.trunk = AudioClassifier(features, arch, width, pool)
        self.head = nn.Sequential(
            nn.BatchNorm1d(features), nn.LeakyReLU(0.2), nn.Linear(features, n_classes)
        )

    def forward(self, spec: torch.Tensor) -> torch.Tensor:
        return self.head(self.trunk(spec))
