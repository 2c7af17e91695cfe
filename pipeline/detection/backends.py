"""Detector backends: ``detector.kind`` selects how the detector checkpoint is made.

- ``coco``: torchvision's COCO-pretrained Faster R-CNN ResNet-50 FPN, through torchvision's weights
  API. Offline it cannot download; the error says which file to put where (the torch hub cache).
- ``file``: a local checkpoint in torchvision's layout (a state dict), with its class list.
- ``train``: trains a Faster R-CNN on a COCO-format box-annotation folder and scores it (mAP@0.5).
"""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path
from typing import Any, Literal

import torch

from pipeline import io
from pipeline.detection.model import build, save_checkpoint
from pipeline.detection.train import average_precision, load_frames, predict, train_detector
from pipeline.errors import PipelineError

log = logging.getLogger(__name__)
BACKGROUND = "__background__"


class DetectorError(PipelineError, RuntimeError):
    """A detector that cannot be made as configured."""


@dataclasses.dataclass(frozen=True)
class TrainParams:
    """``detector.train``: a detector trained from scratch on box annotations.

    Args:
        architecture: ``small_fpn`` (fast from scratch on CPU) or ``resnet50_fpn``.
        image_size: frames are resized to this side before the backbone.
        iterations: fixed number of steps (reproducible; a time budget is not).
        batch_size, lr: AdamW batch and peak learning rate (warm-up, then cosine decay).
        frame_stride: train on every n-th annotated frame.
        eval_stride: score on every n-th frame of the held-out split.
        eval_every: steps between points of the learning curve (0: only at the end).
        threads: torch CPU threads (pinned: the weights depend on it).
    """

    architecture: Literal["small_fpn", "resnet50_fpn"]
    image_size: int
    iterations: int
    batch_size: int
    lr: float
    frame_stride: int
    eval_stride: int
    eval_every: int
    threads: int


@dataclasses.dataclass(frozen=True)
class FileParams:
    """``detector.file``: a local checkpoint (state dict in torchvision's layout).

    Args:
        path: the ``.pth`` file.
        architecture: the architecture it fits (``resnet50_fpn``, ``small_fpn``).
        classes: a text file with one class name per line (background first excluded).
    """

    path: str | None
    architecture: Literal["small_fpn", "resnet50_fpn"]
    classes: str | None


@dataclasses.dataclass(frozen=True)
class CocoParams:
    """``detector.coco``: torchvision's COCO weights.

    Args:
        detections_per_img: boxes returned per frame.
    """

    detections_per_img: int


@dataclasses.dataclass(frozen=True)
class DetectorParams:
    """``detector``: ``kind`` selects the backend; its settings are the section of that name."""

    kind: Literal["train", "coco", "file"]
    train: TrainParams
    coco: CocoParams
    file: FileParams


def make_coco(params: CocoParams, out: Path, **_: Any) -> dict[str, Any]:
    """Load torchvision's COCO Faster R-CNN weights (downloading them into the torch hub cache
    when online) and save them as a detector checkpoint."""
    from torchvision.models.detection.faster_rcnn import FasterRCNN_ResNet50_FPN_Weights

    weights = FasterRCNN_ResNet50_FPN_Weights.COCO_V1
    file = Path(torch.hub.get_dir()) / "checkpoints" / Path(weights.url).name
    arch = {
        "name": "resnet50_fpn",
        "kwargs": {
            "num_classes": len(weights.meta["categories"]),
            "detections_per_img": params.detections_per_img,
        },
    }
    model = build(arch)
    try:
        state = weights.get_state_dict(progress=False, check_hash=True)
    except Exception as err:  # URLError offline, a hash mismatch, a truncated file
        raise DetectorError(
            f"could not load the COCO Faster R-CNN weights ({type(err).__name__}: {err}). "
            f"Offline, download {weights.url} elsewhere and place it at {file} (the torch hub "
            "cache; set TORCH_HOME to move it), or use detector.kind: train"
        ) from err
    model.load_state_dict(state)
    classes = list(weights.meta["categories"])
    classes[0] = BACKGROUND
    save_checkpoint(out, model, arch, classes, {"kind": "coco", "weights": weights.url})
    return {"kind": "coco"}


def make_file(params: FileParams, out: Path, **_: Any) -> dict[str, Any]:
    """Wrap a local torchvision-layout checkpoint and its class list."""
    if params.path is None or params.classes is None:
        raise DetectorError("detector.file.path and detector.file.classes must both be set")
    path, classes_file = Path(params.path), Path(params.classes)
    for p, key in ((path, "path"), (classes_file, "classes")):
        if not p.is_file():
            raise DetectorError(f"{p}: not found (detector.file.{key})")
    classes = [c.strip() for c in classes_file.read_text().splitlines() if c.strip()]
    arch = {"name": params.architecture, "kwargs": {"num_classes": len(classes) + 1}}
    model = build(arch)
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
        state = state.get("model", state.get("state_dict", state))
        model.load_state_dict(state)
    except Exception as err:
        raise DetectorError(
            f"{path}: does not load into {params.architecture} with {len(classes)} classes "
            f"(+ background): {err}"
        ) from err
    # the file's name and hash, not its path: the checkpoint's bytes must not depend on where
    # the user keeps the file
    origin = {"kind": "file", "name": path.name, "sha256": io.sha256_file(path)}
    save_checkpoint(out, model, arch, [BACKGROUND, *classes], origin)
    return {"kind": "file"}


def make_train(
    params: TrainParams, out: Path, *, annotations: Path | None, seed: int, **_: Any
) -> dict[str, Any]:
    """Train on ``annotations`` (``train.json``, scored on ``val.json``); returns the metrics."""
    if annotations is None:
        raise DetectorError("detector.kind train needs --annotations (a COCO folder)")
    torch.set_num_threads(params.threads)
    torch.manual_seed(seed)
    train = load_frames(annotations, "train", params.frame_stride)
    held_out = load_frames(annotations, "val", params.eval_stride)
    arch = {
        "name": params.architecture,
        "kwargs": {
            "num_classes": len(train.class_names) + 1,
            "image_size": params.image_size,
        },
    }
    model = build(arch)
    last: dict[str, Any] = {}

    def score(m):
        # train_detector always scores after the last step: that result is the final one.
        last.update(average_precision(predict(m, held_out.images), held_out))
        return last["map"]

    curve = train_detector(
        model,
        train,
        iterations=params.iterations,
        batch_size=params.batch_size,
        lr=params.lr,
        seed=seed,
        eval_fn=score,
        eval_every=params.eval_every or params.iterations,
    )
    save_checkpoint(
        out,
        model,
        arch,
        [BACKGROUND, *train.class_names],
        {
            "kind": "train",
            "params": dataclasses.asdict(params),
            "seed": seed,
            "map50": last["map"],
        },
    )
    return {
        "kind": "train",
        "map50": round(last["map"], 4),
        "per_class": {k: round(v, 4) for k, v in last["per_class"].items()},
        "train_frames": len(train.images),
        "held_out_frames": len(held_out.images),
        "curve": [{k: round(v, 4) for k, v in r.items()} for r in curve],
    }


BACKENDS = {"coco": make_coco, "file": make_file, "train": make_train}


def make_detector(
    params: DetectorParams, out: str | Path, *, annotations: str | Path | None, seed: int
) -> dict[str, Any]:
    """Make the checkpoint at ``out`` with the selected backend; returns its metrics."""
    settings = getattr(params, params.kind)
    return BACKENDS[params.kind](
        settings, Path(out), annotations=Path(annotations) if annotations else None, seed=seed
    )
