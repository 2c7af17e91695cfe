"""The depth stage on a tiny scenes world (oracle, relative oracle, a TorchScript file, MiDaS
offline), and the 2.5D graphs it feeds: store, skips with reasons, resume, edge weights."""

import dataclasses
import json
import shutil
import urllib.request

import numpy as np
import pytest
import torch

from pipeline.depth.backends import DepthError, FileParams, MidasParams, OracleParams
from pipeline.depth.run import DepthParams, depth_all
from pipeline.depth.store import DepthStore, DepthStoreError
from pipeline.detection.run import DetectParams, detect_all
from pipeline.graphs.build import GraphsParams
from pipeline.graphs.class_map import ClassMapParams
from pipeline.graphs.geometry import Asmp25dParams
from pipeline.graphs.run import build_all
from pipeline.graphs.store import GraphStore, complete_edges
from pipeline.params import BaseParams
from pipeline.sources.synthetic import download_synthetic, prepare_synthetic
from pipeline.sources.synthetic.scenes import ScenesParams
from pipeline.sources.table import write_table
from tests.conftest import tiny_world

BASE = BaseParams(seed=0, sample_rate=11025)
WORLD = tiny_world(
    flavour="scenes", n_train=3, n_val=1, n_test=1, seconds=2.0, size=96,
    scenes=ScenesParams(static_fraction=0.0),
)  # fmt: skip
PARAMS = DepthParams(
    backend="oracle", size=24, disparity_range=6.0, shard_clips=2, threads=1,
    oracle=OracleParams(), midas=MidasParams(), file=FileParams(),
)  # fmt: skip
GRAPHS = GraphsParams(
    max_principal=2, iou=0.0, min_score=0.0, max_context=3, background="first_box",
    crop_min=0.25, crop_max=0.75, threads=1, builder="asmp25d",
    asmp25d=Asmp25dParams(points=4),
)  # fmt: skip
PEOPLE = ["a", "b", "c"]  # the untrained test detector's classes
CLASS_MAP = ClassMapParams(
    "synthetic", {o: PEOPLE for o in ("man", "woman", "child", "robot")}, {}, {}
)


@pytest.fixture(scope="module")
def scenes(tiny_clips, tmp_path_factory):
    """A tiny scenes world laid out as the download stage leaves it, and its detections."""
    root = tmp_path_factory.mktemp("depth")
    source = root / "source"
    provenance = download_synthetic(source, WORLD, BASE)
    clips = prepare_synthetic(source, WORLD, BASE)
    params = {"source": "synthetic", "params": dataclasses.asdict(WORLD), "files": provenance}
    write_table(source, clips, params)
    media, rows = root / "media", []
    for clip in clips:
        cid = clip.clip_id
        (media / cid).mkdir(parents=True)
        shutil.copy(source / clip.url, media / cid / "video.mp4")
        rows.append(
            {"clip_id": cid, "status": "ok", "split": clip.split,
             "principal_objects": list(clip.category), "canonical": {"size": WORLD.size}}
        )  # fmt: skip
    detect = DetectParams(fps=2.0, max_boxes=5, min_score=0.0, batch_size=4, threads=1,
                          shard_clips=2)  # fmt: skip
    detect_all(rows, media, tiny_clips["ckpt"], detect, root / "d.zarr", root / "dparts")
    return {"root": root, "source": source, "media": media, "rows": rows, "det": root / "d.zarr"}


def run_depth(
    scenes, out, params=PARAMS, parts="parts", source=None, needed_by="asmp25d", optional=False
):
    root = scenes["root"]
    return depth_all(
        scenes["rows"], scenes["det"], scenes["media"], source or scenes["source"], params,
        root / out, root / parts, needed_by=needed_by, seed=0, device="cpu", optional=optional,
    )  # fmt: skip


