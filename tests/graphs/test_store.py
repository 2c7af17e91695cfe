"""The HDF5 graph store: round trip into PyG, refusals, and the stage's driver on tiny clips."""

import dataclasses
import json
import pickle

import h5py
import numpy as np
import pytest
import torch

from pipeline.detection.infer import box_features
from pipeline.detection.model import load_checkpoint
from pipeline.detection.run import DetectParams, detect_all
from pipeline.errors import PipelineError
from pipeline.graphs.build import GraphsParams
from pipeline.graphs.class_map import ClassMapError, ClassMapParams, resolve
from pipeline.graphs.run import build_all
from pipeline.graphs.store import (
    SCHEMA_VERSION,
    GraphStore,
    GraphStoreError,
    complete_edges,
    write_store,
)
from pipeline.media import sample_frames, to_tensor

D = 5


def graph(cid, split, n_context, label):
    n = len(label) + n_context + 1
    role = np.array([0] * len(label) + [1] * n_context + [2], np.int8)
    rng = np.random.default_rng(n)
    return {
        "clip_id": cid,
        "split": split,
        "label": label,
        "x": rng.normal(size=(n, D)).astype(np.float16),
        "box": rng.uniform(0, 90, size=(n, 4)).astype(np.float32),
        "frame": np.arange(n, dtype=np.int16),
        "time": np.arange(n, dtype=np.float32) / 2,
        "score": np.linspace(1, 0, n, dtype=np.float32),
        "role": role,
        "slot": np.array(list(range(len(label))) + [0] * n_context + [-1], np.int8),
    }


@pytest.fixture
def store_path(tmp_path):
    graphs = [graph("c2", "val", 0, [1]), graph("c1", "train", 3, [0, 2])]
    skipped = [{"clip_id": "c3", "split": "test", "reason": "not_detected", "object": "bell"}]
    path = tmp_path / "graphs.h5"
    attrs = {"label_names": ["a", "b", "c"], "features": {"kind": "box_head", "dim": D}}
    write_store(path, graphs, skipped, {**attrs, "params": {"iou": 0.1}}, D, 2)
    with pytest.raises(ValueError, match=r"needs the attrs \['features'\]"):
        write_store(tmp_path / "bad.h5", graphs, skipped, {"label_names": ["a"]}, D, 2)
    return path, {g["clip_id"]: g for g in graphs}


def test_round_trip_into_a_pyg_batch(store_path):
    from torch_geometric.data import Batch

    path, graphs = store_path
    store = GraphStore(path)
    assert store.clip_ids == ["c1", "c2"] and store.ids("val") == ["c2"]
    assert store.label_names == ["a", "b", "c"] and store.attrs["params"] == {"iou": 0.1}
    assert store.skipped == [
        {"clip_id": "c3", "split": "test", "reason": "not_detected", "object": "bell"}
    ]
    for cid, g in graphs.items():
        got = store.read(cid)
        for key in ("x", "box", "frame", "time", "score", "role", "slot"):
            np.testing.assert_array_equal(got[key], g[key])
    batch = store.batch(["c1", "c2"])
    assert isinstance(batch, Batch) and batch.num_graphs == 2
    assert batch.x.shape == (8, D) and batch.x.dtype == torch.float32
    assert batch.batch.tolist() == [0] * 6 + [1] * 2  # c1: 2 + 3 + 1 nodes, c2: 1 + 1
    assert batch.y.tolist() == [[0, 2], [1, -1]]
    assert batch.clip_id == ["c1", "c2"]
    assert batch.edge_index.shape[1] == 6 * 5 + 2 * 1
    src, dst = batch.edge_index
    assert (batch.batch[src] == batch.batch[dst]).all()  # no edge between graphs
    assert (batch.role[batch.batch == 1]).tolist() == [0, 2]
    with pytest.raises(KeyError, match="c3 has no graph"):
        store.read("c3")
    # a store read in one process can be handed to DataLoader workers
    again = pickle.loads(pickle.dumps(store))
    np.testing.assert_array_equal(again.read("c2")["x"], graphs["c2"]["x"])


