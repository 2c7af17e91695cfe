"""The built-in synthetic world: reproducible bytes, real media, captions the labels stage mines."""

import dataclasses
import hashlib
import json
import re

import numpy as np
import pytest
import soundfile as sf

from pipeline import media
from pipeline.labels.dictionary import load_dictionary
from pipeline.labels.mine import LabelsParams, load_nlp, match_captions, mine_labels
from pipeline.params import BaseParams, ParamsError, parse
from pipeline.sources.synthetic import download_synthetic, prepare_synthetic
from pipeline.sources.synthetic.classes import EVERYDAY, PLAYER
from pipeline.sources.synthetic.world import SyntheticParams, detector_classes
from tests.conftest import tiny_world

SMALL = tiny_world()
BASE = BaseParams(seed=0, sample_rate=11025)


def _tree_hash(root):
    digest = hashlib.sha256()
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        digest.update(str(path.relative_to(root)).encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    out = tmp_path_factory.mktemp("world")
    download_synthetic(out, SMALL, BASE)
    return out


def test_same_seed_same_bytes_other_seed_other_world(world, tmp_path):
    again = tmp_path / "again"
    download_synthetic(again, dataclasses.replace(SMALL, workers=2), BASE)  # workers: same world
    assert _tree_hash(again) == _tree_hash(world)
    other = tmp_path / "other"
    download_synthetic(other, SMALL, BaseParams(seed=1, sample_rate=11025))
    assert _tree_hash(other) != _tree_hash(world)


def test_clip_decodes_and_its_audio_is_the_sum_of_its_stems(world):
    clips = prepare_synthetic(world, SMALL)
    assert len(clips) == 5 and [c.split for c in clips].count("train") == 3
    clip = clips[0]
    path = world / clip.url
    info = media.probe(path)
    assert info["duration"] == pytest.approx(SMALL.seconds, abs=0.05)
    assert info["size"] == (SMALL.size, SMALL.size) and info["sample_rate"] == 11025
    assert media.decode_frames(path).shape == (SMALL.seconds * SMALL.fps, 96, 96, 3)
    audio = media.decode_audio(path, 11025)
    stems, rate = sf.read(world / "stems" / f"{clip.clip_id}.wav", dtype="float32", always_2d=True)
    assert rate == 11025 and len(audio) == len(stems) == SMALL.seconds * 11025
    mix = stems.sum(axis=1)
    snr = 10 * np.log10(np.sum(mix**2) / np.sum((audio - mix) ** 2))
    assert snr > 15, f"AAC round trip of the stems' sum: {snr:.1f} dB"
    assert np.all(np.sqrt(np.mean(stems**2, axis=0)) > 0.005)  # every stem sounds


def test_captions_are_mined_into_exactly_the_sounding_objects(world):
    worldj = json.loads((world / "world.json").read_text())
    sounding = {c["clip_id"]: {s["class"] for s in c["sources"]} for c in worldj["clips"]}
    clips = prepare_synthetic(world, SMALL)
    assert [len(c.captions) for c in clips] == [1, 1, 1, 5, 5]
    manifest, metrics = mine_labels(
        clips, LabelsParams("either", "blank:en", 64), load_dictionary()
    )
    assert len(manifest) == len(clips)
    assert metrics["per_class"]["birds"]["paper"] is None  # ASIW's figures are not the yardstick
    for rec in manifest:
        assert set(rec["principal_objects"]) == sounding[rec["clip_id"]]


def test_every_phrase_names_its_class_and_no_other():
    nlp, vocab = load_nlp("blank:en"), load_dictionary()
    for name, cls in EVERYDAY.items():
        for words in match_captions(cls.phrases, nlp, "either", vocab):
            objects = {vocab.object_of(w) for w in words} - {"background"}
            assert objects == {name}, (name, words)


def test_coco_annotations_cover_every_frame_and_mark_sounding_objects(world):
    worldj = json.loads((world / "world.json").read_text())
    coco = json.loads((world / "annotations" / "train.json").read_text())
    names = [c["name"] for c in coco["categories"]]
    assert names == detector_classes("everyday") and names[-1] == PLAYER
    assert len(coco["images"]) == 3 * SMALL.seconds * SMALL.fps
    clip = worldj["clips"][0]
    first = [a for a in coco["annotations"] if a["image_id"] == 1]
    assert len(first) == len(clip["tracks"])  # every object is in frame at the start
    sounding = {s["track"] for s in clip["sources"]}
    assert {a["track_id"] for a in first if a["sounding"]} == sounding
    for a in coco["annotations"]:
        x, y, w, h = a["bbox"]
        assert x >= 0 and y >= 0 and w > 0 and h > 0 and x + w <= 96 and y + h <= 96


def test_instruments_flavour_is_labelled_like_music(tmp_path):
    params = dataclasses.replace(SMALL, flavour="instruments", n_train=1, n_val=1, n_test=1)
    download_synthetic(tmp_path, params, BASE)
    clips = prepare_synthetic(tmp_path, params)
    assert not (tmp_path / "raw").exists()
    assert all(c.category and not c.captions for c in clips)
    manifest, metrics = mine_labels(clips, LabelsParams("either", "blank:en", 8), load_dictionary())
    assert [r["principal_objects"] for r in manifest] == [list(c.category) for c in clips]


def test_synthetic_params_are_checked():
    good = {f.name: getattr(SMALL, f.name) for f in dataclasses.fields(SMALL)}
    good["scenes"] = dataclasses.asdict(SMALL.scenes)
    with pytest.raises(ParamsError, match="source.synthetic: max_sources must be 1 or 2"):
        parse(SyntheticParams, {**good, "max_sources": 3}, "source.synthetic")
    expected = "expected one of 'everyday' | 'instruments' | 'scenes'"
    with pytest.raises(ParamsError, match=re.escape(expected)):
        parse(SyntheticParams, {**good, "flavour": "jungle"}, "source.synthetic")