def test_oracle_depth_store_skips_resumes_and_feeds_the_2_5d_graphs(scenes, tmp_path):
    source = tmp_path / "source"
    shutil.copytree(scenes["source"], source)
    gone = scenes["rows"][1]["clip_id"]
    (source / "truth" / f"{gone}.npz").unlink()
    metrics = run_depth(scenes, "o.zarr", source=source, parts=tmp_path / "parts")
    assert metrics["clips"] == len(scenes["rows"]) - 1 and metrics["computed"] == 4
    assert f"truth/{gone}.npz is missing" in metrics["skipped_clips"][gone]
    store = DepthStore(scenes["root"] / "o.zarr")
    assert gone not in store and store.skipped == metrics["skipped_clips"]
    cid = scenes["rows"][0]["clip_id"]
    a = store.read(cid)
    assert a["depth"].shape == (4, 24, 24) and np.isfinite(a["depth"]).all()
    # metric depth, registered on a static background: the rendered depth, area-averaged
    with np.load(source / "truth" / f"{cid}.npz") as z:
        rendered = z["depth"][0].astype(np.float32) / 1000
    coarse = rendered.reshape(24, 4, 24, 4).mean((1, 3))
    assert np.median(np.abs(a["depth"][0] - coarse)) < 0.02
    assert np.isfinite(a["box_depth"][:, 0]).all() and (a["box_depth"] >= 0.9).sum() > 0
    # a rerun reads the parts: nothing is computed again
    again = run_depth(scenes, "o2.zarr", source=source, parts=tmp_path / "parts")
    assert again["computed"] == 0 and again["clips"] == metrics["clips"]
    # ... unless detect sampled other frames: a part holds the frames of one rate
    other_fps = tmp_path / "fps.zarr"
    shutil.copytree(scenes["det"], other_fps)
    meta = json.loads((other_fps / "zarr.json").read_text())
    meta["attributes"]["params"]["fps"] = 4.0
    (other_fps / "zarr.json").write_text(json.dumps(meta))
    moved = depth_all(
        scenes["rows"], other_fps, scenes["media"], source, PARAMS, tmp_path / "f.zarr",
        tmp_path / "parts", needed_by="asmp25d", seed=0, device="cpu",
    )  # fmt: skip
    assert moved["computed"] == metrics["clips"]
    # the 2.5D graphs: positions and weights, and weight 1 where the clip has no depth
    manifest = scenes["rows"]
    out = tmp_path / "g.h5"
    gm, _ = build_all(
        scenes["det"], manifest, GRAPHS, CLASS_MAP, out, seed=0, depth=scenes["root"] / "o.zarr"
    )
    graphs = GraphStore(out)
    assert graphs.edge_dim == 1 and graphs.attrs["builder"]["name"] == "asmp25d"
    assert gm["geometry"]["graphs_without_depth"] == (gone in graphs.clip_ids)
    for c in graphs.clip_ids:
        g, data = graphs.read(c), graphs.data(c)
        n = len(g["role"])
        assert data.edge_attr.shape == (n * (n - 1), 1) == (complete_edges(n).shape[1], 1)
        assert torch.isfinite(data.edge_attr).all() and (data.edge_attr <= 1).all()
        if c == gone:
            assert (data.edge_attr == 1).all() and np.isnan(g["pos"]).all()
        else:
            assert np.isfinite(g["pos"]).all() and 0.9 < np.median(g["pos"][:, 2]) < 6.5
    # graphs from the depth of other detections are refused
    other = tmp_path / "other.zarr"
    shutil.copytree(scenes["root"] / "o.zarr", other)
    meta = json.loads((other / "zarr.json").read_text())
    meta["attributes"]["detections"]["params"]["fps"] = 4.0
    (other / "zarr.json").write_text(json.dumps(meta))
    with pytest.raises(Exception, match="made from other detections"):
        build_all(scenes["det"], manifest, GRAPHS, CLASS_MAP, tmp_path / "x.h5", seed=0,
                  depth=other)  # fmt: skip


def test_unused_depth_and_a_world_without_depth(scenes, tmp_path):
    assert run_depth(scenes, "u.zarr", needed_by=None) == {"used": False}
    with pytest.raises(DepthStoreError, match="holds no depth"):
        DepthStore(scenes["root"] / "u.zarr")
    # the avsgs builder reads no depth store at all
    plain = dataclasses.replace(GRAPHS, builder="avsgs")
    build_all(scenes["det"], scenes["rows"], plain, CLASS_MAP, tmp_path / "g.h5", seed=0)
    assert GraphStore(tmp_path / "g.h5").edge_dim == 0
    # oracle on a world that has no rendered depth
    source = tmp_path / "source"
    shutil.copytree(scenes["source"], source)
    meta = json.loads((source / "meta.json").read_text())
    meta["params"]["flavour"] = "everyday"
    (source / "meta.json").write_text(json.dumps(meta))
    with pytest.raises(DepthError, match="needs the scenes world.*midas"):
        run_depth(scenes, "e.zarr", source=source, parts=tmp_path / "p")
    # where only the motion labels ask (a real dataset with the default labels), the run goes
    # on: a store that says why, graphs without labels (and say so), AVSGS unaffected
    from pipeline.graphs.motion_labels import MotionParams

    got = run_depth(
        scenes, "e.zarr", source=source, parts=tmp_path / "p",
        needed_by="graphs.motion.labels derived", optional=True,
    )  # fmt: skip
    assert got["used"] is False and "goes without" in got["reason"]
    labelled = dataclasses.replace(plain, motion=MotionParams(labels="derived"))
    metrics, _ = build_all(
        scenes["det"], scenes["rows"], labelled, CLASS_MAP, tmp_path / "m.h5", seed=0,
        depth=scenes["root"] / "e.zarr",
    )  # fmt: skip
    assert "scenes world" in metrics["motion"]["skipped"]
    assert GraphStore(tmp_path / "m.h5").motion is None
    # ... but the 2.5D builder cannot go without
    with pytest.raises(DepthStoreError, match="holds no depth"):
        build_all(
            scenes["det"], scenes["rows"], GRAPHS, CLASS_MAP, tmp_path / "n.h5", seed=0,
            depth=scenes["root"] / "e.zarr",
        )  # fmt: skip
    for truth in (source / "truth").glob("*.npz"):
        truth.unlink()
    meta["params"]["flavour"] = "scenes"
    (source / "meta.json").write_text(json.dumps(meta))
    with pytest.raises(DepthError, match="no clip has depth.*is missing"):
        run_depth(scenes, "e.zarr", source=source, parts=tmp_path / "p")