def test_2_5d_geometry_round_trip_as_edge_attr(store_path, tmp_path):
    _, graphs = store_path
    for g in graphs.values():
        n = len(g["role"])
        g["pos"] = np.arange(n * 3, dtype=np.float32).reshape(n, 3)
        g["distance"] = np.arange(n * (n - 1), dtype=np.float32)
        g["weight"] = np.linspace(0, 1, n * (n - 1), dtype=np.float32)
        slots = len(g["label"])  # motion labels too: both reach PyG
        g["displacement"] = np.zeros((slots, 3, 3), np.float32)
        g["direction10"] = np.full((slots, 3), 4, np.int8)
        g["direction28"] = np.full((slots, 3), 20, np.int8)
    attrs = {"label_names": ["a", "b", "c"], "features": {"kind": "box_head", "dim": D}}
    write_store(tmp_path / "g.h5", list(graphs.values()), [], attrs, D, 2)
    store = GraphStore(tmp_path / "g.h5")
    assert store.edge_dim == 1 and GraphStore(store_path[0]).edge_dim == 0
    for cid, g in graphs.items():
        got = store.read(cid)
        for key in ("pos", "distance", "weight"):
            np.testing.assert_array_equal(got[key], g[key])
    batch = store.batch(["c1", "c2"])
    assert batch.edge_attr.shape == (batch.edge_index.shape[1], 1)
    want = np.concatenate([graphs["c1"]["weight"], graphs["c2"]["weight"]])
    np.testing.assert_array_equal(batch.edge_attr[:, 0].numpy(), want)
    assert batch.pos.shape == (8, 3)
    assert batch.direction10.shape == (2, 2, 3)  # (graphs, slots, windows); c2's slot 2 empty
    assert batch.direction10[1].tolist() == [[4, 4, 4], [-1, -1, -1]]


def test_complete_edges():
    assert complete_edges(3).tolist() == [[0, 0, 1, 1, 2, 2], [1, 2, 0, 2, 0, 1]]
    assert complete_edges(1).shape == (2, 0)


def test_refusals(store_path, tmp_path):
    path, _ = store_path
    with h5py.File(path, "a") as f:
        f.attrs["schema_version"] = 99
    with pytest.raises(
        GraphStoreError, match=f"schema_version 99, this code reads {SCHEMA_VERSION}"
    ):
        GraphStore(path)
    with pytest.raises(GraphStoreError, match="no graph store here"):
        GraphStore(tmp_path / "none.h5")
    (tmp_path / "bad.h5").write_bytes(b"not hdf5")
    with pytest.raises(GraphStoreError, match="not a readable HDF5 file"):
        GraphStore(tmp_path / "bad.h5")


PARAMS = GraphsParams(
    max_principal=2,
    iou=0.1,
    min_score=0.0,
    max_context=3,
    background="random_crop",
    crop_min=0.25,
    crop_max=0.75,
    threads=1,
)
CLASS_MAP = ClassMapParams("synthetic", {"x": ["a", "b"], "y": ["c"], "z": ["zz"]}, {}, {})


@pytest.fixture(scope="module")
def detections(tiny_clips, tmp_path_factory):
    root = tmp_path_factory.mktemp("graphs")
    params = DetectParams(
        fps=2.0, max_boxes=5, min_score=0.0, batch_size=4, threads=1, shard_clips=2
    )
    detect_all(
        tiny_clips["rows"],
        tiny_clips["media"],
        tiny_clips["ckpt"],
        params,
        root / "d.zarr",
        root / "parts",
    )
    objects = [["x"], ["x", "y"], ["z"], ["y", "x"]]
    manifest = [
        {"clip_id": r["clip_id"], "status": "ok", "split": "train", "principal_objects": o}
        for r, o in zip(tiny_clips["rows"], objects, strict=True)
    ]
    return root / "d.zarr", manifest


def test_build_all_random_crop_is_deterministic_and_cached(tiny_clips, detections, tmp_path):
    det, manifest = detections

    def run(name, cache, params=PARAMS):
        return build_all(
            det,
            manifest,
            params,
            CLASS_MAP,
            tmp_path / f"{name}.h5",
            seed=3,
            detector=tiny_clips["ckpt"],
            media_dir=tiny_clips["media"],
            cache_dir=tmp_path / cache,
        )

    metrics, sizes = run("one", "cache1")
    run("two", "cache2")
    run("three", "cache1")  # from the cache
    one, two, three = (GraphStore(tmp_path / f"{n}.h5") for n in ("one", "two", "three"))
    assert one.clip_ids == two.clip_ids == three.clip_ids
    assert len(one.clip_ids) + len(one.skipped) == 4
    assert {s["reason"] for s in one.skipped} <= {"unmapped", "not_detected"}
    z_clip = manifest[2]["clip_id"]
    assert {"clip_id": z_clip, "split": "train", "reason": "unmapped", "object": "z"} in one.skipped
    assert metrics["skipped_per_class"]["unmapped"] == {"z": 1}
    assert sum(r["graphs"] for r in sizes) == metrics["graphs"] == len(one)
    for cid in one.clip_ids:
        a, b, c = one.read(cid), two.read(cid), three.read(cid)
        for key in a:
            np.testing.assert_array_equal(a[key], b[key])
            np.testing.assert_array_equal(a[key], c[key])
    # the background node is the crop's feature through the same box head
    model, _ = load_checkpoint(tiny_clips["ckpt"])
    cid = one.clip_ids[0]
    g = one.read(cid)
    bg = int(np.flatnonzero(g["role"] == 2)[0])
    frames, _ = sample_frames(tiny_clips["media"] / cid / "video.mp4", 2.0)
    want = box_features(
        model, to_tensor(frames[g["frame"][bg]]), torch.from_numpy(g["box"][bg : bg + 1])
    )
    np.testing.assert_allclose(g["x"][bg], want[0].numpy(), rtol=1e-2, atol=1e-3)
    assert g["score"][bg] == 0.0
    # another seed, another crop
    other = build_all(
        det,
        manifest,
        PARAMS,
        CLASS_MAP,
        tmp_path / "s.h5",
        seed=4,
        detector=tiny_clips["ckpt"],
        media_dir=tiny_clips["media"],
        cache_dir=tmp_path / "cache1",
    )
    assert other[0]["graphs"] == metrics["graphs"]
    assert not np.array_equal(GraphStore(tmp_path / "s.h5").read(cid)["box"][bg], g["box"][bg])


