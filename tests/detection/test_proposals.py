"""The detector-free front end: selective-search proposals with their pixels, through the detect
and graphs stages, into training the SoBB separator."""

import dataclasses

import numpy as np
import pytest

from pipeline.detection.proposals import CLASS_NAMES, crop_pixels, iou_matrix, propose
from pipeline.detection.run import DetectParams, detect_all
from pipeline.detection.store import DetectionStore
from pipeline.graphs.build import GraphsParams
from pipeline.graphs.class_map import ClassMapParams
from pipeline.graphs.run import build_all
from pipeline.graphs.store import GraphStore
from pipeline.media import sample_frames

PARAMS = DetectParams(
    fps=1.0, max_boxes=6, min_score=0.0, batch_size=3, threads=1, shard_clips=2,
    backend="proposals", crop=8, proposal_side=96,
)  # fmt: skip


def scene():
    """Two flat rectangles (red, blue) on a grey background."""
    img = np.full((96, 128, 3), 128, np.uint8)
    img[10:50, 10:40] = (255, 0, 0)
    img[50:90, 70:120] = (0, 0, 255)
    return img


def test_proposals_find_the_objects_and_stay_in_the_frame():
    boxes = propose(scene(), max_boxes=20, side=128)
    assert 2 <= len(boxes) <= 20 and boxes.dtype == np.float32
    assert (boxes[:, :2] >= 0).all() and (boxes[:, 2] <= 128).all() and (boxes[:, 3] <= 96).all()
    assert (boxes[:, 2:] > boxes[:, :2]).all()
    truth = np.array([[10, 10, 40, 50], [70, 50, 120, 90]], np.float32)
    assert (iou_matrix(truth, boxes).max(1) > 0.7).all()
    assert (np.triu(iou_matrix(boxes, boxes), 1) < 0.9).all()  # near-duplicates dropped
    assert len(propose(scene(), max_boxes=1, side=64)) == 1


def test_crops_are_the_box_pixels():
    crops = crop_pixels(scene(), np.array([[12, 12, 38, 48], [72, 52, 118, 88]]), 4)
    assert crops.shape == (2, 48) and crops.dtype == np.float32
    red, blue = crops.reshape(2, 3, 4, 4)
    np.testing.assert_allclose(red.mean((1, 2)), [1, 0, 0])
    np.testing.assert_allclose(blue.mean((1, 2)), [0, 0, 1])


def test_a_detector_run_records_no_proposal_setting():
    default = DetectParams(
        fps=2.0, max_boxes=5, min_score=0.0, batch_size=3, threads=1, shard_clips=2
    )
    assert set(default.record()) == {
        "fps",
        "max_boxes",
        "min_score",
        "batch_size",
        "threads",
        "shard_clips",
    }
    assert PARAMS.record()["backend"] == "proposals" and PARAMS.record()["crop"] == 8
    with pytest.raises(ValueError, match="crop"):
        dataclasses.replace(PARAMS, crop=2)


@pytest.fixture(scope="module")
def proposals(tiny_clips, tmp_path_factory):
    root = tmp_path_factory.mktemp("proposals")
    rows = tiny_clips["rows"]
    # no detector is read: the checkpoint argument may name a file that is not there
    metrics = detect_all(
        rows, tiny_clips["media"], root / "none.pt", PARAMS, root / "d.zarr", root / "p"
    )
    assert metrics["clips"] == len(rows) and metrics["feature_dim"] == 3 * 8 * 8
    return root


def test_the_detect_stage_stores_proposals_with_their_pixels(tiny_clips, proposals):
    store = DetectionStore(proposals / "d.zarr")
    assert store.class_names == CLASS_NAMES
    assert store.attrs["detector"]["architecture"] == "selective_search"
    cid = store.clip_ids[0]
    got = store.read(cid)
    frames, times = sample_frames(tiny_clips["media"] / cid / "video.mp4", 1.0)
    assert got["times"].tolist() == times.tolist()
    for t in range(len(frames)):
        n = int(got["counts"][t])
        assert n > 0 and (got["labels"][t, :n] == 1).all() and (got["labels"][t, n:] == -1).all()
        assert (np.diff(got["scores"][t, :n]) < 0).all()  # selective search's order
        expect = crop_pixels(frames[t], got["boxes"][t, :n], 8)
        np.testing.assert_allclose(got["features"][t, :n].astype(np.float32), expect, atol=2e-3)


def test_graphs_of_proposals_have_pixel_nodes(tiny_clips, proposals, tmp_path):
    params = GraphsParams(
        max_principal=2, iou=0.0, min_score=0.0, max_context=20, background="random_crop",
        crop_min=0.25, crop_max=0.75, threads=1,
    )  # fmt: skip
    class_map = ClassMapParams("proposals", {"x": ["a"], "y": ["b"]}, {}, {})
    objects = [["x"], ["x", "y"], ["y"], ["y", "x"]]
    manifest = [
        {"clip_id": r["clip_id"], "status": "ok", "split": s, "principal_objects": o}
        for r, o, s in zip(
            tiny_clips["rows"], objects, ["train", "train", "val", "val"], strict=True
        )
    ]
    build_all(
        proposals / "d.zarr", manifest, params, class_map, tmp_path / "g.h5", seed=0,
        detector=tiny_clips["ckpt"], media_dir=tiny_clips["media"], cache_dir=tmp_path / "cache",
    )  # fmt: skip
    graphs = GraphStore(tmp_path / "g.h5")
    assert len(graphs) == 4 and graphs.crop_side == 8
    assert graphs.attrs["features"] == {"kind": "rgb_crop", "dim": 192, "crop": 8}
    assert graphs.attrs["class_map"]["ids"] == {"x": [1], "y": [1]}
    g = graphs.read(graphs.clip_ids[1])
    assert (g["role"] == 0).sum() == 2 and (g["role"] == 2).sum() == 1
    x = g["x"].astype(np.float32)
    assert x.shape[1] == 192 and x.min() >= 0 and x.max() <= 1  # pixels, background too