def test_relative_oracle_is_registered_back_to_the_depth_order(scenes):
    relative = dataclasses.replace(PARAMS, oracle=OracleParams(relative=True))
    metrics = run_depth(scenes, "r.zarr", params=relative, parts="rparts")
    assert metrics["output"] == "disparity" and metrics["registration"]["unaligned"] == 0
    run_depth(scenes, "m.zarr", parts="mparts")
    rel, metric = DepthStore(scenes["root"] / "r.zarr"), DepthStore(scenes["root"] / "m.zarr")
    for cid in rel.clip_ids:
        a, b = rel.read(cid)["depth"], metric.read(cid)["depth"]
        # every frame of a clip on one scale again: the depth order is the true one
        rank = lambda x: np.argsort(np.argsort(x.ravel()))  # noqa: E731
        assert np.corrcoef(rank(a), rank(b))[0, 1] > 0.9
        assert a.min() >= 1.0 - 1e-3 and a.max() <= 6.0 + 1e-2


class Brightness(torch.nn.Module):  # "nearer is brighter": a disparity
    def forward(self, x):
        return x.mean(1)


@pytest.mark.parametrize("kind", ["export", "torchscript"])
def test_file_backend_runs_an_exported_or_torchscript_model(scenes, tmp_path, kind):
    if kind == "export":
        path = tmp_path / "depth.pt2"
        batch = {"x": {0: torch.export.Dim("batch", min=1)}}  # frames per pass vary
        example = (torch.rand(2, 3, 32, 32),)
        torch.export.save(torch.export.export(Brightness(), example, dynamic_shapes=batch), path)
    else:
        path = tmp_path / "depth.pt"
        with pytest.warns(DeprecationWarning):  # TorchScript: still read, no longer made
            torch.jit.save(torch.jit.script(Brightness()), path)
    params = dataclasses.replace(
        PARAMS, backend="file", file=FileParams(str(path), "disparity", 32, 3)
    )
    metrics = run_depth(scenes, f"f{kind}.zarr", params=params, parts=tmp_path / "parts")
    assert metrics["clips"] == len(scenes["rows"]) and metrics["output"] == "disparity"
    store = DepthStore(scenes["root"] / f"f{kind}.zarr")
    assert store.attrs["backend"]["name"] == path.name  # not where the file was kept
    assert np.isfinite(store.read(store.clip_ids[0])["depth"]).all()
    refusals = [
        (tmp_path / "none.pt", "none.pt: not found"),
        (scenes["source"] / "meta.json", "not an exported .* or TorchScript"),
    ]
    for bad, match in refusals:
        params = dataclasses.replace(PARAMS, backend="file", file=FileParams(str(bad)))
        with pytest.raises(DepthError, match=match):
            run_depth(scenes, "f2.zarr", params=params, parts=tmp_path / "p2")


def test_midas_offline_says_which_files_go_where(scenes, tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "th"))
    monkeypatch.setattr(torch.hub, "_hub_dir", None, raising=False)
    # no network here; with one, a proxy on a closed port keeps the test offline. urllib reads
    # the proxy when it builds its shared opener, on the first urlopen: this test's opener is
    # dropped after it, or every later download in this worker would go to the closed port.
    for var in ("https_proxy", "HTTPS_PROXY", "http_proxy", "HTTP_PROXY"):
        monkeypatch.setenv(var, "http://127.0.0.1:9")
    monkeypatch.setattr(urllib.request, "_opener", None)
    params = dataclasses.replace(PARAMS, backend="midas")
    with pytest.raises(DepthError) as err:
        run_depth(scenes, "mi.zarr", params=params, parts=tmp_path / "p")
    msg = str(err.value)
    hub = tmp_path / "th" / "hub"
    assert str(hub / "intel-isl_MiDaS_master") in msg
    assert "model-small-70d6b9c8.pt" in msg and str(hub / "checkpoints") in msg
    assert not (scenes["root"] / "mi.zarr").exists()


