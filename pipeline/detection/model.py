"""Faster R-CNN detectors (torchvision) and the one self-contained checkpoint file.

Architectures (``ARCHITECTURES``), each rebuilt from ``{"name": ..., "kwargs": {...}}``:

- ``resnet50_fpn``: torchvision's Faster R-CNN ResNet-50 FPN (the COCO model; 1024-d box features).
- ``small_fpn``: a small convolutional backbone with a 64-channel FPN, anchors sized to the
  synthetic world's sprites and a 256-d box head, trained from scratch on CPU in minutes.

Shapes: images ``(3, H, W)`` float in [0, 1]; boxes ``(n, 4)`` xyxy pixels.
"""

from __future__ import annotations

from collections import OrderedDict
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torchvision.models.detection import FasterRCNN
from torchvision.models.detection.anchor_utils import AnchorGenerator
from torchvision.models.detection.faster_rcnn import FastRCNNPredictor, TwoMLPHead
from torchvision.ops import FeaturePyramidNetwork, MultiScaleRoIAlign
from torchvision.ops.feature_pyramid_network import LastLevelMaxPool

from pipeline import io
from pipeline.errors import PipelineError

CHECKPOINT_SCHEMA = 1


class CheckpointError(PipelineError, ValueError):
    """A detector checkpoint that cannot be used as it is."""


def _stage(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(cin, cout, 3, stride=2, padding=1, bias=False),
        nn.BatchNorm2d(cout),
        nn.ReLU(inplace=True),
        nn.Conv2d(cout, cout, 3, padding=1, bias=False),
        nn.BatchNorm2d(cout),
        nn.ReLU(inplace=True),
    )


class SmallBackbone(nn.Module):
    """Four stride-2 conv stages after a stride-2 stem (strides 4, 8, 16, 32) and an FPN.

    Ordinary BatchNorm (not torchvision's frozen one): it trains from scratch.
    """

    def __init__(self, widths: tuple[int, ...] = (32, 48, 64, 96), fpn_channels: int = 64):
        super().__init__()
        self.stem = nn.Sequential(
            nn.Conv2d(3, widths[0], 3, stride=2, padding=1, bias=False),
            nn.BatchNorm2d(widths[0]),
            nn.ReLU(inplace=True),
        )
        chans = [widths[0], *widths]
        self.stages = nn.ModuleList(_stage(chans[i], chans[i + 1]) for i in range(len(widths)))
        self.fpn = FeaturePyramidNetwork(list(widths), fpn_channels, LastLevelMaxPool())
        self.out_channels = fpn_channels

    def forward(self, x: torch.Tensor) -> OrderedDict[str, torch.Tensor]:
        x = self.stem(x)
        feats = OrderedDict()
        for i, stage in enumerate(self.stages):
            x = stage(x)
            feats[str(i)] = x
        return self.fpn(feats)


def small_fpn(
    num_classes: int,
    image_size: int = 192,
    widths: tuple[int, ...] = (32, 48, 64, 96),
    fpn_channels: int = 64,
    representation: int = 256,
    anchor_sizes: tuple[int, ...] = (16, 32, 48, 96, 160),
    detections_per_img: int = 20,
) -> FasterRCNN:
    backbone = SmallBackbone(tuple(widths), fpn_channels)
    anchors = AnchorGenerator(
        sizes=tuple((s,) for s in anchor_sizes),
        aspect_ratios=((0.5, 1.0, 2.0),) * len(anchor_sizes),
    )
    names = [str(i) for i in range(len(widths))]
    return FasterRCNN(
        backbone,
        num_classes=None,
        min_size=image_size,
        max_size=image_size,
        rpn_anchor_generator=anchors,
        box_roi_pool=MultiScaleRoIAlign(names, output_size=7, sampling_ratio=2),
        box_head=TwoMLPHead(fpn_channels * 49, representation),
        box_predictor=FastRCNNPredictor(representation, num_classes),
        # Few objects per frame: a few hundred proposals and RoI samples are plenty, and RoIAlign
        # over thousands of them dominates a CPU step.
        rpn_pre_nms_top_n_train=600,
        rpn_post_nms_top_n_train=300,
        rpn_pre_nms_top_n_test=300,
        rpn_post_nms_top_n_test=150,
        rpn_batch_size_per_image=128,
        box_batch_size_per_image=128,
        box_detections_per_img=detections_per_img,
    )


def resnet50_fpn(
    num_classes: int = 91, detections_per_img: int = 100, image_size: int | None = None, **kw: Any
) -> FasterRCNN:
    """torchvision's Faster R-CNN R50-FPN; ``image_size`` fixes the input side (default: COCO's
    800-1333 px resize)."""
    from torchvision.models.detection import fasterrcnn_resnet50_fpn

    if image_size is not None:
        kw.update(min_size=image_size, max_size=image_size)
    return fasterrcnn_resnet50_fpn(
        weights=None,
        weights_backbone=None,
        num_classes=num_classes,
        box_detections_per_img=detections_per_img,
        **kw,
    )


ARCHITECTURES = {"small_fpn": small_fpn, "resnet50_fpn": resnet50_fpn}


def build(arch: dict[str, Any]) -> FasterRCNN:
    """Rebuild a detector from its recorded ``{"name", "kwargs"}``."""
    if arch.get("name") not in ARCHITECTURES:
        raise CheckpointError(f"unknown detector architecture {arch.get('name')!r}")
    return ARCHITECTURES[arch["name"]](**arch.get("kwargs", {}))


def save_checkpoint(
    path: str | Path,
    model: nn.Module,
    arch: dict[str, Any],
    class_names: list[str],
    made_by: dict[str, Any],
) -> None:
    """One file with everything needed to rebuild and use the detector.

    ``class_names[0]`` is ``__background__``, as torchvision numbers classes."""
    state = {
        "schema_version": CHECKPOINT_SCHEMA,
        "kind": "detector",
        "architecture": arch,
        "class_names": list(class_names),
        "state_dict": model.state_dict(),
        "made_by": made_by,
    }
    # To an open file: given a path, torch.save names the zip records after the (random, temporary)
    # file name, so equal weights would get different bytes and DVC would rerun what follows.
    with io.atomic_path(path) as tmp, open(tmp, "wb") as fh:
        torch.save(state, fh)


def load_checkpoint(path: str | Path) -> tuple[FasterRCNN, dict[str, Any]]:
    """Rebuild a detector saved by :func:`save_checkpoint`; returns (model in eval mode, meta)."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: detector checkpoint not found; run `dvc repro detector`")
    try:
        state = io.load_torch(path, "detector checkpoint", "rebuild it: `dvc repro -f detector`")
    except PipelineError as err:
        raise CheckpointError(str(err)) from None
    if state.get("kind") != "detector" or state.get("schema_version") != CHECKPOINT_SCHEMA:
        raise CheckpointError(
            f"{path}: detector checkpoint schema {state.get('schema_version')!r}, this code reads "
            f"{CHECKPOINT_SCHEMA}; rebuild it with `dvc repro -f detector`"
        )
    model = build(state["architecture"])
    model.load_state_dict(state["state_dict"])
    model.eval()
    meta = {k: v for k, v in state.items() if k != "state_dict"}
    return model, meta