def test_build_all_first_box_and_refusals(tiny_clips, detections, tmp_path):
    det, manifest = detections
    params = dataclasses.replace(PARAMS, background="first_box")
    build_all(det, manifest, params, CLASS_MAP, tmp_path / "g.h5", seed=0)
    store = GraphStore(tmp_path / "g.h5")
    assert store.attrs["background"] == "first_box"
    assert store.attrs["class_map"]["ids"] == {"x": [1, 2], "y": [3], "z": []}
    for cid in store.clip_ids:
        g = store.read(cid)
        assert g["role"][-1] == 2 and g["slot"][-1] == -1
        assert g["frame"][-1] == 0  # the untrained detector has boxes in every frame
    with pytest.raises(PipelineError, match="random_crop needs --detector"):
        build_all(det, manifest, PARAMS, CLASS_MAP, tmp_path / "x.h5", seed=0)
    with pytest.raises(PipelineError, match="not ok in the download status"):
        build_all(det, manifest[:2], params, CLASS_MAP, tmp_path / "x.h5", seed=0)
    wrong = tmp_path / "other.pt"
    wrong.write_bytes(tiny_clips["ckpt"].read_bytes() + b"\0")
    with pytest.raises(PipelineError, match="is not the detector that made"):
        build_all(
            det,
            manifest,
            PARAMS,
            CLASS_MAP,
            tmp_path / "x.h5",
            seed=0,
            detector=wrong,
            media_dir=tiny_clips["media"],
            cache_dir=tmp_path / "c",
        )
    assert not (tmp_path / "x.h5").exists()


def test_a_class_map_that_fits_no_detector_class_stops_early():
    params = ClassMapParams("coco", {}, {"dogs": ["dog"]}, {})
    assert resolve(params, ["__background__", "person", "dog"])["ids"] == {"dogs": [2]}
    with pytest.raises(ClassMapError, match="class_map.coco names none of the detector's"):
        resolve(params, ["__background__", "bell", "birds"])


def test_metrics_file_is_json(detections, tmp_path):
    det, manifest = detections
    metrics, _ = build_all(
        det,
        manifest,
        dataclasses.replace(PARAMS, background="first_box"),
        CLASS_MAP,
        tmp_path / "g.h5",
        seed=0,
    )
    assert set(metrics) >= {"nodes_per_graph", "context_per_principal", "skipped_per_reason"}
    json.dumps(metrics)


def test_a_background_crop_is_embedded_again_when_its_clips_video_changes(
    tiny_clips, detections, tmp_path
):
    import shutil
    import subprocess

    from pipeline import media
    from pipeline.detection.store import DetectionStore
    from pipeline.graphs.run import CropEmbedder

    det, _ = detections
    media_dir = tmp_path / "media"
    shutil.copytree(tiny_clips["media"], media_dir)
    store = DetectionStore(det)
    cid = store.clip_ids[0]
    embed = CropEmbedder(tiny_clips["ckpt"], store, media_dir, tmp_path / "cache", PARAMS, 0)
    first = embed(cid, 4)
    cached = tmp_path / "cache" / f"{cid}.npz"
    mtime = cached.stat().st_mtime_ns
    again = embed(cid, 4)  # the same video: read from the cache
    assert cached.stat().st_mtime_ns == mtime and np.array_equal(first["x"], again["x"])
    video = media_dir / cid / "video.mp4"
    small = tmp_path / "small.mp4"
    cmd = [media.ffmpeg_exe(), "-loglevel", "error", "-i", str(video), "-vf", "scale=48:48"]
    subprocess.run([*cmd, str(small)], check=True)
    shutil.copy(small, video)  # cut again at another size
    recut = embed(cid, 4)
    assert cached.stat().st_mtime_ns != mtime
    assert recut["box"].max() <= 48 and first["box"].max() > 48
