"""Audio classifier of separated spectrograms (the consistency loss's judge)."""

from __future__ import annotations

from typing import Literal

import torch
from torch import nn


class AudioClassifier(nn.Module):
    r"""Classifies a separated log-frequency log-magnitude spectrogram into one of the principal-
    object classes or background (AVSGS section 3.3, eq. 3). The paper does not detail it; the
    released code uses a ResNet-18 trunk on a 1-channel input with global max pooling
    (``arch="resnet18"``). ``arch="small"``, for CPU-sized runs: a ``pool`` x ``pool`` average
    pooling of the input, five stride-2 3x3 conv blocks of ``width`` to ``8 * width`` channels,
    global max pooling and a linear layer.

    Args:
        n_classes: classes including background.
        arch: ``resnet18`` or ``small``.
        width: channels of the small net's first block.
        pool: the small net's input pooling.

    Shapes:
        - **input:** ``(B, 1, F, T)``
        - **output:** logits ``(B, n_classes)``
    """

    def __init__(
        self,
        n_classes: int,
        arch: Literal["resnet18", "small"] = "resnet18",
        width: int = 16,
        pool: int = 2,
    ):
        super().__init__()
        if arch == "resnet18":
            from torchvision.models import resnet18  # here: torchvision takes seconds to import

            net = resnet18(num_classes=n_classes)
            net.conv1 = nn.Conv2d(1, 64, 7, 2, 3, bias=False)
            net.avgpool = nn.AdaptiveMaxPool2d(1)
            self.net = net
        else:
            layers, cin = [nn.AvgPool2d(pool), nn.BatchNorm2d(1)], 1
            for i in range(5):
                cout = width * min(2**i, 8)
                layers += [nn.Conv2d(cin, cout, 3, 2, 1), nn.BatchNorm2d(cout), nn.ReLU()]
                cin = cout
            layers += [nn.AdaptiveMaxPool2d(1), nn.Flatten(), nn.Linear(cin, n_classes)]
            self.net = nn.Sequential(*layers)

    def forward(self, spec: torch.Tensor) -> torch.Tensor:
        return self.net(spec)