def truth_detections(scenes, path):
    """A detections store whose boxes are the world's true boxes (a perfect detector), classes
    by name, so that tracks and labels can be checked against the truth."""
    from pipeline.detection.store import build_store, clip_key, write_part
    from pipeline.scenes_truth import frame_at, xyxy

    world = json.loads((scenes["source"] / "world.json").read_text())
    names = sorted({t["class"] for c in world["clips"] for t in c["tracks"]})
    keys = {}
    for clip in world["clips"]:
        with np.load(scenes["source"] / "truth" / f"{clip['clip_id']}.npz") as z:
            truth = {k: z[k] for k in ("box",)}
        times = np.arange(int(WORLD.seconds * 2)) / 2.0
        part = {
            "boxes": np.zeros((len(times), 12, 4), np.float32),
            "scores": np.zeros((len(times), 12), np.float32),
            "labels": np.full((len(times), 12), -1, np.int16),
            "features": np.zeros((len(times), 12, 4), np.float16),
            "counts": np.zeros(len(times), np.int16),
            "times": times.astype(np.float32),
        }
        for t, time in enumerate(times):
            boxes = xyxy(truth["box"][:, frame_at(truth, time, WORLD.fps)])
            seen = [k for k in range(len(boxes)) if np.isfinite(boxes[k]).all()]
            for j, k in enumerate(seen):
                part["boxes"][t, j] = boxes[k]
                part["scores"][t, j] = 1.0
                part["labels"][t, j] = names.index(clip["tracks"][k]["class"])
            part["counts"][t] = len(seen)
        keys[clip["clip_id"]] = clip_key("truth", "-")
        write_part(path / "parts", clip["clip_id"], part, keys[clip["clip_id"]])
    ids = sorted(keys)
    attrs = {
        "class_names": names,
        "detector": {"sha256": "truth"},
        "features": {"kind": "box_head", "dim": 4},
        "params": {"fps": 2.0},
        "skipped": {},
    }
    build_store(path / "d.zarr", path / "parts", ids, keys, attrs, len(times), 12, 4)
    return path / "d.zarr", {n: [n] for n in names}


def test_motion_labels_derived_from_tracks_and_depth_agree_with_the_truth(scenes, tmp_path):
    from pipeline.graphs.motion_labels import MotionParams

    det, class_map = truth_detections(scenes, tmp_path)
    rows = scenes["rows"]
    depth_all(
        rows, det, scenes["media"], scenes["source"], PARAMS, tmp_path / "depth.zarr",
        tmp_path / "dparts", needed_by="graphs.motion.labels derived", seed=0, device="cpu",
    )  # fmt: skip
    cmap = ClassMapParams("synthetic", class_map, {}, {})
    stores = {}
    for labels in ("truth", "derived"):
        params = dataclasses.replace(
            GRAPHS, builder="avsgs", motion=MotionParams(labels=labels), min_score=0.5
        )
        metrics, _ = build_all(
            det, rows, params, cmap, tmp_path / f"{labels}.h5", seed=0,
            depth=tmp_path / "depth.zarr", source=scenes["source"],
        )  # fmt: skip
        assert metrics["motion"]["labelled"] > 0.5
        stores[labels] = GraphStore(tmp_path / f"{labels}.h5")
    world = json.loads((scenes["source"] / "world.json").read_text())
    sources = {c["clip_id"]: c["sources"] for c in world["clips"]}
    agree = total = 0
    for cid in stores["truth"].clip_ids:
        true, ours = stores["truth"].read(cid), stores["derived"].read(cid)
        assert true["direction10"].shape == (2, 2) == ours["direction28"].shape  # 2 slots, 2 s
        for s, label in enumerate(true["label"]):
            if label < 0:
                assert (true["direction10"][s] == -1).all()  # an empty slot has no label
                continue
            # a slot's truth label is its sounding object's, as the world says
            want = [src["direction10"] for src in sources[cid]]
            assert true["direction10"][s].tolist() in want
            known = ours["direction10"][s] >= 0
            agree += int((ours["direction10"][s][known] == true["direction10"][s][known]).sum())
            total += int(known.sum())
    assert total >= 6 and agree / total >= 0.5  # chance: about 1 in 9
