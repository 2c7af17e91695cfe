"""Where the detect stage's boxes come from (``detect.backend``), and what their features are.

- ``detector``: the detector stage's checkpoint; each box's feature is the detector's box-head
  output (``box_head``, the checkpoint's ``fc7`` width).
- ``proposals``: selective search, no detector; class-agnostic boxes whose feature is the box's
  RGB crop (``rgb_crop``, ``3 * crop**2`` values; :mod:`pipeline.detection.proposals`).

The feature kind is written into the detection store (``features``) and carried by the graph
store, so the stages after it read what their node features are from the store they read, not
from another stage's params.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from pipeline import io, media
from pipeline.detection.store import empty_frames

BOX_HEAD, RGB_CROP = "box_head", "rgb_crop"


class DetectorBackend:
    """Boxes, classes, scores and box-head features of the detector stage's checkpoint."""

    def __init__(self, params, checkpoint: str | Path, device):
        from pipeline.detection.model import load_checkpoint

        self.params = params
        self.model, meta = load_checkpoint(checkpoint)
        self.model.to(device)
        self.class_names = meta["class_names"]
        self.made_by = {"architecture": meta["architecture"], "sha256": io.sha256_file(checkpoint)}
        dim = self.model.roi_heads.box_head.fc7.out_features
        self.features = {"kind": BOX_HEAD, "dim": dim}

    def detect(self, frames: np.ndarray) -> dict[str, np.ndarray]:
        """The store's fields but ``times`` for frames ``(T, H, W, 3)``, padded to
        ``max_boxes``; frames go to the model's device, results come back to the CPU."""
        from pipeline.detection.infer import detect_with_features
        from pipeline.device import model_device

        p, device = self.params, model_device(self.model)
        out = empty_frames(len(frames), p.max_boxes, self.features["dim"])
        for s in range(0, len(frames), p.batch_size):
            batch = [media.to_tensor(f).to(device) for f in frames[s : s + p.batch_size]]
            for j, det in enumerate(detect_with_features(self.model, batch)):
                det = {key: v.cpu() for key, v in det.items()}
                keep = (det["scores"] >= p.min_score).nonzero().flatten()[: p.max_boxes]
                n = len(keep)
                out["boxes"][s + j, :n] = det["boxes"][keep].numpy()
                out["scores"][s + j, :n] = det["scores"][keep].numpy()
                out["labels"][s + j, :n] = det["labels"][keep].numpy()
                out["features"][s + j, :n] = det["features"][keep].numpy().astype(np.float16)
                out["counts"][s + j] = n
        return out


class ProposalsBackend:
    """Selective-search proposals with their RGB crops as features (no detector)."""

    def __init__(self, params, checkpoint: str | Path | None = None, device=None):
        from pipeline.detection.proposals import CLASS_NAMES

        self.params = params
        self.class_names = CLASS_NAMES
        self.made_by = {"architecture": "selective_search", "sha256": None}
        self.features = {"kind": RGB_CROP, "dim": 3 * params.crop**2, "crop": params.crop}

    def detect(self, frames: np.ndarray) -> dict[str, np.ndarray]:
        from pipeline.detection.proposals import propose_frames

        p = self.params
        return propose_frames(frames, p.max_boxes, p.crop, p.proposal_side)


DETECT_BACKENDS = {"detector": DetectorBackend, "proposals": ProposalsBackend}


def crop_side(features: dict[str, Any]) -> int:
    """The side of the RGB crops that a detection store's features are (its ``features``
    attribute), or 0 for a detector's (the graph store carries it: ``GraphStore.crop_side``)."""
    return int(features["crop"]) if features["kind"] == RGB_CROP else 0
