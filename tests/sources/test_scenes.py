"""The ``scenes`` flavour: partners decide the variant, depth decides size, order and loudness,
each window's motion is labelled, and the ground truth beside each clip agrees with its media."""

import dataclasses
import json

import numpy as np
import pytest
import soundfile as sf

from pipeline import motion
from pipeline.graphs.build import box_iou
from pipeline.labels.dictionary import load_dictionary
from pipeline.labels.mine import LabelsParams, mine_labels
from pipeline.params import BaseParams, ParamsError, parse
from pipeline.scenes_truth import source_at, xyxy
from pipeline.sources.synthetic import download_synthetic, prepare_synthetic
from pipeline.sources.synthetic.classes import PARTNERS, PERFORMERS, Look
from pipeline.sources.synthetic.scenes import (
    DEPTH_SCALE,
    Body,
    ScenesParams,
    clip_kind,
    displacements,
    distance_effects,
    render_frames,
)
from pipeline.sources.synthetic.world import SyntheticParams, detector_classes
from tests.conftest import tiny_world

SCENES = tiny_world(
    flavour="scenes", n_train=4, n_val=1, n_test=1, seconds=3.0, size=128,
    scenes=ScenesParams(same_class_sources=1.0, static_fraction=0.0),
)  # fmt: skip
BASE = BaseParams(seed=0, sample_rate=11025)


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    out = tmp_path_factory.mktemp("scenes")
    download_synthetic(out, SCENES, BASE)
    return out, json.loads((out / "world.json").read_text())


def test_same_seed_same_bytes_with_any_number_of_workers(world, tmp_path):
    out, _ = world
    again = tmp_path / "again"
    download_synthetic(again, dataclasses.replace(SCENES, workers=2), BASE)
    files = sorted(p.relative_to(out) for p in out.rglob("*") if p.is_file())
    assert files == sorted(p.relative_to(again) for p in again.rglob("*") if p.is_file())
    assert any(f.parts[0] == "truth" for f in files)
    for f in files:
        assert (out / f).read_bytes() == (again / f).read_bytes(), f


def test_labels_name_each_sounding_object_even_two_of_one_class(world):
    out, worldj = world
    clips = prepare_synthetic(out, SCENES)
    manifest, _ = mine_labels(clips, LabelsParams("either", "blank:en", 8), load_dictionary())
    by_id = {c["clip_id"]: c for c in worldj["clips"]}
    two = 0
    for rec in manifest:
        sources = by_id[rec["clip_id"]]["sources"]
        assert rec["principal_objects"] == [s["class"] for s in sources]
        if len(sources) == 2:  # same_class_sources=1: one class, two partners
            two += 1
            assert sources[0]["class"] == sources[1]["class"]
            assert sources[0]["partner"] != sources[1]["partner"]
        for s in sources:
            assert s["partner"] in PERFORMERS[s["class"]].partners and s["variant"] == s["partner"]
    assert two >= 1


def test_truth_agrees_with_the_boxes_and_the_partner_overlaps_its_object(world):
    out, worldj = world
    coco = json.loads((out / "annotations" / "train.json").read_text())
    assert [c["name"] for c in coco["categories"]] == detector_classes("scenes")
    assert detector_classes("scenes") == [*sorted(PERFORMERS), *sorted(PARTNERS)]
    clip = worldj["clips"][0]
    truth = np.load(out / "truth" / f"{clip['clip_id']}.npz")
    n_frames = int(SCENES.seconds * SCENES.fps)
    assert truth["depth"].shape == (n_frames, 128, 128) and truth["depth"].dtype == np.uint16
    assert truth["path"].shape == (len(clip["tracks"]), n_frames + 1, 3)
    first = {a["track_id"]: a for a in coco["annotations"] if a["image_id"] == 1}
    for k, a in first.items():
        assert np.allclose(truth["box"][k, 0], a["bbox"])
        assert a["role"] == clip["tracks"][k]["role"]
        x, y, w, h = a["bbox"]  # the box's pixels lie at the object's depth or nearer
        z = truth["depth"][0, int(y) : int(y + h), int(x) : int(x + w)] / DEPTH_SCALE
        assert z.min() <= truth["path"][k, 0, 2] + 1e-3
    ious = []
    for s in clip["sources"]:
        a, b = truth["box"][s["track"]], truth["box"][s["partner_track"]]
        both = ~np.isnan(a[:, 0]) & ~np.isnan(b[:, 0])
        ious += [
            box_iou(xyxy(a[f : f + 1]), xyxy(b[f : f + 1]))[0, 0] for f in np.flatnonzero(both)
        ]
    assert np.median(ious) > 0.2  # clearly above graphs.iou = 0.1


