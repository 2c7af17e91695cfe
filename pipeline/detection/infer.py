"""Detections with the box head's feature vector of each *final* box.

A forward hook on ``roi_heads.box_head`` sees every proposal before score filtering and NMS and
cannot be aligned with the final detections. So the final boxes are pooled again from the same
backbone features (``box_roi_pool`` -> ``box_head``): one feature per returned box, in order.

Shapes: images ``(3, H, W)`` float in [0, 1]; per image, boxes ``(n, 4)`` xyxy in the input's
pixels, scores ``(n,)``, labels ``(n,)``, features ``(n, D)``.
"""

from __future__ import annotations

import torch
from torchvision.models.detection import FasterRCNN


@torch.no_grad()
def detect_with_features(model: FasterRCNN, images: list[torch.Tensor]) -> list[dict]:
    """Run ``model`` (eval mode) and return its detections, each with its box feature."""
    if model.training:
        raise ValueError("detect_with_features needs the model in eval mode (model.eval())")
    original_sizes = [tuple(im.shape[-2:]) for im in images]
    batch, _ = model.transform(images)
    feats = model.backbone(batch.tensors)
    proposals, _ = model.rpn(batch, feats)
    dets, _ = model.roi_heads(feats, proposals, batch.image_sizes)
    pooled = model.roi_heads.box_roi_pool(feats, [d["boxes"] for d in dets], batch.image_sizes)
    vectors = model.roi_heads.box_head(pooled).split([len(d["boxes"]) for d in dets])
    dets = model.transform.postprocess(dets, batch.image_sizes, original_sizes)
    for det, vec in zip(dets, vectors, strict=True):
        det["features"] = vec
    return dets


@torch.no_grad()
def box_features(model: FasterRCNN, image: torch.Tensor, boxes: torch.Tensor) -> torch.Tensor:
    """The box head's features of given boxes (xyxy, the image's pixels) ``(n, D)``; used to check
    stored features and to embed boxes that the detector did not propose (a background crop)."""
    batch, _ = model.transform([image])
    feats = model.backbone(batch.tensors)
    (h, w), (th, tw) = image.shape[-2:], batch.image_sizes[0]
    scale = torch.tensor([tw / w, th / h, tw / w, th / h], dtype=boxes.dtype)
    pooled = model.roi_heads.box_roi_pool(feats, [boxes * scale], batch.image_sizes)
    return model.roi_heads.box_head(pooled)
