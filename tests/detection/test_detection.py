"""Detector checkpoints, per-box features, the Zarr store, resuming and sharding."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import torch

from pipeline import media
from pipeline.detection.backends import CocoParams, DetectorError, FileParams, make_coco, make_file
from pipeline.detection.infer import box_features, detect_with_features
from pipeline.detection.model import CheckpointError, load_checkpoint, save_checkpoint
from pipeline.detection.run import DetectParams, detect_all
from pipeline.detection.store import DetectionStore, StoreError
from pipeline.detection.train import FrameSet, average_precision
from pipeline.download.store import write_status
from pipeline.media import to_tensor
from tests.conftest import REPO, run_stage, tiny_model

PARAMS = DetectParams(fps=2.0, max_boxes=5, min_score=0.0, batch_size=3, threads=1, shard_clips=2)


def test_checkpoint_round_trip_and_refusals(tiny_clips, tmp_path):
    model, meta = load_checkpoint(tiny_clips["ckpt"])
    assert meta["class_names"] == ["__background__", "a", "b", "c"]
    ref = tiny_model()
    for k, v in ref.state_dict().items():
        assert torch.equal(v, model.state_dict()[k])
    with pytest.raises(CheckpointError, match="not found; run `dvc repro detector`"):
        load_checkpoint(tmp_path / "none.pt")
    bad = tmp_path / "bad.pt"
    torch.save({"kind": "detector", "schema_version": 99}, bad)
    with pytest.raises(CheckpointError, match="schema 99, this code reads 1"):
        load_checkpoint(bad)
    # The same weights saved again under another name: the same bytes (DVC compares md5s).
    arch = meta["architecture"]
    save_checkpoint(tmp_path / "a.pt", ref, arch, meta["class_names"], {"kind": "test"})
    save_checkpoint(tmp_path / "other.pt", ref, arch, meta["class_names"], {"kind": "test"})
    assert (tmp_path / "a.pt").read_bytes() == (tmp_path / "other.pt").read_bytes()


def test_features_are_those_of_the_final_boxes(tiny_clips):
    model, _ = load_checkpoint(tiny_clips["ckpt"])
    frames = media.decode_frames(
        tiny_clips["media"] / tiny_clips["rows"][0]["clip_id"] / "video.mp4"
    )
    images = [to_tensor(f) for f in frames[:2]]
    dets = detect_with_features(model, images)
    plain = model(images)
    for det, ref, image in zip(dets, plain, images, strict=True):
        assert len(det["boxes"]) > 0
        for key in ("boxes", "scores", "labels"):
            assert torch.equal(det[key], ref[key])
        again = box_features(model, image, det["boxes"])
        assert torch.allclose(again, det["features"], atol=1e-5)


def test_store_round_trip_resume_and_corrupt_video(tiny_clips, tmp_path):
    rows = [
        *tiny_clips["rows"],
        {"clip_id": "broken", "status": "ok"},
        {"clip_id": "gone", "status": "unavailable"},
    ]
    (tiny_clips["media"] / "broken").mkdir(exist_ok=True)
    (tiny_clips["media"] / "broken" / "video.mp4").write_bytes(b"\0" * 1000)
    store_path, parts = tmp_path / "d.zarr", tmp_path / "parts"
    metrics = detect_all(rows, tiny_clips["media"], tiny_clips["ckpt"], PARAMS, store_path, parts)
    assert metrics["clips"] == 4 and metrics["skipped"] == 1
    assert "broken" in metrics["skipped_clips"]
    store = DetectionStore(store_path)
    assert store.clip_ids == sorted(r["clip_id"] for r in tiny_clips["rows"])
    assert store.class_names == ["__background__", "a", "b", "c"]
    assert store.attrs["params"]["max_boxes"] == 5 and store.attrs["skipped"]
    model, _ = load_checkpoint(tiny_clips["ckpt"])
    cid = store.clip_ids[0]
    got = store.read(cid)
    assert got["times"].tolist() == [0.0, 0.5, 1.0, 1.5]
    assert got["features"].dtype == np.float16 and got["features"].shape == (4, 5, 16)
    frames = media.decode_frames(tiny_clips["media"] / cid / "video.mp4")
    for t, time_s in enumerate(got["times"]):
        n = got["counts"][t]
        assert n > 0 and np.all(got["labels"][t, n:] == -1)
        boxes = torch.from_numpy(got["boxes"][t, :n])
        image = to_tensor(frames[int(round(time_s * 4))])
        expect = box_features(model, image, boxes).numpy()
        np.testing.assert_allclose(
            got["features"][t, :n].astype(np.float32), expect, rtol=0.01, atol=0.01
        )
    # A rerun reuses every part: the files are untouched and the store is the same.
    mtimes = {p.name: p.stat().st_mtime_ns for p in parts.glob("*.npz")}
    detect_all(rows, tiny_clips["media"], tiny_clips["ckpt"], PARAMS, store_path, parts)
    assert {p.name: p.stat().st_mtime_ns for p in parts.glob("*.npz")} == mtimes


def test_a_re_cut_clip_is_detected_again_and_a_corrupt_store_is_named(tiny_clips, tmp_path):
    import shutil

    media_dir = tmp_path / "media"
    shutil.copytree(tiny_clips["media"], media_dir)
    rows = tiny_clips["rows"]
    store_path, parts = tmp_path / "d.zarr", tmp_path / "parts"
    detect_all(rows, media_dir, tiny_clips["ckpt"], PARAMS, store_path, parts)
    first, second = rows[0]["clip_id"], rows[1]["clip_id"]
    before = DetectionStore(store_path).read(first)
    # The clip is cut again at another size (a new download.size): its boxes must follow.
    video = media_dir / first / "video.mp4"
    small = tmp_path / "small.mp4"
    subprocess.run(
        [
            media.ffmpeg_exe(),
            "-loglevel",
            "error",
            "-i",
            str(video),
            "-vf",
            "scale=48:48",
            str(small),
        ],
        check=True,
    )
    shutil.copy(small, video)
    (parts / f".{second}.npz.abcd.tmp").write_bytes(b"half-written")  # a killed write
    mtime = (parts / f"{second}.npz").stat().st_mtime_ns
    detect_all(rows, media_dir, tiny_clips["ckpt"], PARAMS, store_path, parts)
    after = DetectionStore(store_path).read(first)
    assert (parts / f"{second}.npz").stat().st_mtime_ns == mtime  # the others are reused
    assert not list(parts.glob(".*.tmp"))
    n = int(after["counts"][0])
    assert n > 0 and after["boxes"][0, :n, 2:].max() <= 48 + 1e-3  # boxes of 48 px frames
    assert not np.array_equal(before["boxes"], after["boxes"])
    # A damaged shard: the error names the store, the clip and what to do.
    for shard in (store_path / "boxes").rglob("*"):
        if shard.is_file() and shard.name != "zarr.json":
            shard.write_bytes(b"\0" * 7)
    with pytest.raises(StoreError, match=f"clip {first} .*delete it and rebuild it"):
        DetectionStore(store_path).read(first)
    (store_path / "zarr.json").write_text("{not json")
    with pytest.raises(StoreError, match="not a readable detections store"):
        DetectionStore(store_path)


def test_store_of_another_schema_is_refused(tmp_path):
    import zarr

    group = zarr.open_group(str(tmp_path / "old.zarr"), mode="w")
    group.attrs["schema_version"] = 0
    with pytest.raises(StoreError, match="schema_version 0, this code reads 2"):
        DetectionStore(tmp_path / "old.zarr")
    with pytest.raises(StoreError, match="no detections store here"):
        DetectionStore(tmp_path / "nothing.zarr")


@pytest.mark.slow
def test_torchrun_two_processes_give_the_same_store(tiny_clips, tmp_path):
    status = tmp_path / "status.jsonl"
    write_status(status, tiny_clips["rows"])
    params = tmp_path / "params.yaml"
    params.write_text(
        "base:\n  device: cpu\n"
        "detect:\n  fps: 2.0\n  max_boxes: 5\n  min_score: 0.0\n  batch_size: 3\n"
        "  threads: 1\n  shard_clips: 2\n"
    )

    def args(name):
        return [
            "--params",
            str(params),
            "--status",
            str(status),
            "--media",
            str(tiny_clips["media"]),
            "--detector",
            str(tiny_clips["ckpt"]),
            "--parts",
            str(tmp_path / f"{name}-parts"),
            "--out",
            str(tmp_path / f"{name}.zarr"),
            "--metrics",
            str(tmp_path / f"{name}.json"),
        ]

    assert run_stage("detect", args("one")) == 0  # one process: this one
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2"]
    subprocess.run(
        [*torchrun, str(REPO / "stages" / "detect.py"), *args("two")],
        check=True,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        cwd=tmp_path,
        timeout=300,
    )
    one, two = DetectionStore(tmp_path / "one.zarr"), DetectionStore(tmp_path / "two.zarr")
    assert one.clip_ids == two.clip_ids
    for cid in one.clip_ids:
        a, b = one.read(cid), two.read(cid)
        for key in a:
            np.testing.assert_array_equal(a[key], b[key])
    assert json.loads((tmp_path / "one.json").read_text()) == json.loads(
        (tmp_path / "two.json").read_text()
    )


def test_average_precision_on_hand_made_boxes():
    truths = FrameSet(
        images=[None, None],
        boxes=[
            np.array([[0, 0, 10, 10]], np.float32),
            np.array([[20, 20, 30, 30], [0, 0, 5, 5]], np.float32),
        ],
        labels=[np.array([1]), np.array([1, 2])],
        class_names=["a", "b"],
    )
    perfect = [
        {"boxes": b, "scores": np.ones(len(b)), "labels": lab}
        for b, lab in zip(truths.boxes, truths.labels, strict=True)
    ]
    assert average_precision(perfect, truths)["map"] == pytest.approx(1.0)
    shifted = [{**d, "boxes": d["boxes"] + 6} for d in perfect]  # IoU < 0.5 everywhere
    assert average_precision(shifted, truths)["map"] == 0.0
    half = [perfect[0], {**perfect[1], "labels": np.array([1, 1])}]  # class b missed
    out = average_precision(half, truths)
    assert out["per_class"]["b"] == 0.0 and out["map"] == pytest.approx(0.5, abs=0.01)


def test_coco_backend_offline_says_where_the_file_goes(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "hub"))
    monkeypatch.setattr(torch.hub, "_hub_dir", None, raising=False)
    with pytest.raises(DetectorError) as err:
        make_coco(CocoParams(detections_per_img=10), tmp_path / "d.pt")
    msg = str(err.value)
    assert "fasterrcnn_resnet50_fpn_coco-258fb6c6.pth" in msg
    assert str(tmp_path / "hub" / "hub" / "checkpoints") in msg
    assert not (tmp_path / "d.pt").exists()


def test_file_backend(tmp_path):
    model = tiny_model()
    torch.save(model.state_dict(), tmp_path / "w.pth")
    (tmp_path / "classes.txt").write_text("a\nb\nc\n")
    with pytest.raises(DetectorError, match="does not load into resnet50_fpn"):
        make_file(
            FileParams(str(tmp_path / "w.pth"), "resnet50_fpn", str(tmp_path / "classes.txt")),
            tmp_path / "d.pt",
        )
    with pytest.raises(DetectorError, match="nope.pth: not found"):
        make_file(
            FileParams(str(tmp_path / "nope.pth"), "small_fpn", str(tmp_path / "classes.txt")),
            tmp_path / "d.pt",
        )


def test_both_architectures_honour_image_size():
    from pipeline.detection.model import build

    for name in ("small_fpn", "resnet50_fpn"):
        model = build({"name": name, "kwargs": {"num_classes": 3, "image_size": 160}})
        assert model.transform.min_size == (160,) and model.transform.max_size == 160