def test_a_box_is_matched_to_the_sounding_object_it_shows(world):
    out, worldj = world
    clip = worldj["clips"][0]
    truth = np.load(out / "truth" / f"{clip['clip_id']}.npz")
    fps = SCENES.fps
    for s in clip["sources"]:
        f = int(np.flatnonzero(~np.isnan(truth["box"][s["track"], :, 0]))[0])
        box = xyxy(truth["box"][s["track"], f]) + 1.0  # a node's box, a pixel off
        assert source_at(clip, truth, box, f / fps, fps) is s
        partner = xyxy(truth["box"][s["partner_track"], f])
        assert source_at(clip, truth, partner, f / fps, fps) is None  # overlaps, IoU < 0.5
    assert source_at(clip, truth, np.array([0.0, 0.0, 1.0, 1.0]), 0.0, fps) is None


def test_direction_labels_follow_the_paths(world):
    out, worldj = world
    for clip in worldj["clips"]:
        truth = np.load(out / "truth" / f"{clip['clip_id']}.npz")
        paths = truth["path"].astype(np.float64)
        disp = np.stack([displacements(p, SCENES.fps, 128, SCENES.seconds) for p in paths])
        assert np.allclose(disp, truth["displacement"], atol=1e-4)
        assert (truth["direction10"] == motion.direction_class(truth["displacement"], 10)).all()
        for s in clip["sources"]:
            assert s["direction28"] == truth["direction28"][s["track"]].tolist()
            assert len(s["direction10"]) == int(SCENES.seconds)


def test_loudness_follows_depth_and_doppler_shifts_pitch():
    rate, fps = 8000, 8
    t = np.arange(2 * rate) / rate
    tone = np.sin(2 * np.pi * 400 * t).astype(np.float32)
    z = np.linspace(2.0, 1.0, 2 * fps + 1)  # approaching at 0.5 units/s
    near = distance_effects(np.ones(2 * rate, np.float32), z, fps, rate, 0.0)
    assert near[0] == pytest.approx(0.5) and near[-1] == pytest.approx(1.0, abs=1e-3)
    shifted = distance_effects(tone, z, fps, rate, speed_of_sound=10.0)
    spectrum = np.abs(np.fft.rfft(shifted[rate // 2 : rate + rate // 2] * np.hanning(rate)))
    peak = np.argmax(spectrum) * rate / rate  # 1 Hz bins
    assert peak == pytest.approx(400 * (1 + 0.5 / 10), abs=2)  # f / (1 - v / c), v << c


def test_every_split_holds_each_kind_of_clip_in_its_share():
    for lo, hi in ((0, 96), (96, 112), (112, 136)):  # the default splits
        kinds = [clip_kind(i, 2, 0.5) for i in range(lo, hi)]
        n = hi - lo
        for kind in ((1, False), (2, False), (2, True)):
            assert abs(kinds.count(kind) - n / 3) <= 1.5, (lo, kind, kinds.count(kind))
    assert {clip_kind(i, 1, 0.5) for i in range(20)} == {(1, False)}
    assert {clip_kind(i, 2, 1.0)[1] for i in range(20) if clip_kind(i, 2, 1.0)[0] == 2} == {True}


def test_nearer_objects_are_painted_over_farther_ones():
    params = dataclasses.replace(SCENES, size=64, seconds=0.125, fps=8)
    path = lambda z: np.array([[32.0, 32.0, z]] * 2)  # noqa: E731
    red, blue = Look("square", (250, 0, 0), "solid"), Look("square", (0, 0, 250), "solid")
    bodies = [Body("a", red, 40.0, "silent", path(1.0)), Body("b", blue, 40.0, "silent", path(2.0))]
    frames, depth, boxes = render_frames(np.random.default_rng(0), params, bodies)
    assert frames[0, 32, 32, 0] > 200 and depth[0, 32, 32] == DEPTH_SCALE  # red, nearer, wins
    assert boxes[0][1] is None  # the far one is hidden behind the near one (side 20 < 40)
    assert boxes[0][0][2] == pytest.approx(0.92 * 40, abs=1)  # side = base / z (square: 0.92)


def test_scenes_params_are_checked():
    good = {f.name: getattr(SCENES, f.name) for f in dataclasses.fields(SCENES)}
    good["scenes"] = {"far": 5.0}
    with pytest.raises(ParamsError, match="far must lie in"):
        parse(SyntheticParams, good, "source.synthetic")
    good["scenes"] = {"static": 0.5}
    with pytest.raises(ParamsError, match="unknown key source.synthetic.scenes.static"):
        parse(SyntheticParams, good, "source.synthetic")


def test_stems_sum_to_the_mixture_and_follow_the_sources_depth(world):
    out, worldj = world
    clip = next(c for c in worldj["clips"] if len(c["sources"]) == 2)
    stems, rate = sf.read(out / "stems" / f"{clip['clip_id']}.wav", always_2d=True)
    assert stems.shape[1] == 2 and rate == 11025
    truth = np.load(out / "truth" / f"{clip['clip_id']}.npz")
    for s in clip["sources"]:
        z = truth["path"][s["track"], :-1, 2]
        env = np.sqrt(np.mean(stems[: len(z) * (rate // SCENES.fps), s["stem_channel"]]
                              .reshape(len(z), -1) ** 2, axis=1))  # fmt: skip
        sounding = env > 1e-3
        assert np.all(env[sounding] < 0.45 / z[sounding] + 1e-3)  # peak-normalised, then 1 / z
